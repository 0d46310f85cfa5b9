//! The x402 facilitator endpoints for the `receipt` scheme, so that another resource
//! server can delegate to this verifier: `POST /verify`, `POST /settle`, `GET /supported`.
//!
//! A delegating server issues its own references, so a payment is checked against the
//! `paymentRequirements` it sends (not against this verifier's challenge key): the
//! receipts program must be ours, and a sponsored payment must name our fee payer.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde_json::{json, Map, Value};
use solana_signer::Signer;
use x402_protocol::scheme::{decode_transaction, ReceiptOffer, ReceiptPayload, SCHEME};
use x402_protocol::wire::facilitator::{
    FacilitatorRequest, SettleResponse, SupportedKind, SupportedResponse, VerifyResponse,
};
use x402_protocol::wire::{v1, v2};
use x402_protocol::{Receipt, Requirement};

use crate::gate::{Gate, Refusal};
use crate::unix_now;

/// A payment read from a facilitator request.
struct Delegated {
    requirement: Requirement,
    payload: ReceiptPayload,
}

/// Why a facilitator request was not read: a reason code, or a body that is not JSON.
enum Unread {
    Reason(&'static str),
    Malformed,
}

fn read(gate: &Gate, body: &[u8]) -> Result<Delegated, Unread> {
    let request: FacilitatorRequest =
        serde_json::from_slice(body).map_err(|_| Unread::Malformed)?;
    let s = gate.settings();
    let version = request
        .payment_payload
        .get("x402Version")
        .and_then(Value::as_u64);
    let (offer, payload) = match version {
        Some(1) => {
            let payment: v1::PaymentPayload = serde_json::from_value(request.payment_payload)
                .map_err(|_| Unread::Reason("invalid_payload"))?;
            let required: v1::PaymentRequirements =
                serde_json::from_value(request.payment_requirements)
                    .map_err(|_| Unread::Reason("invalid_payment_requirements"))?;
            if payment.scheme != required.scheme || payment.network != required.network {
                return Err(Unread::Reason("invalid_payload"));
            }
            (ReceiptOffer::from_v1(&required), payment.payload)
        }
        Some(2) => {
            let payment: v2::PaymentPayload = serde_json::from_value(request.payment_payload)
                .map_err(|_| Unread::Reason("invalid_payload"))?;
            let required: v2::PaymentRequirements =
                serde_json::from_value(request.payment_requirements)
                    .map_err(|_| Unread::Reason("invalid_payment_requirements"))?;
            if payment.accepted != required {
                return Err(Unread::Reason("invalid_payload"));
            }
            let resource = payment.resource.clone().unwrap_or(v2::ResourceInfo {
                url: String::new(),
                description: None,
                mime_type: None,
            });
            (ReceiptOffer::from_v2(&required, &resource), payment.payload)
        }
        _ => return Err(Unread::Reason("invalid_x402_version")),
    };
    let offer = offer.map_err(|e| match e {
        x402_protocol::scheme::SchemeError::OtherScheme => Unread::Reason("unsupported_scheme"),
        _ => Unread::Reason("invalid_payment_requirements"),
    })?;
    if !s.network.is_named(&offer.network) {
        return Err(Unread::Reason("invalid_network"));
    }
    if offer.requirement.program != s.program {
        return Err(Unread::Reason("invalid_payment_requirements"));
    }
    let payload = serde_json::from_value(payload).map_err(|_| Unread::Reason("invalid_payload"))?;
    Ok(Delegated {
        requirement: offer.requirement,
        payload,
    })
}

fn unread(error: Unread, respond: impl Fn(&'static str) -> Response) -> Response {
    match error {
        Unread::Malformed => {
            (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_payload", "message": "the body is not a facilitator request"})))
                .into_response()
        }
        Unread::Reason(reason) => respond(reason),
    }
}

/// A refusal's reason code; none when the ledger did not answer.
fn reason_of(refusal: Refusal) -> Option<String> {
    match refusal {
        Refusal::Challenge(reason) => Some(reason.unwrap_or_else(|| "payment_required".into())),
        Refusal::Pending { reason, .. } => Some(reason.to_string()),
        Refusal::InvalidPayload(_) => Some("invalid_payload".into()),
        Refusal::Unavailable => None,
    }
}

/// The ledger did not answer: retry, as with the gate.
fn unavailable() -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "ledger_unavailable"})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(2));
    response
}

/// Checks a payment without settling it: a sponsored transaction is validated strictly;
/// a self-submitted payment must have its receipt.
pub async fn verify(State(gate): State<Gate>, body: Bytes) -> Response {
    let invalid = |reason: &str| {
        Json(VerifyResponse {
            is_valid: false,
            invalid_reason: Some(reason.into()),
            payer: None,
        })
        .into_response()
    };
    let delegated = match read(&gate, &body) {
        Ok(delegated) => delegated,
        Err(error) => return unread(error, invalid),
    };
    let outcome = match delegated.payload {
        ReceiptPayload::Sponsored { transaction } => {
            if unix_now() > delegated.requirement.expires_at {
                return invalid("expired_reference");
            }
            let Ok(tx) = decode_transaction(&transaction) else {
                return invalid("invalid_payload");
            };
            gate.check_sponsored(&tx, &delegated.requirement)
        }
        ReceiptPayload::SelfSubmitted { .. } => {
            match gate.read_receipt(&delegated.requirement).await {
                Ok(Some(receipt)) => Ok(receipt.payer),
                Ok(None) => Err(Refusal::Challenge(Some("receipt_not_found".into()))),
                Err(refusal) => Err(refusal),
            }
        }
    };
    match outcome {
        Ok(payer) => Json(VerifyResponse {
            is_valid: true,
            invalid_reason: None,
            payer: Some(payer.to_string()),
        })
        .into_response(),
        Err(refusal) => reason_of(refusal)
            .map(|reason| invalid(&reason))
            .unwrap_or_else(unavailable),
    }
}

/// Settles a payment: a sponsored one is co-signed and submitted (again safely: a
/// payment already settled answers with its receipt); a self-submitted one is checked.
pub async fn settle(State(gate): State<Gate>, body: Bytes) -> Response {
    let network = gate.settings().network.caip2().to_string();
    let failed = |reason: &str| {
        Json(SettleResponse {
            success: false,
            error_reason: Some(reason.into()),
            payer: None,
            transaction: String::new(),
            network: network.clone(),
        })
        .into_response()
    };
    let delegated = match read(&gate, &body) {
        Ok(delegated) => delegated,
        Err(error) => return unread(error, failed),
    };
    let requirement = &delegated.requirement;
    let outcome: Result<(Receipt, Option<String>), Refusal> = match delegated.payload {
        ReceiptPayload::Sponsored { transaction } => match decode_transaction(&transaction) {
            Err(_) => return failed("invalid_payload"),
            // After the expiry nothing new is submitted: only a payment that landed counts.
            Ok(_) if unix_now() > requirement.expires_at => {
                match gate.read_receipt(requirement).await {
                    Ok(Some(receipt)) => Ok((receipt, None)),
                    Ok(None) => Err(Refusal::Challenge(Some("expired_reference".into()))),
                    Err(refusal) => Err(refusal),
                }
            }
            Ok(tx) => match gate.check_sponsored(&tx, requirement) {
                Ok(_) => gate.submit_sponsored(tx, requirement).await,
                Err(refusal) => Err(refusal),
            },
        },
        ReceiptPayload::SelfSubmitted { signature, .. } => {
            match gate.read_receipt(requirement).await {
                Ok(Some(receipt)) => Ok((receipt, signature)),
                Ok(None) => Err(Refusal::Challenge(Some("receipt_not_found".into()))),
                Err(refusal) => Err(refusal),
            }
        }
    };
    match outcome {
        Ok((receipt, transaction)) => Json(SettleResponse {
            success: true,
            error_reason: None,
            payer: Some(receipt.payer.to_string()),
            transaction: transaction.unwrap_or_default(),
            network,
        })
        .into_response(),
        Err(refusal) => reason_of(refusal)
            .map(|reason| failed(&reason))
            .unwrap_or_else(unavailable),
    }
}

/// The kinds this facilitator settles: the `receipt` scheme on its network, in x402 v1
/// and v2, and the fee payer that signs sponsored payments.
pub async fn supported(State(gate): State<Gate>) -> Json<SupportedResponse> {
    let s = gate.settings();
    let mut extra = Map::new();
    extra.insert("programId".into(), s.program.to_string().into());
    if let Some(fee_payer) = &s.fee_payer {
        extra.insert("feePayer".into(), fee_payer.pubkey().to_string().into());
    }
    let kind = |version: u32, network: &str| SupportedKind {
        x402_version: version,
        scheme: SCHEME.into(),
        network: network.into(),
        extra: Some(extra.clone()),
    };
    let mut signers = Map::new();
    if let Some(fee_payer) = &s.fee_payer {
        signers.insert("solana:*".into(), json!([fee_payer.pubkey().to_string()]));
    }
    Json(SupportedResponse {
        kinds: vec![kind(1, s.network.v1_name()), kind(2, s.network.caip2())],
        extensions: Vec::new(),
        signers,
    })
}
