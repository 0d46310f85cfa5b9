//! The gate's background tasks, started by the server (or an app) in one place
//! ([`start`]) and ended with the gate: the blockhash that sponsored challenges carry, the
//! rent gauge, the claims of `batch-settlement` channels, and the janitor that closes the
//! fee payer's expired receipts to take their rent back and tends its channels to the
//! end of their life.

use std::future::Future;
use std::time::Duration;

use x402_protocol::janitor::{close_expired, CloseReport};
use x402_protocol::scheme::receipt::funded_by;
use x402_protocol::scheme::upto::{self, PAYMENT_CHANNELS_PROGRAM};
use x402_protocol::{ChainClock, LedgerError};

use crate::context::Context;
use crate::gate::Gate;
use crate::metrics::LedgerCall;
use crate::model::Scheme;
use crate::scheme::batch::{claim_channels, tend_batch_channels, BatchTended};
use crate::scheme::upto::{tend_channels, Tended};
use crate::unix_now;

/// How often each task runs.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Well inside the ledger's blockhash lifetime (about 60 s on a cluster).
    pub blockhash_refresh: Duration,
    /// How often the rent gauge is recounted from the ledger (one `getProgramAccounts`).
    pub rent_recount: Duration,
    /// `None`: no janitor.
    pub janitor: Option<Janitor>,
}

/// Closing the expired receipts the fee payer funded.
#[derive(Clone, Debug)]
pub struct Janitor {
    pub interval: Duration,
    /// How long after its expiry a receipt is kept open (for audits and late checks).
    pub retention: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            blockhash_refresh: Duration::from_secs(20),
            rent_recount: Duration::from_secs(300),
            janitor: Some(Janitor::default()),
        }
    }
}

impl Default for Janitor {
    fn default() -> Self {
        Janitor {
            interval: Duration::from_secs(600),
            retention: Duration::from_secs(3600),
        }
    }
}

/// Starts the tasks of a sponsoring gate (a gate without a fee payer has none). The first
/// blockhash and rent count are read before this returns, so the first challenge is
/// complete.
pub async fn start(gate: &Gate, schedule: &Schedule) {
    if gate.settings().fee_payer.is_none() {
        return;
    }
    refresh_blockhash(gate.clone()).await;
    recount_rent(gate.clone()).await;
    every(gate, schedule.blockhash_refresh, false, refresh_blockhash);
    every(gate, schedule.rent_recount, false, recount_rent);
    if gate.settings().schemes.contains(&Scheme::Batch) {
        every(
            gate,
            gate.settings().batch.claim_interval,
            false,
            claim_round,
        );
    }
    if let Some(janitor) = schedule.janitor.clone() {
        every(gate, janitor.interval, true, move |gate| {
            janitor_round(gate, janitor.retention)
        });
    }
}

/// Runs `round` every `period` while the gate lives.
fn every<F, R>(gate: &Gate, period: Duration, immediately: bool, round: F)
where
    F: Fn(Gate) -> R + Send + 'static,
    R: Future<Output = ()> + Send,
{
    let weak = gate.downgrade();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if !immediately {
            ticks.tick().await;
        }
        loop {
            ticks.tick().await;
            let Some(gate) = weak.upgrade() else { break };
            round(gate).await;
        }
    });
}

async fn refresh_blockhash(gate: Gate) {
    let fresh = gate
        .ledger_call(
            LedgerCall::LatestBlockhash,
            gate.ledger().latest_blockhash(),
        )
        .await;
    // A stale blockhash is worse than none: clients would sign a dead transaction.
    gate.set_blockhash(fresh.ok());
    if gate.settings().schemes.iter().any(|s| s.on_channels()) {
        // Channel buyers open their channel at a recent slot (the program's window is
        // 1,500 slots): some buyers read none themselves.
        let clock = gate
            .ledger_call(LedgerCall::Clock, ChainClock::read(gate.ledger().as_ref()))
            .await;
        gate.set_recent_slot(clock.ok().map(|clock| clock.slot));
    }
}

async fn recount_rent(gate: Gate) {
    match rent_held(&gate).await {
        Ok(lamports) => gate.metrics().set_rent_held(lamports),
        Err(error) => tracing::warn!(%error, "cannot count the rent held in receipts"),
    }
}

/// Claims the latest vouchers of `batch-settlement` channels.
async fn claim_round(gate: Gate) {
    match claim_channels(&gate).await {
        Ok((0, _)) => {}
        Ok((claimed, transactions)) => {
            tracing::info!(claimed, transactions, "claimed batch-settlement channels")
        }
        Err(refusal) => tracing::warn!(reason = refusal.code(), "claim round failed"),
    }
}

async fn janitor_round(gate: Gate, retention: Duration) {
    match close_expired_receipts(&gate, retention).await {
        Ok(report) if !report.closed.is_empty() => tracing::info!(
            closed = report.closed.len(),
            rent_returned = report.rent_returned,
            "janitor closed expired receipts"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "janitor round failed"),
    }
    if gate.settings().schemes.contains(&Scheme::Upto) {
        match tend_channels(&gate, unix_now()).await {
            Ok(tended) if tended != Tended::default() => tracing::info!(
                found = tended.found,
                settled = tended.settled,
                reclaimed = tended.reclaimed,
                rent_returned = tended.rent_returned,
                "janitor tended upto channels"
            ),
            Ok(_) => {}
            Err(refusal) => {
                tracing::warn!(reason = refusal.code(), "janitor's channel round failed")
            }
        }
    }
    if gate.settings().schemes.contains(&Scheme::Batch) {
        match tend_batch_channels(&gate, unix_now()).await {
            Ok(tended) if tended != BatchTended::default() => tracing::info!(
                closed = tended.closed,
                found = tended.found,
                reclaimed = tended.reclaimed,
                "janitor tended batch-settlement channels"
            ),
            Ok(_) => {}
            Err(refusal) => {
                tracing::warn!(
                    reason = refusal.code(),
                    "janitor's batch channel round failed"
                )
            }
        }
    }
}

/// The rent held in open receipts, and in channels, the fee payer funded (a ledger call
/// each).
pub async fn rent_held(cx: &Context) -> Result<u64, LedgerError> {
    let Some(fee_payer) = cx.fee_payer() else {
        return Ok(0);
    };
    let mut funded = vec![(cx.settings().program, funded_by(&fee_payer))];
    if cx.settings().schemes.iter().any(|s| s.on_channels()) {
        funded.push((PAYMENT_CHANNELS_PROGRAM, upto::funded_by(&fee_payer)));
    }
    let mut held = 0u64;
    for (program, filters) in funded {
        let accounts = cx
            .ledger_call(
                LedgerCall::ProgramAccounts,
                cx.ledger().program_accounts(&program, &filters),
            )
            .await?;
        held = accounts.iter().fold(held, |held, (_, account)| {
            held.saturating_add(account.lamports)
        });
    }
    Ok(held)
}

/// The janitor's round: closes the receipts the fee payer funded whose challenge expired
/// more than `retention` ago, and takes their rent back.
pub async fn close_expired_receipts(
    cx: &Context,
    retention: Duration,
) -> Result<CloseReport, LedgerError> {
    let Some(fee_payer) = &cx.settings().fee_payer else {
        return Ok(CloseReport::default());
    };
    let before = unix_now().saturating_sub(retention.as_secs() as i64);
    let report = close_expired(
        cx.ledger().as_ref(),
        &cx.settings().program,
        fee_payer,
        before,
    )
    .await?;
    cx.metrics().rent_returned(report.rent_returned);
    Ok(report)
}
