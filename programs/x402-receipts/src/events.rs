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

/// Emits `event` with `emit!`: on a cluster the runtime logs it as `Program data:
/// <base64>`, which explorers and Anchor clients decode with the IDL.
///
/// Off chain (the program built natively, as in the test bank) Anchor's `sol_log_data`
/// does nothing, so the same bytes also go to the log syscall stub, which
/// solana-program-test records as `Program log: event: <base64>`, where tests read them.
pub(crate) fn emit_event<E: anchor_lang::Event>(event: E) {
    #[cfg(not(target_os = "solana"))]
    {
        use anchor_lang::compat::solana_sysvar::program_stubs;
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(event.data());
        program_stubs::sol_log(&format!("event: {data}"));
    }
    emit!(event);
}
