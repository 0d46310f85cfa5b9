//! The verifier's counters, through prometheus-client, at `GET /metrics`: challenges
//! issued, grants, refusals by reason (a closed set of labels), ledger call latency and
//! errors, the rent the janitor returned, and the rent held in open receipts the fee
//! payer funded (a gauge kept by the background task, so a scrape makes no ledger call).
//! The `/metrics` route that renders them is the app's ([`crate::app::metrics`]).

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::Reason;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0];

/// The kinds of ledger call, as labels.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum LedgerCall {
    Account,
    Submit,
    /// What a submitted transaction did (`exact`).
    Transaction,
    LatestBlockhash,
    /// The Clock sysvar, for the slot `upto` offers carry.
    Clock,
    ProgramAccounts,
}

impl EncodeLabelValue for LedgerCall {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(match self {
            LedgerCall::Account => "account",
            LedgerCall::Submit => "submit",
            LedgerCall::Transaction => "transaction",
            LedgerCall::LatestBlockhash => "latest_blockhash",
            LedgerCall::Clock => "clock",
            LedgerCall::ProgramAccounts => "program_accounts",
        })
    }
}

impl EncodeLabelValue for Reason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: Reason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabel {
    call: LedgerCall,
}

/// One gate's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    challenges: Counter,
    grants: Counter,
    releases: Counter,
    ledger_errors: Counter,
    rent_returned: Counter,
    rent_held: Gauge<i64, AtomicI64>,
    refusals: Family<ReasonLabel, Counter>,
    facilitator_refusals: Family<ReasonLabel, Counter>,
    ledger_calls: Family<CallLabel, Histogram>,
    vouchers: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics {
            challenges: Counter::default(),
            grants: Counter::default(),
            releases: Counter::default(),
            ledger_errors: Counter::default(),
            rent_returned: Counter::default(),
            rent_held: Gauge::default(),
            refusals: Family::default(),
            facilitator_refusals: Family::default(),
            ledger_calls: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            vouchers: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "x402_challenges",
            "402 challenges issued",
            metrics.challenges.clone(),
        );
        registry.register(
            "x402_grants",
            "Requests granted after a payment",
            metrics.grants.clone(),
        );
        registry.register(
            "x402_grants_released",
            "Grants given back after serving failed",
            metrics.releases.clone(),
        );
        registry.register(
            "x402_ledger_errors",
            "Ledger calls that failed or timed out",
            metrics.ledger_errors.clone(),
        );
        registry.register(
            "x402_rent_returned_lamports",
            "Rent the janitor took back by closing receipts",
            metrics.rent_returned.clone(),
        );
        registry.register(
            "x402_rent_held_lamports",
            "Rent deposited in open receipts the fee payer funded",
            metrics.rent_held.clone(),
        );
        registry.register(
            "x402_refusals",
            "Payments refused, by reason",
            metrics.refusals.clone(),
        );
        registry.register(
            "x402_facilitator_refusals",
            "Payments the facilitator API found invalid, by reason",
            metrics.facilitator_refusals.clone(),
        );
        registry.register(
            "x402_ledger_call_seconds",
            "Ledger call latency",
            metrics.ledger_calls.clone(),
        );
        registry.register(
            "x402_batch_vouchers",
            "batch-settlement vouchers accepted",
            metrics.vouchers.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }
}

fn gauge_value(lamports: u64) -> i64 {
    i64::try_from(lamports).unwrap_or(i64::MAX)
}

impl Metrics {
    /// Counts the store's commits of accepted vouchers (several vouchers a commit when
    /// they come together).
    pub fn count_voucher_commits(&mut self, commits: Counter) {
        self.registry.register(
            "x402_store_voucher_commits",
            "Store transactions that committed accepted batch-settlement vouchers",
            commits,
        );
    }

    pub fn voucher_accepted(&self) {
        self.vouchers.inc();
    }

    pub fn challenge_issued(&self) {
        self.challenges.inc();
    }

    pub fn granted(&self) {
        self.grants.inc();
    }

    pub fn released(&self) {
        self.releases.inc();
    }

    /// A payment presented for a request was refused.
    pub fn refused(&self, reason: Reason) {
        self.refusals.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// A payment sent to `/verify` or `/settle` was found invalid.
    pub fn facilitator_refused(&self, reason: Reason) {
        self.facilitator_refusals
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// The janitor closed receipts holding `lamports`.
    pub fn rent_returned(&self, lamports: u64) {
        self.rent_returned.inc_by(lamports);
        self.rent_held.dec_by(gauge_value(lamports));
    }

    /// A sponsored payment parked `lamports` in its receipt.
    pub fn rent_deposited(&self, lamports: u64) {
        self.rent_held.inc_by(gauge_value(lamports));
    }

    /// The rent held in open receipts the fee payer funded, as last counted.
    pub fn rent_held(&self) -> u64 {
        u64::try_from(self.rent_held.get()).unwrap_or(0)
    }

    /// The rent held, as the ledger counted it.
    pub fn set_rent_held(&self, lamports: u64) {
        self.rent_held.set(gauge_value(lamports));
    }

    /// One ledger call of kind `call` that took `elapsed`, and whether it failed.
    pub fn ledger_call(&self, call: LedgerCall, elapsed: Duration, failed: bool) {
        if failed {
            self.ledger_errors.inc();
        }
        self.ledger_calls
            .get_or_create(&CallLabel { call })
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition (OpenMetrics).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_refusals_a_cumulative_histogram_and_the_rent_gauge() {
        let metrics = Metrics::default();
        metrics.challenge_issued();
        metrics.challenge_issued();
        metrics.granted();
        metrics.refused(Reason::ExpiredReference);
        metrics.ledger_call(LedgerCall::Account, Duration::from_millis(20), false);
        metrics.ledger_call(LedgerCall::Account, Duration::from_secs(2), true);
        metrics.set_rent_held(3 * 2_289_840);
        metrics.rent_returned(2_289_840);
        let text = metrics.render();
        for line in [
            "x402_challenges_total 2",
            "x402_grants_total 1",
            "x402_ledger_errors_total 1",
            "x402_refusals_total{reason=\"expired_reference\"} 1",
            "x402_ledger_call_seconds_bucket{le=\"0.01\",call=\"account\"} 0",
            "x402_ledger_call_seconds_bucket{le=\"0.025\",call=\"account\"} 1",
            "x402_ledger_call_seconds_bucket{le=\"3.0\",call=\"account\"} 2",
            "x402_ledger_call_seconds_bucket{le=\"+Inf\",call=\"account\"} 2",
            "x402_ledger_call_seconds_count{call=\"account\"} 2",
            "x402_rent_held_lamports 4579680",
            "x402_rent_returned_lamports_total 2289840",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn every_refusal_label_comes_from_the_closed_set() {
        let metrics = Metrics::default();
        for reason in Reason::ALL {
            metrics.refused(*reason);
        }
        let text = metrics.render();
        let labels = text
            .lines()
            .filter(|l| l.starts_with("x402_refusals_total{"))
            .count();
        assert_eq!(labels, Reason::ALL.len());
    }
}
