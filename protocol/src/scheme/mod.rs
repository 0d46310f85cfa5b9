//! Payment schemes: what an offer's `extra` and a payment's `payload` hold, the
//! transaction a buyer signs, and the checks a fee payer runs before co-signing it.
//!
//! Each scheme is one module implementing [`Scheme`], split the same way: `types` (offer,
//! extra, payload, and the wire conversion), `build` (the transaction a buyer signs) and
//! `validate` (one small check per rule). Adding a scheme is one module here plus its
//! `pub mod` line and its re-exports at the crate root.
//!
//! | module | scheme |
//! |---|---|
//! | [`receipt`] | `receipt`: the x402-receipts program's `pay`, a receipt account per reference |
//! | [`exact`] | `exact`: the ecosystem's `TransferChecked` and Memo |
//! | [`upto`] | `upto`: metered, a one-request channel of the payment-channels program |
//! | [`batch`] | `batch-settlement`: a channel of the payment-channels program kept open across many requests, one voucher each |
//! | [`channel`] | the payment-channels program, shared by `upto` and `batch-settlement` |
//! | [`sponsor`] | what a fee payer is willing to co-sign, shared by both |

pub mod batch;
pub mod channel;
pub mod exact;
pub mod receipt;
pub mod sponsor;
pub mod upto;

use std::str::FromStr;

use anchor_lang::prelude::Pubkey;
use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use solana_hash::Hash;
use solana_sanitize::{Sanitize, SanitizeError};
use solana_transaction::versioned::VersionedTransaction;
use solana_transaction::Transaction;

use crate::wire::Offer;

/// One payment scheme, as both sides understand it: its name, its offer, its payload and
/// the transaction its buyer signs.
pub trait Scheme {
    /// The scheme's name on the wire: an offer's and a payment's `scheme`.
    const NAME: &'static str;
    /// An offer in this scheme, read from its `extra` and the offer's common fields.
    type Offer;
    /// What a payment in this scheme carries as `payload`.
    type Payload: Serialize + DeserializeOwned;
    /// The transaction the buyer signs, as `payload.transaction` carries it.
    type Transaction: PayloadTransaction;

    /// Reads the fields of `offer`, whose `scheme` is this one.
    fn read_fields(offer: &Offer) -> Result<Self::Offer, SchemeError>;

    /// `offer` on the wire, in either version's shape ([`Offer::to_v1`], [`Offer::to_v2`]).
    fn write_offer(offer: &Self::Offer) -> Offer;

    /// Reads an offer in this scheme.
    fn read_offer(offer: &Offer) -> Result<Self::Offer, SchemeError> {
        if offer.scheme != Self::NAME {
            return Err(SchemeError::OtherScheme);
        }
        Self::read_fields(offer)
    }
}

/// Why an offer or payment in a scheme could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    #[error("the offer is in another scheme")]
    OtherScheme,
    #[error("the offer's or payment's `{0}` is missing or malformed")]
    Malformed(&'static str),
}

/// An offer's `extra` as the scheme's type; `field` names what is malformed otherwise.
pub(crate) fn read_extra<T: DeserializeOwned>(
    offer: &Offer,
    field: &'static str,
) -> Result<T, SchemeError> {
    serde_json::from_value(Value::Object(offer.extra.clone()))
        .map_err(|_| SchemeError::Malformed(field))
}

/// A scheme's `extra` as the object an offer carries.
pub(crate) fn extra_object<T: Serialize>(extra: T) -> Map<String, Value> {
    let Value::Object(extra) = serde_json::to_value(extra).expect("plain fields serialize") else {
        unreachable!("a struct serializes to an object")
    };
    extra
}

/// An address in an offer's `field`.
pub(crate) fn read_key(text: &str, field: &'static str) -> Result<Pubkey, SchemeError> {
    Pubkey::from_str(text).map_err(|_| SchemeError::Malformed(field))
}

/// An offer's `amount`, in base units.
pub(crate) fn read_amount(offer: &Offer) -> Result<u64, SchemeError> {
    offer
        .amount
        .parse()
        .map_err(|_| SchemeError::Malformed("amount"))
}

/// An offer's `extra.recentBlockhash`, when present.
pub(crate) fn read_blockhash(text: Option<&str>) -> Result<Option<Hash>, SchemeError> {
    text.map(|h| Hash::from_str(h).map_err(|_| SchemeError::Malformed("recentBlockhash")))
        .transpose()
}

/// The largest transaction Solana accepts, in bytes.
const MAX_TRANSACTION_BYTES: usize = 1232;

/// A transaction of either kind a payload carries: legacy (`receipt`) or versioned
/// (`exact`, which also reads legacy).
pub trait PayloadTransaction: Serialize + DeserializeOwned {
    /// The signature list and the instruction indexes are consistent.
    fn sanitize(&self) -> Result<(), SanitizeError>;
}

impl PayloadTransaction for Transaction {
    fn sanitize(&self) -> Result<(), SanitizeError> {
        Sanitize::sanitize(self)
    }
}

impl PayloadTransaction for VersionedTransaction {
    fn sanitize(&self) -> Result<(), SanitizeError> {
        VersionedTransaction::sanitize(self)
    }
}

/// A transaction as `payload.transaction` carries it: bincode, base64.
pub fn encode_transaction<T: PayloadTransaction>(transaction: &T) -> String {
    STANDARD.encode(bincode::serialize(transaction).expect("a transaction serializes"))
}

/// Reads `payload.transaction`; anything larger than a Solana transaction is refused
/// before decoding.
pub fn decode_transaction<T: PayloadTransaction>(text: &str) -> Result<T, SchemeError> {
    let malformed = SchemeError::Malformed("transaction");
    if text.len() > MAX_TRANSACTION_BYTES.div_ceil(3) * 4 {
        return Err(malformed);
    }
    let bytes = STANDARD.decode(text).map_err(|_| malformed.clone())?;
    let tx: T = bincode::deserialize(&bytes).map_err(|_| malformed.clone())?;
    // The signature list and the instruction indexes must be consistent for the
    // message to be readable at all.
    tx.sanitize().map_err(|_| malformed)?;
    Ok(tx)
}

/// A slot: a number on the wire, as the specification writes it, and read from a decimal
/// string too, as solana-pay-kit (0.10.0) writes `recentSlot` and `openSlot`.
pub(crate) mod slot {
    use serde::{de::Error, Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Slot {
        Number(u64),
        Decimal(String),
    }

    impl Slot {
        fn value<E: Error>(self) -> Result<u64, E> {
            match self {
                Slot::Number(slot) => Ok(slot),
                Slot::Decimal(text) if text.bytes().all(|b| b.is_ascii_digit()) => {
                    text.parse().map_err(E::custom)
                }
                Slot::Decimal(text) => Err(E::custom(format!("not a slot: {text:?}"))),
            }
        }
    }

    pub(crate) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        Slot::deserialize(d)?.value()
    }

    pub(crate) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<Slot>::deserialize(d)?.map(Slot::value).transpose()
    }

    pub(crate) fn decimal<S: serde::Serializer>(slot: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&slot.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_or_garbled_transaction_is_refused_in_either_kind() {
        let malformed = SchemeError::Malformed("transaction");
        let oversized = "A".repeat(4096);
        for text in ["!!", oversized.as_str()] {
            assert_eq!(
                decode_transaction::<Transaction>(text),
                Err(malformed.clone())
            );
            assert_eq!(
                decode_transaction::<VersionedTransaction>(text).map(|_| ()),
                Err(malformed.clone())
            );
        }
    }
}
