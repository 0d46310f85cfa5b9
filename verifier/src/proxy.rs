//! The reverse proxy: a paid request goes to its route's upstream with the payment
//! headers stripped, bodies streamed both ways.
//!
//! A paid answer is passed on whole, however long, or refused before it begins: once a
//! byte of it has reached the buyer, the grant stays spent (the buyer has part of it, and
//! a `Range` request could fetch the rest for free), so cutting an answer short would
//! charge for what was not delivered. Hence:
//!
//! - the upstream has [`Upstream::timeout`] to send its answer's head, and then the same
//!   time between one piece of the body and the next: an answer that keeps coming is
//!   never cut, only one that stalls (or breaks off by itself);
//! - the buyer's answer begins with the upstream's first piece, not its head: one that
//!   stalls or breaks off before any of its body is a failed answer (504 or 502), and the
//!   grant is given back;
//! - [`Upstream::max_response_bytes`] refuses an answer whose `Content-Length` says more,
//!   before anything is sent (502 `upstream_response_too_large`; the gate releases the
//!   grant, so the same payment can be retried). An answer without a length is streamed
//!   whole: nothing here buffers it, so memory stays bounded by the stream's chunks
//!   whatever its size, and no limit is needed.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, Request};

use crate::error::{Reason, Refusal};

/// Where a route's paid requests go, and the bounds on the answer.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Base URL; the request's path and query are appended.
    pub url: String,
    /// How long the upstream has to answer (the request sent, the answer's head
    /// received), and then the longest pause between pieces of the body.
    pub timeout: Duration,
    /// The largest `Content-Length` passed on; an answer without one is streamed whole.
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
            .send();
        // Not reqwest's own timeout: it runs until the body's end, and would cut off a
        // long answer that had begun, one the buyer has paid for.
        let answer = match tokio::time::timeout(self.upstream.timeout, sent).await {
            Ok(Ok(answer)) => answer,
            Err(_) => return Refusal::new(Reason::UpstreamTimeout).into_response(),
            Ok(Err(error)) if error.is_timeout() => {
                return Refusal::new(Reason::UpstreamTimeout).into_response()
            }
            Ok(Err(error)) => {
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
        // Nothing has reached the buyer until the first piece of the body does: an
        // upstream that stalls or breaks off before it delivered nothing.
        let mut body = Box::pin(answer.bytes_stream());
        let first = match tokio::time::timeout(self.upstream.timeout, body.next()).await {
            Ok(Some(Ok(piece))) => Some(piece),
            Ok(None) => None,
            Ok(Some(Err(_))) => return Refusal::new(Reason::UpstreamUnreachable).into_response(),
            Err(_) => return Refusal::new(Reason::UpstreamTimeout).into_response(),
        };
        let first = futures_util::stream::iter(first.map(Ok));
        let body = first.chain(whole(body, self.upstream.timeout));
        let mut response = Response::new(Body::from_stream(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

/// The upstream's body, passed on whole: it ends where the upstream's does, or with an
/// error when the upstream breaks off or sends nothing for `pause` (which aborts the
/// answer mid-way: the buyer sees it incomplete).
fn whole(
    body: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    pause: Duration,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(Some(Box::pin(body)), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(pause, body.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
            Ok(None) => None,
            Ok(Some(Err(error))) => Some((Err(std::io::Error::other(error.without_url())), None)),
            Err(_) => {
                tracing::warn!("upstream answer stalled mid-way");
                Some((Err(std::io::ErrorKind::TimedOut.into()), None))
            }
        }
    })
}
