//! `batch-settlement` with the chain out of the request path: paid requests per second
//! over vouchers beside the challenge path of the same verifier (its embedded ledger, as
//! `cargo run` starts it, with a `batch-settlement` route proxied to an upstream in this
//! process), the ledger calls and store commits per paid request, the latency a paid
//! request adds over calling the upstream directly, and the transactions 1,000 paid
//! requests over 10 channels take (the opens, then the claims).
//!
//! Each connection is one buyer channel (the `x402` library, its book in memory): a
//! voucher moves its channel's cumulative total, so one channel's requests are in
//! order, and connections are channels. Both paths are driven by the same client loop.
//!
//! ```sh
//! batch --verifier target/release/x402-verifier --work DIR [--requests 2000]
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anchor_lang::prelude::Pubkey;
use futures_util::future::join_all;
use x402_bench::{ms, percentile};
use x402_client::{Limit, SpendingPolicy, X402Client};
use x402_protocol::keypair::read_keypair_file;
use x402_protocol::MintInfo;
use x402_testkit::process::{Launch, VerifierProcess};

/// Base units of the route's price (0.001 of a 6-decimal token).
const PRICE: u64 = 1_000;

#[derive(clap::Parser)]
#[command(
    name = "batch",
    about = "batch-settlement: paid requests over vouchers beside the challenge path"
)]
struct Args {
    /// The verifier binary (a release build).
    #[arg(long)]
    verifier: PathBuf,
    /// Where the verifier's state and log go.
    #[arg(long)]
    work: PathBuf,
    /// Paid requests at each concurrency.
    #[arg(long, default_value_t = 2000)]
    requests: u64,
}

#[tokio::main]
async fn main() {
    let Args {
        verifier,
        work,
        requests,
    } = clap::Parser::parse();
    let upstream = x402_testkit::serve(
        axum::Router::new().route("/search", axum::routing::get(|| async { "results" })),
    )
    .await;
    let verifier = start(&verifier, &work, &upstream);
    let url = format!("{}/search", verifier.url());
    let payer = work.join("state/demo-payer.json");
    let (network, mint) = local_market(&url).await;

    println!(
        "{:<34} {:>6} {:>12} {:>9} {:>9} {:>8}",
        "path", "conns", "requests/s", "p50 ms", "p99 ms", "ratio"
    );
    let mut added = None;
    for connections in [1u64, 16, 64] {
        let per_channel = requests.div_ceil(connections);
        let challenge = drive(connections, per_channel, &url, None).await;
        let buyers = buyers(&payer, &network, mint, connections, per_channel * PRICE);
        // Each channel's open, before the clock starts.
        join_all(buyers.iter().map(|b| b.get(&url))).await;
        let calls_before = metric(
            &verifier,
            "x402_ledger_call_seconds_count",
            "call=\"account\"",
        )
        .await
            + metric(
                &verifier,
                "x402_ledger_call_seconds_count",
                "call=\"submit\"",
            )
            .await;
        let paid = drive(connections, per_channel - 1, &url, Some(&buyers)).await;
        let calls = metric(
            &verifier,
            "x402_ledger_call_seconds_count",
            "call=\"account\"",
        )
        .await
            + metric(
                &verifier,
                "x402_ledger_call_seconds_count",
                "call=\"submit\"",
            )
            .await
            - calls_before;
        let line = |name: &str, run: &Run, ratio: String| {
            println!(
                "{name:<34} {connections:>6} {:>12.0} {:>9.2} {:>9.2} {ratio:>8}",
                run.rate,
                ms(run.p50),
                ms(run.p99)
            )
        };
        line("challenge (402, no payment)", &challenge, String::new());
        line(
            "paid, a voucher each",
            &paid,
            format!("{:.2}x", paid.rate / challenge.rate),
        );
        println!(
            "{:<34} {connections:>6} ledger calls per paid request: {:.3} ({calls} in {} requests)",
            "",
            calls as f64 / paid.requests as f64,
            paid.requests
        );
        if connections == 1 {
            let direct = drive(1, per_channel, &format!("{upstream}/search"), None).await;
            added = Some((paid.p50, direct.p50));
        }
        for buyer in &buyers {
            for held in buyer.channel_book().channels() {
                buyer.close_channel(&held.channel).await.expect("closed");
            }
        }
    }
    if let Some((paid, direct)) = added {
        println!(
            "latency a paid request adds over the upstream directly (p50, 1 connection): {:.2} ms ({:.2} ms paid, {:.2} ms direct; target at most 1 ms)",
            ms(paid.saturating_sub(direct)),
            ms(paid),
            ms(direct)
        );
    }

    // 1,000 paid requests over 10 channels: the opens, then one claim round.
    let submits_before = metric(
        &verifier,
        "x402_ledger_call_seconds_count",
        "call=\"submit\"",
    )
    .await;
    let buyers = buyers(&payer, &network, mint, 10, 100 * PRICE);
    drive(10, 100, &url, Some(&buyers)).await;
    let opened = metric(
        &verifier,
        "x402_ledger_call_seconds_count",
        "call=\"submit\"",
    )
    .await;
    // The claim interval is 2 s: wait for a round past the last voucher.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let claimed = metric(
        &verifier,
        "x402_ledger_call_seconds_count",
        "call=\"submit\"",
    )
    .await;
    println!(
        "1,000 paid requests over 10 channels: {} transactions to open, {} to claim them all (target at most 5)",
        opened - submits_before,
        claimed - opened
    );
    let commits = metric(&verifier, "x402_store_voucher_commits_total", "").await;
    let vouchers = metric(&verifier, "x402_batch_vouchers_total", "").await;
    if vouchers > 0 {
        println!(
            "store commits per accepted voucher: {:.3} ({commits} commits for {vouchers} vouchers)",
            commits as f64 / vouchers as f64
        );
    }
    println!("verifier peak RSS: {} MiB", verifier.peak_rss() / 1024);
}

/// The verifier on its embedded ledger with `/search` in `batch-settlement` at 0.001,
/// proxied to `upstream`, claiming every 2 s.
fn start(verifier: &Path, work: &Path, upstream: &str) -> VerifierProcess {
    std::fs::create_dir_all(work).expect("the work directory");
    let config = format!(
        "[payment]\nmin_payment = \"0.001\"\nbatch_claim_interval_seconds = 2\n\
         max_sponsored_in_flight_per_payer = 64\nmax_sponsored_in_flight = 128\n\n\
         [[routes]]\npath = \"/search\"\nupstream = \"{upstream}\"\nprice = \"0.001\"\n\
         schemes = [\"batch-settlement\"]\n\n\
         [limits]\nmax_connections_per_peer = 512\n\n[metrics]\nlisten = \"main\"\n"
    );
    Launch::new(verifier)
        .env("X402_STATE_DIR", work.join("state"))
        .config(&config)
        .in_dir(work)
        .start()
}

/// `count` buyers paying as the demo payer, each with its own channel book (so each
/// opens its own channel) depositing `deposit`; the local mint's facts are the demo's
/// (a classic-Token mint of 6 decimals), given as a user would.
fn buyers(payer: &Path, network: &str, mint: Pubkey, count: u64, deposit: u64) -> Vec<X402Client> {
    let facts = MintInfo {
        decimals: 6,
        token_program: anchor_spl::token::ID,
        delivers_in_full: true,
    };
    (0..count)
        .map(|_| {
            X402Client::builder()
                .keypair(read_keypair_file(payer).expect("the demo payer"))
                .policy(SpendingPolicy {
                    max_per_request: Some(Limit::Units(PRICE)),
                    max_deposit: Some(Limit::Units(deposit)),
                    networks: vec![network.to_string()],
                    ..SpendingPolicy::default()
                })
                .prefer(&["batch-settlement"])
                .deposit(deposit)
                .trusted_mint(mint, facts)
                .build()
        })
        .collect()
}

/// What a run measured.
struct Run {
    rate: f64,
    p50: Duration,
    p99: Duration,
    requests: u64,
}

/// `connections` loops of `each` GETs of `url`: by `buyers` (one each), paid; plain
/// otherwise.
async fn drive(connections: u64, each: u64, url: &str, buyers: Option<&[X402Client]>) -> Run {
    let plain = reqwest::Client::new();
    let started = Instant::now();
    let loops = (0..connections as usize).map(|i| {
        let plain = plain.clone();
        let buyer = buyers.map(|b| &b[i]);
        async move {
            let mut latencies = Vec::with_capacity(each as usize);
            for _ in 0..each {
                let sent = Instant::now();
                match buyer {
                    Some(buyer) => {
                        let paid = buyer.get(url).await.expect("a paid request");
                        assert_eq!(paid.response.status(), 200);
                        paid.response.bytes().await.expect("the body");
                    }
                    None => {
                        let answer = plain.get(url).send().await.expect("an answer");
                        answer.bytes().await.expect("the body");
                    }
                }
                latencies.push(sent.elapsed());
            }
            latencies
        }
    });
    let latencies: Vec<Duration> = join_all(loops).await.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    Run {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 50),
        p99: percentile(&latencies, 99),
        requests: latencies.len() as u64,
    }
}

/// One metric of the verifier's /metrics, summed over the series whose labels hold
/// `labels`.
async fn metric(verifier: &VerifierProcess, name: &str, labels: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", verifier.url()))
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("its text");
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The CAIP-2 network a 402 of `url` names (a local ledger's id changes with its
/// genesis), and its mint.
async fn local_market(url: &str) -> (String, Pubkey) {
    use x402_protocol::wire::{decode_header, v2};
    let response = reqwest::get(url).await.expect("a 402");
    let header = response.headers()[v2::PAYMENT_REQUIRED]
        .to_str()
        .expect("ASCII")
        .to_string();
    let required: v2::PaymentRequired = decode_header(&header).expect("a v2 challenge");
    let offer = &required.accepts[0];
    (offer.network.clone(), offer.asset.parse().expect("a mint"))
}
