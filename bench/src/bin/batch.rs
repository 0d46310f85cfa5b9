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
use futures_util::{stream, StreamExt};
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
        verifier: binary,
        work,
        requests,
    } = clap::Parser::parse();
    let upstream = x402_testkit::serve(
        axum::Router::new().route("/search", axum::routing::get(|| async { "results" })),
    )
    .await;
    // Claims out of the way while the request path is measured.
    let verifier = start(&binary, &work.join("requests"), &upstream, 3600);
    let url = format!("{}/search", verifier.url());
    let payer = work.join("requests/state/demo-payer.json");
    let (network, mint) = local_market(&url).await;

    println!(
        "{:<30} {:>6} {:>12} {:>9} {:>9} {:>8}",
        "path", "conns", "requests/s", "p50 ms", "p99 ms", "ratio"
    );
    let mut added = None;
    for connections in [1u64, 16, 64] {
        let per_channel = requests.div_ceil(connections) + 1;
        let challenge = drive(connections, per_channel, &url, Paying::Nothing).await;
        // Two sets of channels, each opened before the clock starts: one paid with
        // vouchers signed ahead (the verifier's own rate), one through the `x402`
        // library (its signing on the same cores).
        let signed_ahead = buyers(&payer, &network, mint, connections, per_channel * PRICE);
        let library = buyers(&payer, &network, mint, connections, per_channel * PRICE);
        // Eight opens at a time: each is a sponsored transaction on the embedded ledger.
        let opens: Vec<_> = stream::iter(signed_ahead.iter().chain(&library))
            .map(|buyer| buyer.get(&url))
            .buffer_unordered(8)
            .collect()
            .await;
        for opened in opens {
            assert_eq!(opened.expect("an open").response.status(), 200);
        }
        let vouchers: Vec<Vec<(&str, String)>> = signed_ahead
            .iter()
            .map(|buyer| vouchers_ahead(buyer, &payer, per_channel))
            .collect();
        let before = Counts::read(&verifier).await;
        let paid = drive(connections, per_channel - 1, &url, Paying::Ahead(&vouchers)).await;
        let counts = Counts::read(&verifier).await.since(&before);
        let through = drive(
            connections,
            per_channel - 1,
            &url,
            Paying::Library(&library),
        )
        .await;
        let line = |name: &str, run: &Run, ratio: String| {
            println!(
                "{name:<30} {connections:>6} {:>12.0} {:>9.2} {:>9.2} {ratio:>8}",
                run.rate,
                ms(run.p50),
                ms(run.p99)
            )
        };
        line("challenge (402, no payment)", &challenge, String::new());
        line(
            "paid, vouchers signed ahead",
            &paid,
            format!("{:.2}x", paid.rate / challenge.rate),
        );
        line(
            "paid, through the x402 library",
            &through,
            format!("{:.2}x", through.rate / challenge.rate),
        );
        println!(
            "{:<30} {connections:>6} per paid request: {:.3} ledger calls, {:.3} store commits ({} commits for {} vouchers)",
            "",
            counts.calls as f64 / paid.requests as f64,
            counts.commits as f64 / counts.vouchers.max(1) as f64,
            counts.commits,
            counts.vouchers,
        );
        if connections == 1 {
            let direct = drive(
                1,
                per_channel,
                &format!("{upstream}/search"),
                Paying::Nothing,
            )
            .await;
            added = Some((paid.p50, direct.p50));
        }
        for buyer in &library {
            for held in buyer.channel_book().channels() {
                if !held.closed {
                    buyer.close_channel(&held.channel).await.expect("closed");
                }
            }
        }
    }
    if let Some((paid, direct)) = added {
        println!(
            "latency a paid request adds over the upstream directly (p50, 1 connection): {:.2} ms ({:.2} ms paid, {:.2} ms direct; target: at most 1 ms)",
            ms(paid.saturating_sub(direct)),
            ms(paid),
            ms(direct)
        );
    }
    println!("verifier peak RSS: {} MiB", verifier.peak_rss() / 1024);
    drop(verifier);

    // 1,000 paid requests over 10 channels, on a verifier claiming every 2 s: the opens,
    // then the claims that settle them all.
    let verifier = start(&binary, &work.join("claims"), &upstream, 2);
    let url = format!("{}/search", verifier.url());
    let payer = work.join("claims/state/demo-payer.json");
    let (network, mint) = local_market(&url).await;
    let before = Counts::read(&verifier).await;
    let buyers = buyers(&payer, &network, mint, 10, 100 * PRICE);
    drive(10, 100, &url, Paying::Library(&buyers)).await;
    let channels: usize = buyers
        .iter()
        .map(|b| b.channel_book().channels().len())
        .sum();
    // Two claim rounds past the last voucher.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = Counts::read(&verifier).await.since(&before);
    println!(
        "1,000 paid requests over 10 channels: {} transactions in all: {channels} opens, {} claims (target: at most 5)",
        after.submits,
        after.submits - channels as u64
    );
}

/// What the verifier's /metrics count.
struct Counts {
    /// Ledger calls a request could make: account reads and submissions.
    calls: u64,
    submits: u64,
    commits: u64,
    vouchers: u64,
}

impl Counts {
    async fn read(verifier: &VerifierProcess) -> Counts {
        let text = reqwest::get(format!("{}/metrics", verifier.url()))
            .await
            .expect("/metrics")
            .text()
            .await
            .expect("its text");
        let metric = |name: &str, labels: &str| {
            text.lines()
                .filter(|line| line.starts_with(name) && line.contains(labels))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        };
        let submits = metric("x402_ledger_call_seconds_count", "call=\"submit\"");
        Counts {
            calls: metric("x402_ledger_call_seconds_count", "call=\"account\"") + submits,
            submits,
            commits: metric("x402_store_voucher_commits_total", ""),
            vouchers: metric("x402_batch_vouchers_total", ""),
        }
    }

    fn since(&self, before: &Counts) -> Counts {
        Counts {
            calls: self.calls - before.calls,
            submits: self.submits - before.submits,
            commits: self.commits - before.commits,
            vouchers: self.vouchers - before.vouchers,
        }
    }
}

/// The verifier on its embedded ledger with `/search` in `batch-settlement` at 0.001,
/// proxied to `upstream`, claiming every `claim_interval` seconds.
fn start(verifier: &Path, work: &Path, upstream: &str, claim_interval: u64) -> VerifierProcess {
    std::fs::create_dir_all(work).expect("the work directory");
    let config = format!(
        "[payment]\nmin_payment = \"0.001\"\nbatch_claim_interval_seconds = {claim_interval}\n\
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

/// How a run pays.
#[derive(Clone, Copy)]
enum Paying<'a> {
    /// Nothing: the challenge path (or the upstream directly).
    Nothing,
    /// Each connection its own list of voucher headers, signed ahead.
    Ahead(&'a [Vec<(&'static str, String)>]),
    /// Each connection its own `x402` client.
    Library(&'a [X402Client]),
}

/// `connections` loops of `each` GETs of `url`, paid as `paying` says.
async fn drive(connections: u64, each: u64, url: &str, paying: Paying<'_>) -> Run {
    let plain = reqwest::Client::new();
    let started = Instant::now();
    let loops = (0..connections as usize).map(|i| {
        let plain = plain.clone();
        async move {
            let mut latencies = Vec::with_capacity(each as usize);
            for n in 0..each as usize {
                let sent = Instant::now();
                let status = match paying {
                    Paying::Library(buyers) => {
                        let paid = buyers[i].get(url).await.expect("a paid request");
                        let status = paid.response.status();
                        paid.response.bytes().await.expect("the body");
                        status
                    }
                    Paying::Ahead(vouchers) => {
                        let (name, value) = &vouchers[i][n];
                        let answer = plain
                            .get(url)
                            .header(*name, value)
                            .send()
                            .await
                            .expect("an answer");
                        let status = answer.status();
                        answer.bytes().await.expect("the body");
                        status
                    }
                    Paying::Nothing => {
                        let answer = plain.get(url).send().await.expect("an answer");
                        let status = answer.status();
                        answer.bytes().await.expect("the body");
                        status
                    }
                };
                if !matches!(paying, Paying::Nothing) {
                    assert_eq!(status, 200, "a paid request");
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

/// The voucher headers of `buyer`'s channel (just opened, its first request paid) for
/// its next `count - 1` requests, signed ahead by `payer`.
fn vouchers_ahead(buyer: &X402Client, payer: &Path, count: u64) -> Vec<(&'static str, String)> {
    use x402_protocol::scheme::batch::{build_voucher, BatchOffer};
    use x402_protocol::wire::{encode_header, v2, Offer};
    let keypair = read_keypair_file(payer).expect("the demo payer");
    let held = &buyer.channel_book().channels()[0];
    let channel = held.config.read().expect("a channel");
    let resource = v2::ResourceInfo {
        url: held.resource.clone(),
        description: None,
        mime_type: None,
    };
    let terms = BatchOffer::from_offer(&Offer::from_v2(&held.offer, &resource))
        .expect("the offer")
        .terms;
    (2..=count)
        .map(|n| {
            let payload = build_voucher(&keypair, &terms, &channel, n * PRICE);
            let payment = v2::PaymentPayload {
                x402_version: 2,
                resource: None,
                accepted: held.offer.clone(),
                payload: serde_json::to_value(payload).expect("serializable"),
                extensions: None,
            };
            (v2::PAYMENT_SIGNATURE, encode_header(&payment))
        })
        .collect()
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
