//! An `upto` channel opened on the payment-channels program (the committed binary, at its
//! mainnet address) with the `open` the protocol builds: the program takes the deposit
//! into the channel, and the transaction passes the checks the fee payer runs before it
//! co-signs.

use anchor_lang::solana_program::clock::Clock;
use anchor_spl::associated_token::get_associated_token_address_with_program_id;
use solana_keypair::Keypair;
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;
use x402_protocol::scheme::exact::MEMO_PROGRAM;
use x402_protocol::scheme::upto::{
    open_instruction, validate_open, Opening, UptoTerms, PAYMENT_CHANNELS_PROGRAM,
};
use x402_protocol::SponsorPolicy;
use x402_testkit::bank;

use super::support::*;

#[tokio::test]
async fn the_protocols_open_escrows_the_ceiling_in_a_channel_of_the_program() {
    let mut market = Market::new(MintKind::SplToken).await;
    let fee_payer = Keypair::new();
    fund(&mut market.bank, &fee_payer.pubkey(), WALLET_LAMPORTS).await;
    let terms = UptoTerms {
        mint: market.mint,
        token_program: market.token_program,
        pay_to: market.payee,
        max_amount: 2 * USDC,
        fee_payer: fee_payer.pubkey(),
        receiver_authorizer: Keypair::new().pubkey(),
        withdraw_delay: 3_600,
        memo: None,
    };
    let slot = market
        .bank
        .banks_client
        .get_sysvar::<Clock>()
        .await
        .expect("the clock")
        .slot;
    let opening = Opening {
        payer: market.payer.pubkey(),
        salt: 7,
        open_slot: slot,
    };
    let (open, channel) = open_instruction(&terms, &opening);
    let memo = anchor_lang::solana_program::instruction::Instruction {
        program_id: MEMO_PROGRAM,
        accounts: Vec::new(),
        data: b"0123456789abcdef0123456789abcdef".to_vec(),
    };
    let buyer = market.payer.insecure_clone();
    let tx = bank::transaction(&mut market.bank, &[open, memo], &[&fee_payer, &buyer]).await;

    // What the fee payer checks before it co-signs passes on this very transaction.
    let policy = SponsorPolicy {
        fee_payer: fee_payer.pubkey(),
        max_compute_unit_price: 0,
        max_compute_unit_limit: 0,
    };
    let versioned = VersionedTransaction::from(tx.clone());
    assert_eq!(
        validate_open(&versioned, &terms, &opening, &channel, &policy),
        Ok(())
    );

    let before = market.token_balance(&market.payer_token.clone()).await;
    market
        .bank
        .banks_client
        .process_transaction(tx)
        .await
        .expect("the program opens the channel");
    let account = market.account(&channel).await.expect("the channel exists");
    assert_eq!(account.owner, PAYMENT_CHANNELS_PROGRAM);
    let escrow =
        get_associated_token_address_with_program_id(&channel, &market.mint, &market.token_program);
    assert_eq!(market.token_balance(&escrow).await, 2 * USDC, "the deposit");
    let payer_token = market.payer_token;
    assert_eq!(market.token_balance(&payer_token).await, before - 2 * USDC);
}
