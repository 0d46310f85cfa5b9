//! A solana-program-test bank with the receipts program and the third-party programs
//! mainnet runs ([`VENDORED_PROGRAMS`]), and the set-up the embedded
//! ledger needs (fund, mints, token accounts, balances, the clock). What only tests need
//! on a bank (parties to a payment, accounts that are not ATAs, the events of a log) is
//! in the dev-only test kit (`testkit/`), built on these. Set-up transactions are paid
//! and signed by the bank's genesis payer, which is also every mint's authority.

use anchor_lang::prelude::{AccountInfo, Pubkey};
use anchor_lang::solana_program::clock::Clock;
use anchor_lang::solana_program::entrypoint::ProgramResult;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::solana_program::rent::Rent;
use anchor_spl::associated_token::{
    get_associated_token_address_with_program_id, spl_associated_token_account,
};
use anchor_spl::token_2022::spl_token_2022::{
    self,
    extension::{transfer_fee, ExtensionType, StateWithExtensions},
};
use solana_keypair::Keypair;
use solana_program_test::{
    processor, BanksClient, BanksClientError, ProgramTest, ProgramTestContext,
};
use solana_signer::Signer;
use solana_system_interface::instruction as system_instruction;
use solana_transaction::Transaction;

/// Anchor's `entry` ties every argument to one lifetime; solana-program-test's native
/// shim passes independent ones. All three outlive the call.
fn process_instruction<'a, 'b, 'c, 'd>(
    program_id: &'a Pubkey,
    accounts: &'b [AccountInfo<'c>],
    data: &'d [u8],
) -> ProgramResult {
    // SAFETY: the arguments live for the whole call; only their lifetimes are unified.
    let (program_id, accounts, data) = unsafe {
        (
            std::mem::transmute::<&'a Pubkey, &'c Pubkey>(program_id),
            std::mem::transmute::<&'b [AccountInfo<'c>], &'c [AccountInfo<'c>]>(accounts),
            std::mem::transmute::<&'d [u8], &'c [u8]>(data),
        )
    };
    x402_receipts::entry(program_id, accounts, data)
}

/// A third-party SBF program that every test world (this bank, the test validator) loads
/// at its mainnet address: its committed binary in `tests/fixtures/programs/` (provenance and
/// licence beside it; `scripts/check-vendored-programs` rebuilds and checks it).
pub struct VendoredProgram {
    /// Its directory in `tests/fixtures/programs/`.
    pub name: &'static str,
    pub id: Pubkey,
    pub elf: &'static [u8],
}

macro_rules! vendored_elf {
    ($file:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/programs/",
            $file
        ))
    };
}

/// The payment-channels program (the x402 `upto` and `batch-settlement` schemes),
/// built with its `mainnet-beta` feature.
pub const PAYMENT_CHANNELS: VendoredProgram = VendoredProgram {
    name: "payment-channels",
    id: Pubkey::from_str_const("CHNLxYvVA28MJP9PrFuDXccuoGXAx7jBacfLEkahyGsX"),
    elf: vendored_elf!("payment-channels/payment_channels.so"),
};

/// p-token, mainnet's SPL Token program since May 2026, in place of the classic program
/// the bank and the validator ship (it adds `Batch`, and costs far fewer compute units).
pub const P_TOKEN: VendoredProgram = VendoredProgram {
    name: "p-token",
    id: anchor_spl::token::ID,
    elf: vendored_elf!("p-token/pinocchio_token_program.so"),
};

/// The (non-upgradeable) BPF loader, which solana-program-test's own programs use.
const BPF_LOADER: Pubkey = Pubkey::from_str_const("BPFLoader2111111111111111111111111111111111");

/// The third-party programs of every test world.
pub const VENDORED_PROGRAMS: [VendoredProgram; 2] = [PAYMENT_CHANNELS, P_TOKEN];

/// A bank with the receipts program, the SPL programs (as BPF) and
/// [`VENDORED_PROGRAMS`] at their addresses (p-token replacing classic SPL Token). The
/// receipts program runs natively, unless `SBF_OUT_DIR` names a directory holding its SBF
/// binary (`x402_receipts.so`, from `scripts/build-sbf` or `anchor build`): then it runs in
/// the SBF VM, as on a cluster.
pub fn program_test() -> ProgramTest {
    let mut program = if runs_sbf() {
        let mut program = ProgramTest::new("x402_receipts", x402_receipts::ID, None);
        program.prefer_bpf(true);
        program
    } else {
        let mut program = ProgramTest::new(
            "x402_receipts",
            x402_receipts::ID,
            processor!(process_instruction),
        );
        program.prefer_bpf(false);
        program
    };
    // Added after the bank's own SPL programs, so they override them.
    for vendored in VENDORED_PROGRAMS {
        program.add_account(
            vendored.id,
            solana_account::Account {
                lamports: Rent::default().minimum_balance(vendored.elf.len()).max(1),
                data: vendored.elf.to_vec(),
                owner: BPF_LOADER,
                executable: true,
                rent_epoch: 0,
            },
        );
    }
    program
}

/// Whether the bank runs the program's SBF binary (`SBF_OUT_DIR` set), not the
/// program built natively.
pub fn runs_sbf() -> bool {
    std::env::var_os("SBF_OUT_DIR").is_some()
}

/// `instructions` in one transaction, `signers[0]` paying the fee. A fresh blockhash
/// makes a repeated transaction a new one rather than a duplicate.
pub async fn transaction(
    bank: &mut ProgramTestContext,
    instructions: &[Instruction],
    signers: &[&Keypair],
) -> Transaction {
    let blockhash = bank
        .get_new_latest_blockhash()
        .await
        .expect("the bank answers");
    Transaction::new_signed_with_payer(instructions, Some(&signers[0].pubkey()), signers, blockhash)
}

/// A set-up transaction paid by the genesis payer, with `extra_signers`; it must succeed.
pub async fn set_up(
    bank: &mut ProgramTestContext,
    ixs: &[Instruction],
    extra_signers: &[&Keypair],
) {
    let payer = bank.payer.insecure_clone();
    let mut signers = vec![&payer];
    signers.extend_from_slice(extra_signers);
    let tx = transaction(bank, ixs, &signers).await;
    bank.banks_client
        .process_transaction(tx)
        .await
        .expect("set-up transaction succeeds");
}

/// Sends `lamports` from the genesis payer.
pub async fn fund(bank: &mut ProgramTestContext, to: &Pubkey, lamports: u64) {
    let ix = system_instruction::transfer(&bank.payer.pubkey(), to, lamports);
    set_up(bank, &[ix], &[]).await;
}

/// A new mint of `token_program` with `decimals`, minted by the genesis payer; with a
/// transfer fee in basis points when given (Token-2022 only).
pub async fn create_mint(
    bank: &mut ProgramTestContext,
    token_program: Pubkey,
    decimals: u8,
    transfer_fee_bps: Option<u16>,
) -> Pubkey {
    let authority = bank.payer.pubkey();
    let mint = Keypair::new();
    let extensions: &[ExtensionType] = match transfer_fee_bps {
        Some(_) => &[ExtensionType::TransferFeeConfig],
        None => &[],
    };
    let space = ExtensionType::try_calculate_account_len::<spl_token_2022::state::Mint>(extensions)
        .expect("a mint's size");
    let rent = rent_for(bank, space).await;
    let mut ixs = vec![system_instruction::create_account(
        &authority,
        &mint.pubkey(),
        rent,
        space as u64,
        &token_program,
    )];
    if let Some(bps) = transfer_fee_bps {
        ixs.push(
            transfer_fee::instruction::initialize_transfer_fee_config(
                &token_program,
                &mint.pubkey(),
                None,
                None,
                bps,
                u64::MAX,
            )
            .expect("a valid fee instruction"),
        );
    }
    ixs.push(
        spl_token_2022::instruction::initialize_mint2(
            &token_program,
            &mint.pubkey(),
            &authority,
            None,
            decimals,
        )
        .expect("a valid mint instruction"),
    );
    set_up(bank, &ixs, &[&mint]).await;
    mint.pubkey()
}

/// Creates `owner`'s associated token account for `mint` through the real ATA program
/// (nothing happens if it exists).
pub async fn create_ata(
    bank: &mut ProgramTestContext,
    owner: &Pubkey,
    mint: &Pubkey,
    token_program: Pubkey,
) -> Pubkey {
    let ix = spl_associated_token_account::instruction::create_associated_token_account_idempotent(
        &bank.payer.pubkey(),
        owner,
        mint,
        &token_program,
    );
    set_up(bank, &[ix], &[]).await;
    get_associated_token_address_with_program_id(owner, mint, &token_program)
}

/// Mints `amount` base units of `mint` into the token account `to`.
pub async fn mint_to(
    bank: &mut ProgramTestContext,
    mint: &Pubkey,
    to: &Pubkey,
    amount: u64,
    token_program: Pubkey,
) {
    let ix = spl_token_2022::instruction::mint_to(
        &token_program,
        mint,
        to,
        &bank.payer.pubkey(),
        &[],
        amount,
    )
    .expect("a valid mint_to instruction");
    set_up(bank, &[ix], &[]).await;
}

/// The balance of the token account `account` (SPL Token or Token-2022); 0 when there
/// is none.
pub async fn token_balance(banks: &BanksClient, account: &Pubkey) -> u64 {
    let Some(account) = banks.get_account(*account).await.expect("the bank answers") else {
        return 0;
    };
    StateWithExtensions::<spl_token_2022::state::Account>::unpack(&account.data)
        .expect("a token account")
        .base
        .amount
}

/// Sets the bank's clock.
pub async fn set_time(
    bank: &ProgramTestContext,
    unix_timestamp: i64,
) -> Result<(), BanksClientError> {
    let mut clock: Clock = bank.banks_client.get_sysvar().await?;
    clock.unix_timestamp = unix_timestamp;
    bank.set_sysvar(&clock);
    Ok(())
}

/// The rent exemption of an account of `space` bytes.
pub async fn rent_for(bank: &mut ProgramTestContext, space: usize) -> u64 {
    bank.banks_client
        .get_rent()
        .await
        .expect("the bank answers")
        .minimum_balance(space)
}
