//! x402 verifier for Solana receipts: answers 402 challenges, settles sponsored payments
//! or checks self-submitted ones, and grants a request only once it has read the receipt
//! account and found the right payee, mint, expiry and amount.
//!
//! Two ways to use it: in front of an API as a reverse proxy ([`app`] with proxy routes,
//! the `x402-verifier` binary), or inside an axum app as a tower layer
//! ([`Gate::price`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::{get, on, MethodFilter, MethodRouter};
use axum::{Extension, Json, Router};
use http::StatusCode;
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub mod config;
pub mod gate;
pub mod layer;
pub mod ledger;
pub mod payment;
pub mod proxy;
pub mod receipts;
pub mod server;
pub mod store;

pub use gate::{Gate, PaymentAttempt, PaymentCheck, PaymentSettings, Price, SettledPayment};
pub use layer::PaymentLayer;
pub use store::{Grant, GrantStore};

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

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

/// The verifier's router: the paid routes, `GET /receipts/{reference}`, and `GET /healthz`.
pub fn app(gate: Gate, routes: Vec<PaidRoute>, limits: &RequestLimits) -> Router {
    let mut router = Router::new()
        .route("/receipts/{reference}", get(receipts::show_receipt))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(gate);
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
        router = router.route(&axum_path(&route.pattern), service.layer(route.payment));
    }
    router
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
