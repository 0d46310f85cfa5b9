//! `batch-settlement` on a real validator: an agent pays 1,000 requests through the
//! `x402` library (one deposit, then vouchers the verifier accepts with no ledger call);
//! the seller claims them in one transaction; the buyer closes the channel and gets the
//! rest back. The verifier's ledger counts every transaction it sends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_client::{ChannelBook, Limit, SpendingPolicy, X402Client};
use x402_protocol::rpc::{RpcLedger, RpcOptions};
use x402_protocol::scheme::channel::TREASURY_OWNER;
use x402_protocol::Ledger;
use x402_testkit::TestLedger;
use x402_verifier::scheme::batch::claim_channels;
use x402_verifier::tasks::{self, Schedule};
use x402_verifier::{BatchSettings, Gate, GrantStore, PaymentSettings, Scheme};

use super::chain::{settings, Plan, PRICE};

/// The requests the agent makes.
const REQUESTS: u64 = 1_000;

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_pays_a_thousand_requests_with_three_transactions_and_gets_the_rest_back() {
    let chain = Plan::new().start().await;
    let mint = chain.market.mint;
    chain.token_account(&TREASURY_OWNER, &mint).await;
    let fee_payer = Keypair::new();
    chain.fund(&fee_payer.pubkey()).await;
    let network = chain.ledger.network().clone();
    let rpc = RpcLedger::with_network(&chain.validator.url, network.clone(), RpcOptions::default());
    let counted = Arc::new(TestLedger::over(Arc::new(rpc)));
    let dir = tempfile::tempdir().unwrap();
    let store = GrantStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("grants.db").display()
    ))
    .await
    .unwrap();
    // Claims when the test asks, not in the background.
    let settings = PaymentSettings {
        batch: BatchSettings {
            claim_interval: Duration::from_secs(3600),
            ..BatchSettings::default()
        },
        ..settings(
            network.clone(),
            mint,
            chain.market.merchant,
            Some(fee_payer.insecure_clone()),
        )
    };
    let gate = Gate::new(settings, counted.clone(), store);
    let schedule = Schedule {
        janitor: None,
        ..Schedule::default()
    };
    tasks::start(&gate, &schedule).await;
    let router = axum::Router::new()
        .route("/search", axum::routing::get(|| async { "results" }))
        .layer(gate.price("0.01").schemes(&[Scheme::Batch]));
    let url = format!("{}/search", x402_testkit::serve(router).await);

    let buyer = Keypair::new();
    chain.token_account(&buyer.pubkey(), &mint).await;
    let tokens = (REQUESTS + 200) * PRICE;
    chain.mint_to(&mint, &buyer.pubkey(), tokens).await;
    let deposit = (REQUESTS + 100) * PRICE;
    let book = tempfile::tempdir().unwrap();
    let client = X402Client::builder()
        .keypair(buyer.insecure_clone())
        .ledger(Arc::new(RpcLedger::with_network(
            &chain.validator.url,
            network.clone(),
            RpcOptions::default(),
        )))
        .policy(SpendingPolicy {
            max_per_request: Some(Limit::Units(PRICE)),
            max_deposit: Some(Limit::Units(deposit)),
            networks: vec![network.caip2().to_string()],
            ..SpendingPolicy::default()
        })
        .prefer(&["batch-settlement"])
        .channel_book(ChannelBook::open(book.path()).unwrap())
        .deposit(deposit)
        .retries(3, Duration::from_millis(200))
        .build();

    let merchant_before = chain.token_balance(&chain.market.merchant).await;
    let started = Instant::now();
    let first = client.get(&url).await.unwrap();
    assert_eq!(first.response.status(), 200);
    let opened = started.elapsed();
    let reads = counted.reads.load(Ordering::SeqCst);
    let submits = counted.submits.load(Ordering::SeqCst);
    let started = Instant::now();
    for n in 2..=REQUESTS {
        let paid = client.get(&url).await.unwrap();
        assert_eq!(paid.response.status(), 200, "request {n}");
        assert_eq!(paid.settlement.unwrap().batch_charged, Some(n * PRICE));
    }
    let vouchers = started.elapsed();
    println!(
        "the open took {opened:?}; {} vouchers took {vouchers:?} ({:?} each)",
        REQUESTS - 1,
        vouchers / (REQUESTS as u32 - 1)
    );
    assert_eq!(
        (
            counted.reads.load(Ordering::SeqCst),
            counted.submits.load(Ordering::SeqCst)
        ),
        (reads, submits),
        "no ledger call for a voucher"
    );
    assert_eq!(client.spent(), REQUESTS * PRICE);

    let (claimed, claims) = claim_channels(&gate).await.unwrap();
    assert_eq!((claimed, claims), (1, 1));
    assert_eq!(
        chain.token_balance(&chain.market.merchant).await,
        merchant_before + REQUESTS * PRICE,
        "the seller is paid exactly the sum of the prices"
    );
    let channel = client.channel_book().channels()[0].channel.clone();
    let refunded = client.close_channel(&channel).await.unwrap();
    assert_eq!(refunded, deposit - REQUESTS * PRICE);
    assert_eq!(
        chain.token_balance(&buyer.pubkey()).await,
        tokens - REQUESTS * PRICE,
        "the buyer paid exactly the sum of the prices and has the rest back"
    );
    assert_eq!(
        counted.submits.load(Ordering::SeqCst),
        3,
        "the open, one claim and the close: three transactions for {REQUESTS} paid requests"
    );

    // The same from the command line: `x402 fetch` three times (each run continues the
    // channel kept in --channels), then `x402 channels close`.
    let cli = Keypair::new();
    chain.token_account(&cli.pubkey(), &mint).await;
    chain.mint_to(&mint, &cli.pubkey(), 10 * PRICE).await;
    let keypair = chain.validator.write_keypair("batch-cli", &cli);
    let channels = tempfile::tempdir().unwrap();
    let units = |n: u64| (n * PRICE).to_string();
    let run = |args: Vec<String>| {
        let output = std::process::Command::new(crate::client::cli::x402())
            .arg("--json")
            .args(&args)
            .arg("--keypair")
            .arg(&keypair)
            .arg("--channels")
            .arg(channels.path())
            .output()
            .unwrap();
        let document: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
        (output.status.code(), document)
    };
    for n in 1..=3u64 {
        let (code, out) = tokio::task::block_in_place(|| {
            run(vec![
                "fetch".into(),
                url.clone(),
                "--prefer".into(),
                "batch-settlement".into(),
                "--max-units".into(),
                units(1),
                "--max-deposit-units".into(),
                units(5),
                "--deposit-units".into(),
                units(5),
                "--allow-network".into(),
                network.caip2().to_string(),
                "--rpc-url".into(),
                chain.validator.url.clone(),
            ])
        });
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(out["body"], "results", "{out}");
        assert_eq!(
            out["settlement"]["scheme"], "batch-settlement",
            "run {n}: {out}"
        );
    }
    let (code, out) = tokio::task::block_in_place(|| run(vec!["channels".into(), "close".into()]));
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["closed"][0]["refunded"], units(2), "{out}");
    assert_eq!(chain.token_balance(&cli.pubkey()).await, 7 * PRICE);
    assert_eq!(
        counted.submits.load(Ordering::SeqCst),
        5,
        "three paid requests from the command line: one open, one close"
    );
}
