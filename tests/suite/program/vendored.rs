//! The third-party programs every bank holds at their mainnet addresses (the embedded
//! ledger's and these tests'): the payment-channels program, and p-token in place of the
//! classic SPL Token program.

use solana_signer::Signer;
use x402_testkit::vendored::{self, PAYMENT_CHANNELS, P_TOKEN};

use super::support::*;

#[tokio::test]
async fn the_payment_channels_program_is_at_its_address_and_runs() {
    let mut market = Market::new(MintKind::SplToken).await;
    let account = market
        .account(&PAYMENT_CHANNELS.id)
        .await
        .expect("the program's account exists");
    assert!(account.executable, "the program's account is executable");
    assert_eq!(
        account.data, PAYMENT_CHANNELS.elf,
        "it holds the committed binary"
    );

    // Refused by the program itself (its own error code), not for want of a program.
    let payer = market.payer.insecure_clone();
    let result = market
        .send(&[vendored::payment_channels_bad_data()], &[&payer])
        .await;
    assert_eq!(
        custom_error(result),
        Some(vendored::NOT_ENOUGH_ACCOUNT_KEYS),
        "the payment-channels program's NotEnoughAccountKeys"
    );
}

#[tokio::test]
async fn p_token_runs_at_the_spl_token_address() {
    let mut market = Market::new(MintKind::SplToken).await;
    let account = market
        .account(&spl_token::ID)
        .await
        .expect("SPL Token's account exists");
    assert!(account.executable, "SPL Token's account is executable");
    assert_eq!(
        account.data, P_TOKEN.elf,
        "it holds p-token, not the classic program"
    );

    // `Batch` of two `TransferChecked`: the classic program refuses it ("invalid
    // instruction"); p-token runs both.
    let payer = market.payer.insecure_clone();
    let transfer = |amount| {
        vendored::transfer_checked(
            &market.payer_token,
            &market.mint,
            &market.payee_token,
            &payer.pubkey(),
            amount,
            DECIMALS,
        )
    };
    let batch = vendored::batch(&[transfer(1), transfer(2)]);
    market
        .send(&[batch], &[&payer])
        .await
        .expect("p-token runs a Batch of two TransferChecked");
    let (payer_token, payee_token) = (market.payer_token, market.payee_token);
    assert_eq!(market.token_balance(&payee_token).await, 3);
    assert_eq!(market.token_balance(&payer_token).await, 100 * USDC - 3);
}
