//! Interoperability with stock x402 software on a real validator, in the `exact` scheme
//! (and `upto`, for the stock npm buyer): the stock npm buyer (@x402/fetch with
//! @x402/svm) and the stock Python buyer (`x402`) pay our verifier; our `x402` pays a stock @x402/express seller whose facilitator is
//! the stock x402 facilitator code with its own fee payer; the stock buyer pays the stock
//! seller, as a control (if it fails, the harness is broken, not the product); and a
//! stock seller delegates to our facilitator API.
//! Versions: tests/interop/package.json and requirements.txt.
//!
//! Stock clients accept only public network ids, so the verifier and the stock seller
//! announce devnet's while their RPC is the local validator, as a stock seller's
//! development set-up does (`payment.announce_network`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::rpc::{RpcLedger, RpcOptions};
use x402_protocol::Network;

use anchor_lang::prelude::Pubkey;
use axum::Extension;
use x402_protocol::scheme::upto::TREASURY_OWNER;
use x402_verifier::{Charge, Scheme};

use super::chain::{serve_gate, settings, start_gate, Chain, Plan, PRICE};
use super::paykit::{assert_paid_metered, new_seller};
use crate::verifier::support::FACILITATOR_KEY;

fn interop_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop");
    assert!(
        dir.join("node_modules/@x402/svm").exists(),
        "the stock x402 packages are missing: npm ci --prefix tests/interop (scripts/test does)"
    );
    dir
}

/// Runs a stock buyer (`client.mjs`, or `client.py` with `python`) for `url`, off the
/// runtime (the servers under test run on it): its one line of JSON.
async fn stock_buyer(
    program: &str,
    script: &str,
    url: &str,
    keypair: &Path,
    chain: &Chain,
) -> serde_json::Value {
    stock_buyer_with(program, script, url, keypair, chain, &[]).await
}

/// [`stock_buyer`] with more of the script's settings (`X402_PAY_AFTER_MS`).
async fn stock_buyer_with(
    program: &str,
    script: &str,
    url: &str,
    keypair: &Path,
    chain: &Chain,
    settings: &[(&str, &str)],
) -> serde_json::Value {
    let mut command = Command::new(program);
    command.envs(settings.iter().copied());
    command
        .arg(interop_dir().join(script))
        .env("X402_URL", url)
        .env("X402_KEYPAIR", keypair)
        .env("X402_RPC_URL", &chain.validator.url)
        .env("X402_ASSET", chain.market.mint.to_string())
        .env("X402_MAX_AMOUNT", PRICE.to_string())
        .env("X402_REPLAY", "1");
    run_buyer(command, script).await
}

/// Runs a buyer script's `command` off the runtime (the servers under test run on it):
/// the JSON of its last line, once it succeeded.
pub(super) async fn run_buyer(mut command: Command, script: &str) -> serde_json::Value {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script}: {stdout}\n{stderr}");
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{script}: {e}: {stdout}\n{stderr}"))
}

/// A buyer with `PRICE` tokens and no SOL: in `exact` the seller pays the fee.
pub(super) async fn new_buyer(chain: &Chain, name: &str) -> (Keypair, PathBuf) {
    let buyer = Keypair::new();
    chain
        .token_account(&buyer.pubkey(), &chain.market.mint)
        .await;
    chain
        .mint_to(&chain.market.mint, &buyer.pubkey(), PRICE)
        .await;
    let file = chain.validator.write_keypair(name, &buyer);
    (buyer, file)
}

/// A verifier's ledger on the validator, announcing `network`, and its settings paying
/// `pay_to` in the chain's mint, with `fee_payer` funded and sponsoring.
async fn sponsoring(
    chain: &Chain,
    network: Network,
    pay_to: Pubkey,
    fee_payer: &Keypair,
) -> (RpcLedger, x402_verifier::PaymentSettings) {
    chain.fund(&fee_payer.pubkey()).await;
    let ledger =
        RpcLedger::with_network(&chain.validator.url, network.clone(), RpcOptions::default());
    let settings = settings(
        network,
        chain.market.mint,
        pay_to,
        Some(fee_payer.insecure_clone()),
    );
    (ledger, settings)
}

/// Our verifier on the validator, announcing mainnet (the payment-channels program here is
/// its mainnet build, with mainnet's treasury), with a fee payer, paying `seller`:
/// `/metered`, an `upto` route with a ceiling of 0.01 whose answer says it cost `charge`.
pub(super) struct MeteredVerifier {
    pub(super) gate: x402_verifier::Gate,
    /// `{base}/metered`.
    pub(super) url: String,
    pub(super) fee_payer: Pubkey,
    /// The fee payer's lamports before any payment.
    pub(super) fee_payer_lamports: u64,
    _store: tempfile::TempDir,
}

impl MeteredVerifier {
    pub(super) async fn start(chain: &Chain, seller: Pubkey, charge: u64) -> Self {
        let fee_payer = Keypair::new();
        let (ledger, settings) = sponsoring(chain, Network::mainnet(), seller, &fee_payer).await;
        let store = tempfile::tempdir().unwrap();
        let gate = start_gate(settings, ledger, &store).await;
        let handler = move || async move { (Extension(Charge(charge)), "metered answer") };
        let router = axum::Router::new()
            .route("/metered", axum::routing::get(handler))
            .layer(gate.price("0.01").schemes(&[Scheme::Upto]));
        MeteredVerifier {
            url: format!("{}/metered", x402_testkit::serve(router).await),
            gate,
            fee_payer: fee_payer.pubkey(),
            fee_payer_lamports: chain.lamports(&fee_payer.pubkey()).await,
            _store: store,
        }
    }
}

/// The stock npm buyer (@x402/svm's `upto` client) pays our verifier's metered route: it
/// is charged what the answer cost and gets the rest of its deposit back, to the base
/// unit; the same payment again is refused.
#[tokio::test]
async fn the_stock_upto_buyer_pays_our_metered_route_what_the_answer_cost() {
    const CHARGE: u64 = 4_200;
    let chain = Plan::new().start().await;
    // `distribute` pays rounding residuals into the program's treasury account for the
    // mint, which exists on mainnet for USDC.
    chain
        .token_account(&TREASURY_OWNER, &chain.market.mint)
        .await;
    let seller = new_seller(&chain).await;
    let ours = MeteredVerifier::start(&chain, seller, CHARGE).await;
    let (buyer, keypair) = new_buyer(&chain, "stock-upto-buyer").await;

    let out = stock_buyer("node", "client.mjs", &ours.url, &keypair, &chain).await;

    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["body"], "metered answer", "{out}");
    assert_eq!(out["paymentResponse"]["success"], true, "{out}");
    assert_eq!(
        out["paymentResponse"]["amount"],
        CHARGE.to_string(),
        "{out}"
    );
    assert_eq!(out["replayStatus"], 402, "{out}");
    assert_eq!(out["replayError"], "reference_already_used", "{out}");
    assert_paid_metered(&chain, &buyer.pubkey(), &seller, CHARGE).await;
}

/// Our verifier on the validator, announcing devnet, with a fee payer: `/api/*` at 0.01.
async fn our_verifier(chain: &Chain, store: &tempfile::TempDir) -> (x402_verifier::Gate, String) {
    let merchant = chain.market.merchant;
    let (ledger, settings) = sponsoring(chain, Network::devnet(), merchant, &Keypair::new()).await;
    serve_gate(settings, ledger, store).await
}

#[tokio::test]
async fn stock_buyers_pay_our_verifier_in_exact_once() {
    let chain = Plan::new().start().await;
    let store = tempfile::tempdir().unwrap();
    let (gate, base) = our_verifier(&chain, &store).await;
    let merchant = chain.market.merchant;
    let mut buyers = vec![("node", "client.mjs")];
    // The Python buyer, when scripts/test has made its virtual environment.
    let python = std::env::var("X402_TEST_PYTHON").expect(
        "X402_TEST_PYTHON names a python with tests/interop/requirements.txt (scripts/test)",
    );
    buyers.push((python.as_str(), "client.py"));

    for (i, (program, script)) in buyers.into_iter().enumerate() {
        let (buyer, keypair) = new_buyer(&chain, &format!("buyer-{i}")).await;
        let merchant_before = chain.token_balance(&merchant).await;
        let url = format!("{base}/api/stock-{i}");
        let out = stock_buyer(program, script, &url, &keypair, &chain).await;

        assert_eq!(out["status"], 200, "{script}: {out}");
        let body: serde_json::Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            body["payment"]["scheme"], "exact",
            "{script}: the content was served"
        );
        assert_eq!(out["paymentResponse"]["success"], true, "{script}: {out}");
        // The same payment again is refused, and nothing moves twice.
        assert_eq!(out["replayStatus"], 402, "{script}: {out}");
        assert_eq!(
            out["replayError"], "reference_already_used",
            "{script}: {out}"
        );
        assert_eq!(chain.token_balance(&buyer.pubkey()).await, 0, "{script}");
        assert_eq!(
            chain.token_balance(&merchant).await,
            merchant_before + PRICE,
            "{script}"
        );
        assert_eq!(
            chain.lamports(&buyer.pubkey()).await,
            0,
            "{script}: no SOL needed"
        );
    }
    let grants = gate.store().grants().await.unwrap();
    assert_eq!(grants.len(), 2);
    assert!(grants
        .iter()
        .all(|g| g.scheme == "exact" && g.receipt.is_none()));
}

/// A server script that prints `LISTENING <port>` once it listens on 127.0.0.1 and stops
/// with its standard input; killed when dropped.
pub(super) struct ScriptServer {
    process: std::process::Child,
    pub(super) port: u16,
}

impl ScriptServer {
    /// Spawns `command` (its standard error shown with the test's) and waits until it
    /// listens.
    pub(super) fn spawn(command: &mut Command, script: &str) -> Self {
        let mut process = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{script}: {e}"));
        let stdout = std::io::BufReader::new(process.stdout.take().unwrap());
        let port = stdout
            .lines()
            .find_map(|line| {
                line.ok()?
                    .strip_prefix("LISTENING ")?
                    .trim()
                    .parse::<u16>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{script} starts"));
        ScriptServer { process, port }
    }
}

impl Drop for ScriptServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The stock seller: @x402/express with the stock facilitator in process.
struct StockSeller {
    _server: ScriptServer,
    /// `/paid`, in `exact`.
    url: String,
    /// `/metered`, in `upto`, when the seller was started with a charge.
    metered_url: String,
}

impl StockSeller {
    /// With the stock facilitator in process and its own fee payer, or delegating to
    /// `facilitator` (a base URL) with our test API key; with `upto_charge`, also an
    /// `upto` route whose answer costs that much.
    async fn start(
        chain: &Chain,
        pay_to: &anchor_lang::prelude::Pubkey,
        facilitator: Option<&str>,
        upto_charge: Option<u64>,
    ) -> Self {
        let mut command = Command::new("node");
        if let Some(charge) = upto_charge {
            command.env("X402_UPTO_CHARGE", charge.to_string());
        }
        match facilitator {
            // With an RPC, as a seller on a real network runs it: its offers carry a
            // blockhash, rebuilt for the paid request.
            Some(url) => command
                .env("X402_FACILITATOR_URL", url)
                .env("X402_FACILITATOR_KEY", FACILITATOR_KEY)
                .env("X402_EMBED_BLOCKHASH", "1"),
            None => {
                let fee_payer = Keypair::new();
                chain.fund(&fee_payer.pubkey()).await;
                let file = chain.validator.write_keypair("stock-fee-payer", &fee_payer);
                command.env("X402_FEE_PAYER_KEYPAIR", file)
            }
        };
        command
            .arg(interop_dir().join("server.mjs"))
            .env("X402_PORT", "0")
            .env("X402_RPC_URL", &chain.validator.url)
            .env("X402_PAY_TO", pay_to.to_string())
            .env("X402_ASSET", chain.market.mint.to_string())
            .env("X402_AMOUNT", PRICE.to_string());
        let server = ScriptServer::spawn(&mut command, "server.mjs");
        StockSeller {
            url: format!("http://127.0.0.1:{}/paid", server.port),
            metered_url: format!("http://127.0.0.1:{}/metered", server.port),
            _server: server,
        }
    }
}

/// `x402 fetch url` paying with `keypair` through the chain's RPC, `network` allowed (the
/// local validator stands in for the public network a stock seller names), at most
/// `PRICE`: its JSON document, once it exited 0.
fn x402_fetch(url: &str, keypair: &Path, chain: &Chain, network: &str) -> serde_json::Value {
    let keypair = keypair.display().to_string();
    let out = x402(&[
        "fetch",
        url,
        "--keypair",
        &keypair,
        "--rpc-url",
        &chain.validator.url,
        "--allow-network",
        network,
        "--max-units",
        &PRICE.to_string(),
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

fn x402(args: &[&str]) -> std::process::Output {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    Command::new(target.join("debug/x402"))
        .args(args)
        .env_remove("X402_KEYPAIR")
        .env_remove("X402_RPC_URL")
        .output()
        .expect("the x402 binary runs")
}

#[tokio::test]
async fn our_client_and_the_stock_buyer_pay_a_stock_seller_once() {
    let chain = Plan::new().start().await;
    let seller_wallet = Keypair::new().pubkey();
    chain
        .token_account(&seller_wallet, &chain.market.mint)
        .await;
    let seller = StockSeller::start(&chain, &seller_wallet, None, None).await;

    // Our x402: the offer is in the header only; the mint's facts come from the RPC.
    let (buyer, keypair) = new_buyer(&chain, "our-buyer").await;
    let fetched = x402_fetch(&seller.url, &keypair, &chain, "solana-devnet");
    assert_eq!(fetched["status"], 200);
    assert_eq!(fetched["body"], r#"{"paid":true}"#);
    assert_eq!(fetched["settlement"]["scheme"], "exact");
    assert_eq!(chain.token_balance(&buyer.pubkey()).await, 0);
    assert_eq!(chain.token_balance(&seller_wallet).await, PRICE);

    // Control: the stock buyer pays the stock seller in the same harness.
    let (stock_buyer_key, keypair) = new_buyer(&chain, "stock-buyer").await;
    let control = stock_buyer("node", "client.mjs", &seller.url, &keypair, &chain).await;
    assert_eq!(control["status"], 200, "{control}");
    assert_eq!(control["body"], r#"{"paid":true}"#);
    assert_eq!(control["replayStatus"], 402, "{control}");
    assert_eq!(chain.token_balance(&stock_buyer_key.pubkey()).await, 0);
    assert_eq!(chain.token_balance(&seller_wallet).await, 2 * PRICE);
}

/// Our `x402` pays a stock @x402/express seller's `upto` route (the stock facilitator in
/// process settling it): charged what the answer cost, the rest refunded; the stock
/// buyer pays it too, as a control.
#[tokio::test]
async fn our_client_and_the_stock_buyer_pay_a_stock_upto_seller_what_the_answer_cost() {
    const CHARGE: u64 = 3_300;
    let chain = Plan::new().start().await;
    chain
        .token_account(&TREASURY_OWNER, &chain.market.mint)
        .await;
    let seller_wallet = new_seller(&chain).await;
    let seller = StockSeller::start(&chain, &seller_wallet, None, Some(CHARGE)).await;

    let (buyer, keypair) = new_buyer(&chain, "our-upto-buyer").await;
    let fetched = x402_fetch(&seller.metered_url, &keypair, &chain, "solana");
    assert_eq!(fetched["status"], 200, "{fetched}");
    assert_eq!(fetched["body"], r#"{"metered":true}"#);
    assert_eq!(fetched["settlement"]["scheme"], "upto", "{fetched}");
    assert_paid_metered(&chain, &buyer.pubkey(), &seller_wallet, CHARGE).await;

    let (stock_buyer_key, keypair) = new_buyer(&chain, "stock-upto-buyer").await;
    let control = stock_buyer("node", "client.mjs", &seller.metered_url, &keypair, &chain).await;
    assert_eq!(control["status"], 200, "{control}");
    assert_eq!(
        chain.token_balance(&stock_buyer_key.pubkey()).await,
        PRICE - CHARGE
    );
    assert_eq!(chain.token_balance(&seller_wallet).await, 2 * CHARGE);
}

#[tokio::test]
async fn a_stock_seller_delegating_to_our_facilitator_is_paid_once() {
    let chain = Plan::new().start().await;
    let store = tempfile::tempdir().unwrap();
    let (gate, base) = our_verifier(&chain, &store).await;
    let merchant = chain.market.merchant;
    // The stock seller reads our /supported at start: it needs `exact` on devnet there.
    let seller = StockSeller::start(&chain, &merchant, Some(&base), None).await;

    let (buyer, keypair) = new_buyer(&chain, "delegating-buyer").await;
    // Slots pass between the 402 and the payment: the seller's offer for the paid request
    // names a newer blockhash than the one the buyer accepted.
    let settings = [("X402_PAY_AFTER_MS", "1500")];
    let out = stock_buyer_with(
        "node",
        "client.mjs",
        &seller.url,
        &keypair,
        &chain,
        &settings,
    )
    .await;
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["body"], r#"{"paid":true}"#);
    assert_eq!(out["replayStatus"], 402, "{out}");
    assert_eq!(chain.token_balance(&buyer.pubkey()).await, 0);
    assert_eq!(chain.token_balance(&merchant).await, PRICE);
    // Our facilitator recorded the settlement, under the payment's message hash.
    let grants = gate.store().grants().await.unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(
        (grants[0].scheme.as_str(), grants[0].path.as_str()),
        ("exact", "/settle")
    );
}
