//! Every refusal of DESIGN.md's table, with the number of ledger calls it may make.

use std::sync::atomic::Ordering;

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::AccountSerialize;
use anchor_spl::token::spl_token;
use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::scheme::encode_transaction;
use x402_protocol::{LedgerAccount, Receipt, Requirement};
use x402_verifier::model::SETTLEMENT_GRACE_SECONDS;
use x402_verifier::unix_now;

use super::support::*;

/// Changes what is actually paid, against what the challenge asked.
type ChangeRequirement = Box<dyn Fn(&mut Requirement)>;
/// The instructions of a tampered sponsored transaction for a challenge.
type Tamper<'a> = Box<dyn Fn(&Requirement) -> Vec<Instruction> + 'a>;

async fn refusal(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn no_payment_gets_a_challenge_without_a_ledger_call() {
    let h = Harness::start().await;
    let response = h.send("GET", "/api/free-lunch", &[]).await;
    assert_eq!(response.status(), 402);
    assert!(
        response.headers().contains_key("payment-required"),
        "the v2 challenge header"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["x402Version"], 1);
    assert_eq!(body["accepts"][0]["scheme"], "receipt");
    assert_eq!(body["accepts"][0]["maxAmountRequired"], PRICE.to_string());
    assert_eq!(body["currency"], "USDC");
    assert_eq!(body["payee"], h.market.merchant.to_string());
    assert_eq!(h.ledger.calls(), 0);
    assert_eq!(h.api.hits(), 0);
}

#[tokio::test]
async fn malformed_payment_headers_are_a_400_without_a_ledger_call() {
    let h = Harness::start().await;
    for header in [
        ("X-PAYMENT", "%%%".to_string()),
        ("PAYMENT-SIGNATURE", "e30".into()),
        ("X-Payment-Proof", "nope".into()),
    ] {
        let (status, body) = refusal(h.send("GET", "/api/x", &[header]).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_payload"))
        );
    }
    let oversize = ("X-PAYMENT", "A".repeat(20_000));
    assert_eq!(h.send("GET", "/api/x", &[oversize]).await.status(), 400);
    assert_eq!(h.ledger.calls(), 0);
}

#[tokio::test]
async fn a_reference_for_another_route_method_or_price_or_expired_is_refused_without_a_ledger_call()
{
    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/a").await;
    // Paid, so that only the terms can be what refuses it.
    h.pay_on_chain(&offer.requirement, &payer).await;
    let reference = offer.requirement.reference;

    for (method, path) in [("GET", "/api/b"), ("POST", "/api/a"), ("GET", "/premium")] {
        let (status, body) = refusal(h.send(method, path, &[proof(&reference)]).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (402, Some("invalid_reference")),
            "{method} {path}"
        );
    }
    let expired = h.issue(
        "GET",
        "/api/a",
        PRICE,
        unix_now() - SETTLEMENT_GRACE_SECONDS - 1,
    );
    let (status, body) = refusal(h.send("GET", "/api/a", &[proof(&expired)]).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (402, Some("expired_reference"))
    );
    let forged = h.issue("GET", "/api/a", PRICE - 1, unix_now() + 60);
    let (_, body) = refusal(h.send("GET", "/api/a", &[proof(&forged)]).await).await;
    assert_eq!(
        body["error"], "invalid_reference",
        "issued for another price"
    );

    assert_eq!(h.ledger.calls(), 0);
    assert_eq!(h.api.hits(), 0);
}

#[tokio::test]
async fn a_reference_paid_in_time_is_served_when_presented_just_after_its_expiry() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let expires_at = unix_now() + 1;
    let reference = h.issue("GET", "/api/late", PRICE, expires_at);
    h.pay_on_chain(&h.gate_requirement(reference), &payer).await;
    while unix_now() <= expires_at {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let response = h
        .send(
            "GET",
            "/api/late",
            &[h.proof(&payer, "/api/late", &reference)],
        )
        .await;
    assert_eq!(
        response.status(),
        200,
        "paid in time: served, not asked to pay again"
    );

    // Unpaid and just expired: one look at the ledger, then a refusal.
    let unpaid = h.issue("GET", "/api/late", PRICE, unix_now() - 1);
    let calls = h.ledger.calls();
    let (status, body) = refusal(h.send("GET", "/api/late", &[proof(&unpaid)]).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (402, Some("expired_reference"))
    );
    assert_eq!(h.ledger.calls() - calls, 1);
}

#[tokio::test]
async fn a_receipt_not_visible_yet_keeps_the_same_reference_after_one_ledger_call() {
    let h = Harness::start().await;
    let (offer, _) = h.challenge("GET", "/api/later").await;
    let reference = offer.requirement.reference;
    let (status, body) = refusal(h.send("GET", "/api/later", &[proof(&reference)]).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (402, Some("receipt_not_found"))
    );
    assert_eq!(
        body["reference"],
        reference.to_string(),
        "the same reference: do not pay twice"
    );
    assert_eq!(h.ledger.calls(), 1);
}

/// Pays `requirement` on chain for a reference of `/api/defect`, then presents it.
async fn present(h: &Harness, reference_requirement: &Requirement) -> (u16, serde_json::Value) {
    let calls = h.ledger.calls();
    let response = h
        .send(
            "GET",
            "/api/defect",
            &[proof(&reference_requirement.reference)],
        )
        .await;
    let answer = refusal(response).await;
    assert_eq!(h.ledger.calls() - calls, 1, "one ledger call");
    assert_ne!(
        answer.1["reference"],
        reference_requirement.reference.to_string(),
        "a fresh challenge"
    );
    answer
}

#[tokio::test]
async fn each_receipt_defect_is_refused_after_one_ledger_call() {
    let h = Harness::start().await;
    let payer = h.new_payer(100 * PRICE).await;
    let ledger = &h.market.ledger;
    let other_wallet = Keypair::new().pubkey();
    ledger
        .create_token_account(&other_wallet, &h.market.mint, spl_token::ID)
        .await;
    let other_mint = ledger.create_mint(spl_token::ID).await;
    ledger
        .create_token_account(&payer.pubkey(), &other_mint, spl_token::ID)
        .await;
    ledger
        .create_token_account(&h.market.merchant, &other_mint, spl_token::ID)
        .await;
    ledger.mint_to(&other_mint, &payer.pubkey(), PRICE).await;

    let cases: [(&str, ChangeRequirement); 4] = [
        (
            "receipt_wrong_payee",
            Box::new(move |r| r.pay_to = other_wallet),
        ),
        ("receipt_wrong_mint", Box::new(move |r| r.mint = other_mint)),
        ("receipt_amount_below_price", Box::new(|r| r.amount -= 1)),
        ("receipt_wrong_expiry", Box::new(|r| r.expires_at += 100)),
    ];
    for (reason, change) in cases {
        let (offer, _) = h.challenge("GET", "/api/defect").await;
        let mut paid = offer.requirement.clone();
        change(&mut paid);
        h.pay_on_chain(&paid, &payer).await;
        let (status, body) = present(&h, &offer.requirement).await;
        assert_eq!((status, body["error"].as_str()), (402, Some(reason)));
    }

    // Accounts the program never wrote: another owner, and not a receipt at all.
    let (offer, _) = h.challenge("GET", "/api/defect").await;
    let mut data = Vec::new();
    Receipt {
        reference: offer.requirement.reference.0,
        payer: payer.pubkey(),
        payee: h.market.merchant,
        mint: h.market.mint,
        amount: PRICE,
        rent_payer: payer.pubkey(),
        paid_at: 0,
        slot: 0,
        expires_at: offer.requirement.expires_at,
        bump: 255,
    }
    .try_serialize(&mut data)
    .unwrap();
    let forged = LedgerAccount {
        owner: Pubkey::new_unique(),
        lamports: 10_000_000,
        data: data.clone(),
    };
    ledger
        .set_account(&offer.requirement.receipt(), &forged)
        .await;
    let (_, body) = present(&h, &offer.requirement).await;
    assert_eq!(body["error"], "receipt_wrong_owner");

    let (offer, _) = h.challenge("GET", "/api/defect").await;
    data[0] ^= 0xff;
    let garbage = LedgerAccount {
        owner: x402_receipts::ID,
        lamports: 10_000_000,
        data,
    };
    ledger
        .set_account(&offer.requirement.receipt(), &garbage)
        .await;
    let (_, body) = present(&h, &offer.requirement).await;
    assert_eq!(body["error"], "receipt_not_a_receipt");

    assert_eq!(h.api.hits(), 0);
    assert!(h.gate.store().grants().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_tampered_sponsored_transaction_is_refused_and_the_fee_payer_pays_nothing() {
    let h = Harness::start().await;
    let payer = h.new_payer(100 * PRICE).await;
    let fee_payer = h.market.fee_payer.pubkey();
    let fee_payer_sol = h.market.ledger.lamports(&fee_payer).await;
    let attacker = Keypair::new().pubkey();

    let tampered: [(&str, Tamper); 4] = [
        (
            "transaction_wrong_payment",
            Box::new(|r| {
                vec![Requirement {
                    amount: r.amount - 1,
                    ..r.clone()
                }
                .pay_instruction(&payer.pubkey(), &fee_payer)]
            }),
        ),
        (
            "transaction_wrong_payment",
            Box::new(|r| {
                vec![Requirement {
                    pay_to: attacker,
                    ..r.clone()
                }
                .pay_instruction(&payer.pubkey(), &fee_payer)]
            }),
        ),
        (
            "transaction_unexpected_instruction",
            Box::new(|r| {
                vec![
                    solana_system_interface::instruction::transfer(
                        &fee_payer, &attacker, 1_000_000,
                    ),
                    r.pay_instruction(&payer.pubkey(), &fee_payer),
                ]
            }),
        ),
        (
            "transaction_fee_payer_misused",
            Box::new(|r| {
                let mut pay = r.pay_instruction(&payer.pubkey(), &fee_payer);
                // The fee payer in the place of the account tokens are spent from.
                pay.accounts[4].pubkey = fee_payer;
                vec![pay]
            }),
        ),
    ];
    for (reason, instructions) in tampered {
        let (offer, _) = h.challenge("GET", "/api/tamper").await;
        let tx = sponsored_transaction(&offer, &payer, &instructions(&offer.requirement));
        let payment = x_payment(
            &offer,
            serde_json::json!({"transaction": encode_transaction(&tx)}),
        );
        let (status, body) = refusal(h.send("GET", "/api/tamper", &[payment]).await).await;
        assert_eq!((status, body["error"].as_str()), (402, Some(reason)));
    }
    assert_eq!(
        h.ledger.submits.load(Ordering::SeqCst),
        0,
        "nothing was submitted"
    );
    assert_eq!(
        h.market.ledger.lamports(&fee_payer).await,
        fee_payer_sol,
        "the fee payer's balance is untouched"
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, 100 * PRICE);
    assert_eq!(h.api.hits(), 0);
}

#[tokio::test]
async fn a_ledger_outage_is_a_503_and_the_same_payment_is_granted_after_it() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/outage").await;
    h.pay_on_chain(&offer.requirement, &payer).await;

    h.ledger.down.store(true, Ordering::SeqCst);
    let response = h
        .send(
            "GET",
            "/api/outage",
            &[h.proof(&payer, "/api/outage", &offer.requirement.reference)],
        )
        .await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "ledger_unavailable");
    assert!(
        body.get("accepts").is_none(),
        "no fresh challenge during an outage"
    );
    assert!(h.gate.store().grants().await.unwrap().is_empty());

    h.ledger.down.store(false, Ordering::SeqCst);
    let response = h
        .send(
            "GET",
            "/api/outage",
            &[h.proof(&payer, "/api/outage", &offer.requirement.reference)],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        0,
        "paid exactly once"
    );
}
