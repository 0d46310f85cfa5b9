//! `GET /receipts/{reference}`: a receipt decoded, with explorer links, for auditors and
//! for clients that have no RPC endpoint.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;
use x402_protocol::amount::format_units;
use x402_protocol::receipt::decode_receipt;
use x402_protocol::{receipt_address, Reference};

use crate::gate::Gate;

pub async fn show_receipt(State(gate): State<Gate>, Path(reference): Path<String>) -> Response {
    let Ok(reference) = reference.parse::<Reference>() else {
        let body =
            json!({"error": "invalid_reference", "message": "a reference is 32 bytes in base58"});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    };
    let s = gate.settings();
    let address = receipt_address(&s.program, &reference);
    let account = match gate.ledger().account(&address).await {
        Ok(account) => account,
        Err(error) => {
            tracing::warn!(%error, "ledger call failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": "ledger_unavailable"})),
            )
                .into_response();
        }
    };
    let Some(account) = account else {
        let body = json!({"error": "receipt_not_found", "reference": reference.to_string(), "receipt": address.to_string()});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    };
    let receipt = match decode_receipt(&account, &s.program) {
        Ok(receipt) => receipt,
        Err(defect) => {
            return (
                StatusCode::CONFLICT,
                axum::Json(json!({"error": defect.reason(), "receipt": address.to_string()})),
            )
                .into_response()
        }
    };
    let explorer = |path: String| s.network.explorer_url(&path, None);
    let amount_decimal = (receipt.mint == s.mint).then(|| format_units(receipt.amount, s.decimals));
    axum::Json(json!({
        "reference": reference.to_string(),
        "receipt": address.to_string(),
        "program": s.program.to_string(),
        "network": s.network.caip2(),
        "payer": receipt.payer.to_string(),
        "payee": receipt.payee.to_string(),
        "mint": receipt.mint.to_string(),
        "amount": receipt.amount.to_string(),
        "amountDecimal": amount_decimal,
        "rentPayer": receipt.rent_payer.to_string(),
        "paidAt": receipt.paid_at,
        "slot": receipt.slot,
        "expiresAt": receipt.expires_at,
        "lamports": account.lamports,
        "explorer": {
            "receipt": explorer(format!("address/{address}")),
            "payer": explorer(format!("address/{}", receipt.payer)),
            "payee": explorer(format!("address/{}", receipt.payee)),
        },
    }))
    .into_response()
}
