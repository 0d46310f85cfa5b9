//! A receipt account: decoding it, checking it against what the challenge required, and
//! the filters that select receipts by the fields they hold.

use anchor_lang::prelude::Pubkey;
use anchor_lang::{AccountDeserialize, Discriminator};
pub use x402_receipts::Receipt;

use super::Requirement;
use crate::ledger::{AccountFilter, LedgerAccount};

/// Why a receipt does not pay for a challenge. Each has a stable reason code for the
/// 402 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptDefect {
    #[error("the receipt account is not owned by the receipts program")]
    WrongOwner,
    #[error("the account is not a receipt")]
    NotAReceipt,
    #[error("the receipt is for another reference")]
    WrongReference,
    #[error("the receipt pays another payee")]
    WrongPayee,
    #[error("the receipt pays in another token")]
    WrongMint,
    #[error("the receipt's expiry differs from the challenge's")]
    WrongExpiry,
    #[error("the receipt pays {paid} base units, below the price of {price}")]
    AmountBelowPrice { paid: u64, price: u64 },
}

impl ReceiptDefect {
    pub fn reason(&self) -> &'static str {
        match self {
            ReceiptDefect::WrongOwner => "receipt_wrong_owner",
            ReceiptDefect::NotAReceipt => "receipt_not_a_receipt",
            ReceiptDefect::WrongReference => "receipt_wrong_reference",
            ReceiptDefect::WrongPayee => "receipt_wrong_payee",
            ReceiptDefect::WrongMint => "receipt_wrong_mint",
            ReceiptDefect::WrongExpiry => "receipt_wrong_expiry",
            ReceiptDefect::AmountBelowPrice { .. } => "receipt_amount_below_price",
        }
    }
}

/// Where a receipt's fields sit in its account data (after the 8-byte discriminator), for
/// `getProgramAccounts` filters.
pub mod offsets {
    pub const PAYER: usize = 8 + 32;
    pub const PAYEE: usize = PAYER + 32;
    pub const RENT_PAYER: usize = PAYEE + 32 + 32 + 8;
}

/// Filters selecting the receipts of `program` that pay `payee`.
pub fn paid_to(payee: &Pubkey) -> Vec<AccountFilter> {
    receipts_with(offsets::PAYEE, payee)
}

/// Filters selecting the receipts of `program` that `rent_payer` funded.
pub fn funded_by(rent_payer: &Pubkey) -> Vec<AccountFilter> {
    receipts_with(offsets::RENT_PAYER, rent_payer)
}

fn receipts_with(offset: usize, key: &Pubkey) -> Vec<AccountFilter> {
    vec![
        AccountFilter::DataSize(Receipt::SPACE as u64),
        AccountFilter::Memcmp {
            offset: 0,
            bytes: Receipt::DISCRIMINATOR.to_vec(),
        },
        AccountFilter::Memcmp {
            offset,
            bytes: key.to_bytes().to_vec(),
        },
    ]
}

/// Decodes a receipt account of `program`: owner and discriminator checked.
pub fn decode_receipt(account: &LedgerAccount, program: &Pubkey) -> Result<Receipt, ReceiptDefect> {
    if account.owner != *program {
        return Err(ReceiptDefect::WrongOwner);
    }
    if !account.data.starts_with(Receipt::DISCRIMINATOR) {
        return Err(ReceiptDefect::NotAReceipt);
    }
    Receipt::try_deserialize(&mut account.data.as_slice()).map_err(|_| ReceiptDefect::NotAReceipt)
}

/// Accepts the receipt at `requirement.receipt()` if it records a payment of at least
/// the price, to the right payee, in the right token, for this reference and expiry.
pub fn check_receipt(
    account: &LedgerAccount,
    requirement: &Requirement,
) -> Result<Receipt, ReceiptDefect> {
    let receipt = decode_receipt(account, &requirement.program)?;
    if receipt.reference != requirement.reference.0 {
        return Err(ReceiptDefect::WrongReference);
    }
    if receipt.payee != requirement.pay_to {
        return Err(ReceiptDefect::WrongPayee);
    }
    if receipt.mint != requirement.mint {
        return Err(ReceiptDefect::WrongMint);
    }
    if receipt.expires_at != requirement.expires_at {
        return Err(ReceiptDefect::WrongExpiry);
    }
    if receipt.amount < requirement.amount {
        return Err(ReceiptDefect::AmountBelowPrice {
            paid: receipt.amount,
            price: requirement.amount,
        });
    }
    Ok(receipt)
}

#[cfg(test)]
mod tests {
    use anchor_lang::AccountSerialize;

    use super::*;

    fn requirement() -> Requirement {
        Requirement::sample()
    }

    fn receipt_for(requirement: &Requirement) -> Receipt {
        Receipt {
            reference: requirement.reference.0,
            payer: Pubkey::new_from_array([4; 32]),
            payee: requirement.pay_to,
            mint: requirement.mint,
            amount: requirement.amount,
            rent_payer: Pubkey::new_from_array([4; 32]),
            paid_at: 900,
            slot: 77,
            expires_at: requirement.expires_at,
            bump: 255,
        }
    }

    fn account(receipt: &Receipt) -> LedgerAccount {
        let mut data = Vec::new();
        receipt.try_serialize(&mut data).unwrap();
        LedgerAccount {
            owner: x402_receipts::ID,
            lamports: 2_289_840,
            data,
        }
    }

    #[test]
    fn accepts_a_receipt_that_pays_at_least_the_price() {
        let requirement = requirement();
        let receipt = receipt_for(&requirement);
        assert_eq!(
            check_receipt(&account(&receipt), &requirement),
            Ok(receipt.clone())
        );
        let generous = Receipt {
            amount: 20_000,
            ..receipt
        };
        assert_eq!(
            check_receipt(&account(&generous), &requirement),
            Ok(generous.clone())
        );
    }

    #[test]
    fn filters_select_by_the_fields_they_name() {
        let receipt = receipt_for(&requirement());
        let data = account(&receipt).data;
        assert!(paid_to(&receipt.payee).iter().all(|f| f.matches(&data)));
        assert!(funded_by(&receipt.rent_payer)
            .iter()
            .all(|f| f.matches(&data)));
        assert!(!paid_to(&receipt.payer).iter().all(|f| f.matches(&data)));
        assert!(!funded_by(&receipt.payee).iter().all(|f| f.matches(&data)));
        assert_eq!(
            &data[offsets::PAYER..offsets::PAYER + 32],
            receipt.payer.as_ref()
        );
    }

    #[test]
    fn refuses_each_defect() {
        let requirement = requirement();
        let good = receipt_for(&requirement);
        let other = Pubkey::new_from_array([9; 32]);
        let cases = [
            (
                Receipt {
                    reference: [6; 32],
                    ..good.clone()
                },
                ReceiptDefect::WrongReference,
            ),
            (
                Receipt {
                    payee: other,
                    ..good.clone()
                },
                ReceiptDefect::WrongPayee,
            ),
            (
                Receipt {
                    mint: other,
                    ..good.clone()
                },
                ReceiptDefect::WrongMint,
            ),
            (
                Receipt {
                    expires_at: 1_001,
                    ..good.clone()
                },
                ReceiptDefect::WrongExpiry,
            ),
            (
                Receipt {
                    amount: 9_999,
                    ..good.clone()
                },
                ReceiptDefect::AmountBelowPrice {
                    paid: 9_999,
                    price: 10_000,
                },
            ),
        ];
        for (receipt, defect) in cases {
            assert_eq!(check_receipt(&account(&receipt), &requirement), Err(defect));
        }
        let foreign = LedgerAccount {
            owner: other,
            ..account(&good)
        };
        assert_eq!(
            check_receipt(&foreign, &requirement),
            Err(ReceiptDefect::WrongOwner)
        );
        let mut garbage = account(&good);
        garbage.data[0] ^= 0xff;
        assert_eq!(
            check_receipt(&garbage, &requirement),
            Err(ReceiptDefect::NotAReceipt)
        );
        let truncated = LedgerAccount {
            data: account(&good).data[..40].to_vec(),
            ..account(&good)
        };
        assert_eq!(
            check_receipt(&truncated, &requirement),
            Err(ReceiptDefect::NotAReceipt)
        );
    }
}
