//! `pay`: the transfer and the receipt, and every reason to refuse them.

use anchor_lang::error::ErrorCode;
use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::clock::Clock;
use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_receipts::{PaymentSettled, ReceiptError};

use super::support::*;

const EXPIRES_IN: i64 = 300;

fn receipt_error(error: ReceiptError) -> u32 {
    error.into()
}

fn anchor_error(error: ErrorCode) -> u32 {
    error.into()
}

#[tokio::test]
async fn pays_the_payee_and_records_every_receipt_field() {
    let mut market = Market::new(MintKind::SplToken).await;
    let reference = new_reference();
    let expires_at = market.now().await + EXPIRES_IN;
    let pay = market.pay(reference, 10_000, expires_at);
    let payer = market.payer.insecure_clone();

    let events = market
        .send_for_events(&[pay.instruction()], &[&payer])
        .await;

    assert_eq!(
        market.token_balance(&pay.payer_token).await,
        100 * USDC - 10_000
    );
    assert_eq!(market.token_balance(&pay.payee_token).await, 10_000);
    let clock: Clock = market.bank.banks_client.get_sysvar().await.unwrap();
    let (address, bump) = Pubkey::find_program_address(
        &[x402_receipts::RECEIPT_SEED, &reference],
        &x402_receipts::ID,
    );
    let receipt = market.receipt(&reference).await.expect("receipt created");
    assert_eq!(
        receipt,
        x402_receipts::Receipt {
            reference,
            payer: payer.pubkey(),
            payee: market.payee,
            mint: market.mint,
            amount: 10_000,
            rent_payer: payer.pubkey(),
            paid_at: clock.unix_timestamp,
            slot: clock.slot,
            expires_at,
            bump,
        }
    );
    let account = market.account(&address).await.unwrap();
    assert_eq!(account.data.len(), x402_receipts::Receipt::SPACE);
    let rent = market.bank.banks_client.get_rent().await.unwrap();
    assert!(
        rent.is_exempt(account.lamports, account.data.len()),
        "the receipt is rent-exempt"
    );

    if let Some(events) = events {
        let settled: Vec<PaymentSettled> = events.iter().filter_map(|e| decode_event(e)).collect();
        assert_eq!(
            settled,
            [PaymentSettled {
                reference,
                receipt: address,
                payer: payer.pubkey(),
                payee: market.payee,
                mint: market.mint,
                amount: 10_000,
                expires_at,
            }]
        );
    }
}

#[tokio::test]
async fn pays_with_a_token_2022_mint_without_fee() {
    let mut market = Market::new(MintKind::Token2022).await;
    let reference = new_reference();
    let expires_at = market.now().await + EXPIRES_IN;
    let pay = market.pay(reference, USDC, expires_at);
    let payer = market.payer.insecure_clone();

    market.send(&[pay.instruction()], &[&payer]).await.unwrap();

    assert_eq!(market.token_balance(&pay.payee_token).await, USDC);
    let receipt = market.receipt(&reference).await.expect("receipt created");
    assert_eq!((receipt.mint, receipt.amount), (market.mint, USDC));
}

#[tokio::test]
async fn pays_until_the_second_of_expiry_and_refuses_after_it() {
    let mut market = Market::new(MintKind::SplToken).await;
    let payer = market.payer.insecure_clone();
    let now = market.now().await;

    let late = market.pay(new_reference(), USDC, now - 1);
    market
        .assert_pay_refused(
            &late,
            &[&payer],
            receipt_error(ReceiptError::ChallengeExpired),
        )
        .await;

    let on_time = market.pay(new_reference(), USDC, now);
    market
        .send(&[on_time.instruction()], &[&payer])
        .await
        .unwrap();
    assert!(market.receipt(&on_time.reference).await.is_some());
}

#[tokio::test]
async fn refuses_a_zero_amount() {
    let mut market = Market::new(MintKind::SplToken).await;
    let payer = market.payer.insecure_clone();
    let expires_at = market.now().await + EXPIRES_IN;
    let pay = market.pay(new_reference(), 0, expires_at);
    market
        .assert_pay_refused(&pay, &[&payer], receipt_error(ReceiptError::ZeroAmount))
        .await;
}

#[tokio::test]
async fn a_reference_is_paid_once_by_anyone_with_any_amount() {
    let mut market = Market::new(MintKind::SplToken).await;
    let payer = market.payer.insecure_clone();
    let reference = new_reference();
    let expires_at = market.now().await + EXPIRES_IN;
    let first = market.pay(reference, USDC, expires_at);
    market
        .send(&[first.instruction()], &[&payer])
        .await
        .unwrap();
    let paid = market.receipt(&reference).await.unwrap();

    // The same payer again, with the same and with another amount.
    let refused = receipt_error(ReceiptError::ReferenceAlreadyPaid);
    market.assert_pay_refused(&first, &[&payer], refused).await;
    let more = Pay {
        amount: 2 * USDC,
        ..first.clone()
    };
    market.assert_pay_refused(&more, &[&payer], refused).await;

    // Someone else, from their own token account.
    let (other, other_token) = market.new_payer(USDC).await;
    let by_other = Pay {
        payer: other.pubkey(),
        rent_payer: other.pubkey(),
        payer_token: other_token,
        ..first.clone()
    };
    market
        .assert_pay_refused(&by_other, &[&other], refused)
        .await;
    assert_eq!(market.token_balance(&other_token).await, USDC);

    assert_eq!(
        market.receipt(&reference).await.unwrap(),
        paid,
        "the receipt is unchanged"
    );
}

#[tokio::test]
async fn refuses_to_spend_a_token_account_the_payer_does_not_own() {
    let mut market = Market::new(MintKind::SplToken).await;
    let expires_at = market.now().await + EXPIRES_IN;
    // A signer tries to spend from the market payer's token account.
    let (thief, _) = market.new_payer(0).await;
    let pay = Pay {
        payer: thief.pubkey(),
        rent_payer: thief.pubkey(),
        ..market.pay(new_reference(), USDC, expires_at)
    };
    market
        .assert_pay_refused(
            &pay,
            &[&thief],
            anchor_error(ErrorCode::ConstraintTokenOwner),
        )
        .await;
}

#[tokio::test]
async fn refuses_a_payer_token_account_of_another_mint() {
    let mut market = Market::new(MintKind::SplToken).await;
    let payer = market.payer.insecure_clone();
    let expires_at = market.now().await + EXPIRES_IN;
    let other_mint = market.new_mint().await;
    let token_program = market.token_program;
    let other_token = create_ata(
        &mut market.bank,
        &payer.pubkey(),
        &other_mint,
        token_program,
    )
    .await;
    mint_to(
        &mut market.bank,
        &other_mint,
        &other_token,
        USDC,
        token_program,
    )
    .await;

    let pay = Pay {
        payer_token: other_token,
        ..market.pay(new_reference(), USDC, expires_at)
    };
    market
        .assert_pay_refused(
            &pay,
            &[&payer],
            anchor_error(ErrorCode::ConstraintTokenMint),
        )
        .await;
    assert_eq!(market.token_balance(&other_token).await, USDC);
}

#[tokio::test]
async fn refuses_a_payee_token_account_that_is_not_the_associated_one() {
    let mut market = Market::new(MintKind::SplToken).await;
    let payer = market.payer.insecure_clone();
    let expires_at = market.now().await + EXPIRES_IN;
    let (payee, mint, token_program) = (market.payee, market.mint, market.token_program);
    // The payee owns this account, for the right mint, but it is not ATA(payee, mint).
    let side_account = create_token_account(&mut market.bank, &payee, &mint, token_program).await;

    let pay = Pay {
        payee_token: side_account,
        ..market.pay(new_reference(), USDC, expires_at)
    };
    market
        .assert_pay_refused(
            &pay,
            &[&payer],
            anchor_error(ErrorCode::ConstraintAssociated),
        )
        .await;
    assert_eq!(market.token_balance(&side_account).await, 0);
}

#[tokio::test]
async fn refuses_a_payment_from_an_account_into_itself() {
    let mut market = Market::new(MintKind::SplToken).await;
    let payer = market.payer.insecure_clone();
    let expires_at = market.now().await + EXPIRES_IN;
    // The payer names itself as payee: source and destination are one account.
    let pay = Pay {
        payee: payer.pubkey(),
        payee_token: market.payer_token,
        ..market.pay(new_reference(), USDC, expires_at)
    };
    let before = market.token_balance(&pay.payer_token).await;
    let result = market.send(&[pay.instruction()], &[&payer]).await;
    assert_eq!(
        custom_error(result),
        Some(anchor_error(ErrorCode::ConstraintDuplicateMutableAccount))
    );
    assert_eq!(market.token_balance(&pay.payer_token).await, before);
    assert!(market.account(&pay.receipt).await.is_none());
}

#[tokio::test]
async fn refuses_a_mint_whose_transfer_fee_shorts_the_payee() {
    // 1% fee: the payee would receive 0.99 of what the payer sends.
    let mut market = Market::new(MintKind::Token2022WithFee(100)).await;
    let payer = market.payer.insecure_clone();
    let expires_at = market.now().await + EXPIRES_IN;
    let pay = market.pay(new_reference(), USDC, expires_at);
    market
        .assert_pay_refused(
            &pay,
            &[&payer],
            receipt_error(ReceiptError::AmountNotReceived),
        )
        .await;
}

#[tokio::test]
async fn refuses_a_token_program_that_is_neither_spl_token_nor_token_2022() {
    let mut market = Market::new(MintKind::SplToken).await;
    let payer = market.payer.insecure_clone();
    let expires_at = market.now().await + EXPIRES_IN;
    for impostor in [anchor_lang::system_program::ID, x402_receipts::ID] {
        let pay = Pay {
            token_program: impostor,
            ..market.pay(new_reference(), USDC, expires_at)
        };
        market
            .assert_pay_refused(&pay, &[&payer], anchor_error(ErrorCode::InvalidProgramId))
            .await;
    }
}

#[tokio::test]
async fn a_sponsor_pays_the_rent_and_the_fee_and_the_payer_pays_no_sol() {
    let mut market = Market::new(MintKind::SplToken).await;
    let payer = market.payer.insecure_clone();
    let sponsor = Keypair::new();
    fund(&mut market.bank, &sponsor.pubkey(), WALLET_LAMPORTS).await;
    let reference = new_reference();
    let expires_at = market.now().await + EXPIRES_IN;
    let pay = Pay {
        rent_payer: sponsor.pubkey(),
        ..market.pay(reference, USDC, expires_at)
    };
    let payer_sol = market.lamports(&payer.pubkey()).await;
    let sponsor_sol = market.lamports(&sponsor.pubkey()).await;

    // The sponsor is the fee payer and the rent payer; the payer only signs.
    market
        .send(&[pay.instruction()], &[&sponsor, &payer])
        .await
        .unwrap();

    assert_eq!(
        market.lamports(&payer.pubkey()).await,
        payer_sol,
        "the payer spent no SOL"
    );
    let rent = market.lamports(&pay.receipt).await;
    assert!(rent > 0);
    assert!(
        market.lamports(&sponsor.pubkey()).await <= sponsor_sol - rent,
        "the sponsor paid the rent"
    );
    let receipt = market.receipt(&reference).await.unwrap();
    assert_eq!(
        (receipt.payer, receipt.rent_payer),
        (payer.pubkey(), sponsor.pubkey())
    );
    assert_eq!(market.token_balance(&pay.payee_token).await, USDC);
}
