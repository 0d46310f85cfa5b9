//! Paying: each way reaches the upstream exactly once and answers with the settlement.

use futures_util::future::join_all;
use solana_signer::Signer;
use x402_protocol::scheme::encode_transaction;
use x402_protocol::wire::{decode_header, encode_header, v1, v2};
use x402_verifier::unix_now;

use super::support::*;

#[tokio::test]
async fn a_sponsored_payment_reaches_the_upstream_once_and_settles() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let (offer, body) = h.challenge("GET", "/api/report").await;
    assert_eq!(body["amount"], "0.01");
    assert_eq!(offer.requirement.amount, PRICE);
    let fee_payer = offer.fee_payer.expect("the verifier sponsors");
    let fee_payer_sol = h.market.ledger.lamports(&fee_payer).await;

    let response = h
        .send("GET", "/api/report", &[sponsored_header(&offer, &payer)])
        .await;

    assert_eq!(response.status(), 200);
    let settlement = response.headers()[v1::X_PAYMENT_RESPONSE]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(response.text().await.unwrap(), "served /api/report body=");
    assert_eq!(h.api.hits(), 1);
    let settlement: v1::SettlementResponse = decode_header(&settlement).unwrap();
    assert!(settlement.success);
    assert_eq!(settlement.payer, payer.pubkey().to_string());
    assert_eq!(
        settlement.extra["reference"],
        offer.requirement.reference.to_string()
    );
    assert_eq!(
        settlement.extra["receipt"],
        offer.requirement.receipt().to_string()
    );
    assert!(!settlement.transaction.is_empty());
    // The buyer paid the price and no SOL; the merchant got it; the sponsor paid fee and rent.
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0);
    assert_eq!(h.token_balance(&h.market.merchant).await, PRICE);
    assert_eq!(
        h.market.ledger.lamports(&payer.pubkey()).await,
        1_000_000_000
    );
    assert!(h.market.ledger.lamports(&fee_payer).await < fee_payer_sol);
    // Auditors read the receipt back, decoded.
    let reference = offer.requirement.reference.to_string();
    let receipt: serde_json::Value = h
        .send("GET", &format!("/receipts/{reference}"), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["receipt"], offer.requirement.receipt().to_string());
    assert_eq!(receipt["payer"], payer.pubkey().to_string());
    assert_eq!(receipt["payee"], h.market.merchant.to_string());
    assert_eq!(
        (
            receipt["amount"].as_str(),
            receipt["amountDecimal"].as_str()
        ),
        (Some("10000"), Some("0.01"))
    );
    assert_eq!(receipt["rentPayer"], fee_payer.to_string());
    let link = receipt["explorer"]["receipt"].as_str().unwrap();
    assert!(
        link.starts_with(&format!(
            "https://explorer.solana.com/address/{}",
            offer.requirement.receipt()
        )),
        "{link}"
    );
    // Upstream never sees the payment.
    let seen = h.api.last_headers.lock().unwrap().clone();
    assert!(
        !seen.iter().any(|name| name.starts_with("x-payment")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_self_submitted_payment_is_accepted_in_each_header_form() {
    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;

    // x402 v1: X-PAYMENT with the reference.
    let (offer, _) = h.challenge("GET", "/api/v1").await;
    let signature = h.pay_on_chain(&offer.requirement, &payer).await;
    let proof_of = |path: &str, reference| {
        let (_, header) = h.proof(&payer, path, reference);
        header.split_once(':').unwrap().1.to_string()
    };
    let payload = serde_json::json!({
        "reference": offer.requirement.reference.to_string(),
        "proof": proof_of("/api/v1", &offer.requirement.reference),
        "signature": signature.to_string(),
    });
    let response = h
        .send("GET", "/api/v1", &[x_payment(&offer, payload)])
        .await;
    assert_eq!(response.status(), 200);
    let settlement: v1::SettlementResponse =
        decode_header(response.headers()[v1::X_PAYMENT_RESPONSE].to_str().unwrap()).unwrap();
    assert_eq!(settlement.transaction, signature.to_string());

    // x402 v2: PAYMENT-SIGNATURE, answered with PAYMENT-RESPONSE.
    let challenge = h.send("GET", "/api/v2", &[]).await;
    let required: v2::PaymentRequired =
        decode_header(challenge.headers()[v2::PAYMENT_REQUIRED].to_str().unwrap()).unwrap();
    let offer =
        x402_protocol::ReceiptOffer::from_v2(&required.accepts[0], &required.resource).unwrap();
    assert_eq!(
        required.accepts[0].network,
        h.gate.settings().network.caip2()
    );
    h.pay_on_chain(&offer.requirement, &payer).await;
    let payment = v2::PaymentPayload {
        x402_version: 2,
        resource: Some(required.resource.clone()),
        accepted: required.accepts[0].clone(),
        payload: serde_json::json!({
            "reference": offer.requirement.reference.to_string(),
            "proof": proof_of("/api/v2", &offer.requirement.reference),
        }),
        extensions: None,
    };
    let response = h
        .send(
            "GET",
            "/api/v2",
            &[(v2::PAYMENT_SIGNATURE, encode_header(&payment))],
        )
        .await;
    assert_eq!(response.status(), 200);
    let settlement: v2::SettlementResponse =
        decode_header(response.headers()[v2::PAYMENT_RESPONSE].to_str().unwrap()).unwrap();
    assert_eq!(settlement.payer, Some(payer.pubkey().to_string()));
    assert_eq!(settlement.amount, Some(PRICE.to_string()));

    // The plain pair: X-Payment-Proof.
    let (offer, _) = h.challenge("GET", "/api/plain").await;
    h.pay_on_chain(&offer.requirement, &payer).await;
    let response = h
        .send(
            "GET",
            "/api/plain",
            &[h.proof(&payer, "/api/plain", &offer.requirement.reference)],
        )
        .await;
    assert_eq!(response.status(), 200);

    assert_eq!(h.api.hits(), 3);
    assert_eq!(h.token_balance(&h.market.merchant).await, 3 * PRICE);
    let revenue = h.gate.store().grants().await.unwrap();
    assert_eq!(revenue.len(), 3, "the grants table is the revenue ledger");
    assert!(revenue
        .iter()
        .all(|g| g.amount == PRICE && g.payer == payer.pubkey().to_string()));
}

#[tokio::test]
async fn a_replayed_reference_is_refused_without_a_ledger_call() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/once").await;
    let payment = sponsored_header(&offer, &payer);
    assert_eq!(
        h.send("GET", "/api/once", std::slice::from_ref(&payment))
            .await
            .status(),
        200
    );
    let calls = h.ledger.calls();

    for replay in [payment, proof(&offer.requirement.reference)] {
        let response = h.send("GET", "/api/once", &[replay]).await;
        assert_eq!(response.status(), 402);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "reference_already_used");
        assert_ne!(
            body["reference"],
            offer.requirement.reference.to_string(),
            "a fresh challenge"
        );
    }
    assert_eq!(h.ledger.calls(), calls);
    assert_eq!(h.api.hits(), 1);
}

#[tokio::test]
async fn a_hundred_concurrent_requests_with_one_paid_reference_get_one_200() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/race").await;
    h.pay_on_chain(&offer.requirement, &payer).await;

    let paid = [h.proof(&payer, "/api/race", &offer.requirement.reference)];
    let requests = (0..100).map(|_| h.send("GET", "/api/race", &paid));
    let statuses: Vec<u16> = join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();

    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 99);
    assert_eq!(h.api.hits(), 1);
}

#[tokio::test]
async fn an_upstream_failure_releases_the_grant_for_the_same_payment() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/flaky").await;
    let payment = sponsored_header(&offer, &payer);
    h.api.set_mode(UpstreamMode::Fail);

    let failed = h
        .send("GET", "/api/flaky", std::slice::from_ref(&payment))
        .await;
    assert_eq!(failed.status(), 500);
    assert!(
        failed.headers().get(v1::X_PAYMENT_RESPONSE).is_none(),
        "nothing was delivered"
    );
    assert!(
        h.gate.store().grants().await.unwrap().is_empty(),
        "the grant was released"
    );

    // The same payment, retried by its payer with its proof (a payment given back is
    // public on chain): the receipt pays for it; no second payment.
    h.api.set_mode(UpstreamMode::Ok);
    let proof = h.proof(&payer, "/api/flaky", &offer.requirement.reference);
    let retried = h.send("GET", "/api/flaky", &[payment, proof]).await;
    assert_eq!(retried.status(), 200);
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0, "paid once");
    assert_eq!(h.token_balance(&h.market.merchant).await, PRICE);
}

#[tokio::test]
async fn grants_survive_a_restart_so_a_receipt_is_not_replayed() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/kept").await;
    h.pay_on_chain(&offer.requirement, &payer).await;
    assert_eq!(
        h.send(
            "GET",
            "/api/kept",
            &[h.proof(&payer, "/api/kept", &offer.requirement.reference)],
        )
        .await
        .status(),
        200
    );

    let restarted = h.replica().await;
    let response = h
        .http
        .get(format!("{restarted}/api/kept"))
        .header("X-Payment-Proof", offer.requirement.reference.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 402);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "reference_already_used");
}

/// Copies of one sponsored payment, differing only in their compute-unit price, sent at
/// once: one is submitted; the others are refused before the ledger (503 while it is in
/// flight, `reference_already_used` after), so the fee payer pays one fee.
#[tokio::test]
async fn copies_of_one_sponsored_payment_sent_at_once_are_submitted_once() {
    use solana_compute_budget_interface::ComputeBudgetInstruction;
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/copies").await;
    let fee_payer = h.market.fee_payer.pubkey();
    let copies: Vec<_> = (1..=6u64)
        .map(|price| {
            let ixs = [
                ComputeBudgetInstruction::set_compute_unit_price(price),
                offer
                    .requirement
                    .pay_instruction(&payer.pubkey(), &fee_payer),
            ];
            let tx = sponsored_transaction(&offer, &payer, &ixs);
            x_payment(
                &offer,
                serde_json::json!({"transaction": encode_transaction(&tx)}),
            )
        })
        .collect();

    let statuses = futures_util::future::join_all(
        copies
            .iter()
            .map(|copy| h.send("GET", "/api/copies", std::slice::from_ref(copy))),
    )
    .await
    .iter()
    .map(|response| response.status().as_u16())
    .collect::<Vec<_>>();

    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 402, 503].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(
        h.ledger.submits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one submission"
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0);
    assert_eq!(h.api.hits(), 1);
}

/// A sponsored payment presented in its challenge's last seconds is not submitted: it
/// could land after the expiry and fail at the fee payer's cost.
#[tokio::test]
async fn a_sponsored_payment_in_the_challenges_last_seconds_is_not_submitted() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let reference = h.issue("GET", "/api/late", PRICE, unix_now() + 5);
    let mut offer = h.challenge("GET", "/api/late").await.0;
    offer.requirement = h.gate_requirement(reference);
    let response = h
        .send("GET", "/api/late", &[sponsored_header(&offer, &payer)])
        .await;
    assert_eq!(response.status(), 402);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "expiring_reference");
    assert_eq!(
        h.ledger.submits.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, PRICE);
}

/// A reference is public once its `pay` lands: an observer who reads it from the chain and
/// presents it first, bare or with a proof of its own, is refused; the buyer's proof
/// redeems it.
#[tokio::test]
async fn an_observer_cannot_redeem_a_buyers_self_submitted_payment() {
    let h = Harness::start().await;
    let buyer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/mine").await;
    h.pay_on_chain(&offer.requirement, &buyer).await;
    let reference = &offer.requirement.reference;

    let observer = solana_keypair::Keypair::new();
    for stolen in [proof(reference), h.proof(&observer, "/api/mine", reference)] {
        let response = h.send("GET", "/api/mine", &[stolen]).await;
        assert_eq!(response.status(), 402);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_proof");
    }
    // Nor does the buyer's proof for another request pay for this one.
    let elsewhere = h.proof(&buyer, "/api/other", reference);
    let response = h.send("GET", "/api/mine", &[elsewhere]).await;
    assert_eq!(response.status(), 402);
    assert_eq!(h.api.hits(), 0);

    let redeemed = h
        .send(
            "GET",
            "/api/mine",
            &[h.proof(&buyer, "/api/mine", reference)],
        )
        .await;
    assert_eq!(redeemed.status(), 200);
    assert_eq!(h.api.hits(), 1);
}

/// A payer whose sponsored payment failed on chain (its fee charged: on a cluster it may
/// empty its account after the checks) is not sponsored again for a while. One refused in
/// preflight (here: no tokens) cost nothing and bars nobody: anyone can make a payment
/// fail in preflight, and barring on it would let anyone stop sponsorship.
#[tokio::test]
async fn a_sponsored_payment_that_failed_on_chain_bars_its_payer_one_refused_in_preflight_nobody() {
    use std::sync::atomic::Ordering::SeqCst;
    let h = Harness::start().await;
    let payer = h.new_payer(0).await;
    let (offer, _) = h.challenge("GET", "/api/broke").await;
    let failed = h
        .send("GET", "/api/broke", &[sponsored_header(&offer, &payer)])
        .await;
    let body: serde_json::Value = failed.json().await.unwrap();
    assert_eq!(body["error"], "transaction_failed");
    h.market
        .ledger
        .mint_to(&h.market.mint, &payer.pubkey(), PRICE)
        .await;
    let (offer, _) = h.challenge("GET", "/api/broke").await;
    let paid = h
        .send("GET", "/api/broke", &[sponsored_header(&offer, &payer)])
        .await;
    assert_eq!(paid.status(), 200, "refused in preflight, it barred nobody");

    let racer = h.new_payer(2 * PRICE).await;
    h.ledger.failing_on_chain.store(true, SeqCst);
    let (offer, _) = h.challenge("GET", "/api/broke").await;
    let failed = h
        .send("GET", "/api/broke", &[sponsored_header(&offer, &racer)])
        .await;
    let body: serde_json::Value = failed.json().await.unwrap();
    assert_eq!(body["error"], "transaction_failed");
    h.ledger.failing_on_chain.store(false, SeqCst);

    let submits = h.ledger.submits.load(SeqCst);
    let (offer, _) = h.challenge("GET", "/api/broke").await;
    let again = h
        .send("GET", "/api/broke", &[sponsored_header(&offer, &racer)])
        .await;
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"], "sponsorship_unavailable");
    assert_eq!(h.ledger.submits.load(SeqCst), submits, "nothing submitted");
}
