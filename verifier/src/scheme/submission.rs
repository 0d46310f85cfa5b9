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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use anchor_lang::prelude::Pubkey;
    use x402_protocol::Network;

    use super::*;
    use crate::model::Scheme;
    use crate::sponsorship::SponsorLimits;
    use crate::testing::{settings_and_store, EmptyLedger};

    /// What the fake submission's ledger does with it.
    #[derive(Clone, Copy, Debug)]
    enum Ends {
        Lands,
        /// Landed and failed: its fee charged.
        FailsOnChain,
        /// Refused in preflight: nothing charged.
        FailsInPreflight,
    }

    #[derive(Debug)]
    struct Fake {
        parties: Parties,
        key: Reference,
        ends: Ends,
        submitted: AtomicUsize,
    }

    impl Fake {
        fn new(ends: Ends) -> Self {
            Fake {
                parties: Parties {
                    payer: Pubkey::new_unique(),
                    source: Pubkey::new_unique(),
                },
                key: Reference(Pubkey::new_unique().to_bytes()),
                ends,
                submitted: AtomicUsize::new(0),
            }
        }
    }

    const FEES: u64 = 10_000;
    const RENT: u64 = 2_000_000;

    #[async_trait]
    impl Submission for Fake {
        fn parties(&self) -> Parties {
            self.parties
        }
        fn key(&self) -> Reference {
            self.key
        }
        fn cost(&self, _: &Context) -> u64 {
            FEES + RENT
        }
        fn rent(&self) -> u64 {
            RENT
        }
        async fn submit(&self, cx: &Context) -> Submitted {
            self.submitted.fetch_add(1, Ordering::SeqCst);
            let failed = Refusal::new(Reason::TransactionFailed);
            match self.ends {
                Ends::Lands => Submitted {
                    outcome: Ok((
                        SettledPayment {
                            scheme: Scheme::Receipt,
                            reference: self.key,
                            receipt: None,
                            payer: self.parties.payer,
                            amount: 1,
                            mint: cx.settings().mint,
                            transaction: None,
                            network: cx.settings().network.caip2().to_string(),
                            metered: None,
                            batch: None,
                        },
                        Landing::Here,
                    )),
                    deposited: Some(RENT),
                    charged: true,
                },
                Ends::FailsOnChain => Submitted::refused(failed, true),
                Ends::FailsInPreflight => Submitted::refused(failed, false),
            }
        }
    }

    /// A context whose fee payer may have `ceiling` lamports at stake.
    async fn context(ceiling: u64) -> (Context, tempfile::TempDir) {
        let (mut settings, store, dir) = settings_and_store().await;
        settings.sponsor_limits = SponsorLimits {
            spend_ceiling: ceiling,
            ..SponsorLimits::default()
        };
        let ledger = Arc::new(EmptyLedger::new(Network::devnet()));
        (Context::new(settings, ledger, store), dir)
    }

    fn reason(outcome: Result<(SettledPayment, Landing), Refusal>) -> Option<Reason> {
        outcome.err().map(|refusal| refusal.reason())
    }

    #[tokio::test]
    async fn a_landed_submission_keeps_its_lease_and_counts_its_fees_and_rent() {
        let (cx, _dir) = context(u64::MAX).await;
        let landed = Fake::new(Ends::Lands);
        let (settled, landing) = settle(&cx, &landed).await.unwrap();
        assert_eq!((settled.reference, landing), (landed.key, Landing::Here));
        assert_eq!(cx.metrics().rent_held(), RENT, "its deposit is counted");
        // A copy presented meanwhile is busy: the lease is the landed payment's until its
        // grant is recorded, and the copy never reaches the ledger.
        let copy = Fake {
            key: landed.key,
            ..Fake::new(Ends::Lands)
        };
        assert_eq!(
            reason(settle(&cx, &copy).await),
            Some(Reason::SponsorshipBusy)
        );
        assert_eq!(copy.submitted.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_payment_failed_on_chain_bars_its_parties_and_frees_its_lease() {
        let (cx, _dir) = context(u64::MAX).await;
        let failed = Fake::new(Ends::FailsOnChain);
        assert_eq!(
            reason(settle(&cx, &failed).await),
            Some(Reason::TransactionFailed)
        );
        let again = Fake {
            parties: failed.parties,
            ..Fake::new(Ends::Lands)
        };
        assert_eq!(
            reason(settle(&cx, &again).await),
            Some(Reason::SponsorshipUnavailable),
            "its payer is barred for a while"
        );
        let now = x402_protocol::unix_now();
        let leased = cx
            .store()
            .lease_submission(&failed.key.to_string(), now, now + 60)
            .await
            .unwrap();
        assert!(leased, "its retry may submit at once");
    }

    #[tokio::test]
    async fn a_payment_refused_in_preflight_bars_nobody_and_costs_nothing() {
        // Room for exactly one submission's fees and rent: a preflight refusal spends none.
        let (cx, _dir) = context(FEES + RENT).await;
        let refused = Fake::new(Ends::FailsInPreflight);
        assert_eq!(
            reason(settle(&cx, &refused).await),
            Some(Reason::TransactionFailed)
        );
        let again = Fake {
            parties: refused.parties,
            key: refused.key,
            ..Fake::new(Ends::Lands)
        };
        assert!(
            settle(&cx, &again).await.is_ok(),
            "not barred, lease free, nothing spent"
        );
    }

    #[tokio::test]
    async fn fees_of_landed_submissions_count_against_the_ceiling() {
        // Two submissions' fees plus one rent: the second landed one pushes past it.
        let (cx, _dir) = context(2 * FEES + RENT).await;
        settle(&cx, &Fake::new(Ends::Lands)).await.unwrap();
        let next = Fake::new(Ends::Lands);
        assert_eq!(
            reason(settle(&cx, &next).await),
            Some(Reason::SponsorshipUnavailable),
            "fees {FEES} + rent held {RENT} + cost {} > ceiling",
            FEES + RENT
        );
        assert_eq!(next.submitted.load(Ordering::SeqCst), 0);
    }
}
