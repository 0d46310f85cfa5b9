//! `GET /metrics`: the gate's counters ([`crate::metrics`]) as OpenMetrics text, served
//! on the main listener, on its own listener, or behind a bearer token.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::error::{Reason, Refusal};
use crate::gate::Gate;

/// Who may read `/metrics`.
#[derive(Clone, Default)]
pub struct MetricsAccess {
    /// When set, a request must carry `Authorization: Bearer <token>`.
    pub token: Option<SecretString>,
}

/// `GET /metrics` for `gate`, behind the bearer token when one is set.
pub fn router(gate: Gate, access: MetricsAccess) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state((gate, access))
}

async fn scrape(
    State((gate, access)): State<(Gate, MetricsAccess)>,
    headers: http::HeaderMap,
) -> Response {
    if let Some(token) = &access.token {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        let expected = token.expose_secret().as_bytes();
        if !bool::from(presented.as_bytes().ct_eq(expected)) {
            return Refusal::new(Reason::Unauthorized).into_response();
        }
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gate.metrics().render(),
    )
        .into_response()
}
