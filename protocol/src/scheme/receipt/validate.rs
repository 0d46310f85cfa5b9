//! Strict validation of a sponsored `receipt` payment: a transaction that the verifier's
//! fee payer will co-sign and pay for. It may contain nothing but the payment asked for.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_message::legacy::Message;
use solana_transaction::Transaction;

use super::Requirement;
use crate::scheme::sponsor::{
    check_payer_signature, check_two_signers, read_budget, SponsorPolicy, SponsoredDefect,
};

/// Checks that `tx` is exactly `[compute budget (optional), pay]` for `requirement`, with
/// the policy's fee payer as fee payer and rent payer and nowhere else, signed by the
/// payer. Returns the payer.
pub fn validate_sponsored(
    tx: &Transaction,
    requirement: &Requirement,
    policy: &SponsorPolicy,
) -> Result<Pubkey, SponsoredDefect> {
    let message = &tx.message;
    let keys = &message.account_keys;
    policy.check_fee_payer(keys)?;
    check_two_signers(message.header.num_required_signatures, &tx.signatures)?;
    let payer = keys[1];
    check_payer_signature(&tx.signatures, &payer, &message.serialize())?;
    policy.check_payer_is_not_fee_payer(&payer)?;

    let instructions = resolve(message).ok_or(SponsoredDefect::UnexpectedInstruction)?;
    let (pay, budget) = instructions
        .split_last()
        .ok_or(SponsoredDefect::UnexpectedInstruction)?;
    check_compute_budget(budget, policy)?;
    check_pay(pay, &payer, requirement, policy)?;
    Ok(payer)
}

/// An instruction of the message with its account indexes resolved.
struct Called<'a> {
    program_id: Pubkey,
    accounts: Vec<Pubkey>,
    data: &'a [u8],
}

/// The message's instructions, or none if an index points past its keys.
fn resolve(message: &Message) -> Option<Vec<Called<'_>>> {
    let key = |index: u8| message.account_keys.get(usize::from(index)).copied();
    message
        .instructions
        .iter()
        .map(|ix| {
            Some(Called {
                program_id: key(ix.program_id_index)?,
                accounts: ix.accounts.iter().map(|&i| key(i)).collect::<Option<_>>()?,
                data: &ix.data,
            })
        })
        .collect()
}

/// Before `pay`: at most one compute-unit price and one limit, within the policy's.
fn check_compute_budget(
    instructions: &[Called],
    policy: &SponsorPolicy,
) -> Result<(), SponsoredDefect> {
    let (mut price_set, mut limit_set) = (false, false);
    for ix in instructions {
        match read_budget(Some(ix.program_id), ix.accounts.len(), ix.data)? {
            ComputeBudgetInstruction::SetComputeUnitPrice(price) if !price_set => {
                price_set = true;
                policy.check_unit_price(price)?;
            }
            ComputeBudgetInstruction::SetComputeUnitLimit(limit) if !limit_set => {
                limit_set = true;
                policy.check_unit_limit(limit)?;
            }
            _ => return Err(SponsoredDefect::UnexpectedInstruction),
        }
    }
    Ok(())
}

/// The last instruction is `pay`, exactly as the challenge asks: the instruction we would
/// build ourselves, any other argument or account being a mismatch.
fn check_pay(
    pay: &Called,
    payer: &Pubkey,
    requirement: &Requirement,
    policy: &SponsorPolicy,
) -> Result<(), SponsoredDefect> {
    if pay.program_id != requirement.program {
        return Err(SponsoredDefect::UnexpectedInstruction);
    }
    let expected = requirement.pay_instruction(payer, &policy.fee_payer);
    check_pay_arguments(pay, &expected)?;
    check_pay_accounts(pay, &expected, policy)
}

/// The reference, amount and expiry the challenge set.
fn check_pay_arguments(pay: &Called, expected: &Instruction) -> Result<(), SponsoredDefect> {
    if pay.data != expected.data.as_slice() {
        return Err(SponsoredDefect::WrongPayment("reference, amount or expiry"));
    }
    Ok(())
}

/// `pay`'s accounts, in its order.
const PAY_ACCOUNTS: [&str; 9] = [
    "payer",
    "rent_payer",
    "receipt",
    "mint",
    "payer_token",
    "payee",
    "payee_token",
    "token_program",
    "system_program",
];

/// The accounts we would name, but for the payer's token account; the fee payer only as
/// rent payer.
fn check_pay_accounts(
    pay: &Called,
    expected: &Instruction,
    policy: &SponsorPolicy,
) -> Result<(), SponsoredDefect> {
    if pay.accounts.len() != expected.accounts.len() {
        return Err(SponsoredDefect::WrongPayment("accounts"));
    }
    for ((given, wanted), name) in pay
        .accounts
        .iter()
        .zip(&expected.accounts)
        .zip(PAY_ACCOUNTS)
    {
        if *given == wanted.pubkey {
            continue;
        }
        if *given == policy.fee_payer || name == "rent_payer" {
            return Err(SponsoredDefect::FeePayerMisused);
        }
        // The payer may spend from any token account of theirs: the token program checks
        // that they own it.
        if name != "payer_token" {
            return Err(SponsoredDefect::WrongPayment(name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use solana_compute_budget_interface::ComputeBudgetInstruction as Budget;
    use solana_hash::Hash;
    use solana_keypair::Keypair;
    use solana_signer::Signer;

    use super::*;
    use crate::reference::Reference;

    struct Case {
        requirement: Requirement,
        policy: SponsorPolicy,
        payer: Keypair,
    }

    fn case() -> Case {
        let fee_payer = Pubkey::new_from_array([8; 32]);
        Case {
            requirement: Requirement::sample(),
            policy: SponsorPolicy {
                fee_payer,
                max_compute_unit_price: 1_000,
                max_compute_unit_limit: 200_000,
            },
            payer: Keypair::new(),
        }
    }

    impl Case {
        /// A transaction of `instructions`, fee payer first, signed by the payer only.
        fn signed(&self, instructions: &[Instruction]) -> Transaction {
            let mut tx = Transaction::new_with_payer(instructions, Some(&self.policy.fee_payer));
            tx.partial_sign(&[&self.payer], Hash::new_from_array([1; 32]));
            tx
        }

        fn pay(&self) -> Instruction {
            self.requirement
                .pay_instruction(&self.payer.pubkey(), &self.policy.fee_payer)
        }

        fn validate(&self, tx: &Transaction) -> Result<Pubkey, SponsoredDefect> {
            validate_sponsored(tx, &self.requirement, &self.policy)
        }
    }

    #[test]
    fn accepts_the_payment_with_or_without_a_compute_budget() {
        let case = case();
        let payer = case.payer.pubkey();
        assert_eq!(case.validate(&case.signed(&[case.pay()])), Ok(payer));
        let budget = [
            Budget::set_compute_unit_limit(60_000),
            Budget::set_compute_unit_price(1_000),
        ];
        let with_budget = case.signed(&[budget[0].clone(), budget[1].clone(), case.pay()]);
        assert_eq!(case.validate(&with_budget), Ok(payer));
    }

    #[test]
    fn refuses_other_arguments() {
        let case = case();
        for (field, requirement) in [
            (
                "amount",
                Requirement {
                    amount: 9_999,
                    ..case.requirement.clone()
                },
            ),
            (
                "reference",
                Requirement {
                    reference: Reference([6; 32]),
                    ..case.requirement.clone()
                },
            ),
            (
                "expiry",
                Requirement {
                    expires_at: 2_000,
                    ..case.requirement.clone()
                },
            ),
        ] {
            let mut ix = requirement.pay_instruction(&case.payer.pubkey(), &case.policy.fee_payer);
            // Keep the accounts of the real requirement: only the arguments differ.
            ix.accounts = case.pay().accounts;
            assert_eq!(
                case.validate(&case.signed(&[ix])),
                Err(SponsoredDefect::WrongPayment("reference, amount or expiry")),
                "{field}"
            );
        }
    }

    #[test]
    fn refuses_another_payee_mint_or_receipt() {
        let case = case();
        let other = Pubkey::new_from_array([9; 32]);
        for (index, name) in [
            (2, "receipt"),
            (3, "mint"),
            (5, "payee"),
            (6, "payee_token"),
            (7, "token_program"),
        ] {
            let mut ix = case.pay();
            ix.accounts[index].pubkey = other;
            assert_eq!(
                case.validate(&case.signed(&[ix])),
                Err(SponsoredDefect::WrongPayment(name))
            );
        }
        // Paying another payee entirely, with a consistent instruction, is still refused.
        let elsewhere = Requirement {
            pay_to: other,
            ..case.requirement.clone()
        };
        let ix = elsewhere.pay_instruction(&case.payer.pubkey(), &case.policy.fee_payer);
        assert_eq!(
            case.validate(&case.signed(&[ix])),
            Err(SponsoredDefect::WrongPayment("payee"))
        );
    }

    #[test]
    fn the_fee_payer_is_fee_payer_and_rent_payer_and_nothing_else() {
        let case = case();
        let fee_payer = case.policy.fee_payer;
        // Spending from the fee payer's token account.
        let mut ix = case.pay();
        ix.accounts[4].pubkey = fee_payer;
        assert_eq!(
            case.validate(&case.signed(&[ix])),
            Err(SponsoredDefect::FeePayerMisused)
        );
        // Someone else funding the receipt.
        let mut ix = case.pay();
        ix.accounts[1].pubkey = case.payer.pubkey();
        assert_eq!(
            case.validate(&case.signed(&[ix])),
            Err(SponsoredDefect::FeePayerMisused)
        );
        // The fee payer paying: it is then the only signer.
        let requirement = &case.requirement;
        let ix = requirement.pay_instruction(&fee_payer, &fee_payer);
        let mut tx = Transaction::new_with_payer(&[ix], Some(&fee_payer));
        tx.message.recent_blockhash = Hash::new_from_array([1; 32]);
        assert_eq!(case.validate(&tx), Err(SponsoredDefect::WrongSigners));
    }

    #[test]
    fn refuses_extra_instructions_and_expensive_budgets() {
        let case = case();
        let transfer = anchor_lang::solana_program::system_instruction::transfer(
            &case.policy.fee_payer,
            &case.payer.pubkey(),
            1,
        );
        let tx = case.signed(&[transfer, case.pay()]);
        assert_eq!(
            case.validate(&tx),
            Err(SponsoredDefect::UnexpectedInstruction)
        );
        let tx = case.signed(&[case.pay(), case.pay()]);
        assert_eq!(
            case.validate(&tx),
            Err(SponsoredDefect::UnexpectedInstruction)
        );
        let tx = case.signed(&[Budget::set_compute_unit_price(1_001), case.pay()]);
        assert_eq!(
            case.validate(&tx),
            Err(SponsoredDefect::ComputeBudgetTooHigh)
        );
        let tx = case.signed(&[Budget::set_compute_unit_limit(200_001), case.pay()]);
        assert_eq!(
            case.validate(&tx),
            Err(SponsoredDefect::ComputeBudgetTooHigh)
        );
        let twice = [
            Budget::set_compute_unit_price(1),
            Budget::set_compute_unit_price(1),
            case.pay(),
        ];
        assert_eq!(
            case.validate(&case.signed(&twice)),
            Err(SponsoredDefect::UnexpectedInstruction)
        );
        let heap = [Budget::request_heap_frame(64 * 1024), case.pay()];
        assert_eq!(
            case.validate(&case.signed(&heap)),
            Err(SponsoredDefect::UnexpectedInstruction)
        );
    }

    #[test]
    fn refuses_another_fee_payer_and_a_bad_signature() {
        let case = case();
        let mut tx = Transaction::new_with_payer(&[case.pay()], Some(&case.payer.pubkey()));
        tx.message.recent_blockhash = Hash::new_from_array([1; 32]);
        assert_eq!(case.validate(&tx), Err(SponsoredDefect::WrongFeePayer));
        let mut forged = case.signed(&[case.pay()]);
        forged.message.recent_blockhash = Hash::new_from_array([2; 32]);
        assert_eq!(
            case.validate(&forged),
            Err(SponsoredDefect::BadPayerSignature)
        );
        let unsigned = Transaction::new_with_payer(&[case.pay()], Some(&case.policy.fee_payer));
        assert_eq!(
            case.validate(&unsigned),
            Err(SponsoredDefect::BadPayerSignature)
        );
    }
}
