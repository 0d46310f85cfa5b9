//! A seller that vanishes after the buyer's `upto` channel is open: the client library
//! pays the offer through its ledger (mint, token program and slot read from the chain),
//! a fee payer co-signs and lands the `open`; then `x402 channels` lists the channel, and
//! `x402 channels recover` takes the whole deposit back once the grace period has passed
//! (and before that, says to wait and moves nothing).

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anchor_spl::token::spl_token;
use serde_json::Value;
use solana_keypair::Keypair;
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;
use x402_client::{ChainClock, Challenge, Limit, Offer, SpendingPolicy, X402Client};
use x402_protocol::rpc::{RpcLedger, RpcOptions};
use x402_protocol::scheme::decode_transaction;
use x402_protocol::scheme::upto::{UptoOffer, UptoPayload, UptoTerms};
use x402_protocol::wire::{v2, PaymentMessage, Version};
use x402_protocol::Ledger;

use super::chain::{Plan, PRICE};

/// The channel's grace period, seconds: long enough for `x402` to run once within it on
/// a busy machine.
const GRACE: u32 = 4;

/// Runs `x402 --json <args> --keypair <keypair> --rpc-url <url>`: its exit code and
/// its JSON document.
fn x402(args: &[&str], keypair: &Path, url: &str) -> (Option<i32>, Value) {
    let Output {
        status,
        stdout,
        stderr,
    } = std::process::Command::new(crate::client::cli::x402())
        .arg("--json")
        .args(args)
        .arg("--keypair")
        .arg(keypair)
        .args(["--rpc-url", url])
        .output()
        .unwrap();
    let document = serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&stderr));
    });
    (status.code(), document)
}

#[tokio::test]
async fn a_buyer_recovers_its_whole_deposit_from_a_seller_that_never_settles() {
    let chain = Plan::new().start().await;
    let buyer = &chain.payer;
    let fee_payer = Keypair::new();
    chain.fund(&fee_payer.pubkey()).await;
    let deposit = 5 * PRICE;
    let terms = UptoTerms {
        mint: chain.market.mint,
        token_program: spl_token::ID,
        pay_to: chain.market.merchant,
        max_amount: deposit,
        fee_payer: fee_payer.pubkey(),
        receiver_authorizer: Keypair::new().pubkey(),
        withdraw_delay: GRACE,
        memo: None,
    };
    let network = chain.ledger.network().clone();
    let offer = UptoOffer {
        network: network.caip2().to_string(),
        terms,
        recent_blockhash: None,
        last_valid_block_height: None,
        recent_slot: None,
        valid_after: None,
        resource: v2::ResourceInfo {
            url: "http://seller.example/metered".into(),
            description: None,
            mime_type: None,
        },
        max_timeout_seconds: 60,
    };
    let challenge = Challenge {
        offers: vec![Offer::read(&offer.to_offer()).unwrap()],
        unpayable: Vec::new(),
        v2: None,
        error: None,
        request: None,
    };
    let ledger = RpcLedger::with_network(&chain.validator.url, network, RpcOptions::default());
    let client = X402Client::builder()
        .keypair(buyer.insecure_clone())
        .ledger(Arc::new(ledger))
        .policy(SpendingPolicy {
            max_per_request: Some(Limit::Units(deposit)),
            ..SpendingPolicy::default()
        })
        .build();
    let payment = client.pay(&challenge).await.unwrap();
    assert_eq!(
        client.spent(),
        deposit,
        "the maximum is what leaves the wallet"
    );
    let message = PaymentMessage::decode(Version::V1, &payment.header.1).unwrap();
    let payload: UptoPayload = serde_json::from_value(message.payload).unwrap();
    // The seller's fee payer co-signs and lands it; then the seller is gone.
    let mut open: VersionedTransaction = decode_transaction(&payload.open_transaction).unwrap();
    open.signatures[0] = fee_payer.sign_message(&open.message.serialize());
    chain.ledger.submit(&open).await.unwrap();
    let held = 100 * PRICE - deposit;
    assert_eq!(chain.token_balance(&buyer.pubkey()).await, held);

    let keypair = chain.validator.write_keypair("buyer.json", buyer);
    let url = &chain.validator.url;
    let (code, listed) = x402(&["channels"], &keypair, url);
    assert_eq!(code, Some(0), "{listed}");
    let channel = &listed["channels"][0];
    assert_eq!(listed["channels"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(channel["address"], payload.channel_id);
    assert_eq!(
        (&channel["status"], &channel["deposit"], &channel["settled"]),
        (&"open".into(), &deposit.to_string().into(), &"0".into())
    );
    assert_eq!(channel["gracePeriod"], GRACE);
    assert_eq!(channel["withdrawableAt"], Value::Null, "not before a close");

    let recover = ["channels", "recover", payload.channel_id.as_str()];
    let (code, closing) = x402(&recover, &keypair, url);
    assert_eq!(code, Some(0), "{closing}");
    assert_eq!(closing["channels"][0]["action"], "requestClose");

    // Within the grace period: told to wait (exit 8), nothing moves.
    let (code, early) = x402(&recover, &keypair, url);
    assert_eq!(code, Some(8), "{early}");
    assert_eq!(early["channels"][0]["action"], "wait");
    assert_eq!(early["channels"][0]["transaction"], Value::Null);
    let withdrawable_at = early["channels"][0]["withdrawableAt"].as_i64().unwrap();
    assert_eq!(chain.token_balance(&buyer.pubkey()).await, held);

    let deadline = Instant::now() + Duration::from_secs(60);
    while ChainClock::read(&chain.ledger)
        .await
        .unwrap()
        .unix_timestamp
        < withdrawable_at
    {
        assert!(
            Instant::now() < deadline,
            "the validator's clock stands still"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // No channel named: every channel of the wallet.
    let (code, withdrawn) = x402(&["channels", "recover"], &keypair, url);
    assert_eq!(code, Some(0), "{withdrawn}");
    assert_eq!(withdrawn["channels"][0]["action"], "withdraw");
    assert_eq!(withdrawn["channels"][0]["refund"], deposit.to_string());
    assert_eq!(
        chain.token_balance(&buyer.pubkey()).await,
        100 * PRICE,
        "the whole deposit back, to the base unit"
    );
    let (_, listed) = x402(&["channels"], &keypair, url);
    assert_eq!(listed["channels"][0]["status"], "withdrawn");
    assert_eq!(listed["channels"][0]["withdrawableAt"], Value::Null);
}
