//! The `upto` scheme on the x402 wire: the terms a channel must bind, what an offer's
//! `extra` holds, what a payment's `payload` holds, and the conversion between them.

use anchor_lang::prelude::Pubkey;
use serde::{Deserialize, Serialize};
use solana_hash::Hash;
use solana_transaction::versioned::VersionedTransaction;

use crate::scheme::exact::MAX_MEMO_BYTES;
use crate::scheme::{
    extra_object, read_amount, read_blockhash, read_extra, read_key, Scheme, SchemeError,
};
use crate::wire::{v2, Offer};

/// The x402 scheme name.
pub const UPTO: &str = "upto";

/// The only payment flow the scheme has on Solana.
const ESCROW: &str = "escrow";

/// What an `upto` channel must bind: a deposit of `max_amount` of `mint`, paid out in
/// full to `pay_to`, its rent and fees paid by `fee_payer` (also its zero-share payee),
/// its vouchers signed by `receiver_authorizer`, a buyer's withdrawal delayed by
/// `withdraw_delay` seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UptoTerms {
    pub mint: Pubkey,
    pub token_program: Pubkey,
    pub pay_to: Pubkey,
    /// The ceiling, in base units: the deposit.
    pub max_amount: u64,
    pub fee_payer: Pubkey,
    pub receiver_authorizer: Pubkey,
    /// Seconds, more than zero: the channel's grace period (a `u32` on chain).
    pub withdraw_delay: u32,
    pub memo: Option<String>,
}

/// The `extra` object of an `upto` offer on Solana.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UptoExtra {
    /// `escrow`, the only flow; absent means it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_flow: Option<String>,
    pub fee_payer: String,
    pub receiver_authorizer: String,
    pub withdraw_delay: u64,
    pub token_program: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    /// A blockhash to sign with, saving the client a ledger call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_blockhash: Option<String>,
    /// A decimal string on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_valid_block_height: Option<String>,
    /// A slot the client may use as the channel's `openSlot`.
    #[serde(
        default,
        deserialize_with = "crate::scheme::slot::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub recent_slot: Option<u64>,
    /// Unix seconds; now by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_after: Option<i64>,
}

/// The `payload` of an `upto` payment: the buyer's partially signed `open` and what it
/// binds, and on a claim settle only, the seller's voucher signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UptoPayload {
    /// The buyer's wallet.
    pub from: String,
    /// The signed ceiling in base units, a decimal string.
    pub max_amount: String,
    /// Unix seconds, never zero.
    pub expires_at: i64,
    pub valid_after: i64,
    /// The channel's salt, a decimal `u64`.
    pub nonce: String,
    /// The channel's open slot: written as a decimal string, as the x402 reference
    /// implementation (@x402/svm) and solana-pay-kit both read it (the specification's
    /// table says number; neither accepts one); read as either.
    #[serde(
        deserialize_with = "crate::scheme::slot::required",
        serialize_with = "crate::scheme::slot::decimal"
    )]
    pub open_slot: u64,
    /// The channel's address.
    pub channel_id: String,
    /// The escrowed amount, equal to `maxAmount`.
    pub deposit: String,
    /// The receiver authorizer, as the `open` binds it.
    pub authorized_signer: String,
    /// The partially signed `open` transaction, bincode, base64.
    pub open_transaction: String,
    /// The receiver authorizer's signature of the voucher, base58: a claim settle only.
    /// `Some(None)` when the field is there but `null`: a deposit must not carry it at
    /// all, so its presence is kept apart from its value.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub voucher_signature: Option<Option<String>>,
}

/// A field that is present, even as `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// An `upto` offer on Solana, as both sides understand it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UptoOffer {
    /// The network as the offer names it (CAIP-2).
    pub network: String,
    pub terms: UptoTerms,
    pub recent_blockhash: Option<Hash>,
    pub last_valid_block_height: Option<u64>,
    pub recent_slot: Option<u64>,
    pub valid_after: Option<i64>,
    pub resource: v2::ResourceInfo,
    pub max_timeout_seconds: u64,
}

/// The `upto` scheme.
pub struct UptoScheme;

impl Scheme for UptoScheme {
    const NAME: &'static str = UPTO;
    type Offer = UptoOffer;
    type Payload = UptoPayload;
    type Transaction = VersionedTransaction;

    /// Any network: the caller checks it.
    fn read_fields(offer: &Offer) -> Result<UptoOffer, SchemeError> {
        let extra: UptoExtra = read_extra(offer, "extra")?;
        if extra.payment_flow.as_deref().is_some_and(|f| f != ESCROW) {
            return Err(SchemeError::Malformed("extra.paymentFlow"));
        }
        let withdraw_delay = u32::try_from(extra.withdraw_delay)
            .ok()
            .filter(|&delay| delay > 0)
            .ok_or(SchemeError::Malformed("extra.withdrawDelay"))?;
        if extra
            .memo
            .as_ref()
            .is_some_and(|m| m.len() > MAX_MEMO_BYTES)
        {
            return Err(SchemeError::Malformed("extra.memo"));
        }
        let last_valid_block_height = extra
            .last_valid_block_height
            .as_deref()
            .map(|h| h.parse())
            .transpose()
            .map_err(|_| SchemeError::Malformed("extra.lastValidBlockHeight"))?;
        Ok(UptoOffer {
            network: offer.network.clone(),
            terms: UptoTerms {
                mint: read_key(&offer.asset, "asset")?,
                token_program: read_key(&extra.token_program, "extra.tokenProgram")?,
                pay_to: read_key(&offer.pay_to, "payTo")?,
                max_amount: read_amount(offer)?,
                fee_payer: read_key(&extra.fee_payer, "extra.feePayer")?,
                receiver_authorizer: read_key(
                    &extra.receiver_authorizer,
                    "extra.receiverAuthorizer",
                )?,
                withdraw_delay,
                memo: extra.memo,
            },
            recent_blockhash: read_blockhash(extra.recent_blockhash.as_deref())?,
            last_valid_block_height,
            recent_slot: extra.recent_slot,
            valid_after: extra.valid_after,
            resource: offer.resource.clone(),
            max_timeout_seconds: offer.max_timeout_seconds,
        })
    }

    fn write_offer(offer: &UptoOffer) -> Offer {
        let terms = &offer.terms;
        let extra = UptoExtra {
            payment_flow: Some(ESCROW.into()),
            fee_payer: terms.fee_payer.to_string(),
            receiver_authorizer: terms.receiver_authorizer.to_string(),
            withdraw_delay: terms.withdraw_delay.into(),
            token_program: terms.token_program.to_string(),
            memo: terms.memo.clone(),
            recent_blockhash: offer.recent_blockhash.map(|h| h.to_string()),
            last_valid_block_height: offer.last_valid_block_height.map(|h| h.to_string()),
            recent_slot: offer.recent_slot,
            valid_after: offer.valid_after,
        };
        Offer {
            scheme: UPTO.into(),
            network: offer.network.clone(),
            amount: terms.max_amount.to_string(),
            asset: terms.mint.to_string(),
            pay_to: terms.pay_to.to_string(),
            max_timeout_seconds: offer.max_timeout_seconds,
            extra: extra_object(extra),
            resource: offer.resource.clone(),
        }
    }
}

impl UptoOffer {
    /// This offer on the wire.
    pub fn to_offer(&self) -> Offer {
        UptoScheme::write_offer(self)
    }

    /// Reads an offer in the `upto` scheme (any network: the caller checks it).
    pub fn from_offer(offer: &Offer) -> Result<Self, SchemeError> {
        UptoScheme::read_offer(offer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's example of a seller that sponsors its own payments.
    const SELF_FACILITATED: &str = r#"{
        "scheme": "upto",
        "network": "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp",
        "amount": "10000",
        "asset": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        "payTo": "D2FV6FbXZ3RhQtrawX12ZXTnkGvHgYQwsjMCSxryWTVG",
        "maxTimeoutSeconds": 300,
        "extra": {
            "paymentFlow": "escrow",
            "feePayer": "DWFaXaqFdWYnQKtA8fKdNRxB1z6rE6gmqxkJatznmERF",
            "receiverAuthorizer": "DWFaXaqFdWYnQKtA8fKdNRxB1z6rE6gmqxkJatznmERF",
            "withdrawDelay": 3600,
            "tokenProgram": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
            "recentBlockhash": "AGRyLqLnV5bonvQcjMXrtbVw2xWnemmNPcSsfijGVpRR",
            "recentSlot": 341000000
        }
    }"#;

    fn example() -> Offer {
        let accepted: v2::PaymentRequirements = serde_json::from_str(SELF_FACILITATED).unwrap();
        let resource = v2::ResourceInfo {
            url: "http://shop/metered".into(),
            description: None,
            mime_type: None,
        };
        Offer::from_v2(&accepted, &resource)
    }

    #[test]
    fn the_specifications_offer_reads_and_round_trips() {
        let offer = UptoOffer::from_offer(&example()).unwrap();
        assert_eq!(offer.terms.max_amount, 10_000);
        assert_eq!(offer.terms.fee_payer, offer.terms.receiver_authorizer);
        assert_eq!(offer.terms.withdraw_delay, 3600);
        assert_eq!(offer.recent_slot, Some(341_000_000));
        assert_eq!(UptoOffer::from_offer(&offer.to_offer()), Ok(offer));
    }

    #[test]
    fn an_offer_the_scheme_cannot_keep_is_refused() {
        let refused = |field: &str, value: serde_json::Value| {
            let mut offer = example();
            offer.extra.insert(field.into(), value);
            UptoOffer::from_offer(&offer).err()
        };
        assert_eq!(
            refused("withdrawDelay", 0.into()),
            Some(SchemeError::Malformed("extra.withdrawDelay")),
            "no grace period: the buyer could withdraw before the seller settles"
        );
        assert_eq!(
            refused("withdrawDelay", (u64::from(u32::MAX) + 1).into()),
            Some(SchemeError::Malformed("extra.withdrawDelay")),
            "a grace period the program cannot hold"
        );
        assert_eq!(
            refused("paymentFlow", "push".into()),
            Some(SchemeError::Malformed("extra.paymentFlow"))
        );
        assert_eq!(
            refused("memo", "m".repeat(257).into()),
            Some(SchemeError::Malformed("extra.memo"))
        );
        assert_eq!(
            refused("lastValidBlockHeight", "soon".into()),
            Some(SchemeError::Malformed("extra.lastValidBlockHeight"))
        );
        let mut exact = example();
        exact.scheme = "exact".into();
        assert_eq!(UptoOffer::from_offer(&exact), Err(SchemeError::OtherScheme));
    }

    #[test]
    fn a_payload_carries_its_voucher_only_when_it_has_one() {
        let payload = UptoPayload {
            from: Pubkey::new_unique().to_string(),
            max_amount: "10000".into(),
            expires_at: 1_900_000_000,
            valid_after: 1_899_999_700,
            nonce: "18446744073709551615".into(),
            open_slot: 341_000_000,
            channel_id: Pubkey::new_unique().to_string(),
            deposit: "10000".into(),
            authorized_signer: Pubkey::new_unique().to_string(),
            open_transaction: "AQID".into(),
            voucher_signature: None,
        };
        let json = serde_json::to_value(&payload).unwrap();
        assert!(json.get("voucherSignature").is_none());
        let mut with_null = json.clone();
        with_null["voucherSignature"] = serde_json::Value::Null;
        let read: UptoPayload = serde_json::from_value(with_null).unwrap();
        assert_eq!(read.voucher_signature, Some(None), "present, though null");
        assert_eq!(json["openSlot"], "341000000", "a decimal string");
        assert_eq!(
            serde_json::from_value::<UptoPayload>(json.clone()).unwrap(),
            payload
        );

        // solana-pay-kit writes the slot as a decimal string.
        let mut decimal = json;
        decimal["openSlot"] = "341000000".into();
        assert_eq!(
            serde_json::from_value::<UptoPayload>(decimal.clone()).unwrap(),
            payload
        );
        for not_a_slot in ["", "+341000000", "341000000.0", "18446744073709551616"] {
            decimal["openSlot"] = not_a_slot.into();
            assert!(serde_json::from_value::<UptoPayload>(decimal.clone()).is_err());
        }
    }

    #[test]
    fn an_offer_with_its_slot_as_a_decimal_string_reads_as_solana_pay_kit_writes_it() {
        let mut offer = example();
        offer.extra["recentSlot"] = "341000000".into();
        let read = UptoOffer::from_offer(&offer).unwrap();
        assert_eq!(read.recent_slot, Some(341_000_000));
        // Written as the specification has it: a number.
        assert_eq!(read.to_offer().extra["recentSlot"], 341_000_000);
        offer.extra["recentSlot"] = "soon".into();
        assert_eq!(
            UptoOffer::from_offer(&offer),
            Err(SchemeError::Malformed("extra"))
        );
    }
}
