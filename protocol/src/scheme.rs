//! The `receipt` scheme on the x402 wire: what an offer's `extra` holds, what a payment's
//! `payload` holds, and the conversion between those and [`Requirement`].

use std::str::FromStr;

use anchor_lang::prelude::Pubkey;
use anchor_lang::{AnchorDeserialize, Discriminator};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use solana_hash::Hash;
use solana_sanitize::Sanitize;
use solana_transaction::Transaction;

use crate::reference::Reference;
use crate::requirement::Requirement;
use crate::wire::{v1, v2, Offer};

/// The x402 scheme name.
pub const SCHEME: &str = "receipt";

/// The largest transaction Solana accepts, in bytes.
const MAX_TRANSACTION_BYTES: usize = 1232;

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

/// Why an offer or payment in a scheme could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    #[error("the offer is in another scheme")]
    OtherScheme,
    #[error("the offer's or payment's `{0}` is missing or malformed")]
    Malformed(&'static str),
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

impl ReceiptOffer {
    fn extra(&self) -> Map<String, Value> {
        let r = &self.requirement;
        let extra = ReceiptExtra {
            program_id: r.program.to_string(),
            reference: r.reference.to_string(),
            receipt: r.receipt().to_string(),
            expires_at: r.expires_at,
            decimals: self.decimals,
            token_program: r.token_program.to_string(),
            fee_payer: self.fee_payer.map(|k| k.to_string()),
            recent_blockhash: self.recent_blockhash.map(|h| h.to_string()),
        };
        match serde_json::to_value(extra).expect("plain fields serialize") {
            Value::Object(map) => map,
            _ => unreachable!("a struct serializes to an object"),
        }
    }

    /// This offer on the wire, in either version's shape ([`Offer::to_v1`],
    /// [`Offer::to_v2`]).
    pub fn to_offer(&self) -> Offer {
        Offer {
            scheme: SCHEME.into(),
            network: self.network.clone(),
            amount: self.requirement.amount.to_string(),
            asset: self.requirement.mint.to_string(),
            pay_to: self.requirement.pay_to.to_string(),
            max_timeout_seconds: self.max_timeout_seconds,
            extra: self.extra(),
            resource: v2::ResourceInfo {
                url: self.resource.clone(),
                description: Some(self.description.clone()),
                mime_type: Some(self.mime_type.clone()),
            },
        }
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
        if offer.scheme != SCHEME {
            return Err(SchemeError::OtherScheme);
        }
        let extra: ReceiptExtra = serde_json::from_value(Value::Object(offer.extra.clone()))
            .map_err(|_| SchemeError::Malformed("extra"))?;
        let key =
            |text: &str, field| Pubkey::from_str(text).map_err(|_| SchemeError::Malformed(field));
        let requirement = Requirement {
            program: key(&extra.program_id, "programId")?,
            reference: extra
                .reference
                .parse()
                .map_err(|_| SchemeError::Malformed("reference"))?,
            amount: offer
                .amount
                .parse()
                .map_err(|_| SchemeError::Malformed("amount"))?,
            expires_at: extra.expires_at,
            mint: key(&offer.asset, "asset")?,
            token_program: key(&extra.token_program, "tokenProgram")?,
            pay_to: key(&offer.pay_to, "payTo")?,
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
                .map(|k| key(k, "feePayer"))
                .transpose()?,
            recent_blockhash: extra
                .recent_blockhash
                .as_deref()
                .map(|h| Hash::from_str(h).map_err(|_| SchemeError::Malformed("recentBlockhash")))
                .transpose()?,
            resource: resource.url.clone(),
            description: resource.description.clone().unwrap_or_default(),
            mime_type: resource.mime_type.clone().unwrap_or_default(),
            max_timeout_seconds: offer.max_timeout_seconds,
        })
    }
}

/// A transaction as `payload.transaction` carries it: bincode, base64.
pub fn encode_transaction(transaction: &Transaction) -> String {
    STANDARD.encode(bincode::serialize(transaction).expect("a transaction serializes"))
}

/// Reads `payload.transaction`; anything larger than a Solana transaction is refused
/// before decoding.
pub fn decode_transaction(text: &str) -> Result<Transaction, SchemeError> {
    let malformed = SchemeError::Malformed("transaction");
    let tx: Transaction = decode_wire(text)?;
    // The signature list and the instruction indexes must be consistent for the
    // message to be readable at all.
    tx.sanitize().map_err(|_| malformed)?;
    Ok(tx)
}

/// A transaction of either kind from `payload.transaction`'s base64, not yet sanitized;
/// anything larger than a Solana transaction is refused before decoding.
pub(crate) fn decode_wire<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, SchemeError> {
    let malformed = SchemeError::Malformed("transaction");
    if text.len() > MAX_TRANSACTION_BYTES.div_ceil(3) * 4 {
        return Err(malformed);
    }
    let bytes = STANDARD.decode(text).map_err(|_| malformed.clone())?;
    bincode::deserialize(&bytes).map_err(|_| malformed)
}

/// The reference a `pay` transaction pays: the arguments of its last instruction, if that
/// is a call of `program`'s `pay`.
pub fn paid_reference(transaction: &Transaction, program: &Pubkey) -> Option<Reference> {
    let message = &transaction.message;
    let pay = message.instructions.last()?;
    if message.account_keys.get(usize::from(pay.program_id_index)) != Some(program) {
        return None;
    }
    let args = pay
        .data
        .strip_prefix(x402_receipts::instruction::Pay::DISCRIMINATOR)?;
    let args = x402_receipts::instruction::Pay::deserialize(&mut &args[..]).ok()?;
    Some(Reference(args.reference))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn transactions_round_trip_and_the_paid_reference_is_found() {
        let offer = offer(true);
        let payer = Pubkey::new_from_array([4; 32]);
        let tx = offer.requirement.pay_transaction(
            &payer,
            &offer.fee_payer.unwrap(),
            Hash::new_from_array([1; 32]),
        );
        let decoded = decode_transaction(&encode_transaction(&tx)).unwrap();
        assert_eq!(decoded, tx);
        assert_eq!(
            paid_reference(&decoded, &x402_receipts::ID),
            Some(offer.requirement.reference)
        );
        assert_eq!(
            paid_reference(&decoded, &Pubkey::new_from_array([1; 32])),
            None
        );
        assert_eq!(
            decode_transaction("!!"),
            Err(SchemeError::Malformed("transaction"))
        );
        assert_eq!(
            decode_transaction(&"A".repeat(4096)),
            Err(SchemeError::Malformed("transaction"))
        );
    }
}
