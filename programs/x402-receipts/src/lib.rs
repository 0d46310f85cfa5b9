//! x402 receipts: a USDC payment on Solana that leaves an on-chain receipt.
//!
//! `pay` moves the tokens and creates the receipt account seeded by the x402
//! challenge's 32-byte reference, in one instruction. A reference can therefore be
//! paid exactly once, and anyone can audit the payment by reading that account.
//! `close_receipt` returns the receipt's rent deposit once the challenge has expired.

use anchor_lang::prelude::*;

pub mod error;
pub mod events;
pub mod instructions;
pub mod state;

pub use error::ReceiptError;
pub use events::{PaymentSettled, ReceiptClosed};
pub use instructions::*;
pub use state::Receipt;

declare_id!("B6YDeqPwMQDKsDhCyqBxuW8secdHEx7oMRr3Fww75CGr");

/// Seed prefix of every receipt account: `[RECEIPT_SEED, reference]`.
#[constant]
pub const RECEIPT_SEED: &[u8] = b"receipt";

#[program]
pub mod x402_receipts {
    use super::*;

    /// Pays `amount` base units of `mint` from the payer to the payee's associated token
    /// account and creates the receipt for `reference`, atomically. A reference can be
    /// paid once: a second `pay` for it fails and moves nothing. Refused once the clock
    /// is past `expires_at`, the challenge's expiry in unix seconds.
    #[access_control(ctx.accounts.validate(amount, expires_at))]
    pub fn pay(ctx: Context<Pay>, reference: [u8; 32], amount: u64, expires_at: i64) -> Result<()> {
        handle_pay(ctx, reference, amount, expires_at)
    }

    /// Closes an expired receipt and returns its rent deposit to whoever funded it.
    /// Only the receipt's `rent_payer` may close it, and only once the clock is past
    /// the receipt's `expires_at`, when its reference can no longer be paid.
    #[access_control(ctx.accounts.validate())]
    pub fn close_receipt(ctx: Context<CloseReceipt>) -> Result<()> {
        handle_close_receipt(ctx)
    }
}
