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

pub mod metrics;

pub use self::metrics::MetricsAccess;
use crate::facilitator::access::FacilitatorAccess;
use crate::gate::Gate;
use crate::layer::PaymentLayer;
use crate::model::SettledPayment;
use crate::paths::{self, PathRules};
use crate::{facilitator, proxy, receipts};

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
        .route(
            "/receipts/{reference}",
            get(receipts::show_receipt).layer(Extension(receipts::ReceiptLookups::default())),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(crate::paywall::SCRIPT_PATH, get(crate::paywall::script))
        .with_state(gate.clone());
    if let Some(access) = facilitator {
        let facilitator = Router::new()
            .route("/verify", post(facilitator::verify))
            .route("/settle", post(facilitator::settle))
            // The key before the body: a stranger's megabyte is not read, let alone parsed.
            .route_layer(axum::middleware::from_fn_with_state(
                access.clone(),
                facilitator::access::authorize,
            ))
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
        "message": "Paid content: this response was bought with an on-chain payment.",
        "payment": {
            "scheme": payment.scheme.name(),
            "reference": payment.reference.to_string(),
            "receipt": payment.receipt.map(|r| r.to_string()),
            "payer": payment.payer.to_string(),
            "amount": payment.amount.to_string(),
            "transaction": payment.transaction,
        },
    }))
}

#[cfg(test)]
mod tests;
