//! A receipt account as people and scripts read it: the verifier's `GET
//! /receipts/{reference}` and `x402 receipt --json` / `x402 receipts --json` print this
//! one view.
//!
//! Its fields are declared in alphabetical order: the order these documents have always
//! had (serde_json's map sorts its keys), kept now that they are structs.

use serde::Serialize;

use crate::janitor::FoundReceipt;
use crate::network::Network;
use crate::reference::Reference;

/// A receipt, decoded, with its explorer link. A verifier also knows its deployment
/// (program, network, token decimals) and fills the fields marked so; the CLI, reading
/// the chain, leaves them out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptView {
    /// Base units the payee received.
    pub amount: String,
    /// Verifier only: the amount with the verifier's decimals, null for a mint that is
    /// not the verifier's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_decimal: Option<Option<String>>,
    pub expires_at: i64,
    pub explorer: ReceiptLinks,
    /// The rent deposit the account holds.
    pub lamports: u64,
    pub mint: String,
    /// Verifier only: its network, CAIP-2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    pub paid_at: i64,
    pub payee: String,
    pub payer: String,
    /// Verifier only: the receipts program.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// The receipt account's address.
    pub receipt: String,
    pub reference: String,
    pub rent_payer: String,
    /// Verifier only: the scheme paid (`receipt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    pub slot: u64,
}

/// Explorer links of a [`ReceiptView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReceiptLinks {
    /// Verifier only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payee: Option<String>,
    /// Verifier only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    pub receipt: String,
}

impl ReceiptView {
    /// The view of `found` on `network`, with what the account itself holds.
    pub fn of(found: &FoundReceipt, network: &Network) -> Self {
        let r = &found.receipt;
        ReceiptView {
            amount: r.amount.to_string(),
            amount_decimal: None,
            expires_at: r.expires_at,
            explorer: ReceiptLinks {
                payee: None,
                payer: None,
                receipt: network.explorer_url(&format!("address/{}", found.address), None),
            },
            lamports: found.lamports,
            mint: r.mint.to_string(),
            network: None,
            paid_at: r.paid_at,
            payee: r.payee.to_string(),
            payer: r.payer.to_string(),
            program: None,
            receipt: found.address.to_string(),
            reference: Reference(r.reference).to_string(),
            rent_payer: r.rent_payer.to_string(),
            scheme: None,
            slot: r.slot,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::scheme::receipt::Receipt;
    use anchor_lang::prelude::Pubkey;

    use super::*;

    fn found() -> FoundReceipt {
        FoundReceipt {
            address: Pubkey::new_unique(),
            receipt: Receipt {
                reference: [7; 32],
                payer: Pubkey::new_unique(),
                payee: Pubkey::new_unique(),
                mint: Pubkey::new_unique(),
                amount: 10_000,
                rent_payer: Pubkey::new_unique(),
                paid_at: 1_700_000_000,
                slot: 42,
                expires_at: 1_700_000_300,
                bump: 255,
            },
            lamports: 2_000_000,
        }
    }

    /// The struct prints its keys in the order a `serde_json` map would: as before.
    fn keys_sorted(view: &ReceiptView) {
        let text = serde_json::to_string(view).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(text, value.to_string());
    }

    #[test]
    fn the_chains_view_holds_the_account_and_its_link() {
        let found = found();
        let view = ReceiptView::of(&found, &Network::public("solana").unwrap());
        keys_sorted(&view);
        let json = serde_json::to_value(&view).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "amount",
                "expiresAt",
                "explorer",
                "lamports",
                "mint",
                "paidAt",
                "payee",
                "payer",
                "receipt",
                "reference",
                "rentPayer",
                "slot"
            ]
        );
        assert_eq!(json["amount"], "10000");
        assert_eq!(json["reference"], Reference([7; 32]).to_string());
        assert_eq!(
            json["explorer"],
            serde_json::json!({
                "receipt": format!("https://explorer.solana.com/address/{}", found.address)
            })
        );
    }

    #[test]
    fn a_verifiers_view_adds_its_deployment_and_a_null_decimal_amount_for_another_mint() {
        let view = ReceiptView {
            amount_decimal: Some(None),
            network: Some("solana:devnet".into()),
            program: Some("program".into()),
            scheme: Some("receipt".into()),
            explorer: ReceiptLinks {
                payee: Some("payee link".into()),
                payer: Some("payer link".into()),
                receipt: "receipt link".into(),
            },
            ..ReceiptView::of(&found(), &Network::public("solana").unwrap())
        };
        keys_sorted(&view);
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["amountDecimal"], serde_json::Value::Null);
        assert!(json.as_object().unwrap().contains_key("amountDecimal"));
        assert_eq!(json["explorer"]["payer"], "payer link");
    }
}
