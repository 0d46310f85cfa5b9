//! The verifier's router: the paid routes behind their payment layers, the receipt and
//! facilitator endpoints, `/metrics` and `/healthz`, and the middleware every request goes
//! through (assembled here, in one place).

use std::time::Duration;

use axum::routing::{get, on, post, MethodFilter, MethodRouter};
use axum::{Extension, Json, Router};
use http::StatusCode;
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::facilitator::access::FacilitatorAccess;
use crate::gate::{Gate, SettledPayment};
use crate::layer::PaymentLayer;
use crate::metrics::MetricsAccess;
use crate::paths::{self, PathRules};
use crate::{facilitator, metrics, proxy, receipts};

/// What a paid route serves.
#[derive(Clone)]
pub enum RouteService {
    /// Forward to an upstream API.
    Proxy(proxy::Proxy),
    /// The built-in demo resource.
    Demo,
}

/// A priced route: which requests, at what price, served by what.
#[derive(Clone)]
pub struct PaidRoute {
    /// `/exact/path`, or `/prefix/*` for everything below the prefix.
    pub pattern: String,
    pub methods: Vec<http::Method>,
    pub payment: PaymentLayer,
    pub service: RouteService,
}

/// Limits applied to every request, in one place.
#[derive(Clone, Debug)]
pub struct RequestLimits {
    pub body_bytes: usize,
    pub timeout: Duration,
}

/// The verifier's router: the paid routes, `GET /receipts/{reference}`, `GET /healthz`,
/// the facilitator API when it is on, and `GET /metrics` when `metrics` is served here
/// (`None`: on its own listener, [`metrics::router`]).
pub fn app(
    gate: Gate,
    routes: Vec<PaidRoute>,
    limits: &RequestLimits,
    metrics: Option<MetricsAccess>,
    facilitator: Option<FacilitatorAccess>,
) -> Router {
    let mut router = Router::new()
        .route("/receipts/{reference}", get(receipts::show_receipt))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(gate.clone());
    if let Some(access) = facilitator {
        let facilitator = Router::new()
            .route("/verify", post(facilitator::verify))
            .route("/settle", post(facilitator::settle))
            .route("/supported", get(facilitator::supported))
            .with_state((gate.clone(), access));
        router = router.merge(facilitator);
    }
    if let Some(access) = metrics {
        router = router.merge(metrics::router(gate, access));
    }
    let rules = PathRules::new(routes.iter().map(|route| route.pattern.as_str()));
    for route in routes {
        let filter = route
            .methods
            .iter()
            .filter_map(|m| MethodFilter::try_from(m.clone()).ok())
            .reduce(MethodFilter::or)
            .unwrap_or(MethodFilter::GET);
        let service: MethodRouter = match route.service {
            RouteService::Proxy(proxy) => on(filter, move |request| async move {
                proxy.forward(request).await
            }),
            RouteService::Demo => on(filter, demo),
        };
        // `route_layer`: a method the route does not serve is a 405, not a payment.
        router = router.route(
            &axum_path(&route.pattern),
            service.route_layer(route.payment),
        );
    }
    // The path filter wraps the routes from outside (through the fallback): a layer on
    // the routes themselves runs after routing, too late to route the normalized path.
    Router::new()
        .fallback_service(router)
        .layer(axum::middleware::from_fn_with_state(
            rules,
            paths::normalize_paths,
        ))
        .layer(RequestBodyLimitLayer::new(limits.body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            limits.timeout,
        ))
        .layer(TraceLayer::new_for_http())
}

/// `/api/*` in configuration is axum's `/api/{*rest}`.
fn axum_path(pattern: &str) -> String {
    match pattern.strip_suffix("/*") {
        Some(prefix) => format!("{prefix}/{{*rest}}"),
        None => pattern.to_string(),
    }
}

/// The demo resource: what the buyer paid for, and the payment it was paid with.
async fn demo(Extension(payment): Extension<SettledPayment>) -> Json<serde_json::Value> {
    Json(json!({
        "message": "Paid content: this response was bought with an on-chain receipt.",
        "payment": {
            "reference": payment.reference.to_string(),
            "receipt": payment.receipt.to_string(),
            "payer": payment.payer.to_string(),
            "amount": payment.amount.to_string(),
            "transaction": payment.transaction,
        },
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use anchor_lang::prelude::Pubkey;
    use async_trait::async_trait;
    use axum::body::Body;
    use http::Request;
    use solana_hash::Hash;
    use solana_signature::Signature;
    use solana_transaction::Transaction;
    use tower::ServiceExt;
    use x402_protocol::wire::{decode_header, v2};
    use x402_protocol::{ChallengeKey, Ledger, LedgerAccount, LedgerError, Network};

    use super::*;
    use crate::store::GrantStore;
    use crate::PaymentSettings;

    /// Routing and answers that need no ledger: a ledger holding no accounts.
    struct EmptyLedger(Network);

    #[async_trait]
    impl Ledger for EmptyLedger {
        fn network(&self) -> &Network {
            &self.0
        }
        async fn accounts(
            &self,
            addresses: &[Pubkey],
        ) -> Result<Vec<Option<LedgerAccount>>, LedgerError> {
            Ok(vec![None; addresses.len()])
        }
        async fn latest_blockhash(&self) -> Result<Hash, LedgerError> {
            Ok(Hash::new_from_array([3; 32]))
        }
        async fn submit(&self, _: &Transaction) -> Result<Signature, LedgerError> {
            Err(LedgerError::Rejected(
                "nothing is submitted in these tests".into(),
            ))
        }
        async fn program_accounts(
            &self,
            _: &Pubkey,
            _: &[x402_protocol::AccountFilter],
        ) -> Result<Vec<(Pubkey, LedgerAccount)>, LedgerError> {
            Ok(Vec::new())
        }
    }

    async fn router() -> (Router, tempfile::TempDir) {
        router_with(Some(MetricsAccess::default())).await
    }

    async fn router_with(metrics: Option<MetricsAccess>) -> (Router, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = GrantStore::connect(&format!("sqlite://{}", dir.path().join("g.db").display()))
            .await
            .unwrap();
        let settings = PaymentSettings {
            network: Network::devnet(),
            program: x402_receipts::ID,
            mint: Pubkey::new_unique(),
            decimals: 6,
            token_program: anchor_spl::token::ID,
            currency: "USDC".into(),
            pay_to: Pubkey::new_unique(),
            challenge_keys: vec![ChallengeKey::random()],
            fee_payer: Some(Arc::new(solana_keypair::Keypair::new())),
            sponsor_limits: Default::default(),
            max_compute_unit_price: 1,
            max_compute_unit_limit: 1,
            ledger_timeout: Duration::from_secs(5),
            public_url: Some("https://api.example.com/".into()),
            facilitator_url: None,
        };
        let ledger = Arc::new(EmptyLedger(Network::devnet()));
        let gate = Gate::start(settings, ledger, store, &Default::default()).await;
        let route = |pattern: &str, price: &str| PaidRoute {
            pattern: pattern.into(),
            methods: vec![http::Method::GET],
            payment: gate.price(price),
            service: RouteService::Demo,
        };
        // A cheap prefix and a dear route inside it.
        let routes = vec![
            route("/demo", "0.25"),
            route("/api/premium", "5"),
            route("/api/*", "0.01"),
        ];
        let limits = RequestLimits {
            body_bytes: 1024,
            timeout: Duration::from_secs(5),
        };
        (app(gate.clone(), routes, &limits, metrics, None), dir)
    }

    async fn call(
        router: &Router,
        method: &str,
        uri: &str,
        header: Option<(&str, &str)>,
    ) -> axum::response::Response {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_unpaid_request_gets_both_challenge_forms() {
        let (router, _dir) = router().await;
        let response = call(&router, "GET", "/demo?q=1", None).await;
        assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
        let header = response.headers()[v2::PAYMENT_REQUIRED]
            .to_str()
            .unwrap()
            .to_string();
        let v2: v2::PaymentRequired = decode_header(&header).unwrap();
        assert_eq!(v2.resource.url, "https://api.example.com/demo?q=1");
        assert_eq!(v2.accepts[0].network, Network::devnet().caip2());
        assert_eq!(v2.accepts[0].amount, "250000");
        let extra = v2.accepts[0].extra.as_ref().unwrap();
        assert_eq!(
            extra["recentBlockhash"],
            Hash::new_from_array([3; 32]).to_string()
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["accepts"][0]["network"], "solana-devnet");
        assert_eq!(
            (body["amount"].as_str(), body["ttl"].as_i64()),
            (Some("0.25"), Some(300))
        );
        assert_eq!(
            body["reference"], extra["reference"],
            "one reference in both forms"
        );
    }

    #[tokio::test]
    async fn other_methods_paths_and_bad_input_get_plain_http_answers() {
        let (router, _dir) = router().await;
        assert_eq!(
            call(&router, "GET", "/healthz", None).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            call(&router, "POST", "/demo", None).await.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            call(&router, "GET", "/nowhere", None).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call(&router, "GET", "/receipts/0OIl", None).await.status(),
            StatusCode::BAD_REQUEST
        );
        let unknown = x402_protocol::Reference([9; 32]).to_string();
        assert_eq!(
            call(&router, "GET", &format!("/receipts/{unknown}"), None)
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        let bad = call(&router, "GET", "/demo", Some(("X-PAYMENT", "{not base64}"))).await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn an_ambiguous_path_is_refused_before_it_is_routed_or_paid_for() {
        let (router, _dir) = router().await;
        for path in [
            "/demo/%2e%2e/admin",
            "/demo/../demo",
            "/x/%2E%2e/demo",
            "/demo/%2fetc",
            "//demo",
            "/demo/.",
            "/a\\b",
        ] {
            let response = call(&router, "GET", path, None).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        }
    }

    #[tokio::test]
    async fn metrics_behind_a_token_need_the_token_and_elsewhere_are_not_served_here() {
        let access = MetricsAccess {
            token: Some("s3cret-token".to_string().into()),
        };
        let (router, _dir) = router_with(Some(access)).await;
        for header in [None, Some("Bearer wrong"), Some("s3cret-token")] {
            let response = call(
                &router,
                "GET",
                "/metrics",
                header.map(|h| ("authorization", h)),
            )
            .await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header:?}");
        }
        let response = call(
            &router,
            "GET",
            "/metrics",
            Some(("authorization", "Bearer s3cret-token")),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("x402_challenges_total"));

        let (router, _dir) = router_with(None).await;
        let response = call(&router, "GET", "/metrics", None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_look_alike_of_the_dear_route_gets_its_price_or_a_400_never_the_cheap_one() {
        let (router, _dir) = router().await;
        let price = |response: axum::response::Response| async move {
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            body["amount"].as_str().map(str::to_string)
        };
        let dear = call(&router, "GET", "/api/premium", None).await;
        assert_eq!(price(dear).await.as_deref(), Some("5"));
        let encoded = call(&router, "GET", "/api/%70remium?x=1", None).await;
        assert_eq!(encoded.status(), StatusCode::PAYMENT_REQUIRED);
        assert_eq!(price(encoded).await.as_deref(), Some("5"));
        for path in [
            "/api/Premium",
            "/api/premium/",
            "/api/premium;x",
            "/api/..;/premium",
        ] {
            let response = call(&router, "GET", path, None).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        }
        let cheap = call(&router, "GET", "/api/other", None).await;
        assert_eq!(price(cheap).await.as_deref(), Some("0.01"));
    }

    #[test]
    fn prefix_patterns_become_axum_wildcards() {
        assert_eq!(axum_path("/api/*"), "/api/{*rest}");
        assert_eq!(axum_path("/api/generate"), "/api/generate");
    }
}
