//! A running verifier in front of a counting upstream, over an embedded ledger whose
//! calls are counted, and the buyer's side of a payment.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use anchor_spl::token::spl_token;
use axum::routing::any;
use axum::Router;
use solana_keypair::Keypair;
use solana_signature::Signature;
use solana_signer::Signer;
use solana_transaction::Transaction;
use x402_protocol::scheme::encode_transaction;
use x402_protocol::wire::{decode_header, encode_header, v1, v2, Offer};
use x402_protocol::{ChallengeKey, Ledger, Reference, Requirement, Terms};
use x402_protocol::{ReceiptOffer, SCHEME};
use x402_testkit::{serve, TestLedger};
use x402_verifier::app::MetricsAccess;
use x402_verifier::facilitator::access::{FacilitatorAccess, SponsorshipPolicy};
use x402_verifier::ledger::local::{LocalLedger, LocalMarket, LOCAL_BLOCKHASH_REFRESH};
use x402_verifier::proxy::{Proxy, Upstream};
use x402_verifier::tasks::{self, Schedule};
use x402_verifier::{
    app, BatchSettings, Gate, GrantStore, PaidRoute, PaymentSettings, RequestLimits, RouteService,
    Scheme,
};

/// 0.01 of the local mint: the price of `/api/*`.
pub const PRICE: u64 = 10_000;
/// 0.05 of the local mint: the ceiling of `/metered`, an `upto` route.
pub const METERED_MAX: u64 = 50_000;
/// Where the upstream of `/metered` says what an answer cost.
pub const METERED_CHARGE_HEADER: &str = "x402-charge";
/// The largest upstream answer announced by Content-Length that the verifier passes on
/// (one without a length is passed on whole).
pub const MAX_RESPONSE: u64 = 64 * 1024;
/// The upstream's answer timeout: for the head, and then for each pause in the body.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// What [`UpstreamMode::HugeStream`] sends: four times [`MAX_RESPONSE`] and a bit, each
/// KiB different, so that a missing or repeated piece shows.
pub fn huge_stream() -> Vec<bytes::Bytes> {
    (0..=4 * MAX_RESPONSE / 1024)
        .map(|i| bytes::Bytes::from(vec![(i % 251) as u8; 1024]))
        .collect()
}

/// How the upstream API answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum UpstreamMode {
    Ok,
    Fail,
    Slow,
    /// Answers after a second: within the deadline, late enough to act meanwhile.
    Late,
    /// Too large, announced by Content-Length.
    Huge,
    /// Longer than the limit, streamed without a length ([`huge_stream`]).
    HugeStream,
    /// Five pieces of 1 KiB, 700 ms apart: longer in all than [`UPSTREAM_TIMEOUT`], but
    /// never pausing that long.
    SlowStream,
    /// Two pieces of 1 KiB, then the upstream breaks off (its answer is cut).
    BreaksOff,
    /// The head at once, then nothing for longer than [`UPSTREAM_TIMEOUT`].
    StallsBeforeBody,
}

/// The API behind the verifier: counts hits, echoes what it was sent.
pub struct Api {
    pub hits: AtomicUsize,
    pub mode: std::sync::Mutex<UpstreamMode>,
    /// The headers of the last request, lower-case names.
    pub last_headers: std::sync::Mutex<Vec<String>>,
}

impl Api {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: UpstreamMode) {
        *self.mode.lock().unwrap() = mode;
    }
}

async fn start_api() -> (Arc<Api>, String) {
    let api = Arc::new(Api {
        hits: AtomicUsize::new(0),
        mode: std::sync::Mutex::new(UpstreamMode::Ok),
        last_headers: Default::default(),
    });
    let state = api.clone();
    let router = Router::new().fallback(any(move |request: axum::extract::Request| {
        let api = state.clone();
        async move {
            use axum::response::IntoResponse;
            api.hits.fetch_add(1, Ordering::SeqCst);
            *api.last_headers.lock().unwrap() = request
                .headers()
                .keys()
                .map(|k| k.as_str().to_string())
                .collect();
            let path = request.uri().path().to_string();
            // A metered answer says what it cost as the query asked (`?charge=0.0125`).
            let charge = request
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("charge=")))
                .map(str::to_owned);
            let body = axum::body::to_bytes(request.into_body(), usize::MAX)
                .await
                .unwrap();
            let mode = *api.mode.lock().unwrap();
            match mode {
                UpstreamMode::Ok => {
                    let served = format!("served {path} body={}", String::from_utf8_lossy(&body));
                    match charge {
                        Some(charge) => ([(METERED_CHARGE_HEADER, charge)], served).into_response(),
                        None => served.into_response(),
                    }
                }
                UpstreamMode::Fail => {
                    (http::StatusCode::INTERNAL_SERVER_ERROR, "upstream broke").into_response()
                }
                UpstreamMode::Slow => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "too late".into_response()
                }
                UpstreamMode::Late => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    "late".into_response()
                }
                UpstreamMode::Huge => vec![b'x'; MAX_RESPONSE as usize + 1].into_response(),
                UpstreamMode::HugeStream => {
                    let chunks = huge_stream().into_iter().map(Ok::<_, std::io::Error>);
                    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
                        .into_response()
                }
                UpstreamMode::SlowStream => {
                    use futures_util::StreamExt;
                    let chunks = futures_util::stream::iter(0..5u8).then(|i| async move {
                        tokio::time::sleep(Duration::from_millis(700)).await;
                        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![i; 1024]))
                    });
                    axum::body::Body::from_stream(chunks).into_response()
                }
                UpstreamMode::StallsBeforeBody => {
                    let late = futures_util::stream::once(async {
                        tokio::time::sleep(UPSTREAM_TIMEOUT + Duration::from_secs(1)).await;
                        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"too late"))
                    });
                    axum::body::Body::from_stream(late).into_response()
                }
                UpstreamMode::BreaksOff => {
                    use futures_util::StreamExt;
                    // The break comes a moment later, once the head and the first pieces
                    // are out.
                    let chunks = futures_util::stream::iter(0..3).then(|i| async move {
                        match i {
                            2 => {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                Err(std::io::Error::other("the upstream broke off"))
                            }
                            _ => Ok(bytes::Bytes::from(vec![b'x'; 1024])),
                        }
                    });
                    axum::body::Body::from_stream(chunks).into_response()
                }
            }
        }
    }));
    (api, serve(router).await)
}

/// The challenge key of every harness, so that tests can issue references themselves.
pub fn challenge_key() -> ChallengeKey {
    ChallengeKey::new(vec![7; 32]).unwrap()
}

pub struct Harness {
    pub market: LocalMarket,
    pub ledger: Arc<TestLedger>,
    pub gate: Gate,
    pub api: Arc<Api>,
    pub url: String,
    pub store_url: String,
    api_url: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// A verifier that sponsors payments.
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    /// A verifier that sponsors payments or, without a fee payer, only checks receipts
    /// its buyers paid themselves.
    pub async fn start_with(sponsor: bool) -> Self {
        Self::start_on(sponsor, None).await
    }

    /// A verifier whose grants live at `store_url` (a SQLite file in a new directory when
    /// none is given).
    pub async fn start_on(sponsor: bool, store_url: Option<String>) -> Self {
        let market = LocalLedger::start_market(None).await;
        let ledger = Arc::new(TestLedger::over(market.ledger.clone()));
        let dir = tempfile::tempdir().unwrap();
        let store_url = store_url
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("grants.db").display()));
        let gate = gate(&market, ledger.clone(), &store_url, sponsor).await;
        let (api, api_url) = start_api().await;
        let url = serve(app_for(&gate, &api_url)).await;
        Harness {
            market,
            ledger,
            gate,
            api,
            url,
            store_url,
            api_url,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Another verifier on the same ledger, store, key and upstream: a replica behind a
    /// load balancer, or this one after a restart. Its base URL.
    pub async fn replica(&self) -> String {
        let gate = gate(&self.market, self.ledger.clone(), &self.store_url, true).await;
        serve(app_for(&gate, &self.api_url)).await
    }

    /// The 402 challenges the verifier has issued, from `/metrics`.
    pub async fn challenges_issued(&self) -> u64 {
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix("x402_challenges_total "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Another gate on the same ledger and store: this one after a crash.
    pub async fn replica_gate(&self) -> Gate {
        gate(&self.market, self.ledger.clone(), &self.store_url, true).await
    }

    /// The verifier's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Asks `method path` without paying: the 402's offer and body.
    pub async fn challenge(&self, method: &str, path: &str) -> (ReceiptOffer, serde_json::Value) {
        let response = self.send(method, path, &[]).await;
        assert_eq!(response.status(), 402);
        let body: serde_json::Value = response.json().await.unwrap();
        let offer: v1::PaymentRequirements =
            serde_json::from_value(body["accepts"][0].clone()).unwrap();
        (ReceiptOffer::from_v1(&offer).unwrap(), body)
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        let mut request = self.http.request(method.parse().unwrap(), self.url(path));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.unwrap()
    }

    /// A wallet with SOL and `tokens` of the local mint.
    pub async fn new_payer(&self, tokens: u64) -> Keypair {
        let payer = Keypair::new();
        let ledger = &self.market.ledger;
        ledger.airdrop(&payer.pubkey(), 1_000_000_000).await;
        ledger
            .create_token_account(&payer.pubkey(), &self.market.mint, spl_token::ID)
            .await;
        ledger
            .mint_to(&self.market.mint, &payer.pubkey(), tokens)
            .await;
        payer
    }

    /// Pays `requirement` on chain directly (way 2), the payer paying fee and rent, past
    /// the verifier: its ledger calls are not counted.
    pub async fn pay_on_chain(&self, requirement: &Requirement, payer: &Keypair) -> Signature {
        let blockhash = self.market.ledger.latest_blockhash().await.unwrap();
        let mut tx = requirement.pay_transaction(&payer.pubkey(), &payer.pubkey(), blockhash);
        tx.sign(&[payer], blockhash);
        self.market.ledger.submit(&tx.into()).await.unwrap()
    }

    pub async fn token_balance(&self, owner: &Pubkey) -> u64 {
        self.market
            .ledger
            .token_balance(owner, &self.market.mint)
            .await
    }

    /// The plain header for a payment made on chain: `<reference>:<proof>`, the payer's
    /// proof that it presents `reference` for `GET path` at this verifier.
    pub fn proof(
        &self,
        payer: &Keypair,
        path: &str,
        reference: &Reference,
    ) -> (&'static str, String) {
        let host = self.url.trim_start_matches("http://");
        let target = x402_protocol::ProofTarget {
            method: "GET",
            path,
            host,
        };
        let proof = x402_protocol::sign_proof(payer, reference, &target);
        ("X-Payment-Proof", format!("{reference}:{proof}"))
    }

    /// What the verifier requires for `reference` at the `/api/*` price.
    pub fn gate_requirement(&self, reference: Reference) -> Requirement {
        self.gate.requirement(PRICE, reference)
    }

    /// A reference for `terms` of this verifier, issued with its key.
    pub fn issue(&self, method: &str, path: &str, amount: u64, expires_at: i64) -> Reference {
        let s = self.gate.settings();
        let terms = Terms {
            network: s.network.caip2(),
            program: s.program,
            mint: s.mint,
            pay_to: s.pay_to,
            amount,
            method,
            path,
        };
        Reference::issue(&challenge_key(), &terms, expires_at)
    }
}

/// The sponsored way: `instructions` (the offer's pay by default) signed by the payer,
/// as an `X-PAYMENT` header.
pub fn sponsored_header(offer: &ReceiptOffer, payer: &Keypair) -> (&'static str, String) {
    let tx = sponsored_transaction(
        offer,
        payer,
        &[offer
            .requirement
            .pay_instruction(&payer.pubkey(), &offer.fee_payer.unwrap())],
    );
    x_payment(
        offer,
        serde_json::json!({ "transaction": encode_transaction(&tx) }),
    )
}

pub fn sponsored_transaction(
    offer: &ReceiptOffer,
    payer: &Keypair,
    instructions: &[anchor_lang::solana_program::instruction::Instruction],
) -> Transaction {
    let blockhash = offer
        .recent_blockhash
        .expect("a sponsored offer carries a blockhash");
    let mut tx = Transaction::new_with_payer(instructions, offer.fee_payer.as_ref());
    tx.try_partial_sign(&[payer], blockhash).unwrap();
    tx
}

pub fn x_payment(offer: &ReceiptOffer, payload: serde_json::Value) -> (&'static str, String) {
    let payment = v1::PaymentPayload {
        x402_version: 1,
        scheme: SCHEME.into(),
        network: offer.network.clone(),
        payload,
    };
    (v1::X_PAYMENT, encode_header(&payment))
}

/// The plain header with a bare reference: refused once its receipt is found, for want
/// of the payer's proof (see [`Harness::proof`]).
pub fn proof(reference: &Reference) -> (&'static str, String) {
    ("X-Payment-Proof", reference.to_string())
}

async fn gate(
    market: &LocalMarket,
    ledger: Arc<TestLedger>,
    store_url: &str,
    sponsor: bool,
) -> Gate {
    let settings = PaymentSettings {
        batch: BatchSettings {
            operator: sponsor.then(|| Arc::new(operator())),
            ..BatchSettings::default()
        },
        ..x402_testkit::settings(
            market.ledger.network().clone(),
            market.mint,
            market.merchant,
            challenge_key(),
            sponsor.then(|| market.fee_payer.insecure_clone()),
        )
    };
    let store = GrantStore::connect(store_url).await.unwrap();
    let schedule = Schedule {
        blockhash_refresh: LOCAL_BLOCKHASH_REFRESH,
        janitor: None,
        ..Schedule::default()
    };
    let gate = Gate::new(settings, ledger, store);
    tasks::start(&gate, &schedule).await;
    gate
}

/// The `batch-settlement` server mode's operator of every sponsoring harness (one key
/// for its replicas too).
pub fn operator() -> Keypair {
    Keypair::new_from_array([42; 32])
}

/// The API key of every harness's facilitator.
pub const FACILITATOR_KEY: &str = "facilitator-test-key-0001";

/// A second caller's API key, as another resource server holds it.
pub const OTHER_FACILITATOR_KEY: &str = "facilitator-test-key-0002";

/// The facilitator's access as configured by default: the merchant's mint and payee,
/// 15 minutes ahead at most, at least the `/api/*` price, `budget_lamports` an hour.
pub fn facilitator_access(gate: &Gate, budget_lamports: u64) -> FacilitatorAccess {
    let s = gate.settings();
    FacilitatorAccess::new(
        vec![
            FACILITATOR_KEY.to_string().into(),
            OTHER_FACILITATOR_KEY.to_string().into(),
        ],
        SponsorshipPolicy {
            mints: vec![s.mint],
            payees: vec![s.pay_to],
            max_horizon: Duration::from_secs(900),
            min_amount: PRICE,
            budget_lamports,
            window: Duration::from_secs(3600),
        },
    )
}

fn app_for(gate: &Gate, api_url: &str) -> Router {
    let upstream = Upstream {
        url: api_url.into(),
        timeout: UPSTREAM_TIMEOUT,
        max_response_bytes: MAX_RESPONSE,
    };
    let proxy = Proxy::new(reqwest::Client::new(), upstream);
    let route = |pattern: &str, methods: Vec<http::Method>, price: &str| PaidRoute {
        pattern: pattern.into(),
        methods,
        payment: gate.price(price).description("test route"),
        service: RouteService::Proxy(proxy.clone()),
    };
    let routes = vec![
        route(
            "/api/*",
            vec![http::Method::GET, http::Method::POST],
            "0.01",
        ),
        route("/premium", vec![http::Method::GET], "0.05"),
        PaidRoute {
            pattern: "/metered".into(),
            methods: vec![http::Method::GET],
            payment: gate
                .price("0.05")
                .schemes(&[Scheme::Upto])
                .charge_header(http::HeaderName::from_static(METERED_CHARGE_HEADER)),
            service: RouteService::Proxy(proxy.clone()),
        },
        PaidRoute {
            pattern: "/batch".into(),
            methods: vec![http::Method::GET],
            payment: gate.price("0.01").schemes(&[Scheme::Batch]),
            service: RouteService::Proxy(proxy.clone()),
        },
        // The server mode's ceiling, the answer saying what it cost.
        PaidRoute {
            pattern: "/batch/metered".into(),
            methods: vec![http::Method::GET],
            payment: gate
                .price("0.05")
                .schemes(&[Scheme::Batch])
                .charge_header(http::HeaderName::from_static(METERED_CHARGE_HEADER)),
            service: RouteService::Proxy(proxy.clone()),
        },
        // A challenge that lives 5 seconds: always inside the sponsorship's expiry margin.
        PaidRoute {
            pattern: "/brief".into(),
            methods: vec![http::Method::GET],
            payment: gate.price("0.01").ttl(Duration::from_secs(5)),
            service: RouteService::Proxy(proxy.clone()),
        },
    ];
    app(
        gate.clone(),
        routes,
        &RequestLimits {
            body_bytes: 1024 * 1024,
            timeout: Duration::from_secs(30),
        },
        Some(MetricsAccess::default()),
        Some(facilitator_access(gate, 50_000_000)),
    )
}

/// A facilitator request (`/verify`, `/settle`): `payload` paying `offer`, in x402 v2.
pub fn facilitator_body(offer: &Offer, payload: impl serde::Serialize) -> serde_json::Value {
    let accepted = offer.to_v2();
    let payment = v2_payment(&accepted, payload);
    serde_json::json!({"x402Version": 2, "paymentPayload": payment, "paymentRequirements": accepted})
}

/// An x402 v2 payment of `payload` for the offer `accepted`.
pub fn v2_payment(
    accepted: &v2::PaymentRequirements,
    payload: impl serde::Serialize,
) -> v2::PaymentPayload {
    v2::PaymentPayload {
        x402_version: 2,
        resource: None,
        accepted: accepted.clone(),
        payload: serde_json::to_value(payload).unwrap(),
        extensions: None,
    }
}

/// POSTs `body` to the facilitator's `path` with API key `key`: the status and the answer.
pub async fn facilitator_post<T: serde::de::DeserializeOwned>(
    h: &Harness,
    key: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, T) {
    let response = h
        .http
        .post(h.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The facilitator's `/supported`.
pub async fn supported(h: &Harness) -> x402_protocol::wire::facilitator::SupportedResponse {
    h.http
        .get(h.url("/supported"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `payer` asks to close its channel at `channel` on chain, walking away from the seller.
pub async fn request_close(h: &Harness, payer: &Keypair, channel: &Pubkey) {
    let blockhash = h.market.ledger.latest_blockhash().await.unwrap();
    let close = Transaction::new_signed_with_payer(
        &[x402_protocol::scheme::channel::request_close_instruction(
            channel,
            &payer.pubkey(),
        )],
        Some(&payer.pubkey()),
        &[payer],
        blockhash,
    );
    h.market
        .ledger
        .submit(&close.into())
        .await
        .expect("request_close lands");
}

/// The offers of a 402 for `GET url`, as a stock client reads them (the header).
pub async fn offers(http: &reqwest::Client, url: &str) -> Vec<(Offer, v2::PaymentRequirements)> {
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 402);
    let header = response.headers()[v2::PAYMENT_REQUIRED].to_str().unwrap();
    let required: v2::PaymentRequired = decode_header(header).unwrap();
    required
        .accepts
        .iter()
        .map(|accepted| {
            (
                Offer::from_v2(accepted, &required.resource),
                accepted.clone(),
            )
        })
        .collect()
}

/// The schemes a 402 for `GET path` offers.
pub async fn offers_of(h: &Harness, path: &str) -> Vec<String> {
    offers(&h.http, &h.url(path))
        .await
        .into_iter()
        .map(|(offer, _)| offer.scheme)
        .collect()
}
