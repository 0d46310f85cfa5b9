//! The `receipt` scheme on the x402 wire: what an offer's `extra` holds, what a payment's
//! `payload` holds, and the conversion between those and [`Requirement`].

use anchor_lang::prelude::Pubkey;
use serde::{Deserialize, Serialize};
use solana_hash::Hash;
use solana_transaction::Transaction;

use super::Requirement;
use crate::scheme::{
    extra_object, read_amount, read_blockhash, read_extra, read_key, Scheme, SchemeError,
};
use crate::wire::{v1, v2, Offer};

/// The x402 scheme name.
pub const SCHEME: &str = "receipt";

/// The `extra` object of a `receipt` offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptExtra {
    pub program_id: String,
    pub reference: String,
    /// The receipt account `pay` will create.
    pub receipt: String,
    pub expires_at: i64,
    pub decimals: u8,
    pub token_program: String,
    /// Present when the server sponsors the transaction: its fee payer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_payer: Option<String>,
    /// Present when the server sponsors the transaction: the blockhash to sign with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_blockhash: Option<String>,
}

/// The `payload` of a `receipt` payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReceiptPayload {
    /// Way 1: the `pay` transaction signed by the payer, base64, for the server's fee
    /// payer to co-sign and submit.
    Sponsored { transaction: String },
    /// Way 2: the payer paid on chain: the reference, the payer's proof that it presents
    /// it for this request ([`crate::proof`]), and the transaction's signature, for the
    /// record.
    SelfSubmitted {
        reference: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proof: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
}

/// A `receipt` offer: one entry of a challenge's `accepts`, as both sides understand it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptOffer {
    /// The network as the offer names it (v1 name or CAIP-2).
    pub network: String,
    pub requirement: Requirement,
    pub decimals: u8,
    pub fee_payer: Option<Pubkey>,
    pub recent_blockhash: Option<Hash>,
    pub resource: String,
    pub description: String,
    pub mime_type: String,
    pub max_timeout_seconds: u64,
}

/// The `receipt` scheme.
pub struct ReceiptScheme;

impl Scheme for ReceiptScheme {
    const NAME: &'static str = SCHEME;
    type Offer = ReceiptOffer;
    type Payload = ReceiptPayload;
    type Transaction = Transaction;

    fn read_fields(offer: &Offer) -> Result<ReceiptOffer, SchemeError> {
        let extra: ReceiptExtra = read_extra(offer, "extra")?;
        let requirement = Requirement {
            program: read_key(&extra.program_id, "programId")?,
            reference: extra
                .reference
                .parse()
                .map_err(|_| SchemeError::Malformed("reference"))?,
            amount: read_amount(offer)?,
            expires_at: extra.expires_at,
            mint: read_key(&offer.asset, "asset")?,
            token_program: read_key(&extra.token_program, "tokenProgram")?,
            pay_to: read_key(&offer.pay_to, "payTo")?,
        };
        if requirement.reference.expires_at() != requirement.expires_at {
            return Err(SchemeError::Malformed("expiresAt"));
        }
        let resource = &offer.resource;
        Ok(ReceiptOffer {
            network: offer.network.clone(),
            requirement,
            decimals: extra.decimals,
            fee_payer: extra
                .fee_payer
                .as_deref()
                .map(|k| read_key(k, "feePayer"))
                .transpose()?,
            recent_blockhash: read_blockhash(extra.recent_blockhash.as_deref())?,
            resource: resource.url.clone(),
            description: resource.description.clone().unwrap_or_default(),
            mime_type: resource.mime_type.clone().unwrap_or_default(),
            max_timeout_seconds: offer.max_timeout_seconds,
        })
    }

    fn write_offer(offer: &ReceiptOffer) -> Offer {
        let r = &offer.requirement;
        let extra = ReceiptExtra {
            program_id: r.program.to_string(),
            reference: r.reference.to_string(),
            receipt: r.receipt().to_string(),
            expires_at: r.expires_at,
            decimals: offer.decimals,
            token_program: r.token_program.to_string(),
            fee_payer: offer.fee_payer.map(|k| k.to_string()),
            recent_blockhash: offer.recent_blockhash.map(|h| h.to_string()),
        };
        Offer {
            scheme: SCHEME.into(),
            network: offer.network.clone(),
            amount: r.amount.to_string(),
            asset: r.mint.to_string(),
            pay_to: r.pay_to.to_string(),
            max_timeout_seconds: offer.max_timeout_seconds,
            extra: extra_object(extra),
            resource: v2::ResourceInfo {
                url: offer.resource.clone(),
                description: Some(offer.description.clone()),
                mime_type: Some(offer.mime_type.clone()),
            },
        }
    }
}

impl ReceiptOffer {
    /// This offer on the wire, in either version's shape ([`Offer::to_v1`],
    /// [`Offer::to_v2`]).
    pub fn to_offer(&self) -> Offer {
        ReceiptScheme::write_offer(self)
    }

    /// Reads a v1 `accepts` entry.
    pub fn from_v1(offer: &v1::PaymentRequirements) -> Result<Self, SchemeError> {
        Self::from_offer(&Offer::from_v1(offer))
    }

    /// Reads a v2 `accepts` entry of a challenge for `resource`.
    pub fn from_v2(
        offer: &v2::PaymentRequirements,
        resource: &v2::ResourceInfo,
    ) -> Result<Self, SchemeError> {
        Self::from_offer(&Offer::from_v2(offer, resource))
    }

    /// Reads an offer in the `receipt` scheme.
    pub fn from_offer(offer: &Offer) -> Result<Self, SchemeError> {
        ReceiptScheme::read_offer(offer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Reference;

    fn offer(sponsored: bool) -> ReceiptOffer {
        ReceiptOffer {
            network: "solana-devnet".into(),
            requirement: Requirement {
                program: x402_receipts::ID,
                reference: Reference([
                    0, 0, 0, 0, 0, 0, 3, 232, 9, 9, 9, 9, 9, 9, 9, 9, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                    7, 7, 7, 7, 7, 7,
                ]),
                amount: 10_000,
                expires_at: 1_000,
                mint: Pubkey::new_from_array([2; 32]),
                token_program: anchor_spl::token::ID,
                pay_to: Pubkey::new_from_array([3; 32]),
            },
            decimals: 6,
            fee_payer: sponsored.then(|| Pubkey::new_from_array([8; 32])),
            recent_blockhash: sponsored.then(|| Hash::new_from_array([1; 32])),
            resource: "http://127.0.0.1:8402/demo".into(),
            description: "A demo".into(),
            mime_type: "application/json".into(),
            max_timeout_seconds: 60,
        }
    }

    #[test]
    fn an_offer_round_trips_through_v1_and_v2() {
        for sponsored in [true, false] {
            let offer = offer(sponsored);
            assert_eq!(
                ReceiptOffer::from_v1(&offer.to_offer().to_v1()),
                Ok(offer.clone())
            );
            let resource = v2::ResourceInfo {
                url: offer.resource.clone(),
                description: Some(offer.description.clone()),
                mime_type: Some(offer.mime_type.clone()),
            };
            let v2 = offer.to_offer().to_v2();
            assert_eq!(ReceiptOffer::from_v2(&v2, &resource), Ok(offer.clone()));
            let extra = v2.extra.unwrap();
            assert_eq!(extra["receipt"], offer.requirement.receipt().to_string());
            assert_eq!(extra.contains_key("feePayer"), sponsored);
        }
    }

    #[test]
    fn an_offer_of_another_scheme_or_with_a_bad_field_is_refused() {
        let mut other = offer(true).to_offer().to_v1();
        other.scheme = "exact".into();
        assert_eq!(ReceiptOffer::from_v1(&other), Err(SchemeError::OtherScheme));
        let mut bad = offer(true).to_offer().to_v1();
        bad.pay_to = "not a key".into();
        assert_eq!(
            ReceiptOffer::from_v1(&bad),
            Err(SchemeError::Malformed("payTo"))
        );
        let mut lying = offer(true).to_offer().to_v1();
        lying
            .extra
            .as_mut()
            .unwrap()
            .insert("expiresAt".into(), 5_000.into());
        assert_eq!(
            ReceiptOffer::from_v1(&lying),
            Err(SchemeError::Malformed("expiresAt"))
        );
    }

    #[test]
    fn payloads_are_told_apart_by_their_fields() {
        let sponsored: ReceiptPayload = serde_json::from_str(r#"{"transaction":"AAAA"}"#).unwrap();
        assert_eq!(
            sponsored,
            ReceiptPayload::Sponsored {
                transaction: "AAAA".into()
            }
        );
        let own: ReceiptPayload =
            serde_json::from_str(r#"{"reference":"abc","signature":"sig"}"#).unwrap();
        assert_eq!(
            own,
            ReceiptPayload::SelfSubmitted {
                reference: "abc".into(),
                proof: None,
                signature: Some("sig".into())
            }
        );
        assert!(serde_json::from_str::<ReceiptPayload>(r#"{"other":1}"#).is_err());
    }
}
