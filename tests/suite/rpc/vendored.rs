//! The third-party programs the test validator holds at their mainnet addresses: the
//! payment-channels program, and p-token in place of the classic SPL Token program.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::bpf_loader_upgradeable;
use anchor_spl::associated_token::get_associated_token_address;
use solana_signer::Signer;
use x402_protocol::Ledger;
use x402_testkit::vendored::{self, PAYMENT_CHANNELS, P_TOKEN};

use super::chain::{send, Plan, PRICE};

/// Asserts that `program` is a deployed upgradeable program running `elf`: its
/// program-data account holds `elf` after the 45-byte header (state tag, slot, upgrade
/// authority), with nothing but zeros after it.
async fn assert_deployed(ledger: &impl Ledger, program: &Pubkey, elf: &[u8]) {
    let account = ledger
        .account(program)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{program}'s account exists"));
    assert_eq!(
        account.owner,
        bpf_loader_upgradeable::ID,
        "{program} is a deployed program"
    );
    // UpgradeableLoaderState::Program: a 4-byte tag (2), then the program data's address.
    assert_eq!(
        account.data[..4],
        [2, 0, 0, 0],
        "{program} is a program account"
    );
    let data_address = Pubkey::try_from(&account.data[4..36]).expect("an address");
    let data = ledger.account(&data_address).await.unwrap().unwrap().data;
    assert!(
        data.len() >= 45 + elf.len(),
        "{program}'s program data holds the binary"
    );
    assert!(
        data[45..45 + elf.len()] == *elf,
        "{program} runs the committed binary"
    );
    assert!(data[45 + elf.len()..].iter().all(|&b| b == 0));
}

#[tokio::test]
async fn the_validator_runs_payment_channels_and_p_token_at_their_mainnet_addresses() {
    let chain = Plan::new().start().await;

    // The payment-channels program: deployed from the committed binary, and it runs
    // (its own error for bad data, not "program not found").
    assert_deployed(&chain.ledger, &PAYMENT_CHANNELS.id, PAYMENT_CHANNELS.elf).await;
    let blockhash = chain.ledger.latest_blockhash().await.unwrap();
    let probe = solana_transaction::Transaction::new_signed_with_payer(
        &[vendored::payment_channels_bad_data()],
        Some(&chain.payer.pubkey()),
        &[&chain.payer],
        blockhash,
    );
    let refusal = chain
        .ledger
        .submit(&probe.into())
        .await
        .expect_err("request_close without accounts is refused");
    let refusal = refusal.to_string();
    assert!(
        refusal.contains(&format!(
            "custom program error: {:#x}",
            vendored::NOT_ENOUGH_ACCOUNT_KEYS
        )),
        "the payment-channels program's NotEnoughAccountKeys, got: {refusal}"
    );

    // p-token at the SPL Token address: a Batch of two TransferChecked (which the classic
    // program refuses) moves both amounts.
    assert_deployed(&chain.ledger, &anchor_spl::token::ID, P_TOKEN.elf).await;
    let market = chain.market;
    let payer = chain.payer.pubkey();
    let from = get_associated_token_address(&payer, &market.mint);
    let to = get_associated_token_address(&market.merchant, &market.mint);
    let transfer = |amount| vendored::transfer_checked(&from, &market.mint, &to, &payer, amount, 6);
    send(
        &chain.ledger,
        vec![vendored::batch(&[transfer(1), transfer(2)])],
        vec![&chain.payer],
    )
    .await;
    assert_eq!(chain.token_balance(&market.merchant).await, 3);
    assert_eq!(chain.token_balance(&payer).await, 100 * PRICE - 3);
}
