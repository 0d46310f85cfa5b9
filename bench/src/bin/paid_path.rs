//! The paid path over JSON-RPC: the release verifier (a process of its own, as a seller
//! runs it) on a real solana-test-validator with the receipts program, in front of an
//! upstream that answers at once. Buyers pay `receipt` challenges themselves (way 2),
//! then present them; what is measured is the presentation:
//!
//! - the JSON-RPC calls that reach the node per verification, alone (one request at a
//!   time) and in a crowd (64 at once: reads share `getMultipleAccounts` calls), counted
//!   by a proxy between the verifier and the node;
//! - the latency the verifier adds over calling the upstream directly, beside one
//!   `getMultipleAccounts` round trip to the node (through the proxy, as the verifier's
//!   reads go);
//! - the verifier's peak RSS (VmHWM) at the end.
//!
//! `bench/run` runs it after the challenge path:
//!
//! ```sh
//! paid-path --verifier target/release/x402-verifier --validator $X402_TEST_VALIDATOR \
//!     --program target/deploy/x402_receipts.so --work DIR [--payments N]
//! ```
//!
//! N payments in all (356 by default; `bench/run` makes 740): 100 presented one at a
//! time, the rest 64 at once.

use std::time::{Duration, Instant};

use anchor_lang::prelude::Pubkey;
use futures_util::{stream, StreamExt};
use x402_bench::{ms, percentile, OnValidator};
use x402_client::{Challenge, Payment, X402Client};
use x402_testkit::{serve, RpcProxy};

/// Base units of a request (0.01 of a 6-decimal token).
const PRICE: u64 = 10_000;
/// Requests presented one at a time; the rest are presented 64 at once.
const ALONE: usize = 100;
const CROWD: usize = 64;

/// `paid-path`'s arguments.
#[derive(clap::Parser)]
#[command(
    name = "paid-path",
    about = "The paid path over JSON-RPC: node reads per verification, latency added, peak RSS"
)]
struct Args {
    #[command(flatten)]
    on: OnValidator,
    /// Payments in all: ALONE presented one at a time, the rest CROWD at once.
    #[arg(long, default_value_t = ALONE + 4 * CROWD)]
    payments: usize,
}

#[tokio::main]
async fn main() {
    let args = <Args as clap::Parser>::parse();
    assert!(
        args.payments > ALONE,
        "--payments must be more than {ALONE}"
    );
    let market = args.on.market(&[]).await;
    let merchant = &market.merchant;
    let counter = RpcProxy::start(&market.validator.url).await;
    let upstream = serve(axum::Router::new().fallback(|| async { r#"{"ok":true}"# })).await;
    // Fixed, below the ephemeral range and the validators' ports (from 20,000 up).
    // `/api/*` at 0.01 in `receipt` only (no fee payer: buyers pay themselves).
    let routes = format!(
        r#"[[routes]]
path = "/api/*"
methods = ["GET"]
price = "0.01"
upstream = "{upstream}"
"#
    );
    let verifier = args
        .on
        .verifier("127.0.0.1:18495", &counter.url, &market, "", &routes);
    let url = verifier.url();

    let buyer = market.buyer(PRICE);
    let http = reqwest::Client::new();
    let paid = pay(&http, &buyer, &url, args.payments).await;
    let (alone, crowd) = paid.split_at(ALONE);

    let round_trip = percentile(&node_round_trips(&http, &counter.url, merchant).await, 50);
    let upstream_alone = timed(&http, &upstream, ALONE, 1, None).await;
    let before = reads(&counter);
    let verifier_alone = timed(&http, &url, alone.len(), 1, Some(alone)).await;
    let reads_alone = reads(&counter) - before;
    let read_alone = mean_account_read(&http, &url).await;
    let upstream_crowd = timed(&http, &upstream, crowd.len(), CROWD, None).await;
    let before = reads(&counter);
    let verifier_crowd = timed(&http, &url, crowd.len(), CROWD, Some(crowd)).await;
    let reads_crowd = reads(&counter) - before;
    let rss = verifier.peak_rss();

    println!(
        "{:<22} {:>5} {:>12} {:>10} {:>10} {:>16}",
        "paid path", "conns", "requests/s", "p50 ms", "p99 ms", "node reads/req"
    );
    for (name, connections, figures, reads) in [
        ("verifier (paid)", 1, &verifier_alone, Some(reads_alone)),
        ("upstream directly", 1, &upstream_alone, None),
        ("verifier (paid)", CROWD, &verifier_crowd, Some(reads_crowd)),
        ("upstream directly", CROWD, &upstream_crowd, None),
    ] {
        let reads = reads.map_or(String::new(), |r| {
            format!("{:.3}", r as f64 / figures.latencies.len() as f64)
        });
        let line = format!(
            "{name:<22} {connections:>5} {:>12.0} {:>10.2} {:>10.2} {reads:>16}",
            figures.rate,
            ms(percentile(&figures.latencies, 50)),
            ms(percentile(&figures.latencies, 99)),
        );
        println!("{}", line.trim_end());
    }
    let added = percentile(&verifier_alone.latencies, 50)
        .saturating_sub(percentile(&upstream_alone.latencies, 50));
    println!(
        "added p50, alone: {:.2} ms; one getMultipleAccounts round trip: {:.2} ms; target: at most {:.2} ms",
        ms(added),
        ms(round_trip),
        ms(round_trip) + 1.0
    );
    println!(
        "of which the receipt's read, as the verifier timed it (mean): {:.2} ms",
        ms(read_alone)
    );
    println!(
        "verifier peak RSS: {} MiB (JSON-RPC ledger, {} payments)",
        rss / 1024,
        args.payments
    );
}

/// The account reads `proxy` passed on to the node so far.
fn reads(proxy: &RpcProxy) -> usize {
    proxy.count("getMultipleAccounts") + proxy.count("getAccountInfo")
}

/// `count` challenges at `/api/<n>`, each paid on chain by `buyer` (16 at a time).
async fn pay(
    http: &reqwest::Client,
    buyer: &X402Client,
    url: &str,
    count: usize,
) -> Vec<(String, Payment)> {
    let started = Instant::now();
    let paid: Vec<_> = stream::iter(0..count)
        .map(|n| async move {
            let path = format!("{url}/api/{n}");
            let answer = http.get(&path).send().await.expect("a challenge");
            assert_eq!(answer.status(), 402);
            let mut challenge = Challenge::read(answer).await.expect("a challenge");
            // The payer's proof names the request it pays for.
            challenge.request = Some((reqwest::Method::GET, path.parse().expect("a URL")));
            let payment = buyer.pay(&challenge).await.expect("paid on chain");
            assert_eq!(payment.offer.amount(), PRICE);
            (path, payment)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    eprintln!(
        "paid-path: {count} payments made on chain in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    paid
}

/// Requests per second and each request's latency.
struct Figures {
    rate: f64,
    latencies: Vec<Duration>,
}

/// `count` GETs at `connections` at once: of `url` (the upstream), or of each paid path
/// with its payment. Every answer must be a 200.
async fn timed(
    http: &reqwest::Client,
    url: &str,
    count: usize,
    connections: usize,
    payments: Option<&[(String, Payment)]>,
) -> Figures {
    let started = Instant::now();
    let latencies: Vec<Duration> = stream::iter(0..count)
        .map(|n| async move {
            let request = match payments {
                Some(paid) => {
                    let (path, payment) = &paid[n];
                    let (name, value) = &payment.header;
                    http.get(path).header(*name, value)
                }
                None => http.get(format!("{url}/api/{n}")),
            };
            let sent = Instant::now();
            let answer = request.send().await.expect("an answer");
            let status = answer.status();
            let body = answer.bytes().await.expect("a body");
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            sent.elapsed()
        })
        .buffer_unordered(connections)
        .collect()
        .await;
    Figures {
        rate: count as f64 / started.elapsed().as_secs_f64(),
        latencies,
    }
}

/// The mean time of the verifier's account reads so far (its
/// `x402_ledger_call_seconds{call="account"}`).
async fn mean_account_read(http: &reqwest::Client, url: &str) -> Duration {
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("the verifier's /metrics");
    let text = metrics.text().await.expect("metrics text");
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let sum = value(r#"x402_ledger_call_seconds_sum{call="account"}"#);
    let count = value(r#"x402_ledger_call_seconds_count{call="account"}"#);
    Duration::from_secs_f64(if count > 0.0 { sum / count } else { 0.0 })
}

/// Round trips of a one-key `getMultipleAccounts` to the node through `node` (the
/// counting proxy, the verifier's way to it).
async fn node_round_trips(http: &reqwest::Client, node: &str, key: &Pubkey) -> Vec<Duration> {
    let call = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "getMultipleAccounts",
        "params": [[key.to_string()], {"encoding": "base64", "commitment": "confirmed"}],
    });
    let mut round_trips = Vec::new();
    for _ in 0..ALONE {
        let sent = Instant::now();
        let answer = http.post(node).json(&call).send().await.expect("the node");
        answer.bytes().await.expect("the node's answer");
        round_trips.push(sent.elapsed());
    }
    round_trips
}
