//! The `batch-settlement` scheme on the x402 wire: the terms a channel must bind, what an
//! offer's `extra` holds, the channel configuration and the voucher a payment carries,
//! the payload's variants, and what an answer says of the channel.

use anchor_lang::prelude::Pubkey;
use serde::{Deserialize, Serialize};
use solana_hash::Hash;
use solana_transaction::versioned::VersionedTransaction;

use super::authorization::BatchAuthorization;
use super::close::CloseAuthorization;
use crate::scheme::channel::{channel_address, ChannelPlan, ChannelSeeds, Opening};
use crate::scheme::exact::MAX_MEMO_BYTES;
use crate::scheme::{
    extra_object, read_amount, read_blockhash, read_extra, read_key, Scheme, SchemeError,
};
use crate::wire::{v2, Offer};

/// The x402 scheme name.
pub const BATCH_SETTLEMENT: &str = "batch-settlement";

/// The one payment flow of the scheme: checked before serving, settled after.
const AUTHORIZATION: &str = "authorization";

/// The voucher signer of the default mode: the buyer.
pub const CLIENT_SIGNER: &str = "client";

/// The voucher signer of the server mode: the seller's operator.
pub const SERVER_SIGNER: &str = "server";

/// The forced-close grace period an offer may set, in seconds: 15 minutes to 30 days, as
/// the specification bounds it (the program takes any positive one).
pub const WITHDRAW_DELAY_RANGE: std::ops::RangeInclusive<u32> = 900..=2_592_000;

/// What a `batch-settlement` channel must bind, and what each request costs: channels of
/// `mint` paid out in full to `pay_to`, their rent and fees paid by `fee_payer` (also
/// their zero-share payee), closed cooperatively on `receiver_authorizer`'s word, a
/// buyer's withdrawal delayed by `withdraw_delay` seconds; `amount` base units a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchTerms {
    pub mint: Pubkey,
    pub token_program: Pubkey,
    pub pay_to: Pubkey,
    /// Base units each request adds to the voucher.
    pub amount: u64,
    pub fee_payer: Pubkey,
    pub receiver_authorizer: Pubkey,
    /// Seconds, in [`WITHDRAW_DELAY_RANGE`].
    pub withdraw_delay: u32,
    pub memo: Option<String>,
    /// The deposit the seller suggests, in base units: at least `amount`.
    pub min_deposit: Option<u64>,
    /// The server mode's operator, which signs the vouchers (and could take the whole
    /// deposit): `amount` is then each request's ceiling. None in the client mode.
    pub operator: Option<Pubkey>,
}

impl BatchTerms {
    /// The receiver-authorizer binding every `open` carries as a Memo of its own: the
    /// payer signs it, so the channel stays bound to this key for its life.
    pub fn binding_memo(&self) -> String {
        binding_memo(&self.receiver_authorizer)
    }
}

/// The binding Memo of a channel whose closes `receiver_authorizer` authorizes.
pub fn binding_memo(receiver_authorizer: &Pubkey) -> String {
    format!("x402:batch-settlement:svm:rcvauth:v1:{receiver_authorizer}")
}

/// The `extra` object of a `batch-settlement` offer on Solana.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchExtra {
    /// `authorization`, the only flow; absent means it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_flow: Option<String>,
    pub fee_payer: String,
    pub receiver_authorizer: String,
    /// `client` (the default) or `server` (the operator signs the vouchers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voucher_signer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    pub withdraw_delay: u64,
    pub token_program: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_blockhash: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::scheme::slot::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub recent_slot: Option<u64>,
    /// Base units, a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_deposit: Option<String>,
    /// How long the fee payer lets an open channel sit idle before it closes it at what
    /// was claimed, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle_secs: Option<u64>,
    /// A corrective answer's view of the buyer's channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_state: Option<ChannelState>,
    /// A corrective answer's proof: the buyer's own voucher for what the seller holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voucher_state: Option<VoucherState>,
}

/// A channel as the seller sees it, in an answer or a corrective challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelState {
    pub channel_id: String,
    /// The deposit, base units.
    pub balance: String,
    /// What is settled on chain.
    pub total_claimed: String,
    /// Unix seconds the buyer asked to close; zero if it did not.
    pub withdraw_requested_at: i64,
    /// What the seller has accepted, cumulatively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charged_cumulative_amount: Option<String>,
}

/// The voucher the seller holds, in a corrective challenge: the buyer checks it is its
/// own before it adopts the seller's cumulative amount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoucherState {
    pub signed_max_claimable: String,
    pub expires_at: i64,
    pub signature: String,
}

/// A channel's configuration, as every payment names it: with the offer's fee payer it
/// derives the channel's address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelConfig {
    pub payer: String,
    /// Who signs the vouchers: the channel's authorized signer.
    pub payer_authorizer: String,
    pub receiver: String,
    pub receiver_authorizer: String,
    pub token: String,
    pub withdraw_delay: u64,
    /// A decimal `u64`.
    pub salt: String,
    #[serde(deserialize_with = "crate::scheme::slot::required")]
    pub open_slot: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voucher_signer: Option<String>,
}

/// A channel configuration read: the keys and numbers it states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    pub payer: Pubkey,
    pub payer_authorizer: Pubkey,
    pub receiver: Pubkey,
    pub receiver_authorizer: Pubkey,
    pub token: Pubkey,
    pub withdraw_delay: u32,
    pub salt: u64,
    pub open_slot: u64,
    /// The server mode: the payer authorizer is the seller's operator.
    pub server_signed: bool,
}

impl Channel {
    /// The opening that created (or creates) this channel.
    pub fn opening(&self) -> Opening {
        Opening {
            payer: self.payer,
            salt: self.salt,
            open_slot: self.open_slot,
        }
    }

    /// The channel's plan under `terms`, holding `deposit`.
    pub fn plan(&self, terms: &BatchTerms, deposit: u64) -> ChannelPlan {
        ChannelPlan {
            mint: self.token,
            token_program: terms.token_program,
            pay_to: self.receiver,
            fee_payer: terms.fee_payer,
            authorized_signer: self.payer_authorizer,
            deposit,
            grace_period: self.withdraw_delay,
        }
    }

    /// The channel's address with `fee_payer` as its payee.
    pub fn address(&self, fee_payer: &Pubkey) -> Pubkey {
        channel_address(&ChannelSeeds {
            payer: self.payer,
            payee: *fee_payer,
            mint: self.token,
            authorized_signer: self.payer_authorizer,
            salt: self.salt,
            open_slot: self.open_slot,
        })
    }

    /// This channel on the wire.
    pub fn config(&self) -> ChannelConfig {
        ChannelConfig {
            payer: self.payer.to_string(),
            payer_authorizer: self.payer_authorizer.to_string(),
            receiver: self.receiver.to_string(),
            receiver_authorizer: self.receiver_authorizer.to_string(),
            token: self.token.to_string(),
            withdraw_delay: self.withdraw_delay.into(),
            salt: self.salt.to_string(),
            open_slot: self.open_slot,
            voucher_signer: self.server_signed.then(|| SERVER_SIGNER.into()),
        }
    }
}

impl ChannelConfig {
    /// The keys and numbers this configuration states; `field` names the first that is
    /// malformed.
    pub fn read(&self) -> Result<Channel, SchemeError> {
        let server_signed = match self.voucher_signer.as_deref() {
            None | Some(CLIENT_SIGNER) => false,
            Some(SERVER_SIGNER) => true,
            Some(_) => return Err(SchemeError::Malformed("channelConfig.voucherSigner")),
        };
        let salt = decimal(&self.salt).ok_or(SchemeError::Malformed("channelConfig.salt"))?;
        Ok(Channel {
            payer: read_key(&self.payer, "channelConfig.payer")?,
            payer_authorizer: read_key(&self.payer_authorizer, "channelConfig.payerAuthorizer")?,
            receiver: read_key(&self.receiver, "channelConfig.receiver")?,
            receiver_authorizer: read_key(
                &self.receiver_authorizer,
                "channelConfig.receiverAuthorizer",
            )?,
            token: read_key(&self.token, "channelConfig.token")?,
            withdraw_delay: u32::try_from(self.withdraw_delay)
                .map_err(|_| SchemeError::Malformed("channelConfig.withdrawDelay"))?,
            salt,
            open_slot: self.open_slot,
            server_signed,
        })
    }
}

/// A decimal `u64`, digits only.
pub(crate) fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A cumulative voucher on the wire: the buyer's payer authorizer signs that `channelId`
/// may settle up to `maxClaimableAmount`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchVoucher {
    pub channel_id: String,
    /// Base units, a decimal string.
    pub max_claimable_amount: String,
    /// Always zero in this scheme: a voucher never expires.
    pub expires_at: i64,
    /// Ed25519, base58.
    pub signature: String,
}

/// A deposit: how much, and the buyer's signed `open` or `top_up`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deposit {
    /// Base units, a decimal string.
    pub amount: String,
    /// Bincode, base64.
    pub transaction: String,
}

/// The `payload` of a `batch-settlement` payment. In the client mode each request carries
/// the buyer's voucher; in the server mode, the buyer's proof
/// ([`BatchAuthorization`]), and the operator signs the voucher after the answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum BatchPayload {
    /// Opens a channel (or tops one up) and pays this request.
    #[serde(rename_all = "camelCase")]
    Deposit {
        channel_config: ChannelConfig,
        /// The client mode's voucher for this request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        voucher: Option<BatchVoucher>,
        /// The server mode's proof for this request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authorization: Option<BatchAuthorization>,
        deposit: Deposit,
    },
    /// Pays this request with a voucher: nothing goes on chain.
    #[serde(rename_all = "camelCase")]
    Voucher {
        channel_config: ChannelConfig,
        voucher: BatchVoucher,
    },
    /// The server mode's request: the buyer's proof, the operator's voucher after.
    #[serde(rename_all = "camelCase")]
    Authorization {
        channel_config: ChannelConfig,
        authorization: BatchAuthorization,
    },
    /// Closes the channel: the seller settles what it accepted and the rest goes back to
    /// the buyer. No request is served.
    #[serde(rename_all = "camelCase")]
    Refund {
        channel_config: ChannelConfig,
        /// The client mode's: what the seller accepted, the buyer's latest voucher.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        voucher: Option<BatchVoucher>,
        /// The server mode's: the buyer's proof of its close intent (an amount of zero).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authorization: Option<BatchAuthorization>,
        /// A payer-signed `request_close`, when the cooperative close was unavailable.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transaction: Option<String>,
        /// The seller's close authorization, which the seller adds before it forwards the
        /// refund to its facilitator.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        close_authorization: Option<CloseAuthorization>,
    },
}

impl BatchPayload {
    /// The channel configuration every variant carries.
    pub fn channel_config(&self) -> &ChannelConfig {
        match self {
            BatchPayload::Deposit { channel_config, .. }
            | BatchPayload::Voucher { channel_config, .. }
            | BatchPayload::Authorization { channel_config, .. }
            | BatchPayload::Refund { channel_config, .. } => channel_config,
        }
    }

    /// The channel it names, by its voucher or its proof (unchecked).
    pub fn channel_id(&self) -> Option<&str> {
        let (voucher, authorization) = match self {
            BatchPayload::Deposit {
                voucher,
                authorization,
                ..
            }
            | BatchPayload::Refund {
                voucher,
                authorization,
                ..
            } => (voucher.as_ref(), authorization.as_ref()),
            BatchPayload::Voucher { voucher, .. } => (Some(voucher), None),
            BatchPayload::Authorization { authorization, .. } => (None, Some(authorization)),
        };
        voucher
            .map(|v| v.channel_id.as_str())
            .or(authorization.map(|a| a.channel_id.as_str()))
    }
}

/// A `batch-settlement` offer on Solana, as both sides understand it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOffer {
    /// The network as the offer names it (CAIP-2).
    pub network: String,
    pub terms: BatchTerms,
    pub recent_blockhash: Option<Hash>,
    pub recent_slot: Option<u64>,
    pub max_idle_secs: Option<u64>,
    pub channel_state: Option<ChannelState>,
    pub voucher_state: Option<VoucherState>,
    pub resource: v2::ResourceInfo,
    pub max_timeout_seconds: u64,
}

/// The `batch-settlement` scheme.
pub struct BatchScheme;

impl Scheme for BatchScheme {
    const NAME: &'static str = BATCH_SETTLEMENT;
    type Offer = BatchOffer;
    type Payload = BatchPayload;
    type Transaction = VersionedTransaction;

    /// Any network: the caller checks it. An offer whose grace period is out of the
    /// specification's range or shorter than its timeout is refused: a buyer must not
    /// escrow under it. An offer of the server mode is read (its operator is the buyer's
    /// to trust, or not).
    fn read_fields(offer: &Offer) -> Result<BatchOffer, SchemeError> {
        let extra: BatchExtra = read_extra(offer, "extra")?;
        if extra
            .payment_flow
            .as_deref()
            .is_some_and(|f| f != AUTHORIZATION)
        {
            return Err(SchemeError::Malformed("extra.paymentFlow"));
        }
        let operator = match (extra.voucher_signer.as_deref(), &extra.operator) {
            (None | Some(CLIENT_SIGNER), None) => None,
            (Some(SERVER_SIGNER), Some(operator)) => Some(read_key(operator, "extra.operator")?),
            _ => return Err(SchemeError::Malformed("extra.voucherSigner")),
        };
        let withdraw_delay = u32::try_from(extra.withdraw_delay)
            .ok()
            .filter(|delay| {
                WITHDRAW_DELAY_RANGE.contains(delay)
                    && u64::from(*delay) >= offer.max_timeout_seconds
            })
            .ok_or(SchemeError::Malformed("extra.withdrawDelay"))?;
        if extra
            .memo
            .as_ref()
            .is_some_and(|m| m.len() > MAX_MEMO_BYTES)
        {
            return Err(SchemeError::Malformed("extra.memo"));
        }
        let amount = read_amount(offer)?;
        let min_deposit = extra
            .min_deposit
            .as_deref()
            .map(|d| decimal(d).filter(|&d| d >= amount && d > 0))
            .map(|d| d.ok_or(SchemeError::Malformed("extra.minDeposit")))
            .transpose()?;
        Ok(BatchOffer {
            network: offer.network.clone(),
            terms: BatchTerms {
                mint: read_key(&offer.asset, "asset")?,
                token_program: read_key(&extra.token_program, "extra.tokenProgram")?,
                pay_to: read_key(&offer.pay_to, "payTo")?,
                amount,
                fee_payer: read_key(&extra.fee_payer, "extra.feePayer")?,
                receiver_authorizer: read_key(
                    &extra.receiver_authorizer,
                    "extra.receiverAuthorizer",
                )?,
                withdraw_delay,
                memo: extra.memo,
                min_deposit,
                operator,
            },
            recent_blockhash: read_blockhash(extra.recent_blockhash.as_deref())?,
            recent_slot: extra.recent_slot,
            max_idle_secs: extra.max_idle_secs,
            channel_state: extra.channel_state,
            voucher_state: extra.voucher_state,
            resource: offer.resource.clone(),
            max_timeout_seconds: offer.max_timeout_seconds,
        })
    }

    fn write_offer(offer: &BatchOffer) -> Offer {
        let terms = &offer.terms;
        let extra = BatchExtra {
            payment_flow: None,
            fee_payer: terms.fee_payer.to_string(),
            receiver_authorizer: terms.receiver_authorizer.to_string(),
            voucher_signer: terms.operator.map(|_| SERVER_SIGNER.into()),
            operator: terms.operator.map(|o| o.to_string()),
            withdraw_delay: terms.withdraw_delay.into(),
            token_program: terms.token_program.to_string(),
            memo: terms.memo.clone(),
            recent_blockhash: offer.recent_blockhash.map(|h| h.to_string()),
            recent_slot: offer.recent_slot,
            min_deposit: terms.min_deposit.map(|d| d.to_string()),
            max_idle_secs: offer.max_idle_secs,
            channel_state: offer.channel_state.clone(),
            voucher_state: offer.voucher_state.clone(),
        };
        Offer {
            scheme: BATCH_SETTLEMENT.into(),
            network: offer.network.clone(),
            amount: terms.amount.to_string(),
            asset: terms.mint.to_string(),
            pay_to: terms.pay_to.to_string(),
            max_timeout_seconds: offer.max_timeout_seconds,
            extra: extra_object(extra),
            resource: offer.resource.clone(),
        }
    }
}

impl BatchOffer {
    /// This offer on the wire.
    pub fn to_offer(&self) -> Offer {
        BatchScheme::write_offer(self)
    }

    /// Reads an offer in the `batch-settlement` scheme (any network: the caller checks
    /// it).
    pub fn from_offer(offer: &Offer) -> Result<Self, SchemeError> {
        BatchScheme::read_offer(offer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's example requirements.
    const EXAMPLE: &str = r#"{
        "scheme": "batch-settlement",
        "network": "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp",
        "amount": "1000",
        "asset": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        "payTo": "D2FV6FbXZ3RhQtrawX12ZXTnkGvHgYQwsjMCSxryWTVG",
        "maxTimeoutSeconds": 300,
        "extra": {
            "feePayer": "DWFaXaqFdWYnQKtA8fKdNRxB1z6rE6gmqxkJatznmERF",
            "receiverAuthorizer": "4zTeC5mVqWLruDexgU2mV66p9t5vCA9JyiZqdGDUspap",
            "withdrawDelay": 3600,
            "tokenProgram": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
            "minDeposit": "10000",
            "memo": "invoice-123",
            "recentBlockhash": "AGRyLqLnV5bonvQcjMXrtbVw2xWnemmNPcSsfijGVpRR",
            "recentSlot": 341000000
        }
    }"#;

    fn example() -> Offer {
        let accepted: v2::PaymentRequirements = serde_json::from_str(EXAMPLE).unwrap();
        let resource = v2::ResourceInfo {
            url: "http://shop/search".into(),
            description: None,
            mime_type: None,
        };
        Offer::from_v2(&accepted, &resource)
    }

    #[test]
    fn the_specifications_offer_reads_and_round_trips() {
        let offer = BatchOffer::from_offer(&example()).unwrap();
        assert_eq!(offer.terms.amount, 1_000);
        assert_eq!(offer.terms.min_deposit, Some(10_000));
        assert_eq!(offer.terms.withdraw_delay, 3_600);
        assert_eq!(offer.terms.memo.as_deref(), Some("invoice-123"));
        assert_eq!(offer.recent_slot, Some(341_000_000));
        assert_eq!(BatchOffer::from_offer(&offer.to_offer()), Ok(offer));
    }

    #[test]
    fn an_offer_a_buyer_must_not_escrow_under_is_refused() {
        let refused = |field: &str, value: serde_json::Value| {
            let mut offer = example();
            offer.extra.insert(field.into(), value);
            BatchOffer::from_offer(&offer).err()
        };
        let delay = Some(SchemeError::Malformed("extra.withdrawDelay"));
        assert_eq!(
            refused("withdrawDelay", 899.into()),
            delay,
            "under 15 minutes"
        );
        assert_eq!(
            refused("withdrawDelay", 2_592_001.into()),
            delay,
            "over 30 days"
        );
        let mut slow = example();
        slow.max_timeout_seconds = 3_601;
        assert_eq!(
            BatchOffer::from_offer(&slow).err(),
            delay,
            "shorter than the offer's own timeout"
        );
        assert_eq!(
            refused("voucherSigner", "server".into()),
            Some(SchemeError::Malformed("extra.voucherSigner")),
            "the server mode names its operator"
        );
        assert_eq!(
            refused(
                "operator",
                "4zTeC5mVqWLruDexgU2mV66p9t5vCA9JyiZqdGDUspap".into()
            ),
            Some(SchemeError::Malformed("extra.voucherSigner")),
            "an operator only in the server mode"
        );
        assert_eq!(
            refused("minDeposit", "999".into()),
            Some(SchemeError::Malformed("extra.minDeposit")),
            "below one request"
        );
        assert_eq!(
            refused("paymentFlow", "escrow".into()),
            Some(SchemeError::Malformed("extra.paymentFlow"))
        );
    }

    #[test]
    fn a_server_mode_offer_names_its_operator() {
        let mut offer = example();
        offer.extra.insert("voucherSigner".into(), "server".into());
        let operator = "4zTeC5mVqWLruDexgU2mV66p9t5vCA9JyiZqdGDUspap";
        offer.extra.insert("operator".into(), operator.into());
        let read = BatchOffer::from_offer(&offer).unwrap();
        assert_eq!(read.terms.operator, Some(operator.parse().unwrap()));
        assert_eq!(BatchOffer::from_offer(&read.to_offer()), Ok(read));
        assert_eq!(
            BatchOffer::from_offer(&example()).unwrap().terms.operator,
            None
        );
    }

    #[test]
    fn the_specifications_payloads_read_by_their_type() {
        let config = serde_json::json!({
            "payer": "7fUAJdStEuGbc3sM84cKRL6yYaaSstyLSU4ve5oovLS7",
            "payerAuthorizer": "7fUAJdStEuGbc3sM84cKRL6yYaaSstyLSU4ve5oovLS7",
            "receiver": "D2FV6FbXZ3RhQtrawX12ZXTnkGvHgYQwsjMCSxryWTVG",
            "receiverAuthorizer": "4zTeC5mVqWLruDexgU2mV66p9t5vCA9JyiZqdGDUspap",
            "token": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
            "withdrawDelay": 3600,
            "salt": "42",
            "openSlot": 341000000
        });
        let voucher = serde_json::json!({
            "channelId": "DWFaXaqFdWYnQKtA8fKdNRxB1z6rE6gmqxkJatznmERF",
            "maxClaimableAmount": "5000",
            "expiresAt": 0,
            "signature": "sig"
        });
        let payload: BatchPayload = serde_json::from_value(serde_json::json!({
            "type": "voucher", "channelConfig": config, "voucher": voucher
        }))
        .unwrap();
        let channel = payload.channel_config().read().unwrap();
        assert_eq!((channel.salt, channel.open_slot), (42, 341_000_000));
        assert_eq!(
            payload.channel_id(),
            Some("DWFaXaqFdWYnQKtA8fKdNRxB1z6rE6gmqxkJatznmERF")
        );
        let deposit: BatchPayload = serde_json::from_value(serde_json::json!({
            "type": "deposit", "channelConfig": config, "voucher": voucher,
            "deposit": { "amount": "100000", "transaction": "AQID" }
        }))
        .unwrap();
        assert!(matches!(deposit, BatchPayload::Deposit { .. }));
        let written = serde_json::to_value(&deposit).unwrap();
        assert_eq!(written["type"], "deposit");
        assert_eq!(
            written["channelConfig"]["openSlot"], 341_000_000,
            "a number"
        );
        // The server mode's request carries the buyer's proof, and its channel says so.
        let mut server = config.clone();
        server["voucherSigner"] = "server".into();
        let authorization: BatchPayload = serde_json::from_value(serde_json::json!({
            "type": "authorization", "channelConfig": server,
            "authorization": {
                "type": "proof", "channelId": "DWFaXaqFdWYnQKtA8fKdNRxB1z6rE6gmqxkJatznmERF",
                "payer": "7fUAJdStEuGbc3sM84cKRL6yYaaSstyLSU4ve5oovLS7",
                "requestId": "r-1", "authorizedAmount": "1000", "expiresAt": 1758215100,
                "signature": "sig"
            }
        }))
        .unwrap();
        assert!(authorization.channel_config().read().unwrap().server_signed);
        assert!(serde_json::from_value::<BatchPayload>(serde_json::json!({
            "type": "authorization", "channelConfig": server
        }))
        .is_err());
        server["voucherSigner"] = "operator".into();
        let read: ChannelConfig = serde_json::from_value(server).unwrap();
        assert_eq!(
            read.read(),
            Err(SchemeError::Malformed("channelConfig.voucherSigner"))
        );
    }
}
