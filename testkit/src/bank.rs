//! The bank set-up of the tests and the benchmarks: the verifier's own helpers (the bank
//! with the receipts program, funding, mints, ATAs, balances, the clock), and what only
//! tests need besides: the parties to a payment, token accounts that are not ATAs, and
//! the events of a transaction's log.

use anchor_lang::prelude::Pubkey;
use anchor_spl::token_2022::spl_token_2022::{self, extension::ExtensionType};
use solana_keypair::Keypair;
use solana_program_test::ProgramTestContext;
use solana_signer::Signer;
use solana_system_interface::instruction as system_instruction;

pub use x402_verifier::ledger::bank::{
    create_ata, create_mint, fund, mint_to, program_test, runs_sbf, set_time, token_balance,
    transaction,
};
use x402_verifier::ledger::bank::{rent_for, set_up};

/// The events a transaction's log holds (`Program data: <base64>` lines), in order; `None`
/// when the program runs natively, where Anchor's `sol_log_data` does nothing and events
/// cannot be seen.
pub fn events(logs: &[String]) -> Option<Vec<Vec<u8>>> {
    use base64::Engine as _;
    runs_sbf().then(|| {
        logs.iter()
            .filter_map(|line| line.strip_prefix("Program data: "))
            .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .collect()
    })
}

/// What a payment needs: a mint, a payer with SOL holding tokens of it, and a payee with
/// an empty associated token account.
pub struct Parties {
    pub token_program: Pubkey,
    pub mint: Pubkey,
    pub payer: Keypair,
    pub payer_token: Pubkey,
    pub payee: Pubkey,
    pub payee_token: Pubkey,
}

/// Sets up [`Parties`]: a new mint of `token_program` (with a transfer fee when given),
/// the payer holding `tokens` and 1 SOL.
pub async fn parties(
    bank: &mut ProgramTestContext,
    token_program: Pubkey,
    decimals: u8,
    transfer_fee_bps: Option<u16>,
    tokens: u64,
) -> Parties {
    let mint = create_mint(bank, token_program, decimals, transfer_fee_bps).await;
    let payer = Keypair::new();
    fund(bank, &payer.pubkey(), 1_000_000_000).await;
    let payer_token = create_ata(bank, &payer.pubkey(), &mint, token_program).await;
    mint_to(bank, &mint, &payer_token, tokens, token_program).await;
    let payee = Pubkey::new_unique();
    let payee_token = create_ata(bank, &payee, &mint, token_program).await;
    Parties {
        token_program,
        mint,
        payer,
        payer_token,
        payee,
        payee_token,
    }
}

/// Creates a token account for `owner` at a fresh address that is not its ATA.
pub async fn create_token_account(
    bank: &mut ProgramTestContext,
    owner: &Pubkey,
    mint: &Pubkey,
    token_program: Pubkey,
) -> Pubkey {
    let account = Keypair::new();
    let space = ExtensionType::try_calculate_account_len::<spl_token_2022::state::Account>(&[])
        .expect("an account's size");
    let rent = rent_for(bank, space).await;
    let ixs = [
        system_instruction::create_account(
            &bank.payer.pubkey(),
            &account.pubkey(),
            rent,
            space as u64,
            &token_program,
        ),
        spl_token_2022::instruction::initialize_account3(
            &token_program,
            &account.pubkey(),
            mint,
            owner,
        )
        .expect("a valid account instruction"),
    ];
    set_up(bank, &ixs, &[&account]).await;
    account.pubkey()
}
