//! The verifier's counters, in Prometheus text format at `GET /metrics`: challenges
//! issued, grants, refusals by reason, ledger call latency, ledger errors, rent returned
//! by the janitor, and the rent held in open receipts the fee payer funded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0];

#[derive(Default)]
struct Histogram {
    /// Observations at or under each bound.
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

#[derive(Default)]
pub struct Metrics {
    challenges: AtomicU64,
    grants: AtomicU64,
    releases: AtomicU64,
    ledger_errors: AtomicU64,
    rent_returned: AtomicU64,
    refusals: Mutex<BTreeMap<String, u64>>,
    ledger_calls: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl Metrics {
    pub fn challenge_issued(&self) {
        self.challenges.fetch_add(1, Ordering::Relaxed);
    }

    pub fn granted(&self) {
        self.grants.fetch_add(1, Ordering::Relaxed);
    }

    pub fn released(&self) {
        self.releases.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, reason: &str) {
        *self
            .refusals
            .lock()
            .expect("not poisoned")
            .entry(reason.to_string())
            .or_default() += 1;
    }

    pub fn rent_returned(&self, lamports: u64) {
        self.rent_returned.fetch_add(lamports, Ordering::Relaxed);
    }

    /// One ledger call of kind `call` that took `elapsed`, and whether it failed.
    pub fn ledger_call(&self, call: &'static str, elapsed: Duration, failed: bool) {
        if failed {
            self.ledger_errors.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = elapsed.as_secs_f64();
        let mut calls = self.ledger_calls.lock().expect("not poisoned");
        let histogram = calls.entry(call).or_default();
        for (count, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum_seconds += seconds;
    }

    /// The text exposition; `rent_held` when it could be read.
    pub fn render(&self, rent_held: Option<u64>) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "x402_challenges_total",
            "402 challenges issued.",
            self.challenges.load(Ordering::Relaxed),
        );
        counter(
            "x402_grants_total",
            "Requests granted after a payment.",
            self.grants.load(Ordering::Relaxed),
        );
        counter(
            "x402_grants_released_total",
            "Grants given back after the upstream failed.",
            self.releases.load(Ordering::Relaxed),
        );
        counter(
            "x402_ledger_errors_total",
            "Ledger calls that failed or timed out.",
            self.ledger_errors.load(Ordering::Relaxed),
        );
        counter(
            "x402_rent_returned_lamports_total",
            "Rent the janitor took back by closing receipts.",
            self.rent_returned.load(Ordering::Relaxed),
        );
        out.push_str("# HELP x402_refusals_total Payments refused, by reason.\n# TYPE x402_refusals_total counter\n");
        for (reason, count) in self.refusals.lock().expect("not poisoned").iter() {
            let _ = writeln!(out, "x402_refusals_total{{reason=\"{reason}\"}} {count}");
        }
        out.push_str("# HELP x402_ledger_call_seconds Ledger call latency.\n# TYPE x402_ledger_call_seconds histogram\n");
        for (call, h) in self.ledger_calls.lock().expect("not poisoned").iter() {
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "x402_ledger_call_seconds_bucket{{call=\"{call}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "x402_ledger_call_seconds_bucket{{call=\"{call}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "x402_ledger_call_seconds_sum{{call=\"{call}\"}} {}",
                h.sum_seconds
            );
            let _ = writeln!(
                out,
                "x402_ledger_call_seconds_count{{call=\"{call}\"}} {}",
                h.count
            );
        }
        if let Some(lamports) = rent_held {
            let _ = writeln!(
                out,
                "# HELP x402_rent_held_lamports Rent deposited in open receipts the fee payer funded.\n\
                 # TYPE x402_rent_held_lamports gauge\nx402_rent_held_lamports {lamports}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_refusals_and_a_cumulative_histogram() {
        let metrics = Metrics::default();
        metrics.challenge_issued();
        metrics.challenge_issued();
        metrics.granted();
        metrics.refused("expired_reference");
        metrics.ledger_call("account", Duration::from_millis(20), false);
        metrics.ledger_call("account", Duration::from_secs(2), true);
        let text = metrics.render(Some(2_289_840));
        for line in [
            "x402_challenges_total 2",
            "x402_grants_total 1",
            "x402_ledger_errors_total 1",
            "x402_refusals_total{reason=\"expired_reference\"} 1",
            "x402_ledger_call_seconds_bucket{call=\"account\",le=\"0.01\"} 0",
            "x402_ledger_call_seconds_bucket{call=\"account\",le=\"0.025\"} 1",
            "x402_ledger_call_seconds_bucket{call=\"account\",le=\"3\"} 2",
            "x402_ledger_call_seconds_bucket{call=\"account\",le=\"+Inf\"} 2",
            "x402_ledger_call_seconds_count{call=\"account\"} 2",
            "x402_rent_held_lamports 2289840",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!metrics.render(None).contains("x402_rent_held_lamports"));
    }
}
