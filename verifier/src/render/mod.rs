//! What the verifier writes on the wire: a refusal's answer (a 402 with its challenge,
//! or a plain JSON error with its status), and the settlement header of a served
//! request. The challenge is written three ways: the x402 v1 JSON body ([`v1`]), the v2
//! `PAYMENT-REQUIRED` header ([`v2`]), and the paywall page for browsers ([`page`]).

mod page;
mod v1;
mod v2;

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value};
use x402_protocol::wire::{encode_header, Offer, Settlement, Version};
use x402_protocol::Reference;

use crate::context::Context;
use crate::error::{Reason, Refusal, RETRY_AFTER_SECONDS};
use crate::model::{Price, Scheme, SettledPayment, Target};

/// The answer to `refusal` of a request for `price` at `target`: a refused payment gets
/// a 402 offering the reference it must keep paying (when its payment may still land)
/// or a fresh one; anything else its plain answer.
pub fn refused(cx: &Context, refusal: Refusal, price: &Price, target: &Target) -> Response {
    if !refusal.wants_challenge() {
        return refusal.into_response();
    }
    let reference = refusal
        .pending_reference()
        .unwrap_or_else(|| cx.issue(price, target));
    let reason = Some(refusal.code()).filter(|_| refusal.reason() != Reason::PaymentRequired);
    challenge(
        cx,
        price,
        target,
        reference,
        reason,
        refusal.corrective_fields(),
    )
}

/// A 402 offering `reference` for `price` at `target`, refused for `reason`.
fn challenge(
    cx: &Context,
    price: &Price,
    target: &Target,
    reference: Reference,
    reason: Option<&str>,
    correction: Option<&Map<String, Value>>,
) -> Response {
    cx.metrics().challenge_issued();
    let offers: Vec<Offer> = price
        .schemes
        .iter()
        .flat_map(|&scheme| {
            let mut offers = scheme.offers(cx, price, target, reference);
            if let (Scheme::Batch, Some(correction)) = (scheme, correction) {
                // The offer of the channel's mode: a correction names the server mode's.
                let mode = |extra: &Map<String, Value>| extra.get("voucherSigner").cloned();
                for offer in offers
                    .iter_mut()
                    .filter(|o| mode(&o.extra) == mode(correction))
                {
                    offer.extra.extend(correction.clone());
                }
            }
            offers
        })
        .collect();
    let required = v2::payment_required(price, target, &offers, reason);
    let header = header_value(encode_header(&required));
    if target.wants_page {
        let html = page::page(cx, price, target, reference, reason, &required);
        return crate::paywall::respond(html, header);
    }
    let body = v1::payment_required(cx, price, target, reference, &offers, reason);
    let mut response = (StatusCode::PAYMENT_REQUIRED, Json(body)).into_response();
    response
        .headers_mut()
        .insert(x402_protocol::wire::v2::PAYMENT_REQUIRED, header);
    response
}

/// The answer to a `batch-settlement` refund: the channel closed, what went back to the
/// buyer, and the settlement header.
pub fn closed(cx: &Context, settled: &SettledPayment, version: Version) -> Response {
    let refunded = settled
        .batch
        .as_ref()
        .and_then(|b| b.moved)
        .unwrap_or_default();
    let body = serde_json::json!({
        "closed": true,
        "refunded": refunded.to_string(),
        "transaction": settled.transaction,
    });
    let mut response = (StatusCode::OK, Json(body)).into_response();
    let (name, value) = settlement_header(cx, settled, version);
    response.headers_mut().insert(name, value);
    response
}

/// The settlement header of a served request, in the version the payment came in.
pub fn settlement_header(
    cx: &Context,
    settled: &SettledPayment,
    version: Version,
) -> (&'static str, HeaderValue) {
    let mut extra = Map::new();
    extra.insert("reference".into(), settled.reference.to_string().into());
    extra.insert("scheme".into(), settled.scheme.name().into());
    if let Some(receipt) = settled.receipt {
        extra.insert("receipt".into(), receipt.to_string().into());
    }
    if let Some(metered) = &settled.metered {
        extra.insert("channel".into(), metered.address.to_string().into());
        extra.insert("openTransaction".into(), metered.opened_by.clone().into());
        extra.insert("maxAmount".into(), metered.max_amount.to_string().into());
    }
    let mut amount = Some(settled.amount.to_string());
    if let Some(batch) = &settled.batch {
        // The scheme's own fields: what this request was charged and what the channel
        // stands at; `amount` is what moved on chain (none for a voucher).
        extra.insert(
            "commitmentId".into(),
            format!("{}:{}", batch.channel, batch.to).into(),
        );
        extra.insert(
            "chargedAmount".into(),
            (batch.to - batch.from).to_string().into(),
        );
        extra.insert(
            "channelState".into(),
            serde_json::json!({
                "channelId": batch.channel.to_string(),
                "balance": batch.deposit.to_string(),
                "totalClaimed": batch.claimed.to_string(),
                "withdrawRequestedAt": 0,
                "chargedCumulativeAmount": batch.to.to_string(),
            }),
        );
        if let Some(voucher) = &batch.voucher {
            // The server mode's receipt: the operator's voucher for the new total.
            extra.insert(
                "voucher".into(),
                serde_json::to_value(voucher).expect("serializable"),
            );
        }
        amount = Some(batch.moved.map(|m| m.to_string()).unwrap_or_default());
    }
    let network = match version {
        Version::V1 => cx.settings().network.v1_name().to_string(),
        Version::V2 => settled.network.clone(),
    };
    let settlement = Settlement {
        success: true,
        error_reason: None,
        payer: settled.payer.to_string(),
        transaction: settled.transaction.clone().unwrap_or_default(),
        network,
        amount,
        extra,
    };
    let (name, value) = settlement.header(version);
    (name, header_value(value))
}

fn header_value(base64: String) -> HeaderValue {
    HeaderValue::from_str(&base64).expect("base64 is a valid header value")
}

/// A refusal without a challenge: its status, `{"error", "message", ...}`, and the
/// headers its status asks for. No answer shows an internal error's text.
impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = status(self.reason());
        let mut body = Map::new();
        body.insert("error".into(), self.code().into());
        let (message, detail) = self.into_text();
        if let Some(message) = message {
            body.insert("message".into(), message.into());
        }
        body.extend(detail);
        let mut response = (status, Json(Value::Object(body))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(RETRY_AFTER_SECONDS),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The status of an answer without a challenge (a challenge is always a 402).
fn status(reason: Reason) -> StatusCode {
    use Reason::*;
    match reason {
        InvalidPayload
        | AmbiguousPath
        | InvalidX402Version
        | InvalidPaymentRequirements
        | InvalidReference => StatusCode::BAD_REQUEST,
        ReceiptNotFound => StatusCode::NOT_FOUND,
        ReceiptWrongOwner
        | ReceiptNotAReceipt
        | ReceiptWrongReference
        | ReceiptWrongPayee
        | ReceiptWrongMint
        | ReceiptWrongExpiry
        | ReceiptAmountBelowPrice => StatusCode::CONFLICT,
        LedgerUnavailable | SponsorshipBusy => StatusCode::SERVICE_UNAVAILABLE,
        Unauthorized => StatusCode::UNAUTHORIZED,
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        UpstreamUnreachable | UpstreamResponseTooLarge => StatusCode::BAD_GATEWAY,
        _ => StatusCode::PAYMENT_REQUIRED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x402_protocol::LedgerError;

    #[tokio::test]
    async fn a_503_always_says_when_to_retry_and_hides_the_cause() {
        let response = Refusal::from(LedgerError::Unavailable(
            "https://rpc.example.com/?api-key=secret timed out".into(),
        ))
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "2");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "ledger_unavailable");
        assert!(!body.to_string().contains("secret"));
    }
}
