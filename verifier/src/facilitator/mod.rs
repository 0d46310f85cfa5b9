//! The x402 facilitator endpoints, so that another resource
//! server can delegate to this verifier: `POST /verify`, `POST /settle`, `GET /supported`.
//! Off unless configured; callers present an API key and stay within the sponsorship
//! policy and budget ([`access`]).
//!
//! A delegating server issues its own references, so a payment is checked against the
//! `paymentRequirements` it sends (not against this verifier's challenge key): the
//! receipts program must be ours, and a sponsored or `exact` payment must name our fee
//! payer. The checking and settling are the schemes' own ([`crate::scheme`]), as for the
//! gate. Each settlement is recorded under its key (the reference, or an `exact`
//! payment's message hash), so a payment settles once and verifies no other request.

pub mod access;
mod batch;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde_json::{json, Map, Value};
use solana_signer::Signer;
use x402_protocol::wire::facilitator::{
    FacilitatorRequest, SettleResponse, SupportedKind, SupportedResponse, VerifyResponse,
};
use x402_protocol::wire::{Offer, PaymentMessage, Version};
use x402_protocol::Reference;

use self::access::{Caller, FacilitatorAccess};
use crate::context::store_unavailable;
use crate::error::{Reason, Refusal};
use crate::gate::Gate;
use crate::model::Scheme;
use crate::scheme::{Demand, Payment, Verified};
use crate::store::Grant;
use crate::unix_now;

/// A payment delegated to this facilitator, read and checked against its requirements.
struct Delegated {
    demand: Demand,
    payment: Payment,
    /// What its settlement is recorded under.
    key: Reference,
}

/// Reads the body; one that is not a facilitator request at all is a 400.
fn parse(body: &[u8]) -> Result<FacilitatorRequest, Refusal> {
    serde_json::from_slice(body).map_err(|_| {
        Refusal::new(Reason::InvalidPayload).message("the body is not a facilitator request")
    })
}

fn read(gate: &Gate, request: FacilitatorRequest) -> Result<Delegated, Refusal> {
    let (scheme, required, payload) = offered(gate, request)?;
    let demand = scheme.requested(gate, &required)?;
    let payment = scheme.read(payload)?;
    Ok(Delegated {
        key: payment.key(&demand)?,
        demand,
        payment,
    })
}

/// The requirements of a request, in a scheme and network this verifier settles, which
/// its payment pays, and the payment's payload.
fn offered(gate: &Gate, request: FacilitatorRequest) -> Result<(Scheme, Offer, Value), Refusal> {
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
    // The payment must be in the offer's scheme and network; what it pays is checked in
    // its transaction against the requirements below. The offer's hints (a blockhash, a
    // last valid height) are the seller's to rebuild for each request, as a stock seller
    // with an RPC does: comparing them would refuse a payment a slot later.
    let pays_it =
        (&payment.offer.scheme, &payment.offer.network) == (&required.scheme, &required.network);
    if !pays_it {
        return Err(Refusal::new(Reason::InvalidPayload));
    }
    let scheme = Scheme::named(&required.scheme)
        .filter(|scheme| gate.settings().schemes.contains(scheme))
        .ok_or_else(|| Refusal::new(Reason::UnsupportedScheme))?;
    if !gate.settings().network.is_named(&required.network) {
        return Err(Refusal::new(Reason::InvalidNetwork));
    }
    Ok((scheme, required, payment.payload))
}

/// Reads a delegated payment and checks its requirements against the policy.
fn delegated(
    gate: &Gate,
    access: &FacilitatorAccess,
    request: FacilitatorRequest,
) -> Result<Delegated, Refusal> {
    let delegated = read(gate, request)?;
    let terms = delegated.payment.policy_terms(&delegated.demand)?;
    access.allows(terms, unix_now())?;
    Ok(delegated)
}

/// The settlement recorded under `key`, if the payment was settled here.
async fn settled_before(gate: &Gate, key: &Reference) -> Result<Option<Grant>, Refusal> {
    gate.store()
        .grant(&key.to_string())
        .await
        .map_err(store_unavailable)
}

/// Verifies `payment` in the challenge's window, as the gate does.
async fn verify_in_window(
    gate: &Gate,
    Delegated {
        demand, payment, ..
    }: Delegated,
) -> Result<Verified, Refusal> {
    let window = demand.window(unix_now());
    payment.verify(gate, &demand, window).await
}

/// A refusal as a facilitator answer: the ledger's unavailability and a busy submission
/// are 503s to retry; anything else is the payment's fault, answered in the protocol's
/// own shape.
fn answer(gate: &Gate, refusal: Refusal, negative: impl FnOnce(String) -> Response) -> Response {
    // Retry later, with the same payment: a 503 (the same payment being submitted by
    // another call is busy, not refused).
    if matches!(
        refusal.reason(),
        Reason::LedgerUnavailable | Reason::SponsorshipBusy
    ) {
        return refusal.into_response();
    }
    gate.metrics().facilitator_refused(refusal.reason());
    negative(refusal.code().to_string())
}

/// A `/verify` answer: not valid, for `reason`.
fn not_valid(reason: String) -> Response {
    Json(VerifyResponse {
        is_valid: false,
        invalid_reason: Some(reason),
        payer: None,
        extra: None,
    })
    .into_response()
}

/// A `/settle` answer: not settled on `network`, for `reason`.
fn not_settled(network: String, reason: String) -> Response {
    Json(SettleResponse {
        success: false,
        error_reason: Some(reason),
        payer: None,
        transaction: String::new(),
        network,
        amount: None,
        extra: None,
    })
    .into_response()
}

/// Checks a payment without settling it: a sponsored transaction is validated strictly;
/// a self-submitted payment must have its receipt.
pub async fn verify(
    State((gate, access)): State<(Gate, FacilitatorAccess)>,
    Extension(_): Extension<Caller>,
    body: Bytes,
) -> Response {
    let request = match parse(&body) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    if batch::is_batch(&request) {
        return batch::verify(&gate, &access, request).await;
    }
    let verified = async {
        let delegated = delegated(&gate, &access, request)?;
        // One payment pays for one request: settled once, it verifies no other.
        if settled_before(&gate, &delegated.key).await?.is_some() {
            return Err(Refusal::new(Reason::DuplicateSettlement));
        }
        verify_in_window(&gate, delegated).await
    };
    match verified.await {
        Ok(verified) => Json(VerifyResponse {
            is_valid: true,
            invalid_reason: None,
            payer: Some(verified.payer.to_string()),
            extra: None,
        })
        .into_response(),
        Err(refusal) => answer(&gate, refusal, not_valid),
    }
}

/// Settles a payment: a sponsored or `exact` one is co-signed and submitted; a
/// self-submitted one is checked. A payment settled before is `duplicate_settlement`.
pub async fn settle(
    State((gate, access)): State<(Gate, FacilitatorAccess)>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let request = match parse(&body) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    if batch::is_batch(&request) {
        return batch::settle(&gate, &access, caller, request).await;
    }
    let network = gate.settings().network.caip2().to_string();
    let settled = async {
        let delegated = delegated(&gate, &access, request)?;
        // Settled once, it settles nothing more (x402's duplicate-settlement rule): a
        // caller cannot tell its own retry from a buyer replaying the payment, and a
        // second success would serve a second request. Nothing is submitted again.
        if settled_before(&gate, &delegated.key).await?.is_some() {
            return Err(Refusal::new(Reason::DuplicateSettlement));
        }
        let verified = verify_in_window(&gate, delegated).await?;
        // What the fee payer may spend on it is charged to the caller first.
        access.charge(caller, verified.sponsor_cost(&gate))?;
        // A delegating server binds the payment to its request itself: the payer's proof
        // is the gate's rule, for requests it serves.
        let (settled, _) = verified.settle(&gate).await?;
        record(&gate, &settled.grant("SETTLE", "/settle")).await?;
        Ok(settled)
    };
    match settled.await {
        Ok(settled) => Json(SettleResponse {
            success: true,
            error_reason: None,
            payer: Some(settled.payer.to_string()),
            // What a metered claim charged.
            amount: settled
                .metered
                .is_some()
                .then(|| settled.amount.to_string()),
            transaction: settled.transaction.unwrap_or_default(),
            network,
            extra: None,
        })
        .into_response(),
        Err(refusal) => answer(&gate, refusal, |reason| not_settled(network, reason)),
    }
}

/// Records a settlement as a grant, so that its payment verifies no other request. A
/// concurrent /settle of the same payment that recorded it first made the settlement:
/// this one is `duplicate_settlement`, or two callers would each serve a request.
/// Unrecorded, it is a 503: the retried /settle finds the payment landed and records it
/// then, and until then nothing verifies it as new.
async fn record(gate: &Gate, grant: &Grant) -> Result<(), Refusal> {
    match gate.store().try_grant(grant, None).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Refusal::new(Reason::DuplicateSettlement)),
        Err(error) => Err(store_unavailable(error)),
    }
}

/// The kinds this facilitator settles: each scheme on its network, in x402 v1 and v2
/// (the channel schemes in v2 only), and the fee payer that signs sponsored payments.
pub async fn supported(
    State((gate, _)): State<(Gate, FacilitatorAccess)>,
) -> Json<SupportedResponse> {
    let s = gate.settings();
    let kinds = s
        .schemes
        .iter()
        .flat_map(|&scheme| {
            let extra = scheme.supported(&gate);
            // The channel schemes exist in x402 v2 only.
            let versions = match scheme.on_channels() {
                true => vec![(2, s.network.caip2())],
                false => vec![(1, s.network.v1_name()), (2, s.network.caip2())],
            };
            versions
                .into_iter()
                .map(move |(version, network)| SupportedKind {
                    x402_version: version,
                    scheme: scheme.name().into(),
                    network: network.into(),
                    extra: Some(extra.clone()),
                })
        })
        .collect();
    let mut signers = Map::new();
    if let Some(fee_payer) = &s.fee_payer {
        signers.insert("solana:*".into(), json!([fee_payer.pubkey().to_string()]));
    }
    Json(SupportedResponse {
        kinds,
        extensions: Vec::new(),
        signers,
    })
}
