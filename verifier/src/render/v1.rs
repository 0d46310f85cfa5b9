//! The x402 v1 body of a 402, with plain fields for people with curl (`extra`).

use serde_json::Map;
use x402_protocol::amount::format_units;
use x402_protocol::wire::{v1, Offer};
use x402_protocol::Reference;

use crate::context::Context;
use crate::error::Reason;
use crate::model::{Price, Target};

pub(super) fn payment_required(
    cx: &Context,
    price: &Price,
    target: &Target,
    reference: Reference,
    offers: &[Offer],
    reason: Option<&str>,
) -> v1::PaymentRequired {
    let s = cx.settings();
    let amount = format_units(price.amount, s.decimals);
    let ttl = (reference.expires_at() - x402_protocol::unix_now()).max(0);
    let message = format!(
        "Pay {amount} {} to {} on {} for {} {}{}",
        s.currency,
        s.pay_to,
        s.network.v1_name(),
        target.method,
        target.path,
        reason.map(|r| format!(" ({r})")).unwrap_or_default()
    );
    let mut extra = Map::new();
    extra.insert("amount".into(), amount.into());
    extra.insert("currency".into(), s.currency.clone().into());
    extra.insert("payee".into(), s.pay_to.to_string().into());
    extra.insert("reference".into(), reference.to_string().into());
    extra.insert("ttl".into(), ttl.into());
    extra.insert("message".into(), message.into());
    if let Some(url) = &s.facilitator_url {
        extra.insert("facilitatorUrl".into(), url.clone().into());
    }
    v1::PaymentRequired {
        x402_version: v1::VERSION,
        error: reason
            .unwrap_or(Reason::PaymentRequired.as_str())
            .to_string(),
        accepts: offers
            .iter()
            .map(|offer| {
                let mut v1 = offer.to_v1();
                v1.network = s.network.v1_name().to_string();
                v1
            })
            .collect(),
        extra,
    }
}
