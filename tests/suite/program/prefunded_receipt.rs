//! Anyone who learns a reference can send lamports to its receipt address before the
//! payment. That must not block `pay`, on a runtime without SIMD-0312 (this bank's).

use solana_keypair::Keypair;
use solana_signer::Signer;

use super::support::*;

async fn pay_after_griefing(griefing_lamports: u64) {
    let mut market = Market::new(MintKind::SplToken).await;
    let payer = market.payer.insecure_clone();
    let reference = new_reference();
    let expires_at = market.now().await + 300;
    let pay = market.pay(reference, USDC, expires_at);
    let griefer = Keypair::new();
    fund(&mut market.bank, &griefer.pubkey(), WALLET_LAMPORTS).await;
    let gift = solana_system_interface::instruction::transfer(
        &griefer.pubkey(),
        &pay.receipt,
        griefing_lamports,
    );
    market.send(&[gift], &[&griefer]).await.unwrap();
    let payer_sol = market.lamports(&payer.pubkey()).await;

    market.send(&[pay.instruction()], &[&payer]).await.unwrap();

    let receipt = market
        .receipt(&reference)
        .await
        .expect("the receipt exists despite the gift");
    assert_eq!(receipt.amount, USDC);
    assert_eq!(market.token_balance(&pay.payee_token).await, USDC);
    let account = market.account(&pay.receipt).await.unwrap();
    let rent_exempt = market
        .bank
        .banks_client
        .get_rent()
        .await
        .unwrap()
        .minimum_balance(account.data.len());
    assert_eq!(account.lamports, rent_exempt.max(griefing_lamports));
    // The payer funded only what the gift did not cover (plus the fee, one signature).
    let topped_up = rent_exempt.saturating_sub(griefing_lamports);
    assert_eq!(
        payer_sol - market.lamports(&payer.pubkey()).await,
        topped_up + 5_000
    );
}

#[tokio::test]
async fn pays_when_the_receipt_address_holds_less_than_its_rent() {
    // The least a transfer can leave in a new account: rent exemption for 0 bytes.
    let least = anchor_lang::prelude::Rent::default().minimum_balance(0);
    pay_after_griefing(least).await;
}

#[tokio::test]
async fn pays_when_the_receipt_address_holds_more_than_its_rent() {
    pay_after_griefing(10_000_000).await;
}
