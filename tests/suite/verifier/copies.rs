//! A stranger's copy of a payment: a reference is public as soon as its `pay` lands, and
//! so is the buyer's whole transaction. A copy, signed by another key, by nobody, or the
//! buyer's own transaction read from the chain, must never buy the buyer's request.

use solana_keypair::Keypair;
use solana_signer::Signer;
use solana_transaction::Transaction;
use x402_protocol::scheme::encode_transaction;
use x402_verifier::unix_now;

use super::support::*;

async fn refusal(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn a_sponsored_copy_by_another_key_does_not_redeem_a_self_submitted_payment() {
    let h = Harness::start().await;
    let buyer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/a").await;
    h.pay_on_chain(&offer.requirement, &buyer).await;

    // An observer read the reference on chain: its sponsored `pay` of it, signed by a key
    // with no tokens, fails in preflight because the buyer's receipt exists.
    let observer = Keypair::new();
    let copy = sponsored_header(&offer, &observer);
    let response = h.send("GET", "/api/a", &[copy]).await;
    assert_eq!(refusal(response).await, (402, "transaction_failed".into()));
    assert_eq!(h.api.hits(), 0, "nothing served to the observer");

    let response = h
        .send(
            "GET",
            "/api/a",
            &[h.proof(&buyer, "/api/a", &offer.requirement.reference)],
        )
        .await;
    assert_eq!(response.status(), 200, "the buyer still redeems it");
    assert_eq!(h.api.hits(), 1);
}

#[tokio::test]
async fn a_payment_given_back_is_presented_again_by_its_payer_only() {
    let h = Harness::start().await;
    let buyer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/back").await;
    let paid = sponsored_header(&offer, &buyer);
    h.api.set_mode(UpstreamMode::Fail);
    let response = h
        .send("GET", "/api/back", std::slice::from_ref(&paid))
        .await;
    assert_eq!(
        response.status(),
        500,
        "the upstream failed: the grant is given back"
    );
    h.api.set_mode(UpstreamMode::Ok);

    // The buyer's own transaction, read from the chain, and a copy signed by another key.
    let observer = Keypair::new();
    let copies = [paid.clone(), sponsored_header(&offer, &observer)];
    for copy in copies {
        let response = h.send("GET", "/api/back", &[copy]).await;
        assert_eq!(refusal(response).await, (402, "invalid_proof".into()));
    }
    // A proof by anyone but the payer proves nothing.
    let forged = h.proof(&observer, "/api/back", &offer.requirement.reference);
    let response = h.send("GET", "/api/back", &[paid.clone(), forged]).await;
    assert_eq!(refusal(response).await, (402, "invalid_proof".into()));
    assert_eq!(
        h.api.hits(),
        1,
        "only the failed attempt reached the upstream"
    );

    // The buyer presents the same payment with its proof: served, paid once.
    let proof = h.proof(&buyer, "/api/back", &offer.requirement.reference);
    let response = h.send("GET", "/api/back", &[paid.clone(), proof]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.api.hits(), 2);
    assert_eq!(h.token_balance(&buyer.pubkey()).await, 0);
    let again = h
        .send(
            "GET",
            "/api/back",
            &[
                paid,
                h.proof(&buyer, "/api/back", &offer.requirement.reference),
            ],
        )
        .await;
    assert_eq!(
        refusal(again).await,
        (402, "reference_already_used".into()),
        "granted again, it serves one request"
    );
}

#[tokio::test]
async fn in_its_grace_a_copy_signed_by_another_key_or_by_nobody_redeems_nothing() {
    let h = Harness::start().await;
    let buyer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/late").await;
    let expires_at = unix_now() + 1;
    let requirement = h.gate_requirement(h.issue("GET", "/api/late", PRICE, expires_at));
    h.pay_on_chain(&requirement, &buyer).await;
    while unix_now() <= expires_at {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let fee_payer = h.market.fee_payer.pubkey();
    let late_offer = x402_protocol::ReceiptOffer {
        requirement: requirement.clone(),
        ..offer
    };

    // The buyer's `pay` with its signature zeroed: a payload that names the buyer.
    let unsigned = Transaction::new_with_payer(
        &[requirement.pay_instruction(&buyer.pubkey(), &fee_payer)],
        Some(&fee_payer),
    );
    let zeroed = x_payment(
        &late_offer,
        serde_json::json!({"transaction": encode_transaction(&unsigned)}),
    );
    let response = h.send("GET", "/api/late", &[zeroed]).await;
    assert_eq!(
        refusal(response).await,
        (402, "transaction_bad_signature".into())
    );
    // Signed by someone else: its signature is good, but it is not the receipt's payer.
    let observer = Keypair::new();
    let response = h
        .send(
            "GET",
            "/api/late",
            &[sponsored_header(&late_offer, &observer)],
        )
        .await;
    assert_eq!(refusal(response).await, (402, "invalid_proof".into()));
    assert_eq!(h.api.hits(), 0);

    // The buyer's own signed `pay`, read from the chain, is anyone's to copy: presented
    // late (say after a 503), it needs its payer's proof.
    let own = sponsored_header(&late_offer, &buyer);
    let response = h.send("GET", "/api/late", std::slice::from_ref(&own)).await;
    assert_eq!(refusal(response).await, (402, "invalid_proof".into()));
    let proof = h.proof(&buyer, "/api/late", &requirement.reference);
    let response = h.send("GET", "/api/late", &[own, proof]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.api.hits(), 1);
}

/// A payment that landed but bought nothing (the verifier answered 503 after the
/// submission landed) is on chain: the identical transaction, presented by anyone, is
/// refused without its payer's proof, and the payer's retry with it is served.
#[tokio::test]
async fn a_payment_that_landed_without_a_grant_is_redeemed_by_its_payer_only() {
    use std::sync::atomic::Ordering::SeqCst;
    let h = Harness::start().await;
    let buyer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/lost").await;
    let paid = sponsored_header(&offer, &buyer);
    // It lands, but the receipt read after it fails: a 503.
    *h.ledger.failing_reads.lock().unwrap() = 1;
    let response = h
        .send("GET", "/api/lost", std::slice::from_ref(&paid))
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(h.token_balance(&buyer.pubkey()).await, 0, "it landed");
    let submits = h.ledger.submits.load(SeqCst);

    let response = h
        .send("GET", "/api/lost", std::slice::from_ref(&paid))
        .await;
    assert_eq!(refusal(response).await, (402, "invalid_proof".into()));
    assert_eq!(h.api.hits(), 0);
    let proof = h.proof(&buyer, "/api/lost", &offer.requirement.reference);
    let response = h.send("GET", "/api/lost", &[paid, proof]).await;
    assert_eq!(response.status(), 200, "the payer's retry, at once");
    assert_eq!(h.api.hits(), 1);
    assert!(
        h.ledger.submits.load(SeqCst) > submits,
        "resubmitted, not paid again"
    );
}
