//! Guards on the fee payer's money when it sponsors payments: how many submissions may
//! be in flight (overall and per payer), how close to its expiry a challenge may still be
//! sponsored, a ceiling on what the fee payer has at stake (the fees of the current
//! window and the rent parked in open receipts), and failures: a payment that failed
//! bars its signer and its source token account for a while (a fresh signer key is free,
//! a funded token account is not), and past a number of failures in the window nobody is
//! sponsored until it ends. One submission per reference at a time is the grant store's
//! lease ([`crate::store::GrantStore::lease_submission`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anchor_lang::prelude::Pubkey;

use crate::error::{Reason, Refusal};

/// The limits, set once per gate.
#[derive(Clone, Debug)]
pub struct SponsorLimits {
    pub max_in_flight: usize,
    pub max_in_flight_per_payer: usize,
    /// A challenge is not sponsored this close to its expiry: a submission then could
    /// land late and fail, at the fee payer's cost.
    pub expiry_margin: Duration,
    /// The most the fee payer may have at stake: fees of the window plus the rent held
    /// in open receipts, in lamports.
    pub spend_ceiling: u64,
    /// The window fees are counted over.
    pub fee_window: Duration,
    /// How long a payer whose sponsored payment failed is not sponsored again: it may
    /// have emptied its token account after the checks, at the fee payer's cost.
    pub failure_cooldown: Duration,
    /// Failed sponsored payments per fee window, from anyone, after which sponsorship
    /// stops until the window ends: payers barred one by one could still burn fees with
    /// many funded accounts.
    pub max_failures: usize,
}

impl Default for SponsorLimits {
    fn default() -> Self {
        SponsorLimits {
            max_in_flight: 32,
            max_in_flight_per_payer: 2,
            expiry_margin: Duration::from_secs(10),
            spend_ceiling: 10_000_000_000,
            fee_window: Duration::from_secs(3600),
            failure_cooldown: Duration::from_secs(600),
            max_failures: 50,
        }
    }
}

/// The state of the guards.
#[derive(Default)]
pub struct Sponsorship {
    limits: SponsorLimits,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    per_payer: HashMap<Pubkey, usize>,
    /// When the fee window began, the fees paid and the payments failed in it.
    fees: Option<(Instant, u64)>,
    failures: usize,
    /// Signers and source token accounts of sponsored payments that failed, and when.
    failed: HashMap<Pubkey, Instant>,
}

/// Who a sponsored payment moves money for: its signer and the token account it spends.
#[derive(Clone, Copy, Debug)]
pub struct Parties {
    /// The token authority that signs.
    pub payer: Pubkey,
    /// The token account paid from (owned by the payer in `receipt`; in `exact` its
    /// owner may have delegated to the payer).
    pub source: Pubkey,
}

/// A sponsored submission admitted; its slot is freed when dropped.
pub struct Permit {
    parties: Parties,
    state: Arc<Mutex<State>>,
}

impl Sponsorship {
    pub fn new(limits: SponsorLimits) -> Self {
        Sponsorship {
            limits,
            state: Arc::default(),
        }
    }

    pub fn limits(&self) -> &SponsorLimits {
        &self.limits
    }

    /// Whether a challenge expiring at `expires_at` may still be sponsored at `now`:
    /// submitted this late, its payment could land after the expiry and fail, or land
    /// unpaid for, at the fee payer's cost. A fresh challenge instead.
    pub fn check_expiry(&self, expires_at: i64, now: i64) -> Result<(), Refusal> {
        let margin = self.limits.expiry_margin.as_secs() as i64;
        if now.saturating_add(margin) > expires_at {
            return Err(Refusal::new(Reason::ExpiringReference));
        }
        Ok(())
    }

    /// Admits a submission for `parties` that may cost the fee payer `cost` lamports,
    /// with `rent_held` lamports parked in open receipts already.
    pub fn admit(&self, parties: Parties, cost: u64, rent_held: u64) -> Result<Permit, Refusal> {
        let mut state = self.state.lock().expect("not poisoned");
        let now = Instant::now();
        let fees = match state.fees {
            Some((started, fees)) if now.duration_since(started) < self.limits.fee_window => fees,
            _ => {
                state.fees = Some((now, 0));
                state.failures = 0;
                0
            }
        };
        if state.failures >= self.limits.max_failures {
            tracing::warn!(
                failures = state.failures,
                "too many sponsored payments failed in this window: sponsorship refused"
            );
            return Err(Refusal::new(Reason::SponsorshipUnavailable));
        }
        let at_stake = fees.saturating_add(rent_held).saturating_add(cost);
        if at_stake > self.limits.spend_ceiling {
            tracing::warn!(
                at_stake,
                ceiling = self.limits.spend_ceiling,
                "the fee payer's spending ceiling is reached: sponsorship refused"
            );
            return Err(Refusal::new(Reason::SponsorshipUnavailable));
        }
        let cooldown = self.limits.failure_cooldown;
        state
            .failed
            .retain(|_, when| now.duration_since(*when) < cooldown);
        if state.failed.contains_key(&parties.payer) || state.failed.contains_key(&parties.source) {
            return Err(Refusal::new(Reason::SponsorshipUnavailable));
        }
        let payer = parties.payer;
        let for_payer = state.per_payer.get(&payer).copied().unwrap_or(0);
        if state.in_flight >= self.limits.max_in_flight
            || for_payer >= self.limits.max_in_flight_per_payer
        {
            return Err(Refusal::new(Reason::SponsorshipBusy));
        }
        state.in_flight += 1;
        *state.per_payer.entry(payer).or_default() += 1;
        Ok(Permit {
            parties,
            state: self.state.clone(),
        })
    }
}

impl Sponsorship {
    /// The fee payer's own transaction (a claim, a close, a reclaim) went out: its fees
    /// count against the ceiling too, so that claims cannot spend past it.
    pub fn spent(&self, fees: u64) {
        let mut state = self.state.lock().expect("not poisoned");
        let now = Instant::now();
        match &mut state.fees {
            Some((started, spent)) if now.duration_since(*started) < self.limits.fee_window => {
                *spent = spent.saturating_add(fees);
            }
            _ => state.fees = Some((now, fees)),
        }
    }
}

impl Permit {
    /// The submission failed: its payer and its source account are not sponsored again
    /// for a while, and it counts towards the window's failures.
    pub fn failed(&self) {
        let mut state = self.state.lock().expect("not poisoned");
        let now = Instant::now();
        state.failed.insert(self.parties.payer, now);
        state.failed.insert(self.parties.source, now);
        state.failures = state.failures.saturating_add(1);
    }

    /// The submission went out: its fees count against the ceiling.
    pub fn spent(&self, fees: u64) {
        let mut state = self.state.lock().expect("not poisoned");
        if let Some((_, spent)) = &mut state.fees {
            *spent = spent.saturating_add(fees);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.state.lock().expect("not poisoned");
        state.in_flight = state.in_flight.saturating_sub(1);
        let payer = self.parties.payer;
        if let Some(count) = state.per_payer.get_mut(&payer) {
            *count -= 1;
            if *count == 0 {
                state.per_payer.remove(&payer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sponsorship(spend_ceiling: u64) -> Sponsorship {
        Sponsorship::new(SponsorLimits {
            max_in_flight: 3,
            max_in_flight_per_payer: 2,
            spend_ceiling,
            ..SponsorLimits::default()
        })
    }

    /// A payer spending from an account of its own.
    fn parties(payer: Pubkey) -> Parties {
        Parties {
            payer,
            source: Pubkey::new_unique(),
        }
    }

    #[test]
    fn in_flight_submissions_are_capped_overall_and_per_payer() {
        let s = sponsorship(u64::MAX);
        let (a, b) = (parties(Pubkey::new_unique()), parties(Pubkey::new_unique()));
        let a1 = s.admit(a, 0, 0).unwrap();
        let _a2 = s.admit(a, 0, 0).unwrap();
        let busy = |r: Result<Permit, Refusal>| r.err().map(|r| r.reason());
        assert_eq!(
            busy(s.admit(a, 0, 0)),
            Some(Reason::SponsorshipBusy),
            "per payer"
        );
        let _b1 = s.admit(b, 0, 0).unwrap();
        assert_eq!(
            busy(s.admit(b, 0, 0)),
            Some(Reason::SponsorshipBusy),
            "overall"
        );
        drop(a1);
        assert!(
            s.admit(b, 0, 0).is_ok(),
            "a finished submission frees its slot"
        );
    }

    #[test]
    fn a_payer_or_account_whose_payment_failed_is_not_sponsored_for_a_while() {
        let s = sponsorship(u64::MAX);
        let (payer, other) = (parties(Pubkey::new_unique()), parties(Pubkey::new_unique()));
        s.admit(payer, 0, 0).unwrap().failed();
        let refused = |parties| s.admit(parties, 0, 0).err().map(|r| r.reason());
        assert_eq!(refused(payer), Some(Reason::SponsorshipUnavailable));
        // A fresh signer key is free: spending from the same account, it is barred too.
        let fresh_signer = Parties {
            payer: Pubkey::new_unique(),
            source: payer.source,
        };
        assert_eq!(refused(fresh_signer), Some(Reason::SponsorshipUnavailable));
        let other_account = Parties {
            source: Pubkey::new_unique(),
            ..payer
        };
        assert_eq!(refused(other_account), Some(Reason::SponsorshipUnavailable));
        assert!(s.admit(other, 0, 0).is_ok());
    }

    #[test]
    fn past_the_failures_of_a_window_nobody_is_sponsored() {
        let s = Sponsorship::new(SponsorLimits {
            max_failures: 3,
            ..SponsorLimits::default()
        });
        for _ in 0..3 {
            s.admit(parties(Pubkey::new_unique()), 0, 0)
                .unwrap()
                .failed();
        }
        let refused = s.admit(parties(Pubkey::new_unique()), 0, 0);
        assert_eq!(
            refused.err().map(|r| r.reason()),
            Some(Reason::SponsorshipUnavailable)
        );
    }

    #[test]
    fn a_challenge_this_close_to_its_expiry_is_not_sponsored() {
        let s = sponsorship(u64::MAX);
        let margin = SponsorLimits::default().expiry_margin.as_secs() as i64;
        assert!(s.check_expiry(1_000 + margin, 1_000).is_ok());
        let late = s.check_expiry(1_000 + margin - 1, 1_000);
        assert_eq!(
            late.err().map(|r| r.reason()),
            Some(Reason::ExpiringReference)
        );
    }

    #[test]
    fn past_the_ceiling_sponsorship_is_refused() {
        let s = sponsorship(100);
        let payer = parties(Pubkey::new_unique());
        assert!(s.admit(payer, 40, 60).is_ok());
        let permit = s.admit(payer, 10, 60).unwrap();
        permit.spent(30);
        drop(permit);
        let refused = s.admit(payer, 20, 60).err().map(|r| r.reason());
        assert_eq!(refused, Some(Reason::SponsorshipUnavailable));
    }

    #[test]
    fn the_fee_payers_own_transactions_count_against_the_ceiling() {
        let s = sponsorship(100);
        let payer = parties(Pubkey::new_unique());
        // Claims and closes the fee payer sent, before any payment of this window.
        s.spent(50);
        s.spent(40);
        let refused = s.admit(payer, 20, 0).err().map(|r| r.reason());
        assert_eq!(refused, Some(Reason::SponsorshipUnavailable));
        assert!(s.admit(payer, 10, 0).is_ok());
    }
}
