//! The `x402` binary, built and run as a person or an agent runs it.

use std::path::{Path, PathBuf};
use std::process::Output;

use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::keypair::write_keypair_file;

use crate::verifier::support::*;

/// The `x402` binary as `cargo test --workspace` builds it (client/tests makes it).
pub fn x402() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let binary = target.join("debug/x402");
    assert!(
        binary.exists(),
        "{} is built by `cargo test --workspace`",
        binary.display()
    );
    binary
}

async fn run(args: &[&str]) -> Output {
    run_in(&std::env::temp_dir(), args).await
}

/// Runs `x402` with `dir` as its working directory.
async fn run_in(dir: &Path, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(x402())
            .args(&args)
            .current_dir(dir)
            .env_remove("X402_RPC_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A funded payer and its keypair file.
async fn payer_file(h: &Harness, dir: &Path) -> (Keypair, String) {
    let payer = h.new_payer(10 * PRICE).await;
    let path = dir.join("payer.json");
    write_keypair_file(&payer, &path).unwrap();
    (payer, path.display().to_string())
}

#[tokio::test]
async fn fetch_prints_the_body_and_a_settlement_line_and_pays_once() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (payer, keypair) = payer_file(&h, dir.path()).await;

    let out = run(&["fetch", &h.url("/api/cli"), "--keypair", &keypair]).await;

    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "served /api/cli body=");
    let summary = text(&out.stderr);
    assert!(
        summary.contains("paid 0.01 in receipt (reference "),
        "{summary}"
    );
    assert!(
        summary.contains("https://explorer.solana.com/tx/"),
        "{summary}"
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, 9 * PRICE);

    let posted = run(&[
        "fetch",
        &h.url("/api/cli"),
        "-X",
        "POST",
        "-d",
        "hello",
        "-H",
        "X-Trace: 1",
        "--keypair",
        &keypair,
    ])
    .await;
    assert_eq!(text(&posted.stdout), "served /api/cli body=hello");
}

#[tokio::test]
async fn fetch_over_the_maximum_exits_3_without_paying() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (payer, keypair) = payer_file(&h, dir.path()).await;

    let out = run(&[
        "fetch",
        &h.url("/api/dear"),
        "--keypair",
        &keypair,
        "--max-units",
        "1000",
    ])
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("MaxPerRequest"),
        "{}",
        text(&out.stderr)
    );
    // A decimal maximum needs the mint's decimals, which the server's word is not: for
    // this local mint, without --rpc-url, it is refused.
    let out = run(&[
        "fetch",
        &h.url("/api/dear"),
        "--keypair",
        &keypair,
        "--max-amount",
        "0.001",
    ])
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("UnknownDecimals"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&[
        "--json",
        "fetch",
        &h.url("/api/dear"),
        "--keypair",
        &keypair,
        "--max-units",
        "1000",
    ])
    .await;
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            answer["exitCode"].as_u64(),
            answer["detail"]["rule"].as_str()
        ),
        (Some(3), Some("MaxPerRequest"))
    );
    assert_eq!(answer["detail"]["amount"], PRICE.to_string());
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        10 * PRICE,
        "nothing paid"
    );
}

#[tokio::test]
async fn quote_shows_the_price_without_paying_and_receipt_shows_what_was_paid() {
    let h = Harness::start().await;
    let quote = run(&["--json", "quote", &h.url("/api/q")]).await;
    assert_eq!(quote.status.code(), Some(0));
    let quote: serde_json::Value = serde_json::from_slice(&quote.stdout).unwrap();
    assert_eq!(quote["offers"][0]["amount"], "0.01");
    assert_eq!(quote["offers"][0]["payTo"], h.market.merchant.to_string());
    assert_eq!(quote["offers"][0]["sponsored"], true);
    assert_eq!(h.api.hits(), 0);

    let dir = tempfile::tempdir().unwrap();
    let (payer, keypair) = payer_file(&h, dir.path()).await;
    let fetched = run(&["--json", "fetch", &h.url("/api/q"), "--keypair", &keypair]).await;
    let fetched: serde_json::Value = serde_json::from_slice(&fetched.stdout).unwrap();
    let reference = fetched["settlement"]["reference"]
        .as_str()
        .unwrap()
        .to_string();

    let shown = run(&["receipt", &reference, "--verifier", &h.url("")]).await;
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    let shown = text(&shown.stdout);
    assert!(
        shown.contains(&payer.pubkey().to_string())
            && shown.contains("explorer.solana.com/address/"),
        "{shown}"
    );

    let unknown = x402_protocol::Reference([3; 32]).to_string();
    let missing = run(&["receipt", &unknown, "--verifier", &h.url("")]).await;
    assert_eq!(missing.status.code(), Some(6));
    let bad = run(&["receipt", "not-a-reference", "--verifier", &h.url("")]).await;
    assert_eq!(bad.status.code(), Some(2));
}

/// The verifier cannot read the payment's receipt for a while: `x402 fetch` keeps the
/// payment in a file it names, and `--resume` presents it once the verifier is back; it is
/// paid once.
#[tokio::test]
async fn an_unavailable_verifier_leaves_the_payment_kept_and_resumable() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (payer, keypair) = payer_file(&h, dir.path()).await;
    // The first presentation and its three retries cannot read the receipt.
    *h.ledger.failing_reads.lock().unwrap() = 4;
    let url = h.url("/api/kept");

    let out = run_in(dir.path(), &["fetch", &url, "--keypair", &keypair]).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--resume"),
        "{}",
        text(&out.stderr)
    );
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.starts_with("x402-payment-").then_some(name)
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");

    let out = run_in(
        dir.path(),
        &["fetch", &url, "--keypair", &keypair, "--resume", &kept[0]],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "served /api/kept body=");
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        9 * PRICE,
        "paid once"
    );
}
