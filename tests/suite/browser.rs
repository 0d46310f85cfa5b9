//! People in browsers: Debian's Chromium, headless, driven by Playwright
//! (`js/test/browser/`), with a test Wallet Standard wallet (a keypair, no extension)
//! injected into the page: the verifier's paywall page on the demo route of a verifier
//! built as `cargo run --bin x402-verifier` builds it, the test harness's routes for the
//! failures, and a React page calling the API with `useX402()`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anchor_lang::prelude::Pubkey;
use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::Ledger;

use crate::verifier::support::{Harness, PRICE};

fn js_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../js");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "the paywall's packages are missing: npm ci --prefix js (scripts/test does)"
    );
    dir
}

/// What the page showed after the pay button was clicked.
pub(crate) struct Outcome {
    pub(crate) json: serde_json::Value,
    screenshot: PathBuf,
    _dir: tempfile::TempDir,
}

impl Outcome {
    pub(crate) fn state(&self) -> &str {
        self.json["state"].as_str().unwrap_or_default()
    }
}

/// Opens `url` in Chromium as a person would, with a wallet holding `keypair` (none for
/// the `no-wallet` scenario), and clicks pay.
async fn browse(url: &str, keypair: &Path, scenario: &str) -> Outcome {
    drive("paywall.mjs", url, keypair, scenario, &[]).await
}

/// Runs the browser driver `script` on `url` (the page, or the API the React page calls),
/// with `env` for the driver (`X402_SIGN_DELAY_MS`: the wallet takes that long to sign).
pub(crate) async fn drive(
    script: &str,
    url: &str,
    keypair: &Path,
    scenario: &str,
    env: &[(&str, &str)],
) -> Outcome {
    let chromium = std::env::var("X402_CHROMIUM")
        .expect("X402_CHROMIUM names Debian's chromium for the browser tests (scripts/test)");
    let dir = tempfile::tempdir().unwrap();
    let screenshot = dir.path().join(format!("{scenario}.png"));
    let mut command = Command::new("node");
    command
        .arg(js_dir().join("test/browser").join(script))
        .env("X402_CHROMIUM", chromium)
        .env("X402_URL", url)
        .env("X402_API_URL", url)
        .env("X402_KEYPAIR", keypair)
        .env("X402_SCENARIO", scenario)
        .env("X402_SCREENSHOT", &screenshot)
        .envs(env.iter().copied());
    // Off the runtime: the verifier under test answers on it.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("node runs the browser driver");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{scenario}: {stdout}\n{stderr}");
    let json = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{scenario}: {e}: {stdout}\n{stderr}"));
    Outcome {
        json,
        screenshot,
        _dir: dir,
    }
}

/// A token account's balance: bytes 64..72 of the account (after mint and owner).
async fn tokens(ledger: &dyn Ledger, owner: &Pubkey, mint: &Pubkey) -> u64 {
    let account = anchor_spl::associated_token::get_associated_token_address(owner, mint);
    match ledger.account(&account).await.unwrap() {
        Some(account) => u64::from_le_bytes(account.data[64..72].try_into().unwrap()),
        None => 0,
    }
}

#[tokio::test]
async fn a_person_pays_the_demo_route_in_a_browser() {
    let state = tempfile::tempdir().unwrap();
    let config = x402_verifier::config::Config {
        state_dir: state.path().to_path_buf(),
        ..Default::default()
    };
    let verifier = x402_verifier::server::build(config).await.unwrap();
    let demo_payer = verifier
        .demo_payer
        .clone()
        .expect("the embedded ledger's demo payer");
    let buyer = x402_protocol::keypair::read_keypair_file(&demo_payer).unwrap();
    let settings = verifier.gate.settings();
    let mint = settings.mint;
    let ledger = verifier.gate.ledger().clone();
    let url = format!("{}/demo", x402_testkit::serve(verifier.router).await);
    let before = tokens(ledger.as_ref(), &buyer.pubkey(), &mint).await;

    let outcome = browse(&url, &demo_payer, "pay").await;

    assert_eq!(outcome.state(), "paid", "{}", outcome.json);
    let content = outcome.json["content"].as_str().unwrap_or_default();
    assert!(content.contains("Paid content"), "{content}");
    let explorer = outcome.json["explorer"].as_str().unwrap_or_default();
    assert!(
        explorer.starts_with("https://explorer.solana.com/tx/"),
        "{explorer}"
    );
    assert_eq!(
        tokens(ledger.as_ref(), &buyer.pubkey(), &mint).await,
        before - 10_000,
        "the buyer's USDC is lower by exactly the price (0.01)"
    );
    // The screenshot, taken with the price and the payee on screen.
    assert_eq!(outcome.json["priceVisible"], true);
    assert_eq!(outcome.json["payeeVisible"], true);
    let png = std::fs::read(&outcome.screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
}

/// Each failure a person may meet is shown with its own message, and costs nothing.
#[tokio::test]
async fn each_paywall_failure_is_shown_and_nothing_is_paid() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let buyer = h.new_payer(10 * PRICE).await;
    let keypair = dir.path().join("buyer.json");
    x402_protocol::keypair::write_keypair_file(&buyer, &keypair).unwrap();
    let broke = dir.path().join("broke.json");
    x402_protocol::keypair::write_keypair_file(&Keypair::new(), &broke).unwrap();

    let cases = [
        ("no-wallet", "/api/page", &keypair, "no-wallet"),
        ("wallet-rejected", "/api/page", &keypair, "wallet-rejected"),
        ("pay", "/api/page", &broke, "insufficient-funds"),
        // Its challenge lives 5 seconds: inside the sponsorship's expiry margin.
        ("pay", "/brief", &keypair, "expired"),
    ];
    for (scenario, path, wallet, state) in cases {
        let outcome = browse(&h.url(path), wallet, scenario).await;
        assert_eq!(
            outcome.state(),
            state,
            "{scenario} {path}: {}",
            outcome.json
        );
        assert!(!outcome.json["status"]
            .as_str()
            .unwrap_or_default()
            .is_empty());
    }
    // The ledger does not answer the submission: retry, never pay again.
    let submits = &h.ledger.failing_submits;
    submits.store(true, std::sync::atomic::Ordering::SeqCst);
    let outcome = browse(&h.url("/api/page"), &keypair, "pay").await;
    assert_eq!(outcome.state(), "unavailable", "{}", outcome.json);
    submits.store(false, std::sync::atomic::Ordering::SeqCst);

    assert_eq!(h.token_balance(&buyer.pubkey()).await, 10 * PRICE);
    assert_eq!(h.api.hits(), 0);
}

/// A React page pays through the hook as the paywall does: `call` resolves to the paid
/// answer, `payment` holds the settlement, and the buyer paid once.
#[tokio::test]
async fn the_react_hook_pays_the_api_once_in_a_browser() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let buyer = h.new_payer(10 * PRICE).await;
    let keypair = dir.path().join("buyer.json");
    x402_protocol::keypair::write_keypair_file(&buyer, &keypair).unwrap();

    let outcome = drive("react.mjs", &h.url("/api/react"), &keypair, "pay", &[]).await;

    assert_eq!(outcome.state(), "paid", "{}", outcome.json);
    assert_eq!(
        outcome.json["result"], "served /api/react body=",
        "{}",
        outcome.json
    );
    assert_eq!(h.token_balance(&buyer.pubkey()).await, 9 * PRICE);
    assert_eq!(h.api.hits(), 1);

    let rejected = drive(
        "react.mjs",
        &h.url("/api/react"),
        &keypair,
        "wallet-rejected",
        &[],
    )
    .await;
    assert_eq!(rejected.state(), "error", "{}", rejected.json);
    assert_eq!(h.token_balance(&buyer.pubkey()).await, 9 * PRICE);
}
