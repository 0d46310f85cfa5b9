//! The `exact` scheme on the x402 wire: the terms a payment must meet, what an offer's
//! `extra` holds, what a payment's `payload` holds, and the conversion between them.

use anchor_lang::prelude::Pubkey;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use solana_hash::Hash;
use solana_transaction::versioned::VersionedTransaction;

use super::MAX_MEMO_BYTES;
use crate::scheme::{
    extra_object, read_amount, read_blockhash, read_extra, read_key, Scheme, SchemeError,
};
use crate::wire::{v2, Offer};

/// The x402 scheme name.
pub const EXACT: &str = "exact";

/// What an `exact` payment must do: transfer `amount` of `mint` to `pay_to`'s associated
/// token account, with `fee_payer` paying the fee and `memo` in its Memo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactTerms {
    pub mint: Pubkey,
    pub pay_to: Pubkey,
    /// Base units.
    pub amount: u64,
    pub fee_payer: Pubkey,
    pub memo: Option<String>,
}

/// The `extra` object of an `exact` offer on Solana.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExactExtra {
    pub fee_payer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    /// A blockhash to sign with, saving the client a ledger call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_blockhash: Option<String>,
}

/// The `payload` of an `exact` payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactPayload {
    /// The partially signed versioned transaction, bincode, base64.
    pub transaction: String,
}

/// An `exact` offer on Solana, as both sides understand it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactOffer {
    /// The network as the offer names it (v1 name or CAIP-2).
    pub network: String,
    pub terms: ExactTerms,
    pub recent_blockhash: Option<Hash>,
    pub resource: v2::ResourceInfo,
    pub max_timeout_seconds: u64,
}

/// The `exact` scheme.
pub struct ExactScheme;

impl Scheme for ExactScheme {
    const NAME: &'static str = EXACT;
    type Offer = ExactOffer;
    type Payload = ExactPayload;
    type Transaction = VersionedTransaction;

    /// Any network: the caller checks it.
    fn read_fields(offer: &Offer) -> Result<ExactOffer, SchemeError> {
        let extra: ExactExtra = read_extra(offer, "extra.feePayer")?;
        if extra
            .memo
            .as_ref()
            .is_some_and(|m| m.len() > MAX_MEMO_BYTES)
        {
            return Err(SchemeError::Malformed("extra.memo"));
        }
        Ok(ExactOffer {
            network: offer.network.clone(),
            terms: ExactTerms {
                mint: read_key(&offer.asset, "asset")?,
                pay_to: read_key(&offer.pay_to, "payTo")?,
                amount: read_amount(offer)?,
                fee_payer: read_key(&extra.fee_payer, "extra.feePayer")?,
                memo: extra.memo,
            },
            recent_blockhash: read_blockhash(extra.recent_blockhash.as_deref())?,
            resource: offer.resource.clone(),
            max_timeout_seconds: offer.max_timeout_seconds,
        })
    }

    fn write_offer(offer: &ExactOffer) -> Offer {
        let extra = ExactExtra {
            fee_payer: offer.terms.fee_payer.to_string(),
            memo: offer.terms.memo.clone(),
            recent_blockhash: offer.recent_blockhash.map(|h| h.to_string()),
        };
        Offer {
            scheme: EXACT.into(),
            network: offer.network.clone(),
            amount: offer.terms.amount.to_string(),
            asset: offer.terms.mint.to_string(),
            pay_to: offer.terms.pay_to.to_string(),
            max_timeout_seconds: offer.max_timeout_seconds,
            extra: extra_object(extra),
            resource: offer.resource.clone(),
        }
    }
}

impl ExactOffer {
    /// This offer on the wire.
    pub fn to_offer(&self) -> Offer {
        ExactScheme::write_offer(self)
    }

    /// Reads an offer in the `exact` scheme (any network: the caller checks it).
    pub fn from_offer(offer: &Offer) -> Result<Self, SchemeError> {
        ExactScheme::read_offer(offer)
    }

    /// The `extra` of this offer, for `/supported` and tests.
    pub fn extra(&self) -> Map<String, Value> {
        self.to_offer().extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_round_trip_and_long_memos_are_refused() {
        let offer = ExactOffer {
            network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1".into(),
            terms: ExactTerms {
                mint: Pubkey::new_unique(),
                pay_to: Pubkey::new_unique(),
                amount: 10_000,
                fee_payer: Pubkey::new_unique(),
                memo: Some("reference-1".into()),
            },
            recent_blockhash: Some(Hash::new_unique()),
            resource: v2::ResourceInfo {
                url: "http://shop/item".into(),
                description: None,
                mime_type: None,
            },
            max_timeout_seconds: 60,
        };
        assert_eq!(ExactOffer::from_offer(&offer.to_offer()), Ok(offer.clone()));
        let mut long = offer.to_offer();
        long.extra.insert("memo".into(), "m".repeat(257).into());
        assert_eq!(
            ExactOffer::from_offer(&long),
            Err(SchemeError::Malformed("extra.memo"))
        );
    }
}
