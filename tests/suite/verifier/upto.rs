//! The `upto` scheme at the gate, on the embedded ledger with the payment-channels
//! program: a metered request escrows its ceiling, is served, and pays what its answer
//! said it cost, the rest going back to the buyer; a channel pays for one request; and
//! what a crash, an outage or an abandoned request leaves is finished by the janitor from
//! the grant store and the chain, down to the channel's rent.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::routing::get;
use axum::{Extension, Router};
use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::scheme::exact::COMPUTE_UNIT_PRICE;
use x402_protocol::scheme::upto::{
    build_upto, random_salt, request_close_instruction, Opening, UptoOffer, UptoPayload, Window,
    OPEN_COMPUTE_UNIT_LIMIT,
};
use x402_protocol::wire::{decode_header, encode_header, v2};
use x402_protocol::{Ledger, Reference};
use x402_testkit::{serve, TestLedger};
use x402_verifier::scheme::upto::tend_channels;
use x402_verifier::store::Stage;
use x402_verifier::{Charge, Scheme};

use super::support::*;

/// The buyer's side: a payment for the `upto` offer of `url`, and its header.
struct Paying {
    offer: UptoOffer,
    payload: UptoPayload,
    header: (&'static str, String),
}

async fn pay(h: &Harness, url: &str, payer: &Keypair) -> Paying {
    let offers = offers(&h.http, url).await;
    let (offer, accepted) = offers
        .iter()
        .find(|(offer, _)| offer.scheme == "upto")
        .expect("an upto offer");
    let offer = UptoOffer::from_offer(offer).unwrap();
    let now = x402_protocol::unix_now();
    let opening = Opening {
        payer: payer.pubkey(),
        salt: random_salt(),
        open_slot: offer.recent_slot.expect("the offer names a recent slot"),
    };
    let window = Window {
        valid_after: now,
        expires_at: now + offer.max_timeout_seconds as i64,
    };
    let blockhash = offer.recent_blockhash.expect("a blockhash hint");
    let payload = build_upto(payer, &offer.terms, &opening, window, blockhash);
    let header = header_of(accepted, &payload);
    Paying {
        offer,
        payload,
        header,
    }
}

fn header_of(accepted: &v2::PaymentRequirements, payload: &UptoPayload) -> (&'static str, String) {
    (
        v2::PAYMENT_SIGNATURE,
        encode_header(&v2_payment(accepted, payload)),
    )
}

/// `GET url` with `paying`'s payment.
async fn send(h: &Harness, url: &str, paying: &Paying) -> reqwest::Response {
    h.http
        .get(url)
        .header(paying.header.0, &paying.header.1)
        .send()
        .await
        .unwrap()
}

fn settlement(response: &reqwest::Response) -> v2::SettlementResponse {
    let header = response.headers()[v2::PAYMENT_RESPONSE].to_str().unwrap();
    decode_header(header).unwrap()
}

async fn error_of(response: reqwest::Response) -> String {
    let header = response.headers()[v2::PAYMENT_REQUIRED].to_str().unwrap();
    let required: v2::PaymentRequired = decode_header(header).unwrap();
    required.error.unwrap_or_default()
}

#[tokio::test]
async fn a_metered_request_pays_what_its_answer_cost_and_the_rest_goes_back() {
    let h = Harness::start().await;
    let payer = h.new_payer(METERED_MAX).await;
    let url = h.url("/metered?charge=0.0125");
    let offers = offers(&h.http, &url).await;
    let schemes: Vec<&str> = offers.iter().map(|(o, _)| o.scheme.as_str()).collect();
    assert_eq!(schemes, ["upto"], "a metered route offers upto only");
    assert!(
        !offers_of(&h, "/api/data")
            .await
            .contains(&"upto".to_string()),
        "a route offers upto only when it names it"
    );
    let paying = pay(&h, &url, &payer).await;
    assert_eq!(paying.offer.terms.max_amount, METERED_MAX);
    let fee_payer = h.market.fee_payer.pubkey();
    assert_eq!(paying.offer.terms.fee_payer, fee_payer);
    assert_eq!(paying.offer.terms.receiver_authorizer, fee_payer);
    let merchant_before = h.token_balance(&h.market.merchant).await;

    let response = send(&h, &url, &paying).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get(METERED_CHARGE_HEADER).is_none(),
        "the upstream's charge header is the seller's, not the buyer's"
    );
    let settled = settlement(&response);
    assert_eq!(settled.amount.as_deref(), Some("12500"));
    assert!(settled.success);
    assert_eq!(settled.extra["channel"], paying.payload.channel_id.as_str());
    assert!(!settled.transaction.is_empty(), "the distribute");
    assert!(response
        .text()
        .await
        .unwrap()
        .starts_with("served /metered"));

    assert_eq!(
        h.token_balance(&h.market.merchant).await - merchant_before,
        12_500
    );
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        METERED_MAX - 12_500,
        "the rest of the deposit went back"
    );
    let store = h.gate.store();
    let channel = store
        .channel(&paying.payload.channel_id)
        .await
        .unwrap()
        .expect("the channel's row");
    assert_eq!(
        (channel.stage, channel.amount),
        (Stage::Distributed, Some(12_500))
    );
    let reference = Reference::from_memo(paying.offer.terms.memo.as_deref().unwrap()).unwrap();
    let grant = store.grant(&reference.to_string()).await.unwrap().unwrap();
    assert_eq!(
        (grant.amount, grant.scheme.as_str()),
        (12_500, "upto"),
        "the revenue ledger records what was charged"
    );
    assert_eq!(
        grant.transaction.as_deref(),
        Some(settled.transaction.as_str())
    );

    // The same payment again: refused before any ledger call.
    let submits = h.ledger.submits.load(Ordering::SeqCst);
    let again = send(&h, &url, &paying).await;
    assert_eq!(again.status(), 402);
    assert_eq!(error_of(again).await, "reference_already_used");
    assert_eq!(h.ledger.submits.load(Ordering::SeqCst), submits);
    assert_eq!(h.api.hits(), 1);
}

/// Pays `url` with a fresh buyer of `METERED_MAX`: the answer's status, the charge in
/// its settlement (if any), and what the buyer has left.
async fn metered(h: &Harness, url: &str) -> (u16, Option<String>, u64) {
    let payer = h.new_payer(METERED_MAX).await;
    let paying = pay(h, url, &payer).await;
    let response = send(h, url, &paying).await;
    let status = response.status().as_u16();
    let charged = response
        .headers()
        .get(v2::PAYMENT_RESPONSE)
        .map(|_| settlement(&response).amount.unwrap());
    (status, charged, h.token_balance(&payer.pubkey()).await)
}

#[tokio::test]
async fn an_answer_is_charged_at_most_its_ceiling_and_a_failed_one_nothing() {
    let h = Harness::start().await;
    let merchant_before = h.token_balance(&h.market.merchant).await;
    assert_eq!(
        metered(&h, &h.url("/metered")).await,
        (200, Some("50000".into()), 0),
        "an answer that says nothing costs the ceiling"
    );
    assert_eq!(
        metered(&h, &h.url("/metered?charge=0.09")).await,
        (200, Some("50000".into()), 0),
        "a charge above the ceiling is cut to it"
    );
    assert_eq!(
        metered(&h, &h.url("/metered?charge=0")).await,
        (200, Some("0".into()), METERED_MAX),
        "an answer may cost nothing"
    );
    h.api.set_mode(UpstreamMode::Fail);
    assert_eq!(
        metered(&h, &h.url("/metered?charge=0.01")).await,
        (500, None, METERED_MAX),
        "a failed answer costs nothing: the whole deposit goes back"
    );
    assert_eq!(
        h.token_balance(&h.market.merchant).await - merchant_before,
        2 * METERED_MAX
    );
}

#[tokio::test]
async fn a_channel_pays_for_one_request_and_an_open_that_breaks_the_terms_is_never_signed() {
    let h = Harness::start().await;
    let payer = h.new_payer(2 * METERED_MAX).await;
    let url = h.url("/metered?charge=0.01");
    let first = pay(&h, &url, &payer).await;
    let response = send(&h, &url, &first).await;
    assert_eq!(response.status(), 200);

    // The same channel (salt and slot) under a fresh challenge: the channel exists.
    let offers = offers(&h.http, &url).await;
    let (offer, accepted) = &offers[0];
    let offer = UptoOffer::from_offer(offer).unwrap();
    let opening = Opening {
        payer: payer.pubkey(),
        salt: first.payload.nonce.parse().unwrap(),
        open_slot: first.payload.open_slot,
    };
    let window = Window {
        valid_after: first.payload.valid_after,
        expires_at: first.payload.expires_at,
    };
    let replay = build_upto(
        &payer,
        &offer.terms,
        &opening,
        window,
        offer.recent_blockhash.unwrap(),
    );
    let submits = h.ledger.submits.load(Ordering::SeqCst);
    let refused = h
        .http
        .get(&url)
        .header(v2::PAYMENT_SIGNATURE, header_of(accepted, &replay).1)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 402);
    assert_eq!(
        error_of(refused).await,
        "invalid_upto_svm_channel_already_open"
    );

    // An open escrowing less than the ceiling, or signed for another signer: refused
    // before the fee payer signs anything.
    for (field, terms) in [
        (
            "deposit",
            x402_protocol::scheme::upto::UptoTerms {
                max_amount: METERED_MAX - 1,
                ..offer.terms.clone()
            },
        ),
        (
            "signer",
            x402_protocol::scheme::upto::UptoTerms {
                receiver_authorizer: payer.pubkey(),
                ..offer.terms.clone()
            },
        ),
    ] {
        let opening = Opening {
            salt: random_salt(),
            ..opening
        };
        let now = x402_protocol::unix_now();
        let window = Window {
            valid_after: now,
            expires_at: now + 60,
        };
        let mut payload = build_upto(
            &payer,
            &terms,
            &opening,
            window,
            offer.recent_blockhash.unwrap(),
        );
        // The buyer states the ceiling and the signer the offer asks, as a cheat would.
        payload.max_amount = METERED_MAX.to_string();
        payload.deposit = METERED_MAX.to_string();
        payload.authorized_signer = offer.terms.receiver_authorizer.to_string();
        let response = h
            .http
            .get(&url)
            .header(v2::PAYMENT_SIGNATURE, header_of(accepted, &payload).1)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 402, "{field}");
        assert_eq!(
            error_of(response).await,
            "transaction_wrong_payment",
            "{field}"
        );
    }
    assert_eq!(
        h.ledger.submits.load(Ordering::SeqCst),
        submits,
        "nothing was submitted"
    );
    assert_eq!(h.api.hits(), 1);
}

/// An axum app whose handler says what its answer cost with a [`Charge`], and takes the
/// ledger down before answering when `outage` is set: the settlement then cannot be made.
async fn metered_app(h: &Harness, ledger: Arc<TestLedger>, outage: bool) -> String {
    let handler = move |Extension(paid): Extension<x402_verifier::SettledPayment>| async move {
        if outage {
            ledger.failing_submits.store(true, Ordering::SeqCst);
        }
        (
            Extension(Charge(7_000)),
            format!("metered answer for {}", paid.payer),
        )
    };
    let app = Router::new()
        .route("/generate", get(handler))
        .layer(h.gate.price("0.05").schemes(&[Scheme::Upto]));
    serve(app).await
}

#[tokio::test]
async fn an_axum_handler_says_what_its_answer_cost_with_a_charge() {
    let h = Harness::start().await;
    let url = format!(
        "{}/generate",
        metered_app(&h, h.ledger.clone(), false).await
    );
    let payer = h.new_payer(METERED_MAX).await;
    let paying = pay(&h, &url, &payer).await;
    let response = send(&h, &url, &paying).await;
    assert_eq!(response.status(), 200);
    assert_eq!(settlement(&response).amount.as_deref(), Some("7000"));
    assert_eq!(
        response.text().await.unwrap(),
        format!("metered answer for {}", payer.pubkey())
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, METERED_MAX - 7_000);
}

#[tokio::test]
async fn an_answer_whose_settlement_fails_is_withheld_and_the_janitor_refunds_it_in_full() {
    let h = Harness::start().await;
    let url = format!("{}/generate", metered_app(&h, h.ledger.clone(), true).await);
    let payer = h.new_payer(METERED_MAX).await;
    let paying = pay(&h, &url, &payer).await;
    let response = send(&h, &url, &paying).await;
    assert_eq!(response.status(), 503, "the answer is withheld");
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        0,
        "escrowed until settled"
    );
    let store = h.gate.store();
    let row = store
        .channel(&paying.payload.channel_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.stage, row.amount), (Stage::Served, Some(0)));

    h.ledger.failing_submits.store(false, Ordering::SeqCst);
    let now = x402_protocol::unix_now();
    let early = tend_channels(&h.gate, now).await.unwrap();
    assert_eq!(early.settled, 0, "its request may still be settling it");
    let tended = tend_channels(&h.gate, now + 61).await.unwrap();
    assert_eq!(tended.settled, 1);
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        METERED_MAX,
        "nothing charged for a withheld answer"
    );
}

#[tokio::test]
async fn a_charge_committed_before_a_crash_is_settled_by_the_janitor_once() {
    let h = Harness::start().await;
    let url = format!("{}/generate", metered_app(&h, h.ledger.clone(), true).await);
    let payer = h.new_payer(METERED_MAX).await;
    let paying = pay(&h, &url, &payer).await;
    let response = send(&h, &url, &paying).await;
    assert_eq!(response.status(), 503);
    h.ledger.failing_submits.store(false, Ordering::SeqCst);
    // What the store holds when the server stops right after committing the charge of
    // 7,000 and before settling it.
    let channel = &paying.payload.channel_id;
    let store = h.gate.store();
    let now = x402_protocol::unix_now();
    store
        .advance_channel(channel, Stage::Served, Some(7_000), None, now)
        .await
        .unwrap();
    let merchant_before = h.token_balance(&h.market.merchant).await;

    let tended = tend_channels(&h.gate, now + 61).await.unwrap();
    assert_eq!(tended.settled, 1);
    assert_eq!(h.token_balance(&payer.pubkey()).await, METERED_MAX - 7_000);
    assert_eq!(
        h.token_balance(&h.market.merchant).await - merchant_before,
        7_000
    );
    let again = tend_channels(&h.gate, now + 122).await.unwrap();
    assert_eq!(again.settled, 0, "settled once");
    assert_eq!(h.token_balance(&payer.pubkey()).await, METERED_MAX - 7_000);
}

#[tokio::test]
async fn the_janitor_finds_an_unrecorded_channel_closes_it_at_zero_and_takes_all_its_rent_back() {
    let h = Harness::start().await;
    let fee_payer = h.market.fee_payer.insecure_clone();
    let payer = h.new_payer(METERED_MAX).await;
    let url = h.url("/metered");
    let paying = pay(&h, &url, &payer).await;
    let lamports_before = h.market.ledger.lamports(&fee_payer.pubkey()).await;
    // A channel opened with our fee payer's signature that no row records: the store
    // was lost, or the server stopped between the landing and the record.
    let mut open: solana_transaction::versioned::VersionedTransaction =
        x402_protocol::scheme::decode_transaction(&paying.payload.open_transaction).unwrap();
    open.signatures[0] = fee_payer.sign_message(&open.message.serialize());
    h.market.ledger.submit(&open).await.expect("opened");
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0);
    let store = h.gate.store();
    assert!(store
        .channel(&paying.payload.channel_id)
        .await
        .unwrap()
        .is_none());

    let now = x402_protocol::unix_now();
    let found = tend_channels(&h.gate, now).await.unwrap();
    assert_eq!(
        (found.found, found.settled),
        (1, 0),
        "recorded, not yet abandoned"
    );
    let closed = tend_channels(&h.gate, now + 901).await.unwrap();
    assert_eq!(closed.settled, 1);
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        METERED_MAX,
        "the buyer gets its whole deposit back"
    );
    let not_yet = tend_channels(&h.gate, now + 902).await.unwrap();
    assert_eq!(
        not_yet.reclaimed, 0,
        "the reclaim waits for its slot window"
    );

    h.market.ledger.warp_slots(1_501).await;
    let reclaimed = tend_channels(&h.gate, now + 903).await.unwrap();
    assert_eq!(reclaimed.reclaimed, 1);
    assert!(reclaimed.rent_returned > 0);
    let row = store
        .channel(&paying.payload.channel_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.stage, Stage::Closed);
    // Every lamport of rent came back: the fee payer is out only the fees of four
    // signatures (the open's two, the zero settlement's, the reclaim's) and the open's
    // priority fee.
    let priority = (u64::from(OPEN_COMPUTE_UNIT_LIMIT) * COMPUTE_UNIT_PRICE).div_ceil(1_000_000);
    assert_eq!(
        lamports_before - h.market.ledger.lamports(&fee_payer.pubkey()).await,
        4 * 5_000 + priority
    );
}

#[tokio::test]
async fn a_buyer_that_asks_to_close_while_its_request_runs_still_pays_what_it_got() {
    let h = Harness::start().await;
    let payer = Arc::new(h.new_payer(METERED_MAX).await);
    let (ledger, buyer) = (h.market.ledger.clone(), payer.clone());
    // The buyer starts its escape hatch mid-request: the seller settles within the grace
    // period all the same.
    let handler = move |Extension(paid): Extension<x402_verifier::SettledPayment>| async move {
        let channel = paid.metered.expect("a metered payment").address;
        let blockhash = ledger.latest_blockhash().await.unwrap();
        let close = solana_transaction::Transaction::new_signed_with_payer(
            &[request_close_instruction(&channel, &buyer.pubkey())],
            Some(&buyer.pubkey()),
            &[buyer.as_ref()],
            blockhash,
        );
        ledger
            .submit(&close.into())
            .await
            .expect("request_close lands");
        (Extension(Charge(7_000)), "answered while closing")
    };
    let app = Router::new()
        .route("/generate", get(handler))
        .layer(h.gate.price("0.05").schemes(&[Scheme::Upto]));
    let url = format!("{}/generate", serve(app).await);
    let paying = pay(&h, &url, &payer).await;
    let response = send(&h, &url, &paying).await;
    assert_eq!(response.status(), 200);
    assert_eq!(settlement(&response).amount.as_deref(), Some("7000"));
    assert_eq!(h.token_balance(&payer.pubkey()).await, METERED_MAX - 7_000);
}

#[tokio::test]
async fn one_payment_sent_to_two_replicas_at_once_opens_one_channel_and_is_served_once() {
    let h = Harness::start().await;
    let replica = h.replica().await;
    let payer = h.new_payer(METERED_MAX).await;
    let paying = pay(&h, &h.url("/metered?charge=0.01"), &payer).await;
    let (here, there) = (
        h.url("/metered?charge=0.01"),
        format!("{replica}/metered?charge=0.01"),
    );
    let (first, second) = tokio::join!(send(&h, &here, &paying), send(&h, &there, &paying));
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses[0], 200, "one is served");
    assert_ne!(statuses[1], 200, "the other is not");
    assert_eq!(h.api.hits(), 1);
    assert_eq!(h.token_balance(&payer.pubkey()).await, METERED_MAX - 10_000);
}
