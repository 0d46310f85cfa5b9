//! The verifier and `x402` against a validator, through a proxy that counts and breaks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anchor_lang::prelude::Pubkey;
use anchor_spl::associated_token::get_associated_token_address;
use anchor_spl::token::spl_token;
use futures_util::future::join_all;
use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::rpc::{RpcLedger, RpcOptions};
use x402_protocol::scheme::upto::TREASURY_OWNER;
use x402_protocol::{ChallengeKey, Ledger, LedgerAccount, Network, Reference, Requirement, Terms};
use x402_verifier::{
    app, unix_now, Gate, GrantStore, PaidRoute, PaymentSettings, RequestLimits, RouteService,
};

use x402_testkit::process::Launch;
use x402_testkit::{serve, Fault, RpcProxy, Validator, VerifierProcess};

use crate::client::seller::MAINNET_USDC;

pub(super) const PRICE: u64 = 10_000;

/// A network named in configuration, so that references can be issued before the
/// validator (and its genesis hash) exists.
fn network() -> Network {
    Network::localnet("x402rpctest")
}

fn key() -> ChallengeKey {
    ChallengeKey::new(vec![9; 32]).unwrap()
}

/// The validator binary, as .ci/run builds it (`X402_TEST_VALIDATOR`).
fn validator_binary() -> std::path::PathBuf {
    std::env::var_os("X402_TEST_VALIDATOR")
        .map(std::path::PathBuf::from)
        .expect(
            "X402_TEST_VALIDATOR names the x402-test-validator binary for the JSON-RPC tests: \
         `cargo build --manifest-path validator/Cargo.toml` (as .ci/run does)",
        )
}

/// The receipts program built for SBF: the validator runs it.
fn program() -> std::path::PathBuf {
    let program =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/deploy/x402_receipts.so");
    assert!(
        program.exists(),
        "{} is missing: the JSON-RPC tests deploy the program on the validator; \
         build it with scripts/build-sbf (scripts/test does) or anchor build",
        program.display()
    );
    program
}

/// What a reference binds: known before the validator starts, so that references can
/// be issued and accounts the program never wrote placed at their receipts' addresses.
#[derive(Clone, Copy)]
pub(super) struct Market {
    pub(super) mint: Pubkey,
    pub(super) merchant: Pubkey,
}

impl Market {
    /// A reference this test's verifier would issue for `GET path`, expiring then.
    fn issue_until(&self, path: &str, expires_at: i64) -> Reference {
        let network = network();
        let terms = Terms {
            network: network.caip2(),
            program: x402_receipts::ID,
            mint: self.mint,
            pay_to: self.merchant,
            amount: PRICE,
            method: "GET",
            path,
        };
        Reference::issue(&key(), &terms, expires_at)
    }

    fn issue(&self, path: &str) -> Reference {
        self.issue_until(path, unix_now() + 600)
    }

    fn requirement(&self, reference: Reference) -> Requirement {
        Requirement {
            program: x402_receipts::ID,
            reference,
            amount: PRICE,
            expires_at: reference.expires_at(),
            mint: self.mint,
            token_program: spl_token::ID,
            pay_to: self.merchant,
        }
    }
}

/// A validator running the receipts program, with a USDC-like mint, the merchant's token
/// account and a payer holding tokens and SOL. Payments are `pay` transactions sent to
/// it, as buyers send them.
pub(super) struct Chain {
    pub(super) market: Market,
    pub(super) validator: Validator,
    /// Straight to the validator, for set-up and payments (the verifier's goes through
    /// a proxy).
    pub(super) ledger: RpcLedger,
    /// The validator's funded keypair: set-up fee payer.
    authority: Keypair,
    mint_authority: Keypair,
    pub(super) payer: Keypair,
}

/// Where a chain is planned: the mint (its address is in every reference), its
/// authority, and the accounts its genesis holds.
pub(super) struct Plan {
    /// The mint's keypair when the chain creates the mint; `None` when genesis holds it.
    mint: Option<Keypair>,
    mint_authority: Keypair,
    market: Market,
    genesis: Vec<(Pubkey, LedgerAccount)>,
}

impl Plan {
    pub(super) fn new() -> Self {
        let mint = Keypair::new();
        Plan {
            market: Market {
                mint: mint.pubkey(),
                merchant: Keypair::new().pubkey(),
            },
            mint: Some(mint),
            mint_authority: Keypair::new(),
            genesis: Vec::new(),
        }
    }

    /// A chain whose mint is USDC at its mainnet address, in genesis (with 6 decimals, as
    /// on mainnet, and our mint authority), and with the payment-channels treasury's token
    /// account for it, which every `distribute` names: the world of a stock seller whose
    /// currencies are mainnet's, whatever the cluster (solana-pay-kit's).
    pub(super) fn mainnet_usdc() -> Self {
        let mint: Pubkey = MAINNET_USDC.parse().unwrap();
        let mint_authority = Keypair::new();
        let treasury = TREASURY_OWNER;
        Plan {
            market: Market {
                mint,
                merchant: Keypair::new().pubkey(),
            },
            mint: None,
            genesis: vec![
                (mint, genesis_mint(&mint_authority.pubkey(), 6)),
                (
                    get_associated_token_address(&treasury, &mint),
                    genesis_token_account(&mint, &treasury),
                ),
            ],
            mint_authority,
        }
    }

    /// Starts the validator, creates the mint and token accounts, funds the payer.
    pub(super) async fn start(self) -> Chain {
        let validator =
            Validator::start(&validator_binary(), &self.genesis, Some(&program())).await;
        let ledger = RpcLedger::with_network(&validator.url, network(), RpcOptions::default());
        let authority = validator.payer();
        let chain = Chain {
            market: self.market,
            ledger,
            authority,
            mint_authority: self.mint_authority,
            payer: Keypair::new(),
            validator,
        };
        if let Some(mint) = &self.mint {
            chain.create_mint(mint).await;
        }
        let payer = chain.payer.pubkey();
        chain.fund(&payer).await;
        chain
            .token_account(&self.market.merchant, &self.market.mint)
            .await;
        chain.token_account(&payer, &self.market.mint).await;
        chain.mint_to(&self.market.mint, &payer, 100 * PRICE).await;
        chain
    }
}

/// An initialized SPL Token mint of `decimals` whose mint authority is `authority`, as
/// genesis holds it (rent-exempt, no supply).
fn genesis_mint(authority: &Pubkey, decimals: u8) -> LedgerAccount {
    use anchor_lang::solana_program::program_option::COption;
    use anchor_lang::solana_program::program_pack::Pack;
    let mut data = vec![0; spl_token::state::Mint::LEN];
    let mint = spl_token::state::Mint {
        mint_authority: COption::Some(*authority),
        decimals,
        is_initialized: true,
        ..Default::default()
    };
    spl_token::state::Mint::pack(mint, &mut data).unwrap();
    LedgerAccount {
        owner: spl_token::ID,
        lamports: 1_461_600, // rent exemption of an 82-byte mint
        data,
    }
}

/// An empty SPL Token account of `mint` owned by `owner`, as genesis holds it.
fn genesis_token_account(mint: &Pubkey, owner: &Pubkey) -> LedgerAccount {
    use anchor_lang::solana_program::program_pack::Pack;
    let mut data = vec![0; spl_token::state::Account::LEN];
    let account = spl_token::state::Account {
        mint: *mint,
        owner: *owner,
        state: spl_token::state::AccountState::Initialized,
        ..Default::default()
    };
    spl_token::state::Account::pack(account, &mut data).unwrap();
    LedgerAccount {
        owner: spl_token::ID,
        lamports: 2_039_280, // rent exemption of a 165-byte token account
        data,
    }
}

impl Chain {
    /// Pays `paid` (perhaps not what its reference asked) with `pay`, the payer paying
    /// fee and rent.
    async fn pay(&self, paid: &Requirement) {
        let payer = &self.payer;
        let blockhash = self.ledger.latest_blockhash().await.unwrap();
        let mut tx = paid.pay_transaction(&payer.pubkey(), &payer.pubkey(), blockhash);
        tx.sign(&[payer], blockhash);
        self.ledger.submit(&tx.into()).await.unwrap();
    }

    /// Pays `path`'s reference as asked; returns the reference.
    async fn paid(&self, path: &str) -> Reference {
        let reference = self.market.issue(path);
        self.pay(&self.market.requirement(reference)).await;
        reference
    }

    async fn create_mint(&self, mint: &Keypair) {
        use solana_system_interface::instruction as system;
        let authority = self.authority.pubkey();
        let rent = 1_461_600; // rent exemption of an 82-byte mint
        let ixs = vec![
            system::create_account(&authority, &mint.pubkey(), rent, 82, &spl_token::ID),
            spl_token::instruction::initialize_mint2(
                &spl_token::ID,
                &mint.pubkey(),
                &self.mint_authority.pubkey(),
                None,
                6,
            )
            .unwrap(),
        ];
        send(&self.ledger, ixs, vec![&self.authority, mint]).await;
    }

    pub(super) async fn fund(&self, to: &Pubkey) {
        use solana_system_interface::instruction as system;
        let ix = system::transfer(&self.authority.pubkey(), to, 1_000_000_000);
        send(&self.ledger, vec![ix], vec![&self.authority]).await;
    }

    pub(super) async fn token_account(&self, owner: &Pubkey, mint: &Pubkey) {
        use anchor_spl::associated_token::spl_associated_token_account::instruction::create_associated_token_account_idempotent;
        let ix = create_associated_token_account_idempotent(
            &self.authority.pubkey(),
            owner,
            mint,
            &spl_token::ID,
        );
        send(&self.ledger, vec![ix], vec![&self.authority]).await;
    }

    pub(super) async fn mint_to(&self, mint: &Pubkey, owner: &Pubkey, amount: u64) {
        let account = anchor_spl::associated_token::get_associated_token_address(owner, mint);
        let ix = spl_token::instruction::mint_to(
            &spl_token::ID,
            mint,
            &account,
            &self.mint_authority.pubkey(),
            &[],
            amount,
        )
        .unwrap();
        send(
            &self.ledger,
            vec![ix],
            vec![&self.authority, &self.mint_authority],
        )
        .await;
    }

    pub(super) async fn token_balance(&self, owner: &Pubkey) -> u64 {
        let account =
            anchor_spl::associated_token::get_associated_token_address(owner, &self.market.mint);
        let account = self.ledger.account(&account).await.unwrap().unwrap();
        // A token account's amount: bytes 64..72 (after the mint and the owner).
        u64::from_le_bytes(account.data[64..72].try_into().unwrap())
    }

    pub(super) async fn lamports(&self, address: &Pubkey) -> u64 {
        self.ledger
            .account(address)
            .await
            .unwrap()
            .map(|a| a.lamports)
            .unwrap_or(0)
    }

    /// The validator's clock, unix seconds.
    async fn now(&self) -> i64 {
        use anchor_lang::solana_program::clock;
        let account = self
            .ledger
            .account(&clock::sysvar::ID)
            .await
            .unwrap()
            .unwrap();
        // The Clock sysvar: slot, epoch start, epoch, leader schedule epoch, then the unix
        // timestamp, little-endian.
        i64::from_le_bytes(account.data[32..40].try_into().unwrap())
    }

    /// Waits until both the validator's clock (which `close_receipt` checks) and this
    /// machine's (by which `x402 close-expired` and the janitor pick receipts) are past
    /// `unix_timestamp`.
    async fn wait_past(&self, unix_timestamp: i64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.now().await <= unix_timestamp || unix_now() <= unix_timestamp {
            assert!(
                Instant::now() < deadline,
                "the validator's clock stands still"
            );
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    }
}

/// The verifier on the RPC ledger (through `proxy`), with `/api/*` at 0.01.
async fn verifier(market: &Market, proxy: &RpcProxy, store: &tempfile::TempDir) -> (Gate, String) {
    let options = RpcOptions {
        deadline: Duration::from_secs(1),
        // Long enough that a read alone made to wait for it would show.
        batch_window: Duration::from_secs(2),
        ..RpcOptions::default()
    };
    let ledger = RpcLedger::with_network(&proxy.url, network(), options);
    let settings = settings(network(), market.mint, market.merchant, None);
    serve_gate(settings, ledger, store).await
}

/// This test's gate settings: its key, room for a confirmation.
pub(super) fn settings(
    network: Network,
    mint: Pubkey,
    pay_to: Pubkey,
    fee_payer: Option<Keypair>,
) -> PaymentSettings {
    PaymentSettings {
        max_compute_unit_price: 100_000,
        ..x402_testkit::settings(network, mint, pay_to, key(), fee_payer)
    }
}

/// A gate over `ledger` with its grants in `store`, its tasks started (no janitor).
pub(super) async fn start_gate(
    settings: PaymentSettings,
    ledger: RpcLedger,
    store: &tempfile::TempDir,
) -> Gate {
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
    let gate = Gate::new(settings, Arc::new(ledger), store);
    x402_verifier::tasks::start(&gate, &schedule).await;
    gate
}

/// A gate over `ledger` serving `/api/*` at 0.01 over a socket: the gate and its base URL.
pub(super) async fn serve_gate(
    settings: PaymentSettings,
    ledger: RpcLedger,
    store: &tempfile::TempDir,
) -> (Gate, String) {
    let gate = start_gate(settings, ledger, store).await;
    let route = PaidRoute {
        pattern: "/api/*".into(),
        methods: vec![http::Method::GET],
        payment: gate.price("0.01"),
        service: RouteService::Demo,
    };
    let limits = RequestLimits {
        body_bytes: 64 * 1024,
        timeout: Duration::from_secs(60),
    };
    let metrics = Some(x402_verifier::app::MetricsAccess::default());
    let facilitator = Some(crate::verifier::support::facilitator_access(
        &gate, 50_000_000,
    ));
    let router = app(gate.clone(), vec![route], &limits, metrics, facilitator);
    let url = serve(router).await;
    (gate, url)
}

/// Presents a payment made on chain in the plain header, with `payer`'s proof for `GET
/// path` at `url`.
async fn present(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    reference: &Reference,
    payer: &Keypair,
) -> (u16, serde_json::Value) {
    present_to(http, url, url, path, reference, payer).await
}

/// [`present`] to a verifier at `url` whose public URL is `public_url`.
async fn present_to(
    http: &reqwest::Client,
    url: &str,
    public_url: &str,
    path: &str,
    reference: &Reference,
    payer: &Keypair,
) -> (u16, serde_json::Value) {
    let target = x402_protocol::ProofTarget {
        method: "GET",
        path,
        host: public_url.trim_start_matches("http://"),
    };
    let proof = x402_protocol::sign_proof(payer, reference, &target);
    let response = http
        .get(format!("{url}{path}"))
        .header("X-Payment-Proof", format!("{reference}:{proof}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_verifier_on_json_rpc_grants_receipts_refuses_defects_and_coalesces_reads() {
    // Accounts the program never wrote, at receipts' addresses: another owner, not a
    // receipt (a receipt's bytes with another discriminator).
    let mut plan = Plan::new();
    let market = plan.market;
    let mut defects = Vec::new();
    for (path, reason) in [
        ("/api/owner", "receipt_wrong_owner"),
        ("/api/garbage", "receipt_not_a_receipt"),
    ] {
        let reference = market.issue(path);
        let requirement = market.requirement(reference);
        let mut data = Vec::new();
        anchor_lang::AccountSerialize::try_serialize(
            &x402_receipts::Receipt {
                reference: reference.0,
                payer: Pubkey::new_unique(),
                payee: market.merchant,
                mint: market.mint,
                amount: PRICE,
                rent_payer: Pubkey::new_unique(),
                paid_at: unix_now(),
                slot: 1,
                expires_at: requirement.expires_at,
                bump: 255,
            },
            &mut data,
        )
        .unwrap();
        let mut owner = x402_receipts::ID;
        if reason == "receipt_wrong_owner" {
            owner = Pubkey::new_unique();
        } else {
            data[0] ^= 0xff;
        }
        let account = LedgerAccount {
            owner,
            lamports: 2_289_840,
            data,
        };
        plan.genesis.push((requirement.receipt(), account));
        defects.push((path, reference, reason));
    }
    let chain = plan.start().await;
    let payer = &chain.payer;

    // Receipts paid with `pay` on the validator: a good one, a crowd, and payments that
    // pay something else than their reference asked.
    let good = chain.paid("/api/good").await;
    let crowd = join_all((0..6).map(|i| {
        let chain = &chain;
        async move { chain.paid(&format!("/api/crowd{i}")).await }
    }))
    .await;
    let other_wallet = Keypair::new().pubkey();
    chain.token_account(&other_wallet, &market.mint).await;
    let other_mint = Keypair::new();
    chain.create_mint(&other_mint).await;
    let other_mint = other_mint.pubkey();
    chain
        .token_account(&chain.payer.pubkey(), &other_mint)
        .await;
    chain.token_account(&market.merchant, &other_mint).await;
    chain
        .mint_to(&other_mint, &chain.payer.pubkey(), PRICE)
        .await;
    for (path, reason) in [
        ("/api/payee", "receipt_wrong_payee"),
        ("/api/cheap", "receipt_amount_below_price"),
        ("/api/expiry", "receipt_wrong_expiry"),
        ("/api/mint", "receipt_wrong_mint"),
    ] {
        let reference = market.issue(path);
        let mut paid = market.requirement(reference);
        match reason {
            "receipt_wrong_payee" => paid.pay_to = other_wallet,
            "receipt_amount_below_price" => paid.amount -= 1,
            "receipt_wrong_expiry" => paid.expires_at += 60,
            _ => paid.mint = other_mint,
        }
        chain.pay(&paid).await;
        defects.push((path, reference, reason));
    }
    let unpaid = market.issue("/api/unpaid");

    let validator = &chain.validator;
    let proxy = RpcProxy::start(&validator.url).await;
    let store = tempfile::tempdir().unwrap();
    let (gate, url) = verifier(&market, &proxy, &store).await;
    let http = reqwest::Client::new();

    // A read alone goes out at once: it does not wait the 2 s batch window.
    let started = Instant::now();
    let (status, body) = present(&http, &url, "/api/good", &good, payer).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payment"]["payer"], chain.payer.pubkey().to_string());
    let alone = started.elapsed();
    assert!(
        alone < Duration::from_millis(1500),
        "a lone read took {alone:?}"
    );
    let (status, body) = present(&http, &url, "/api/good", &good, payer).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (402, Some("reference_already_used"))
    );
    for (path, reference, reason) in &defects {
        let (status, body) = present(&http, &url, path, reference, payer).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (402, Some(*reason)),
            "{path}"
        );
    }
    let (status, body) = present(&http, &url, "/api/unpaid", &unpaid, payer).await;
    assert_eq!(
        (status, body["error"].as_str(), body["reference"].as_str()),
        (
            402,
            Some("receipt_not_found"),
            Some(unpaid.to_string().as_str())
        )
    );

    // Six presentations at once, and ten of one unpaid reference: each is answered.
    let presented = crowd.iter().enumerate().map(|(i, r)| {
        let (http, url) = (http.clone(), url.clone());
        let path = format!("/api/crowd{i}");
        async move { present(&http, &url, &path, r, payer).await.0 }
    });
    assert_eq!(join_all(presented).await, vec![200; 6]);
    assert_eq!(gate.store().grants().await.unwrap().len(), 7);
    let same = (0..10).map(|_| {
        let (http, url) = (http.clone(), url.clone());
        async move { present(&http, &url, "/api/unpaid", &unpaid, payer).await.0 }
    });
    assert_eq!(join_all(same).await, vec![402; 10]);

    // Reads made at once share getMultipleAccounts calls, a key asked twice asked once:
    // the first may go out alone (the node idle), the rest queue behind it and go
    // together. (Requests through the gate reach their reads as fast as the machine
    // serves them, so this is shown on the ledger itself.)
    let ledger = RpcLedger::with_network(&proxy.url, network(), RpcOptions::default());
    let receipts: Vec<Pubkey> = crowd
        .iter()
        .map(|r| market.requirement(*r).receipt())
        .collect();
    let reads = receipts.iter().chain(std::iter::repeat_n(&receipts[0], 10));
    let before = proxy.count("getMultipleAccounts");
    let found = join_all(reads.map(|key| ledger.account(key))).await;
    assert!(found.iter().all(|read| matches!(read, Ok(Some(_)))));
    let calls = proxy.count("getMultipleAccounts") - before;
    assert!(
        (1..=2).contains(&calls),
        "{calls} getMultipleAccounts calls for 16 reads at once"
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
    assert_eq!(shown["payee"], market.merchant.to_string());
    let merchant = market.merchant.to_string();
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
    // The program's receipts paying the merchant: the good one, the crowd, and the
    // cheap, expiry and mint ones; not the one paid elsewhere, the one owned by another
    // program, nor the garbage one (no receipt discriminator).
    assert_eq!(listed["count"], 1 + 6 + 3);
    let missing = std::process::Command::new(&x402)
        .args(["receipt", &unpaid.to_string(), "--rpc-url", &validator.url])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(6));
}

#[tokio::test]
async fn node_faults_are_503s_within_the_deadline_and_the_same_reference_is_granted_after() {
    let chain = Plan::new().start().await;
    let payer = &chain.payer;
    let reference = chain.paid("/api/faulty").await;
    let proxy = RpcProxy::start(&chain.validator.url).await;
    let store = tempfile::tempdir().unwrap();
    let (gate, url) = verifier(&chain.market, &proxy, &store).await;
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
    let (status, _) = present(&http, &url, "/api/faulty", &reference, payer).await;
    assert_eq!(
        status, 200,
        "the same reference, once the node is back: no second payment"
    );
}

/// The public URL replicas share behind their load balancer.
const REPLICAS_URL: &str = "http://api.replicas.test";

/// Starts the `x402-verifier` binary on the RPC ledger with no routes (so its paid
/// `/demo` at 0.01), this test's key, `store`, [`REPLICAS_URL`], and no metrics listener
/// (its default address is one per host).
fn verifier_process(
    node_url: &str,
    market: &Market,
    store: &str,
    state: &std::path::Path,
) -> VerifierProcess {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    Launch::new(target.join("debug/x402-verifier"))
        .env("X402_STATE_DIR", state)
        .env("X402_RPC_URL", node_url)
        .env("X402_NETWORK", network().caip2())
        .env("X402_ASSET", market.mint.to_string())
        .env("X402_MERCHANT_WALLET", market.merchant.to_string())
        .env("X402_CHALLENGE_KEY", "09".repeat(32))
        .env("X402_STORE_URL", store)
        .env("X402_PUBLIC_URL", REPLICAS_URL)
        .env("X402_METRICS_LISTEN", "off")
        .env("RUST_LOG", "warn")
        .start()
}

#[tokio::test]
async fn two_verifier_processes_sharing_postgres_serve_one_paid_reference_once() {
    let postgres =
        std::env::var("X402_TEST_POSTGRES_URL").expect("X402_TEST_POSTGRES_URL: see .ci/run");
    let chain = Plan::new().start().await;
    let payer = &chain.payer;
    let reference = chain.paid("/demo").await;
    let validator = &chain.validator;
    let states = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let processes: Vec<_> = states
        .iter()
        .map(|state| verifier_process(&validator.url, &chain.market, &postgres, state.path()))
        .collect();
    let http = reqwest::Client::new();

    let requests = (0..100).map(|i| {
        let (http, base) = (http.clone(), processes[i % 2].url());
        async move {
            present_to(&http, &base, REPLICAS_URL, "/demo", &reference, payer)
                .await
                .0
        }
    });
    let statuses = join_all(requests).await;

    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 99);
}

/// The whole sponsored flow on a validator running the receipts program as SBF: our
/// client pays our verifier, whose fee payer co-signs and submits; the buyer needs no SOL.
#[tokio::test]
async fn the_full_sponsored_flow_runs_on_the_validator() {
    let chain = Plan::new().start().await;
    let market = chain.market;
    let fee_payer = Keypair::new();
    chain.fund(&fee_payer.pubkey()).await;
    let buyer = Keypair::new();
    chain.token_account(&buyer.pubkey(), &market.mint).await;
    chain.mint_to(&market.mint, &buyer.pubkey(), PRICE).await;
    let fee_payer_before = chain.lamports(&fee_payer.pubkey()).await;

    let ledger = RpcLedger::connect(&chain.validator.url, RpcOptions::default())
        .await
        .unwrap();
    let network = ledger.network().clone();
    let caip2 = network.caip2().to_string();
    let fee_payer_key = fee_payer.pubkey();
    let settings = settings(network, market.mint, market.merchant, Some(fee_payer));
    let store = tempfile::tempdir().unwrap();
    let (gate, base) = serve_gate(settings, ledger, &store).await;
    let url = format!("{base}/api/sbf");

    // The validator's mint is no mint the client knows: its cap is in base units.
    let policy = x402_client::SpendingPolicy {
        max_per_request: Some(x402_client::Limit::Units(PRICE)),
        networks: vec![caip2],
        ..Default::default()
    };
    let client = x402_client::X402Client::builder()
        .keypair(buyer.insecure_clone())
        .policy(policy)
        .build();
    let paid = client.get(&url).await.unwrap();
    assert_eq!(paid.response.status(), 200);
    let settlement = paid.settlement.unwrap();
    let receipt: Pubkey = settlement.receipt.as_deref().unwrap().parse().unwrap();
    let deposit = chain.lamports(&receipt).await;
    assert!(deposit > 0, "the receipt is on the validator");
    assert_eq!(chain.token_balance(&buyer.pubkey()).await, 0, "paid once");
    assert_eq!(chain.token_balance(&market.merchant).await, PRICE);
    assert_eq!(
        chain.lamports(&buyer.pubkey()).await,
        0,
        "the buyer has no SOL"
    );
    assert_eq!(
        chain.lamports(&fee_payer_key).await,
        fee_payer_before - deposit - 10_000,
        "the fee payer paid the receipt's rent and the fee of two signatures"
    );
    let again = client.http().get(&url).send().await.unwrap();
    assert_eq!(again.status(), 402, "a new request needs a new payment");
    assert_eq!(gate.store().grants().await.unwrap().len(), 1);
}

/// Expired receipts are closed over JSON-RPC and their rent comes back: `x402
/// close-expired` for a buyer who paid it, the janitor for the verifier's fee payer.
#[tokio::test]
async fn close_expired_and_the_janitor_take_the_rent_back_on_the_validator() {
    let chain = Plan::new().start().await;
    let market = chain.market;
    let fee_payer = Keypair::new();
    chain.fund(&fee_payer.pubkey()).await;
    // Time for two confirmed payments on a busy machine, by either clock.
    let expires_at = unix_now().max(chain.now().await) + 10;
    // One receipt the payer funded, one the fee payer funded.
    let own = market.requirement(market.issue_until("/api/own", expires_at));
    chain.pay(&own).await;
    let sponsored = market.requirement(market.issue_until("/api/sponsored", expires_at));
    let blockhash = chain.ledger.latest_blockhash().await.unwrap();
    let mut tx = sponsored.pay_transaction(&chain.payer.pubkey(), &fee_payer.pubkey(), blockhash);
    tx.sign(&[&fee_payer, &chain.payer], blockhash);
    chain.ledger.submit(&tx.into()).await.unwrap();
    let deposit = chain.lamports(&own.receipt()).await;
    chain.wait_past(expires_at).await;

    let keypair = chain.validator.write_keypair("buyer.json", &chain.payer);
    let before = chain.lamports(&chain.payer.pubkey()).await;
    let closed = std::process::Command::new(crate::client::cli::x402())
        .args(["--json", "close-expired", "--keypair"])
        .arg(&keypair)
        .args(["--rpc-url", &chain.validator.url])
        .output()
        .unwrap();
    assert_eq!(
        closed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&closed.stderr)
    );
    let closed: serde_json::Value = serde_json::from_slice(&closed.stdout).unwrap();
    assert_eq!(
        closed["closed"],
        serde_json::json!([own.receipt().to_string()])
    );
    assert_eq!(closed["rentReturned"], deposit);
    assert_eq!(
        chain.lamports(&chain.payer.pubkey()).await,
        before + deposit - 5_000
    );
    assert_eq!(
        chain.lamports(&own.receipt()).await,
        0,
        "the receipt is gone"
    );

    let ledger = RpcLedger::with_network(&chain.validator.url, network(), RpcOptions::default());
    let fee_payer_key = fee_payer.pubkey();
    let settings = settings(network(), market.mint, market.merchant, Some(fee_payer));
    let store = tempfile::tempdir().unwrap();
    let (gate, _) = serve_gate(settings, ledger, &store).await;
    let before = chain.lamports(&fee_payer_key).await;
    let report = x402_verifier::tasks::close_expired_receipts(&gate, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.closed, vec![sponsored.receipt()]);
    assert_eq!(
        chain.lamports(&fee_payer_key).await,
        before + report.rent_returned - 5_000
    );
    assert_eq!(chain.lamports(&sponsored.receipt()).await, 0);
}

/// Sends `instructions` signed by `signers`, the first paying.
pub(super) async fn send(
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
    ledger.submit(&tx.into()).await.unwrap();
}

/// Copies of one sponsored payment differing only in compute-unit price, sent at once to
/// the verifier on a real validator: one is submitted; the fee payer pays one fee and one
/// rent deposit (without the submission lease, each copy would pass preflight and all but
/// one fail on chain, each at the fee payer's cost).
#[tokio::test]
async fn copies_of_a_sponsored_payment_cost_the_fee_payer_one_fee_and_one_rent() {
    use crate::verifier::support::{sponsored_transaction, x_payment};
    use solana_compute_budget_interface::ComputeBudgetInstruction;
    use x402_protocol::scheme::encode_transaction;

    let chain = Plan::new().start().await;
    let market = chain.market;
    let fee_payer = Keypair::new();
    let fee_payer_key = fee_payer.pubkey();
    chain.fund(&fee_payer_key).await;
    let buyer = Keypair::new();
    chain.token_account(&buyer.pubkey(), &market.mint).await;
    chain.mint_to(&market.mint, &buyer.pubkey(), PRICE).await;
    let ledger = RpcLedger::connect(&chain.validator.url, RpcOptions::default())
        .await
        .unwrap();
    let settings = settings(
        ledger.network().clone(),
        market.mint,
        market.merchant,
        Some(fee_payer),
    );
    let store = tempfile::tempdir().unwrap();
    let (gate, base) = serve_gate(settings, ledger, &store).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/api/copies");
    let body: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    let offer = x402_protocol::ReceiptOffer::from_v1(
        &serde_json::from_value(body["accepts"][0].clone()).unwrap(),
    )
    .unwrap();
    let before = chain.lamports(&fee_payer_key).await;

    let copies: Vec<_> = (1..=5u64)
        .map(|price| {
            let ixs = [
                ComputeBudgetInstruction::set_compute_unit_price(price),
                offer
                    .requirement
                    .pay_instruction(&buyer.pubkey(), &fee_payer_key),
            ];
            let tx = sponsored_transaction(&offer, &buyer, &ixs);
            x_payment(
                &offer,
                serde_json::json!({"transaction": encode_transaction(&tx)}),
            )
        })
        .collect();
    let statuses = join_all(copies.iter().map(|(name, value)| {
        let request = http.get(&url).header(*name, value);
        async move { request.send().await.unwrap().status().as_u16() }
    }))
    .await;

    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    let deposit = chain.lamports(&offer.requirement.receipt()).await;
    let lost = before - chain.lamports(&fee_payer_key).await;
    assert!(
        (deposit + 10_000..=deposit + 10_005).contains(&lost),
        "one rent deposit ({deposit}) and one fee of two signatures, not {lost}"
    );
    assert_eq!(chain.token_balance(&buyer.pubkey()).await, 0);
    assert_eq!(gate.store().grants().await.unwrap().len(), 1);
}

/// A stranger at the facilitator of a verifier on a real validator, without a key and
/// then with a key but requirements of its own: the fee payer spends nothing.
#[tokio::test]
async fn a_stranger_at_the_facilitator_costs_the_fee_payer_nothing_on_the_validator() {
    use crate::verifier::support::{sponsored_transaction, FACILITATOR_KEY};
    use x402_protocol::scheme::encode_transaction;

    let chain = Plan::new().start().await;
    let market = chain.market;
    let fee_payer = Keypair::new();
    let fee_payer_key = fee_payer.pubkey();
    chain.fund(&fee_payer_key).await;
    let ledger = RpcLedger::connect(&chain.validator.url, RpcOptions::default())
        .await
        .unwrap();
    let network = ledger.network().clone();
    let settings = settings(
        network.clone(),
        market.mint,
        market.merchant,
        Some(fee_payer),
    );
    let store = tempfile::tempdir().unwrap();
    let (gate, base) = serve_gate(settings, ledger, &store).await;
    let before = chain.lamports(&fee_payer_key).await;

    // The stranger's own mint and payee, one base unit, an expiry a year away.
    let stranger = Keypair::new();
    let mut reference = Keypair::new().pubkey().to_bytes();
    let expires_at = unix_now() + 365 * 86_400;
    reference[..8].copy_from_slice(&expires_at.to_be_bytes());
    let offer = x402_protocol::ReceiptOffer {
        network: network.caip2().into(),
        requirement: Requirement {
            program: x402_receipts::ID,
            reference: Reference(reference),
            amount: 1,
            expires_at,
            mint: Keypair::new().pubkey(),
            token_program: spl_token::ID,
            pay_to: stranger.pubkey(),
        },
        decimals: 6,
        fee_payer: Some(fee_payer_key),
        recent_blockhash: gate.blockhash(),
        resource: "https://stranger.example/x".into(),
        description: String::new(),
        mime_type: "application/json".into(),
        max_timeout_seconds: 60,
    };
    let tx = sponsored_transaction(
        &offer,
        &stranger,
        &[offer
            .requirement
            .pay_instruction(&stranger.pubkey(), &fee_payer_key)],
    );
    let accepted = offer.to_offer().to_v2();
    let body = serde_json::json!({
        "x402Version": 2,
        "paymentPayload": {
            "x402Version": 2,
            "accepted": accepted,
            "payload": {"transaction": encode_transaction(&tx)},
        },
        "paymentRequirements": accepted,
    });
    let http = reqwest::Client::new();
    let anonymous = http
        .post(format!("{base}/settle"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let keyed: serde_json::Value = http
        .post(format!("{base}/settle"))
        .bearer_auth(FACILITATOR_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keyed["errorReason"], "requirements_not_allowed");
    assert_eq!(
        chain.lamports(&fee_payer_key).await,
        before,
        "not a lamport"
    );
}
