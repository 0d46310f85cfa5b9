//! The `x402` binary, built and run as a person or an agent runs it.

use std::path::{Path, PathBuf};
use std::process::Output;

use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::keypair::write_keypair_file;

use crate::client::seller::{
    exact_offer, reference, Answer, Seller, DEVNET, DEVNET_USDC, MAINNET_USDC,
};
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

/// The payments `x402 fetch` kept in `dir`.
fn kept_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.starts_with("x402-payment-").then_some(name)
        })
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `--allow-network` for the harness's network, by both of its names (v1, CAIP-2):
/// without --rpc-url, a sponsored offer is paid only on a network allowed explicitly.
fn allow_local(h: &Harness) -> Vec<String> {
    let network = x402_protocol::Ledger::network(h.market.ledger.as_ref());
    let mut args = Vec::new();
    for name in [network.v1_name(), network.caip2()] {
        args.extend(["--allow-network".to_string(), name.to_string()]);
    }
    args
}

/// `args`, then `more`.
fn with<'a>(args: &[&'a str], more: &'a [String]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(more.iter().map(String::as_str));
    all
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

    let cap = PRICE.to_string();
    let local = allow_local(&h);
    let out = run(&with(
        &[
            "fetch",
            &h.url("/api/cli"),
            "--keypair",
            &keypair,
            "--max-units",
            &cap,
        ],
        &local,
    ))
    .await;

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

    let posted = run(&with(
        &[
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
            "--max-units",
            &cap,
        ],
        &local,
    ))
    .await;
    assert_eq!(text(&posted.stdout), "served /api/cli body=hello");
}

#[tokio::test]
async fn fetch_over_the_maximum_exits_3_without_paying() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (payer, keypair) = payer_file(&h, dir.path()).await;
    let local = allow_local(&h);

    let out = run(&with(
        &[
            "fetch",
            &h.url("/api/dear"),
            "--keypair",
            &keypair,
            "--max-units",
            "1000",
        ],
        &local,
    ))
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("MaxPerRequest"),
        "{}",
        text(&out.stderr)
    );
    // A decimal maximum needs the mint's decimals, which the server's word is not: for
    // this local mint, without --rpc-url, it is refused.
    let out = run(&with(
        &[
            "fetch",
            &h.url("/api/dear"),
            "--keypair",
            &keypair,
            "--max-amount",
            "0.001",
        ],
        &local,
    ))
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("UnknownDecimals"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&with(
        &[
            "--json",
            "fetch",
            &h.url("/api/dear"),
            "--keypair",
            &keypair,
            "--max-units",
            "1000",
        ],
        &local,
    ))
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
    let cap = PRICE.to_string();
    let local = allow_local(&h);
    let fetched = run(&with(
        &[
            "--json",
            "fetch",
            &h.url("/api/q"),
            "--keypair",
            &keypair,
            "--max-units",
            &cap,
        ],
        &local,
    ))
    .await;
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
    let cap = PRICE.to_string();
    let local = allow_local(&h);

    let out = run_in(
        dir.path(),
        &with(
            &["fetch", &url, "--keypair", &keypair, "--max-units", &cap],
            &local,
        ),
    )
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--resume"),
        "{}",
        text(&out.stderr)
    );
    let kept = kept_files(dir.path());
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

/// A keypair file for a payer the fake sellers never charge (they submit nothing).
fn unfunded_payer(dir: &Path) -> (Keypair, String) {
    let payer = Keypair::new();
    let path = dir.join("unfunded.json");
    write_keypair_file(&payer, &path).unwrap();
    (payer, path.display().to_string())
}

/// A hostile seller asks a million USDC: `x402 fetch` without a limit pays at most 1.00
/// (USDC's decimals it knows itself) and signs nothing; `--no-limit` is the buyer's
/// explicit choice. A token whose decimals it cannot know is refused unless the limit is
/// in base units.
#[tokio::test]
async fn fetch_without_a_limit_pays_at_most_one_token() {
    let dir = tempfile::tempdir().unwrap();
    let (_, keypair) = unfunded_payer(dir.path());
    let million = 1_000_000 * 1_000_000;
    let hostile = Seller::start(
        vec![exact_offer(DEVNET, DEVNET_USDC, million, &reference(1))],
        "",
        vec![],
    )
    .await;
    let fetch = |extra: &'static [&'static str]| {
        let mut args = vec![
            "fetch".to_string(),
            hostile.url.clone(),
            "--keypair".into(),
            keypair.clone(),
            "--allow-network".into(),
            "solana-devnet".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let args = fetch(&[]);
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("MaxPerRequest")
            && text(&out.stderr).contains("at most 1 per request"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(hostile.presented(), vec![], "nothing signed or sent");

    let args = fetch(&["--no-limit"]);
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(hostile.presented().len(), 1);

    // The verifier's local mint (its currency "USDC" is the seller's word) is no
    // stablecoin x402 knows: refused, naming the mint and how to allow it.
    let h = Harness::start().await;
    let (payer, keypair) = payer_file(&h, dir.path()).await;
    let local = allow_local(&h);
    let url = h.url("/api/default");
    let default = with(&["fetch", &url, "--keypair", &keypair], &local);
    let out = run(&default).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(
        said.contains("NotAStablecoin")
            && said.contains(&h.market.mint.to_string())
            && said.contains("--max-units"),
        "{said}"
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, 10 * PRICE);
    let cap = PRICE.to_string();
    let mut capped = default.clone();
    capped.extend(["--max-units", &cap]);
    let out = run(&capped).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(h.token_balance(&payer.pubkey()).await, 9 * PRICE);
}

/// Without --rpc-url, our verifier's sponsored `receipt` offer is signed over its
/// blockhash, as an `exact` offer is: paid only on a network allowed with
/// --allow-network, which the refusal names. Nothing is signed otherwise.
#[tokio::test]
async fn fetch_pays_a_sponsored_receipt_without_rpc_url_only_on_a_network_allowed() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (payer, keypair) = payer_file(&h, dir.path()).await;
    let cap = PRICE.to_string();
    let url = h.url("/api/allowed");
    let fetch = ["fetch", &url, "--keypair", &keypair, "--max-units", &cap];
    let out = run(&fetch).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(
        said.contains("Network")
            && said.contains("receipt on ")
            && said.contains("--allow-network"),
        "{said}"
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, 10 * PRICE);
    assert_eq!(
        h.ledger.submits.load(std::sync::atomic::Ordering::SeqCst),
        0
    );

    let local = allow_local(&h);
    let out = run(&with(&fetch, &local)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(h.token_balance(&payer.pubkey()).await, 9 * PRICE);
}

/// An offer whose network is not where its money is, and an `exact` offer on a network
/// the buyer did not name (without --rpc-url to read the cluster): exit 3, nothing sent.
#[tokio::test]
async fn fetch_refuses_an_offer_whose_network_is_not_where_its_money_is() {
    let dir = tempfile::tempdir().unwrap();
    let (_, keypair) = unfunded_payer(dir.path());
    let mislabelled = Seller::start(
        vec![exact_offer(DEVNET, MAINNET_USDC, 1000, &reference(2))],
        "",
        vec![],
    )
    .await;
    let out = run(&[
        "--json",
        "fetch",
        &mislabelled.url,
        "--keypair",
        &keypair,
        "--allow-network",
        "solana-devnet",
    ])
    .await;
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            answer["exitCode"].as_u64(),
            answer["detail"]["rule"].as_str()
        ),
        (Some(3), Some("NetworkMismatch")),
        "{answer}"
    );
    assert_eq!(mislabelled.presented(), vec![]);

    let devnet = Seller::start(
        vec![exact_offer(DEVNET, DEVNET_USDC, 1000, &reference(3))],
        "",
        vec![],
    )
    .await;
    let out = run(&["--json", "fetch", &devnet.url, "--keypair", &keypair]).await;
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            answer["exitCode"].as_u64(),
            answer["detail"]["rule"].as_str()
        ),
        (Some(3), Some("Network")),
        "{answer}"
    );
    assert_eq!(devnet.presented(), vec![]);
}

/// The seller answers the paid request 500 (it gives the grant back): `x402 fetch` keeps
/// the payment (exit 5) and `--resume` presents the same payment with the payer's proof.
#[tokio::test]
async fn a_5xx_to_a_paid_request_keeps_the_payment_and_resume_presents_it_with_the_proof() {
    let dir = tempfile::tempdir().unwrap();
    let (payer, keypair) = unfunded_payer(dir.path());
    let paid_reference = reference(4);
    let seller = Seller::start(
        vec![exact_offer(DEVNET, DEVNET_USDC, 1000, &paid_reference)],
        "",
        vec![Answer::status(500, "upstream broke")],
    )
    .await;
    let fetch = [
        "fetch",
        &seller.url,
        "--keypair",
        &keypair,
        "--allow-network",
        "solana-devnet",
    ];

    let out = run_in(dir.path(), &fetch).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(
        said.contains("500")
            && said.contains("upstream broke")
            && said.contains("--resume")
            && said.contains("do not pay again"),
        "{said}"
    );
    let kept = kept_files(dir.path());
    assert_eq!(kept, vec![format!("x402-payment-{paid_reference}.json")]);

    let mut resume = fetch.to_vec();
    resume.extend(["--resume", &kept[0]]);
    let out = run_in(dir.path(), &resume).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "paid");

    let presented = seller.presented();
    assert_eq!(presented.len(), 2, "{presented:?}");
    assert_eq!(
        presented[1].payment, presented[0].payment,
        "the same payment"
    );
    assert_eq!(presented[0].proof, None);
    let proof = presented[1].proof.as_deref().expect("a proof beside it");
    assert!(seller.proves(proof, &payer, &paid_reference), "{proof}");
    assert_eq!(*seller.challenges.lock().unwrap(), 1, "paid once");
}

/// Our verifier's upstream fails after the payment: the grant is given back, `x402 fetch`
/// keeps the payment, and `--resume` buys the request with it. Paid once.
#[tokio::test]
async fn a_payment_our_verifier_gave_back_is_resumed_and_paid_once() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (payer, keypair) = payer_file(&h, dir.path()).await;
    h.api.set_mode(UpstreamMode::Fail);
    let url = h.url("/api/given-back");
    let cap = PRICE.to_string();
    let local = allow_local(&h);
    let fetch = with(
        &["fetch", &url, "--keypair", &keypair, "--max-units", &cap],
        &local,
    );

    let out = run_in(dir.path(), &fetch).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let kept = kept_files(dir.path());
    assert_eq!(kept.len(), 1, "{kept:?}");

    h.api.set_mode(UpstreamMode::Ok);
    let mut resume = fetch.clone();
    resume.extend(["--resume", &kept[0]]);
    let out = run_in(dir.path(), &resume).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "served /api/given-back body=");
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        9 * PRICE,
        "paid once"
    );
}

/// What a hostile seller writes (a window title, a screen clear) reaches the terminal
/// escaped: in a description, a refusal's reason, an error answer and a settlement. With
/// --json it is exact, JSON-escaped.
#[tokio::test]
async fn seller_strings_reach_the_terminal_escaped_and_json_exactly() {
    const EVIL: &str =
        "\x1b]0;pwned\x07 and \x1b[2J\r\nx402: a forged line, \u{202e}00.1\u{2066} reordered";
    const SHOWN: [&str; 5] = [
        "\\u{1b}]0;pwned\\u{7}",
        "\\u{1b}[2J",
        "\\r\\n",
        "\\u{202e}00.1",
        "\\u{2066}",
    ];
    // A bidirectional control reorders what follows it on the terminal.
    let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let clean = |out: &str| {
        assert!(
            !out.chars()
                .any(|c| (c.is_control() && c != '\n') || bidi(c)),
            "a control character reached the terminal: {out:?}"
        );
        for escaped in SHOWN {
            assert!(out.contains(escaped), "{escaped} in {out:?}");
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, keypair) = unfunded_payer(dir.path());
    let settlement = x402_protocol::wire::Settlement {
        success: true,
        error_reason: None,
        payer: "a payer".into(),
        transaction: "a transaction".into(),
        network: "solana-devnet".into(),
        amount: None,
        extra: serde_json::json!({"reference": EVIL})
            .as_object()
            .unwrap()
            .clone(),
    }
    .header(x402_protocol::wire::Version::V2);
    let settled = Answer {
        status: 200,
        body: "paid".into(),
        headers: vec![settlement],
    };
    let seller = Seller::start(
        vec![exact_offer(DEVNET, DEVNET_USDC, 1000, &reference(5))],
        EVIL,
        vec![
            Answer::refused(EVIL),
            Answer::refused(EVIL),
            Answer::status(500, EVIL),
            settled,
        ],
    )
    .await;

    let quote = run(&["quote", &seller.url]).await;
    assert_eq!(quote.status.code(), Some(0));
    clean(&text(&quote.stdout));
    let quote = run(&["--json", "quote", &seller.url]).await;
    let quote: serde_json::Value = serde_json::from_slice(&quote.stdout).unwrap();
    assert_eq!(quote["offers"][0]["description"], EVIL);

    let fetch = [
        "fetch",
        &seller.url,
        "--keypair",
        &keypair,
        "--allow-network",
        "solana-devnet",
    ];
    let refused = run(&fetch).await;
    assert_eq!(refused.status.code(), Some(4));
    clean(&text(&refused.stderr));
    let mut json = vec!["--json"];
    json.extend(fetch);
    let refused = run(&json).await;
    let refused: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(refused["detail"]["reason"], EVIL);

    let failed = run_in(dir.path(), &fetch).await;
    assert_eq!(failed.status.code(), Some(5));
    clean(&text(&failed.stderr));
    let kept = kept_files(dir.path());
    let mut resume = fetch.to_vec();
    resume.extend(["--resume", &kept[0]]);
    let settled = run_in(dir.path(), &resume).await;
    assert_eq!(settled.status.code(), Some(0), "{}", text(&settled.stderr));
    assert_eq!(text(&settled.stdout), "paid");
    let said = text(&settled.stderr);
    assert!(
        !said
            .chars()
            .any(|c| (c.is_control() && c != '\n') || bidi(c)),
        "{said:?}"
    );
    assert!(said.contains("\\u{1b}]0;pwned\\u{7}"), "{said:?}");
}
