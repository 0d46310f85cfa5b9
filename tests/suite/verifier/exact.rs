//! The `exact` scheme at the gate and at the facilitator, on the embedded ledger: a
//! payment moves the tokens once and buys one request, whatever is sent again.

use anchor_spl::token::spl_token;
use solana_keypair::Keypair;
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;
use x402_protocol::scheme::encode_transaction as encode_versioned;
use x402_protocol::scheme::exact::build_exact;
use x402_protocol::wire::facilitator::{SettleResponse, VerifyResponse};
use x402_protocol::wire::{decode_header, encode_header, v2, Offer};
use x402_protocol::{ExactOffer, ExactTerms, Ledger, MintInfo};

use super::support::*;

/// The `exact` offer of a 402 for `GET path`, as a stock client reads it (the header).
async fn exact_offer(h: &Harness, path: &str) -> (ExactOffer, v2::PaymentRequirements) {
    let response = h.send("GET", path, &[]).await;
    assert_eq!(response.status(), 402);
    let header = response.headers()[v2::PAYMENT_REQUIRED].to_str().unwrap();
    let required: v2::PaymentRequired = decode_header(header).unwrap();
    let accepted = required
        .accepts
        .iter()
        .find(|offer| offer.scheme == "exact")
        .expect("an exact offer beside receipt")
        .clone();
    let offer = ExactOffer::from_offer(&Offer::from_v2(&accepted, &required.resource)).unwrap();
    (offer, accepted)
}

fn mint() -> MintInfo {
    MintInfo {
        decimals: 6,
        token_program: spl_token::ID,
        delivers_in_full: true,
    }
}

fn pay(offer: &ExactOffer, payer: &Keypair, terms: &ExactTerms) -> VersionedTransaction {
    let blockhash = offer.recent_blockhash.expect("a blockhash hint");
    build_exact(payer, terms, &mint(), blockhash)
}

fn header(accepted: &v2::PaymentRequirements, tx: &VersionedTransaction) -> (&'static str, String) {
    let payment = v2::PaymentPayload {
        x402_version: 2,
        resource: None,
        accepted: accepted.clone(),
        payload: serde_json::json!({ "transaction": encode_versioned(tx) }),
        extensions: None,
    };
    (v2::PAYMENT_SIGNATURE, encode_header(&payment))
}

async fn error_of(response: reqwest::Response) -> String {
    let header = response.headers()[v2::PAYMENT_REQUIRED].to_str().unwrap();
    let required: v2::PaymentRequired = decode_header(header).unwrap();
    required.error.unwrap_or_default()
}

#[tokio::test]
async fn an_exact_payment_buys_one_request_and_moves_the_tokens_once() {
    let h = Harness::start().await;
    let payer = h.new_payer(5 * PRICE).await;
    let (offer, accepted) = exact_offer(&h, "/api/data").await;
    assert_eq!(offer.terms.amount, PRICE);
    assert_eq!(offer.terms.fee_payer, h.market.fee_payer.pubkey());
    let memo = offer.terms.memo.clone().expect("the memo is the reference");
    assert!(
        memo.len() <= 32,
        "stock clients' compute budget fits 32 characters"
    );
    let reference = x402_protocol::Reference::from_memo(&memo)
        .unwrap()
        .to_string();
    let fee_payer_before = h.market.ledger.lamports(&h.market.fee_payer.pubkey()).await;
    let merchant_before = h.token_balance(&h.market.merchant).await;

    let tx = pay(&offer, &payer, &offer.terms);
    let paid = header(&accepted, &tx);
    let response = h
        .send("GET", "/api/data", std::slice::from_ref(&paid))
        .await;
    if response.status() != 200 {
        panic!("refused: {}", error_of(response).await);
    }
    let settlement: serde_json::Value =
        decode_header(response.headers()[v2::PAYMENT_RESPONSE].to_str().unwrap()).unwrap();
    assert_eq!(settlement["success"], true);
    assert_eq!(settlement["payer"], payer.pubkey().to_string());
    assert_eq!(settlement["scheme"], "exact", "{settlement}");
    assert_eq!(settlement["reference"], reference.as_str());
    assert!(settlement.get("receipt").is_none());
    let transaction = settlement["transaction"].as_str().unwrap().to_string();
    assert_eq!(h.api.hits(), 1);

    // The same payment again, and copies at once: nothing more is served or moved.
    let again = h
        .send("GET", "/api/data", std::slice::from_ref(&paid))
        .await;
    assert_eq!(again.status(), 402);
    assert_eq!(error_of(again).await, "reference_already_used");
    let copies = (0..4).map(|_| h.send("GET", "/api/data", std::slice::from_ref(&paid)));
    for response in futures_util::future::join_all(copies).await {
        assert_eq!(response.status(), 402);
    }
    assert_eq!(h.api.hits(), 1);
    assert_eq!(h.token_balance(&payer.pubkey()).await, 4 * PRICE);
    assert_eq!(
        h.token_balance(&h.market.merchant).await,
        merchant_before + PRICE
    );
    // The fee payer paid two signatures' fee and a priority fee of at most a lamport.
    let spent = fee_payer_before - h.market.ledger.lamports(&h.market.fee_payer.pubkey()).await;
    assert!((10_000..=10_001).contains(&spent), "{spent}");

    // The grant records the scheme and the transaction; /receipts shows it to auditors.
    let grant = h.gate.store().grant(&reference).await.unwrap().unwrap();
    assert_eq!((grant.scheme.as_str(), grant.receipt), ("exact", None));
    assert_eq!(grant.transaction.as_deref(), Some(transaction.as_str()));
    let shown: serde_json::Value = h
        .http
        .get(h.url(&format!("/receipts/{reference}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["scheme"], "exact");
    assert_eq!(shown["transaction"], transaction.as_str());
    assert_eq!(shown["amount"], PRICE.to_string());
    assert!(shown["explorer"]["transaction"]
        .as_str()
        .unwrap()
        .contains(&format!("tx/{transaction}")));
}

#[tokio::test]
async fn concurrent_copies_of_one_exact_payment_serve_once() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let (offer, accepted) = exact_offer(&h, "/api/data").await;
    let paid = header(&accepted, &pay(&offer, &payer, &offer.terms));
    let copies = (0..6).map(|_| h.send("GET", "/api/data", std::slice::from_ref(&paid)));
    let served = futures_util::future::join_all(copies)
        .await
        .iter()
        .filter(|r| r.status() == 200)
        .count();
    assert_eq!(served, 1);
    assert_eq!(h.api.hits(), 1);
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0);
}

#[tokio::test]
async fn exact_payments_that_do_not_pay_the_challenge_are_refused_before_anything_moves() {
    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;
    let (offer, accepted) = exact_offer(&h, "/api/data").await;
    let (other, _) = exact_offer(&h, "/api/other").await;
    let cases = [
        (
            // One cent less than the price.
            ExactTerms {
                amount: PRICE - 1,
                ..offer.terms.clone()
            },
            "transaction_wrong_payment",
        ),
        (
            // Paid to someone else.
            ExactTerms {
                pay_to: payer.pubkey(),
                ..offer.terms.clone()
            },
            "transaction_wrong_payment",
        ),
        (
            // Another request's reference in the memo.
            ExactTerms {
                memo: other.terms.memo.clone(),
                ..offer.terms.clone()
            },
            "invalid_reference",
        ),
        (
            // No reference at all.
            ExactTerms {
                memo: Some("hello".into()),
                ..offer.terms.clone()
            },
            "invalid_reference",
        ),
        (
            // Someone else's fee payer.
            ExactTerms {
                fee_payer: Keypair::new().pubkey(),
                ..offer.terms.clone()
            },
            "transaction_wrong_fee_payer",
        ),
    ];
    for (terms, reason) in cases {
        let paid = header(&accepted, &pay(&offer, &payer, &terms));
        let response = h.send("GET", "/api/data", &[paid]).await;
        assert_eq!(response.status(), 402, "{reason}");
        assert_eq!(error_of(response).await, reason);
    }
    assert_eq!(
        h.ledger.submits.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, 10 * PRICE);
    assert_eq!(h.api.hits(), 0);
}

#[tokio::test]
async fn an_exact_payment_refused_in_preflight_costs_nothing_and_bars_nobody() {
    let h = Harness::start().await;
    // Tokens for nothing: the transfer fails in preflight, at no cost to the fee payer.
    let payer = h.new_payer(PRICE - 1).await;
    let (offer, accepted) = exact_offer(&h, "/api/data").await;
    let fee_payer_before = h.market.ledger.lamports(&h.market.fee_payer.pubkey()).await;
    let paid = header(&accepted, &pay(&offer, &payer, &offer.terms));
    let response = h.send("GET", "/api/data", &[paid]).await;
    assert_eq!(response.status(), 402);
    assert_eq!(error_of(response).await, "transaction_failed");
    assert_eq!(
        h.market.ledger.lamports(&h.market.fee_payer.pubkey()).await,
        fee_payer_before
    );
    // Nothing was charged, so nothing bars the payer: topped up, it pays at once.
    h.market
        .ledger
        .mint_to(&h.market.mint, &payer.pubkey(), 1)
        .await;
    let (offer, accepted) = exact_offer(&h, "/api/data").await;
    let paid = header(&accepted, &pay(&offer, &payer, &offer.terms));
    let response = h.send("GET", "/api/data", &[paid]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.api.hits(), 1);
}

/// A delegating server's `exact` offer: its payee and memo (none: any), our fee payer.
fn delegated_offer(h: &Harness, memo: Option<&str>) -> ExactOffer {
    ExactOffer {
        network: h.gate.settings().network.caip2().into(),
        terms: ExactTerms {
            mint: h.market.mint,
            pay_to: h.market.merchant,
            amount: PRICE,
            fee_payer: h.market.fee_payer.pubkey(),
            memo: memo.map(str::to_string),
        },
        recent_blockhash: None,
        resource: v2::ResourceInfo {
            url: "https://other.example/api".into(),
            description: None,
            mime_type: None,
        },
        max_timeout_seconds: 60,
    }
}

/// A facilitator request paying a delegating server's offer with `memo`.
async fn delegated(h: &Harness, payer: &Keypair, memo: &str) -> serde_json::Value {
    let offer = delegated_offer(h, Some(memo));
    let blockhash = h.market.ledger.latest_blockhash().await.unwrap();
    let tx = build_exact(payer, &offer.terms, &mint(), blockhash);
    delegated_request(&offer, &tx)
}

/// A facilitator request for `offer`, paid with `tx`.
fn delegated_request(offer: &ExactOffer, tx: &VersionedTransaction) -> serde_json::Value {
    let accepted = offer.to_offer().to_v2();
    let payment = v2::PaymentPayload {
        x402_version: 2,
        resource: None,
        accepted: accepted.clone(),
        payload: serde_json::json!({ "transaction": encode_versioned(tx) }),
        extensions: None,
    };
    serde_json::json!({"x402Version": 2, "paymentPayload": payment, "paymentRequirements": accepted})
}

async fn post<T: serde::de::DeserializeOwned>(
    h: &Harness,
    path: &str,
    body: &serde_json::Value,
) -> T {
    let response = h
        .http
        .post(h.url(path))
        .bearer_auth(FACILITATOR_KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_delegated_exact_payment_settles_once_and_a_replay_is_a_duplicate() {
    let h = Harness::start().await;
    let payer = h.new_payer(2 * PRICE).await;
    let body = delegated(&h, &payer, "invoice-1").await;
    let verified: VerifyResponse = post(&h, "/verify", &body).await;
    assert!(verified.is_valid, "{verified:?}");
    let first: SettleResponse = post(&h, "/settle", &body).await;
    assert!(first.success, "{first:?}");
    // A stock seller serves on a successful settle: a replay settles nothing more.
    let again: SettleResponse = post(&h, "/settle", &body).await;
    assert_eq!(
        (again.success, again.error_reason.as_deref()),
        (false, Some("duplicate_settlement"))
    );
    let reverified: VerifyResponse = post(&h, "/verify", &body).await;
    assert_eq!(
        reverified.invalid_reason.as_deref(),
        Some("duplicate_settlement")
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, PRICE);

    // Another payment is its own settlement.
    let second = delegated(&h, &payer, "invoice-2").await;
    let settled: SettleResponse = post(&h, "/settle", &second).await;
    assert!(settled.success);
    assert_ne!(settled.transaction, first.transaction);
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0);
}

#[tokio::test]
async fn an_exact_payment_in_x402_v1_is_settled_and_answered_in_v1() {
    use x402_protocol::wire::v1;
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let (_, body) = h.challenge("GET", "/api/v1").await;
    let offer: v1::PaymentRequirements = body["accepts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["scheme"] == "exact")
        .map(|o| serde_json::from_value(o.clone()).unwrap())
        .expect("the v1 body offers exact too");
    assert_eq!(offer.network, "solana-localnet");
    let offer = ExactOffer::from_offer(&Offer::from_v1(&offer)).unwrap();
    let tx = pay(&offer, &payer, &offer.terms);
    let payment = v1::PaymentPayload {
        x402_version: 1,
        scheme: "exact".into(),
        network: "solana-localnet".into(),
        payload: serde_json::json!({ "transaction": encode_versioned(&tx) }),
    };
    let response = h
        .send(
            "GET",
            "/api/v1",
            &[(v1::X_PAYMENT, encode_header(&payment))],
        )
        .await;
    assert_eq!(response.status(), 200);
    let settlement: serde_json::Value =
        decode_header(response.headers()[v1::X_PAYMENT_RESPONSE].to_str().unwrap()).unwrap();
    assert_eq!(settlement["network"], "solana-localnet");
    assert_eq!(settlement["scheme"], "exact");
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0);
}

/// A delegating seller's offer names no memo, so the gate's memo passes its checks: one
/// transaction presented to the gate and settled at the facilitator, in either order,
/// buys one request.
#[tokio::test]
async fn one_exact_transaction_buys_one_request_across_gate_and_facilitator() {
    for gate_first in [true, false] {
        let h = Harness::start().await;
        let payer = h.new_payer(PRICE).await;
        let (offer, accepted) = exact_offer(&h, "/api/data").await;
        let tx = pay(&offer, &payer, &offer.terms);
        let at_gate = header(&accepted, &tx);
        let at_facilitator = delegated_request(&delegated_offer(&h, None), &tx);

        if gate_first {
            let response = h.send("GET", "/api/data", &[at_gate]).await;
            assert_eq!(response.status(), 200);
            let settled: SettleResponse = post(&h, "/settle", &at_facilitator).await;
            assert_eq!(
                (settled.success, settled.error_reason.as_deref()),
                (false, Some("duplicate_settlement"))
            );
            assert_eq!(h.api.hits(), 1);
        } else {
            let settled: SettleResponse = post(&h, "/settle", &at_facilitator).await;
            assert!(settled.success, "{settled:?}");
            let response = h.send("GET", "/api/data", &[at_gate]).await;
            assert_eq!(response.status(), 402);
            assert_eq!(error_of(response).await, "duplicate_settlement");
            assert_eq!(h.api.hits(), 0);
        }
        assert_eq!(h.token_balance(&payer.pubkey()).await, 0, "paid once");
    }
}

#[tokio::test]
async fn an_exact_payment_given_back_is_presented_again_by_its_payer_only() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let (offer, accepted) = exact_offer(&h, "/api/data").await;
    let paid = header(&accepted, &pay(&offer, &payer, &offer.terms));
    h.api.set_mode(UpstreamMode::Fail);
    let response = h
        .send("GET", "/api/data", std::slice::from_ref(&paid))
        .await;
    assert_eq!(response.status(), 500);
    h.api.set_mode(UpstreamMode::Ok);

    // Anyone can read the transaction on chain and present it.
    let response = h
        .send("GET", "/api/data", std::slice::from_ref(&paid))
        .await;
    assert_eq!(response.status(), 402);
    assert_eq!(error_of(response).await, "invalid_proof");
    assert_eq!(h.api.hits(), 1);

    let memo = offer.terms.memo.as_deref().unwrap();
    let reference = x402_protocol::Reference::from_memo(memo).unwrap();
    let proof = h.proof(&payer, "/api/data", &reference);
    let response = h.send("GET", "/api/data", &[paid, proof]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.api.hits(), 2);
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0, "paid once");
}
