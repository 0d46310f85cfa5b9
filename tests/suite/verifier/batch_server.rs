//! `batch-settlement`'s server mode at the gate: a buyer that trusts the seller's
//! operator pays each request with an expiring proof; the route's price is a ceiling,
//! held against the deposit before the request is served, and after the answer the
//! operator signs the voucher for what it actually cost. Each guard has its test: a
//! request identifier is served once, holds never exceed the deposit, a failed answer
//! costs nothing, a refund waits for the requests in flight, and the two modes never
//! share a channel.

use std::time::Duration;

use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::scheme::batch::{
    build_authorization, build_open_proved, build_refund_proved, channel_of, BatchOffer,
    BatchPayload, BatchVoucher, Channel, Proof,
};
use x402_protocol::scheme::channel::{random_salt, Opening};
use x402_protocol::wire::{decode_header, encode_header, v2, Offer};
use x402_verifier::scheme::batch::claim_channels;
use x402_verifier::unix_now;

use super::support::*;

const ROUTE: &str = "/batch/metered";

/// The route's ceiling: 0.05.
const CEILING: u64 = 50_000;

/// The route's two `batch-settlement` offers: the client mode's, then the server mode's.
async fn offers(h: &Harness) -> Vec<(BatchOffer, v2::PaymentRequirements)> {
    let response = h.http.get(h.url(ROUTE)).send().await.unwrap();
    assert_eq!(response.status(), 402);
    let text = response.headers()[v2::PAYMENT_REQUIRED].to_str().unwrap();
    let required: v2::PaymentRequired = decode_header(text).unwrap();
    required
        .accepts
        .iter()
        .filter(|a| a.scheme == "batch-settlement")
        .map(|a| {
            let offer = BatchOffer::from_offer(&Offer::from_v2(a, &required.resource)).unwrap();
            (offer, a.clone())
        })
        .collect()
}

/// A buyer in the server mode: its key, the offer it trusts, and its channel.
struct Buyer {
    keypair: Keypair,
    offer: BatchOffer,
    accepted: v2::PaymentRequirements,
    channel: Channel,
}

impl Buyer {
    /// A buyer with `tokens` and its channel under the server mode's offer (not yet open).
    async fn new(h: &Harness, tokens: u64) -> Buyer {
        let keypair = h.new_payer(tokens).await;
        let (offer, accepted) = offers(h).await.pop().expect("the server mode's offer");
        let opening = Opening {
            payer: keypair.pubkey(),
            salt: random_salt(),
            open_slot: offer.recent_slot.unwrap(),
        };
        let channel = channel_of(&keypair, &offer.terms, &opening);
        Buyer {
            keypair,
            offer,
            accepted,
            channel,
        }
    }

    fn proof(request_id: &str) -> Proof<'_> {
        Proof {
            request_id,
            expires_at: unix_now() + 60,
        }
    }

    fn open(&self, deposit: u64, request_id: &str) -> BatchPayload {
        build_open_proved(
            &self.keypair,
            &self.offer.terms,
            &self.channel,
            deposit,
            Self::proof(request_id),
            self.offer.recent_blockhash.unwrap(),
        )
    }

    fn request(&self, request_id: &str) -> BatchPayload {
        build_authorization(
            &self.keypair,
            &self.offer.terms,
            &self.channel,
            Self::proof(request_id),
        )
    }

    /// The refund: the buyer's proof of its close intent.
    fn refund(&self) -> BatchPayload {
        build_refund_proved(
            &self.keypair,
            &self.offer.terms,
            &self.channel,
            Self::proof("close"),
        )
    }

    fn header(&self, payload: &BatchPayload) -> (&'static str, String) {
        (
            v2::PAYMENT_SIGNATURE,
            encode_header(&v2_payment(&self.accepted, payload)),
        )
    }

    fn address(&self) -> anchor_lang::prelude::Pubkey {
        self.channel.address(&self.offer.terms.fee_payer)
    }
}

/// GETs the route with `payment`, the answer saying it cost `charge` (none: it says
/// nothing).
async fn get(
    h: &Harness,
    payment: &(&'static str, String),
    charge: Option<&str>,
) -> reqwest::Response {
    let url = match charge {
        Some(charge) => h.url(&format!("{ROUTE}?charge={charge}")),
        None => h.url(ROUTE),
    };
    h.http
        .get(url)
        .header(payment.0, &payment.1)
        .send()
        .await
        .unwrap()
}

/// A request `request_id` sent in the background, its answer saying it cost the ceiling:
/// its status, once answered.
fn in_flight(
    h: &Harness,
    buyer: &Buyer,
    request_id: &str,
) -> tokio::task::JoinHandle<reqwest::StatusCode> {
    let url = h.url(&format!("{ROUTE}?charge=0.05"));
    let header = buyer.header(&buyer.request(request_id));
    let http = h.http.clone();
    tokio::spawn(async move {
        http.get(url)
            .header(header.0, header.1)
            .send()
            .await
            .unwrap()
            .status()
    })
}

/// The buyer's channel row once a request holds part of its deposit.
async fn held(h: &Harness, buyer: &Buyer) -> x402_verifier::store::BatchChannel {
    let address = buyer.address().to_string();
    let held = async {
        loop {
            let row = h
                .gate
                .store()
                .batch_channel(&address)
                .await
                .unwrap()
                .unwrap();
            if row.reserved > 0 {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("held")
}

/// The operator's voucher in a served answer's settlement, and what it charged.
fn receipt(response: &reqwest::Response) -> (BatchVoucher, u64) {
    let text = response.headers()[v2::PAYMENT_RESPONSE].to_str().unwrap();
    let settlement: v2::SettlementResponse = decode_header(text).unwrap();
    let extra = settlement.extra;
    let voucher: BatchVoucher = serde_json::from_value(extra["voucher"].clone()).unwrap();
    let charged = extra["chargedAmount"].as_str().unwrap().parse().unwrap();
    (voucher, charged)
}

/// The refusal code of a 402.
fn refusal(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), 402);
    let text = response.headers()[v2::PAYMENT_REQUIRED].to_str().unwrap();
    let required: v2::PaymentRequired = decode_header(text).unwrap();
    required.error.unwrap_or_default()
}

#[tokio::test]
async fn a_trusted_operator_signs_what_each_answer_cost_and_the_rest_goes_back() {
    let h = Harness::start().await;
    let operator = operator().pubkey();
    let modes = offers(&h).await;
    assert_eq!(
        modes.len(),
        2,
        "the client mode's offer, then the server mode's"
    );
    assert_eq!(modes[0].0.terms.operator, None);
    assert_eq!(modes[1].0.terms.operator, Some(operator));
    assert_eq!(
        modes[1].1.extra.as_ref().unwrap()["voucherSigner"],
        "server"
    );

    let deposit = 4 * CEILING;
    let buyer = Buyer::new(&h, deposit).await;
    let opened = get(
        &h,
        &buyer.header(&buyer.open(deposit, "r-1")),
        Some("0.0125"),
    )
    .await;
    assert_eq!(opened.status(), 200);
    let (voucher, charged) = receipt(&opened);
    assert_eq!(charged, 12_500, "what the answer cost, not the ceiling");
    assert_eq!(voucher.max_claimable_amount, "12500");
    let read = voucher.read().unwrap();
    assert!(
        read.signed_by(&operator),
        "the operator's voucher, the buyer's receipt"
    );
    assert_eq!(read.channel, buyer.address());
    assert_eq!(
        h.token_balance(&buyer.keypair.pubkey()).await,
        0,
        "escrowed"
    );

    let second = get(&h, &buyer.header(&buyer.request("r-2")), Some("0.02")).await;
    assert_eq!(second.status(), 200);
    assert_eq!(receipt(&second).0.max_claimable_amount, "32500");
    // An answer that says nothing costs its ceiling; one that says more is cut to it.
    let silent = get(&h, &buyer.header(&buyer.request("r-3")), None).await;
    let (latest, _) = receipt(&silent);
    assert_eq!(latest.max_claimable_amount, "82500");
    let hits = h.api.hits();

    // The same proof again is a duplicate: nothing served, nothing charged.
    let again = get(&h, &buyer.header(&buyer.request("r-2")), Some("0.02")).await;
    assert_eq!(refusal(&again), "duplicate_settlement");
    // A proof past its expiry, for another operator, or of another payer, is refused.
    let expired = build_authorization(
        &buyer.keypair,
        &buyer.offer.terms,
        &buyer.channel,
        Proof {
            request_id: "r-4",
            expires_at: unix_now() - 1,
        },
    );
    let response = get(&h, &buyer.header(&expired), None).await;
    assert_eq!(
        refusal(&response),
        "invalid_batch_settlement_svm_voucher_expiry"
    );
    let mut stranger_terms = buyer.offer.terms.clone();
    stranger_terms.operator = Some(Keypair::new().pubkey());
    let BatchPayload::Authorization { authorization, .. } = build_authorization(
        &buyer.keypair,
        &stranger_terms,
        &channel_of(&buyer.keypair, &stranger_terms, &buyer.channel.opening()),
        Buyer::proof("r-5"),
    ) else {
        unreachable!()
    };
    let misdirected = BatchPayload::Authorization {
        channel_config: buyer.channel.config(),
        authorization,
    };
    let response = get(&h, &buyer.header(&misdirected), None).await;
    assert_eq!(
        refusal(&response),
        "invalid_batch_settlement_svm_channel_id_mismatch"
    );
    // The operator's receipt presented as a client-mode voucher on the same channel:
    // the modes never share one.
    let mut client_config = buyer.channel.config();
    client_config.voucher_signer = None;
    let mixed = BatchPayload::Voucher {
        channel_config: client_config,
        voucher: latest,
    };
    let response = get(&h, &buyer.header(&mixed), None).await;
    assert_eq!(
        refusal(&response),
        "invalid_batch_settlement_svm_voucher_signature"
    );
    assert_eq!(h.api.hits(), hits, "none of them served");

    // A failed answer costs nothing: its hold is let go.
    h.api.set_mode(UpstreamMode::Fail);
    let failed = get(&h, &buyer.header(&buyer.request("r-6")), Some("0.05")).await;
    assert_eq!(failed.status(), 500);
    h.api.set_mode(UpstreamMode::Ok);
    let row = h
        .gate
        .store()
        .batch_channel(&buyer.address().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.charged, row.reserved), (82_500, 0));

    // The operator's latest voucher is claimed like a buyer's; the refund returns the rest.
    let merchant = h.token_balance(&h.market.merchant).await;
    claim_channels(&h.gate).await.unwrap();
    assert_eq!(h.token_balance(&h.market.merchant).await, merchant + 82_500);
    let refund = buyer.refund();
    let closed = get(&h, &buyer.header(&refund), None).await;
    assert_eq!(closed.status(), 200);
    assert_eq!(
        h.token_balance(&buyer.keypair.pubkey()).await,
        deposit - 82_500,
        "the rest back"
    );
}

#[tokio::test]
async fn holds_never_exceed_the_deposit_and_a_refund_waits_for_the_requests_in_flight() {
    let h = Harness::start().await;
    let deposit = 2 * CEILING;
    let buyer = Buyer::new(&h, deposit).await;
    let opened = get(&h, &buyer.header(&buyer.open(deposit, "r-1")), Some("0.05")).await;
    assert_eq!(opened.status(), 200);

    // One request in flight holds the last ceiling the deposit has room for.
    h.api.set_mode(UpstreamMode::Slow);
    let in_flight = in_flight(&h, &buyer, "r-2");
    let row = held(&h, &buyer).await;
    assert_eq!((row.charged, row.reserved), (CEILING, CEILING));
    let over = get(&h, &buyer.header(&buyer.request("r-3")), None).await;
    assert_eq!(
        refusal(&over),
        "invalid_batch_settlement_svm_cumulative_exceeds_deposit"
    );
    // The buyer closing meanwhile waits: the request in flight is charged first.
    let refund = buyer.refund();
    let early = get(&h, &buyer.header(&refund), None).await;
    assert_eq!(refusal(&early), "invalid_batch_settlement_svm_close_state");

    // The upstream times out: nothing delivered, nothing charged, the hold let go.
    assert_eq!(in_flight.await.unwrap(), 504);
    h.api.set_mode(UpstreamMode::Ok);
    let closed = get(&h, &buyer.header(&refund), None).await;
    assert_eq!(closed.status(), 200);
    assert_eq!(
        h.token_balance(&buyer.keypair.pubkey()).await,
        CEILING,
        "charged the one answer served"
    );
}

#[tokio::test]
async fn a_request_held_when_its_buyer_closes_on_chain_is_not_served_unpaid() {
    let h = Harness::start().await;
    let deposit = 4 * CEILING;
    let buyer = Buyer::new(&h, deposit).await;
    let opened = get(&h, &buyer.header(&buyer.open(deposit, "r-1")), Some("0.05")).await;
    assert_eq!(opened.status(), 200);

    // A request is held, its answer a second away; meanwhile the buyer closes on chain
    // and the claim round seals the channel at what was charged.
    h.api.set_mode(UpstreamMode::Late);
    let in_flight = in_flight(&h, &buyer, "r-2");
    held(&h, &buyer).await;
    request_close(&h, &buyer.keypair, &buyer.address()).await;
    claim_channels(&h.gate).await.unwrap();
    assert_eq!(
        h.token_balance(&buyer.keypair.pubkey()).await,
        deposit - CEILING,
        "sealed at the one answer charged"
    );

    // The held answer comes back: it cannot be charged any more, so it is withheld.
    assert_eq!(in_flight.await.unwrap(), 503);
    let row = h
        .gate
        .store()
        .batch_channel(&buyer.address().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.charged, row.reserved), (CEILING, 0));
}

#[tokio::test]
async fn a_hold_left_by_a_crash_is_let_go_by_the_janitor_and_charges_nothing() {
    let h = Harness::start().await;
    let deposit = 2 * CEILING;
    let buyer = Buyer::new(&h, deposit).await;
    let opened = get(&h, &buyer.header(&buyer.open(deposit, "r-1")), Some("0.01")).await;
    assert_eq!(opened.status(), 200);
    // The verifier dies between a request's hold and its answer: the hold stays.
    let address = buyer.address().to_string();
    let store = h.gate.store();
    let held = store
        .reserve_operation(&address, "r-2", CEILING, unix_now())
        .await
        .unwrap();
    assert!(matches!(
        held,
        x402_verifier::store::Reservation::Held { .. }
    ));
    // Meanwhile the buyer's refund waits for it.
    let early = get(&h, &buyer.header(&buyer.refund()), None).await;
    assert_eq!(refusal(&early), "invalid_batch_settlement_svm_close_state");

    // A restarted gate's janitor, long after any answer could come, lets it go: nothing
    // charged, and the refund returns everything but the one answer served.
    let restarted = h.replica_gate().await;
    x402_verifier::scheme::batch::tend_batch_channels(&restarted, unix_now() + 700)
        .await
        .unwrap();
    let row = store.batch_channel(&address).await.unwrap().unwrap();
    assert_eq!((row.charged, row.reserved), (10_000, 0));
    let closed = get(&h, &buyer.header(&buyer.refund()), None).await;
    assert_eq!(closed.status(), 200);
    assert_eq!(
        h.token_balance(&buyer.keypair.pubkey()).await,
        deposit - 10_000
    );
}
