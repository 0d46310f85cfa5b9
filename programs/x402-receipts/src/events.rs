use anchor_lang::prelude::*;

/// A reference was paid and its receipt created.
#[event]
#[derive(Debug, PartialEq, Eq)]
pub struct PaymentSettled {
    /// The x402 challenge's reference.
    pub reference: [u8; 32],
    /// The receipt account's address.
    pub receipt: Pubkey,
    /// The token authority that paid.
    pub payer: Pubkey,
    /// The wallet that was paid.
    pub payee: Pubkey,
    /// The token paid.
    pub mint: Pubkey,
    /// Base units the payee received.
    pub amount: u64,
    /// The challenge's expiry, unix seconds.
    pub expires_at: i64,
}

/// An expired receipt was closed and its rent returned.
#[event]
#[derive(Debug, PartialEq, Eq)]
pub struct ReceiptClosed {
    /// The reference the receipt recorded.
    pub reference: [u8; 32],
    /// The closed receipt account's address.
    pub receipt: Pubkey,
    /// Who received the rent deposit back.
    pub rent_payer: Pubkey,
}
