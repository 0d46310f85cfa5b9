//! Instructions that show which third-party program runs at an address of a test world
//! (`x402_verifier::ledger::bank::VENDORED_PROGRAMS`): the payment-channels program's own
//! refusal of bad data, and p-token's `Batch`, which the classic SPL Token program refuses.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::{AccountMeta, Instruction};
use anchor_spl::token::spl_token;

pub use x402_verifier::ledger::bank::{PAYMENT_CHANNELS, P_TOKEN, VENDORED_PROGRAMS};

/// The payment-channels program's `request_close` (discriminator 5) without its two
/// accounts: the program refuses it with its own [`NOT_ENOUGH_ACCOUNT_KEYS`], where an
/// address without the program would give "program not found".
pub fn payment_channels_bad_data() -> Instruction {
    Instruction::new_with_bytes(PAYMENT_CHANNELS.id, &[5], vec![])
}

/// The payment-channels program's custom error `NotEnoughAccountKeys`.
pub const NOT_ENOUGH_ACCOUNT_KEYS: u32 = 9;

/// A `TransferChecked` of `amount` from `source` to `destination` (both of `mint`, of
/// the SPL Token program), signed by `owner`.
pub fn transfer_checked(
    source: &Pubkey,
    mint: &Pubkey,
    destination: &Pubkey,
    owner: &Pubkey,
    amount: u64,
    decimals: u8,
) -> Instruction {
    spl_token::instruction::transfer_checked(
        &spl_token::ID,
        source,
        mint,
        destination,
        owner,
        &[],
        amount,
        decimals,
    )
    .expect("a transfer instruction")
}

/// p-token's `Batch` (discriminator 255) of SPL Token `instructions`: each one's account
/// count and data length, then its data; their accounts one after the other.
pub fn batch(instructions: &[Instruction]) -> Instruction {
    let mut data = vec![255u8];
    let mut accounts: Vec<AccountMeta> = Vec::new();
    for instruction in instructions {
        assert_eq!(
            instruction.program_id,
            spl_token::ID,
            "an SPL Token instruction"
        );
        data.push(u8::try_from(instruction.accounts.len()).expect("few accounts"));
        data.push(u8::try_from(instruction.data.len()).expect("short data"));
        data.extend_from_slice(&instruction.data);
        accounts.extend(instruction.accounts.iter().cloned());
    }
    Instruction {
        program_id: spl_token::ID,
        accounts,
        data,
    }
}
