//! A metered (`upto`) paid request on a real solana-test-validator, beside a fixed-price
//! sponsored (`exact`) one: the verifier (a process of its own, the JSON-RPC ledger, a
//! fee payer) in front of an upstream that answers at once and, on the metered route,
//! says its answer cost 0.0042 of a 0.01 ceiling.
//!
//! - `exact`: one transaction (the buyer's transfer, co-signed by the fee payer), landed
//!   before the request is served.
//! - `upto`: two. The buyer's `open` (the ceiling escrowed in a payment channel) lands
//!   before serving; after the answer, the fee payer's `settle_and_seal` (with its
//!   voucher for what the answer cost) + `distribute` pays the seller and refunds the
//!   rest. The channel's rent stays with it until `reclaim`, which the program allows
//!   only 1,500 slots after the open (the verifier's janitor sends it then: a third
//!   transaction, not timed here).
//!
//! Measured: the latency of the paid request (from sending it with its payment to the
//! answer, one at a time, after one of each not counted), and each transaction as the node recorded it (signatures,
//! instructions, compute units, fee, what the fee payer spent), with the rent each
//! channel holds until its reclaim.
//!
//! ```sh
//! metered --verifier target/release/x402-verifier --validator $X402_TEST_VALIDATOR \
//!     --program target/deploy/x402_receipts.so --work DIR [--requests 20]
//! ```

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use solana_keypair::Keypair;
use solana_signer::Signer;
use solana_system_interface::instruction as system_instruction;
use x402_bench::{ms, percentile, submit, Market, OnValidator};
use x402_client::{Challenge, X402Client};
use x402_protocol::scheme::upto::TREASURY_OWNER;
use x402_protocol::wire::{Settlement, Version};
use x402_testkit::serve;

/// Both routes' price in base units: `exact`'s, and `upto`'s ceiling (0.01).
const PRICE: u64 = 10_000;
/// What the metered upstream says each answer cost, and in base units.
const CHARGE: &str = "0.0042";
const CHARGED: u64 = 4_200;
/// The upstream's answer.
const ANSWER: &str = r#"{"ok":true}"#;
/// Slots after its open before a channel's rent may be reclaimed (the program's
/// `OPEN_SLOT_WINDOW`).
const RECLAIM_WINDOW_SLOTS: u64 = 1_500;

/// `metered`'s arguments.
#[derive(clap::Parser)]
#[command(
    name = "metered",
    about = "A metered (upto) paid request beside an exact one: latency and transactions on chain"
)]
struct Args {
    #[command(flatten)]
    on: OnValidator,
    /// Paid requests of each scheme, one at a time.
    #[arg(long, default_value_t = 20)]
    requests: usize,
}

#[tokio::main]
async fn main() {
    let args = <Args as clap::Parser>::parse();
    assert!(args.requests > 0, "--requests must be at least 1");
    // Every `distribute` names the program's treasury's token account of the mint.
    let market = args.on.market(&[TREASURY_OWNER]).await;
    let Market {
        validator,
        node,
        authority,
        ..
    } = &market;
    let fee_payer = Keypair::new();
    let fund =
        system_instruction::transfer(&authority.pubkey(), &fee_payer.pubkey(), 10_000_000_000);
    submit(node, authority, &[fund], &[authority]).await;
    let fee_payer_file = validator.write_keypair("bench-fee-payer.json", &fee_payer);

    // The metered route's upstream says what its answer cost (the verifier takes the
    // header off).
    let upstream = serve(
        axum::Router::new()
            .route(
                "/metered/{*rest}",
                axum::routing::get(|| async { ([("x402-charge", CHARGE)], ANSWER) }),
            )
            .fallback(|| async { ANSWER }),
    )
    .await;
    // `/exact/*` at 0.01 in `exact`, `/metered/*` at most 0.01 in `upto`.
    let routes = format!(
        r#"[[routes]]
path = "/exact/*"
price = "0.01"
schemes = ["exact"]
upstream = "{upstream}"

[[routes]]
path = "/metered/*"
price = "0.01"
schemes = ["upto"]
upstream = "{upstream}"
"#
    );
    let payment = format!("fee_payer_keypair = \"{}\"", fee_payer_file.display());
    // Its port is fixed, below the ephemeral range and the validators' ports (from 20,000
    // up).
    let verifier = args.on.verifier(
        "127.0.0.1:18497",
        &validator.url,
        &market,
        &payment,
        &routes,
    );
    let url = verifier.url();

    let buyer = market.buyer(PRICE);
    let http = reqwest::Client::new();

    // One request of each, not counted: the first sponsored submission after start
    // waits on the verifier's and the node's warm-up.
    paid_requests(&http, &buyer, &format!("{url}/exact/warm-up"), 1).await;
    paid_requests(&http, &buyer, &format!("{url}/metered/warm-up"), 1).await;
    let slot_before = slot(&http, &validator.url).await;
    let started = Instant::now();
    let exact = paid_requests(&http, &buyer, &format!("{url}/exact"), args.requests).await;
    let upto = paid_requests(&http, &buyer, &format!("{url}/metered"), args.requests).await;
    let slot_time =
        started.elapsed() / (slot(&http, &validator.url).await - slot_before).max(1) as u32;

    let mut transfers = Vec::new();
    for paid in &exact {
        assert_eq!(paid.settlement.amount, Some(PRICE.to_string()));
        let transfer = transaction(&http, &validator.url, &paid.settlement.transaction).await;
        assert_eq!(
            transfer.fee_payer_spent, transfer.fee as i64,
            "only the fee"
        );
        transfers.push(transfer);
    }
    let (mut opens, mut settles, mut rents) = (Vec::new(), Vec::new(), Vec::new());
    for paid in &upto {
        let s = &paid.settlement;
        assert_eq!(
            s.amount,
            Some(CHARGED.to_string()),
            "charged what the answer cost"
        );
        let extra = |key: &str| s.extra[key].as_str().expect(key).to_string();
        assert_eq!(extra("maxAmount"), PRICE.to_string());
        let open = transaction(&http, &validator.url, &extra("openTransaction")).await;
        let settle = transaction(&http, &validator.url, &s.transaction).await;
        let rent = lamports(&http, &validator.url, &extra("channel")).await;
        // All the fee payer is out once the channel is distributed: the two fees and the
        // channel's rent (the escrow's came back with `distribute`).
        assert_eq!(
            open.fee_payer_spent + settle.fee_payer_spent,
            (open.fee + settle.fee + rent) as i64,
            "the fee payer's spending"
        );
        opens.push(open);
        settles.push(settle);
        rents.push(rent);
    }

    println!(
        "{:<36} {:>8} {:>10} {:>10}  on chain",
        "paid request (validator)", "requests", "p50 ms", "p99 ms"
    );
    for (name, paid, chain) in [
        (
            "exact (0.01, sponsored)",
            &exact,
            "1 transaction: the transfer, landed before serving",
        ),
        (
            "upto (at most 0.01, charged 0.0042)",
            &upto,
            "2 transactions: open before serving, settle_and_seal + distribute after",
        ),
    ] {
        let latencies: Vec<Duration> = paid.iter().map(|p| p.latency).collect();
        println!(
            "{name:<36} {:>8} {:>10.2} {:>10.2}  {chain}",
            latencies.len(),
            ms(percentile(&latencies, 50)),
            ms(percentile(&latencies, 99)),
        );
    }
    println!();
    println!(
        "{:<36} {:>5} {:>6} {:>9} {:>9} {:>16}",
        "transaction (median)", "sigs", "instrs", "CUs", "fee", "fee payer spent"
    );
    for (name, transactions) in [
        ("exact: transfer", &transfers),
        ("upto: open", &opens),
        ("upto: settle_and_seal + distribute", &settles),
    ] {
        let median = |figure: fn(&OnChain) -> i64| {
            let mut figures: Vec<i64> = transactions.iter().map(figure).collect();
            figures.sort();
            figures[figures.len() / 2]
        };
        println!(
            "{name:<36} {:>5} {:>6} {:>9} {:>9} {:>16}",
            median(|t| t.signatures as i64),
            median(|t| t.instructions as i64),
            median(|t| t.compute_units as i64),
            median(|t| t.fee as i64),
            median(|t| t.fee_payer_spent),
        );
    }
    let fees: u64 = opens[0].fee + settles[0].fee;
    let rent = rents[rents.len() / 2];
    println!(
        "upto, per request: fees {fees} lamports (exact: {}); the channel's rent, {rent} lamports, \
         held until its reclaim {RECLAIM_WINDOW_SLOTS} slots after the open (about {:.0} s at this \
         validator's {:.0} ms slots); escrow's rent back at distribute",
        transfers[0].fee,
        (slot_time * RECLAIM_WINDOW_SLOTS as u32).as_secs_f64(),
        ms(slot_time),
    );
}

/// A paid request: how long it took from its sending with the payment to the answer, and
/// the settlement header it came back with.
struct PaidRequest {
    latency: Duration,
    settlement: Settlement,
}

/// `count` requests of `<route>/<n>`, one at a time: each challenged, paid by `buyer`,
/// then sent with its payment (what is timed).
async fn paid_requests(
    http: &reqwest::Client,
    buyer: &X402Client,
    route: &str,
    count: usize,
) -> Vec<PaidRequest> {
    let mut paid = Vec::with_capacity(count);
    for n in 0..count {
        let path = format!("{route}/{n}");
        let answer = http.get(&path).send().await.expect("a challenge");
        assert_eq!(answer.status(), 402);
        let mut challenge = Challenge::read(answer).await.expect("a challenge");
        challenge.request = Some((reqwest::Method::GET, path.parse().expect("a URL")));
        let payment = buyer.pay(&challenge).await.expect("a payment");
        let sent = Instant::now();
        let answer = buyer
            .send_with(http.get(&path), &payment)
            .await
            .expect("a paid request");
        let latency = sent.elapsed();
        assert_eq!(answer.response.status(), 200);
        let header = answer.response.headers()[Version::V2.settlement_header()]
            .to_str()
            .expect("ASCII");
        let settlement = Settlement::decode(Version::V2, header).expect("a settlement");
        paid.push(PaidRequest {
            latency,
            settlement,
        });
    }
    paid
}

/// A transaction as the node recorded it.
struct OnChain {
    signatures: usize,
    instructions: usize,
    compute_units: u64,
    /// Lamports, precompile signatures included.
    fee: u64,
    /// What the fee payer's balance went down by (negative: it went up).
    fee_payer_spent: i64,
}

/// One JSON-RPC call to the node; its `result`.
async fn rpc(http: &reqwest::Client, node: &str, method: &str, params: Value) -> Value {
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let answer: Value = http
        .post(node)
        .json(&call)
        .send()
        .await
        .expect("the node")
        .json()
        .await
        .expect("a JSON-RPC answer");
    answer["result"].clone()
}

/// The transaction `signature`, confirmed, as the node recorded it.
async fn transaction(http: &reqwest::Client, node: &str, signature: &str) -> OnChain {
    let params = json!([signature, {"encoding": "json", "commitment": "confirmed", "maxSupportedTransactionVersion": 0}]);
    let recorded = rpc(http, node, "getTransaction", params).await;
    let (meta, message) = (&recorded["meta"], &recorded["transaction"]["message"]);
    let number = |value: &Value| {
        value
            .as_u64()
            .unwrap_or_else(|| panic!("{signature}: {recorded}"))
    };
    OnChain {
        signatures: recorded["transaction"]["signatures"]
            .as_array()
            .map_or(0, Vec::len),
        instructions: message["instructions"].as_array().map_or(0, Vec::len),
        compute_units: number(&meta["computeUnitsConsumed"]),
        fee: number(&meta["fee"]),
        fee_payer_spent: number(&meta["preBalances"][0]) as i64
            - number(&meta["postBalances"][0]) as i64,
    }
}

/// The lamports `address` holds.
async fn lamports(http: &reqwest::Client, node: &str, address: &str) -> u64 {
    let balance = rpc(
        http,
        node,
        "getBalance",
        json!([address, {"commitment": "confirmed"}]),
    )
    .await;
    balance["value"].as_u64().expect("a balance")
}

/// The node's current slot.
async fn slot(http: &reqwest::Client, node: &str) -> u64 {
    let slot = rpc(http, node, "getSlot", json!([{"commitment": "confirmed"}])).await;
    slot.as_u64().expect("a slot")
}
