//! `batch-settlement` at the facilitator, for resource servers that delegate to this
//! verifier: `/verify` of any of the buyer's payloads (`deposit`, `voucher`, `refund`)
//! against the chain, and `/settle` of a deposit (the buyer's `open` or `top_up`,
//! co-signed by our fee payer and landed), a claim (`settle` of one to four channels'
//! latest vouchers), a payout (`distribute`), a seal (a channel its buyer is closing,
//! sealed with the seller's latest voucher in the grace period) and a cooperative refund.
//!
//! The seller keeps the vouchers; the facilitator keeps, per channel it opened, the
//! binding the specification asks for: the receiver authorizer the buyer's `open` named
//! and the caller that opened it, recorded before the `open` is sent (the first writer
//! wins). A seal or refund must carry that key's close authorization over exactly that
//! close, or, when the key is our own (the caller delegated closes to us), come from
//! that caller. Claims, payouts and closes touch only channels opened here, and every
//! transaction's fees are charged to the caller's budget before it is sent. The janitor
//! closes bound channels left idle past the advertised `maxIdleSecs` at the watermark
//! the chain settled, seals them after a buyer's forced close, and takes the rent back.

use std::collections::HashMap;

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use serde_json::{Map, Value};
use solana_transaction::versioned::VersionedTransaction;
use x402_protocol::scheme::batch::{
    read_authorization, read_channel, read_voucher, validate_open, validate_request_close,
    validate_top_up, BatchAuthorization, BatchOffer, BatchPayload, BatchTerms, BatchVoucher,
    Channel, ChannelConfig, ChannelState, CloseAuthorization, CloseIntent, Deposit, ReadVoucher,
    SellerPayload, MAX_CHANNELS_PER_SETTLEMENT,
};
use x402_protocol::scheme::channel::{
    distribute_instruction, seal_instruction, settle_and_seal_instructions, settle_instructions,
    signatures_paid, treasury_owner, ChannelAccount, ChannelPlan, ChannelStatus,
    PAYMENT_CHANNELS_PROGRAM,
};
use x402_protocol::scheme::{decode_transaction, SchemeError};
use x402_protocol::wire::Offer;
use x402_protocol::{unix_now, Reference};

use super::accept::{
    binds, check_ready, co_signed, deposit_cost, deposit_rent, read_deposit, Pays,
};
use super::channel_key;
use crate::context::{store_unavailable, Context};
use crate::error::{Reason, Refusal};
use crate::metrics::LedgerCall;
use crate::model::{BatchCommit, Scheme, SettledPayment};
use crate::scheme::channel::{
    fee_payer_key, read_channel as channel_on_chain, send, submit_and_read, Sent,
};
use crate::scheme::submission::{self, Submission, Submitted};
use crate::scheme::{fee_cost, Landing, Terms};
use crate::sponsorship::Parties;
use crate::store::BatchBinding;

/// What a facilitator call is about: a buyer's payload, or one its seller authored.
#[derive(Debug)]
pub enum Operation {
    Buyer(Box<BatchPayload>),
    Seller(SellerPayload),
}

impl Operation {
    /// Reads a `/verify` or `/settle` payload. A refund naming an amount is refused: it
    /// returns the whole unused deposit.
    pub fn read(payload: Value) -> Result<Operation, Refusal> {
        let kind = payload
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if kind == "refund" && payload.get("amount").is_some() {
            return Err(Refusal::new(Reason::BatchCloseAmountUnsupported));
        }
        let malformed = |_| {
            Refusal::new(Reason::BatchPayloadType)
                .message(format!("payload: not a batch-settlement `{kind}` payload"))
        };
        match kind.as_str() {
            "claim" | "settle" | "seal" => serde_json::from_value(payload)
                .map(Operation::Seller)
                .map_err(malformed),
            _ => serde_json::from_value(payload)
                .map(|payload| Operation::Buyer(Box::new(payload)))
                .map_err(malformed),
        }
    }
}

/// The caller of a facilitator call: who it is (a hash of its key), and what our fee
/// payer may still spend for it.
pub struct Caller<'a> {
    pub identity: String,
    /// Charges lamports to the caller's budget, or refuses.
    pub charge: &'a (dyn Fn(u64) -> Result<(), Refusal> + Sync),
}

/// What a facilitator call came to.
#[derive(Debug, Default)]
pub struct Facilitated {
    pub payer: Option<Pubkey>,
    /// The transaction's signature; empty when nothing was sent.
    pub transaction: String,
    /// Base units moved, as the operation counts them.
    pub amount: Option<u64>,
    pub extra: Map<String, Value>,
}

/// Reads the requirements a caller sent: ours to sponsor (our fee payer), within the
/// policy (`allows`), their grace period in the specification's range.
pub fn requested(
    cx: &Context,
    offer: &Offer,
    allows: impl FnOnce(Terms) -> Result<(), Refusal>,
) -> Result<BatchTerms, Refusal> {
    let offer = BatchOffer::from_offer(offer).map_err(|error| match error {
        SchemeError::Malformed("extra.withdrawDelay") => {
            Refusal::new(Reason::BatchWithdrawDelayOutOfRange)
        }
        other => other.into(),
    })?;
    if cx.fee_payer() != Some(offer.terms.fee_payer) {
        return Err(Refusal::new(Reason::BatchFeePayerMismatch)
            .message("extra.feePayer is not this facilitator's fee payer"));
    }
    let terms = offer.terms;
    allows(Terms {
        mint: terms.mint,
        pay_to: terms.pay_to,
        amount: terms.amount,
        expires_at: None,
    })?;
    Ok(terms)
}

/// Checks a buyer's payload against the chain without moving anything.
pub async fn verify(
    cx: &Context,
    terms: &BatchTerms,
    payload: BatchPayload,
) -> Result<Facilitated, Refusal> {
    match payload {
        BatchPayload::Deposit {
            channel_config,
            voucher,
            authorization,
            deposit,
        } => {
            let checked =
                check_deposit(cx, terms, &channel_config, voucher, authorization, &deposit).await?;
            Ok(checked.answer())
        }
        BatchPayload::Authorization {
            channel_config,
            authorization,
        } => {
            // The proof, checked so that a verifier never takes the seller's word for it;
            // the request identifier is the seller's to keep single-use.
            let channel = read_channel(&channel_config, terms)?;
            let proof =
                read_authorization(&authorization, &channel, terms, terms.amount, unix_now())?;
            let (account, least) = open_account(cx, terms, &channel, &proof.channel).await?;
            within(&channel, &account, least)
        }
        BatchPayload::Voucher {
            channel_config,
            voucher,
        } => {
            let (channel, read) = read_payment(&channel_config, &voucher, terms)?;
            let (account, least) = open_account(cx, terms, &channel, &read.channel).await?;
            if read.cumulative < least || read.cumulative <= account.settled {
                return Err(Refusal::new(Reason::BatchCumulativeMismatch).message(
                    "the voucher must be at least what the chain settled plus the price",
                ));
            }
            within(&channel, &account, read.cumulative)
        }
        BatchPayload::Refund {
            channel_config,
            voucher,
            transaction,
            ..
        } => {
            let (channel, read) = read_payment(&channel_config, &refund_voucher(voucher)?, terms)?;
            let account = bound_account(cx, terms, &channel, &read.channel).await?;
            match (bound(cx, &read.channel).await?, transaction) {
                (Some(binding), None) => {
                    check_binding(&binding, terms)?;
                    closable(&account, &read, unix_now())?;
                }
                // The buyer's own close, relayed when there is no binding to close by.
                (None, Some(transaction)) => {
                    let transaction = decode_transaction(&transaction).map_err(|e| {
                        Refusal::new(Reason::BatchRefundTransaction)
                            .message(format!("payload.transaction: {e}"))
                    })?;
                    validate_request_close(&transaction, terms, &channel, &cx.sponsor_policy()?)?;
                    if !matches!(account.status, ChannelStatus::Open | ChannelStatus::Closing) {
                        return Err(Refusal::new(Reason::BatchCloseState));
                    }
                }
                (Some(_), Some(_)) => {
                    return Err(Refusal::new(Reason::BatchCloseState).message(
                        "this facilitator closes the channel cooperatively: send the refund without a transaction",
                    ))
                }
                (None, None) => return Err(unbound()),
            }
            Ok(Facilitated {
                payer: Some(channel.payer),
                extra: verify_extra(&account),
                ..Facilitated::default()
            })
        }
    }
}

/// Settles a buyer's deposit or refund, or what the seller authored.
pub async fn settle(
    cx: &Context,
    terms: &BatchTerms,
    max_timeout_seconds: u64,
    caller: &Caller<'_>,
    operation: Operation,
) -> Result<Facilitated, Refusal> {
    match operation {
        Operation::Buyer(payload) => {
            settle_buyers(cx, terms, max_timeout_seconds, caller, *payload).await
        }
        Operation::Seller(payload) => {
            settle_sellers(cx, terms, max_timeout_seconds, caller, payload).await
        }
    }
}

/// Lands a buyer's deposit, or closes its channel on its refund.
async fn settle_buyers(
    cx: &Context,
    terms: &BatchTerms,
    max_timeout_seconds: u64,
    caller: &Caller<'_>,
    payload: BatchPayload,
) -> Result<Facilitated, Refusal> {
    match payload {
        BatchPayload::Deposit {
            channel_config,
            voucher,
            authorization,
            deposit,
        } => {
            let key = deposit_key(&deposit);
            let checked =
                check_deposit(cx, terms, &channel_config, voucher, authorization, &deposit).await?;
            land_deposit(cx, terms, caller, checked, key).await
        }
        BatchPayload::Voucher { .. } | BatchPayload::Authorization { .. } => Err(Refusal::new(
            Reason::BatchPayloadType,
        )
        .message("the resource server accepts each request itself: nothing to settle on chain")),
        BatchPayload::Refund {
            channel_config,
            voucher,
            transaction,
            close_authorization,
            ..
        } => {
            let voucher = refund_voucher(voucher)?;
            if let Some(transaction) = transaction {
                return relay_request_close(
                    cx,
                    terms,
                    caller,
                    &channel_config,
                    &voucher,
                    &transaction,
                )
                .await;
            }
            let close = Close {
                config: &channel_config,
                voucher: &voucher,
                authorization: close_authorization.as_ref(),
                max_timeout_seconds,
                seal_only: false,
            };
            close_bound(cx, terms, caller, close).await
        }
    }
}

/// Claims, pays out or seals what the seller asks.
async fn settle_sellers(
    cx: &Context,
    terms: &BatchTerms,
    max_timeout_seconds: u64,
    caller: &Caller<'_>,
    payload: SellerPayload,
) -> Result<Facilitated, Refusal> {
    match payload {
        SellerPayload::Claim { claims } => {
            let entries = claims
                .iter()
                .map(|c| (&c.channel_id, &c.channel_config, Some(&c.voucher)))
                .collect::<Vec<_>>();
            claim(cx, terms, caller, &entries).await
        }
        SellerPayload::Settle { channels } => {
            let entries = channels
                .iter()
                .map(|c| (&c.channel_id, &c.channel_config, None))
                .collect::<Vec<_>>();
            claim(cx, terms, caller, &entries).await
        }
        SellerPayload::Seal(seal) => {
            if seal.channel_id != seal.voucher.channel_id {
                return Err(Refusal::new(Reason::BatchChannelIdMismatch));
            }
            let close = Close {
                config: &seal.channel_config,
                voucher: &seal.voucher,
                authorization: Some(&seal.close_authorization),
                max_timeout_seconds,
                seal_only: true,
            };
            close_bound(cx, terms, caller, close).await
        }
    }
}

/// What a settlement is recorded under at the facilitator, so that it settles once: a
/// deposit by its transaction, a close by its channel and amount (the specification's
/// `("close", channelId, maxClaimableAmount)`). Claims and payouts are not recorded: the
/// chain refuses to move a watermark twice.
pub fn record_key(operation: &Operation) -> Option<Reference> {
    match operation {
        Operation::Buyer(payload) => match payload.as_ref() {
            BatchPayload::Deposit { deposit, .. } => Some(deposit_key(deposit)),
            // A relayed `request_close` is not recorded: its retry answers the closing
            // channel's state, as the specification asks.
            BatchPayload::Refund {
                voucher: Some(voucher),
                transaction: None,
                ..
            } => Some(close_key(voucher)),
            BatchPayload::Refund { .. } => None,
            BatchPayload::Voucher { .. } | BatchPayload::Authorization { .. } => None,
        },
        Operation::Seller(SellerPayload::Seal(seal)) => Some(close_key(&seal.voucher)),
        Operation::Seller(_) => None,
    }
}

/// A close's key: its channel and amount.
fn close_key(voucher: &BatchVoucher) -> Reference {
    channel_key(&format!(
        "close:{}:{}",
        voucher.channel_id, voucher.max_claimable_amount
    ))
}

/// A deposit's key: its transaction as the buyer sent it.
fn deposit_key(deposit: &Deposit) -> Reference {
    channel_key(&format!("deposit:{}", deposit.transaction))
}

/// The voucher a refund closes at: the buyer's, or in the server mode the operator's,
/// which the seller put in.
fn refund_voucher(voucher: Option<BatchVoucher>) -> Result<BatchVoucher, Refusal> {
    voucher.ok_or_else(|| {
        Refusal::new(Reason::BatchPayloadType).message(
            "a refund names the voucher it closes at (the server mode's, added by the seller)",
        )
    })
}

/// The configuration and voucher of a payment, read against `terms`.
fn read_payment(
    config: &ChannelConfig,
    voucher: &BatchVoucher,
    terms: &BatchTerms,
) -> Result<(Channel, ReadVoucher), Refusal> {
    let channel = read_channel(config, terms)?;
    let read = read_voucher(voucher, &channel, terms)?;
    Ok((channel, read))
}

/// The channel on chain at `address`, which must bind `channel` under `terms`.
async fn bound_account(
    cx: &Context,
    terms: &BatchTerms,
    channel: &Channel,
    address: &Pubkey,
) -> Result<ChannelAccount, Refusal> {
    match channel_on_chain(cx, address).await? {
        Some((account, _)) if binds(&account, terms, channel) => Ok(account),
        Some(_) => Err(Refusal::new(Reason::BatchChannelState)
            .message("the channel on chain does not bind these requirements")),
        None => Err(Refusal::new(Reason::BatchChannelState).message("no such channel on chain")),
    }
}

/// The open channel on chain at `address`, binding `channel` under `terms`, and the
/// least a request on it brings the total to: what the chain settled plus the price.
async fn open_account(
    cx: &Context,
    terms: &BatchTerms,
    channel: &Channel,
    address: &Pubkey,
) -> Result<(ChannelAccount, u64), Refusal> {
    let account = bound_account(cx, terms, channel, address).await?;
    if account.status != ChannelStatus::Open {
        return Err(Refusal::new(Reason::BatchChannelClosing));
    }
    let least = account.settled.saturating_add(terms.amount);
    Ok((account, least))
}

/// A request bringing `account`'s total to `total` verifies when its deposit covers it.
fn within(channel: &Channel, account: &ChannelAccount, total: u64) -> Result<Facilitated, Refusal> {
    if total > account.deposit {
        return Err(Refusal::new(Reason::BatchCumulativeExceedsDeposit));
    }
    Ok(Facilitated {
        payer: Some(channel.payer),
        extra: verify_extra(account),
        ..Facilitated::default()
    })
}

/// The binding of a channel this facilitator opened.
async fn binding(cx: &Context, address: &Pubkey) -> Result<BatchBinding, Refusal> {
    bound(cx, address).await?.ok_or_else(unbound)
}

/// The binding of `address`, if this facilitator opened it (a store that does not answer
/// is a 503, never "unbound").
async fn bound(cx: &Context, address: &Pubkey) -> Result<Option<BatchBinding>, Refusal> {
    cx.store()
        .batch_binding(cx.settings().network.caip2(), &address.to_string())
        .await
        .map_err(store_unavailable)
}

fn unbound() -> Refusal {
    Refusal::new(Reason::BatchReceiverBindingUnavailable)
        .message("this facilitator did not open the channel")
}

/// The binding must name the requirements' receiver authorizer.
fn check_binding(binding: &BatchBinding, terms: &BatchTerms) -> Result<(), Refusal> {
    if binding.receiver_authorizer != terms.receiver_authorizer.to_string() {
        return Err(Refusal::new(Reason::BatchReceiverAuthorizerMismatch));
    }
    Ok(())
}

/// The channel's state as the chain has it.
fn channel_state(account: &ChannelAccount) -> ChannelState {
    ChannelState {
        channel_id: account.address().to_string(),
        balance: account.deposit.to_string(),
        total_claimed: account.settled.to_string(),
        withdraw_requested_at: account.closure_started_at,
        charged_cumulative_amount: None,
    }
}

/// A `/verify` answer's `extra`: the channel, its deposit, what the chain settled, and
/// when its buyer asked to close (zero if not).
fn verify_extra(account: &ChannelAccount) -> Map<String, Value> {
    let state = channel_state(account);
    let mut extra = Map::new();
    extra.insert("channelId".into(), state.channel_id.into());
    extra.insert("balance".into(), state.balance.into());
    extra.insert("totalClaimed".into(), state.total_claimed.into());
    extra.insert(
        "withdrawRequestedAt".into(),
        state.withdraw_requested_at.into(),
    );
    extra
}

/// A `/settle` answer's `extra`: `channelState`.
fn settle_extra(account: &ChannelAccount) -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert(
        "channelState".into(),
        serde_json::to_value(channel_state(account)).expect("serializable"),
    );
    extra
}

/// Whether a channel may be closed at `voucher` now: open, or closing within its grace
/// period; the voucher at least what the chain settled and within the deposit.
fn closable(account: &ChannelAccount, voucher: &ReadVoucher, now: i64) -> Result<(), Refusal> {
    let state = |why: &str| Refusal::new(Reason::BatchCloseState).message(why.to_string());
    match account.status {
        ChannelStatus::Open => {}
        ChannelStatus::Closing if now < grace_ends(account) => {}
        _ => return Err(state("the channel can no longer be closed cooperatively")),
    }
    if voucher.cumulative < account.settled {
        return Err(state("the voucher is below what the chain settled"));
    }
    if voucher.cumulative > account.deposit {
        return Err(Refusal::new(Reason::BatchCumulativeExceedsDeposit));
    }
    Ok(())
}

fn grace_ends(account: &ChannelAccount) -> i64 {
    account
        .closure_started_at
        .saturating_add(i64::from(account.grace_period))
}

/// A deposit that passed every check, ready to co-sign.
struct CheckedDeposit {
    transaction: VersionedTransaction,
    channel: Channel,
    address: Pubkey,
    /// What it adds, and the channel's deposit once it landed.
    amount: u64,
    deposit_after: u64,
    /// The channel as the chain has it now; none before its `open`.
    account: Option<ChannelAccount>,
    /// The same `open` landed before (its answer was lost, or a crash came between):
    /// nothing is sent again.
    landed: bool,
}

impl CheckedDeposit {
    fn answer(&self) -> Facilitated {
        let mut extra = Map::new();
        extra.insert("channelId".into(), self.address.to_string().into());
        if let Some(account) = &self.account {
            extra = verify_extra(account);
        }
        Facilitated {
            payer: Some(self.channel.payer),
            extra,
            ..Facilitated::default()
        }
    }
}

/// Checks a deposit as the specification's sponsor must before it signs: the requirements'
/// token program owns the mint; for an `open`, the transaction exactly as the channel
/// configuration derives it (the binding Memo naming the requirements' receiver
/// authorizer), the voucher at least the price and within the deposit, the payee's and
/// treasury's token accounts there; for a `top_up`, a channel opened here, open and
/// binding the requirements, and exactly that top-up.
async fn check_deposit(
    cx: &Context,
    terms: &BatchTerms,
    config: &ChannelConfig,
    voucher: Option<BatchVoucher>,
    authorization: Option<BatchAuthorization>,
    deposit: &Deposit,
) -> Result<CheckedDeposit, Refusal> {
    let channel = read_channel(config, terms)?;
    let pays = &Pays::read(
        terms,
        &channel,
        voucher,
        authorization,
        terms.amount,
        unix_now(),
    )?;
    let malformed = |what: &str| Refusal::new(Reason::InvalidPayload).message(what.to_string());
    let address = pays.channel();
    // What the request adds to what the chain settled: the buyer's voucher, or in the
    // server mode the ceiling on top.
    let first = |settled: u64| match pays {
        Pays::Voucher(voucher) => voucher.cumulative,
        Pays::Proof(_) => settled.saturating_add(terms.amount),
    };
    let (amount, transaction) = read_deposit(deposit)?;
    let policy = cx.sponsor_policy()?;
    let accounts = cx
        .ledger_call(
            LedgerCall::Account,
            cx.ledger().accounts(&[terms.mint, address]),
        )
        .await?;
    if accounts[0]
        .as_ref()
        .is_none_or(|mint| mint.owner != terms.token_program)
    {
        return Err(Refusal::new(Reason::BatchTokenProgram));
    }
    let account = accounts[1]
        .as_ref()
        .filter(|a| a.owner == PAYMENT_CHANNELS_PROGRAM)
        .and_then(|a| ChannelAccount::read(&a.data));
    let deposit_after = match &account {
        None => {
            let first = first(0);
            if first < terms.amount || first == 0 {
                return Err(Refusal::new(Reason::BatchCumulativeMismatch)
                    .message("a new channel's first voucher is at least the price"));
            }
            if first > amount {
                return Err(Refusal::new(Reason::BatchCumulativeExceedsDeposit));
            }
            validate_open(&transaction, terms, &channel, amount, &policy)?;
            check_ready(cx, terms, &channel, &address).await?;
            amount
        }
        Some(account) => {
            let bound = binding(cx, &address).await;
            if bound.is_err() || !binds(account, terms, &channel) {
                return Err(Refusal::new(Reason::BatchChannelState)
                    .message("a top-up of a channel this facilitator did not open"));
            }
            if account.status != ChannelStatus::Open {
                return Err(Refusal::new(Reason::BatchChannelClosing));
            }
            if validate_open(&transaction, terms, &channel, amount, &policy).is_ok() {
                return Ok(CheckedDeposit {
                    transaction,
                    channel,
                    address,
                    amount,
                    deposit_after: account.deposit,
                    account: Some(*account),
                    landed: true,
                });
            }
            let after = account
                .deposit
                .checked_add(amount)
                .filter(|&d| i64::try_from(d).is_ok())
                .ok_or_else(|| malformed("payload.deposit.amount: too large"))?;
            let first = first(account.settled);
            let least = account.settled.saturating_add(terms.amount);
            if first < least || first <= account.settled {
                return Err(Refusal::new(Reason::BatchCumulativeMismatch));
            }
            if first > after {
                return Err(Refusal::new(Reason::BatchCumulativeExceedsDeposit));
            }
            validate_top_up(&transaction, terms, &channel, amount, &policy)?;
            after
        }
    };
    Ok(CheckedDeposit {
        transaction,
        channel,
        address,
        amount,
        deposit_after,
        account,
        landed: false,
    })
}

/// Lands a checked deposit: an `open` is bound first (and read back: a channel bound to
/// another receiver authorizer, or delegated to another caller, is not opened), then
/// co-signed and submitted under the sponsorship's guards and the caller's budget; the
/// channel is read again and must bind what was asked.
async fn land_deposit(
    cx: &Context,
    terms: &BatchTerms,
    caller: &Caller<'_>,
    checked: CheckedDeposit,
    key: Reference,
) -> Result<Facilitated, Refusal> {
    let network = cx.settings().network.caip2();
    if checked.landed {
        // Its binding stands: the caller that opened it is answered, once more.
        if binding(cx, &checked.address).await?.caller != caller.identity {
            return Err(Refusal::new(Reason::BatchDelegatedUnauthenticated));
        }
        let signature = co_signed(cx, checked.transaction).signatures[0];
        return Ok(Facilitated {
            payer: Some(checked.channel.payer),
            transaction: signature.to_string(),
            amount: Some(checked.amount),
            extra: checked
                .account
                .as_ref()
                .map(settle_extra)
                .unwrap_or_default(),
        });
    }
    let opens = checked.account.is_none();
    // An `open` is bound under the channel's own lease, the one the gate's opens take too:
    // the two never open one channel.
    let binding = opens.then(|| BatchBinding {
        network: network.to_string(),
        channel: checked.address.to_string(),
        receiver_authorizer: terms.receiver_authorizer.to_string(),
        caller: caller.identity.clone(),
        config: serde_json::to_string(&checked.channel.config()).expect("serializable"),
        fee_payer: terms.fee_payer.to_string(),
        token_program: terms.token_program.to_string(),
        closed: false,
        active_at: unix_now(),
    });
    let submission = FacilitatedDeposit {
        transaction: co_signed(cx, checked.transaction),
        channel: checked.channel,
        terms: terms.clone(),
        address: checked.address,
        amount: checked.amount,
        deposit_after: checked.deposit_after,
        key: match opens {
            true => channel_key(&checked.address.to_string()),
            false => key,
        },
        binding,
    };
    (caller.charge)(submission.cost(cx))?;
    let (settled, _) = submission::settle(cx, &submission).await?;
    let _ = cx
        .store()
        .touch_batch_binding(network, &checked.address.to_string(), unix_now())
        .await;
    let account = channel_on_chain(cx, &checked.address)
        .await?
        .map(|(account, _)| account);
    Ok(Facilitated {
        payer: Some(checked.channel.payer),
        transaction: settled.transaction.unwrap_or_default(),
        amount: Some(checked.amount),
        extra: account.as_ref().map(settle_extra).unwrap_or_default(),
    })
}

/// A deposit co-signed for a facilitator caller, waiting to be submitted.
#[derive(Debug)]
struct FacilitatedDeposit {
    transaction: VersionedTransaction,
    channel: Channel,
    terms: BatchTerms,
    address: Pubkey,
    amount: u64,
    deposit_after: u64,
    /// What it is leased under: an `open` by its channel (as the gate's are), a `top_up`
    /// by the buyer's transaction.
    key: Reference,
    /// An `open`'s binding, written (first writer wins) and read back before it is sent.
    binding: Option<BatchBinding>,
}

impl FacilitatedDeposit {
    fn opens(&self) -> bool {
        self.binding.is_some()
    }

    /// Binds the channel and reads the binding back: another receiver authorizer or
    /// another caller bound first, or the gate opened the channel, and nothing is sent.
    async fn bind(&self, cx: &Context, binding: &BatchBinding) -> Result<(), Refusal> {
        let stands = cx
            .store()
            .bind_batch_channel(binding)
            .await
            .map_err(store_unavailable)?
            .ok_or_else(|| {
                Refusal::new(Reason::BatchChannelState).message("the channel is the seller's own")
            })?;
        if stands.receiver_authorizer != binding.receiver_authorizer
            || stands.config != binding.config
        {
            return Err(Refusal::new(Reason::BatchReceiverAuthorizerMismatch));
        }
        if stands.caller != binding.caller {
            return Err(Refusal::new(Reason::BatchDelegatedUnauthenticated));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Submission for FacilitatedDeposit {
    fn parties(&self) -> Parties {
        let plan = self.channel.plan(&self.terms, 0);
        Parties {
            payer: self.channel.payer,
            source: x402_protocol::scheme::channel::token_account(&plan, &self.channel.payer),
        }
    }

    fn key(&self) -> Reference {
        self.key
    }

    fn cost(&self, cx: &Context) -> u64 {
        deposit_cost(cx, &self.transaction, self.opens())
    }

    fn rent(&self) -> u64 {
        deposit_rent(self.opens())
    }

    async fn submit(&self, cx: &Context) -> Submitted {
        if let Some(binding) = &self.binding {
            if let Err(refusal) = self.bind(cx, binding).await {
                return Submitted::refused(refusal, false);
            }
        }
        let signature = self.transaction.signatures[0];
        let landed = |account: &ChannelAccount| {
            account.status == ChannelStatus::Open && account.deposit >= self.deposit_after
        };
        let (account, lamports, charged) = match submit_and_read(
            cx,
            &self.transaction,
            &self.address,
            landed,
        )
        .await
        {
            Ok(Sent::Landed(account, lamports, charged)) => (*account, lamports, charged),
            Ok(Sent::Rejected(why)) => {
                tracing::info!(channel = %self.address, %why, "a facilitated batch-settlement deposit was rejected");
                return Submitted::refused(Refusal::new(Reason::TransactionFailed), false);
            }
            Ok(Sent::Unseen) => return Submitted::refused(Refusal::unavailable(), false),
            Err(refusal) => return Submitted::refused(refusal, false),
        };
        if !binds(&account, &self.terms, &self.channel) {
            tracing::error!(channel = %self.address, "the channel on chain does not bind the deposit");
            return Submitted::refused(Refusal::new(Reason::BatchChannelState), true);
        }
        let settled = SettledPayment {
            scheme: Scheme::Batch,
            reference: self.key(),
            receipt: None,
            payer: self.channel.payer,
            amount: 0,
            mint: self.channel.token,
            transaction: Some(signature.to_string()),
            network: cx.settings().network.caip2().to_string(),
            metered: None,
            batch: Some(BatchCommit {
                channel: self.address,
                from: 0,
                to: 0,
                deposit: account.deposit,
                claimed: account.settled,
                moved: Some(self.amount),
                closed: false,
                held: None,
                voucher: None,
            }),
        };
        Submitted {
            outcome: Ok((settled, Landing::Here)),
            deposited: self.opens().then_some(lamports),
            charged,
        }
    }
}

/// A channel entry of a claim or payout, checked: its configuration against the
/// requirements, its address, its voucher's signature, and a binding here.
struct Entry {
    channel: Channel,
    address: Pubkey,
    voucher: Option<ReadVoucher>,
    /// Whether the caller opened it: only its opener's claims keep it from idling.
    opener: bool,
}

/// Claims (`voucher` given: `settle`) or pays out (`distribute`) one to four channels
/// in one transaction: every entry is checked and each moves, or none does.
async fn claim(
    cx: &Context,
    terms: &BatchTerms,
    caller: &Caller<'_>,
    entries: &[(&String, &ChannelConfig, Option<&BatchVoucher>)],
) -> Result<Facilitated, Refusal> {
    if entries.is_empty() || entries.len() > MAX_CHANNELS_PER_SETTLEMENT {
        return Err(Refusal::new(Reason::BatchPayloadType)
            .message("a claim or payout names one to four channels"));
    }
    let network = cx.settings().network.caip2();
    let mut checked: Vec<Entry> = Vec::with_capacity(entries.len());
    for (channel_id, config, voucher) in entries {
        let channel = read_channel(config, terms)?;
        let address = channel.address(&terms.fee_payer);
        if channel_id.as_str() != address.to_string() {
            return Err(Refusal::new(Reason::BatchChannelIdMismatch));
        }
        if checked.iter().any(|e| e.address == address) {
            return Err(Refusal::new(Reason::BatchPayloadType).message("a channel named twice"));
        }
        let voucher = voucher
            .map(|v| read_voucher(v, &channel, terms))
            .transpose()?;
        let binding = binding(cx, &address).await?;
        check_binding(&binding, terms)?;
        checked.push(Entry {
            channel,
            address,
            voucher,
            opener: binding.caller == caller.identity,
        });
    }
    let addresses: Vec<Pubkey> = checked.iter().map(|e| e.address).collect();
    let before = read_all(cx, &addresses).await?;
    let treasury = treasury_owner(cx.settings().network.cluster());
    let mut instructions: Vec<Instruction> = Vec::new();
    for (entry, account) in checked.iter().zip(&before) {
        if !binds(account, terms, &entry.channel) {
            return Err(Refusal::new(Reason::BatchChannelState));
        }
        match &entry.voucher {
            Some(voucher) => {
                if account.status != ChannelStatus::Open {
                    return Err(Refusal::new(Reason::BatchChannelClosing)
                        .message("the buyer is closing the channel: seal it instead"));
                }
                if voucher.cumulative > account.deposit {
                    return Err(Refusal::new(Reason::BatchCumulativeExceedsDeposit));
                }
                if voucher.cumulative < account.settled {
                    return Err(Refusal::new(Reason::BatchCumulativeMismatch)
                        .message("the voucher is below what the chain settled"));
                }
                // Claimed already (a retry): nothing more to settle.
                if voucher.cumulative > account.settled {
                    instructions.extend(settle_instructions(
                        &voucher.for_program(entry.channel.payer_authorizer),
                    ));
                }
            }
            None => {
                if account.settled > account.payout_watermark {
                    let plan = entry.channel.plan(terms, account.deposit);
                    instructions.push(distribute_instruction(
                        &plan,
                        &entry.address,
                        &entry.channel.payer,
                        &treasury,
                    ));
                }
            }
        }
    }
    let transaction = if instructions.is_empty() {
        String::new()
    } else {
        (caller.charge)(own_fee(&instructions))?;
        send(
            cx,
            &instructions,
            &addresses[0].to_string(),
            "a facilitated claim",
        )
        .await?
    };
    let after = read_all(cx, &addresses).await?;
    // What moved on chain, asked by the channel's opener, keeps it from idling; a
    // stranger's call, or one that sent nothing, does not.
    let now = unix_now();
    for entry in checked
        .iter()
        .filter(|e| e.opener && !transaction.is_empty())
    {
        let _ = cx
            .store()
            .touch_batch_binding(network, &entry.address.to_string(), now)
            .await;
    }
    let claims = entries.first().is_some_and(|e| e.2.is_some());
    let mut extra = Map::new();
    let amount = if claims {
        let accepts: Vec<Value> = after
            .iter()
            .map(|a| {
                serde_json::json!({"channelId": a.address().to_string(), "totalClaimed": a.settled.to_string()})
            })
            .collect();
        extra.insert("accepts".into(), accepts.into());
        None
    } else {
        let paid = before
            .iter()
            .zip(&after)
            .map(|(b, a)| a.payout_watermark.saturating_sub(b.payout_watermark))
            .sum::<u64>();
        let channels: Vec<Value> = addresses.iter().map(|a| a.to_string().into()).collect();
        extra.insert("channels".into(), channels.into());
        Some(paid)
    };
    Ok(Facilitated {
        payer: None,
        transaction,
        amount,
        extra,
    })
}

/// What a transaction of our fee payer's own with `instructions` costs it: a signature's
/// fee for itself and for each voucher it proves.
fn own_fee(instructions: &[Instruction]) -> u64 {
    crate::scheme::LAMPORTS_PER_SIGNATURE * signatures_paid(instructions)
}

/// Every channel at `addresses`, in order: each must be a channel.
async fn read_all(cx: &Context, addresses: &[Pubkey]) -> Result<Vec<ChannelAccount>, Refusal> {
    let accounts = cx
        .ledger_call(LedgerCall::Account, cx.ledger().accounts(addresses))
        .await?;
    accounts
        .into_iter()
        .map(|account| {
            account
                .filter(|a| a.owner == PAYMENT_CHANNELS_PROGRAM)
                .and_then(|a| ChannelAccount::read(&a.data))
                .ok_or_else(|| {
                    Refusal::new(Reason::BatchChannelState).message("no such channel on chain")
                })
        })
        .collect()
}

/// A cooperative close a caller asks for: a refund (an open channel, or a closing one
/// in its grace period) or a seal (a closing one only).
struct Close<'a> {
    config: &'a ChannelConfig,
    voucher: &'a BatchVoucher,
    authorization: Option<&'a CloseAuthorization>,
    max_timeout_seconds: u64,
    seal_only: bool,
}

/// Relays the buyer's own `request_close` of a channel this facilitator cannot close
/// cooperatively (it has no binding for it): checked to be exactly that close, co-signed
/// as fee payer only, landed and read back `Closing`. A channel closing already is
/// answered with its state, nothing sent again. The channel is bound then (to the
/// requirements' receiver authorizer and the caller), so that the janitor seals it once
/// its grace period has passed and the rest goes back to the buyer.
async fn relay_request_close(
    cx: &Context,
    terms: &BatchTerms,
    caller: &Caller<'_>,
    config: &ChannelConfig,
    voucher: &BatchVoucher,
    transaction: &str,
) -> Result<Facilitated, Refusal> {
    let (channel, read) = read_payment(config, voucher, terms)?;
    let address = read.channel;
    let transaction: VersionedTransaction = decode_transaction(transaction).map_err(|e| {
        Refusal::new(Reason::BatchRefundTransaction).message(format!("payload.transaction: {e}"))
    })?;
    validate_request_close(&transaction, terms, &channel, &cx.sponsor_policy()?)?;
    let account = bound_account(cx, terms, &channel, &address).await?;
    let closing = |account: &ChannelAccount| Facilitated {
        payer: Some(channel.payer),
        transaction: String::new(),
        amount: None,
        extra: settle_extra(account),
    };
    match account.status {
        ChannelStatus::Open => {}
        ChannelStatus::Closing => return Ok(closing(&account)),
        _ => {
            return Err(
                Refusal::new(Reason::BatchCloseState).message("the channel is closed already")
            )
        }
    }
    if bound(cx, &address).await?.is_some() {
        return Err(Refusal::new(Reason::BatchCloseState).message(
            "this facilitator closes the channel cooperatively: send the refund without a transaction",
        ));
    }
    let gates = cx
        .store()
        .batch_channel(&address.to_string())
        .await
        .map_err(store_unavailable)?;
    if gates.is_some() {
        return Err(Refusal::new(Reason::BatchCloseState)
            .message("the channel is this seller's own: refund it at the seller"));
    }
    // Bound for the janitor only, which seals it once its grace period has passed: no key
    // signs for it and no caller is it, so nobody closes it cooperatively before then.
    let network = cx.settings().network.caip2();
    let relayed = BatchBinding {
        network: network.to_string(),
        channel: address.to_string(),
        receiver_authorizer: String::new(),
        caller: String::new(),
        config: serde_json::to_string(&channel.config()).expect("serializable"),
        fee_payer: terms.fee_payer.to_string(),
        token_program: terms.token_program.to_string(),
        closed: false,
        active_at: unix_now(),
    };
    let stands = cx
        .store()
        .bind_batch_channel(&relayed)
        .await
        .map_err(store_unavailable)?;
    if stands.is_none_or(|stands| stands.caller != relayed.caller) {
        return Err(Refusal::new(Reason::BatchCloseState)
            .message("the channel was bound meanwhile: refund it cooperatively"));
    }
    let fee = fee_cost(cx, transaction.signatures.len());
    (caller.charge)(fee)?;
    let transaction = co_signed(cx, transaction);
    let signature = transaction.signatures[0].to_string();
    let landed = |account: &ChannelAccount| account.status == ChannelStatus::Closing;
    match submit_and_read(cx, &transaction, &address, landed).await? {
        Sent::Landed(account, _, charged) => {
            if charged {
                cx.sponsorship().spent(fee);
            }
            Ok(Facilitated {
                transaction: signature,
                ..closing(&account)
            })
        }
        Sent::Rejected(why) => {
            tracing::info!(channel = %address, %why, "a relayed request_close was rejected");
            Err(Refusal::new(Reason::TransactionFailed))
        }
        Sent::Unseen => Err(Refusal::unavailable()),
    }
}

/// Closes a channel opened here at the seller's voucher, on the seller's word: the close
/// authorization of the channel's bound receiver authorizer, or, when that key is ours,
/// the caller that opened it. `settle_and_seal` (applying the voucher above what the
/// chain settled) and the sealed `distribute` go in one transaction: the seller is paid,
/// the rest goes back to the buyer.
async fn close_bound(
    cx: &Context,
    terms: &BatchTerms,
    caller: &Caller<'_>,
    close: Close<'_>,
) -> Result<Facilitated, Refusal> {
    let (channel, voucher) = read_payment(close.config, close.voucher, terms)?;
    let binding = binding(cx, &voucher.channel).await?;
    check_binding(&binding, terms)?;
    let now = unix_now();
    let delegated = Some(terms.receiver_authorizer) == cx.fee_payer();
    let intent = CloseIntent {
        network: cx.settings().network.caip2(),
        fee_payer: terms.fee_payer,
        channel: voucher.channel,
        max_claimable: voucher.cumulative,
        voucher_expires_at: voucher.expires_at,
    };
    if delegated {
        if binding.caller != caller.identity {
            return Err(Refusal::new(Reason::BatchDelegatedUnauthenticated));
        }
    } else {
        let latest = now.saturating_add(i64::try_from(close.max_timeout_seconds).unwrap_or(0));
        let authorized = close.authorization.is_some_and(|a| {
            now < a.valid_before
                && a.valid_before <= latest
                && a.signed_by(&terms.receiver_authorizer, &intent)
        });
        if !authorized {
            return Err(Refusal::new(Reason::BatchCloseAuthorization));
        }
    }
    let account = bound_account(cx, terms, &channel, &voucher.channel).await?;
    if close.seal_only && account.status != ChannelStatus::Closing {
        return Err(Refusal::new(Reason::BatchCloseState)
            .message("only a channel its buyer is closing is sealed"));
    }
    closable(&account, &voucher, now)?;
    let fee_payer = terms.fee_payer;
    let applied = voucher.for_program(channel.payer_authorizer);
    let mut instructions = settle_and_seal_instructions(
        &fee_payer,
        &voucher.channel,
        Some(&applied).filter(|v| v.cumulative_amount > account.settled),
    );
    let treasury = treasury_owner(cx.settings().network.cluster());
    instructions.push(distribute_instruction(
        &channel.plan(terms, account.deposit),
        &voucher.channel,
        &channel.payer,
        &treasury,
    ));
    (caller.charge)(own_fee(&instructions))?;
    let transaction = send(
        cx,
        &instructions,
        &voucher.channel.to_string(),
        "a facilitated close",
    )
    .await?;
    let network = cx.settings().network.caip2();
    let _ = cx
        .store()
        .close_batch_binding(network, &voucher.channel.to_string())
        .await;
    let settled = voucher.cumulative.max(account.settled);
    let mut final_state = account;
    final_state.settled = settled;
    final_state.payout_watermark = settled;
    let amount = match close.seal_only {
        // What the seller was paid.
        true => settled.saturating_sub(account.payout_watermark),
        // What went back to the buyer.
        false => account.deposit.saturating_sub(settled),
    };
    Ok(Facilitated {
        payer: Some(channel.payer),
        transaction,
        amount: Some(amount),
        extra: settle_extra(&final_state),
    })
}

/// The janitor's round over the channels opened for facilitator callers, given the
/// channels our fee payer funded on chain: one idle past `idle` seconds is closed at the
/// watermark the chain settled (the seller's unclaimed vouchers are forfeit, as the
/// advertised `maxIdleSecs` warns); one its buyer closed is sealed once its grace period
/// has passed (within it, the seller's seal may still come); a sealed one is paid out;
/// one gone or distributed is marked closed (its rent is the janitor's). How many were
/// closed.
pub async fn tend_bindings(
    cx: &Context,
    on_chain: &HashMap<Pubkey, ChannelAccount>,
    idle: i64,
    now: i64,
) -> Result<usize, Refusal> {
    let network = cx.settings().network.caip2();
    let bindings = cx
        .store()
        .open_batch_bindings(network)
        .await
        .map_err(store_unavailable)?;
    let fee_payer = fee_payer_key(cx)?;
    let fee_payer = solana_signer::Signer::pubkey(fee_payer.as_ref());
    let treasury = treasury_owner(cx.settings().network.cluster());
    let mut closed = 0;
    for binding in bindings {
        let Ok(address) = binding.channel.parse::<Pubkey>() else {
            continue;
        };
        let Some(account) = on_chain.get(&address) else {
            // Never landed (its blockhash long expired), or gone.
            if now
                > binding
                    .active_at
                    .saturating_add(super::claim::OPEN_LIFETIME_SECONDS)
            {
                let _ = cx
                    .store()
                    .close_batch_binding(network, &binding.channel)
                    .await;
            }
            continue;
        };
        let mut instructions = match account.status {
            ChannelStatus::Open if now > binding.active_at.saturating_add(idle) => {
                settle_and_seal_instructions(&fee_payer, &address, None)
            }
            ChannelStatus::Closing if now >= grace_ends(account) => {
                vec![seal_instruction(&address)]
            }
            ChannelStatus::Sealed => Vec::new(),
            ChannelStatus::Distributed => {
                let _ = cx
                    .store()
                    .close_batch_binding(network, &binding.channel)
                    .await;
                continue;
            }
            _ => continue,
        };
        let Some(plan) = binding_plan(&binding, account) else {
            continue;
        };
        instructions.push(distribute_instruction(
            &plan,
            &address,
            &account.payer,
            &treasury,
        ));
        match send(
            cx,
            &instructions,
            &binding.channel,
            "an idle facilitated channel's close",
        )
        .await
        {
            Ok(_) => {
                let _ = cx
                    .store()
                    .close_batch_binding(network, &binding.channel)
                    .await;
                closed += 1;
            }
            Err(refusal) => {
                tracing::warn!(channel = %binding.channel, reason = refusal.code(), "could not close a facilitated channel: the janitor retries")
            }
        }
    }
    Ok(closed)
}

/// The plan a bound channel pays out by: its configuration as bound at its open.
fn binding_plan(binding: &BatchBinding, account: &ChannelAccount) -> Option<ChannelPlan> {
    let channel = serde_json::from_str::<ChannelConfig>(&binding.config)
        .ok()?
        .read()
        .ok()?;
    Some(ChannelPlan {
        mint: account.mint,
        token_program: binding.token_program.parse().ok()?,
        pay_to: channel.receiver,
        fee_payer: account.payee,
        authorized_signer: account.authorized_signer,
        deposit: account.deposit,
        grace_period: account.grace_period,
    })
}
