//! The paywall page of a 402 for a browser: the challenge for people, and the v2 header
//! for the page's script ([`crate::paywall`]).

use x402_protocol::amount::format_units;
use x402_protocol::wire::v2;
use x402_protocol::Reference;

use crate::context::Context;
use crate::model::{Price, Target};
use crate::paywall;

pub(super) fn page(
    cx: &Context,
    price: &Price,
    target: &Target,
    reference: Reference,
    reason: Option<&str>,
    required: &v2::PaymentRequired,
) -> String {
    let s = cx.settings();
    let shown_price = format!("{} {}", format_units(price.amount, s.decimals), s.currency);
    let expires = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(reference.expires_at().max(0) as u64);
    let summary = paywall::Summary {
        price: &shown_price,
        payee: &s.pay_to.to_string(),
        method: &target.method,
        path: &target.path,
        description: &price.description,
        expires: &humantime::format_rfc3339_seconds(expires).to_string(),
        network: s.network.v1_name(),
        reason,
    };
    paywall::page(&summary, required)
}
