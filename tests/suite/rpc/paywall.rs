//! The paywall on a real ledger, where a blockhash lives a minute (the embedded bank's,
//! a second): a person who takes seconds to approve in their wallet still pays, once.

use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::rpc::{RpcLedger, RpcOptions};
use x402_protocol::Ledger;

use super::chain::{serve_gate, settings, Plan, PRICE};
use super::interop::new_buyer;
use crate::browser::drive;

#[tokio::test]
async fn a_person_taking_seconds_to_approve_pays_in_the_browser_on_the_validator() {
    let chain = Plan::new().start().await;
    let fee_payer = Keypair::new();
    chain.fund(&fee_payer.pubkey()).await;
    let ledger = RpcLedger::connect(&chain.validator.url, RpcOptions::default())
        .await
        .unwrap();
    let network = ledger.network().clone();
    let market = chain.market;
    let settings = settings(network, market.mint, market.merchant, Some(fee_payer));
    let store = tempfile::tempdir().unwrap();
    let (gate, base) = serve_gate(settings, ledger, &store).await;
    let (buyer, keypair) = new_buyer(&chain, "browser-buyer").await;

    let url = format!("{base}/api/page");
    let outcome = drive(
        "paywall.mjs",
        &url,
        &keypair,
        "pay",
        &[("X402_SIGN_DELAY_MS", "5000")],
    )
    .await;

    assert_eq!(outcome.state(), "paid", "{}", outcome.json);
    assert_eq!(chain.token_balance(&buyer.pubkey()).await, 0);
    assert_eq!(chain.token_balance(&market.merchant).await, PRICE);
    assert_eq!(gate.store().grants().await.unwrap().len(), 1);
}
