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
use x402_protocol::janitor::close_receipt_instruction;
use x402_protocol::{Reference, Requirement};
use x402_receipts::Receipt;
use x402_testkit::bank;

const DECIMALS: u8 = 6;
const AMOUNT: u64 = 10_000;

/// A payer holding tokens of a fresh mint of `token_program`, and a payee's account.
struct Market(bank::Parties);

impl Market {
    async fn new(bank: &mut ProgramTestContext, token_program: Pubkey) -> Self {
        Market(bank::parties(bank, token_program, DECIMALS, None, 1_000 * AMOUNT).await)
    }

    fn requirement(&self, expires_at: i64) -> Requirement {
        let mut reference = Pubkey::new_unique().to_bytes();
        reference[..8].copy_from_slice(&expires_at.to_be_bytes());
        Requirement {
            program: x402_receipts::ID,
            reference: Reference(reference),
            amount: AMOUNT,
            expires_at,
            mint: self.0.mint,
            token_program: self.0.token_program,
            pay_to: self.0.payee,
        }
    }

    fn transfer_checked(&self) -> Instruction {
        let p = &self.0;
        spl_token_2022::instruction::transfer_checked(
            &p.token_program,
            &p.payer_token,
            &p.mint,
            &p.payee_token,
            &p.payer.pubkey(),
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

/// How many payments each `pay` row measures: the units vary with the addresses
/// (`find_program_address` tries bump seeds until one is off the curve).
const SAMPLES: usize = 10;

/// Smallest, median and largest of `samples`.
fn spread(mut samples: Vec<u64>) -> [u64; 3] {
    samples.sort_unstable();
    [
        samples[0],
        samples[samples.len() / 2],
        samples[samples.len() - 1],
    ]
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
    let mut rows: Vec<(String, [u64; 3])> = Vec::new();

    for (name, token_program) in [
        ("SPL Token", spl_token::ID),
        ("Token-2022", spl_token_2022::ID),
    ] {
        let (mut floor, mut own, mut sponsored) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..SAMPLES {
            // New parties each time: new payee and mint addresses, new bump searches.
            let market = Market::new(&mut bank, token_program).await;
            let payer = market.0.payer.insecure_clone();
            floor.push(units(&mut bank, market.transfer_checked(), &[&payer]).await);
            let pay = market
                .requirement(expires_at)
                .pay_instruction(&payer.pubkey(), &payer.pubkey());
            own.push(units(&mut bank, pay, &[&payer]).await);
            let sponsor = Keypair::new();
            bank::fund(&mut bank, &sponsor.pubkey(), 1_000_000_000).await;
            let pay = market
                .requirement(expires_at)
                .pay_instruction(&payer.pubkey(), &sponsor.pubkey());
            sponsored.push(units(&mut bank, pay, &[&sponsor, &payer]).await);
        }
        rows.push((
            format!("floor: bare TransferChecked ({name})"),
            spread(floor),
        ));
        rows.push((
            format!("pay ({name}, payer funds the receipt)"),
            spread(own),
        ));
        rows.push((format!("pay ({name}, sponsored)"), spread(sponsored)));
    }

    let funder = bank.payer.insecure_clone();
    let rent = bank
        .banks_client
        .get_rent()
        .await
        .expect("the bank answers");
    let mut create = Vec::new();
    for _ in 0..SAMPLES {
        let account = Keypair::new();
        let ix = system_instruction::create_account(
            &funder.pubkey(),
            &account.pubkey(),
            rent.minimum_balance(Receipt::SPACE),
            Receipt::SPACE as u64,
            &x402_receipts::ID,
        );
        create.push(units(&mut bank, ix, &[&funder, &account]).await);
    }
    rows.push((
        "floor: bare account creation (a receipt's size)".into(),
        spread(create),
    ));

    let mut closing = Vec::new();
    let market = Market::new(&mut bank, spl_token::ID).await;
    let payer = market.0.payer.insecure_clone();
    for _ in 0..SAMPLES {
        let requirement = market.requirement(expires_at);
        let pay = requirement.pay_instruction(&payer.pubkey(), &payer.pubkey());
        units(&mut bank, pay, &[&payer]).await;
        closing.push(requirement.reference);
    }
    bank::set_time(&bank, expires_at + 1)
        .await
        .expect("the bank answers");
    let mut close = Vec::new();
    for reference in closing {
        let ix = close_receipt_instruction(&x402_receipts::ID, &payer.pubkey(), &reference);
        close.push(units(&mut bank, ix, &[&payer]).await);
    }
    rows.push(("close_receipt".into(), spread(close)));

    let header = format!("instruction (SBF VM, {SAMPLES} samples each)");
    let width = rows
        .iter()
        .map(|(name, _)| name.len())
        .chain([header.len()])
        .max()
        .unwrap_or(0);
    println!(
        "{header:width$}  {:>7}  {:>7}  {:>7}",
        "min", "median", "max"
    );
    for (name, [min, median, max]) in rows {
        println!("{name:width$}  {min:>7}  {median:>7}  {max:>7}");
    }
}
