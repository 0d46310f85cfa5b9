//! Receipts on a ledger: one found by reference, a payee's list, and the expired ones a
//! rent payer funded closed in batches for their rent.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::{InstructionData, ToAccountMetas};
use solana_keypair::Keypair;
use solana_signer::Signer;
use solana_transaction::Transaction;

use crate::ledger::{Ledger, LedgerAccount, LedgerError};
use crate::reference::Reference;
use crate::scheme::receipt::{decode_receipt, funded_by, paid_to, receipt_address, Receipt};

/// The instruction closing the receipt of `reference`, signed by its rent payer.
pub fn close_receipt_instruction(
    program: &Pubkey,
    rent_payer: &Pubkey,
    reference: &Reference,
) -> Instruction {
    Instruction {
        program_id: *program,
        accounts: x402_receipts::accounts::CloseReceipt {
            rent_payer: *rent_payer,
            receipt: receipt_address(program, reference),
        }
        .to_account_metas(None),
        data: x402_receipts::instruction::CloseReceipt {}.data(),
    }
}

/// Receipts closed in one transaction: well inside the transaction size limit.
const CLOSES_PER_TRANSACTION: usize = 8;

/// A receipt and where it lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundReceipt {
    pub address: Pubkey,
    pub receipt: Receipt,
    /// The rent deposit it holds.
    pub lamports: u64,
}

/// The receipt of `reference` under `program`, if it exists and is one.
pub async fn find_receipt(
    ledger: &dyn Ledger,
    program: &Pubkey,
    reference: &Reference,
) -> Result<Option<FoundReceipt>, LedgerError> {
    let address = receipt_address(program, reference);
    let Some(account) = ledger.account(&address).await? else {
        return Ok(None);
    };
    Ok(decode_receipt(&account, program)
        .ok()
        .map(|receipt| FoundReceipt {
            address,
            receipt,
            lamports: account.lamports,
        }))
}

/// The receipts paying `payee`, newest first.
pub async fn receipts_for_payee(
    ledger: &dyn Ledger,
    program: &Pubkey,
    payee: &Pubkey,
) -> Result<Vec<FoundReceipt>, LedgerError> {
    let mut found = decode_all(
        ledger.program_accounts(program, &paid_to(payee)).await?,
        program,
    );
    found.sort_by(|a, b| {
        (b.receipt.paid_at, b.receipt.slot).cmp(&(a.receipt.paid_at, a.receipt.slot))
    });
    Ok(found)
}

fn decode_all(accounts: Vec<(Pubkey, LedgerAccount)>, program: &Pubkey) -> Vec<FoundReceipt> {
    accounts
        .into_iter()
        .filter_map(|(address, account)| {
            let receipt = decode_receipt(&account, program).ok()?;
            Some(FoundReceipt {
                address,
                receipt,
                lamports: account.lamports,
            })
        })
        .collect()
}

/// What `close_expired` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloseReport {
    pub closed: Vec<Pubkey>,
    /// Lamports returned to the rent payer.
    pub rent_returned: u64,
    /// Transaction signatures.
    pub transactions: Vec<String>,
}

/// Closes every receipt `rent_payer` funded whose challenge expired before `now`, in
/// batches, and reports the rent returned.
pub async fn close_expired(
    ledger: &dyn Ledger,
    program: &Pubkey,
    rent_payer: &Keypair,
    now: i64,
) -> Result<CloseReport, LedgerError> {
    let funded = decode_all(
        ledger
            .program_accounts(program, &funded_by(&rent_payer.pubkey()))
            .await?,
        program,
    );
    let expired: Vec<FoundReceipt> = funded
        .into_iter()
        .filter(|r| r.receipt.expires_at < now)
        .collect();
    let mut report = CloseReport::default();
    for batch in expired.chunks(CLOSES_PER_TRANSACTION) {
        let instructions: Vec<_> = batch
            .iter()
            .map(|r| {
                close_receipt_instruction(
                    program,
                    &rent_payer.pubkey(),
                    &Reference(r.receipt.reference),
                )
            })
            .collect();
        let blockhash = ledger.latest_blockhash().await?;
        let tx = Transaction::new_signed_with_payer(
            &instructions,
            Some(&rent_payer.pubkey()),
            &[rent_payer],
            blockhash,
        );
        report
            .transactions
            .push(ledger.submit(&tx.into()).await?.to_string());
        report.closed.extend(batch.iter().map(|r| r.address));
        report.rent_returned += batch.iter().map(|r| r.lamports).sum::<u64>();
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_is_signed_by_the_rent_payer_and_names_the_receipt() {
        let program = x402_receipts::ID;
        let rent_payer = Pubkey::new_from_array([4; 32]);
        let reference = Reference([5; 32]);
        let close = close_receipt_instruction(&program, &rent_payer, &reference);
        assert_eq!(close.program_id, program);
        let accounts: Vec<_> = close
            .accounts
            .iter()
            .map(|a| (a.pubkey, a.is_signer))
            .collect();
        assert_eq!(
            accounts,
            [
                (rent_payer, true),
                (receipt_address(&program, &reference), false)
            ]
        );
        assert_eq!(
            close.data,
            x402_receipts::instruction::CloseReceipt {}.data()
        );
    }
}
