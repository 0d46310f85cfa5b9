//! The gate's decision on a `batch-settlement` payment, apart from the reference-keyed
//! decision of the other schemes: a voucher is checked with no ledger call and committed
//! by one conditional update of its channel's row; a deposit opens a channel (or tops one
//! up) on chain before its request is served; a refund closes the channel and serves
//! nothing.

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use serde_json::{Map, Value};
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;
use x402_protocol::scheme::batch::{
    read_authorization, read_channel, read_voucher, validate_open, validate_top_up,
    BatchAuthorization, BatchPayload, BatchTerms, BatchVoucher, Channel, ChannelConfig,
    ChannelState, Deposit, ReadAuthorization, ReadVoucher, VoucherState,
};
use x402_protocol::scheme::channel::{
    token_account, treasury_owner, ChannelAccount, ChannelStatus, CHANNEL_ACCOUNT_BYTES,
};
use x402_protocol::scheme::decode_transaction;
use x402_protocol::{unix_now, Reference};

use super::claim::close_channel;
use super::operator;
use super::{channel_key, terms_for, BatchPayment};
use crate::context::{store_unavailable, Context};
use crate::error::{Reason, Refusal};
use crate::metrics::LedgerCall;
use crate::model::{BatchCommit, Price, Scheme, SettledPayment};
use crate::scheme::channel::{read_channel as channel_on_chain, submit_and_read, Sent};
use crate::scheme::submission::{self, Submission, Submitted};
use crate::scheme::{fee_cost, Landing};
use crate::sponsorship::Parties;
use crate::store::{BatchChannel, BatchStatus};

/// The token account rent the channel's escrow costs at most (an ATA with Token-2022's
/// immutable-owner extension).
const ESCROW_ACCOUNT_BYTES: usize = 170;

/// What a `batch-settlement` payment comes to at the gate.
#[derive(Debug)]
pub enum Admitted {
    /// Its voucher is committed: serve the request.
    Serve(SettledPayment),
    /// A refund: the channel is closed; answer with its settlement, serve nothing.
    Closed(SettledPayment),
}

/// Decides a `batch-settlement` payment for a request at `price`, in the mode its
/// channel names: a voucher (client mode) or a proof (server mode) pays it.
pub async fn admit_batch(
    cx: &Context,
    price: &Price,
    payment: BatchPayment,
) -> Result<Admitted, Refusal> {
    let payload = payment.0;
    let terms = terms_for(cx, price.amount, payload.channel_config())?;
    let channel = read_channel(payload.channel_config(), &terms)?;
    if !channel.server_signed && Some(channel.payer_authorizer) == operator_key(cx) {
        // A client-mode channel our operator signs for: the two modes must not share a
        // channel, or the operator's vouchers would pay as the buyer's.
        return Err(Refusal::new(Reason::BatchVoucherSignature)
            .message("a client-mode channel's vouchers are the buyer's own"));
    }
    let now = unix_now();
    match payload {
        BatchPayload::Voucher { voucher, .. } => {
            let read = read_voucher(&voucher, &channel, &terms)?;
            accept(cx, &terms, &channel, &read)
                .await
                .map(Admitted::Serve)
        }
        BatchPayload::Authorization { authorization, .. } => {
            let proof = read_authorization(&authorization, &channel, &terms, terms.amount, now)?;
            operator::hold(cx, &terms, &channel, &proof, None)
                .await
                .map(Admitted::Serve)
        }
        BatchPayload::Deposit {
            voucher,
            authorization,
            deposit,
            ..
        } => {
            let pays = Pays::read(&terms, &channel, voucher, authorization, terms.amount, now)?;
            deposit_and_accept(cx, &terms, &channel, &pays, &deposit)
                .await
                .map(Admitted::Serve)
        }
        BatchPayload::Refund {
            voucher,
            authorization,
            transaction,
            ..
        } => {
            if transaction.is_some() {
                // Our own binding is always at hand: the cooperative close is available.
                return Err(Refusal::new(Reason::BatchCloseState).message(
                    "this seller closes cooperatively: send the refund without a transaction",
                ));
            }
            let pays = Pays::read(&terms, &channel, voucher, authorization, 0, now)?;
            refund(cx, &pays).await.map(Admitted::Closed)
        }
    }
}

/// The operator's key, when the gate offers the server mode.
fn operator_key(cx: &Context) -> Option<Pubkey> {
    cx.settings()
        .batch
        .operator
        .as_ref()
        .map(|operator| operator.pubkey())
}

/// What pays a deposit's request or asks a refund, read for the channel's mode: the
/// buyer's voucher (client mode) or its proof (server mode), never both.
#[derive(Debug)]
pub(super) enum Pays {
    Voucher(ReadVoucher),
    Proof(ReadAuthorization),
}

impl Pays {
    /// Reads what the payload carries for `channel` under `terms`; a proof must authorize
    /// `amount`.
    pub(super) fn read(
        terms: &BatchTerms,
        channel: &Channel,
        voucher: Option<BatchVoucher>,
        authorization: Option<BatchAuthorization>,
        amount: u64,
        now: i64,
    ) -> Result<Pays, Refusal> {
        let wrong = |what: &str| Refusal::new(Reason::BatchPayloadType).message(what.to_string());
        match (channel.server_signed, voucher, authorization) {
            (false, Some(voucher), None) => {
                Ok(Pays::Voucher(read_voucher(&voucher, channel, terms)?))
            }
            (true, None, Some(proof)) => Ok(Pays::Proof(read_authorization(
                &proof, channel, terms, amount, now,
            )?)),
            (false, _, _) => Err(wrong(
                "the client mode's payload carries a voucher, not a proof",
            )),
            (true, _, _) => Err(wrong(
                "the server mode's payload carries a proof, not a voucher",
            )),
        }
    }

    /// The client mode's voucher.
    pub(super) fn voucher(&self) -> Option<ReadVoucher> {
        match self {
            Pays::Voucher(voucher) => Some(*voucher),
            Pays::Proof(_) => None,
        }
    }

    /// The channel it names.
    pub(super) fn channel(&self) -> Pubkey {
        match self {
            Pays::Voucher(voucher) => voucher.channel,
            Pays::Proof(proof) => proof.channel,
        }
    }
}

/// Accepts a voucher on an open channel: it adds exactly the price to what was accepted
/// and stays within the deposit. One conditional update decides it, so a voucher is
/// accepted once, however many requests (or replicas) present it.
async fn accept(
    cx: &Context,
    terms: &BatchTerms,
    channel: &Channel,
    voucher: &ReadVoucher,
) -> Result<SettledPayment, Refusal> {
    let address = voucher.channel.to_string();
    let to = voucher.cumulative;
    let Some(from) = to.checked_sub(terms.amount).filter(|_| terms.amount > 0) else {
        return Err(Refusal::new(Reason::BatchCumulativeMismatch));
    };
    let signature = voucher.signature.to_string();
    let now = unix_now();
    let accepted = cx
        .store()
        .accept_voucher(&address, from, to, &signature, None, now)
        .await
        .map_err(store_unavailable)?;
    match accepted {
        Some((deposit, claimed)) => {
            cx.metrics().voucher_accepted();
            Ok(settled(
                cx,
                channel,
                BatchCommit {
                    channel: voucher.channel,
                    from,
                    to,
                    deposit,
                    claimed,
                    moved: None,
                    closed: false,
                    held: None,
                    voucher: None,
                },
                None,
            ))
        }
        None => Err(why_not_accepted(cx, &address, from, to).await),
    }
}

/// Why a voucher moving `address` from `from` to `to` was not accepted, from the
/// channel's row: an unknown channel, one closing, a deposit too small, or another
/// accepted amount (answered with the seller's state and the buyer's own voucher for it,
/// to resynchronize).
async fn why_not_accepted(cx: &Context, address: &str, from: u64, to: u64) -> Refusal {
    let row = match cx.store().batch_channel(address).await {
        Ok(row) => row,
        Err(error) => return store_unavailable(error),
    };
    let Some(row) = row else {
        return Refusal::new(Reason::BatchChannelState)
            .message("no open channel here: open one with a deposit");
    };
    match row.status {
        BatchStatus::Open => {}
        BatchStatus::Opening => {
            return Refusal::new(Reason::SponsorshipBusy)
                .message("the channel's open is still landing: retry the same payment")
        }
        BatchStatus::Closing | BatchStatus::Closed => {
            return Refusal::new(Reason::BatchChannelClosing)
                .message("the channel is closing: open a new one")
        }
    }
    if row.charged == from && to > row.deposit {
        return Refusal::new(Reason::BatchCumulativeExceedsDeposit)
            .message("the voucher exceeds the channel's deposit: top it up")
            .correction(correction(&row));
    }
    Refusal::new(Reason::BatchCumulativeMismatch)
        .message("the voucher's cumulative amount is not what this seller accepted plus the price")
        .correction(correction(&row))
}

/// The corrective fields of a challenge for `row`'s channel: the seller's state, and the
/// buyer's own voucher for what it accepted, which the buyer checks before it adopts it.
pub(super) fn correction(row: &BatchChannel) -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert(
        "channelState".into(),
        serde_json::to_value(channel_state(row)).expect("serializable"),
    );
    if let Some(signature) = &row.signature {
        let state = VoucherState {
            signed_max_claimable: row.charged.to_string(),
            expires_at: 0,
            signature: signature.clone(),
        };
        extra.insert(
            "voucherState".into(),
            serde_json::to_value(state).expect("serializable"),
        );
    }
    extra
}

fn channel_state(row: &BatchChannel) -> ChannelState {
    ChannelState {
        channel_id: row.channel.clone(),
        balance: row.deposit.to_string(),
        total_claimed: row.claimed.to_string(),
        withdraw_requested_at: 0,
        charged_cumulative_amount: Some(row.charged.to_string()),
    }
}

/// A deposit: the `open` of a new channel, or the `top_up` of an open one; either lands
/// before the request it pays is accepted (its voucher committed, or in the server mode
/// its ceiling held).
async fn deposit_and_accept(
    cx: &Context,
    terms: &BatchTerms,
    channel: &Channel,
    pays: &Pays,
    deposit: &Deposit,
) -> Result<SettledPayment, Refusal> {
    let malformed = |what: &str| Refusal::new(Reason::InvalidPayload).message(what.to_string());
    let (amount, transaction) = read_deposit(deposit)?;
    let policy = cx.sponsor_policy()?;
    let address = pays.channel();
    let row = cx
        .store()
        .batch_channel(&address.to_string())
        .await
        .map_err(store_unavailable)?;
    let (submission, from, deposit_before) = match row {
        None => {
            let first = match pays {
                Pays::Voucher(voucher) => voucher.cumulative,
                // The deposit must hold the first request's ceiling.
                Pays::Proof(_) => terms.amount,
            };
            if first != terms.amount {
                return Err(Refusal::new(Reason::BatchCumulativeMismatch)
                    .message("a new channel's first voucher is for the price"));
            }
            if first > amount {
                return Err(Refusal::new(Reason::BatchCumulativeExceedsDeposit));
            }
            validate_open(&transaction, terms, channel, amount, &policy)?;
            check_ready(cx, terms, channel, &address).await?;
            (
                DepositSubmission::open(cx, terms, channel, pays, transaction, amount),
                0,
                0,
            )
        }
        Some(row) if row.status == BatchStatus::Open => {
            let from = row.charged;
            let after = row
                .deposit
                .checked_add(amount)
                .filter(|&d| i64::try_from(d).is_ok())
                .ok_or_else(|| malformed("payload.deposit.amount: too large"))?;
            // What the request needs of the deposit: the new total, or the ceiling on top
            // of what was charged and is held.
            let needs = match pays {
                Pays::Voucher(voucher) => {
                    if voucher.cumulative != from.saturating_add(terms.amount) {
                        return Err(Refusal::new(Reason::BatchCumulativeMismatch)
                            .correction(correction(&row)));
                    }
                    voucher.cumulative
                }
                Pays::Proof(_) => from
                    .saturating_add(row.reserved)
                    .saturating_add(terms.amount),
            };
            if needs > after {
                return Err(Refusal::new(Reason::BatchCumulativeExceedsDeposit));
            }
            // A top-up costs our fee payer a transaction: only when the deposit needs it.
            if needs <= row.deposit {
                return Err(Refusal::new(Reason::BatchSetupTransaction)
                    .message("the deposit covers this request: pay it without a top-up"));
            }
            validate_top_up(&transaction, terms, channel, amount, &policy)?;
            (
                DepositSubmission::top_up(cx, terms, channel, pays, transaction, amount, after),
                from,
                row.deposit,
            )
        }
        Some(row) if row.status == BatchStatus::Opening => {
            return complete_open(cx, terms, channel, pays, &row).await;
        }
        Some(_) => return Err(Refusal::new(Reason::BatchChannelClosing)),
    };
    let (mut settled, _) = submission::settle(cx, &submission).await?;
    let now = unix_now();
    let voucher = match pays {
        Pays::Voucher(voucher) => voucher,
        Pays::Proof(proof) => {
            if let (true, Some(commit)) = (deposit_before > 0, &settled.batch) {
                // What the chain holds now: two top-ups may land in any order.
                cx.store()
                    .raise_batch_deposit(&address.to_string(), commit.deposit, now)
                    .await
                    .map_err(store_unavailable)?;
            }
            return operator::hold(cx, terms, channel, proof, Some(settled)).await;
        }
    };
    if deposit_before > 0 {
        // The top-up landed: its voucher and the larger deposit are committed together.
        let accepted = cx
            .store()
            .accept_voucher(
                &address.to_string(),
                from,
                voucher.cumulative,
                &voucher.signature.to_string(),
                Some((deposit_before, deposit_before + amount)),
                now,
            )
            .await
            .map_err(store_unavailable)?;
        let Some((deposit, claimed)) = accepted else {
            // Another request moved the channel meanwhile: the deposit stands, this voucher
            // does not.
            return Err(why_not_accepted(cx, &address.to_string(), from, voucher.cumulative).await);
        };
        if let Some(commit) = settled.batch.as_mut() {
            commit.deposit = deposit;
            commit.claimed = claimed;
        }
    }
    Ok(settled)
}

/// A deposit's amount (positive, within a `BIGINT`) and its transaction, read.
pub(super) fn read_deposit(deposit: &Deposit) -> Result<(u64, VersionedTransaction), Refusal> {
    let malformed = |what: &str| Refusal::new(Reason::InvalidPayload).message(what.to_string());
    let amount = deposit
        .amount
        .parse::<u64>()
        .ok()
        .filter(|&a| a > 0 && i64::try_from(a).is_ok())
        .ok_or_else(|| malformed("payload.deposit.amount: a positive decimal amount"))?;
    let transaction = decode_transaction(&deposit.transaction)
        .map_err(|e| malformed(&format!("payload.deposit.transaction: {e}")))?;
    Ok((amount, transaction))
}

/// The same deposit again while its channel's row is still opening (its answer was lost,
/// or a 503 asked for the retry): once the `open` is on chain, binding what the payment
/// states, the channel is marked open with this first voucher (or, in the server mode,
/// its first request held); until then, retry.
async fn complete_open(
    cx: &Context,
    terms: &BatchTerms,
    channel: &Channel,
    pays: &Pays,
    row: &BatchChannel,
) -> Result<SettledPayment, Refusal> {
    let landing = || {
        Refusal::new(Reason::SponsorshipBusy)
            .message("the channel's open is still landing: retry the same payment")
    };
    let address = pays.channel();
    let Some((account, _)) = channel_on_chain(cx, &address).await? else {
        return Err(landing());
    };
    let first = match pays {
        Pays::Voucher(voucher) => Some(voucher),
        Pays::Proof(_) => None,
    };
    if account.status != ChannelStatus::Open
        || account.deposit != row.deposit
        || !binds(&account, terms, channel)
        || first.is_some_and(|v| v.cumulative != terms.amount)
    {
        return Err(landing());
    }
    let now = unix_now();
    let signature = first.map(|v| v.signature.to_string());
    let opened = cx
        .store()
        .open_batch_channel(
            &row.channel,
            account.deposit,
            first.map(|v| v.cumulative).zip(signature.as_deref()),
            now,
        )
        .await
        .map_err(store_unavailable)?;
    if !opened {
        return Err(why_not_accepted(cx, &row.channel, 0, terms.amount).await);
    }
    let commit = BatchCommit {
        channel: address,
        from: 0,
        to: first.map_or(0, |v| v.cumulative),
        deposit: account.deposit,
        claimed: account.settled,
        moved: Some(account.deposit),
        closed: false,
        held: None,
        voucher: None,
    };
    let settled = settled(cx, channel, commit, None);
    match pays {
        Pays::Voucher(_) => Ok(settled),
        Pays::Proof(proof) => operator::hold(cx, terms, channel, proof, Some(settled)).await,
    }
}

/// Refuses a channel that exists on chain already, and one whose claims could not pay
/// out: the payee's and the treasury's token accounts must exist, or the deposit would
/// sit in escrow until the buyer takes it back.
pub(super) async fn check_ready(
    cx: &Context,
    terms: &BatchTerms,
    channel: &Channel,
    address: &Pubkey,
) -> Result<(), Refusal> {
    let plan = channel.plan(terms, 0);
    let ata = |owner: &Pubkey| token_account(&plan, owner);
    let accounts = cx
        .ledger_call(
            LedgerCall::Account,
            cx.ledger().accounts(&[
                *address,
                ata(&terms.pay_to),
                ata(&treasury_owner(cx.settings().network.cluster())),
            ]),
        )
        .await?;
    if accounts[0].is_some() {
        return Err(
            Refusal::new(Reason::BatchChannelState).message("the channel exists on chain already")
        );
    }
    if accounts[1..].iter().any(Option::is_none) {
        tracing::error!(
            "a batch-settlement deposit cannot be claimed: the payee's or the treasury's token account is missing"
        );
        return Err(Refusal::new(Reason::BatchSettlementNotReady));
    }
    Ok(())
}

/// What a deposit may cost our fee payer: its fee, and for an `open` the channel's and
/// escrow's rent (which `distribute` and `reclaim` return) and the close's fee to come.
pub(super) fn deposit_cost(cx: &Context, transaction: &VersionedTransaction, opens: bool) -> u64 {
    let fee = fee_cost(cx, transaction.signatures.len());
    match opens {
        true => fee
            .saturating_add(fee_cost(cx, 1))
            .saturating_add(deposit_rent(opens)),
        false => fee,
    }
}

/// The rent an `open` deposits in the channel and its escrow; none for a `top_up`.
pub(super) fn deposit_rent(opens: bool) -> u64 {
    if !opens {
        return 0;
    }
    let rent = anchor_lang::solana_program::rent::Rent::default();
    rent.minimum_balance(CHANNEL_ACCOUNT_BYTES)
        .saturating_add(rent.minimum_balance(ESCROW_ACCOUNT_BYTES))
}

/// `transaction` with our fee payer's signature in its first slot (it was checked to be
/// the fee payer's).
pub(super) fn co_signed(
    cx: &Context,
    mut transaction: VersionedTransaction,
) -> VersionedTransaction {
    let fee_payer = cx
        .settings()
        .fee_payer
        .as_ref()
        .expect("a sponsor policy has a fee payer");
    transaction.signatures[0] = fee_payer.sign_message(&transaction.message.serialize());
    transaction
}

/// A checked deposit, co-signed, waiting to be submitted: an `open` or a `top_up`.
#[derive(Debug)]
struct DepositSubmission {
    transaction: VersionedTransaction,
    channel: Channel,
    terms: BatchTerms,
    address: Pubkey,
    /// The client mode's voucher for the request it pays; none in the server mode.
    voucher: Option<ReadVoucher>,
    /// The deposit it adds.
    amount: u64,
    /// The channel's deposit once it landed.
    deposit_after: u64,
    opens: bool,
    key: Reference,
}

impl DepositSubmission {
    fn open(
        cx: &Context,
        terms: &BatchTerms,
        channel: &Channel,
        pays: &Pays,
        transaction: VersionedTransaction,
        amount: u64,
    ) -> Self {
        let address = pays.channel();
        DepositSubmission {
            transaction: co_signed(cx, transaction),
            channel: *channel,
            terms: terms.clone(),
            address,
            voucher: pays.voucher(),
            amount,
            deposit_after: amount,
            opens: true,
            key: channel_key(&address.to_string()),
        }
    }

    fn top_up(
        cx: &Context,
        terms: &BatchTerms,
        channel: &Channel,
        pays: &Pays,
        transaction: VersionedTransaction,
        amount: u64,
        deposit_after: u64,
    ) -> Self {
        let transaction = co_signed(cx, transaction);
        let address = pays.channel();
        // One top-up of a channel at a time; each its own lease.
        let key = channel_key(&format!("{}:{}", address, transaction.signatures[0]));
        DepositSubmission {
            transaction,
            channel: *channel,
            terms: terms.clone(),
            address,
            voucher: pays.voucher(),
            amount,
            deposit_after,
            opens: false,
            key,
        }
    }

    fn record(&self) -> BatchChannel {
        let now = unix_now();
        BatchChannel {
            channel: self.address.to_string(),
            config: serde_json::to_string(&self.channel.config()).expect("serializable"),
            fee_payer: self.terms.fee_payer.to_string(),
            token_program: self.terms.token_program.to_string(),
            deposit: self.amount,
            charged: 0,
            signature: None,
            claimed: 0,
            paid: 0,
            status: BatchStatus::Opening,
            requests: 0,
            active_at: now,
            updated_at: now,
            reserved: 0,
        }
    }
}

#[async_trait]
impl Submission for DepositSubmission {
    fn parties(&self) -> Parties {
        Parties {
            payer: self.channel.payer,
            source: token_account(&self.channel.plan(&self.terms, 0), &self.channel.payer),
        }
    }

    fn key(&self) -> Reference {
        self.key
    }

    /// The transaction's fee, and for an `open` the channel's and escrow's rent, which
    /// `distribute` and `reclaim` return, and the close's fee to come.
    fn cost(&self, cx: &Context) -> u64 {
        deposit_cost(cx, &self.transaction, self.opens)
    }

    fn rent(&self) -> u64 {
        deposit_rent(self.opens)
    }

    /// Records an opening channel, submits the deposit, and reads the channel it moved:
    /// the channel on chain decides, not the submission's answer.
    async fn submit(&self, cx: &Context) -> Submitted {
        let address = self.address;
        if self.opens {
            // Before anything lands: a channel the store does not know of is still found
            // by the janitor on chain, but one it knows of is closed by what it records.
            match cx.store().begin_batch_channel(&self.record()).await {
                Ok(true) => {}
                Ok(false) => {
                    return Submitted::refused(
                        Refusal::new(Reason::BatchChannelState)
                            .message("the channel is known already"),
                        false,
                    )
                }
                Err(error) => return Submitted::refused(store_unavailable(error), false),
            }
        }
        let signature = self.transaction.signatures[0];
        let landed = |account: &ChannelAccount| {
            account.status == ChannelStatus::Open && account.deposit >= self.deposit_after
        };
        let (account, lamports, charged) = match submit_and_read(
            cx,
            &self.transaction,
            &address,
            landed,
        )
        .await
        {
            Ok(Sent::Landed(account, lamports, charged)) => (*account, lamports, charged),
            Ok(Sent::Rejected(why)) => {
                tracing::info!(channel = %address, %why, "batch-settlement deposit rejected");
                if self.opens {
                    forget_opening(cx, &address).await;
                }
                return Submitted::refused(Refusal::new(Reason::TransactionFailed), false);
            }
            // Submitted yet not visible: the janitor adopts or closes it.
            Ok(Sent::Unseen) => {
                tracing::warn!(channel = %address, "batch-settlement deposit submitted, but not visible yet");
                return Submitted::refused(Refusal::unavailable(), false);
            }
            Err(refusal) => return Submitted::refused(refusal, false),
        };
        if !binds(&account, &self.terms, &self.channel) {
            // Not the channel this payment states: the janitor closes it at its watermark.
            tracing::error!(channel = %address, "the channel on chain does not bind the payment");
            return Submitted::refused(Refusal::new(Reason::BatchChannelState), true);
        }
        let now = unix_now();
        let (deposit, claimed) = if self.opens {
            match cx
                .store()
                .open_batch_channel(
                    &address.to_string(),
                    account.deposit,
                    self.voucher
                        .map(|v| v.cumulative)
                        .zip(signature_of(self.voucher.as_ref()).as_deref()),
                    now,
                )
                .await
            {
                Ok(true) => (account.deposit, account.settled),
                Ok(false) => {
                    return Submitted::refused(Refusal::new(Reason::BatchChannelState), true)
                }
                Err(error) => return Submitted::refused(store_unavailable(error), true),
            }
        } else {
            (account.deposit, account.settled)
        };
        let to = self.voucher.map_or(0, |v| v.cumulative);
        let commit = BatchCommit {
            channel: address,
            from: to.saturating_sub(self.terms.amount),
            to,
            deposit,
            claimed,
            moved: Some(self.amount),
            closed: false,
            held: None,
            voucher: None,
        };
        let mut settled = settled(cx, &self.channel, commit, Some(signature.to_string()));
        settled.reference = self.key;
        Submitted {
            outcome: Ok((settled, Landing::Here)),
            deposited: self.opens.then_some(lamports),
            charged,
        }
    }
}

/// A voucher's signature, base58.
fn signature_of(voucher: Option<&ReadVoucher>) -> Option<String> {
    voucher.map(|v| v.signature.to_string())
}

/// Whether a channel on chain binds what the payment states: our fee payer as payee and
/// rent payer, the buyer, its voucher signer, the mint, the grace period and slot, and a
/// payout of everything to the terms' payee (another `open` of the same address, paying
/// someone else, is not this channel).
pub(super) fn binds(account: &ChannelAccount, terms: &BatchTerms, channel: &Channel) -> bool {
    account.distribution_hash == channel.plan(terms, 0).distribution_hash()
        && account.mint == channel.token
        && account.payer == channel.payer
        && account.payee == terms.fee_payer
        && account.rent_payer == terms.fee_payer
        && account.authorized_signer == channel.payer_authorizer
        && account.grace_period == channel.withdraw_delay
        && account.open_slot == channel.open_slot
}

async fn forget_opening(cx: &Context, address: &Pubkey) {
    let now = unix_now();
    if let Err(error) = cx
        .store()
        .move_batch_channel(
            &address.to_string(),
            &[BatchStatus::Opening],
            BatchStatus::Closed,
            now,
        )
        .await
    {
        tracing::warn!(%error, "could not close a channel's record: the janitor will");
    }
}

/// The payment a batch request made, for the handler and the answer.
pub(super) fn settled(
    cx: &Context,
    channel: &Channel,
    commit: BatchCommit,
    transaction: Option<String>,
) -> SettledPayment {
    SettledPayment {
        scheme: Scheme::Batch,
        reference: channel_key(&commit.channel.to_string()),
        receipt: None,
        payer: channel.payer,
        amount: commit.to - commit.from,
        mint: channel.token,
        transaction,
        network: cx.settings().network.caip2().to_string(),
        metered: None,
        batch: Some(commit),
    }
}

/// A refund: the buyer's own voucher for exactly what was accepted asks to close. The
/// channel stops accepting vouchers first (no request is served while it closes); then
/// its latest accepted voucher is settled, the seller paid, the rest returned to the
/// buyer, all in one transaction.
async fn refund(cx: &Context, pays: &Pays) -> Result<SettledPayment, Refusal> {
    let address = pays.channel().to_string();
    let store = cx.store();
    let row = store
        .batch_channel(&address)
        .await
        .map_err(store_unavailable)?
        .ok_or_else(|| Refusal::new(Reason::BatchCloseState).message("no such channel here"))?;
    match (row.status, pays) {
        (BatchStatus::Open, Pays::Voucher(voucher)) if row.charged != voucher.cumulative => {
            return Err(Refusal::new(Reason::BatchCloseState)
                .message("the refund's voucher is not the amount this seller accepted")
                .correction(correction(&row)));
        }
        (BatchStatus::Opening, _) => return Err(Refusal::new(Reason::SponsorshipBusy)),
        _ => {}
    }
    let now = unix_now();
    store
        .stop_batch_channel(&address, now)
        .await
        .map_err(store_unavailable)?;
    // What was accepted until the channel stopped accepting: the row decides, not the
    // buyer's voucher.
    let row = store
        .batch_channel(&address)
        .await
        .map_err(store_unavailable)?
        .ok_or_else(Refusal::unavailable)?;
    if row.status == BatchStatus::Open {
        // A server-mode request is still being answered: its charge comes first.
        return Err(Refusal::new(Reason::BatchCloseState)
            .message("a request on the channel is still being answered: retry the refund"));
    }
    let closed = close_channel(cx, &row).await?;
    let channel = serde_json::from_str::<ChannelConfig>(&row.config)
        .ok()
        .and_then(|config| config.read().ok())
        .ok_or_else(Refusal::unavailable)?;
    let commit = BatchCommit {
        channel: pays.channel(),
        from: row.charged,
        to: row.charged,
        deposit: row.deposit,
        claimed: row.charged,
        moved: Some(closed.refunded),
        closed: true,
        held: None,
        voucher: None,
    };
    Ok(settled(cx, &channel, commit, closed.transaction))
}

/// Takes back the voucher of a request that was not served (its upstream failed): the
/// buyer is not charged for it.
pub async fn revert_voucher(cx: &Context, commit: &BatchCommit) {
    let now = unix_now();
    match cx
        .store()
        .revert_voucher(&commit.channel.to_string(), commit.to, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(channel = %commit.channel, "a failed request's voucher could not be taken back: a later one was accepted")
        }
        Err(error) => {
            tracing::error!(%error, channel = %commit.channel, "could not take back a failed request's voucher")
        }
    }
}
