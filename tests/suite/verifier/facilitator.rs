//! The facilitator API: another resource server delegates verifying and settling.

use solana_keypair::Keypair;
use solana_signer::Signer;
use std::time::Duration;
use x402_protocol::scheme::encode_transaction;
use x402_protocol::wire::facilitator::{SettleResponse, VerifyResponse};
use x402_protocol::wire::v2;
use x402_protocol::ReceiptOffer;
use x402_protocol::{Ledger, Reference, Requirement};

use x402_verifier::{unix_now, RequestLimits};

use super::support::*;

/// An offer the delegating server made, with a reference of its own.
async fn foreign_offer(h: &Harness, amount: u64) -> ReceiptOffer {
    foreign_offer_until(h, amount, unix_now() + 300).await
}

/// [`foreign_offer`] whose challenge expires at `expires_at`.
async fn foreign_offer_until(h: &Harness, amount: u64, expires_at: i64) -> ReceiptOffer {
    let s = h.gate.settings();
    let mut reference = Keypair::new().pubkey().to_bytes();
    reference[..8].copy_from_slice(&expires_at.to_be_bytes());
    let reference = Reference(reference);
    ReceiptOffer {
        network: s.network.caip2().into(),
        requirement: h.gate.requirement(amount, reference),
        decimals: s.decimals,
        fee_payer: Some(h.market.fee_payer.pubkey()),
        recent_blockhash: Some(h.market.ledger.latest_blockhash().await.unwrap()),
        resource: "https://other.example/api".into(),
        description: String::new(),
        mime_type: "application/json".into(),
        max_timeout_seconds: 300,
    }
}

fn v2_request(offer: &ReceiptOffer, payload: serde_json::Value) -> serde_json::Value {
    let accepted = offer.to_offer().to_v2();
    let payment = v2::PaymentPayload {
        x402_version: 2,
        resource: None,
        accepted: accepted.clone(),
        payload,
        extensions: None,
    };
    serde_json::json!({"x402Version": 2, "paymentPayload": payment, "paymentRequirements": accepted})
}

/// A facilitator request paying `offer` with `payer`'s sponsored `pay`.
fn sponsored_request(h: &Harness, offer: &ReceiptOffer, payer: &Keypair) -> serde_json::Value {
    let tx = sponsored_transaction(
        offer,
        payer,
        &[offer
            .requirement
            .pay_instruction(&payer.pubkey(), &h.market.fee_payer.pubkey())],
    );
    v2_request(
        offer,
        serde_json::json!({"transaction": encode_transaction(&tx)}),
    )
}

async fn post<T: serde::de::DeserializeOwned>(
    h: &Harness,
    path: &str,
    body: &serde_json::Value,
) -> (u16, T) {
    facilitator_post(h, FACILITATOR_KEY, path, body).await
}

#[tokio::test]
async fn supported_lists_each_scheme_in_its_versions_and_the_fee_payer() {
    let h = Harness::start().await;
    let supported = supported(&h).await;
    let kinds: Vec<(u32, &str, &str)> = supported
        .kinds
        .iter()
        .map(|k| (k.x402_version, k.scheme.as_str(), k.network.as_str()))
        .collect();
    let s = h.gate.settings();
    assert_eq!(
        kinds,
        [
            (1, "receipt", "solana-localnet"),
            (2, "receipt", s.network.caip2()),
            (1, "exact", "solana-localnet"),
            (2, "exact", s.network.caip2()),
            (2, "upto", s.network.caip2()),
            (2, "batch-settlement", s.network.caip2()),
        ]
    );
    // Stock clients need the fee payer in each sponsored kind's `extra`.
    let fee_payer = h.market.fee_payer.pubkey().to_string();
    for kind in supported.kinds.iter().filter(|k| k.scheme != "receipt") {
        assert_eq!(kind.extra.as_ref().unwrap()["feePayer"], fee_payer.as_str());
    }
    assert_eq!(
        supported.signers["solana:*"][0],
        h.market.fee_payer.pubkey().to_string()
    );
}

#[tokio::test]
async fn a_delegated_sponsored_payment_is_verified_then_settled_once_and_never_again() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let offer = foreign_offer(&h, PRICE).await;
    let body = sponsored_request(&h, &offer, &payer);

    let (status, verified): (u16, VerifyResponse) = post(&h, "/verify", &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        (verified.is_valid, verified.payer),
        (true, Some(payer.pubkey().to_string()))
    );
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        PRICE,
        "verifying moves nothing"
    );

    let (_, settled): (u16, SettleResponse) = post(&h, "/settle", &body).await;
    assert!(settled.success, "{settled:?}");
    assert!(!settled.transaction.is_empty());
    assert_eq!(settled.network, h.gate.settings().network.caip2());
    let submits = h.ledger.submits.load(std::sync::atomic::Ordering::SeqCst);
    let (_, again): (u16, SettleResponse) = post(&h, "/settle", &body).await;
    assert_eq!(
        (again.success, again.error_reason.as_deref()),
        (false, Some("duplicate_settlement")),
        "settled once: a replay (or a retry) settles nothing more"
    );
    assert_eq!(
        h.ledger.submits.load(std::sync::atomic::Ordering::SeqCst),
        submits,
        "and nothing is submitted again"
    );
    // The same payment for another request: one payment pays for one.
    let (_, replayed): (u16, VerifyResponse) = post(&h, "/verify", &body).await;
    assert_eq!(
        (replayed.is_valid, replayed.invalid_reason.as_deref()),
        (false, Some("duplicate_settlement"))
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0, "paid once");
    assert_eq!(h.token_balance(&h.market.merchant).await, PRICE);
    assert!(h
        .market
        .ledger
        .account(&offer.requirement.receipt())
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_delegated_self_submitted_payment_is_checked_by_its_receipt() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let offer = foreign_offer(&h, PRICE).await;
    let reference = offer.requirement.reference.to_string();
    let body = v2_request(&offer, serde_json::json!({"reference": reference}));

    let (_, unpaid): (u16, VerifyResponse) = post(&h, "/verify", &body).await;
    assert_eq!(
        (unpaid.is_valid, unpaid.invalid_reason.as_deref()),
        (false, Some("receipt_not_found"))
    );

    h.pay_on_chain(&offer.requirement, &payer).await;
    let (_, verified): (u16, VerifyResponse) = post(&h, "/verify", &body).await;
    assert!(verified.is_valid);
    let (_, settled): (u16, SettleResponse) = post(&h, "/settle", &body).await;
    assert_eq!(
        (settled.success, settled.payer),
        (true, Some(payer.pubkey().to_string()))
    );
}

#[tokio::test]
async fn a_tampered_or_malformed_delegation_is_refused_and_costs_the_fee_payer_nothing() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let fee_payer_sol = h.market.ledger.lamports(&h.market.fee_payer.pubkey()).await;
    let offer = foreign_offer(&h, PRICE).await;
    let cheaper = Requirement {
        amount: PRICE - 1,
        ..offer.requirement.clone()
    };
    let tx = sponsored_transaction(
        &offer,
        &payer,
        &[cheaper.pay_instruction(&payer.pubkey(), &h.market.fee_payer.pubkey())],
    );
    let body = v2_request(
        &offer,
        serde_json::json!({"transaction": encode_transaction(&tx)}),
    );

    let (_, verified): (u16, VerifyResponse) = post(&h, "/verify", &body).await;
    assert_eq!(
        (verified.is_valid, verified.invalid_reason.as_deref()),
        (false, Some("transaction_wrong_payment"))
    );
    let (_, settled): (u16, SettleResponse) = post(&h, "/settle", &body).await;
    assert_eq!(
        (settled.success, settled.error_reason.as_deref()),
        (false, Some("transaction_wrong_payment"))
    );

    let mut elsewhere = body.clone();
    elsewhere["paymentRequirements"]["network"] = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp".into();
    elsewhere["paymentPayload"]["accepted"]["network"] =
        "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp".into();
    let (_, verified): (u16, VerifyResponse) = post(&h, "/verify", &elsewhere).await;
    assert_eq!(verified.invalid_reason.as_deref(), Some("invalid_network"));
    let malformed = h
        .http
        .post(h.url("/verify"))
        .bearer_auth(FACILITATOR_KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    assert_eq!(
        h.market.ledger.lamports(&h.market.fee_payer.pubkey()).await,
        fee_payer_sol
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, PRICE);
}

#[tokio::test]
async fn an_expired_payment_is_judged_in_the_gates_window() {
    let h = Harness::start().await;
    let payer = h.new_payer(2 * PRICE).await;
    let sponsored = |offer: &ReceiptOffer| sponsored_request(&h, offer, &payer);

    // Past the grace: refused without a ledger call, nothing submitted.
    let long_ago = foreign_offer_until(&h, PRICE, unix_now() - 600).await;
    let calls = h.ledger.calls();
    let (_, settled): (u16, SettleResponse) = post(&h, "/settle", &sponsored(&long_ago)).await;
    assert_eq!(
        (settled.success, settled.error_reason.as_deref()),
        (false, Some("expired_reference"))
    );
    assert_eq!(h.ledger.calls(), calls, "no ledger call");

    // In the grace: a payment that landed in time counts (one read); nothing new is sent.
    let expires_at = unix_now() + 1;
    let paid = foreign_offer_until(&h, PRICE, expires_at).await;
    h.pay_on_chain(&paid.requirement, &payer).await;
    let unpaid = foreign_offer_until(&h, PRICE, expires_at).await;
    while unix_now() <= expires_at {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let calls = h.ledger.calls();
    let (_, verified): (u16, VerifyResponse) = post(&h, "/verify", &sponsored(&paid)).await;
    assert!(verified.is_valid, "{verified:?}");
    assert_eq!(h.ledger.calls(), calls + 1, "one read");
    let (_, settled): (u16, SettleResponse) = post(&h, "/settle", &sponsored(&unpaid)).await;
    assert_eq!(settled.error_reason.as_deref(), Some("expired_reference"));
    assert_eq!(h.token_balance(&payer.pubkey()).await, PRICE, "paid once");
}

/// A stranger tries to have the fee payer sponsor payments of the stranger's own choosing
/// (its own mint and payee, one base unit, an expiry a year away), with no key, then with
/// a key, then past a budget: every attempt is refused and the fee payer spends nothing.
#[tokio::test]
async fn strangers_and_callers_outside_the_policy_cost_the_fee_payer_nothing() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let fee_payer = h.market.fee_payer.pubkey();
    let before = h.market.ledger.lamports(&fee_payer).await;
    let sponsored = |offer: &ReceiptOffer| sponsored_request(&h, offer, &payer);
    let good = foreign_offer(&h, PRICE).await;

    // No key, or a wrong one: 401 before anything is read.
    for key in [None, Some("not-the-key-0000000000")] {
        for path in ["/verify", "/settle"] {
            let mut request = h.http.post(h.url(path)).json(&sponsored(&good));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{path} with {key:?}");
        }
    }

    // With a key: only the merchant's mint and payee, at least the price, 15 minutes ahead.
    let stranger = Keypair::new().pubkey();
    let far = foreign_offer_until(&h, PRICE, unix_now() + 365 * 86_400).await;
    let mut own_mint = good.clone();
    own_mint.requirement.mint = stranger;
    let mut own_payee = good.clone();
    own_payee.requirement.pay_to = stranger;
    let mut one_unit = good.clone();
    one_unit.requirement.amount = 1;
    for (what, offer) in [
        ("a far expiry", far),
        ("another mint", own_mint),
        ("another payee", own_payee),
        ("one base unit", one_unit),
    ] {
        let (_, settled): (u16, SettleResponse) = post(&h, "/settle", &sponsored(&offer)).await;
        assert_eq!(
            settled.error_reason.as_deref(),
            Some("requirements_not_allowed"),
            "{what}"
        );
    }

    // Within the policy, but past the key's budget for fees and rent.
    let limits = RequestLimits {
        body_bytes: 1024 * 1024,
        timeout: Duration::from_secs(30),
    };
    let stingy = x402_verifier::app(
        h.gate.clone(),
        Vec::new(),
        &limits,
        None,
        Some(facilitator_access(&h.gate, 1_000_000)),
    );
    let base = x402_testkit::serve(stingy).await;
    let settled: SettleResponse = h
        .http
        .post(format!("{base}/settle"))
        .bearer_auth(FACILITATOR_KEY)
        .json(&sponsored(&good))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settled.error_reason.as_deref(), Some("budget_exhausted"));

    assert_eq!(
        h.market.ledger.lamports(&fee_payer).await,
        before,
        "not a lamport"
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, PRICE);
}

/// Sixteen callers settle one self-submitted payment at once: one settlement, fifteen
/// duplicates (each success would serve a request at its caller).
pub(super) async fn concurrent_settles_of_one_payment_succeed_once(h: &Harness) {
    let payer = h.new_payer(PRICE).await;
    let offer = foreign_offer(h, PRICE).await;
    h.pay_on_chain(&offer.requirement, &payer).await;
    let reference = offer.requirement.reference.to_string();
    let body = v2_request(&offer, serde_json::json!({"reference": reference}));
    let settles = (0..16).map(|_| post::<SettleResponse>(h, "/settle", &body));
    let answers = futures_util::future::join_all(settles).await;
    let successes = answers.iter().filter(|(_, s)| s.success).count();
    let duplicates = answers
        .iter()
        .filter(|(_, s)| s.error_reason.as_deref() == Some("duplicate_settlement"))
        .count();
    assert_eq!((successes, duplicates), (1, 15), "{answers:?}");
}

#[tokio::test]
async fn concurrent_settles_of_one_self_submitted_payment_succeed_once() {
    concurrent_settles_of_one_payment_succeed_once(&Harness::start().await).await;
}

/// A stranger's body is not read before its key is checked: a request that announces a
/// megabyte and sends none of it is refused at once, not held until a timeout.
#[tokio::test]
async fn a_caller_without_a_key_is_refused_before_its_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::start().await;
    let address = h.url.trim_start_matches("http://");
    for path in ["/verify", "/settle"] {
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer wrong\r\n\
             Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut answer))
            .await
            .expect("answered without the body")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]).to_string();
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
    }
}

/// A stock seller with an RPC rebuilds its offer's hints (a blockhash, a last valid
/// height) for the paid request: the buyer's accepted offer differs from the
/// requirements there, and the payment is still judged by its transaction.
#[tokio::test]
async fn an_offer_whose_hints_changed_since_the_402_still_verifies() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let offer = foreign_offer(&h, PRICE).await;
    let mut body = sponsored_request(&h, &offer, &payer);
    let newer = solana_hash::Hash::new_unique().to_string();
    body["paymentRequirements"]["extra"]["recentBlockhash"] = newer.into();
    body["paymentRequirements"]["extra"]["lastValidBlockHeight"] = 1_000.into();
    let (_, verified): (u16, VerifyResponse) = post(&h, "/verify", &body).await;
    assert!(verified.is_valid, "{verified:?}");
    let (_, settled): (u16, SettleResponse) = post(&h, "/settle", &body).await;
    assert!(settled.success, "{settled:?}");
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0);
}
