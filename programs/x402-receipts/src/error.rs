use anchor_lang::prelude::*;

/// Why a payment or a close was refused.
#[error_code]
pub enum ReceiptError {
    #[msg("The amount to pay must be greater than zero")]
    ZeroAmount,
    #[msg("The payment challenge has expired")]
    ChallengeExpired,
    #[msg("This reference has been paid already")]
    ReferenceAlreadyPaid,
    #[msg("The payee received less than the amount paid (a transfer fee?)")]
    AmountNotReceived,
    #[msg("Only the receipt's rent payer may close it")]
    NotRentPayer,
    #[msg("The receipt cannot be closed before its challenge expires")]
    ReceiptNotExpired,
    #[msg("Arithmetic overflow")]
    Overflow,
}
