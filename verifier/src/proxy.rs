//! The reverse proxy: a paid request goes to its route's upstream with the payment
//! headers stripped, bodies streamed both ways, its time and response size bounded.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderMap, Request};

use crate::error::{Reason, Refusal};

/// Where a route's paid requests go, and the bounds on the answer.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Base URL; the request's path and query are appended.
    pub url: String,
    /// The whole exchange, response body included.
    pub timeout: Duration,
    pub max_response_bytes: u64,
}

#[derive(Clone)]
pub struct Proxy {
    client: reqwest::Client,
    upstream: Arc<Upstream>,
}

/// Headers that belong to one hop, never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

impl Proxy {
    pub fn new(client: reqwest::Client, upstream: Upstream) -> Self {
        Proxy {
            client,
            upstream: Arc::new(upstream),
        }
    }

    /// Forwards `request` (payment headers already stripped by the gate) and streams the
    /// answer back. Upstream failures are 502 or 504, so the gate releases the grant.
    pub async fn forward(&self, request: Request<Body>) -> Response {
        let (parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let url = format!("{}{}", self.upstream.url.trim_end_matches('/'), path);
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        let sent = self
            .client
            .request(parts.method, url)
            .headers(headers)
            .body(reqwest::Body::wrap_stream(body.into_data_stream()))
            .timeout(self.upstream.timeout)
            .send()
            .await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(error) if error.is_timeout() => {
                return Refusal::new(Reason::UpstreamTimeout).into_response()
            }
            Err(error) => {
                // reqwest's error names the URL: log only what kind of failure it was.
                tracing::warn!(kind = ?error.is_connect(), "upstream unreachable");
                return Refusal::new(Reason::UpstreamUnreachable).into_response();
            }
        };
        let limit = self.upstream.max_response_bytes;
        if answer.content_length().is_some_and(|length| length > limit) {
            return Refusal::new(Reason::UpstreamResponseTooLarge).into_response();
        }
        let status = answer.status();
        let mut headers = answer.headers().clone();
        strip_hop_by_hop(&mut headers);
        // Past the limit the stream fails, which aborts the response mid-way.
        let mut sent_bytes = 0u64;
        let body = answer
            .bytes_stream()
            .map_err(std::io::Error::other)
            .map(move |chunk| {
                let chunk = chunk?;
                sent_bytes = sent_bytes.saturating_add(chunk.len() as u64);
                if sent_bytes > limit {
                    return Err(std::io::Error::other("upstream response too large"));
                }
                Ok(chunk)
            });
        let mut response = Response::new(Body::from_stream(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}
