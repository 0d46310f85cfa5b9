//! What a paid request bought, from the server's settlement header.

use x402_protocol::wire::{self, Version};

use crate::payment::Payment;

/// What a paid request bought, from the server's settlement header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub scheme: String,
    pub transaction: String,
    /// The challenge's reference, when the server is one of ours.
    pub reference: Option<String>,
    /// The receipt account (`receipt` scheme).
    pub receipt: Option<String>,
    /// Base units paid.
    pub amount: u64,
    /// The amount for people (with the server's decimals, display only).
    pub shown_amount: String,
    pub network: String,
    pub payer: String,
}

/// A response, and the settlement when the request was paid for.
#[derive(Debug)]
pub struct Paid {
    pub response: reqwest::Response,
    pub settlement: Option<Settlement>,
}

impl Settlement {
    /// Reads the settlement header of a paid response, in whichever version it came.
    pub(crate) fn of(response: &reqwest::Response, payment: &Payment) -> Option<Settlement> {
        let s = Version::ALL.into_iter().find_map(|version| {
            let value = response.headers().get(version.settlement_header())?;
            wire::Settlement::decode(version, value.to_str().ok()?).ok()
        })?;
        let text = |key: &str| {
            s.extra
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let offer = &payment.offer;
        Some(Settlement {
            scheme: offer.scheme().into(),
            reference: text("reference").or_else(|| offer.reference().map(|r| r.to_string())),
            receipt: text("receipt").or_else(|| offer.receipt().map(|r| r.to_string())),
            transaction: s.transaction,
            amount: offer.amount(),
            shown_amount: offer.shown_amount(),
            network: s.network,
            payer: s.payer,
        })
    }
}
