//! The JS package (`js/`) builds the instructions the Rust side builds: the receipt
//! program's `pay` (generated from the program's IDL) and `exact`'s compute budget,
//! `TransferChecked` and Memo (from the Solana program clients). Both transactions are
//! compiled on each side and compared instruction by instruction: program, accounts with
//! their signer and writable flags, and data bytes.

use std::path::Path;
use std::process::Command;

use anchor_lang::prelude::Pubkey;
use serde_json::{json, Value};
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;
use solana_transaction::VersionedMessage;
use x402_protocol::{ExactTerms, MintInfo, Reference, Requirement};

/// Each instruction of `message`: program, accounts as [address, signer, writable], data (hex).
fn shown(message: &VersionedMessage) -> Value {
    let keys = message.static_account_keys();
    message
        .instructions()
        .iter()
        .map(|ix| {
            let accounts: Vec<Value> = ix
                .accounts
                .iter()
                .map(|&i| {
                    let i = usize::from(i);
                    json!([
                        keys[i].to_string(),
                        message.is_signer(i),
                        message.is_maybe_writable(i, None)
                    ])
                })
                .collect();
            let data: String = ix.data.iter().map(|b| format!("{b:02x}")).collect();
            json!({
                "program": keys[usize::from(ix.program_id_index)].to_string(),
                "accounts": accounts,
                "data": data,
            })
        })
        .collect()
}

#[test]
fn the_js_package_builds_the_instructions_the_rust_side_builds() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../js");
    assert!(
        js.join("dist/index.js").exists(),
        "the JS package is not built: npm ci --prefix js && npm run build --prefix js (scripts/test does)"
    );
    let payer = Keypair::new();
    let fee_payer = Pubkey::new_unique();
    let pay_to = Pubkey::new_unique();
    let mint = Pubkey::new_unique();
    let blockhash = Hash::new_unique();

    let requirement = Requirement {
        program: x402_receipts::ID,
        reference: Reference([7; 32]),
        amount: 10_000,
        expires_at: 1_900_000_000,
        mint,
        token_program: anchor_spl::token::ID,
        pay_to,
    };
    let receipt = requirement.pay_transaction(&payer.pubkey(), &fee_payer, blockhash);
    let token_2022 = anchor_spl::token_2022::ID;
    let terms = ExactTerms {
        mint,
        pay_to,
        amount: 25_000,
        fee_payer,
        memo: Some("order-42".into()),
    };
    let facts = MintInfo {
        decimals: 9,
        token_program: token_2022,
        delivers_in_full: true,
    };
    let exact = x402_protocol::scheme::exact::build_exact(&payer, &terms, &facts, blockhash);
    let rust = json!({
        "receipt": shown(&VersionedTransaction::from(receipt).message),
        "exact": shown(&exact.message),
    });

    let input = json!({
        "receipt": {
            "payer": payer.pubkey().to_string(),
            "offer": {
                "scheme": "receipt",
                "network": "solana-devnet",
                "amount": requirement.amount.to_string(),
                "asset": mint.to_string(),
                "payTo": pay_to.to_string(),
                "extra": {
                    "programId": requirement.program.to_string(),
                    "reference": requirement.reference.to_string(),
                    "receipt": requirement.receipt().to_string(),
                    "expiresAt": requirement.expires_at,
                    "decimals": 6,
                    "tokenProgram": requirement.token_program.to_string(),
                    "feePayer": fee_payer.to_string(),
                    "recentBlockhash": blockhash.to_string(),
                },
            },
        },
        "exact": {
            "payer": payer.pubkey().to_string(),
            "mint": { "decimals": facts.decimals, "tokenProgram": token_2022.to_string() },
            "blockhash": blockhash.to_string(),
            "offer": {
                "scheme": "exact",
                "network": "solana-devnet",
                "amount": terms.amount.to_string(),
                "asset": mint.to_string(),
                "payTo": pay_to.to_string(),
                "extra": { "feePayer": fee_payer.to_string(), "memo": "order-42" },
            },
        },
    });
    let output = Command::new("node")
        .current_dir(&js)
        .arg("test/instructions.mjs")
        .arg(input.to_string())
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let js: Value = serde_json::from_slice(&output.stdout).expect("JSON from the JS package");
    assert_eq!(js["receipt"], rust["receipt"]);
    assert_eq!(js["exact"], rust["exact"]);
    assert_eq!(rust["exact"].as_array().map(Vec::len), Some(4));
}
