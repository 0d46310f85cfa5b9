//! The router in process: routing, refusals and limits that need no real ledger.

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use solana_hash::Hash;
use tower::ServiceExt;
use x402_protocol::wire::{decode_header, v2};
use x402_protocol::{Ledger, Network};

use super::*;
use crate::testing::{self, EmptyLedger};

async fn router() -> (Router, tempfile::TempDir) {
    router_with(Some(MetricsAccess::default())).await
}

async fn router_with(metrics: Option<MetricsAccess>) -> (Router, tempfile::TempDir) {
    router_on(Arc::new(EmptyLedger::new(Network::devnet())), metrics).await
}

async fn router_on(
    ledger: Arc<dyn Ledger>,
    metrics: Option<MetricsAccess>,
) -> (Router, tempfile::TempDir) {
    let (settings, store, dir) = testing::settings_and_store().await;
    let gate = Gate::new(settings, ledger, store);
    crate::tasks::start(&gate, &Default::default()).await;
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

#[tokio::test]
async fn receipt_lookups_in_flight_are_capped() {
    // Reads that take a while, as a busy RPC provider's do.
    let ledger = Arc::new(EmptyLedger::slow(
        Network::devnet(),
        Duration::from_millis(500),
    ));
    let (router, _dir) = router_on(ledger, None).await;
    let lookups = (0..40u8).map(|i| {
        let router = router.clone();
        async move {
            let reference = x402_protocol::Reference([i; 32]).to_string();
            call(&router, "GET", &format!("/receipts/{reference}"), None).await
        }
    });
    let answers = futures_util::future::join_all(lookups).await;
    let limited: Vec<_> = answers
        .iter()
        .filter(|a| a.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(
        limited.len(),
        40 - 16,
        "16 lookups at once, the rest refused"
    );
    assert!(limited
        .iter()
        .all(|a| a.headers().contains_key("retry-after")));
    assert!(answers.iter().any(|a| a.status() == StatusCode::NOT_FOUND));
}

#[test]
fn prefix_patterns_become_axum_wildcards() {
    assert_eq!(axum_path("/api/*"), "/api/{*rest}");
    assert_eq!(axum_path("/api/generate"), "/api/generate");
}
