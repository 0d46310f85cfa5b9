//! The verifier and `x402` against a validator, through a proxy that counts and breaks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anchor_lang::prelude::Pubkey;
use anchor_spl::token::spl_token;
use futures_util::future::join_all;
use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::rpc::{RpcLedger, RpcOptions};
use x402_protocol::{ChallengeKey, Ledger, LedgerAccount, Network, Reference, Requirement, Terms};
use x402_verifier::ledger::local::{LocalLedger, LocalMarket};
use x402_verifier::{
    app, unix_now, Gate, GrantStore, PaidRoute, PaymentSettings, RequestLimits, RouteService,
};

use super::node::{Fault, Proxy, Validator};

const PRICE: u64 = 10_000;

/// A network named in configuration, so that references can be issued before the
/// validator (and its genesis hash) exists.
fn network() -> Network {
    Network::localnet("x402rpctest")
}

fn key() -> ChallengeKey {
    ChallengeKey::new(vec![9; 32]).unwrap()
}

/// Receipts made by the program on the embedded ledger, for the validator's genesis.
struct Receipts {
    market: LocalMarket,
    accounts: Vec<(Pubkey, LedgerAccount)>,
}

impl Receipts {
    async fn new() -> Self {
        Receipts {
            market: LocalLedger::start_market(None).await,
            accounts: Vec::new(),
        }
    }

    /// A reference this test's verifier would issue for `GET path`.
    fn issue(&self, path: &str) -> Reference {
        let network = network();
        let terms = Terms {
            network: network.caip2(),
            program: x402_receipts::ID,
            mint: self.market.mint,
            pay_to: self.market.merchant,
            amount: PRICE,
            method: "GET",
            path,
        };
        Reference::issue(&key(), &terms, unix_now() + 600)
    }

    fn requirement(&self, reference: Reference) -> Requirement {
        Requirement {
            program: x402_receipts::ID,
            reference,
            amount: PRICE,
            expires_at: reference.expires_at(),
            mint: self.market.mint,
            token_program: spl_token::ID,
            pay_to: self.market.merchant,
        }
    }

    /// Pays `paid` (perhaps not what `reference` asked) and keeps the receipt's bytes.
    async fn pay(&mut self, paid: &Requirement) {
        let ledger = &self.market.ledger;
        let payer = &self.market.demo_payer;
        let blockhash = ledger.latest_blockhash().await.unwrap();
        let mut tx = paid.pay_transaction(&payer.pubkey(), &payer.pubkey(), blockhash);
        tx.sign(&[payer], blockhash);
        ledger.submit(&tx).await.unwrap();
        let account = ledger.account(&paid.receipt()).await.unwrap().unwrap();
        self.accounts.push((paid.receipt(), account));
    }

    /// Pays `path`'s reference as asked; returns the reference.
    async fn paid(&mut self, path: &str) -> Reference {
        let reference = self.issue(path);
        self.pay(&self.requirement(reference)).await;
        reference
    }
}

/// The verifier on the RPC ledger (through `proxy`), with `/api/*` at 0.01.
async fn verifier(receipts: &Receipts, proxy: &Proxy, store: &tempfile::TempDir) -> (Gate, String) {
    let options = RpcOptions {
        deadline: Duration::from_secs(1),
        batch_window: Duration::from_millis(50),
        ..RpcOptions::default()
    };
    let ledger = RpcLedger::with_network(&proxy.url, network(), options);
    let settings = settings(
        network(),
        receipts.market.mint,
        receipts.market.merchant,
        None,
    );
    serve(settings, ledger, store).await
}

/// This test's gate settings: the key, USDC-like decimals, room for a confirmation.
fn settings(
    network: Network,
    mint: Pubkey,
    pay_to: Pubkey,
    fee_payer: Option<Keypair>,
) -> PaymentSettings {
    PaymentSettings {
        network,
        program: x402_receipts::ID,
        mint,
        decimals: 6,
        token_program: spl_token::ID,
        currency: "USDC".into(),
        pay_to,
        challenge_keys: vec![key()],
        fee_payer: fee_payer.map(Arc::new),
        max_compute_unit_price: 100_000,
        max_compute_unit_limit: 200_000,
        ledger_timeout: Duration::from_secs(10),
        public_url: None,
        facilitator_url: None,
    }
}

/// A gate over `ledger` serving `/api/*` at 0.01 over a socket: the gate and its base URL.
async fn serve(
    settings: PaymentSettings,
    ledger: RpcLedger,
    store: &tempfile::TempDir,
) -> (Gate, String) {
    let store = GrantStore::connect(&format!(
        "sqlite://{}",
        store.path().join("grants.db").display()
    ))
    .await
    .unwrap();
    let schedule = x402_verifier::tasks::Schedule {
        janitor: None,
        ..Default::default()
    };
    let gate = Gate::start(settings, Arc::new(ledger), store, &schedule).await;
    let route = PaidRoute {
        pattern: "/api/*".into(),
        methods: vec![http::Method::GET],
        payment: gate.price("0.01"),
        service: RouteService::Demo,
    };
    let limits = RequestLimits {
        body_bytes: 1024,
        timeout: Duration::from_secs(60),
    };
    let metrics = Some(x402_verifier::metrics::MetricsAccess::default());
    let router = app(gate.clone(), vec![route], &limits, metrics);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (gate, url)
}

async fn present(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    reference: &Reference,
) -> (u16, serde_json::Value) {
    let response = http
        .get(format!("{url}{path}"))
        .header("X-Payment-Proof", reference.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_verifier_on_json_rpc_grants_receipts_refuses_defects_and_coalesces_reads() {
    let mut receipts = Receipts::new().await;
    let good = receipts.paid("/api/good").await;
    let mut crowd = Vec::new();
    for i in 0..6 {
        crowd.push(receipts.paid(&format!("/api/crowd{i}")).await);
    }
    let ledger = receipts.market.ledger.clone();
    let other_wallet = Keypair::new().pubkey();
    ledger
        .create_token_account(&other_wallet, &receipts.market.mint, spl_token::ID)
        .await;
    let mut defects = Vec::new();
    for (path, reason) in [
        ("/api/payee", "receipt_wrong_payee"),
        ("/api/cheap", "receipt_amount_below_price"),
        ("/api/expiry", "receipt_wrong_expiry"),
    ] {
        let reference = receipts.issue(path);
        let mut paid = receipts.requirement(reference);
        match reason {
            "receipt_wrong_payee" => paid.pay_to = other_wallet,
            "receipt_amount_below_price" => paid.amount -= 1,
            _ => paid.expires_at += 60,
        }
        receipts.pay(&paid).await;
        defects.push((path, reference, reason));
    }
    // Another mint, and accounts the program never wrote: another owner, not a receipt.
    let other_mint = ledger.create_mint(spl_token::ID).await;
    let payer = receipts.market.demo_payer.pubkey();
    ledger
        .create_token_account(&payer, &other_mint, spl_token::ID)
        .await;
    ledger
        .create_token_account(&receipts.market.merchant, &other_mint, spl_token::ID)
        .await;
    ledger.mint_to(&other_mint, &payer, PRICE).await;
    let reference = receipts.issue("/api/mint");
    receipts
        .pay(&Requirement {
            mint: other_mint,
            ..receipts.requirement(reference)
        })
        .await;
    defects.push(("/api/mint", reference, "receipt_wrong_mint"));
    let genuine = receipts.accounts[0].1.clone();
    for (path, reason) in [
        ("/api/owner", "receipt_wrong_owner"),
        ("/api/garbage", "receipt_not_a_receipt"),
    ] {
        let reference = receipts.issue(path);
        let mut account = genuine.clone();
        if reason == "receipt_wrong_owner" {
            account.owner = Pubkey::new_unique();
        } else {
            account.data[0] ^= 0xff;
        }
        receipts
            .accounts
            .push((receipts.requirement(reference).receipt(), account));
        defects.push((path, reference, reason));
    }
    let unpaid = receipts.issue("/api/unpaid");

    let validator = Validator::start(&receipts.accounts).await;
    let proxy = Proxy::start(&validator.url).await;
    let store = tempfile::tempdir().unwrap();
    let (gate, url) = verifier(&receipts, &proxy, &store).await;
    let http = reqwest::Client::new();

    let (status, body) = present(&http, &url, "/api/good", &good).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["payment"]["payer"],
        receipts.market.demo_payer.pubkey().to_string()
    );
    let (status, body) = present(&http, &url, "/api/good", &good).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (402, Some("reference_already_used"))
    );
    for (path, reference, reason) in &defects {
        let (status, body) = present(&http, &url, path, reference).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (402, Some(*reason)),
            "{path}"
        );
    }
    let (status, body) = present(&http, &url, "/api/unpaid", &unpaid).await;
    assert_eq!(
        (status, body["error"].as_str(), body["reference"].as_str()),
        (
            402,
            Some("receipt_not_found"),
            Some(unpaid.to_string().as_str())
        )
    );

    // Six presentations at once: their reads share getMultipleAccounts calls.
    let before = proxy.count("getMultipleAccounts");
    let presented = crowd.iter().enumerate().map(|(i, r)| {
        let (http, url) = (http.clone(), url.clone());
        let path = format!("/api/crowd{i}");
        async move { present(&http, &url, &path, r).await.0 }
    });
    assert_eq!(join_all(presented).await, vec![200; 6]);
    let calls = proxy.count("getMultipleAccounts") - before;
    assert!(
        (1..6).contains(&calls),
        "{calls} getMultipleAccounts calls for 6 reads"
    );
    assert_eq!(gate.store().grants().await.unwrap().len(), 7);

    // Ten reads of one reference at once share calls too: the key is asked once a batch.
    let before = proxy.count("getMultipleAccounts");
    let same = (0..10).map(|_| {
        let (http, url) = (http.clone(), url.clone());
        async move { present(&http, &url, "/api/unpaid", &unpaid).await.0 }
    });
    assert_eq!(join_all(same).await, vec![402; 10]);
    let calls = proxy.count("getMultipleAccounts") - before;
    assert!(
        (1..10).contains(&calls),
        "{calls} getMultipleAccounts calls for 10 reads of one reference"
    );

    // x402 reads the same chain over JSON-RPC.
    let x402 = crate::client::cli::x402();
    let shown = std::process::Command::new(&x402)
        .args([
            "--json",
            "receipt",
            &good.to_string(),
            "--rpc-url",
            &validator.url,
        ])
        .output()
        .unwrap();
    assert_eq!(
        shown.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["payee"], receipts.market.merchant.to_string());
    let merchant = receipts.market.merchant.to_string();
    let listed = std::process::Command::new(&x402)
        .args([
            "--json",
            "receipts",
            "--payee",
            &merchant,
            "--rpc-url",
            &validator.url,
        ])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    // The program's receipts paying the merchant: all but the one paid elsewhere and
    // the one owned by another program (the garbage one has no receipt discriminator).
    assert_eq!(listed["count"], receipts.accounts.len() - 3);
    let missing = std::process::Command::new(&x402)
        .args(["receipt", &unpaid.to_string(), "--rpc-url", &validator.url])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(6));
}

#[tokio::test]
async fn node_faults_are_503s_within_the_deadline_and_the_same_reference_is_granted_after() {
    let mut receipts = Receipts::new().await;
    let reference = receipts.paid("/api/faulty").await;
    let validator = Validator::start(&receipts.accounts).await;
    let proxy = Proxy::start(&validator.url).await;
    let store = tempfile::tempdir().unwrap();
    let (gate, url) = verifier(&receipts, &proxy, &store).await;
    let http = reqwest::Client::new();

    for fault in [
        Fault::Down,
        Fault::Hang,
        Fault::Slow(Duration::from_secs(3)),
        Fault::Status(500),
        Fault::Status(429),
    ] {
        proxy.set(fault);
        let started = Instant::now();
        let response = http
            .get(format!("{url}/api/faulty"))
            .header("X-Payment-Proof", reference.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{fault:?}");
        assert!(response.headers().contains_key("retry-after"));
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{fault:?} answered within its deadlines: {:?}",
            started.elapsed()
        );
        assert!(
            gate.store().grants().await.unwrap().is_empty(),
            "{fault:?} granted nothing"
        );
    }

    proxy.set(Fault::None);
    let (status, _) = present(&http, &url, "/api/faulty", &reference).await;
    assert_eq!(
        status, 200,
        "the same reference, once the node is back: no second payment"
    );
}

/// Starts the `x402-verifier` binary on the RPC ledger with no routes (so its paid
/// `/demo` at 0.01), this test's key, and `store`; returns it and its base URL.
fn verifier_process(
    node_url: &str,
    receipts: &Receipts,
    store: &str,
    state: &std::path::Path,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let mut process = std::process::Command::new(target.join("debug/x402-verifier"))
        .env("X402_LISTEN", "127.0.0.1:0")
        .env("X402_STATE_DIR", state)
        .env("X402_RPC_URL", node_url)
        .env("X402_NETWORK", network().caip2())
        .env("X402_ASSET", receipts.market.mint.to_string())
        .env("X402_MERCHANT_WALLET", receipts.market.merchant.to_string())
        .env("X402_CHALLENGE_KEY", "09".repeat(32))
        .env("X402_STORE_URL", store)
        .env("RUST_LOG", "warn")
        .env_remove("X402_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(process.stderr.take().unwrap()).lines();
    let address = lines
        .find_map(|line| {
            let line = line.ok()?;
            Some(
                line.strip_prefix("x402 verifier on http://")?
                    .split_whitespace()
                    .next()?
                    .to_string(),
            )
        })
        .expect("the verifier starts");
    std::thread::spawn(move || lines.for_each(drop));
    (process, format!("http://{address}"))
}

#[tokio::test]
async fn two_verifier_processes_sharing_postgres_serve_one_paid_reference_once() {
    let postgres =
        std::env::var("X402_TEST_POSTGRES_URL").expect("X402_TEST_POSTGRES_URL: see .ci/run");
    let mut receipts = Receipts::new().await;
    let reference = receipts.paid("/demo").await;
    // The verifier reads the mint's decimals and token program from the node.
    let mint = receipts.market.mint;
    let mint_account = receipts
        .market
        .ledger
        .account(&mint)
        .await
        .unwrap()
        .unwrap();
    let mut genesis = receipts.accounts.clone();
    genesis.push((mint, mint_account));
    let validator = Validator::start(&genesis).await;
    let states = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut processes: Vec<_> = states
        .iter()
        .map(|state| verifier_process(&validator.url, &receipts, &postgres, state.path()))
        .collect();
    let http = reqwest::Client::new();

    let requests = (0..100).map(|i| {
        let (http, base) = (http.clone(), processes[i % 2].1.clone());
        async move { present(&http, &base, "/demo", &reference).await.0 }
    });
    let statuses = join_all(requests).await;

    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 99);
    for (process, _) in &mut processes {
        let _ = process.kill();
        let _ = process.wait();
    }
}

/// The whole sponsored flow on a validator running the receipts program as SBF. Only a
/// machine with the Solana toolchain has `target/deploy/x402_receipts.so` (`anchor
/// build`); elsewhere this test says so and checks nothing.
#[tokio::test]
async fn the_full_sponsored_flow_runs_on_a_validator_when_the_program_is_built() {
    let program =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/deploy/x402_receipts.so");
    if !program.exists() {
        eprintln!(
            "skipped: {} is not built here (no SBF toolchain); run `anchor build` first",
            program.display()
        );
        return;
    }
    use anchor_spl::associated_token::spl_associated_token_account::instruction::create_associated_token_account_idempotent;
    use solana_system_interface::instruction as system;

    let validator = Validator::start_with(&[], Some(&program)).await;
    let ledger = RpcLedger::connect(&validator.url, RpcOptions::default())
        .await
        .unwrap();
    let authority = validator.payer();
    let (mint, merchant, fee_payer, payer) = (
        Keypair::new(),
        Keypair::new(),
        Keypair::new(),
        Keypair::new(),
    );
    let rent = 1_461_600; // rent exemption of an 82-byte mint
    send(
        &ledger,
        vec![
            system::create_account(
                &authority.pubkey(),
                &mint.pubkey(),
                rent,
                82,
                &spl_token::ID,
            ),
            spl_token::instruction::initialize_mint2(
                &spl_token::ID,
                &mint.pubkey(),
                &authority.pubkey(),
                None,
                6,
            )
            .unwrap(),
            system::transfer(&authority.pubkey(), &fee_payer.pubkey(), 1_000_000_000),
        ],
        vec![&authority, &mint],
    )
    .await;
    let mut setup = Vec::new();
    for owner in [&merchant, &payer] {
        setup.push(create_associated_token_account_idempotent(
            &authority.pubkey(),
            &owner.pubkey(),
            &mint.pubkey(),
            &spl_token::ID,
        ));
    }
    let payer_token =
        anchor_spl::associated_token::get_associated_token_address(&payer.pubkey(), &mint.pubkey());
    setup.push(
        spl_token::instruction::mint_to(
            &spl_token::ID,
            &mint.pubkey(),
            &payer_token,
            &authority.pubkey(),
            &[],
            PRICE,
        )
        .unwrap(),
    );
    send(&ledger, setup, vec![&authority]).await;

    let network = ledger.network().clone();
    let settings = settings(network, mint.pubkey(), merchant.pubkey(), Some(fee_payer));
    let store = tempfile::tempdir().unwrap();
    let (gate, base) = serve(settings, ledger, &store).await;
    let url = format!("{base}/api/sbf");

    let client = x402_client::X402Client::builder()
        .keypair(payer.insecure_clone())
        .build();
    let paid = client.get(&url).await.unwrap();
    assert_eq!(paid.response.status(), 200);
    let settlement = paid.settlement.unwrap();
    let receipt: Pubkey = settlement.receipt.parse().unwrap();
    assert!(
        gate.ledger().account(&receipt).await.unwrap().is_some(),
        "the receipt is on the validator"
    );
}

/// Sends `instructions` signed by `signers`, the first paying.
async fn send(
    ledger: &RpcLedger,
    instructions: Vec<anchor_lang::solana_program::instruction::Instruction>,
    signers: Vec<&Keypair>,
) {
    let blockhash = ledger.latest_blockhash().await.unwrap();
    let tx = solana_transaction::Transaction::new_signed_with_payer(
        &instructions,
        Some(&signers[0].pubkey()),
        &signers,
        blockhash,
    );
    ledger.submit(&tx).await.unwrap();
}
