use anchor_lang::prelude::*;

use crate::events::ReceiptClosed;
use crate::{Receipt, ReceiptError, RECEIPT_SEED};

#[derive(Accounts)]
pub struct CloseReceipt<'info> {
    /// Funded the receipt; receives its lamports back.
    #[account(mut)]
    pub rent_payer: Signer<'info>,

    /// The expired receipt to close.
    #[account(
        mut,
        seeds = [RECEIPT_SEED, receipt.reference.as_ref()],
        bump = receipt.bump,
        has_one = rent_payer @ ReceiptError::NotRentPayer,
        close = rent_payer,
    )]
    pub receipt: Account<'info, Receipt>,
}

impl CloseReceipt<'_> {
    pub fn validate(&self) -> Result<()> {
        require!(
            Clock::get()?.unix_timestamp > self.receipt.expires_at,
            ReceiptError::ReceiptNotExpired
        );
        Ok(())
    }
}

pub fn handle_close_receipt(ctx: Context<CloseReceipt>) -> Result<()> {
    // `close = rent_payer` moves the lamports, hands the account back to the System
    // Program and empties its data when the instruction exits.
    emit!(ReceiptClosed {
        reference: ctx.accounts.receipt.reference,
        receipt: ctx.accounts.receipt.key(),
        rent_payer: ctx.accounts.rent_payer.key(),
    });
    Ok(())
}
