//! `x402 receipt`, `receipts` and `close-expired`: receipts read from a verifier or the
//! chain, and the expired ones closed for their rent.

use std::path::Path;

use anchor_lang::prelude::Pubkey;
use serde_json::Value;
use x402_protocol::janitor::{close_expired, find_receipt, receipts_for_payee};
use x402_protocol::keypair::read_keypair_file;
use x402_protocol::wire::receipts::ReceiptView;
use x402_protocol::{Ledger, LedgerError, Reference};

use super::connect;
use super::exit::{fail, Exit, Failure};
use super::output::{print_json, shown, Closed, Receipts};

pub async fn receipt(
    reference: &str,
    verifier: Option<&str>,
    rpc_url: Option<&str>,
    program: &Pubkey,
    json: bool,
) -> Result<Exit, Failure> {
    let parsed: Reference = reference.parse().map_err(|e| fail(Exit::Usage, e))?;
    let not_found = || {
        fail(
            Exit::ReceiptNotFound,
            format!("no receipt for reference {parsed}"),
        )
    };
    // A verifier's answer is its own document (a receipt, or an `exact` payment's
    // grant): printed as it came. The chain's receipt is the view a verifier shows.
    let found: Value = match (verifier, rpc_url) {
        (Some(verifier), _) => {
            let url = format!("{}/receipts/{parsed}", verifier.trim_end_matches('/'));
            let response = reqwest::get(&url)
                .await
                .map_err(|e| fail(Exit::Unavailable, e.without_url()))?;
            match response.status().as_u16() {
                200 => response
                    .json::<Value>()
                    .await
                    .map_err(|e| fail(Exit::Error, e.without_url()))?,
                404 => return Err(not_found()),
                503 => {
                    return Err(fail(
                        Exit::Unavailable,
                        "the verifier's ledger is unavailable",
                    ))
                }
                other => return Err(fail(Exit::Error, format!("the verifier answered {other}"))),
            }
        }
        (None, Some(rpc_url)) => {
            let ledger = connect(rpc_url).await?;
            let found = find_receipt(&ledger, program, &parsed)
                .await
                .map_err(|e| fail(Exit::Unavailable, e))?;
            let found = found.ok_or_else(not_found)?;
            serde_json::to_value(ReceiptView::of(&found, ledger.network()))
                .expect("plain fields serialize")
        }
        (None, None) => return Err(fail(Exit::Usage, "give --verifier URL or --rpc-url URL")),
    };
    if json {
        print_json(&found);
    } else {
        // A verifier's answer is its word: shown escaped.
        for key in [
            "reference",
            "receipt",
            "payer",
            "payee",
            "mint",
            "amount",
            "expiresAt",
            "paidAt",
            "rentPayer",
        ] {
            let value = found[key]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| found[key].to_string());
            println!("{key:>10}: {}", shown(&value));
        }
        println!(
            "{:>10}: {}",
            "explorer",
            shown(found["explorer"]["receipt"].as_str().unwrap_or_default())
        );
    }
    Ok(Exit::Done)
}

pub async fn list(
    payee: &Pubkey,
    rpc_url: &str,
    program: &Pubkey,
    json: bool,
) -> Result<Exit, Failure> {
    let ledger = connect(rpc_url).await?;
    let found = receipts_for_payee(&ledger, program, payee)
        .await
        .map_err(|e| fail(Exit::Unavailable, e))?;
    let mut totals = std::collections::BTreeMap::<String, u64>::new();
    for f in &found {
        let total = totals.entry(f.receipt.mint.to_string()).or_default();
        *total = total.saturating_add(f.receipt.amount);
    }
    if json {
        print_json(&Receipts {
            count: found.len(),
            payee: payee.to_string(),
            receipts: found
                .iter()
                .map(|f| ReceiptView::of(f, ledger.network()))
                .collect(),
            totals: totals
                .into_iter()
                .map(|(mint, total)| (mint, total.to_string()))
                .collect(),
        });
    } else {
        for f in &found {
            let r = &f.receipt;
            println!(
                "{} {} paid {} of {} (reference {})",
                r.paid_at,
                r.payer,
                r.amount,
                r.mint,
                Reference(r.reference)
            );
        }
        for (mint, total) in totals {
            println!("total: {total} base units of {mint}");
        }
        println!("{} receipts", found.len());
    }
    Ok(Exit::Done)
}

pub async fn close(
    keypair: &Path,
    rpc_url: &str,
    program: &Pubkey,
    json: bool,
) -> Result<Exit, Failure> {
    let keypair = read_keypair_file(keypair).map_err(|e| fail(Exit::Error, e))?;
    let ledger = connect(rpc_url).await?;
    let report = close_expired(&ledger, program, &keypair, x402_protocol::unix_now())
        .await
        .map_err(|e| match e {
            LedgerError::Unavailable(_) => fail(Exit::Unavailable, e),
            other => fail(Exit::Error, other),
        })?;
    if json {
        print_json(&Closed {
            closed: report.closed.iter().map(|k| k.to_string()).collect(),
            rent_returned: report.rent_returned,
            transactions: report.transactions,
        });
    } else {
        println!(
            "closed {} receipts, {} lamports of rent returned",
            report.closed.len(),
            report.rent_returned
        );
    }
    Ok(Exit::Done)
}
