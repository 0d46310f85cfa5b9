//! The reverse proxy: bodies go through, answers are bounded, and a failed answer gives
//! the grant back.

use solana_signer::Signer;

use super::support::*;

#[tokio::test]
async fn a_paid_post_body_reaches_the_upstream() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("POST", "/api/echo").await;
    let (name, value) = sponsored_header(&offer, &payer);
    let response = h
        .http
        .post(h.url("/api/echo?x=1"))
        .header(name, value)
        .body("hello upstream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "served /api/echo body=hello upstream"
    );
}

#[tokio::test]
async fn an_oversize_or_late_upstream_answer_is_a_gateway_error_and_releases_the_grant() {
    let h = Harness::start().await;
    let payer = h.new_payer(2 * PRICE).await;
    for (mode, status) in [(UpstreamMode::Huge, 502), (UpstreamMode::Slow, 504)] {
        h.api.set_mode(mode);
        let (offer, _) = h.challenge("GET", "/api/bounded").await;
        h.pay_on_chain(&offer.requirement, &payer).await;
        let response = h
            .send(
                "GET",
                "/api/bounded",
                &[h.proof(&payer, "/api/bounded", &offer.requirement.reference)],
            )
            .await;
        assert_eq!(response.status(), status);
        let reference = offer.requirement.reference.to_string();
        assert!(
            !h.gate.store().is_granted(&reference).await.unwrap(),
            "released after {status}"
        );

        // The same receipt buys the request once the upstream behaves.
        h.api.set_mode(UpstreamMode::Ok);
        let response = h
            .send(
                "GET",
                "/api/bounded",
                &[h.proof(&payer, "/api/bounded", &offer.requirement.reference)],
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0);
    assert_eq!(h.gate.store().grants().await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_answer_that_breaks_off_after_it_began_keeps_the_grant_spent() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    h.api.set_mode(UpstreamMode::HugeStream);
    let (offer, _) = h.challenge("GET", "/api/stream").await;
    h.pay_on_chain(&offer.requirement, &payer).await;

    let response = h
        .send(
            "GET",
            "/api/stream",
            &[h.proof(&payer, "/api/stream", &offer.requirement.reference)],
        )
        .await;
    assert_eq!(response.status(), 200, "the answer had begun");
    assert!(
        response.bytes().await.is_err(),
        "and broke off at the size limit"
    );

    // The buyer received part of the answer: the payment is not given back, or a
    // `Range` request could fetch the rest for free.
    h.api.set_mode(UpstreamMode::Ok);
    let again = h
        .send(
            "GET",
            "/api/stream",
            &[h.proof(&payer, "/api/stream", &offer.requirement.reference)],
        )
        .await;
    assert_eq!(again.status(), 402);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"], "reference_already_used");
    assert_eq!(h.api.hits(), 1);
}

#[tokio::test]
async fn a_client_that_goes_away_after_its_request_was_forwarded_keeps_the_grant_spent() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    h.api.set_mode(UpstreamMode::Slow);
    let (offer, _) = h.challenge("GET", "/api/slow").await;
    h.pay_on_chain(&offer.requirement, &payer).await;

    let (_, proof_value) = h.proof(&payer, "/api/slow", &offer.requirement.reference);
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(500))
        .build()
        .unwrap();
    let gone = impatient
        .get(h.url("/api/slow"))
        .header("X-Payment-Proof", proof_value)
        .send()
        .await;
    assert!(gone.is_err(), "the client went away");
    // Give the verifier time to notice, then present the same payment again.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    h.api.set_mode(UpstreamMode::Ok);
    let again = h
        .send(
            "GET",
            "/api/slow",
            &[h.proof(&payer, "/api/slow", &offer.requirement.reference)],
        )
        .await;
    assert_eq!(
        again.status(),
        402,
        "the work was done: no second answer free"
    );
    assert_eq!(h.api.hits(), 1);
}
