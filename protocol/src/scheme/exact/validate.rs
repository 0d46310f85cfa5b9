//! The checks an `exact` transaction passes before the fee payer co-signs it: one
//! function per rule, run in [`validate_exact`]'s order.

use anchor_lang::prelude::Pubkey;
use anchor_spl::associated_token::get_associated_token_address_with_program_id;
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_transaction::versioned::VersionedTransaction;

use super::{ExactTerms, LIGHTHOUSE_PROGRAM, MEMO_PROGRAM};
use crate::mint::MintInfo;
use crate::scheme::sponsor::{
    check_no_lookup_tables, check_payer_signature, check_two_signers, read_budget, Calls,
    SponsorPolicy, SponsoredDefect,
};

/// `TransferChecked`'s tag in both token programs.
const TRANSFER_CHECKED: u8 = 12;

/// The transfer an `exact` transaction makes, once checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExactTransfer {
    /// The buyer: the transfer's authority and the transaction's only other signer.
    pub payer: Pubkey,
    pub source: Pubkey,
    /// The payee's associated token account.
    pub destination: Pubkey,
}

/// Whether the fee payer may co-sign `tx` for `terms`, as the `exact` specification
/// requires and stricter: compute-unit limit, compute-unit price, exactly one
/// `TransferChecked` of exactly the amount from the payer to the payee's associated
/// token account, then only Memo and Lighthouse, with exactly one Memo equal to the
/// expected memo; no lookup tables; two signers (fee payer and payer); the fee payer in
/// no instruction at all. `mint` holds facts read from the ledger, not from the payer.
pub fn validate_exact(
    tx: &VersionedTransaction,
    terms: &ExactTerms,
    mint: &MintInfo,
    policy: &SponsorPolicy,
) -> Result<ExactTransfer, SponsoredDefect> {
    let message = &tx.message;
    check_no_lookup_tables(message)?;
    let keys = message.static_account_keys();
    policy.check_fee_payer(keys)?;
    policy.check_offered(&terms.fee_payer)?;
    check_two_signers(message.header().num_required_signatures, &tx.signatures)?;
    let payer = keys[1];
    policy.check_payer_is_not_fee_payer(&payer)?;
    check_payer_signature(&tx.signatures, &payer, &message.serialize())?;
    let calls = Calls {
        keys,
        instructions: message.instructions(),
    };
    calls.check_count()?;
    calls.check_fee_payer_absent()?;
    calls.check_unit_limit(policy)?;
    calls.check_unit_price(policy)?;
    check_delivers_in_full(mint)?;
    let transfer = calls.transfer(mint)?;
    transfer.check_mint(terms)?;
    transfer.check_decimals(mint)?;
    transfer.check_amount(terms)?;
    transfer.check_destination(terms, mint)?;
    transfer.check_authority(&payer)?;
    transfer.check_source(terms, mint, policy)?;
    calls.check_trailing_programs()?;
    calls.check_memo(terms)?;
    Ok(ExactTransfer {
        payer,
        source: transfer.source,
        destination: transfer.destination,
    })
}

/// The mint delivers every unit sent: no transfer fee, no hook.
fn check_delivers_in_full(mint: &MintInfo) -> Result<(), SponsoredDefect> {
    if !mint.delivers_in_full {
        return Err(SponsoredDefect::WrongPayment(
            "the mint withholds part of a transfer (fee or hook)",
        ));
    }
    Ok(())
}

impl Calls<'_> {
    /// The program instruction `index` calls.
    fn program(&self, index: usize) -> Option<Pubkey> {
        self.key(self.instructions[index].program_id_index)
    }

    /// Budget, budget, transfer, then one to three Memo or Lighthouse instructions.
    fn check_count(&self) -> Result<(), SponsoredDefect> {
        if !(3..=6).contains(&self.instructions.len()) {
            return Err(SponsoredDefect::UnexpectedInstruction);
        }
        Ok(())
    }

    /// The fee payer is index 0: never a program, never in an instruction's accounts.
    fn check_fee_payer_absent(&self) -> Result<(), SponsoredDefect> {
        if self
            .instructions
            .iter()
            .any(|ix| ix.program_id_index == 0 || ix.accounts.contains(&0))
        {
            return Err(SponsoredDefect::FeePayerMisused);
        }
        Ok(())
    }

    fn budget(&self, index: usize) -> Result<ComputeBudgetInstruction, SponsoredDefect> {
        let ix = &self.instructions[index];
        read_budget(self.program(index), ix.accounts.len(), &ix.data)
    }

    /// The first instruction sets the compute-unit limit, within the policy's.
    fn check_unit_limit(&self, policy: &SponsorPolicy) -> Result<(), SponsoredDefect> {
        match self.budget(0)? {
            ComputeBudgetInstruction::SetComputeUnitLimit(limit) => policy.check_unit_limit(limit),
            _ => Err(SponsoredDefect::UnexpectedInstruction),
        }
    }

    /// The second sets the compute-unit price, within the policy's.
    fn check_unit_price(&self, policy: &SponsorPolicy) -> Result<(), SponsoredDefect> {
        match self.budget(1)? {
            ComputeBudgetInstruction::SetComputeUnitPrice(price) => policy.check_unit_price(price),
            _ => Err(SponsoredDefect::UnexpectedInstruction),
        }
    }

    /// The third is a `TransferChecked` of the mint's token program, with a single
    /// signer as authority (no multisig).
    fn transfer(&self, mint: &MintInfo) -> Result<StatedTransfer, SponsoredDefect> {
        let transfer = &self.instructions[2];
        if self.program(2) != Some(mint.token_program) {
            return Err(SponsoredDefect::UnexpectedInstruction);
        }
        let accounts: Vec<Pubkey> = transfer
            .accounts
            .iter()
            .map(|&i| self.key(i))
            .collect::<Option<_>>()
            .ok_or(SponsoredDefect::UnexpectedInstruction)?;
        let [source, mint, destination, authority] = accounts[..] else {
            return Err(SponsoredDefect::WrongPayment("accounts"));
        };
        let data = &transfer.data;
        if data.len() != 10 || data[0] != TRANSFER_CHECKED {
            return Err(SponsoredDefect::UnexpectedInstruction);
        }
        Ok(StatedTransfer {
            source,
            mint,
            destination,
            authority,
            amount: u64::from_le_bytes(data[1..9].try_into().expect("eight bytes")),
            decimals: data[9],
        })
    }

    /// After the transfer: only Memo and Lighthouse.
    fn check_trailing_programs(&self) -> Result<(), SponsoredDefect> {
        for i in 3..self.instructions.len() {
            if !matches!(self.program(i), Some(p) if p == MEMO_PROGRAM || p == LIGHTHOUSE_PROGRAM) {
                return Err(SponsoredDefect::UnexpectedInstruction);
            }
        }
        Ok(())
    }

    /// When the offer asks for a memo: exactly one Memo, holding it and no accounts.
    fn check_memo(&self, terms: &ExactTerms) -> Result<(), SponsoredDefect> {
        let Some(expected) = &terms.memo else {
            return Ok(());
        };
        let mut memos = self.instructions[3..]
            .iter()
            .enumerate()
            .filter_map(|(i, ix)| (self.program(3 + i) == Some(MEMO_PROGRAM)).then_some(ix));
        let (Some(memo), None) = (memos.next(), memos.next()) else {
            return Err(SponsoredDefect::WrongPayment("memo"));
        };
        if memo.data != expected.as_bytes() || !memo.accounts.is_empty() {
            return Err(SponsoredDefect::WrongPayment("memo"));
        }
        Ok(())
    }
}

/// A `TransferChecked` as the transaction states it, not yet held to the terms.
struct StatedTransfer {
    source: Pubkey,
    mint: Pubkey,
    destination: Pubkey,
    authority: Pubkey,
    amount: u64,
    decimals: u8,
}

impl StatedTransfer {
    fn check_mint(&self, terms: &ExactTerms) -> Result<(), SponsoredDefect> {
        if self.mint != terms.mint {
            return Err(SponsoredDefect::WrongPayment("mint"));
        }
        Ok(())
    }

    /// The decimals the ledger says the mint has.
    fn check_decimals(&self, mint: &MintInfo) -> Result<(), SponsoredDefect> {
        if self.decimals != mint.decimals {
            return Err(SponsoredDefect::WrongPayment("decimals"));
        }
        Ok(())
    }

    /// Exactly the price: more is refused too.
    fn check_amount(&self, terms: &ExactTerms) -> Result<(), SponsoredDefect> {
        if self.amount != terms.amount {
            return Err(SponsoredDefect::WrongPayment("amount"));
        }
        Ok(())
    }

    /// The payee's associated token account.
    fn check_destination(
        &self,
        terms: &ExactTerms,
        mint: &MintInfo,
    ) -> Result<(), SponsoredDefect> {
        let payee_token = get_associated_token_address_with_program_id(
            &terms.pay_to,
            &terms.mint,
            &mint.token_program,
        );
        if self.destination != payee_token {
            return Err(SponsoredDefect::WrongPayment("destination"));
        }
        Ok(())
    }

    /// The payer, the transaction's other signer, authorises the transfer.
    fn check_authority(&self, payer: &Pubkey) -> Result<(), SponsoredDefect> {
        if self.authority != *payer {
            return Err(SponsoredDefect::WrongPayment("authority"));
        }
        Ok(())
    }

    /// The payer may be a delegate of the fee payer's tokens: never spend those.
    fn check_source(
        &self,
        terms: &ExactTerms,
        mint: &MintInfo,
        policy: &SponsorPolicy,
    ) -> Result<(), SponsoredDefect> {
        let fee_payer_token = get_associated_token_address_with_program_id(
            &policy.fee_payer,
            &terms.mint,
            &mint.token_program,
        );
        if self.source == fee_payer_token {
            return Err(SponsoredDefect::FeePayerMisused);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use anchor_lang::solana_program::instruction::Instruction;
    use anchor_spl::token::spl_token;
    use anchor_spl::token_2022::spl_token_2022;
    use solana_hash::Hash;
    use solana_keypair::Keypair;
    use solana_message::compiled_instruction::CompiledInstruction;
    use solana_message::v0;
    use solana_message::VersionedMessage;
    use solana_signature::Signature;
    use solana_signer::Signer;

    use super::*;
    use crate::scheme::decode_transaction;
    use crate::scheme::encode_transaction;
    use crate::scheme::exact::build::budget;
    use crate::scheme::exact::build_exact;

    struct Case {
        payer: Keypair,
        terms: ExactTerms,
        mint: MintInfo,
        policy: SponsorPolicy,
    }

    fn case() -> Case {
        let fee_payer = Pubkey::new_unique();
        Case {
            payer: Keypair::new(),
            terms: ExactTerms {
                mint: Pubkey::new_unique(),
                pay_to: Pubkey::new_unique(),
                amount: 10_000,
                fee_payer,
                memo: Some("reference-1".into()),
            },
            mint: MintInfo {
                decimals: 6,
                token_program: spl_token::ID,
                delivers_in_full: true,
            },
            policy: SponsorPolicy {
                fee_payer,
                max_compute_unit_price: 5_000_000,
                max_compute_unit_limit: 200_000,
            },
        }
    }

    impl Case {
        fn valid(&self) -> VersionedTransaction {
            build_exact(&self.payer, &self.terms, &self.mint, Hash::new_unique())
        }

        /// The instructions of a valid payment, to be altered.
        fn instructions(&self) -> Vec<Instruction> {
            let tx = self.valid();
            let keys = tx.message.static_account_keys();
            let header = tx.message.header();
            tx.message
                .instructions()
                .iter()
                .map(|ix| Instruction {
                    program_id: keys[usize::from(ix.program_id_index)],
                    accounts: ix
                        .accounts
                        .iter()
                        .map(|&i| {
                            let i = usize::from(i);
                            let signer = i < usize::from(header.num_required_signatures);
                            anchor_lang::solana_program::instruction::AccountMeta {
                                pubkey: keys[i],
                                is_signer: signer,
                                is_writable: tx.message.is_maybe_writable(i, None),
                            }
                        })
                        .collect(),
                    data: ix.data.clone(),
                })
                .collect()
        }

        /// `instructions` signed by the payer (and `others`), for the fee payer.
        fn signed(
            &self,
            instructions: &[Instruction],
            others: &[&Keypair],
        ) -> VersionedTransaction {
            let message = v0::Message::try_compile(
                &self.terms.fee_payer,
                instructions,
                &[],
                Hash::new_unique(),
            )
            .unwrap();
            let message = VersionedMessage::V0(message);
            let signers = usize::from(message.header().num_required_signatures);
            let mut signatures = vec![Signature::default(); signers];
            let keys = message.static_account_keys().to_vec();
            for signer in std::iter::once(&self.payer).chain(others.iter().copied()) {
                let at = keys.iter().position(|k| *k == signer.pubkey()).unwrap();
                signatures[at] = signer.sign_message(&message.serialize());
            }
            VersionedTransaction {
                signatures,
                message,
            }
        }

        fn check(&self, tx: &VersionedTransaction) -> Result<ExactTransfer, SponsoredDefect> {
            validate_exact(tx, &self.terms, &self.mint, &self.policy)
        }

        fn altered(
            &self,
            change: impl FnOnce(&mut Vec<Instruction>),
        ) -> Result<ExactTransfer, SponsoredDefect> {
            let mut instructions = self.instructions();
            change(&mut instructions);
            self.check(&self.signed(&instructions, &[]))
        }
    }

    #[test]
    fn the_payment_our_client_builds_passes_and_survives_the_wire() {
        let case = case();
        let tx: VersionedTransaction =
            decode_transaction(&encode_transaction(&case.valid())).unwrap();
        let transfer = case.check(&tx).unwrap();
        assert_eq!(transfer.payer, case.payer.pubkey());
        assert_eq!(
            transfer.destination,
            get_associated_token_address_with_program_id(
                &case.terms.pay_to,
                &case.terms.mint,
                &spl_token::ID
            )
        );
        // Re-signed from its own parts, the same payment still passes.
        assert!(case.altered(|_| {}).is_ok());
    }

    #[test]
    fn the_amount_must_be_exactly_the_price() {
        let case = case();
        for amount in [9_999u64, 10_001] {
            let wrong = ExactTerms {
                amount,
                ..case.terms.clone()
            };
            let tx = build_exact(&case.payer, &wrong, &case.mint, Hash::new_unique());
            assert_eq!(
                case.check(&tx),
                Err(SponsoredDefect::WrongPayment("amount"))
            );
        }
    }

    #[test]
    fn the_transfer_must_go_to_the_payees_token_account_in_the_mint() {
        let case = case();
        let elsewhere = ExactTerms {
            pay_to: Pubkey::new_unique(),
            ..case.terms.clone()
        };
        let tx = build_exact(&case.payer, &elsewhere, &case.mint, Hash::new_unique());
        assert_eq!(
            case.check(&tx),
            Err(SponsoredDefect::WrongPayment("destination"))
        );
        let other_mint = ExactTerms {
            mint: Pubkey::new_unique(),
            ..case.terms.clone()
        };
        let tx = build_exact(&case.payer, &other_mint, &case.mint, Hash::new_unique());
        assert_eq!(case.check(&tx), Err(SponsoredDefect::WrongPayment("mint")));
        let decimals = MintInfo {
            decimals: 9,
            ..case.mint
        };
        let tx = build_exact(&case.payer, &case.terms, &decimals, Hash::new_unique());
        assert_eq!(
            case.check(&tx),
            Err(SponsoredDefect::WrongPayment("decimals"))
        );
        // Under the other token program the same transfer is refused.
        let token_2022 = MintInfo {
            token_program: spl_token_2022::ID,
            ..case.mint
        };
        let tx = build_exact(&case.payer, &case.terms, &token_2022, Hash::new_unique());
        assert_eq!(case.check(&tx), Err(SponsoredDefect::UnexpectedInstruction));
    }

    #[test]
    fn the_memo_must_be_the_challenges_and_only_one() {
        let case = case();
        let other = ExactTerms {
            memo: Some("reference-2".into()),
            ..case.terms.clone()
        };
        let tx = build_exact(&case.payer, &other, &case.mint, Hash::new_unique());
        assert_eq!(case.check(&tx), Err(SponsoredDefect::WrongPayment("memo")));
        let twice = case.altered(|ixs| ixs.push(ixs[3].clone()));
        assert_eq!(twice, Err(SponsoredDefect::WrongPayment("memo")));
        let none = case.altered(|ixs| {
            ixs.pop();
        });
        assert_eq!(none, Err(SponsoredDefect::WrongPayment("memo")));
        // A Lighthouse assertion, as wallets add, is allowed beside it.
        let lighthouse = case.altered(|ixs| {
            ixs.insert(
                3,
                Instruction::new_with_bytes(LIGHTHOUSE_PROGRAM, &[1, 2], vec![]),
            )
        });
        assert!(lighthouse.is_ok());
    }

    #[test]
    fn nothing_but_budget_transfer_memo_and_lighthouse() {
        let case = case();
        let foreign = case.altered(|ixs| {
            ixs.push(Instruction::new_with_bytes(
                Pubkey::new_unique(),
                &[],
                vec![],
            ))
        });
        assert_eq!(foreign, Err(SponsoredDefect::UnexpectedInstruction));
        let reordered = case.altered(|ixs| ixs.swap(0, 1));
        assert_eq!(reordered, Err(SponsoredDefect::UnexpectedInstruction));
        let too_many = case.altered(|ixs| {
            for _ in 0..3 {
                ixs.push(Instruction::new_with_bytes(LIGHTHOUSE_PROGRAM, &[], vec![]));
            }
        });
        assert_eq!(too_many, Err(SponsoredDefect::UnexpectedInstruction));
    }

    #[test]
    fn the_compute_budget_is_capped() {
        let case = case();
        let price = case.altered(|ixs| {
            ixs[1] = budget(ComputeBudgetInstruction::SetComputeUnitPrice(5_000_001))
        });
        assert_eq!(price, Err(SponsoredDefect::ComputeBudgetTooHigh));
        let limit = case
            .altered(|ixs| ixs[0] = budget(ComputeBudgetInstruction::SetComputeUnitLimit(200_001)));
        assert_eq!(limit, Err(SponsoredDefect::ComputeBudgetTooHigh));
    }

    #[test]
    fn the_fee_payer_is_in_no_instruction_and_signs_nothing_but_the_fee() {
        let case = case();
        let fee_payer = case.terms.fee_payer;
        let in_memo = case.altered(|ixs| {
            ixs[3].accounts.push(
                anchor_lang::solana_program::instruction::AccountMeta::new_readonly(
                    fee_payer, false,
                ),
            )
        });
        assert_eq!(in_memo, Err(SponsoredDefect::FeePayerMisused));
        // The fee payer as the transfer's authority, the payer signing elsewhere.
        let payer = case.payer.pubkey();
        let ata = |owner: &Pubkey, owner_of: &Pubkey| {
            get_associated_token_address_with_program_id(owner, owner_of, &spl_token::ID)
        };
        let transfer = |source: Pubkey, authority: Pubkey| {
            spl_token_2022::instruction::transfer_checked(
                &spl_token::ID,
                &source,
                &case.terms.mint,
                &ata(&case.terms.pay_to, &case.terms.mint),
                &authority,
                &[],
                10_000,
                6,
            )
            .unwrap()
        };
        let signs_transfer = case.altered(|ixs| {
            ixs[2] = transfer(ata(&payer, &case.terms.mint), fee_payer);
            ixs[3].accounts.push(
                anchor_lang::solana_program::instruction::AccountMeta::new_readonly(payer, true),
            );
        });
        assert_eq!(signs_transfer, Err(SponsoredDefect::FeePayerMisused));
        // The fee payer's token account as the source (spendable by a delegate).
        let source =
            case.altered(|ixs| ixs[2] = transfer(ata(&fee_payer, &case.terms.mint), payer));
        assert_eq!(source, Err(SponsoredDefect::FeePayerMisused));
        let other_fee_payer = ExactTerms {
            fee_payer: Pubkey::new_unique(),
            ..case.terms.clone()
        };
        let tx = build_exact(
            &case.payer,
            &other_fee_payer,
            &case.mint,
            Hash::new_unique(),
        );
        assert_eq!(case.check(&tx), Err(SponsoredDefect::WrongFeePayer));
    }

    #[test]
    fn only_the_payer_and_the_fee_payer_sign_and_the_payers_signature_holds() {
        let case = case();
        let stranger = Keypair::new();
        let third = case.altered(|ixs| {
            ixs[3].accounts.push(
                anchor_lang::solana_program::instruction::AccountMeta::new_readonly(
                    stranger.pubkey(),
                    true,
                ),
            )
        });
        // Three signers needed: refused whoever signed.
        assert!(matches!(
            third,
            Err(SponsoredDefect::WrongSigners) | Err(SponsoredDefect::BadPayerSignature)
        ));
        let mut forged = case.valid();
        forged.signatures[1] = Signature::from([7u8; 64]);
        assert_eq!(case.check(&forged), Err(SponsoredDefect::BadPayerSignature));
    }

    #[test]
    fn lookup_tables_are_refused() {
        let case = case();
        let mut tx = case.valid();
        let VersionedMessage::V0(message) = &mut tx.message else {
            unreachable!()
        };
        message
            .address_table_lookups
            .push(v0::MessageAddressTableLookup {
                account_key: Pubkey::new_unique(),
                writable_indexes: vec![0],
                readonly_indexes: vec![],
            });
        assert_eq!(case.check(&tx), Err(SponsoredDefect::UnexpectedInstruction));
    }

    #[test]
    fn a_mint_that_withholds_part_of_a_transfer_is_refused() {
        let case = case();
        let fee_mint = MintInfo {
            delivers_in_full: false,
            ..case.mint
        };
        let tx = build_exact(&case.payer, &case.terms, &fee_mint, Hash::new_unique());
        assert!(matches!(
            validate_exact(&tx, &case.terms, &fee_mint, &case.policy),
            Err(SponsoredDefect::WrongPayment(_))
        ));
    }

    #[test]
    fn the_offer_must_name_the_fee_payer_asked_to_sign() {
        let case = case();
        assert_eq!(case.policy.check_offered(&case.terms.fee_payer), Ok(()));
        let offered = ExactTerms {
            fee_payer: Pubkey::new_unique(),
            ..case.terms.clone()
        };
        assert_eq!(
            case.policy.check_offered(&offered.fee_payer),
            Err(SponsoredDefect::WrongFeePayer)
        );
    }

    #[test]
    fn three_to_six_instructions() {
        let memo = CompiledInstruction::new_from_raw_parts(1, vec![], vec![]);
        for count in 0..8 {
            let instructions = vec![memo.clone(); count];
            let calls = Calls {
                keys: &[],
                instructions: &instructions,
            };
            let expected = if (3..=6).contains(&count) {
                Ok(())
            } else {
                Err(SponsoredDefect::UnexpectedInstruction)
            };
            assert_eq!(calls.check_count(), expected, "{count} instructions");
        }
    }

    #[test]
    fn the_transfer_has_four_accounts_and_the_payer_as_authority() {
        let case = case();
        let multisig = case.altered(|ixs| {
            ixs[2].accounts.push(
                anchor_lang::solana_program::instruction::AccountMeta::new_readonly(
                    Pubkey::new_unique(),
                    false,
                ),
            )
        });
        assert_eq!(multisig, Err(SponsoredDefect::WrongPayment("accounts")));
        let payer = case.payer.pubkey();
        let transfer = StatedTransfer {
            source: Pubkey::new_unique(),
            mint: case.terms.mint,
            destination: Pubkey::new_unique(),
            authority: payer,
            amount: case.terms.amount,
            decimals: case.mint.decimals,
        };
        assert_eq!(transfer.check_authority(&payer), Ok(()));
        assert_eq!(
            transfer.check_authority(&Pubkey::new_unique()),
            Err(SponsoredDefect::WrongPayment("authority"))
        );
    }
}
