//! The gate as a tower layer inside a plain axum app.

use async_trait::async_trait;
use axum::routing::get;
use axum::{Extension, Router};
use solana_signer::Signer;
use x402_verifier::{PaymentAttempt, PaymentCheck, SettledPayment};

use super::support::*;

/// A merchant rule: this payer is not served.
struct Blocklist(anchor_lang::prelude::Pubkey);

#[async_trait]
impl PaymentCheck for Blocklist {
    async fn check(&self, attempt: &PaymentAttempt) -> Result<(), String> {
        if attempt.payer == self.0 {
            return Err("payer_blocked".into());
        }
        Ok(())
    }
}

async fn generate(Extension(payment): Extension<SettledPayment>) -> String {
    format!(
        "generated for {} who paid {}",
        payment.payer, payment.amount
    )
}

#[tokio::test]
async fn the_layer_charges_inside_a_plain_axum_app_and_hands_the_payment_to_the_handler() {
    let h = Harness::start().await;
    let blocked = h.new_payer(PRICE).await;
    let router = Router::new().route("/api/generate", get(generate)).layer(
        h.gate
            .price("0.01")
            .description("one generation")
            .check(Blocklist(blocked.pubkey())),
    );
    let base = x402_testkit::serve(router).await;
    let url = format!("{base}/api/generate");

    let challenge = h.http.get(&url).send().await.unwrap();
    assert_eq!(challenge.status(), 402);
    let body: serde_json::Value = challenge.json().await.unwrap();
    assert_eq!(body["accepts"][0]["description"], "one generation");
    let offer = x402_protocol::ReceiptOffer::from_v1(
        &serde_json::from_value(body["accepts"][0].clone()).unwrap(),
    )
    .unwrap();

    let payer = h.new_payer(PRICE).await;
    let (name, value) = sponsored_header(&offer, &payer);
    let paid = h.http.get(&url).header(name, value).send().await.unwrap();
    assert_eq!(paid.status(), 200);
    assert!(paid.headers().contains_key("x-payment-response"));
    assert_eq!(
        paid.text().await.unwrap(),
        format!("generated for {} who paid {PRICE}", payer.pubkey())
    );

    // The merchant's check refuses before anything is submitted.
    let body: serde_json::Value = h.http.get(&url).send().await.unwrap().json().await.unwrap();
    let offer = x402_protocol::ReceiptOffer::from_v1(
        &serde_json::from_value(body["accepts"][0].clone()).unwrap(),
    )
    .unwrap();
    let (name, value) = sponsored_header(&offer, &blocked);
    let refused = h.http.get(&url).header(name, value).send().await.unwrap();
    assert_eq!(refused.status(), 402);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "payer_blocked");
    assert_eq!(
        h.token_balance(&blocked.pubkey()).await,
        PRICE,
        "the blocked payer paid nothing"
    );
}
