//! Operations: the metrics an operator scrapes, and the janitor that takes rent back.

use std::time::Duration;

use solana_signer::Signer;
use x402_protocol::Ledger;
use x402_verifier::{tasks, unix_now};

use super::support::*;

#[tokio::test]
async fn metrics_count_challenges_grants_refusals_ledger_calls_and_rent_held() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/m").await;
    let payment = sponsored_header(&offer, &payer);
    assert_eq!(
        h.send("GET", "/api/m", std::slice::from_ref(&payment))
            .await
            .status(),
        200
    );
    assert_eq!(h.send("GET", "/api/m", &[payment]).await.status(), 402);

    let text = h.metrics().await;
    let rent = h
        .market
        .ledger
        .account(&offer.requirement.receipt())
        .await
        .unwrap()
        .unwrap()
        .lamports;
    assert_eq!(
        h.ledger.scans.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the rent gauge is counted once at start (receipts and upto channels), not per payment or per scrape"
    );
    for line in [
        "x402_challenges_total 2".to_string(),
        "x402_grants_total 1".to_string(),
        "x402_refusals_total{reason=\"reference_already_used\"} 1".to_string(),
        "x402_ledger_call_seconds_count{call=\"submit\"} 1".to_string(),
        "x402_ledger_call_seconds_count{call=\"account\"} 1".to_string(),
        format!("x402_rent_held_lamports {rent}"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn the_janitor_closes_expired_receipts_the_fee_payer_funded_and_takes_the_rent_back() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let fee_payer = &h.market.fee_payer;
    // A sponsored payment whose challenge expires in a second.
    let expires_at = unix_now() + 1;
    let requirement = h.gate_requirement(h.issue("GET", "/api/j", PRICE, expires_at));
    let blockhash = h.market.ledger.latest_blockhash().await.unwrap();
    let mut tx = requirement.pay_transaction(&payer.pubkey(), &fee_payer.pubkey(), blockhash);
    tx.sign(&[fee_payer, &payer], blockhash);
    h.market.ledger.submit(&tx.into()).await.unwrap();
    let deposit = h
        .market
        .ledger
        .account(&requirement.receipt())
        .await
        .unwrap()
        .unwrap()
        .lamports;

    let early = tasks::close_expired_receipts(&h.gate, Duration::ZERO)
        .await
        .unwrap();
    assert!(early.closed.is_empty(), "not expired yet");
    while unix_now() <= expires_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.market.ledger.set_time(unix_now()).await;
    let kept = tasks::close_expired_receipts(&h.gate, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(kept.closed.is_empty(), "kept for the retention");

    let before = h.market.ledger.lamports(&fee_payer.pubkey()).await;
    let report = tasks::close_expired_receipts(&h.gate, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        (report.closed, report.rent_returned),
        (vec![requirement.receipt()], deposit)
    );
    assert_eq!(
        h.market.ledger.lamports(&fee_payer.pubkey()).await,
        before + deposit - 5_000,
        "rent back, less the fee"
    );
    assert!(h
        .market
        .ledger
        .account(&requirement.receipt())
        .await
        .unwrap()
        .is_none());
    let text = h.metrics().await;
    assert!(
        text.contains(&format!("x402_rent_returned_lamports_total {deposit}")),
        "{text}"
    );
}
