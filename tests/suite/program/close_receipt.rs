//! `close_receipt`: only the rent payer, only after expiry, rent back in full, once.

use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_receipts::{ReceiptClosed, ReceiptError};

use super::support::*;

const EXPIRES_IN: i64 = 300;

/// A market whose payer has paid one reference expiring `EXPIRES_IN` seconds from now.
async fn paid_market() -> (Market, [u8; 32], i64) {
    let mut market = Market::new(MintKind::SplToken).await;
    let payer = market.payer.insecure_clone();
    let reference = new_reference();
    let expires_at = market.now().await + EXPIRES_IN;
    let pay = market.pay(reference, USDC, expires_at);
    market.send(&[pay.instruction()], &[&payer]).await.unwrap();
    (market, reference, expires_at)
}

#[tokio::test]
async fn returns_the_receipts_lamports_to_the_rent_payer_after_expiry() {
    let (mut market, reference, expires_at) = paid_market().await;
    let payer = market.payer.insecure_clone();
    let address = receipt_address(&reference);
    let deposit = market.lamports(&address).await;
    market.set_time(expires_at + 1).await;
    let before = market.lamports(&payer.pubkey()).await;

    let events = market
        .send_for_events(
            &[close_receipt_instruction(&payer.pubkey(), &reference)],
            &[&payer],
        )
        .await;

    // The rent payer also paid the fee: one signature.
    assert_eq!(
        market.lamports(&payer.pubkey()).await,
        before + deposit - 5_000
    );
    assert!(
        market.account(&address).await.is_none(),
        "the receipt is gone"
    );
    if let Some(events) = events {
        let closed: Vec<ReceiptClosed> = events.iter().filter_map(|e| decode_event(e)).collect();
        assert_eq!(
            closed,
            [ReceiptClosed {
                reference,
                receipt: address,
                rent_payer: payer.pubkey()
            }]
        );
    }
}

#[tokio::test]
async fn refuses_before_and_at_the_second_of_expiry() {
    let (mut market, reference, expires_at) = paid_market().await;
    let payer = market.payer.insecure_clone();
    let close = close_receipt_instruction(&payer.pubkey(), &reference);
    for time in [expires_at - 1, expires_at] {
        market.set_time(time).await;
        let result = market.send(std::slice::from_ref(&close), &[&payer]).await;
        assert_eq!(
            custom_error(result),
            Some(ReceiptError::ReceiptNotExpired.into())
        );
    }
    assert!(
        market.receipt(&reference).await.is_some(),
        "the receipt is still there"
    );
}

#[tokio::test]
async fn refuses_anyone_but_the_rent_payer() {
    let (mut market, reference, expires_at) = paid_market().await;
    market.set_time(expires_at + 1).await;
    let stranger = Keypair::new();
    fund(&mut market.bank, &stranger.pubkey(), WALLET_LAMPORTS).await;
    let address = receipt_address(&reference);
    let deposit = market.lamports(&address).await;

    let close = close_receipt_instruction(&stranger.pubkey(), &reference);
    let result = market.send(&[close], &[&stranger]).await;

    assert_eq!(
        custom_error(result),
        Some(ReceiptError::NotRentPayer.into())
    );
    assert_eq!(market.lamports(&address).await, deposit);
    assert!(market.receipt(&reference).await.is_some());
}

#[tokio::test]
async fn a_closed_receipt_cannot_be_revived_in_the_same_transaction() {
    let (mut market, reference, expires_at) = paid_market().await;
    let payer = market.payer.insecure_clone();
    let address = receipt_address(&reference);
    market.set_time(expires_at + 1).await;

    // Close, then send lamports back to the address in the same transaction.
    let close = close_receipt_instruction(&payer.pubkey(), &reference);
    let refill =
        solana_system_interface::instruction::transfer(&payer.pubkey(), &address, 10_000_000);
    market
        .send(&[close.clone(), refill], &[&payer])
        .await
        .unwrap();

    let account = market
        .account(&address)
        .await
        .expect("lamports were sent to it");
    assert_eq!(
        account.owner,
        anchor_lang::system_program::ID,
        "no longer the program's"
    );
    assert!(account.data.is_empty(), "no receipt data survives");

    // And it cannot be closed a second time for a second refund.
    let result = market.send(&[close], &[&payer]).await;
    assert_eq!(
        custom_error(result),
        Some(anchor_lang::error::ErrorCode::AccountOwnedByWrongProgram.into())
    );
}

#[tokio::test]
async fn a_closed_reference_cannot_be_paid_again_for_its_expiry() {
    let (mut market, reference, expires_at) = paid_market().await;
    let payer = market.payer.insecure_clone();
    market.set_time(expires_at + 1).await;
    market
        .send(
            &[close_receipt_instruction(&payer.pubkey(), &reference)],
            &[&payer],
        )
        .await
        .unwrap();

    let again = market.pay(reference, USDC, expires_at);
    market
        .assert_pay_refused(&again, &[&payer], ReceiptError::ChallengeExpired.into())
        .await;
}
