//! What a fee payer is willing to co-sign, and the checks both schemes run on a
//! transaction before it does: the fee payer first, two signers, the payer's signature,
//! a capped compute budget. Each scheme runs them in its own order, then its own rules.

use anchor_lang::prelude::Pubkey;
use anchor_lang::AnchorDeserialize;
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_message::compiled_instruction::CompiledInstruction;
use solana_message::VersionedMessage;
use solana_signature::Signature;

/// What the fee payer is willing to sign.
#[derive(Clone, Debug)]
pub struct SponsorPolicy {
    pub fee_payer: Pubkey,
    /// Highest compute-unit price (micro-lamports) the fee payer pays.
    pub max_compute_unit_price: u64,
    /// Highest compute-unit limit the transaction may request.
    pub max_compute_unit_limit: u32,
}

/// Why a sponsored transaction was refused. Each has a stable reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SponsoredDefect {
    #[error("the transaction's fee payer is not this verifier's fee payer")]
    WrongFeePayer,
    #[error("the transaction must be signed by the fee payer and the payer only")]
    WrongSigners,
    #[error("the payer's signature is missing or invalid")]
    BadPayerSignature,
    #[error("the transaction may hold only compute-budget instructions and one pay")]
    UnexpectedInstruction,
    #[error("the compute-unit price or limit is above what the fee payer pays")]
    ComputeBudgetTooHigh,
    #[error("the pay instruction does not match the challenge: {0}")]
    WrongPayment(&'static str),
    #[error("the fee payer may appear only as fee payer and rent payer")]
    FeePayerMisused,
}

impl SponsoredDefect {
    pub fn reason(&self) -> &'static str {
        match self {
            SponsoredDefect::WrongFeePayer => "transaction_wrong_fee_payer",
            SponsoredDefect::WrongSigners => "transaction_wrong_signers",
            SponsoredDefect::BadPayerSignature => "transaction_bad_signature",
            SponsoredDefect::UnexpectedInstruction => "transaction_unexpected_instruction",
            SponsoredDefect::ComputeBudgetTooHigh => "transaction_compute_budget_too_high",
            SponsoredDefect::WrongPayment(_) => "transaction_wrong_payment",
            SponsoredDefect::FeePayerMisused => "transaction_fee_payer_misused",
        }
    }
}

impl SponsorPolicy {
    /// The transaction's fee payer, its first key, is ours.
    pub(crate) fn check_fee_payer(&self, keys: &[Pubkey]) -> Result<(), SponsoredDefect> {
        if keys.first() != Some(&self.fee_payer) {
            return Err(SponsoredDefect::WrongFeePayer);
        }
        Ok(())
    }

    /// The offer named the fee payer that is asked to sign.
    pub(crate) fn check_offered(&self, offered: &Pubkey) -> Result<(), SponsoredDefect> {
        if *offered != self.fee_payer {
            return Err(SponsoredDefect::WrongFeePayer);
        }
        Ok(())
    }

    /// The payer is someone other than the fee payer.
    pub(crate) fn check_payer_is_not_fee_payer(
        &self,
        payer: &Pubkey,
    ) -> Result<(), SponsoredDefect> {
        if *payer == self.fee_payer {
            return Err(SponsoredDefect::FeePayerMisused);
        }
        Ok(())
    }

    /// A compute-unit limit within what the fee payer pays for.
    pub(crate) fn check_unit_limit(&self, limit: u32) -> Result<(), SponsoredDefect> {
        if limit > self.max_compute_unit_limit {
            return Err(SponsoredDefect::ComputeBudgetTooHigh);
        }
        Ok(())
    }

    /// A compute-unit price within what the fee payer pays.
    pub(crate) fn check_unit_price(&self, price: u64) -> Result<(), SponsoredDefect> {
        if price > self.max_compute_unit_price {
            return Err(SponsoredDefect::ComputeBudgetTooHigh);
        }
        Ok(())
    }
}

/// No address lookup tables: every account must be visible before the fee payer signs,
/// or unresolved ones could be anyone's, the fee payer's included.
pub(crate) fn check_no_lookup_tables(message: &VersionedMessage) -> Result<(), SponsoredDefect> {
    if message
        .address_table_lookups()
        .is_some_and(|lookups| !lookups.is_empty())
    {
        return Err(SponsoredDefect::UnexpectedInstruction);
    }
    Ok(())
}

/// A message's instructions with the keys their indexes point into; each scheme adds
/// its own checks.
pub(crate) struct Calls<'a> {
    pub keys: &'a [Pubkey],
    pub instructions: &'a [CompiledInstruction],
}

impl Calls<'_> {
    /// The key at `index`, if the message has one.
    pub fn key(&self, index: u8) -> Option<Pubkey> {
        self.keys.get(usize::from(index)).copied()
    }
}

/// Exactly two signers, the fee payer and the payer, are required and present.
pub(crate) fn check_two_signers(
    required: u8,
    signatures: &[Signature],
) -> Result<(), SponsoredDefect> {
    if required != 2 || signatures.len() != 2 {
        return Err(SponsoredDefect::WrongSigners);
    }
    Ok(())
}

/// The payer, the second signer, signed `message`.
pub(crate) fn check_payer_signature(
    signatures: &[Signature],
    payer: &Pubkey,
    message: &[u8],
) -> Result<(), SponsoredDefect> {
    if !signatures[1].verify(payer.as_ref(), message) {
        return Err(SponsoredDefect::BadPayerSignature);
    }
    Ok(())
}

/// A compute-budget instruction: the program's, with no accounts, readable.
pub(crate) fn read_budget(
    program: Option<Pubkey>,
    accounts: usize,
    data: &[u8],
) -> Result<ComputeBudgetInstruction, SponsoredDefect> {
    if program != Some(solana_compute_budget_interface::ID) || accounts != 0 {
        return Err(SponsoredDefect::UnexpectedInstruction);
    }
    ComputeBudgetInstruction::try_from_slice(data)
        .map_err(|_| SponsoredDefect::UnexpectedInstruction)
}

#[cfg(test)]
mod tests {
    use anchor_lang::solana_program::instruction::Instruction;
    use solana_keypair::Keypair;
    use solana_signer::Signer;

    use super::*;

    fn policy() -> SponsorPolicy {
        SponsorPolicy {
            fee_payer: Pubkey::new_from_array([8; 32]),
            max_compute_unit_price: 1_000,
            max_compute_unit_limit: 200_000,
        }
    }

    #[test]
    fn the_fee_payer_comes_first_and_does_not_pay() {
        let policy = policy();
        let payer = Pubkey::new_from_array([4; 32]);
        assert_eq!(policy.check_fee_payer(&[policy.fee_payer, payer]), Ok(()));
        assert_eq!(
            policy.check_fee_payer(&[payer, policy.fee_payer]),
            Err(SponsoredDefect::WrongFeePayer)
        );
        assert_eq!(
            policy.check_fee_payer(&[]),
            Err(SponsoredDefect::WrongFeePayer)
        );
        assert_eq!(policy.check_payer_is_not_fee_payer(&payer), Ok(()));
        assert_eq!(
            policy.check_payer_is_not_fee_payer(&policy.fee_payer),
            Err(SponsoredDefect::FeePayerMisused)
        );
    }

    #[test]
    fn two_signers_and_the_payers_signature() {
        let payer = Keypair::new();
        let message = b"pay";
        let signed = [Signature::default(), payer.sign_message(message)];
        assert_eq!(check_two_signers(2, &signed), Ok(()));
        assert_eq!(
            check_two_signers(3, &signed),
            Err(SponsoredDefect::WrongSigners)
        );
        assert_eq!(
            check_two_signers(2, &signed[..1]),
            Err(SponsoredDefect::WrongSigners)
        );
        assert_eq!(
            check_payer_signature(&signed, &payer.pubkey(), message),
            Ok(())
        );
        assert_eq!(
            check_payer_signature(&signed, &payer.pubkey(), b"other"),
            Err(SponsoredDefect::BadPayerSignature)
        );
    }

    #[test]
    fn the_budget_is_the_programs_and_capped() {
        let policy = policy();
        assert_eq!(policy.check_unit_limit(200_000), Ok(()));
        assert_eq!(
            policy.check_unit_limit(200_001),
            Err(SponsoredDefect::ComputeBudgetTooHigh)
        );
        assert_eq!(policy.check_unit_price(1_000), Ok(()));
        assert_eq!(
            policy.check_unit_price(1_001),
            Err(SponsoredDefect::ComputeBudgetTooHigh)
        );
        let Instruction {
            program_id, data, ..
        } = ComputeBudgetInstruction::set_compute_unit_price(7);
        assert_eq!(
            read_budget(Some(program_id), 0, &data),
            Ok(ComputeBudgetInstruction::SetComputeUnitPrice(7))
        );
        for (program, accounts, data) in [
            (Some(Pubkey::new_unique()), 0, data.as_slice()),
            (None, 0, data.as_slice()),
            (Some(program_id), 1, data.as_slice()),
            (Some(program_id), 0, &[0xff][..]),
        ] {
            assert_eq!(
                read_budget(program, accounts, data),
                Err(SponsoredDefect::UnexpectedInstruction)
            );
        }
    }
}
