//! `GET /receipts/{reference}`: a receipt decoded, with explorer links, for auditors and
//! for clients that have no RPC endpoint. Anyone may ask, and each answer is a read from
//! the RPC provider: lookups in flight are capped ([`ReceiptLookups`]), past it a 429.
//! An `exact` payment has no receipt account: its grant is shown instead, with its
//! transaction, whose Memo holds the reference.

use std::sync::Arc;

use axum::Extension;
use tokio::sync::Semaphore;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use x402_protocol::amount::format_units;
use x402_protocol::janitor::FoundReceipt;
use x402_protocol::scheme::receipt::decode_receipt;
use x402_protocol::wire::receipts::ReceiptView;
use x402_protocol::{receipt_address, Reference};

use crate::context::store_unavailable;
use crate::error::{Reason, Refusal};
use crate::gate::Gate;
use crate::metrics::LedgerCall;
use crate::model::Scheme;
use crate::store::Grant;

/// The receipt lookups that may be in flight at once.
#[derive(Clone)]
pub struct ReceiptLookups(pub Arc<Semaphore>);

impl Default for ReceiptLookups {
    fn default() -> Self {
        ReceiptLookups(Arc::new(Semaphore::new(16)))
    }
}

pub async fn show_receipt(
    State(gate): State<Gate>,
    Extension(lookups): Extension<ReceiptLookups>,
    Path(reference): Path<String>,
) -> Result<Response, Refusal> {
    let reference = reference.parse::<Reference>().map_err(|_| {
        Refusal::new(Reason::InvalidReference).message("a reference is 32 bytes in base58")
    })?;
    let _lookup = lookups
        .0
        .try_acquire()
        .map_err(|_| Refusal::new(Reason::RateLimited))?;
    let s = gate.settings();
    if let Some(grant) = gate
        .store()
        .grant(&reference.to_string())
        .await
        .map_err(store_unavailable)?
        .filter(|grant| grant.scheme == Scheme::Exact.name())
    {
        return Ok(exact_payment(&gate, grant).into_response());
    }
    let address = receipt_address(&s.program, &reference);
    let account = gate
        .ledger_call(LedgerCall::Account, gate.ledger().account(&address))
        .await?;
    let Some(account) = account else {
        return Err(Refusal::new(Reason::ReceiptNotFound)
            .detail("reference", reference.to_string())
            .detail("receipt", address.to_string()));
    };
    let receipt = decode_receipt(&account, &s.program)
        .map_err(|defect| Refusal::new(defect.into()).detail("receipt", address.to_string()))?;
    let explorer = |path: String| s.network.explorer_url(&path, None);
    let amount_decimal = (receipt.mint == s.mint).then(|| format_units(receipt.amount, s.decimals));
    let found = FoundReceipt {
        address,
        receipt,
        lamports: account.lamports,
    };
    let mut view = ReceiptView::of(&found, &s.network);
    view.amount_decimal = Some(amount_decimal);
    view.network = Some(s.network.caip2().to_string());
    view.program = Some(s.program.to_string());
    view.scheme = Some(Scheme::Receipt.name().to_string());
    view.explorer.payer = Some(explorer(format!("address/{}", found.receipt.payer)));
    view.explorer.payee = Some(explorer(format!("address/{}", found.receipt.payee)));
    Ok(axum::Json(view).into_response())
}

/// An `exact` payment as its grant records it: the transaction to read on an explorer
/// (its Memo is the reference, its TransferChecked the payment).
fn exact_payment(gate: &Gate, grant: Grant) -> axum::Json<serde_json::Value> {
    let s = gate.settings();
    let explorer = |path: String| s.network.explorer_url(&path, None);
    let amount_decimal =
        (grant.mint == s.mint.to_string()).then(|| format_units(grant.amount, s.decimals));
    axum::Json(json!({
        "reference": grant.reference,
        "scheme": grant.scheme,
        "network": s.network.caip2(),
        "payer": grant.payer,
        "payee": s.pay_to.to_string(),
        "mint": grant.mint,
        "amount": grant.amount.to_string(),
        "amountDecimal": amount_decimal,
        "transaction": grant.transaction,
        "grantedAt": grant.granted_at,
        "explorer": {
            "transaction": grant.transaction.as_ref().map(|tx| explorer(format!("tx/{tx}"))),
            "payer": explorer(format!("address/{}", grant.payer)),
            "payee": explorer(format!("address/{}", s.pay_to)),
        },
    }))
}
