//! A signed payment, ready to send, and kept as JSON when it could not be presented.

use serde::{Deserialize, Serialize};
use x402_protocol::wire::{self, v1, Version};

use crate::offer::{Offer, Unreadable};
use crate::scheme::batch::BatchStep;

/// A signed payment for one offer, ready to send (and to send again after a 503).
#[derive(Clone, Debug)]
pub struct Payment {
    pub offer: Offer,
    /// The payment header: name and value.
    pub header: (&'static str, String),
    /// Whether the server's fee payer submits it (way 1) or it was paid already (way 2).
    pub sponsored: bool,
    /// The transaction signature, when the payer submitted it.
    pub signature: Option<String>,
    /// Whether it was sent to the server already. Presented again (kept after a 503 or a
    /// 5xx, or read back with [`Payment::from_json`]), it carries the payer's proof in
    /// `X-Payment-Proof`, which a seller of ours demands for a payment whose grant it gave
    /// back: the payment header alone may have been copied by anyone on its way.
    pub presented: bool,
    /// What a `batch-settlement` payment does to its channel, confirmed by the answer.
    pub batch: Option<BatchStep>,
}

/// A [`Payment`] as it is kept in a file. Fields in alphabetical order: the order the
/// file has always had.
#[derive(Serialize, Deserialize)]
struct KeptPayment {
    /// The payment header's name.
    header: String,
    offer: v1::PaymentRequirements,
    /// A kept payment of an older client may have been presented: prove it.
    #[serde(default = "presented_unless_told")]
    presented: bool,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    sponsored: bool,
    /// The payment header's value.
    value: String,
}

fn presented_unless_told() -> bool {
    true
}

impl Payment {
    /// The payment as JSON, to keep when it could not be presented (a 503, a ledger
    /// error): presented later with [`Payment::from_json`] and
    /// [`X402Client::send_with`](crate::X402Client::send_with), it is never paid again.
    pub fn to_json(&self) -> serde_json::Value {
        let kept = KeptPayment {
            header: self.header.0.to_string(),
            offer: self.offer.to_wire().to_v1(),
            presented: self.presented,
            signature: self.signature.clone(),
            sponsored: self.sponsored,
            value: self.header.1.clone(),
        };
        serde_json::to_value(kept).expect("plain fields serialize")
    }

    /// Reads a payment kept with [`Payment::to_json`].
    pub fn from_json(json: &serde_json::Value) -> Result<Self, Unreadable> {
        let malformed = |what: &str| Unreadable(format!("a kept payment: {what}"));
        let kept = KeptPayment::deserialize(json).map_err(|e| malformed(&e.to_string()))?;
        let header = Version::ALL
            .into_iter()
            .map(Version::payment_header)
            .find(|known| known.eq_ignore_ascii_case(&kept.header))
            .ok_or_else(|| malformed("header"))?;
        let offer =
            Offer::read(&wire::Offer::from_v1(&kept.offer)).map_err(|_| malformed("offer"))?;
        Ok(Payment {
            offer,
            header: (header, kept.value),
            sponsored: kept.sponsored,
            signature: kept.signature,
            presented: kept.presented,
            // A voucher is never kept: its channel book is.
            batch: None,
        })
    }

    /// The same payment, marked as sent to the server.
    pub(crate) fn presented(&self) -> Box<Payment> {
        Box::new(Payment {
            presented: true,
            ..self.clone()
        })
    }
}
