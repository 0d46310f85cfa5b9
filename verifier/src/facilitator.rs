//! The x402 facilitator endpoints for the `receipt` scheme, so that another resource
//! server can delegate to this verifier: `POST /verify`, `POST /settle`, `GET /supported`.
//!
//! A delegating server issues its own references, so a payment is checked against the
//! `paymentRequirements` it sends (not against this verifier's challenge key): the
//! receipts program must be ours, and a sponsored payment must name our fee payer. The
//! checking and settling are the schemes' own ([`crate::scheme`]), as for the gate.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map};
use solana_signer::Signer;
use x402_protocol::scheme::{ReceiptOffer, SchemeError, SCHEME};
use x402_protocol::wire::facilitator::{
    FacilitatorRequest, SettleResponse, SupportedKind, SupportedResponse, VerifyResponse,
};
use x402_protocol::wire::{Offer, PaymentMessage, Version};
use x402_protocol::Requirement;

use crate::error::{Reason, Refusal};
use crate::gate::Gate;
use crate::scheme::{Payment, Verified};
use crate::unix_now;

/// A payment delegated to this facilitator, read and checked against its requirements.
struct Delegated {
    requirement: Requirement,
    payment: Payment,
}

/// Reads the body; one that is not a facilitator request at all is a 400.
fn parse(body: &[u8]) -> Result<FacilitatorRequest, Refusal> {
    serde_json::from_slice(body).map_err(|_| {
        Refusal::new(Reason::InvalidPayload).message("the body is not a facilitator request")
    })
}

fn read(gate: &Gate, request: FacilitatorRequest) -> Result<Delegated, Refusal> {
    let version = Version::of(&request.payment_payload)
        .ok_or_else(|| Refusal::new(Reason::InvalidX402Version))?;
    let payment = PaymentMessage::from_json(request.payment_payload)
        .map_err(|_| Refusal::new(Reason::InvalidPayload))?;
    let requirements = |_| Refusal::new(Reason::InvalidPaymentRequirements);
    let required = match version {
        Version::V1 => Offer::from_v1(
            &serde_json::from_value(request.payment_requirements).map_err(requirements)?,
        ),
        Version::V2 => Offer::from_v2(
            &serde_json::from_value(request.payment_requirements).map_err(requirements)?,
            &payment.offer.resource,
        ),
    };
    // The payment must pay the offer it is sent with (v1 names only scheme and network).
    let pays_it = match version {
        Version::V1 => {
            (&payment.offer.scheme, &payment.offer.network) == (&required.scheme, &required.network)
        }
        Version::V2 => payment.offer == required,
    };
    if !pays_it {
        return Err(Refusal::new(Reason::InvalidPayload));
    }
    let offer = ReceiptOffer::from_offer(&required).map_err(|e| match e {
        SchemeError::OtherScheme => Refusal::new(Reason::UnsupportedScheme),
        SchemeError::Malformed(_) => Refusal::new(Reason::InvalidPaymentRequirements),
    })?;
    let s = gate.settings();
    if !s.network.is_named(&offer.network) {
        return Err(Refusal::new(Reason::InvalidNetwork));
    }
    if offer.requirement.program != s.program {
        return Err(Refusal::new(Reason::InvalidPaymentRequirements));
    }
    Ok(Delegated {
        requirement: offer.requirement,
        payment: Payment::read(&required.scheme, payment.payload)?,
    })
}

/// Reads and verifies a delegated payment: after its expiry, only a payment that landed
/// in time counts.
async fn verified(gate: &Gate, request: FacilitatorRequest) -> Result<Verified, Refusal> {
    let Delegated {
        requirement,
        payment,
    } = read(gate, request)?;
    let open = unix_now() <= requirement.expires_at;
    payment.verify(gate, &requirement, open).await
}

/// A refusal as a facilitator answer: the ledger's unavailability is a 503 to retry;
/// anything else is the payment's fault, answered in the protocol's own shape.
fn answer(gate: &Gate, refusal: Refusal, negative: impl FnOnce(String) -> Response) -> Response {
    if refusal.reason() == Reason::LedgerUnavailable {
        return refusal.into_response();
    }
    gate.metrics().refused(refusal.reason());
    negative(refusal.code().to_string())
}

/// Checks a payment without settling it: a sponsored transaction is validated strictly;
/// a self-submitted payment must have its receipt.
pub async fn verify(State(gate): State<Gate>, body: Bytes) -> Response {
    let request = match parse(&body) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    match verified(&gate, request).await {
        Ok(verified) => Json(VerifyResponse {
            is_valid: true,
            invalid_reason: None,
            payer: Some(verified.payer.to_string()),
        })
        .into_response(),
        Err(refusal) => answer(&gate, refusal, |reason| {
            Json(VerifyResponse {
                is_valid: false,
                invalid_reason: Some(reason),
                payer: None,
            })
            .into_response()
        }),
    }
}

/// Settles a payment: a sponsored one is co-signed and submitted (again safely: a
/// payment already settled answers with its receipt); a self-submitted one is checked.
pub async fn settle(State(gate): State<Gate>, body: Bytes) -> Response {
    let request = match parse(&body) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let network = gate.settings().network.caip2().to_string();
    let settled = match verified(&gate, request).await {
        Ok(verified) => verified.settle(&gate).await,
        Err(refusal) => Err(refusal),
    };
    match settled {
        Ok(settled) => Json(SettleResponse {
            success: true,
            error_reason: None,
            payer: Some(settled.payer.to_string()),
            transaction: settled.transaction.unwrap_or_default(),
            network,
        })
        .into_response(),
        Err(refusal) => answer(&gate, refusal, |reason| {
            Json(SettleResponse {
                success: false,
                error_reason: Some(reason),
                payer: None,
                transaction: String::new(),
                network,
            })
            .into_response()
        }),
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
