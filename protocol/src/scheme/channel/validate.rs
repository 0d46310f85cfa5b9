//! The checks a buyer's `open` transaction passes before the fee payer co-signs it, as
//! the acceptance policies of both channel schemes require (`upto`, and
//! `batch-settlement`'s deposit): one function per rule, run in [`validate_open`]'s
//! order. The program id is the canonical one, never the offer's.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_message::compiled_instruction::CompiledInstruction;
use solana_message::VersionedMessage;
use solana_transaction::versioned::VersionedTransaction;

use super::program::{open_instruction, ChannelPlan, Opening};
use super::PAYMENT_CHANNELS_PROGRAM;
use crate::scheme::exact::{LIGHTHOUSE_PROGRAM, MEMO_PROGRAM};
use crate::scheme::sponsor::{
    check_no_lookup_tables, check_payer_signature, check_two_signers, read_budget, Calls,
    SponsorPolicy, SponsoredDefect,
};

/// The most Lighthouse assertions a wallet adds (Phantom adds three).
const MAX_LIGHTHOUSE: usize = 3;

/// What may follow the channel instruction: Lighthouse assertions and Memos.
#[derive(Clone, Copy, Debug, Default)]
pub struct Suffix<'a> {
    /// The seller's memo, which the one free Memo must carry when there is one.
    pub memo: Option<&'a str>,
    /// A Memo the transaction must also carry, exactly (`batch-settlement`'s
    /// receiver-authorizer binding on `open`).
    pub binding: Option<&'a str>,
    /// Whether the one free Memo may be left out (a `request_close`'s suffix).
    pub memo_optional: bool,
}

/// Whether the fee payer may co-sign `tx`, the `open` of `opening` (what the payload
/// states: the buyer, salt, slot and channel) under `plan`: the canonical program, the
/// channel re-derived and equal to the payload's, the plan's deposit, grace period and
/// voucher signer, the fee payer as rent payer and zero-share payee and nowhere else,
/// the single 100% payout to payTo, a capped compute budget, then only Lighthouse and
/// exactly one Memo (the offer's, when it has one), besides the `suffix`'s binding.
pub fn validate_open(
    tx: &VersionedTransaction,
    plan: &ChannelPlan,
    opening: &Opening,
    channel: &Pubkey,
    suffix: &Suffix,
    policy: &SponsorPolicy,
) -> Result<(), SponsoredDefect> {
    let (expected, derived) = open_instruction(plan, opening);
    check_channel(&derived, channel)?;
    let call = BuyersCall {
        offered: &plan.fee_payer,
        opening,
        expected: &expected,
        suffix,
        // The fee payer is `open`'s rent payer and payee, and nothing else.
        fee_payer_in_call: true,
    };
    call.check(tx, policy)
}

/// A buyer's transaction on its channel that the fee payer co-signs: what it must be.
pub(crate) struct BuyersCall<'a> {
    /// The fee payer the offer named.
    pub offered: &'a Pubkey,
    pub opening: &'a Opening,
    /// The one payment-channels instruction it makes.
    pub expected: &'a Instruction,
    pub suffix: &'a Suffix<'a>,
    /// Whether the fee payer is an account of that instruction (`open`'s rent payer and
    /// payee); otherwise it pays the fee only.
    pub fee_payer_in_call: bool,
}

impl BuyersCall<'_> {
    /// No lookup tables; the fee payer first and the buyer second, the only signers, the
    /// buyer's signature valid; a capped budget, exactly the expected instruction, the
    /// suffix; the fee payer nowhere else, and no writable account outside the
    /// instruction's roles.
    pub(crate) fn check(
        &self,
        tx: &VersionedTransaction,
        policy: &SponsorPolicy,
    ) -> Result<(), SponsoredDefect> {
        let message = &tx.message;
        check_no_lookup_tables(message)?;
        let keys = message.static_account_keys();
        policy.check_fee_payer(keys)?;
        policy.check_offered(self.offered)?;
        check_two_signers(message.header().num_required_signatures, &tx.signatures)?;
        check_payer(keys, self.opening)?;
        policy.check_payer_is_not_fee_payer(&self.opening.payer)?;
        check_payer_signature(&tx.signatures, &self.opening.payer, &message.serialize())?;
        let calls = Calls {
            keys,
            instructions: message.instructions(),
        };
        let call = calls.open_index()?;
        calls.check_budget(call, policy)?;
        calls.check_open(call, self.expected)?;
        calls.check_suffix(call, self.suffix)?;
        // Index `usize::MAX` names no instruction: the fee payer in none at all.
        let roles = if self.fee_payer_in_call {
            call
        } else {
            usize::MAX
        };
        calls.check_fee_payer_only_in_open(roles, policy)?;
        check_writable(message, self.expected, &policy.fee_payer)
    }
}

/// The other signer, the second key, is the payload's buyer.
pub(crate) fn check_payer(keys: &[Pubkey], opening: &Opening) -> Result<(), SponsoredDefect> {
    if keys.get(1) != Some(&opening.payer) {
        return Err(SponsoredDefect::WrongSigners);
    }
    Ok(())
}

/// The payload's channel is the one re-derived from what the `open` binds.
pub(crate) fn check_channel(derived: &Pubkey, stated: &Pubkey) -> Result<(), SponsoredDefect> {
    if derived != stated {
        return Err(SponsoredDefect::WrongPayment("channelId"));
    }
    Ok(())
}

/// Only the channel instruction's writable roles are writable, and the fee payer, which
/// pays: for an `open`, the buyer, the fee payer, the channel and the two token
/// accounts. A key in two roles keeps the union of their privileges.
pub(crate) fn check_writable(
    message: &VersionedMessage,
    expected: &Instruction,
    fee_payer: &Pubkey,
) -> Result<(), SponsoredDefect> {
    let writable_roles: Vec<Pubkey> = expected
        .accounts
        .iter()
        .filter(|meta| meta.is_writable)
        .map(|meta| meta.pubkey)
        .chain([*fee_payer])
        .collect();
    let stray = message
        .static_account_keys()
        .iter()
        .enumerate()
        .any(|(i, key)| message.is_maybe_writable(i, None) && !writable_roles.contains(key));
    if stray {
        return Err(SponsoredDefect::WrongPayment(
            "a writable account outside open's roles",
        ));
    }
    Ok(())
}

impl Calls<'_> {
    pub(crate) fn called(&self, ix: &CompiledInstruction) -> Option<Pubkey> {
        self.key(ix.program_id_index)
    }

    /// The one payment-channels instruction: after at most two budget instructions.
    pub(crate) fn open_index(&self) -> Result<usize, SponsoredDefect> {
        let mut channels = self
            .instructions
            .iter()
            .enumerate()
            .filter(|(_, ix)| self.called(ix) == Some(PAYMENT_CHANNELS_PROGRAM));
        match (channels.next(), channels.next()) {
            (Some((index, _)), None) if index <= 2 => Ok(index),
            _ => Err(SponsoredDefect::UnexpectedInstruction),
        }
    }

    /// Before `open`: at most one limit, then at most one price, within the caps.
    pub(crate) fn check_budget(
        &self,
        open: usize,
        policy: &SponsorPolicy,
    ) -> Result<(), SponsoredDefect> {
        let mut seen_price = false;
        let mut seen_limit = false;
        for ix in &self.instructions[..open] {
            match read_budget(self.called(ix), ix.accounts.len(), &ix.data)? {
                ComputeBudgetInstruction::SetComputeUnitLimit(limit)
                    if !seen_limit && !seen_price =>
                {
                    policy.check_unit_limit(limit)?;
                    seen_limit = true;
                }
                ComputeBudgetInstruction::SetComputeUnitPrice(price) if !seen_price => {
                    policy.check_unit_price(price)?;
                    seen_price = true;
                }
                _ => return Err(SponsoredDefect::UnexpectedInstruction),
            }
        }
        Ok(())
    }

    /// `open` is exactly the one these terms and this opening make: its data byte for
    /// byte (no truncation, no trailing bytes) and its 14 accounts in order.
    pub(crate) fn check_open(
        &self,
        open: usize,
        expected: &Instruction,
    ) -> Result<(), SponsoredDefect> {
        let ix = &self.instructions[open];
        if ix.data != expected.data {
            return Err(SponsoredDefect::WrongPayment("open's arguments"));
        }
        let accounts: Vec<Option<Pubkey>> = ix
            .accounts
            .iter()
            .map(|&i| self.keys.get(usize::from(i)).copied())
            .collect();
        let roles: Vec<Option<Pubkey>> = expected.accounts.iter().map(|m| Some(m.pubkey)).collect();
        if accounts != roles {
            return Err(SponsoredDefect::WrongPayment("open's accounts"));
        }
        Ok(())
    }

    /// After `open`: at most three Lighthouse assertions and the Memos: exactly one of
    /// the buyer's (the offer's memo when it has one) and the binding, when there is one.
    pub(crate) fn check_suffix(&self, open: usize, suffix: &Suffix) -> Result<(), SponsoredDefect> {
        let after = &self.instructions[open + 1..];
        let mut memos: Vec<&[u8]> = after
            .iter()
            .filter(|ix| self.called(ix) == Some(MEMO_PROGRAM))
            .map(|ix| ix.data.as_slice())
            .collect();
        let lighthouse = after
            .iter()
            .filter(|ix| self.called(ix) == Some(LIGHTHOUSE_PROGRAM))
            .count();
        if lighthouse > MAX_LIGHTHOUSE || memos.len() + lighthouse != after.len() {
            return Err(SponsoredDefect::UnexpectedInstruction);
        }
        if let Some(binding) = suffix.binding {
            let bound = memos.iter().position(|m| *m == binding.as_bytes());
            match bound {
                Some(at) => {
                    memos.remove(at);
                }
                None => return Err(SponsoredDefect::WrongPayment("binding memo")),
            }
        }
        match memos.len() {
            0 if suffix.memo_optional => return Ok(()),
            1 => {}
            _ => return Err(SponsoredDefect::UnexpectedInstruction),
        }
        if let Some(memo) = suffix.memo {
            if memos[0] != memo.as_bytes() {
                return Err(SponsoredDefect::WrongPayment("memo"));
            }
        }
        Ok(())
    }

    /// The fee payer, key 0, is never a program and appears in no instruction but as
    /// `open`'s rent payer and payee (and its voucher signer, when it is that too).
    pub(crate) fn check_fee_payer_only_in_open(
        &self,
        open: usize,
        policy: &SponsorPolicy,
    ) -> Result<(), SponsoredDefect> {
        let misused = self
            .instructions
            .iter()
            .enumerate()
            .any(|(i, ix)| ix.program_id_index == 0 || (i != open && ix.accounts.contains(&0)));
        if misused || self.keys.first() != Some(&policy.fee_payer) {
            return Err(SponsoredDefect::FeePayerMisused);
        }
        Ok(())
    }
}
