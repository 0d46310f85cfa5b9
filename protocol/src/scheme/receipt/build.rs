//! What a `receipt` challenge requires of a payment, the `pay` transaction a buyer signs
//! to meet it, and the reference read back from such a transaction.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::{AnchorDeserialize, Discriminator, InstructionData, ToAccountMetas};
use anchor_spl::associated_token::get_associated_token_address_with_program_id;
use solana_hash::Hash;
use solana_transaction::Transaction;

use crate::reference::Reference;

/// One challenge's demands: paying `amount` base units of `mint` to `pay_to` through
/// `program`, for `reference`, before `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub program: Pubkey,
    pub reference: Reference,
    pub amount: u64,
    pub expires_at: i64,
    pub mint: Pubkey,
    pub token_program: Pubkey,
    pub pay_to: Pubkey,
}

impl Requirement {
    /// The receipt account `pay` creates for this reference.
    pub fn receipt(&self) -> Pubkey {
        receipt_address(&self.program, &self.reference)
    }

    /// The token account the payment must land in: ATA(pay_to, mint).
    pub fn payee_token(&self) -> Pubkey {
        get_associated_token_address_with_program_id(&self.pay_to, &self.mint, &self.token_program)
    }

    /// The `pay` instruction that meets this requirement, from `payer`'s associated token
    /// account, with `rent_payer` funding the receipt.
    pub fn pay_instruction(&self, payer: &Pubkey, rent_payer: &Pubkey) -> Instruction {
        Instruction {
            program_id: self.program,
            accounts: x402_receipts::accounts::Pay {
                payer: *payer,
                rent_payer: *rent_payer,
                receipt: self.receipt(),
                mint: self.mint,
                payer_token: get_associated_token_address_with_program_id(
                    payer,
                    &self.mint,
                    &self.token_program,
                ),
                payee: self.pay_to,
                payee_token: self.payee_token(),
                token_program: self.token_program,
                system_program: anchor_lang::system_program::ID,
            }
            .to_account_metas(None),
            data: x402_receipts::instruction::Pay {
                reference: self.reference.0,
                amount: self.amount,
                expires_at: self.expires_at,
            }
            .data(),
        }
    }

    /// The unsigned transaction `[pay]` with `fee_payer` paying the fee and the rent:
    /// the verifier's fee payer when it sponsors, the payer itself otherwise.
    pub fn pay_transaction(
        &self,
        payer: &Pubkey,
        fee_payer: &Pubkey,
        recent_blockhash: Hash,
    ) -> Transaction {
        let pay = self.pay_instruction(payer, fee_payer);
        let mut tx = Transaction::new_with_payer(&[pay], Some(fee_payer));
        tx.message.recent_blockhash = recent_blockhash;
        tx
    }
}

#[cfg(test)]
impl Requirement {
    /// A fixed requirement for unit tests: 10_000 units, expiring at 1_000.
    pub(crate) fn sample() -> Self {
        Requirement {
            program: x402_receipts::ID,
            reference: Reference([5; 32]),
            amount: 10_000,
            expires_at: 1_000,
            mint: Pubkey::new_from_array([2; 32]),
            token_program: anchor_spl::token::ID,
            pay_to: Pubkey::new_from_array([3; 32]),
        }
    }
}

/// The receipt address of `reference` under `program`: `[RECEIPT_SEED, reference]`.
pub fn receipt_address(program: &Pubkey, reference: &Reference) -> Pubkey {
    Pubkey::find_program_address(&[x402_receipts::RECEIPT_SEED, &reference.0], program).0
}

/// The reference a `pay` transaction pays: the arguments of its last instruction, if that
/// is a call of `program`'s `pay`.
pub fn paid_reference(transaction: &Transaction, program: &Pubkey) -> Option<Reference> {
    let message = &transaction.message;
    let pay = message.instructions.last()?;
    if message.account_keys.get(usize::from(pay.program_id_index)) != Some(program) {
        return None;
    }
    let args = pay
        .data
        .strip_prefix(x402_receipts::instruction::Pay::DISCRIMINATOR)?;
    let args = x402_receipts::instruction::Pay::deserialize(&mut &args[..]).ok()?;
    Some(Reference(args.reference))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::{decode_transaction, encode_transaction, SchemeError};

    #[test]
    fn transactions_round_trip_and_the_paid_reference_is_found() {
        let requirement = Requirement::sample();
        let payer = Pubkey::new_from_array([4; 32]);
        let fee_payer = Pubkey::new_from_array([8; 32]);
        let tx = requirement.pay_transaction(&payer, &fee_payer, Hash::new_from_array([1; 32]));
        let decoded: Transaction = decode_transaction(&encode_transaction(&tx)).unwrap();
        assert_eq!(decoded, tx);
        assert_eq!(
            paid_reference(&decoded, &x402_receipts::ID),
            Some(requirement.reference)
        );
        assert_eq!(
            paid_reference(&decoded, &Pubkey::new_from_array([1; 32])),
            None
        );
        assert_eq!(
            decode_transaction::<Transaction>("!!"),
            Err(SchemeError::Malformed("transaction"))
        );
        assert_eq!(
            decode_transaction::<Transaction>(&"A".repeat(4096)),
            Err(SchemeError::Malformed("transaction"))
        );
    }
}
