//! The x402 v2 `PAYMENT-REQUIRED` header of a 402.

use x402_protocol::wire::{v2, Offer};

use crate::model::{Price, Target};

pub(super) fn payment_required(
    price: &Price,
    target: &Target,
    offers: &[Offer],
    reason: Option<&str>,
) -> v2::PaymentRequired {
    v2::PaymentRequired {
        x402_version: v2::VERSION,
        error: reason.map(str::to_string),
        resource: v2::ResourceInfo {
            url: target.resource.clone(),
            description: Some(price.description.clone()),
            mime_type: Some(price.mime_type.clone()),
        },
        accepts: offers.iter().map(|offer| offer.to_v2()).collect(),
        extensions: None,
    }
}
