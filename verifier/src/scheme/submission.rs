//! The one way a sponsored payment is submitted, whatever its scheme: admitted by the
//! sponsorship's guards, under the grant store's lease of its key (copies of one payment
//! sent at once are submitted once), then the scheme's own submission and reading of
//! what landed, then the fees and failures counted and the lease ended if it did not
//! land.

use std::fmt::Debug;

use async_trait::async_trait;
use x402_protocol::Reference;

use super::Landing;
use crate::context::{store_unavailable, Context};
use crate::error::{Reason, Refusal};
use crate::model::SettledPayment;
use crate::sponsorship::Parties;

/// How long a submission's lease is held at most: past the ledger calls' deadlines.
pub const LEASE_SECONDS: i64 = 60;

/// A checked payment, co-signed by the fee payer, waiting to be submitted.
#[async_trait]
pub trait Submission: Debug + Send + Sync {
    /// Who it moves money for, for the sponsorship's guards.
    fn parties(&self) -> Parties;
    /// What its lease (and its grant) is keyed by.
    fn key(&self) -> Reference;
    /// The most it costs the fee payer: fees, and the rent of what it creates.
    fn cost(&self, cx: &Context) -> u64;
    /// The part of [`Submission::cost`] that is a deposit, not a fee.
    fn rent(&self) -> u64 {
        0
    }
    /// Submits it and reads what landed.
    async fn submit(&self, cx: &Context) -> Submitted;
}

/// What one submission came to.
pub struct Submitted {
    pub outcome: Result<(SettledPayment, Landing), Refusal>,
    /// Lamports it deposited in an account it created.
    pub deposited: Option<u64>,
    /// Whether the ledger charged its fee: it landed, succeeded or not.
    pub charged: bool,
}

impl Submitted {
    pub fn refused(refusal: Refusal, charged: bool) -> Self {
        Submitted {
            outcome: Err(refusal),
            deposited: None,
            charged,
        }
    }
}

/// Submits `submission` within the sponsorship's limits, holding its key's lease.
pub(super) async fn settle(
    cx: &Context,
    submission: &dyn Submission,
) -> Result<(SettledPayment, Landing), Refusal> {
    let cost = submission.cost(cx);
    let permit = cx
        .sponsorship()
        .admit(submission.parties(), cost, cx.metrics().rent_held())?;
    let key = submission.key();
    let now = x402_protocol::unix_now();
    let leased = cx
        .store()
        .lease_submission(&key.to_string(), now, now.saturating_add(LEASE_SECONDS))
        .await
        .map_err(store_unavailable)?;
    if !leased {
        // Another request submits this payment: its grant belongs to that request, which
        // no copy may take while it confirms.
        return Err(Refusal::new(Reason::SponsorshipBusy));
    }
    let submitted = submission.submit(cx).await;
    // Landed, it cost its fees, succeeded or not: they count against the ceiling. A payer
    // whose payment failed on chain is not sponsored again for a while; one refused in
    // preflight cost nothing and bars nobody (or anyone could bar anyone).
    if submitted.charged {
        permit.spent(cost.saturating_sub(submission.rent()));
    }
    if let Some(deposited) = submitted.deposited {
        cx.metrics().rent_deposited(deposited);
    }
    if let Err(refusal) = &submitted.outcome {
        if submitted.charged && refusal.reason() == Reason::TransactionFailed {
            permit.failed();
        }
        // A payment that failed may be retried at once. One that landed keeps its lease
        // until it lapses (or its grant is given back): by then its grant is recorded,
        // and copies are refused before they reach the ledger.
        cx.end_lease(&key).await;
    }
    submitted.outcome
}
