//! The gate as a tower layer, for axum apps:
//! `Router::new().route("/api/generate", get(h)).layer(gate.price("0.01"))`.
//! The handler reads the [`SettledPayment`] from the request's extensions. On a metered
//! route (`.schemes(&[Scheme::Upto])`) the price is a ceiling, and the handler says what
//! its answer cost with a [`Charge`] in its response's extensions (or, behind the proxy,
//! the upstream in a header: [`PaymentLayer::charge_header`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::Request;
use tower::{Layer, Service};

use crate::gate::decision::Admission;
use crate::gate::metered::Answer;
use crate::gate::Gate;
use crate::model::{Charge, PaymentCheck, Price, Scheme, Target, DEFAULT_MIME_TYPE, DEFAULT_TTL};
use crate::payment::PAYMENT_HEADERS;
use crate::render;

/// Charges `price` for every request through the wrapped service.
#[derive(Clone)]
pub struct PaymentLayer {
    gate: Gate,
    price: Arc<Price>,
    check: Option<Arc<dyn PaymentCheck>>,
    /// The response header that says what a metered answer cost, stripped from it.
    charge_header: Option<http::HeaderName>,
}

impl Gate {
    /// A layer charging `price` (a decimal string in the gate's token, such as "0.01").
    /// Panics on a malformed price: for prices from configuration use [`Gate::try_price`].
    pub fn price(&self, price: &str) -> PaymentLayer {
        self.try_price(price)
            .unwrap_or_else(|e| panic!("invalid price {price:?}: {e}"))
    }

    /// A layer charging `price`, or why the price is not valid (malformed or zero).
    pub fn try_price(
        &self,
        price: &str,
    ) -> Result<PaymentLayer, x402_protocol::amount::AmountError> {
        let amount = self.parse_price(price)?;
        if amount == 0 {
            return Err(x402_protocol::amount::AmountError::Malformed);
        }
        Ok(PaymentLayer {
            gate: self.clone(),
            price: Arc::new(Price {
                amount,
                description: String::new(),
                mime_type: DEFAULT_MIME_TYPE.into(),
                ttl: DEFAULT_TTL,
                // A metered scheme only where it is named: its price is a ceiling.
                schemes: self
                    .settings()
                    .schemes
                    .iter()
                    .filter(|scheme| !scheme.on_channels())
                    .copied()
                    .collect(),
            }),
            check: None,
            charge_header: None,
        })
    }
}

impl PaymentLayer {
    /// Offers only `schemes` (of those the gate settles) for this price.
    pub fn schemes(mut self, schemes: &[Scheme]) -> Self {
        let enabled = &self.gate.settings().schemes;
        Arc::make_mut(&mut self.price).schemes = schemes
            .iter()
            .filter(|scheme| enabled.contains(scheme))
            .copied()
            .collect();
        self
    }

    /// What the challenge says is being bought.
    pub fn description(mut self, description: &str) -> Self {
        Arc::make_mut(&mut self.price).description = description.into();
        self
    }

    pub fn mime_type(mut self, mime_type: &str) -> Self {
        Arc::make_mut(&mut self.price).mime_type = mime_type.into();
        self
    }

    /// How long a challenge may be paid.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        Arc::make_mut(&mut self.price).ttl = ttl;
        self
    }

    /// The merchant's own check, which can refuse a payment.
    pub fn check(mut self, check: impl PaymentCheck + 'static) -> Self {
        self.check = Some(Arc::new(check));
        self
    }

    /// Where the answer of a metered payment says what it cost when its handler puts no
    /// [`Charge`] in it: this response header, a decimal amount of the gate's token
    /// ("0.0042"), taken off the answer before the buyer sees it.
    pub fn charge_header(mut self, name: http::HeaderName) -> Self {
        self.charge_header = Some(name);
        self
    }

    pub fn price(&self) -> &Price {
        &self.price
    }
}

impl<S> Layer<S> for PaymentLayer {
    type Service = PaymentService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PaymentService {
            layer: self.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct PaymentService<S> {
    layer: PaymentLayer,
    inner: S,
}

impl<S> Service<Request<Body>> for PaymentService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this request; the fresh one waits.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let PaymentLayer {
            gate,
            price,
            check,
            charge_header,
        } = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let target = target_of(&gate, &parts);
            let Admission {
                settled,
                version,
                serve,
            } = match gate
                .admit(&price, &target, &parts.headers, check.as_deref())
                .await
            {
                Ok(admitted) => admitted,
                Err(refusal) => {
                    return Ok(render::refused(&gate, refusal, &price, &target));
                }
            };
            if !serve {
                // A refund closed the channel: the settlement is the whole answer.
                return Ok(render::closed(&gate, &settled, version));
            }
            for header in PAYMENT_HEADERS {
                parts.headers.remove(header);
            }
            parts.extensions.insert(settled.clone());
            // Once forwarded, the work is done whether or not the client stays for the
            // answer: a client that goes away keeps its grant spent.
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            if settled.is_metered() {
                let answer = match response.status().is_server_error() {
                    true => Answer::Failed,
                    false => Answer::Served(charge(&gate, &mut response, charge_header.as_ref())),
                };
                return Ok(match gate.settle_metered(&settled, answer).await {
                    Ok(_) if answer == Answer::Failed => response,
                    Ok(paid) => {
                        let (name, value) = render::settlement_header(&gate, &paid, version);
                        response.headers_mut().insert(name, value);
                        response
                    }
                    // Not settled: the answer is withheld, and costs nothing.
                    Err(refusal) => refusal.into_response(),
                });
            }
            if response.status().is_server_error() {
                // The upstream failed before its answer began (refused, 5xx, timed out
                // before its head: the proxy's 502 and 504 too): nothing was delivered,
                // so the payment may be presented again.
                tracing::warn!(reference = %settled.reference, status = %response.status(), "upstream failed: grant released");
                gate.release(&settled).await;
                return Ok(response);
            }
            // From here the answer is the buyer's, even if it breaks off midway: a partial
            // answer was received, and giving the payment back would give work away.
            let (name, value) = render::settlement_header(&gate, &settled, version);
            response.headers_mut().insert(name, value);
            Ok(response)
        })
    }
}

/// What a metered answer says it cost, in base units: its [`Charge`], else its
/// `header` (removed from it); `None` when it says nothing readable.
fn charge(gate: &Gate, response: &mut Response, header: Option<&http::HeaderName>) -> Option<u64> {
    let said = header.and_then(|name| response.headers_mut().remove(name));
    if let Some(Charge(amount)) = response.extensions().get::<Charge>() {
        return Some(*amount);
    }
    let said = said?;
    let amount = said
        .to_str()
        .ok()
        .and_then(|text| gate.parse_price(text.trim()).ok());
    if amount.is_none() {
        tracing::warn!(
            "a metered answer's charge header is not a decimal amount: charged the ceiling"
        );
    }
    amount
}

/// The method, path and absolute URL a request is for.
fn target_of(gate: &Gate, parts: &http::request::Parts) -> Target {
    let path = parts.uri.path().to_string();
    let base = match &gate.settings().public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let host = parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    Target {
        wants_page: parts.method == http::Method::GET && crate::paywall::wants_page(&parts.headers),
        method: parts.method.to_string(),
        resource: format!("{base}{path}{query}"),
        path,
    }
}
