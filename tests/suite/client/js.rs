//! The JS package (`js/`) builds the instructions the Rust side builds: the receipt
//! program's `pay` (generated from the program's IDL), `exact`'s compute budget,
//! `TransferChecked` and Memo (from the Solana program clients), and `upto`'s compute
//! budget, payment-channels `open` and Memo. The transactions are compiled on each side
//! and compared instruction by instruction: program, accounts with their signer and
//! writable flags, and data bytes. And the JS buyer (`fetchWithPayment`) pays our
//! verifier's metered `upto` route what the answer cost.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use anchor_lang::prelude::Pubkey;
use anchor_spl::token::spl_token;
use serde_json::{json, Value};
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;
use solana_transaction::VersionedMessage;
use x402_protocol::scheme::decode_transaction;
use x402_protocol::scheme::upto::{build_upto, Opening, Window};
use x402_protocol::{ExactTerms, Ledger, MintInfo, Reference, Requirement, UptoTerms};
use x402_verifier::ledger::local::LOCAL_DECIMALS;

use crate::verifier::support::{Harness, METERED_MAX};

/// The JS package, built (`dist/`).
fn js_package() -> PathBuf {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../js");
    assert!(
        js.join("dist/index.js").exists(),
        "the JS package is not built: npm ci --prefix js && npm run build --prefix js (scripts/test does)"
    );
    js
}

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
    let js = js_package();
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
    let upto_terms = UptoTerms {
        mint,
        token_program: token_2022,
        pay_to,
        max_amount: 50_000,
        fee_payer,
        receiver_authorizer: Pubkey::new_unique(),
        withdraw_delay: 900,
        memo: Some("order-42".into()),
    };
    let opening = Opening {
        payer: payer.pubkey(),
        salt: u64::MAX - 7,
        open_slot: 341_000_000,
    };
    let window = Window {
        valid_after: 1_900_000_000,
        expires_at: 1_900_000_300,
    };
    let upto = build_upto(&payer, &upto_terms, &opening, window, blockhash);
    let upto: VersionedTransaction = decode_transaction(&upto.open_transaction).unwrap();
    let rust = json!({
        "receipt": shown(&VersionedTransaction::from(receipt).message),
        "exact": shown(&exact.message),
        "upto": shown(&upto.message),
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
        "upto": {
            "payer": payer.pubkey().to_string(),
            "mint": { "decimals": facts.decimals, "tokenProgram": token_2022.to_string() },
            "blockhash": blockhash.to_string(),
            "salt": opening.salt.to_string(),
            "openSlot": opening.open_slot,
            "offer": {
                "scheme": "upto",
                "network": "solana-devnet",
                "amount": upto_terms.max_amount.to_string(),
                "asset": mint.to_string(),
                "payTo": pay_to.to_string(),
                "maxTimeoutSeconds": 300,
                "extra": {
                    "feePayer": fee_payer.to_string(),
                    "receiverAuthorizer": upto_terms.receiver_authorizer.to_string(),
                    "withdrawDelay": upto_terms.withdraw_delay,
                    "tokenProgram": token_2022.to_string(),
                    "memo": "order-42",
                },
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
    assert_eq!(js["upto"], rust["upto"]);
    assert_eq!(rust["upto"].as_array().map(Vec::len), Some(4));
}

/// Runs `js/test/buyer.mjs` (one request paid by `fetchWithPayment`) with `input` on its
/// stdin, off the runtime that serves the verifier; its JSON answer.
async fn js_buyer(input: Value) -> Value {
    js_script("test/buyer.mjs", input).await
}

/// Runs the JS `script` with `input` on its stdin, off the runtime that serves the
/// verifier; its JSON answer.
async fn js_script(script: &'static str, input: Value) -> Value {
    let js = js_package();
    tokio::task::spawn_blocking(move || {
        let mut node = Command::new("node")
            .current_dir(&js)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node runs");
        // On stdin: the buyer's secret key is no argument for `ps` to show.
        let mut stdin = node.stdin.take().expect("piped");
        stdin.write_all(input.to_string().as_bytes()).unwrap();
        drop(stdin);
        let output = node.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON from the JS buyer")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_js_buyer_pays_our_metered_route_what_the_answer_cost_and_gets_the_rest_back() {
    let h = Harness::start().await;
    let payer = h.new_payer(METERED_MAX).await;
    let network = h.market.ledger.network();
    let buyer = |max_per_request: u64| {
        json!({
            "url": h.url("/metered?charge=0.0125"),
            "secretKey": payer.to_bytes().to_vec(),
            // No rpcUrl: the verifier's blockhash and slot, on a network allowed by name,
            // the local mint's facts given (it is no mint the package knows).
            "policy": {
                "maxPerRequest": max_per_request.to_string(),
                "networks": [network.caip2(), network.v1_name()],
            },
            "mints": {
                (h.market.mint.to_string()): {
                    "decimals": LOCAL_DECIMALS,
                    "tokenProgram": spl_token::ID.to_string(),
                },
            },
        })
    };

    // The cap applies to the ceiling the buyer escrows, not to what it may be charged.
    let below = js_buyer(buyer(METERED_MAX - 1)).await;
    assert_eq!(below["error"], "policy", "{below}");
    assert_eq!(h.ledger.submits.load(Ordering::SeqCst), 0, "nothing signed");

    let paid = js_buyer(buyer(METERED_MAX)).await;
    assert_eq!(paid["status"], 200, "{paid}");
    assert_eq!(paid["scheme"], "upto");
    assert_eq!(
        paid["charged"],
        json!({ "amount": "12500", "maximum": METERED_MAX.to_string() })
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, METERED_MAX - 12_500);
    assert_eq!(h.token_balance(&h.market.merchant).await, 12_500);
    assert_eq!(h.api.hits(), 1);
}

#[tokio::test]
async fn the_js_buyer_pays_batch_vouchers_without_challenges_and_gets_the_rest_back() {
    use crate::verifier::support::PRICE;
    let h = Harness::start().await;
    let payer = h.new_payer(30 * PRICE).await;
    let network = h.market.ledger.network();
    let store = tempfile::tempdir().unwrap();
    let before = h.challenges_issued().await;
    // `requests` paid by `fetchWithPayment` in `batch-settlement`, then the channel closed.
    let answer = js_script(
        "test/batch-buyer.mjs",
        json!({
            "url": h.url("/batch"),
            "secretKey": payer.to_bytes().to_vec(),
            "policy": {
                "maxPerRequest": PRICE.to_string(),
                "maxDeposit": (20 * PRICE).to_string(),
                "networks": [network.caip2(), network.v1_name()],
            },
            "mints": {
                (h.market.mint.to_string()): {
                    "decimals": LOCAL_DECIMALS,
                    "tokenProgram": spl_token::ID.to_string(),
                },
            },
            "requests": 12,
            "storeDir": store.path(),
        }),
    )
    .await;
    assert_eq!(answer["statuses"], json!(vec![200; 12]), "{answer}");
    assert_eq!(answer["charged"], json!(vec![PRICE.to_string(); 12]));
    assert_eq!(
        answer["refunded"],
        (8 * PRICE).to_string(),
        "the policy's deposit of 20, less the 12 requests"
    );
    assert_eq!(
        h.challenges_issued().await - before,
        1,
        "one 402; every later voucher sent at once"
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, 18 * PRICE);
    assert_eq!(h.token_balance(&h.market.merchant).await, 12 * PRICE);
    assert_eq!(h.api.hits(), 12);
}
