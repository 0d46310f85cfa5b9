//! The reverse proxy: bodies go through, a paid answer is passed on whole (or refused
//! before it begins, which gives the grant back).

use solana_signer::Signer;

use super::support::*;

/// Presents the payment of `reference`, made on chain by `payer`, for `GET path`.
async fn present(
    h: &Harness,
    payer: &solana_keypair::Keypair,
    path: &str,
    reference: &x402_protocol::Reference,
) -> reqwest::Response {
    h.send("GET", path, &[h.proof(payer, path, reference)])
        .await
}

/// The payment was spent on its answer: presented again, it buys nothing more.
async fn assert_spent(
    h: &Harness,
    payer: &solana_keypair::Keypair,
    path: &str,
    reference: &x402_protocol::Reference,
) {
    h.api.set_mode(UpstreamMode::Ok);
    let again = present(h, payer, path, reference).await;
    assert_eq!(again.status(), 402);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"], "reference_already_used");
    assert_eq!(h.api.hits(), 1);
}

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
        let response = present(&h, &payer, "/api/bounded", &offer.requirement.reference).await;
        assert_eq!(response.status(), status);
        let reference = offer.requirement.reference.to_string();
        assert_eq!(
            h.gate.store().standing(&reference).await.unwrap(),
            x402_verifier::Standing::Released {
                payer: payer.pubkey().to_string()
            },
            "released after {status}"
        );

        // The same receipt buys the request once the upstream behaves.
        h.api.set_mode(UpstreamMode::Ok);
        let response = present(&h, &payer, "/api/bounded", &offer.requirement.reference).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0);
    assert_eq!(h.gate.store().grants().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_long_streamed_answer_reaches_the_buyer_whole_and_the_grant_stands() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    h.api.set_mode(UpstreamMode::HugeStream);
    let (offer, _) = h.challenge("GET", "/api/stream").await;
    h.pay_on_chain(&offer.requirement, &payer).await;

    let response = present(&h, &payer, "/api/stream", &offer.requirement.reference).await;
    assert_eq!(response.status(), 200);
    let received = response.bytes().await.expect("the answer, whole");
    let sent = huge_stream().concat();
    assert!(sent.len() as u64 > MAX_RESPONSE, "longer than the limit");
    assert_eq!(received.len(), sent.len(), "every byte");
    assert!(received == sent, "each byte as the upstream sent it");

    // Paid for and delivered: the grant stands, the payment buys nothing more.
    assert_spent(&h, &payer, "/api/stream", &offer.requirement.reference).await;
}

#[tokio::test]
async fn an_answer_that_keeps_coming_is_not_cut_by_the_upstream_timeout() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    h.api.set_mode(UpstreamMode::SlowStream);
    let (offer, _) = h.challenge("GET", "/api/slowly").await;
    h.pay_on_chain(&offer.requirement, &payer).await;

    let started = std::time::Instant::now();
    let response = present(&h, &payer, "/api/slowly", &offer.requirement.reference).await;
    assert_eq!(response.status(), 200);
    let received = response.bytes().await.expect("the answer, whole");
    assert!(
        started.elapsed() > UPSTREAM_TIMEOUT,
        "it took longer in all"
    );
    let sent: Vec<u8> = (0..5u8).flat_map(|i| vec![i; 1024]).collect();
    assert!(received == sent, "every byte");
}

#[tokio::test]
async fn an_answer_that_breaks_off_after_it_began_keeps_the_grant_spent() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    h.api.set_mode(UpstreamMode::BreaksOff);
    let (offer, _) = h.challenge("GET", "/api/stream").await;
    h.pay_on_chain(&offer.requirement, &payer).await;

    let response = present(&h, &payer, "/api/stream", &offer.requirement.reference).await;
    assert_eq!(response.status(), 200, "the answer had begun");
    assert!(
        response.bytes().await.is_err(),
        "and broke off where the upstream's did"
    );

    // The buyer received part of the answer: the payment is not given back, or a
    // `Range` request could fetch the rest for free.
    assert_spent(&h, &payer, "/api/stream", &offer.requirement.reference).await;
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
    let again = present(&h, &payer, "/api/slow", &offer.requirement.reference).await;
    assert_eq!(
        again.status(),
        402,
        "the work was done: no second answer free"
    );
    assert_eq!(h.api.hits(), 1);
}

/// An upstream that sends its head and then nothing delivered nothing: the buyer gets a
/// 504, not an empty 200, and its payer can present the same payment again.
#[tokio::test]
async fn an_answer_that_stalls_before_its_body_is_a_timeout_and_gives_the_grant_back() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    h.api.set_mode(UpstreamMode::StallsBeforeBody);
    let (offer, _) = h.challenge("GET", "/api/stall").await;
    h.pay_on_chain(&offer.requirement, &payer).await;
    let reference = &offer.requirement.reference;
    let response = present(&h, &payer, "/api/stall", reference).await;
    assert_eq!(response.status(), 504);
    assert_eq!(
        h.gate
            .store()
            .standing(&reference.to_string())
            .await
            .unwrap(),
        x402_verifier::Standing::Released {
            payer: payer.pubkey().to_string()
        }
    );
    h.api.set_mode(UpstreamMode::Ok);
    let response = present(&h, &payer, "/api/stall", reference).await;
    assert_eq!(
        response.status(),
        200,
        "the same payment, once the upstream answers"
    );
}
