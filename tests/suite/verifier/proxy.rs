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
                &[proof(&offer.requirement.reference)],
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
                &[proof(&offer.requirement.reference)],
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0);
    assert_eq!(h.gate.store().grants().await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_answer_that_breaks_off_after_it_began_releases_the_grant() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    h.api.set_mode(UpstreamMode::HugeStream);
    let (offer, _) = h.challenge("GET", "/api/stream").await;
    h.pay_on_chain(&offer.requirement, &payer).await;

    let response = h
        .send("GET", "/api/stream", &[proof(&offer.requirement.reference)])
        .await;
    assert_eq!(response.status(), 200, "the answer had begun");
    assert!(
        response.bytes().await.is_err(),
        "and broke off at the size limit"
    );

    // The release runs beside the broken stream: wait for it, boundedly.
    let reference = offer.requirement.reference.to_string();
    let mut released = false;
    for _ in 0..100 {
        if !h.gate.store().is_granted(&reference).await.unwrap() {
            released = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(released, "a truncated answer gives the payment back");
    h.api.set_mode(UpstreamMode::Ok);
    let retried = h
        .send("GET", "/api/stream", &[proof(&offer.requirement.reference)])
        .await;
    assert_eq!(retried.status(), 200);
}
