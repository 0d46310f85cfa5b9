//! What a paid request bought, from the server's settlement header.

use x402_protocol::wire::{self, Version};
use x402_protocol::UPTO;

use crate::error::ClientError;
use crate::offer::Offer;
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
    /// Base units paid: for `upto`, what the seller settled, checked to be at most
    /// `maximum`.
    pub amount: u64,
    /// For `upto`: the maximum the buyer escrowed; the rest went back to it.
    pub maximum: Option<u64>,
    /// The amount for people (with the server's decimals, display only).
    pub shown_amount: String,
    pub network: String,
    pub payer: String,
    /// For `batch-settlement`: the channel's cumulative amount the seller accepted.
    pub batch_charged: Option<u64>,
    /// For `batch-settlement`'s server mode: the operator's voucher for the channel's new
    /// total, the buyer's receipt (checked before it is believed).
    pub batch_voucher: Option<x402_protocol::scheme::batch::BatchVoucher>,
}

/// A response, and the settlement when the request was paid for.
#[derive(Debug)]
pub struct Paid {
    pub response: reqwest::Response,
    pub settlement: Option<Settlement>,
}

impl Settlement {
    /// Reads the settlement header of a paid response, in whichever version it came.
    /// An `upto` settlement claiming more than the maximum is an error: the chain held
    /// the charge to the deposit, but the seller's word is false.
    pub(crate) fn of(
        response: &reqwest::Response,
        payment: &Payment,
    ) -> Result<Option<Settlement>, ClientError> {
        let settlement = Version::ALL.into_iter().find_map(|version| {
            let value = response.headers().get(version.settlement_header())?;
            wire::Settlement::decode(version, value.to_str().ok()?).ok()
        });
        settlement
            .map(|s| Settlement::read(s, &payment.offer))
            .transpose()
    }

    /// A settlement header's fields for a payment of `offer`.
    fn read(s: wire::Settlement, offer: &Offer) -> Result<Settlement, ClientError> {
        let text = |key: &str| {
            s.extra
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let (amount, maximum, shown_amount) = match offer.scheme() {
            UPTO => {
                let maximum = offer.amount();
                // The settled amount: v2's `amount`, or a v1 answer's field of that name;
                // the maximum when the seller does not say (the most it can have taken).
                let settled = s.amount.clone().or_else(|| text("amount"));
                let settled = match settled.as_deref().map(str::parse::<u64>) {
                    Some(Ok(settled)) if settled > maximum => {
                        return Err(ClientError::SettledAboveMaximum {
                            settled,
                            maximum,
                            transaction: s.transaction,
                        })
                    }
                    Some(Ok(settled)) => settled,
                    _ => maximum,
                };
                let shown = format!("{settled} of at most {maximum} base units");
                (settled, Some(maximum), shown)
            }
            _ => (offer.amount(), None, offer.shown_amount()),
        };
        Ok(Settlement {
            scheme: offer.scheme().into(),
            reference: text("reference").or_else(|| offer.reference().map(|r| r.to_string())),
            receipt: text("receipt").or_else(|| offer.receipt().map(|r| r.to_string())),
            transaction: s.transaction,
            amount,
            maximum,
            shown_amount,
            batch_charged: s
                .extra
                .get("channelState")
                .and_then(|state| state.get("chargedCumulativeAmount"))
                .and_then(|charged| charged.as_str()?.parse().ok()),
            batch_voucher: s
                .extra
                .get("voucher")
                .and_then(|voucher| serde_json::from_value(voucher.clone()).ok()),
            network: s.network,
            payer: s.payer,
        })
    }
}

#[cfg(test)]
mod tests {
    use anchor_lang::prelude::Pubkey;

    use super::*;
    use crate::offer::testing::upto_offer;

    fn settled(amount: Option<&str>) -> wire::Settlement {
        wire::Settlement {
            success: true,
            error_reason: None,
            payer: Pubkey::new_unique().to_string(),
            transaction: "distribute".into(),
            network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1".into(),
            amount: amount.map(str::to_string),
            extra: Default::default(),
        }
    }

    #[test]
    fn an_upto_settlement_reports_what_was_settled_of_the_maximum() {
        let read = Settlement::read(
            settled(Some("2500")),
            &upto_offer(10_000, Pubkey::new_unique()),
        )
        .unwrap();
        assert_eq!((read.amount, read.maximum), (2_500, Some(10_000)));
        assert_eq!(read.shown_amount, "2500 of at most 10000 base units");
        // A seller that does not say: the most it can have taken.
        let unsaid =
            Settlement::read(settled(None), &upto_offer(10_000, Pubkey::new_unique())).unwrap();
        assert_eq!(unsaid.amount, 10_000);
    }

    #[test]
    fn an_upto_settlement_claiming_more_than_the_maximum_is_an_error() {
        let claimed = Settlement::read(
            settled(Some("10001")),
            &upto_offer(10_000, Pubkey::new_unique()),
        );
        assert!(
            matches!(
                claimed,
                Err(ClientError::SettledAboveMaximum {
                    settled: 10_001,
                    maximum: 10_000,
                    ..
                })
            ),
            "{claimed:?}"
        );
    }
}
