//! Compute units the receipts program uses in the SBF VM, beside the floor of what it
//! does anyway (a bare `TransferChecked`, a bare account creation), printed as a table.
//!
//! ```sh
//! scripts/build-sbf
//! SBF_OUT_DIR=target/deploy cargo run -p x402-bench --bin compute-units
//! ```

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_spl::token::spl_token;
use anchor_spl::token_2022::spl_token_2022;
use solana_keypair::Keypair;
use solana_program_test::ProgramTestContext;
use solana_signer::Signer;
use solana_system_interface::instruction as system_instruction;
use x402_protocol::receipt::close_receipt_instruction;
use x402_protocol::{Reference, Requirement};
use x402_receipts::Receipt;
use x402_verifier::ledger::bank;

const DECIMALS: u8 = 6;
const AMOUNT: u64 = 10_000;

/// A payer holding tokens of a fresh mint of `token_program`, and a payee's account.
struct Market {
    token_program: Pubkey,
    mint: Pubkey,
    payer: Keypair,
    payer_token: Pubkey,
    payee: Pubkey,
    payee_token: Pubkey,
}

impl Market {
    async fn new(bank: &mut ProgramTestContext, token_program: Pubkey) -> Self {
        let mint = bank::create_mint(bank, token_program, DECIMALS, None).await;
        let payer = Keypair::new();
        bank::fund(bank, &payer.pubkey(), 1_000_000_000).await;
        let payer_token = bank::create_ata(bank, &payer.pubkey(), &mint, token_program).await;
        bank::mint_to(bank, &mint, &payer_token, 1_000 * AMOUNT, token_program).await;
        let payee = Pubkey::new_unique();
        let payee_token = bank::create_ata(bank, &payee, &mint, token_program).await;
        Market {
            token_program,
            mint,
            payer,
            payer_token,
            payee,
            payee_token,
        }
    }

    fn requirement(&self, expires_at: i64) -> Requirement {
        let mut reference = Pubkey::new_unique().to_bytes();
        reference[..8].copy_from_slice(&expires_at.to_be_bytes());
        Requirement {
            program: x402_receipts::ID,
            reference: Reference(reference),
            amount: AMOUNT,
            expires_at,
            mint: self.mint,
            token_program: self.token_program,
            pay_to: self.payee,
        }
    }

    fn transfer_checked(&self) -> Instruction {
        spl_token_2022::instruction::transfer_checked(
            &self.token_program,
            &self.payer_token,
            &self.mint,
            &self.payee_token,
            &self.payer.pubkey(),
            &[],
            AMOUNT,
            DECIMALS,
        )
        .expect("a valid transfer")
    }
}

/// The compute units of `instruction` alone in a transaction `signers[0]` pays for.
async fn units(
    bank: &mut ProgramTestContext,
    instruction: Instruction,
    signers: &[&Keypair],
) -> u64 {
    let tx = bank::transaction(bank, &[instruction], signers).await;
    let outcome = bank
        .banks_client
        .process_transaction_with_metadata(tx)
        .await
        .expect("the bank answers");
    outcome.result.expect("the transaction succeeds");
    outcome.metadata.expect("metadata").compute_units_consumed
}

#[tokio::main]
async fn main() {
    if !bank::runs_sbf() {
        eprintln!("compute-units: set SBF_OUT_DIR to the directory of x402_receipts.so (scripts/build-sbf writes target/deploy)");
        std::process::exit(2);
    }
    let mut bank = bank::program_test().start_with_context().await;
    let clock: anchor_lang::solana_program::clock::Clock = bank
        .banks_client
        .get_sysvar()
        .await
        .expect("the bank answers");
    let expires_at = clock.unix_timestamp + 600;
    let mut rows: Vec<(String, u64)> = Vec::new();

    for (name, token_program) in [
        ("SPL Token", spl_token::ID),
        ("Token-2022", spl_token_2022::ID),
    ] {
        let market = Market::new(&mut bank, token_program).await;
        let payer = market.payer.insecure_clone();
        let floor = units(&mut bank, market.transfer_checked(), &[&payer]).await;
        rows.push((format!("floor: bare TransferChecked ({name})"), floor));
        let pay = market
            .requirement(expires_at)
            .pay_instruction(&payer.pubkey(), &payer.pubkey());
        rows.push((
            format!("pay ({name}, payer funds the receipt)"),
            units(&mut bank, pay, &[&payer]).await,
        ));
        let sponsor = Keypair::new();
        bank::fund(&mut bank, &sponsor.pubkey(), 1_000_000_000).await;
        let pay = market
            .requirement(expires_at)
            .pay_instruction(&payer.pubkey(), &sponsor.pubkey());
        rows.push((
            format!("pay ({name}, sponsored)"),
            units(&mut bank, pay, &[&sponsor, &payer]).await,
        ));
    }

    let funder = bank.payer.insecure_clone();
    let account = Keypair::new();
    let rent = bank
        .banks_client
        .get_rent()
        .await
        .expect("the bank answers");
    let create = system_instruction::create_account(
        &funder.pubkey(),
        &account.pubkey(),
        rent.minimum_balance(Receipt::SPACE),
        Receipt::SPACE as u64,
        &x402_receipts::ID,
    );
    rows.push((
        "floor: bare account creation (a receipt's size)".into(),
        units(&mut bank, create, &[&funder, &account]).await,
    ));

    let market = Market::new(&mut bank, spl_token::ID).await;
    let payer = market.payer.insecure_clone();
    let requirement = market.requirement(expires_at);
    let pay = requirement.pay_instruction(&payer.pubkey(), &payer.pubkey());
    units(&mut bank, pay, &[&payer]).await;
    bank::set_time(&bank, expires_at + 1)
        .await
        .expect("the bank answers");
    let close =
        close_receipt_instruction(&x402_receipts::ID, &payer.pubkey(), &requirement.reference);
    rows.push((
        "close_receipt".into(),
        units(&mut bank, close, &[&payer]).await,
    ));

    let header = "instruction (SBF VM, solana-program-test 3.1.12)";
    let width = rows
        .iter()
        .map(|(name, _)| name.len())
        .chain([header.len()])
        .max()
        .unwrap_or(0);
    println!("{header:width$}  compute units");
    for (name, units) in rows {
        println!("{name:width$}  {units:>13}");
    }
}
