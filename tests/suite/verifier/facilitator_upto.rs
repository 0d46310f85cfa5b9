//! `upto` at the facilitator: a delegating server's deposit settle opens the buyer's
//! channel; its claim settle, carrying its receiver authorizer's voucher for what the
//! answer cost, seals and distributes it. Each settles once, and a claim without the
//! server's voucher, or above the buyer's ceiling, moves nothing.

use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::scheme::upto::{
    build_upto, random_salt, voucher_message, Opening, UptoOffer, UptoPayload, UptoTerms, Window,
};
use x402_protocol::wire::facilitator::{SettleResponse, VerifyResponse};
use x402_protocol::wire::v2;
use x402_protocol::Ledger;
use x402_verifier::unix_now;

use super::support::*;

/// A delegating server's `upto` offer of `amount`: its own receiver authorizer, our fee
/// payer, the merchant's mint and payee.
async fn offer(h: &Harness, authorizer: &Keypair, amount: u64) -> UptoOffer {
    let s = h.gate.settings();
    UptoOffer {
        network: s.network.caip2().into(),
        terms: UptoTerms {
            mint: s.mint,
            token_program: s.token_program,
            pay_to: s.pay_to,
            max_amount: amount,
            fee_payer: h.market.fee_payer.pubkey(),
            receiver_authorizer: authorizer.pubkey(),
            withdraw_delay: 60,
            memo: Some("order-7".into()),
        },
        recent_blockhash: Some(h.market.ledger.latest_blockhash().await.unwrap()),
        last_valid_block_height: None,
        recent_slot: Some(h.market.ledger.slot().await),
        valid_after: None,
        resource: v2::ResourceInfo {
            url: "https://other.example/metered".into(),
            description: None,
            mime_type: None,
        },
        max_timeout_seconds: 300,
    }
}

fn request(offer: &UptoOffer, payload: &UptoPayload) -> serde_json::Value {
    facilitator_body(&offer.to_offer(), payload)
}

/// The claim settle for `charge`: the requirements' amount the charge, the payload the
/// buyer's with `signer`'s voucher for it.
fn claim(
    offer: &UptoOffer,
    payload: &UptoPayload,
    charge: u64,
    signer: &Keypair,
) -> serde_json::Value {
    let channel = payload.channel_id.parse().unwrap();
    let voucher = signer.sign_message(&voucher_message(&channel, charge, payload.expires_at));
    let mut charged = offer.clone();
    charged.terms.max_amount = charge;
    let mut with_voucher = payload.clone();
    with_voucher.voucher_signature = Some(Some(voucher.to_string()));
    request(&charged, &with_voucher)
}

async fn post<T: serde::de::DeserializeOwned>(
    h: &Harness,
    path: &str,
    body: &serde_json::Value,
) -> (u16, T) {
    facilitator_post(h, FACILITATOR_KEY, path, body).await
}

#[tokio::test]
async fn a_deposit_opens_the_channel_and_the_servers_voucher_settles_what_the_answer_cost() {
    let h = Harness::start().await;
    let authorizer = Keypair::new();
    let max = 5 * PRICE;
    let offer = offer(&h, &authorizer, max).await;
    let payer = h.new_payer(max).await;
    let now = unix_now();
    let opening = Opening {
        payer: payer.pubkey(),
        salt: random_salt(),
        open_slot: offer.recent_slot.unwrap(),
    };
    let window = Window {
        valid_after: now,
        expires_at: now + 300,
    };
    let payload = build_upto(
        &payer,
        &offer.terms,
        &opening,
        window,
        offer.recent_blockhash.unwrap(),
    );
    let deposit = request(&offer, &payload);

    let (status, verified): (u16, VerifyResponse) = post(&h, "/verify", &deposit).await;
    assert_eq!((status, verified.is_valid), (200, true), "{verified:?}");
    assert_eq!(
        h.ledger.submits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "verify submits nothing"
    );

    let (_, opened): (u16, SettleResponse) = post(&h, "/settle", &deposit).await;
    assert!(opened.success, "{opened:?}");
    assert!(!opened.transaction.is_empty(), "the open");
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0, "escrowed");
    let (_, again): (u16, SettleResponse) = post(&h, "/settle", &deposit).await;
    assert_eq!(again.error_reason.as_deref(), Some("duplicate_settlement"));

    // A claim signed by anyone but the server's receiver authorizer, or above the ceiling
    // the buyer signed, moves nothing.
    let merchant = h.market.merchant;
    let (_, forged): (u16, SettleResponse) =
        post(&h, "/settle", &claim(&offer, &payload, max, &payer)).await;
    assert_eq!(
        forged.error_reason.as_deref(),
        Some("invalid_payload"),
        "{forged:?}"
    );
    let (_, above): (u16, SettleResponse) = post(
        &h,
        "/settle",
        &claim(&offer, &payload, max + 1, &authorizer),
    )
    .await;
    assert_eq!(
        above.error_reason.as_deref(),
        Some("invalid_upto_svm_payload_settlement_exceeds_amount")
    );
    assert_eq!(h.token_balance(&merchant).await, 0);

    let charge = 3_000;
    let settle = claim(&offer, &payload, charge, &authorizer);
    let (_, claimed): (u16, SettleResponse) = post(&h, "/settle", &settle).await;
    assert!(claimed.success, "{claimed:?}");
    assert_eq!(claimed.amount.as_deref(), Some("3000"));
    assert_eq!(h.token_balance(&merchant).await, charge);
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        max - charge,
        "the rest refunded"
    );
    let (_, twice): (u16, SettleResponse) = post(&h, "/settle", &settle).await;
    assert_eq!(twice.error_reason.as_deref(), Some("duplicate_settlement"));
    assert_eq!(h.token_balance(&merchant).await, charge, "claimed once");
}
