//! The ecosystem's `batch-settlement` scheme on Solana (x402's
//! `scheme_batch_settlement_svm.md`), client mode: the chain out of the request path.
//!
//! A buyer's first request carries a deposit: its `open` is checked strictly, recorded,
//! co-signed by our fee payer (the channel's rent payer and zero-share payee) and landed
//! before the request is served, like an `exact` payment. Every later request carries a
//! voucher for the channel's new cumulative total, which is checked with no ledger call
//! (its signature, the channel it derives, the price it adds) and committed by one
//! conditional update of the channel's row before the request is served
//! ([`accept`]). A refund closes the channel: what was accepted is settled and the rest
//! goes back to the buyer at once. In the background, the latest vouchers of many
//! channels are claimed in as few transactions as fit, channels the buyer closed on chain
//! are sealed with our latest voucher, idle ones are closed, and the rent comes back
//! ([`claim`]).

pub mod accept;
pub mod claim;
pub mod facilitate;
pub mod operator;

use async_trait::async_trait;
use serde_json::{Map, Value};
use x402_protocol::scheme::batch::{
    BatchDefect, BatchOffer, BatchPayload, BatchTerms, ChannelConfig, SERVER_SIGNER,
};
use x402_protocol::wire::Offer;
use x402_protocol::Reference;

use super::{resource, sponsored_extra, PaymentScheme, Terms, Verified};
use crate::context::Context;
use crate::error::{Reason, Refusal};
use crate::model::{Price, Scheme, Target};

pub use accept::{admit_batch, revert_voucher, Admitted};
pub use claim::{claim_channels, close_channel, tend_batch_channels, BatchTended, Closed};

/// How long a buyer waits to take its deposit back after asking to close on chain, in
/// seconds: our window to seal the channel with its latest voucher. Far above the claim
/// interval, as the specification asks.
pub const WITHDRAW_DELAY_SECONDS: u32 = 3_600;

/// The deposit a challenge suggests, in requests at its price.
pub const SUGGESTED_REQUESTS: u64 = 100;

/// The `batch-settlement` scheme at the verifier.
pub struct BatchScheme;

/// What a `batch-settlement` payment must pay: each request `terms.amount`.
#[derive(Clone, Debug)]
pub struct BatchDemand {
    pub terms: BatchTerms,
}

/// The gate's terms for a request priced `amount`, in the client mode: its mint and
/// payee, our fee payer as the channel's payee and as the receiver authorizer (we close
/// our channels ourselves).
pub fn terms(cx: &Context, amount: u64) -> BatchTerms {
    let s = cx.settings();
    // `batch-settlement` is enabled only with a fee payer (checked at start).
    let fee_payer = cx.fee_payer().unwrap_or_default();
    BatchTerms {
        mint: s.mint,
        token_program: s.token_program,
        pay_to: s.pay_to,
        amount,
        fee_payer,
        receiver_authorizer: fee_payer,
        withdraw_delay: WITHDRAW_DELAY_SECONDS,
        memo: None,
        min_deposit: amount.checked_mul(SUGGESTED_REQUESTS),
        operator: None,
    }
}

/// The gate's terms in the server mode, when it has an operator: `amount` is each
/// request's ceiling, and the operator signs the vouchers.
pub fn server_terms(cx: &Context, amount: u64) -> Option<BatchTerms> {
    let operator = cx.settings().batch.operator.as_ref()?;
    Some(BatchTerms {
        operator: Some(solana_signer::Signer::pubkey(operator.as_ref())),
        ..terms(cx, amount)
    })
}

/// The gate's terms for a payment on `config`'s channel: the mode it names.
pub fn terms_for(cx: &Context, amount: u64, config: &ChannelConfig) -> Result<BatchTerms, Refusal> {
    match config.voucher_signer.as_deref() {
        Some(SERVER_SIGNER) => server_terms(cx, amount).ok_or_else(|| {
            Refusal::new(Reason::BatchPayloadType).message("this seller offers no server mode")
        }),
        _ => Ok(terms(cx, amount)),
    }
}

/// The gate's offer of `terms` for `price` at `target`.
fn offer_of(cx: &Context, price: &Price, target: &Target, terms: BatchTerms) -> Offer {
    BatchOffer {
        network: cx.settings().network.caip2().to_string(),
        terms,
        recent_blockhash: cx.blockhash(),
        recent_slot: cx.recent_slot(),
        max_idle_secs: Some(cx.settings().batch.idle_close.as_secs()),
        channel_state: None,
        voucher_state: None,
        resource: resource(price, target),
        // Never past the withdraw delay, as the specification bounds it.
        max_timeout_seconds: price.ttl.as_secs().min(u64::from(WITHDRAW_DELAY_SECONDS)),
    }
    .to_offer()
}

/// A payment in the `batch-settlement` scheme, as its payload carries it.
#[derive(Debug)]
pub struct BatchPayment(pub BatchPayload);

impl BatchPayment {
    /// The buyer it states (checked with its voucher), for the merchant's own check; none
    /// for a refund, which pays for nothing.
    pub fn paying(&self) -> Option<(anchor_lang::prelude::Pubkey, Reference)> {
        if matches!(self.0, BatchPayload::Refund { .. }) {
            return None;
        }
        let payer = self.0.channel_config().payer.parse().ok()?;
        Some((payer, channel_key(self.0.channel_id()?)))
    }
}

#[async_trait]
impl PaymentScheme for BatchScheme {
    const SCHEME: Scheme = Scheme::Batch;
    type Demand = BatchDemand;
    type Payment = BatchPayment;

    fn offer(cx: &Context, price: &Price, target: &Target, _: Reference) -> Offer {
        offer_of(cx, price, target, terms(cx, price.amount))
    }

    /// The client mode's offer, and with an operator the server mode's after it: a buyer
    /// that does not trust the operator pays the first.
    fn offers(cx: &Context, price: &Price, target: &Target, reference: Reference) -> Vec<Offer> {
        let mut offers = vec![Self::offer(cx, price, target, reference)];
        offers
            .extend(server_terms(cx, price.amount).map(|terms| offer_of(cx, price, target, terms)));
        offers
    }

    /// Our fee payer, the idle window after which we close a channel at the watermark the
    /// chain settled, and our own key as the receiver authorizer a seller may delegate
    /// closes to (then the API key that opened a channel closes it).
    fn supported(cx: &Context) -> Map<String, Value> {
        let mut extra = sponsored_extra(cx);
        extra.insert(
            "maxIdleSecs".into(),
            cx.settings().batch.idle_close.as_secs().into(),
        );
        if let Some(fee_payer) = cx.fee_payer() {
            extra.insert("receiverAuthorizer".into(), fee_payer.to_string().into());
        }
        extra
    }

    fn at_gate(cx: &Context, price: &Price, _: Reference) -> BatchDemand {
        BatchDemand {
            terms: terms(cx, price.amount),
        }
    }

    /// Not through the reference-keyed path: the facilitator takes `batch-settlement` to
    /// [`facilitate`].
    fn requested(_: &Context, _: &Offer) -> Result<BatchDemand, Refusal> {
        Err(Refusal::new(Reason::UnsupportedScheme))
    }

    fn terms(demand: &BatchDemand) -> Terms {
        Terms {
            mint: demand.terms.mint,
            pay_to: demand.terms.pay_to,
            amount: demand.terms.amount,
            expires_at: None,
        }
    }

    /// A payload: `deposit`, `voucher` (client mode), `authorization` (server mode) or
    /// `refund`. A refund that names an amount is refused: it returns the whole unused
    /// deposit.
    fn read(payload: Value) -> Result<BatchPayment, Refusal> {
        if payload.get("type").and_then(Value::as_str) == Some("refund")
            && payload.get("amount").is_some()
        {
            return Err(Refusal::new(Reason::BatchCloseAmountUnsupported));
        }
        serde_json::from_value(payload)
            .map(BatchPayment)
            .map_err(|_| {
                Refusal::new(Reason::BatchPayloadType)
                    .message("payload: not a batch-settlement payment")
            })
    }

    /// A voucher pays no challenge: the gate takes it apart ([`admit_batch`]).
    fn reference(_: &Context, _: &BatchPayment) -> Result<Reference, Refusal> {
        Err(Refusal::new(Reason::UnsupportedScheme))
    }

    fn key(payment: &BatchPayment, _: &BatchDemand) -> Reference {
        channel_key(payment.0.channel_id().unwrap_or_default())
    }

    async fn verify(
        _: &Context,
        _: BatchPayment,
        _: &BatchDemand,
        _: bool,
    ) -> Result<Verified, Refusal> {
        Err(Refusal::new(Reason::UnsupportedScheme))
    }
}

/// What a channel's `open` is leased under, and what the payments it serves are recorded
/// under: each channel opens once.
pub fn channel_key(channel: &str) -> Reference {
    use sha2::{Digest, Sha256};
    Reference(
        Sha256::new()
            .chain_update(b"batch-settlement")
            .chain_update(channel)
            .finalize()
            .into(),
    )
}

impl From<BatchDefect> for Reason {
    fn from(defect: BatchDefect) -> Self {
        match defect {
            BatchDefect::Malformed(_) => Reason::BatchPayloadType,
            BatchDefect::ChannelConfig(_) => Reason::BatchChannelState,
            BatchDefect::ChannelIdMismatch => Reason::BatchChannelIdMismatch,
            BatchDefect::FeePayerMismatch => Reason::BatchFeePayerMismatch,
            BatchDefect::ReceiverAuthorizerMismatch => Reason::BatchReceiverAuthorizerMismatch,
            BatchDefect::WithdrawDelayMismatch => Reason::BatchWithdrawDelayMismatch,
            BatchDefect::VoucherExpiry => Reason::BatchVoucherExpiry,
            BatchDefect::VoucherSignature => Reason::BatchVoucherSignature,
            BatchDefect::CumulativeMismatch => Reason::BatchCumulativeMismatch,
            BatchDefect::CumulativeExceedsDeposit => Reason::BatchCumulativeExceedsDeposit,
            BatchDefect::SetupTransaction(_) => Reason::BatchSetupTransaction,
            BatchDefect::RefundTransaction(_) => Reason::BatchRefundTransaction,
            BatchDefect::AuthorizationSignature => Reason::BatchVoucherSignature,
            BatchDefect::AuthorizationExpired => Reason::BatchVoucherExpiry,
            BatchDefect::AuthorizationAmount => Reason::BatchCumulativeMismatch,
        }
    }
}

impl From<BatchDefect> for Refusal {
    fn from(defect: BatchDefect) -> Self {
        let message = defect.to_string();
        Refusal::new(defect.into()).message(message)
    }
}
