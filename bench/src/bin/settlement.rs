//! The sponsored settlement rate: paid requests per second through the release verifier
//! on its embedded ledger (as `cargo run` starts it: the demo route, the fee payer
//! co-signing `receipt` payments), beside the bank's raw rate for the same `pay`
//! transactions (sponsored, signed by payer and fee payer) sent straight to a bank of
//! the same kind, at the same concurrency.
//!
//! A paid request here is the whole of it as a buyer sees it: the challenge, the
//! payer's signature, the verifier's checks, its co-signature and submission (with the
//! preflight that keeps a failing payment from costing the fee payer), the grant and the
//! answer. The bank's raw rate is signing and processing alone.
//!
//! ```sh
//! settlement --verifier target/release/x402-verifier --work DIR [--payments 2000]
//! ```

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anchor_lang::prelude::Pubkey;
use anchor_spl::token::spl_token;
use futures_util::{stream, StreamExt};
use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_client::X402Client;
use x402_protocol::keypair::read_keypair_file;
use x402_protocol::{Reference, Requirement};
use x402_testkit::bank;
use x402_testkit::process::Launch;

/// Payments in flight at once, on both sides.
const CONNECTIONS: usize = 8;
/// Base units of the demo route's price (0.01 of a 6-decimal token).
const PRICE: u64 = 10_000;

/// `settlement`'s arguments.
#[derive(clap::Parser)]
#[command(
    name = "settlement",
    about = "Sponsored settlement: paid requests per second through the verifier beside the bank's raw rate"
)]
struct Args {
    /// The verifier binary (a release build).
    #[arg(long)]
    verifier: PathBuf,
    /// Where the verifier's state and log go.
    #[arg(long)]
    work: PathBuf,
    /// Payments on each side.
    #[arg(long, default_value_t = 2000)]
    payments: usize,
}

#[tokio::main]
async fn main() {
    let Args {
        verifier,
        work,
        payments,
    } = clap::Parser::parse();

    let raw = bank_rate(payments).await;
    let settled = verifier_rate(&verifier, &work, payments).await;
    println!(
        "{:<40} {:>12} {:>8}",
        "sponsored settlement (embedded ledger)", "payments/s", "ratio"
    );
    println!("{:<40} {raw:>12.0}", "bank, raw (sign and process)");
    println!(
        "{:<40} {settled:>12.0} {:>7.2}x",
        "verifier (paid request, end to end)",
        settled / raw
    );
}

/// Sponsored `pay` transactions per second a bank processes, signed just before, at
/// [`CONNECTIONS`] at once.
async fn bank_rate(payments: usize) -> f64 {
    let mut context = bank::program_test().start_with_context().await;
    let parties = bank::parties(
        &mut context,
        spl_token::ID,
        6,
        None,
        PRICE * payments as u64,
    )
    .await;
    let fee_payer = Keypair::new();
    bank::fund(&mut context, &fee_payer.pubkey(), 100_000_000_000).await;
    let banks = context.banks_client.clone();
    // A blockhash refreshed as the verifier refreshes its own (every 100 ms).
    let blockhash = Arc::new(RwLock::new(
        banks.get_latest_blockhash().await.expect("a blockhash"),
    ));
    let refresh = {
        let (banks, blockhash) = (banks.clone(), blockhash.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(latest) = banks.get_latest_blockhash().await {
                    *blockhash.write().expect("not poisoned") = latest;
                }
            }
        })
    };
    let expires_at = x402_verifier::unix_now() + 600;
    let started = Instant::now();
    stream::iter(0..payments)
        .for_each_concurrent(CONNECTIONS, |_| {
            let (banks, blockhash) = (banks.clone(), blockhash.clone());
            let (parties, fee_payer) = (&parties, &fee_payer);
            async move {
                let mut reference = Pubkey::new_unique().to_bytes();
                reference[..8].copy_from_slice(&expires_at.to_be_bytes());
                let requirement = Requirement {
                    program: x402_receipts::ID,
                    reference: Reference(reference),
                    amount: PRICE,
                    expires_at,
                    mint: parties.mint,
                    token_program: parties.token_program,
                    pay_to: parties.payee,
                };
                let pay = requirement.pay_instruction(&parties.payer.pubkey(), &fee_payer.pubkey());
                let recent = *blockhash.read().expect("not poisoned");
                let transaction = solana_transaction::Transaction::new_signed_with_payer(
                    &[pay],
                    Some(&fee_payer.pubkey()),
                    &[fee_payer, &parties.payer],
                    recent,
                );
                banks
                    .process_transaction(transaction)
                    .await
                    .expect("the payment lands");
            }
        })
        .await;
    let rate = payments as f64 / started.elapsed().as_secs_f64();
    refresh.abort();
    rate
}

/// The CAIP-2 network a 402 of `url` names (a local ledger's id changes with its genesis).
async fn local_network(url: &str) -> String {
    use x402_protocol::wire::{decode_header, v2};
    let response = reqwest::get(url).await.expect("a 402");
    let header = response.headers()[v2::PAYMENT_REQUIRED]
        .to_str()
        .expect("ASCII")
        .to_string();
    let required: v2::PaymentRequired = decode_header(&header).expect("a v2 challenge");
    required.accepts[0].network.clone()
}

/// Paid requests per second of the verifier's demo route, sponsored, at [`CONNECTIONS`]
/// at once: one buyer (the demo payer), so the per-payer cap on sponsored submissions
/// in flight is raised to match.
async fn verifier_rate(verifier: &std::path::Path, work: &std::path::Path, payments: usize) -> f64 {
    std::fs::create_dir_all(work).expect("the work directory");
    let state = work.join("settlement-state");
    let listen = "127.0.0.1:18496";
    let verifier = Launch::new(verifier)
        .env("X402_STATE_DIR", &state)
        .env("X402_LISTEN", listen)
        .env(
            "X402_MAX_SPONSORED_IN_FLIGHT_PER_PAYER",
            CONNECTIONS.to_string(),
        )
        .in_dir(work)
        .start();
    let url = verifier.url();
    // The demo's local mint is no stablecoin the client knows: its cap is in base units;
    // and without an RPC the client pays only on a network allowed by name (the local
    // ledger's, as its 402 names it).
    let policy = x402_client::SpendingPolicy {
        max_per_request: Some(x402_client::Limit::Units(10_000)),
        networks: vec![local_network(&format!("{url}/demo")).await],
        ..Default::default()
    };
    let buyer = X402Client::builder()
        .keypair(read_keypair_file(&state.join("demo-payer.json")).expect("the demo payer"))
        .policy(policy)
        .build();
    let demo = format!("{url}/demo");
    let started = Instant::now();
    stream::iter(0..payments)
        .for_each_concurrent(CONNECTIONS, |_| {
            let (buyer, demo) = (&buyer, &demo);
            async move {
                let paid = buyer.get(demo).await.expect("a paid request");
                assert_eq!(paid.response.status(), 200);
                let settlement = paid.settlement.expect("a settlement");
                assert!(settlement.receipt.is_some(), "a receipt on the ledger");
            }
        })
        .await;
    payments as f64 / started.elapsed().as_secs_f64()
}
