use anchor_lang::prelude::*;

/// The on-chain record of one settled x402 payment, at the address
/// `[RECEIPT_SEED, reference]`. It exists exactly when the reference has been paid.
#[account]
#[derive(InitSpace, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The x402 challenge's reference: the seed of this account.
    pub reference: [u8; 32],
    /// The token authority that paid.
    pub payer: Pubkey,
    /// The wallet that owns the token account paid into (the merchant's `payTo`).
    pub payee: Pubkey,
    /// The token paid.
    pub mint: Pubkey,
    /// Base units the payee actually received (measured, not assumed).
    pub amount: u64,
    /// Who funded this account's rent deposit; the only key that may close it.
    pub rent_payer: Pubkey,
    /// Unix time of the payment (`Clock::unix_timestamp`).
    pub paid_at: i64,
    /// Slot of the payment.
    pub slot: u64,
    /// The challenge's expiry, unix seconds; the receipt may be closed after it.
    pub expires_at: i64,
    /// The canonical bump of this account's address.
    pub bump: u8,
}

impl Receipt {
    /// Bytes the account occupies, its 8-byte discriminator included.
    pub const SPACE: usize = Self::DISCRIMINATOR.len() + Self::INIT_SPACE;
}
