//! A `batch-settlement` channel's life on chain after its `open`, from its row in the
//! grant store. Claims ([`claim_channels`]) settle the latest accepted voucher of every
//! channel that has one unclaimed and pay it out (`settle` then `distribute`, for as
//! many channels as fit in one transaction). Closes ([`close_channel`]) settle the
//! latest voucher and seal the channel, pay the seller and return the rest to the buyer
//! in one transaction. The janitor's round ([`tend_batch_channels`]) closes idle
//! channels and channels whose buyer asked to close on chain (within its grace period,
//! with our latest voucher), finishes what a crash left, adopts channels the store lost,
//! and reclaims the rent. The chain decides each step: a channel is read again before
//! anything is sent.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use solana_message::{v0, VersionedMessage};
use solana_signer::Signer;
use x402_protocol::scheme::batch::{ChannelConfig, ReadVoucher};
use x402_protocol::scheme::channel::{
    distribute_instruction, fee_payer_transaction, seal_instruction, settle_and_seal_instructions,
    settle_instructions, signatures_paid, treasury_owner, ChannelAccount, ChannelPlan,
    ChannelStatus, Voucher, PAYMENT_CHANNELS_PROGRAM,
};
use x402_protocol::{unix_now, LedgerError};

use crate::context::{store_unavailable, Context};
use crate::error::{Reason, Refusal};
use crate::metrics::LedgerCall;
use crate::scheme::channel::{fee_payer_key, funded_channels, read_channel, reclaim, send};
use crate::scheme::submission::LEASE_SECONDS;
use crate::scheme::LAMPORTS_PER_SIGNATURE;
use crate::store::{BatchChannel, BatchStatus};

/// The most a transaction may weigh on the wire.
const PACKET_BYTES: usize = 1232;

/// What one round of claims and closes did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchTended {
    /// Channels closed: settled, paid out, the rest returned to their buyer.
    pub closed: usize,
    /// Channels found on chain that the store did not know of.
    pub found: usize,
    /// Channels whose rent came back.
    pub reclaimed: usize,
}

/// What a close came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    /// The transaction that closed it; none when it was closed before.
    pub transaction: Option<String>,
    /// What went back to the buyer, in base units.
    pub refunded: u64,
}

/// A recorded channel as the program sees it: its configuration and its plan.
fn plan_of(
    row: &BatchChannel,
) -> Result<(x402_protocol::scheme::batch::Channel, ChannelPlan), Refusal> {
    let corrupt = || Refusal::new(Reason::BatchChannelState).message("a corrupt channel record");
    let channel = serde_json::from_str::<ChannelConfig>(&row.config)
        .ok()
        .and_then(|config| config.read().ok())
        .ok_or_else(corrupt)?;
    let plan = ChannelPlan {
        mint: channel.token,
        token_program: row.token_program.parse().map_err(|_| corrupt())?,
        pay_to: channel.receiver,
        fee_payer: row.fee_payer.parse().map_err(|_| corrupt())?,
        authorized_signer: channel.payer_authorizer,
        deposit: row.deposit,
        grace_period: channel.withdraw_delay,
    };
    Ok((channel, plan))
}

/// The latest accepted voucher of `row`, as the program takes it, if it has one.
fn latest_voucher(row: &BatchChannel, signer: Pubkey) -> Option<Voucher> {
    let signature = row.signature.as_deref()?.parse().ok()?;
    let read = ReadVoucher {
        channel: row.channel.parse().ok()?,
        cumulative: row.charged,
        expires_at: 0,
        signature,
    };
    Some(read.for_program(signer))
}

/// Closes `row`'s channel: its latest accepted voucher settled if the chain has not
/// settled it yet, the channel sealed, the seller paid and the buyer refunded, in one
/// transaction of our fee payer (the channel's payee). A channel the buyer asked to
/// close on chain is sealed the same way within its grace period, and by `seal` after
/// it. The row is closed once the chain shows the channel distributed (or gone).
pub async fn close_channel(cx: &Context, row: &BatchChannel) -> Result<Closed, Refusal> {
    match close_once(cx, row).await {
        // A claim that landed meanwhile moved the channel: read it again, once.
        Err(refusal) if refusal.reason() == Reason::TransactionFailed => close_once(cx, row).await,
        closed => closed,
    }
}

/// One attempt of [`close_channel`], from the channel as the chain has it now.
async fn close_once(cx: &Context, row: &BatchChannel) -> Result<Closed, Refusal> {
    let fee_payer = fee_payer_key(cx)?;
    let (channel, plan) = plan_of(row)?;
    let address: Pubkey = row
        .channel
        .parse()
        .map_err(|_| Refusal::new(Reason::BatchChannelState))?;
    let now = unix_now();
    let Some((account, _)) = read_channel(cx, &address).await? else {
        finish(cx, row, row.claimed, row.claimed, now).await?;
        return Ok(Closed {
            transaction: None,
            refunded: row.deposit.saturating_sub(row.claimed),
        });
    };
    if account.status == ChannelStatus::Distributed {
        finish(cx, row, account.settled, account.settled, now).await?;
        return Ok(Closed {
            transaction: None,
            refunded: account.deposit.saturating_sub(account.settled),
        });
    }
    let mut instructions = Vec::new();
    match account.status {
        ChannelStatus::Open => {
            let voucher = latest_voucher(row, channel.payer_authorizer)
                .filter(|v| v.cumulative_amount > account.settled);
            instructions.extend(settle_and_seal_instructions(
                &fee_payer.pubkey(),
                &address,
                voucher.as_ref(),
            ));
        }
        ChannelStatus::Closing => {
            let grace_ends = account
                .closure_started_at
                .saturating_add(i64::from(account.grace_period));
            if now < grace_ends {
                // Only we, its payee, may still apply our latest voucher.
                let voucher = latest_voucher(row, channel.payer_authorizer)
                    .filter(|v| v.cumulative_amount > account.settled);
                instructions.extend(settle_and_seal_instructions(
                    &fee_payer.pubkey(),
                    &address,
                    voucher.as_ref(),
                ));
            } else {
                instructions.push(seal_instruction(&address));
            }
        }
        ChannelStatus::Sealed | ChannelStatus::Distributed => {}
    }
    let treasury = treasury_owner(cx.settings().network.cluster());
    instructions.push(distribute_instruction(
        &plan,
        &address,
        &channel.payer,
        &treasury,
    ));
    let signature = send(cx, &instructions, &row.channel, "batch-settlement close").await?;
    let settled = match read_channel(cx, &address).await? {
        None => account.settled.max(row.charged.min(account.deposit)),
        Some((after, _)) if after.status == ChannelStatus::Distributed => after.settled,
        Some(_) => return Err(Refusal::unavailable()),
    };
    finish(cx, row, settled, settled, now).await?;
    Ok(Closed {
        transaction: Some(signature),
        refunded: account.deposit.saturating_sub(settled),
    })
}

/// Records a channel's final watermarks and closes its row.
async fn finish(
    cx: &Context,
    row: &BatchChannel,
    claimed: u64,
    paid: u64,
    now: i64,
) -> Result<(), Refusal> {
    let store = cx.store();
    store
        .record_batch_claim(&row.channel, claimed, paid, now)
        .await
        .map_err(store_unavailable)?;
    store
        .move_batch_channel(
            &row.channel,
            &[
                BatchStatus::Opening,
                BatchStatus::Open,
                BatchStatus::Closing,
            ],
            BatchStatus::Closed,
            now,
        )
        .await
        .map_err(store_unavailable)?;
    Ok(())
}

/// One channel's part of a claim: what it adds to a transaction.
struct Claim {
    row: BatchChannel,
    instructions: Vec<Instruction>,
}

/// Claims every open channel with an accepted voucher the chain has not settled (or a
/// settled amount not paid out): `settle` with the voucher's precompile, then
/// `distribute`, as many channels to a transaction as fit. Channels the chain shows
/// closing or closed are closed instead. How many channels were claimed, in how many
/// transactions.
pub async fn claim_channels(cx: &Context) -> Result<(usize, usize), Refusal> {
    // One round at a time across replicas: a second would send the same claims again,
    // to fail on chain at the fee payer's cost.
    let now = unix_now();
    let store = cx.store();
    let leased = store
        .lease_submission(CLAIM_LEASE, now, now.saturating_add(LEASE_SECONDS))
        .await
        .map_err(store_unavailable)?;
    if !leased {
        return Ok((0, 0));
    }
    let claimed = claim_round(cx, now).await;
    if let Err(error) = store.end_submission(CLAIM_LEASE).await {
        tracing::warn!(%error, "could not end the claim round's lease: it lapses by itself");
    }
    claimed
}

/// The lease a claim round holds.
const CLAIM_LEASE: &str = "batch-settlement claims";

async fn claim_round(cx: &Context, now: i64) -> Result<(usize, usize), Refusal> {
    let fee_payer = fee_payer_key(cx)?;
    let unfinished = cx
        .store()
        .unfinished_batch_channels()
        .await
        .map_err(store_unavailable)?;
    // Closes that did not finish (a refund's, an idle or a buyer's close) go first: a
    // closing channel's grace period is running.
    for row in &unfinished {
        if row.status == BatchStatus::Closing && now > row.updated_at.saturating_add(LEASE_SECONDS)
        {
            if let Err(refusal) = close_channel(cx, row).await {
                tracing::warn!(channel = %row.channel, reason = refusal.code(), "a channel's close failed again");
            }
        }
    }
    let rows: Vec<BatchChannel> = unfinished
        .into_iter()
        .filter(|row| {
            row.status == BatchStatus::Open
                && (row.charged > row.claimed || row.claimed > row.paid)
                && row.signature.is_some()
        })
        .collect();
    if rows.is_empty() {
        return Ok((0, 0));
    }
    let addresses: Vec<Pubkey> = rows.iter().filter_map(|r| r.channel.parse().ok()).collect();
    let accounts = cx
        .ledger_call(LedgerCall::Account, cx.ledger().accounts(&addresses))
        .await?;
    let treasury = treasury_owner(cx.settings().network.cluster());
    let mut claims = Vec::new();
    for (row, account) in rows.into_iter().zip(accounts) {
        let Some(account) = account
            .filter(|a| a.owner == PAYMENT_CHANNELS_PROGRAM)
            .and_then(|a| ChannelAccount::read(&a.data))
        else {
            continue;
        };
        if account.status != ChannelStatus::Open {
            // The buyer asked to close on chain: `settle` is refused now; seal it with our
            // latest voucher while we still may.
            tracing::info!(channel = %row.channel, "the buyer is closing a channel: sealing it");
            close_marked(cx, &row).await;
            continue;
        }
        let Ok((channel, plan)) = plan_of(&row) else {
            continue;
        };
        let address = account.address();
        let mut instructions = Vec::new();
        if row.charged > account.settled {
            if let Some(voucher) = latest_voucher(&row, channel.payer_authorizer) {
                instructions.extend(settle_instructions(&voucher));
            }
        }
        if row.charged > account.payout_watermark || account.settled > account.payout_watermark {
            instructions.push(distribute_instruction(
                &plan,
                &address,
                &channel.payer,
                &treasury,
            ));
        }
        if instructions.is_empty() {
            // Claimed before (another replica, or before a crash): record what the chain says.
            let _ = cx
                .store()
                .record_batch_claim(
                    &row.channel,
                    account.settled,
                    account.payout_watermark,
                    unix_now(),
                )
                .await;
            continue;
        }
        claims.push(Claim { row, instructions });
    }
    let blockhash = cx
        .ledger_call(LedgerCall::LatestBlockhash, cx.ledger().latest_blockhash())
        .await?;
    let mut claimed = 0;
    let mut transactions = 0;
    for batch in pack(&fee_payer, claims, blockhash) {
        let instructions: Vec<Instruction> =
            batch.iter().flat_map(|c| c.instructions.clone()).collect();
        transactions += 1;
        match submit(cx, &fee_payer, &instructions, blockhash).await {
            Submitted::Landed => {}
            Submitted::Unknown => continue,
            // One channel that cannot be claimed must not hold the others back: each on
            // its own, and a claim whose payout fails settled without it (the payout
            // waits for the next round; what is settled is the seller's).
            Submitted::Rejected => {
                for claim in &batch {
                    let alone = match batch.len() {
                        1 => None,
                        _ => {
                            transactions += 1;
                            Some(submit(cx, &fee_payer, &claim.instructions, blockhash).await)
                        }
                    };
                    let settles = claim.instructions.len() == 3;
                    if settles && alone.is_none_or(|s| s == Submitted::Rejected) {
                        transactions += 1;
                        let settle = &claim.instructions[..2];
                        submit(cx, &fee_payer, settle, blockhash).await;
                    }
                }
            }
        }
        claimed += record_claims(cx, &batch).await?;
    }
    Ok((claimed, transactions))
}

/// What became of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Submitted {
    Landed,
    Rejected,
    /// The ledger did not answer: it may have landed.
    Unknown,
}

/// Signs `instructions` with our fee payer and submits them.
async fn submit(
    cx: &Context,
    fee_payer: &solana_keypair::Keypair,
    instructions: &[Instruction],
    blockhash: solana_hash::Hash,
) -> Submitted {
    let transaction = fee_payer_transaction(fee_payer, instructions, blockhash);
    match cx
        .ledger_call(LedgerCall::Submit, cx.ledger().submit(&transaction))
        .await
    {
        Ok(_) => {
            cx.sponsorship()
                .spent(LAMPORTS_PER_SIGNATURE * signatures_paid(instructions));
            Submitted::Landed
        }
        Err(LedgerError::Rejected(why)) => {
            tracing::warn!(%why, "a batch-settlement claim was rejected");
            Submitted::Rejected
        }
        Err(LedgerError::Unavailable(_)) => Submitted::Unknown,
    }
}

/// Splits `claims` into transactions no heavier than a packet: each channel's
/// instructions stay together.
fn pack(
    fee_payer: &solana_keypair::Keypair,
    claims: Vec<Claim>,
    blockhash: solana_hash::Hash,
) -> Vec<Vec<Claim>> {
    let weight = |claims: &[Claim]| {
        let instructions: Vec<Instruction> =
            claims.iter().flat_map(|c| c.instructions.clone()).collect();
        v0::Message::try_compile(&fee_payer.pubkey(), &instructions, &[], blockhash)
            .map(|message| VersionedMessage::V0(message).serialize().len() + 1 + 64)
            .unwrap_or(usize::MAX)
    };
    let mut batches: Vec<Vec<Claim>> = Vec::new();
    let mut current: Vec<Claim> = Vec::new();
    for claim in claims {
        current.push(claim);
        if current.len() > 1 && weight(&current) > PACKET_BYTES {
            let last = current.pop().expect("more than one");
            batches.push(std::mem::take(&mut current));
            current.push(last);
        }
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Reads the claimed channels back and records what the chain settled and paid out.
async fn record_claims(cx: &Context, batch: &[Claim]) -> Result<usize, Refusal> {
    let addresses: Vec<Pubkey> = batch
        .iter()
        .filter_map(|c| c.row.channel.parse().ok())
        .collect();
    let accounts = cx
        .ledger_call(LedgerCall::Account, cx.ledger().accounts(&addresses))
        .await?;
    let now = unix_now();
    let mut claimed = 0;
    for (claim, account) in batch.iter().zip(accounts) {
        let Some(account) = account.and_then(|a| ChannelAccount::read(&a.data)) else {
            continue;
        };
        if account.settled >= claim.row.charged {
            claimed += 1;
        }
        cx.store()
            .record_batch_claim(
                &claim.row.channel,
                account.settled,
                account.payout_watermark,
                now,
            )
            .await
            .map_err(store_unavailable)?;
    }
    Ok(claimed)
}

/// Marks `row` closing and closes it; a failure is the janitor's to retry.
async fn close_marked(cx: &Context, row: &BatchChannel) -> bool {
    let now = unix_now();
    if let Err(error) = cx
        .store()
        .move_batch_channel(
            &row.channel,
            &[BatchStatus::Open],
            BatchStatus::Closing,
            now,
        )
        .await
    {
        tracing::warn!(%error, "could not mark a channel closing");
        return false;
    }
    // The row as it stands now: a voucher accepted since is settled too.
    let row = match cx.store().batch_channel(&row.channel).await {
        Ok(Some(row)) => row,
        _ => return false,
    };
    match close_channel(cx, &row).await {
        Ok(_) => true,
        Err(refusal) => {
            tracing::warn!(channel = %row.channel, reason = refusal.code(), "could not close a channel: the janitor retries");
            false
        }
    }
}

/// The janitor's round over `batch-settlement` channels at `now` (unix seconds): closes
/// idle channels and channels whose close was asked for, gives up on opens that never
/// landed, closes channels open on chain whose row is closed, adopts channels our fee
/// payer funded that the store does not know of, and reclaims the rent of distributed
/// ones. (Claims are the claim task's, [`claim_channels`].)
pub async fn tend_batch_channels(cx: &Context, now: i64) -> Result<BatchTended, Refusal> {
    let mut tended = BatchTended::default();
    let Some(fee_payer) = cx.fee_payer() else {
        return Ok(tended);
    };
    release_stale_holds(cx, now).await?;
    let on_chain = funded_channels(cx, &fee_payer, false).await?;
    let idle = i64::try_from(cx.settings().batch.idle_close.as_secs()).unwrap_or(i64::MAX);
    let rows = cx
        .store()
        .unfinished_batch_channels()
        .await
        .map_err(store_unavailable)?;
    let bound = cx
        .store()
        .bound_channels(cx.settings().network.caip2())
        .await
        .map_err(store_unavailable)?;
    // The channels opened for facilitator callers are theirs (closed or not, as a read
    // may have missed one): never adopted as ours.
    let known: std::collections::HashSet<String> = rows
        .iter()
        .map(|row| row.channel.clone())
        .chain(bound)
        .collect();
    for row in rows {
        let closes = match row.status {
            BatchStatus::Open => now > row.active_at.saturating_add(idle),
            BatchStatus::Closing => now > row.updated_at.saturating_add(LEASE_SECONDS),
            // Its request stopped before the open was recorded as landed, and the open's
            // blockhash has expired since: it landed by now, or never will.
            BatchStatus::Opening => now > row.updated_at.saturating_add(OPEN_LIFETIME_SECONDS),
            BatchStatus::Closed => false,
        };
        if !closes {
            continue;
        }
        let landed = row
            .channel
            .parse()
            .is_ok_and(|a: Pubkey| on_chain.contains_key(&a));
        if row.status == BatchStatus::Opening && !landed {
            let _ = finish(cx, &row, 0, 0, now).await;
            continue;
        }
        // An idle channel stops accepting only with no server-mode request in flight:
        // that request is charged first.
        if row.status == BatchStatus::Open
            && !cx
                .store()
                .stop_batch_channel(&row.channel, now)
                .await
                .map_err(store_unavailable)?
        {
            continue;
        }
        if close_marked(cx, &row).await || row.status != BatchStatus::Open {
            tended.closed += 1;
        }
    }
    tended.closed += super::facilitate::tend_bindings(cx, &on_chain, idle, now).await?;
    for (address, account) in &on_chain {
        if account.status == ChannelStatus::Distributed {
            if let Some(lamports) = reclaim(cx, &account.address()).await? {
                cx.metrics().rent_returned(lamports);
                tended.reclaimed += 1;
            }
        } else if !known.contains(&address.to_string()) {
            match cx
                .store()
                .batch_channel(&address.to_string())
                .await
                .map_err(store_unavailable)?
            {
                // Closed in the store, yet live on chain (it landed late, or a read
                // missed it): closed at the row's latest voucher.
                Some(row) if close_channel(cx, &row).await.is_ok() => tended.closed += 1,
                Some(_) => {}
                None if adopt(cx, account, now).await? => tended.found += 1,
                None => {}
            }
        }
    }
    Ok(tended)
}

/// How long a server-mode request may be answered after its hold: past any upstream's
/// deadline, with room.
const HOLD_LIFETIME_SECONDS: i64 = 600;

/// Lets go of the holds of server-mode requests never answered (a crash between the
/// request and its answer): nothing is charged for them, and the channel may close.
async fn release_stale_holds(cx: &Context, now: i64) -> Result<(), Refusal> {
    let store = cx.store();
    let stale = store
        .stale_operations(now.saturating_sub(HOLD_LIFETIME_SECONDS))
        .await
        .map_err(store_unavailable)?;
    for (channel, request_id, ceiling) in stale {
        tracing::warn!(%channel, "a server-mode request was never answered: its hold is let go");
        store
            .release_operation(&channel, &request_id, ceiling, now)
            .await
            .map_err(store_unavailable)?;
    }
    Ok(())
}

/// How long an `open` may still land after it was recorded: past its blockhash's life
/// (about 60 to 90 seconds), with room.
pub(super) const OPEN_LIFETIME_SECONDS: i64 = 150;

/// Records a channel found on chain that the store does not know of (its request
/// stopped before recording it, or the store was lost): at what the chain settled, for
/// our mint and payee, open until it idles. No charge is invented. `true` when recorded.
async fn adopt(cx: &Context, account: &ChannelAccount, now: i64) -> Result<bool, Refusal> {
    let s = cx.settings();
    if account.mint != s.mint || account.status != ChannelStatus::Open {
        return Ok(false);
    }
    let channel = x402_protocol::scheme::batch::Channel {
        payer: account.payer,
        payer_authorizer: account.authorized_signer,
        receiver: s.pay_to,
        receiver_authorizer: account.payee,
        token: account.mint,
        withdraw_delay: account.grace_period,
        salt: account.salt,
        open_slot: account.open_slot,
        server_signed: s
            .batch
            .operator
            .as_ref()
            .is_some_and(|operator| operator.pubkey() == account.authorized_signer),
    };
    let record = BatchChannel {
        channel: account.address().to_string(),
        config: serde_json::to_string(&channel.config()).expect("serializable"),
        fee_payer: account.payee.to_string(),
        token_program: s.token_program.to_string(),
        deposit: account.deposit,
        charged: account.settled,
        signature: None,
        claimed: account.settled,
        paid: account.payout_watermark,
        status: BatchStatus::Open,
        requests: 0,
        active_at: now,
        updated_at: now,
        reserved: 0,
    };
    tracing::info!(channel = %record.channel, "janitor found a batch-settlement channel the store did not know of");
    cx.store()
        .begin_batch_channel(&record)
        .await
        .map_err(store_unavailable)
}
