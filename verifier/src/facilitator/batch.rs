//! `batch-settlement` at the facilitator endpoints: its operations are not one payment
//! for one request (a deposit, claims of many channels, closes), so they skip the
//! reference-keyed path of the other schemes and go to the scheme's own facilitator
//! ([`crate::scheme::batch::facilitate`]), under the same keys, policy and budget.

use axum::response::{IntoResponse, Response};
use axum::Json;
use x402_protocol::scheme::batch::BATCH_SETTLEMENT;
use x402_protocol::wire::facilitator::{FacilitatorRequest, SettleResponse, VerifyResponse};
use x402_protocol::wire::Offer;

use super::access::{Caller, FacilitatorAccess};
use super::{answer, not_settled, not_valid, offered, record, settled_before};
use crate::error::{Reason, Refusal};
use crate::gate::Gate;
use crate::scheme::batch::facilitate::{self, Facilitated, Operation};
use crate::store::Grant;
use crate::unix_now;

/// Whether a request is about `batch-settlement`, by its requirements.
pub(super) fn is_batch(request: &FacilitatorRequest) -> bool {
    request
        .payment_requirements
        .get("scheme")
        .and_then(|scheme| scheme.as_str())
        == Some(BATCH_SETTLEMENT)
}

/// Reads a request: the requirements (ours to sponsor, within the policy) and what the
/// payload asks.
fn read(
    gate: &Gate,
    access: &FacilitatorAccess,
    request: FacilitatorRequest,
) -> Result<(Offer, x402_protocol::scheme::batch::BatchTerms, Operation), Refusal> {
    let (_, required, payload) = offered(gate, request)?;
    let terms = facilitate::requested(gate, &required, |terms| access.allows(terms, unix_now()))?;
    Ok((required, terms, Operation::read(payload)?))
}

/// `/verify` of a buyer's payload: checked against the chain, nothing moved.
pub(super) async fn verify(
    gate: &Gate,
    access: &FacilitatorAccess,
    request: FacilitatorRequest,
) -> Response {
    let verified = async {
        let (_, terms, operation) = read(gate, access, request)?;
        let Operation::Buyer(payload) = operation else {
            return Err(Refusal::new(Reason::BatchPayloadType)
                .message("/verify takes a buyer's deposit, voucher or refund"));
        };
        facilitate::verify(gate, &terms, *payload).await
    };
    match verified.await {
        Ok(verified) => Json(VerifyResponse {
            is_valid: true,
            invalid_reason: None,
            payer: verified.payer.map(|p| p.to_string()),
            extra: Some(verified.extra),
        })
        .into_response(),
        Err(refusal) => answer(gate, refusal, not_valid),
    }
}

/// `/settle` of a deposit, a claim, a payout, a seal or a refund. A deposit or close
/// that was settled before is `duplicate_settlement`: nothing is sent again.
pub(super) async fn settle(
    gate: &Gate,
    access: &FacilitatorAccess,
    caller: Caller,
    request: FacilitatorRequest,
) -> Response {
    let network = gate.settings().network.caip2().to_string();
    let settled = async {
        let (required, terms, operation) = read(gate, access, request)?;
        let key = facilitate::record_key(&operation);
        if let Some(key) = &key {
            if settled_before(gate, key).await?.is_some() {
                return Err(Refusal::new(Reason::DuplicateSettlement));
            }
        }
        let identity = access.identity(caller);
        let charge = |lamports| access.charge(caller, lamports);
        let caller = facilitate::Caller {
            identity,
            charge: &charge,
        };
        let settled = facilitate::settle(
            gate,
            &terms,
            required.max_timeout_seconds,
            &caller,
            operation,
        )
        .await?;
        if let Some(key) = key {
            record(gate, &grant(&key, &terms, &settled)).await?;
        }
        Ok(settled)
    };
    match settled.await {
        Ok(settled) => Json(SettleResponse {
            success: true,
            error_reason: None,
            payer: settled.payer.map(|p| p.to_string()),
            transaction: settled.transaction,
            network,
            amount: Some(settled.amount.map(|a| a.to_string()).unwrap_or_default()),
            extra: Some(settled.extra).filter(|extra| !extra.is_empty()),
        })
        .into_response(),
        Err(refusal) => answer(gate, refusal, |reason| not_settled(network, reason)),
    }
}

/// The record of a deposit or close, so that it settles once.
fn grant(
    key: &x402_protocol::Reference,
    terms: &x402_protocol::scheme::batch::BatchTerms,
    settled: &Facilitated,
) -> Grant {
    Grant {
        reference: key.to_string(),
        method: "SETTLE".into(),
        path: "/settle".into(),
        payer: settled.payer.map(|p| p.to_string()).unwrap_or_default(),
        amount: settled.amount.unwrap_or_default(),
        mint: terms.mint.to_string(),
        scheme: BATCH_SETTLEMENT.into(),
        receipt: None,
        transaction: Some(settled.transaction.clone()).filter(|t| !t.is_empty()),
        granted_at: unix_now(),
    }
}
