use anchor_lang::prelude::*;
use anchor_lang::system_program::{self, Allocate, Assign, CreateAccount, Transfer};
use anchor_spl::token_interface::{self, Mint, TokenAccount, TokenInterface, TransferChecked};

use crate::events::PaymentSettled;
use crate::{Receipt, ReceiptError, RECEIPT_SEED};

#[derive(Accounts)]
#[instruction(reference: [u8; 32])]
pub struct Pay<'info> {
    /// The token authority that pays.
    pub payer: Signer<'info>,

    /// Funds the receipt's rent deposit and gets it back on close: the payer itself, or
    /// a sponsor such as the merchant's verifier.
    #[account(mut)]
    pub rent_payer: Signer<'info>,

    /// The receipt for `reference`, created by this instruction; it must not exist yet.
    /// Lamports sent to its address beforehand do not block the payment.
    /// CHECK: address checked by `seeds`; created by `create_receipt_account`, not `init`.
    #[account(mut, seeds = [RECEIPT_SEED, reference.as_ref()], bump)]
    pub receipt: UncheckedAccount<'info>,

    /// The token paid (USDC by default).
    #[account(mint::token_program = token_program)]
    pub mint: InterfaceAccount<'info, Mint>,

    /// The payer's token account for `mint`.
    #[account(
        mut,
        token::mint = mint,
        token::authority = payer,
        token::token_program = token_program,
    )]
    pub payer_token: InterfaceAccount<'info, TokenAccount>,

    /// The merchant's wallet (the challenge's `payTo`).
    /// CHECK: only an address; `payee_token` must be its associated token account.
    pub payee: UncheckedAccount<'info>,

    /// The payee's associated token account for `mint`. Anchor refuses it when it is
    /// `payer_token` itself (two mutable accounts may not be one).
    #[account(
        mut,
        associated_token::mint = mint,
        associated_token::authority = payee,
        associated_token::token_program = token_program,
    )]
    pub payee_token: InterfaceAccount<'info, TokenAccount>,

    /// SPL Token or Token-2022.
    pub token_program: Interface<'info, TokenInterface>,

    pub system_program: Program<'info, System>,
}

impl Pay<'_> {
    pub fn validate(&self, amount: u64, expires_at: i64) -> Result<()> {
        require!(amount > 0, ReceiptError::ZeroAmount);
        require!(
            Clock::get()?.unix_timestamp <= expires_at,
            ReceiptError::ChallengeExpired
        );
        // A receipt that exists is owned by this program; lamports alone (a pre-funded
        // address) do not count as a payment.
        let receipt = self.receipt.to_account_info();
        require!(
            receipt.owner == &system_program::ID && receipt.data_is_empty(),
            ReceiptError::ReferenceAlreadyPaid
        );
        Ok(())
    }
}

pub fn handle_pay(
    ctx: Context<Pay>,
    reference: [u8; 32],
    amount: u64,
    expires_at: i64,
) -> Result<()> {
    let bump = ctx.bumps.receipt;
    let clock = Clock::get()?;
    let accounts = ctx.accounts;

    accounts.create_receipt_account(&[&[RECEIPT_SEED, reference.as_ref(), &[bump]]])?;

    // Token-2022 fees make the received amount differ from the sent one: measure it.
    let balance_before = accounts.payee_token.amount;
    token_interface::transfer_checked(
        CpiContext::new(
            accounts.token_program.key(),
            TransferChecked {
                from: accounts.payer_token.to_account_info(),
                mint: accounts.mint.to_account_info(),
                to: accounts.payee_token.to_account_info(),
                authority: accounts.payer.to_account_info(),
            },
        ),
        amount,
        accounts.mint.decimals,
    )?;
    accounts.payee_token.reload()?;
    let received = accounts
        .payee_token
        .amount
        .checked_sub(balance_before)
        .ok_or(ReceiptError::Overflow)?;
    require!(received >= amount, ReceiptError::AmountNotReceived);

    let receipt = Receipt {
        reference,
        payer: accounts.payer.key(),
        payee: accounts.payee.key(),
        mint: accounts.mint.key(),
        amount: received,
        rent_payer: accounts.rent_payer.key(),
        paid_at: clock.unix_timestamp,
        slot: clock.slot,
        expires_at,
        bump,
    };
    receipt.try_serialize(&mut &mut accounts.receipt.try_borrow_mut_data()?[..])?;

    emit!(PaymentSettled {
        reference,
        receipt: accounts.receipt.key(),
        payer: receipt.payer,
        payee: receipt.payee,
        mint: receipt.mint,
        amount: received,
        expires_at,
    });
    Ok(())
}

impl<'info> Pay<'info> {
    /// Creates the receipt account, rent-exempt and owned by this program.
    ///
    /// Anyone who learns a reference can send lamports to its receipt address first.
    /// Anchor's `init` then uses the System Program's `CreateAccountAllowPrefund`
    /// (SIMD-0312), which runtimes without that feature reject, and the payment would be
    /// blocked. So: create the account when the address is empty; otherwise top it up to
    /// rent exemption, allocate and assign, the last two signed with the receipt's seeds.
    fn create_receipt_account(&self, receipt_seeds: &[&[&[u8]]]) -> Result<()> {
        let system = self.system_program.key();
        let receipt = self.receipt.to_account_info();
        let rent_payer = self.rent_payer.to_account_info();
        let space = Receipt::SPACE as u64;
        let rent_exempt = Rent::get()?.minimum_balance(Receipt::SPACE);
        let prefunded = receipt.lamports();

        if prefunded == 0 {
            let create = CreateAccount {
                from: rent_payer,
                to: receipt,
            };
            return system_program::create_account(
                CpiContext::new(system, create).with_signer(receipt_seeds),
                rent_exempt,
                space,
                &crate::ID,
            );
        }
        let top_up = rent_exempt.saturating_sub(prefunded);
        if top_up > 0 {
            let transfer = Transfer {
                from: rent_payer,
                to: receipt.clone(),
            };
            system_program::transfer(CpiContext::new(system, transfer), top_up)?;
        }
        let allocate = Allocate {
            account_to_allocate: receipt.clone(),
        };
        system_program::allocate(
            CpiContext::new(system, allocate).with_signer(receipt_seeds),
            space,
        )?;
        let assign = Assign {
            account_to_assign: receipt,
        };
        system_program::assign(
            CpiContext::new(system, assign).with_signer(receipt_seeds),
            &crate::ID,
        )
    }
}
