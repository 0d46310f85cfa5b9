//! The checks a buyer's `open` transaction passes before the fee payer co-signs it, as
//! the `upto` specification's acceptance policy requires: one function per rule, run in
//! [`validate_open`]'s order. The program id is the canonical one, never the offer's.

use anchor_lang::prelude::Pubkey;
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_message::compiled_instruction::CompiledInstruction;
use solana_message::VersionedMessage;
use solana_transaction::versioned::VersionedTransaction;

use super::build::{open_instruction, Opening};
use super::types::{UptoPayload, UptoTerms};
use super::PAYMENT_CHANNELS_PROGRAM;
use crate::scheme::exact::{LIGHTHOUSE_PROGRAM, MEMO_PROGRAM};
use crate::scheme::sponsor::{
    check_no_lookup_tables, check_payer_signature, check_two_signers, read_budget, Calls,
    SponsorPolicy, SponsoredDefect,
};

/// The most Lighthouse assertions a wallet adds (Phantom adds three).
const MAX_LIGHTHOUSE: usize = 3;

/// The most instructions after `open`: Lighthouse assertions and the Memo.
const MAX_SUFFIX: usize = 4;

/// Whether the fee payer may co-sign `tx`, the `open` of `opening` (what the payload
/// states: the buyer, salt, slot and channel) under `terms`: the canonical program, the
/// channel re-derived and equal to the payload's, deposit = maxAmount, grace period =
/// withdrawDelay, the fee payer as rent payer and zero-share payee and nowhere else, the
/// receiver authorizer as signer, the single 100% payout to payTo, a capped compute
/// budget, then only Lighthouse and exactly one Memo (the offer's, when it has one).
pub fn validate_open(
    tx: &VersionedTransaction,
    terms: &UptoTerms,
    opening: &Opening,
    channel: &Pubkey,
    policy: &SponsorPolicy,
) -> Result<(), SponsoredDefect> {
    let message = &tx.message;
    check_no_lookup_tables(message)?;
    let keys = message.static_account_keys();
    policy.check_fee_payer(keys)?;
    policy.check_offered(&terms.fee_payer)?;
    check_two_signers(message.header().num_required_signatures, &tx.signatures)?;
    check_payer(keys, opening)?;
    policy.check_payer_is_not_fee_payer(&opening.payer)?;
    check_payer_signature(&tx.signatures, &opening.payer, &message.serialize())?;
    let (expected, derived) = open_instruction(terms, opening);
    check_channel(&derived, channel)?;
    let calls = Calls {
        keys,
        instructions: message.instructions(),
    };
    let open = calls.open_index()?;
    calls.check_budget(open, policy)?;
    calls.check_open(open, &expected)?;
    calls.check_suffix(open, terms)?;
    calls.check_fee_payer_only_in_open(open, policy)?;
    check_writable(message, &expected)?;
    Ok(())
}

/// A payload's statements, read and checked against the offer's `terms` at `now` before
/// anything else: the opening it claims (buyer, salt, slot), its channel, and its expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claimed {
    pub opening: Opening,
    pub channel: Pubkey,
    pub expires_at: i64,
}

/// Reads `payload` for an offer of `terms` with `max_timeout_seconds`, at `now` (unix
/// seconds): `maxAmount` and `deposit` equal the offer's amount, `authorizedSigner` is
/// the offer's receiver authorizer, `validAfter <= now < expiresAt`, `expiresAt` is never
/// zero and no later than `now + max_timeout_seconds` (the window a buyer was given), and
/// no voucher: that is the seller's, on a claim settle only.
pub fn read_payload(
    payload: &UptoPayload,
    terms: &UptoTerms,
    max_timeout_seconds: u64,
    now: i64,
) -> Result<Claimed, SponsoredDefect> {
    let key = |text: &str, field| {
        text.parse::<Pubkey>()
            .map_err(|_| SponsoredDefect::WrongPayment(field))
    };
    let units = |text: &str, field| {
        text.parse::<u64>()
            .map_err(|_| SponsoredDefect::WrongPayment(field))
    };
    // Present at all, even as null (the specification's rule for a deposit).
    if payload.voucher_signature.is_some() {
        return Err(SponsoredDefect::WrongPayment("voucherSignature"));
    }
    if units(&payload.max_amount, "maxAmount")? != terms.max_amount {
        return Err(SponsoredDefect::WrongPayment("maxAmount"));
    }
    if units(&payload.deposit, "deposit")? != terms.max_amount {
        return Err(SponsoredDefect::WrongPayment("deposit"));
    }
    if key(&payload.authorized_signer, "authorizedSigner")? != terms.receiver_authorizer {
        return Err(SponsoredDefect::WrongPayment("authorizedSigner"));
    }
    let latest = now.saturating_add(i64::try_from(max_timeout_seconds).unwrap_or(i64::MAX));
    let expires_at = payload.expires_at;
    if expires_at == 0 || expires_at <= now || expires_at > latest || payload.valid_after > now {
        return Err(SponsoredDefect::WrongPayment("expiresAt or validAfter"));
    }
    Ok(Claimed {
        opening: Opening {
            payer: key(&payload.from, "from")?,
            salt: units(&payload.nonce, "nonce")?,
            open_slot: payload.open_slot,
        },
        channel: key(&payload.channel_id, "channelId")?,
        expires_at,
    })
}

/// The other signer, the second key, is the payload's buyer.
fn check_payer(keys: &[Pubkey], opening: &Opening) -> Result<(), SponsoredDefect> {
    if keys.get(1) != Some(&opening.payer) {
        return Err(SponsoredDefect::WrongSigners);
    }
    Ok(())
}

/// The payload's channel is the one re-derived from what the `open` binds.
fn check_channel(derived: &Pubkey, stated: &Pubkey) -> Result<(), SponsoredDefect> {
    if derived != stated {
        return Err(SponsoredDefect::WrongPayment("channelId"));
    }
    Ok(())
}

/// Only the `open`'s writable roles are writable: the buyer, the fee payer, the channel
/// and the two token accounts. A key in two roles keeps the union of their privileges.
fn check_writable(
    message: &VersionedMessage,
    expected: &anchor_lang::solana_program::instruction::Instruction,
) -> Result<(), SponsoredDefect> {
    let writable_roles: Vec<Pubkey> = expected
        .accounts
        .iter()
        .filter(|meta| meta.is_writable)
        .map(|meta| meta.pubkey)
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
    fn called(&self, ix: &CompiledInstruction) -> Option<Pubkey> {
        self.key(ix.program_id_index)
    }

    /// The one payment-channels instruction: after at most two budget instructions.
    fn open_index(&self) -> Result<usize, SponsoredDefect> {
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
    fn check_budget(&self, open: usize, policy: &SponsorPolicy) -> Result<(), SponsoredDefect> {
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
    fn check_open(
        &self,
        open: usize,
        expected: &anchor_lang::solana_program::instruction::Instruction,
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

    /// After `open`: at most four Lighthouse or Memo instructions, at most three
    /// Lighthouse, exactly one Memo, the offer's memo when it has one.
    fn check_suffix(&self, open: usize, terms: &UptoTerms) -> Result<(), SponsoredDefect> {
        let suffix = &self.instructions[open + 1..];
        let memos: Vec<&CompiledInstruction> = suffix
            .iter()
            .filter(|ix| self.called(ix) == Some(MEMO_PROGRAM))
            .collect();
        let lighthouse = suffix
            .iter()
            .filter(|ix| self.called(ix) == Some(LIGHTHOUSE_PROGRAM))
            .count();
        if suffix.len() > MAX_SUFFIX
            || lighthouse > MAX_LIGHTHOUSE
            || memos.len() + lighthouse != suffix.len()
            || memos.len() != 1
        {
            return Err(SponsoredDefect::UnexpectedInstruction);
        }
        if let Some(memo) = &terms.memo {
            if memos[0].data != memo.as_bytes() {
                return Err(SponsoredDefect::WrongPayment("memo"));
            }
        }
        Ok(())
    }

    /// The fee payer, key 0, is never a program and appears in no instruction but as
    /// `open`'s rent payer and payee (and its receiver authorizer, when it is that too).
    fn check_fee_payer_only_in_open(
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

#[cfg(test)]
mod tests {
    use anchor_lang::solana_program::instruction::{AccountMeta, Instruction};
    use solana_hash::Hash;
    use solana_keypair::Keypair;
    use solana_message::Message;
    use solana_signature::Signature;
    use solana_signer::Signer;

    use super::*;
    use crate::scheme::upto::channel_address;

    struct World {
        buyer: Keypair,
        terms: UptoTerms,
        opening: Opening,
        policy: SponsorPolicy,
    }

    fn world() -> World {
        let buyer = Keypair::new();
        let fee_payer = Pubkey::new_unique();
        World {
            opening: Opening {
                payer: buyer.pubkey(),
                salt: 42,
                open_slot: 341_000_000,
            },
            buyer,
            terms: UptoTerms {
                mint: Pubkey::new_unique(),
                token_program: anchor_spl::token::ID,
                pay_to: Pubkey::new_unique(),
                max_amount: 10_000,
                fee_payer,
                receiver_authorizer: Pubkey::new_unique(),
                withdraw_delay: 3_600,
                memo: None,
            },
            policy: SponsorPolicy {
                fee_payer,
                max_compute_unit_price: 1_000,
                max_compute_unit_limit: 200_000,
            },
        }
    }

    fn memo(text: &str) -> Instruction {
        Instruction {
            program_id: MEMO_PROGRAM,
            accounts: Vec::new(),
            data: text.as_bytes().to_vec(),
        }
    }

    /// `instructions` with the fee payer first, signed by the buyer only.
    fn signed(w: &World, instructions: &[Instruction]) -> VersionedTransaction {
        let message = Message::new_with_blockhash(
            instructions,
            Some(&w.policy.fee_payer),
            &Hash::new_unique(),
        );
        let mut tx =
            VersionedTransaction::from(solana_transaction::Transaction::new_unsigned(message));
        let bytes = tx.message.serialize();
        tx.signatures = vec![Signature::default(), w.buyer.sign_message(&bytes)];
        tx
    }

    /// A wallet's `open`: a budget, the `open`, a memo.
    fn open_with(w: &World, terms: &UptoTerms) -> Vec<Instruction> {
        vec![
            ComputeBudgetInstruction::set_compute_unit_limit(50_000),
            ComputeBudgetInstruction::set_compute_unit_price(1),
            open_instruction(terms, &w.opening).0,
            memo("0123456789abcdef0123456789abcdef"),
        ]
    }

    fn check(w: &World, tx: &VersionedTransaction) -> Result<(), SponsoredDefect> {
        let channel = channel_address(&w.opening.seeds(&w.terms));
        validate_open(tx, &w.terms, &w.opening, &channel, &w.policy)
    }

    #[test]
    fn a_wallets_open_for_the_offer_passes() {
        let w = world();
        assert_eq!(check(&w, &signed(&w, &open_with(&w, &w.terms))), Ok(()));
    }

    #[test]
    fn an_open_that_binds_anything_else_is_refused() {
        let w = world();
        let stranger = Pubkey::new_unique();
        let base = &w.terms;
        for (what, other) in [
            (
                "distribution",
                UptoTerms {
                    pay_to: stranger,
                    ..base.clone()
                },
            ),
            (
                "deposit",
                UptoTerms {
                    max_amount: base.max_amount + 1,
                    ..base.clone()
                },
            ),
            (
                "grace period",
                UptoTerms {
                    withdraw_delay: 1,
                    ..base.clone()
                },
            ),
            (
                "signer",
                UptoTerms {
                    receiver_authorizer: stranger,
                    ..base.clone()
                },
            ),
            (
                "mint",
                UptoTerms {
                    mint: stranger,
                    ..base.clone()
                },
            ),
        ] {
            let tx = signed(&w, &open_with(&w, &other));
            let checked = check(&w, &tx);
            assert!(
                matches!(checked, Err(SponsoredDefect::WrongPayment(_))),
                "{what}: {checked:?}"
            );
        }
    }

    #[test]
    fn another_program_or_a_stated_channel_that_is_not_the_open_s_is_refused() {
        let w = world();
        let mut instructions = open_with(&w, &w.terms);
        instructions[2].program_id = Pubkey::new_unique();
        assert_eq!(
            check(&w, &signed(&w, &instructions)),
            Err(SponsoredDefect::UnexpectedInstruction),
            "a look-alike program"
        );
        let tx = signed(&w, &open_with(&w, &w.terms));
        let elsewhere = Pubkey::new_unique();
        assert_eq!(
            validate_open(&tx, &w.terms, &w.opening, &elsewhere, &w.policy),
            Err(SponsoredDefect::WrongPayment("channelId"))
        );
    }

    #[test]
    fn the_fee_payer_pays_only_fees_and_rent() {
        let w = world();
        // Its lamports moved by one more instruction.
        let mut drained = open_with(&w, &w.terms);
        drained.insert(
            3,
            anchor_lang::solana_program::system_instruction::transfer(
                &w.policy.fee_payer,
                &Pubkey::new_unique(),
                1,
            ),
        );
        assert!(check(&w, &signed(&w, &drained)).is_err());
        // Named in the memo's accounts.
        let mut named = open_with(&w, &w.terms);
        named[3]
            .accounts
            .push(AccountMeta::new_readonly(w.policy.fee_payer, false));
        assert_eq!(
            check(&w, &signed(&w, &named)),
            Err(SponsoredDefect::FeePayerMisused)
        );
        // A budget above the caps.
        let mut dear = open_with(&w, &w.terms);
        dear[1] = ComputeBudgetInstruction::set_compute_unit_price(1_001);
        assert_eq!(
            check(&w, &signed(&w, &dear)),
            Err(SponsoredDefect::ComputeBudgetTooHigh)
        );
        // Another fee payer than the offer's.
        let other = SponsorPolicy {
            fee_payer: Pubkey::new_unique(),
            ..w.policy.clone()
        };
        let tx = signed(&w, &open_with(&w, &w.terms));
        let channel = channel_address(&w.opening.seeds(&w.terms));
        assert_eq!(
            validate_open(&tx, &w.terms, &w.opening, &channel, &other),
            Err(SponsoredDefect::WrongFeePayer)
        );
    }

    #[test]
    fn exactly_one_memo_the_offers_and_no_other_instruction() {
        let mut w = world();
        let mut none = open_with(&w, &w.terms);
        none.pop();
        assert_eq!(
            check(&w, &signed(&w, &none)),
            Err(SponsoredDefect::UnexpectedInstruction)
        );
        let mut two = open_with(&w, &w.terms);
        two.push(memo("again"));
        assert_eq!(
            check(&w, &signed(&w, &two)),
            Err(SponsoredDefect::UnexpectedInstruction)
        );
        w.terms.memo = Some("invoice-7".into());
        let mut wrong = open_with(&w, &w.terms);
        wrong[3] = memo("invoice-8");
        assert_eq!(
            check(&w, &signed(&w, &wrong)),
            Err(SponsoredDefect::WrongPayment("memo"))
        );
        let mut right = open_with(&w, &w.terms);
        right[3] = memo("invoice-7");
        assert_eq!(check(&w, &signed(&w, &right)), Ok(()));
    }

    #[test]
    fn no_account_is_writable_outside_the_open_s_roles() {
        let w = world();
        let mut instructions = open_with(&w, &w.terms);
        instructions.insert(
            3,
            Instruction {
                program_id: LIGHTHOUSE_PROGRAM,
                accounts: vec![AccountMeta::new(Pubkey::new_unique(), false)],
                data: vec![0],
            },
        );
        assert_eq!(
            check(&w, &signed(&w, &instructions)),
            Err(SponsoredDefect::WrongPayment(
                "a writable account outside open's roles"
            ))
        );
        instructions[3].accounts[0].is_writable = false;
        assert_eq!(
            check(&w, &signed(&w, &instructions)),
            Ok(()),
            "an assertion reads"
        );
    }

    fn payload(w: &World, now: i64) -> UptoPayload {
        UptoPayload {
            from: w.buyer.pubkey().to_string(),
            max_amount: "10000".into(),
            expires_at: now + 300,
            valid_after: now,
            nonce: w.opening.salt.to_string(),
            open_slot: w.opening.open_slot,
            channel_id: channel_address(&w.opening.seeds(&w.terms)).to_string(),
            deposit: "10000".into(),
            authorized_signer: w.terms.receiver_authorizer.to_string(),
            open_transaction: String::new(),
            voucher_signature: None,
        }
    }

    #[test]
    fn a_payload_states_the_offers_ceiling_signer_and_a_window_it_may_use() {
        let w = world();
        let now = 1_900_000_000;
        let claimed = read_payload(&payload(&w, now), &w.terms, 300, now).unwrap();
        assert_eq!(claimed.opening, w.opening);
        assert_eq!(claimed.expires_at, now + 300);
        let refused = |change: fn(&mut UptoPayload)| {
            let mut p = payload(&w, now);
            change(&mut p);
            read_payload(&p, &w.terms, 300, now).err()
        };
        let wrong = |field| Some(SponsoredDefect::WrongPayment(field));
        assert_eq!(
            refused(|p| p.max_amount = "9999".into()),
            wrong("maxAmount")
        );
        assert_eq!(refused(|p| p.deposit = "10001".into()), wrong("deposit"));
        assert_eq!(
            refused(|p| p.authorized_signer = Pubkey::new_unique().to_string()),
            wrong("authorizedSigner")
        );
        let window = wrong("expiresAt or validAfter");
        assert_eq!(refused(|p| p.expires_at = 0), window, "never zero");
        assert_eq!(refused(|p| p.expires_at = p.valid_after), window, "expired");
        assert_eq!(
            refused(|p| p.expires_at += 1),
            window,
            "past the offer's timeout"
        );
        assert_eq!(refused(|p| p.valid_after += 1), window, "not valid yet");
        assert_eq!(
            refused(|p| p.voucher_signature = Some(Some(String::new()))),
            wrong("voucherSignature"),
            "a voucher is the seller's to add"
        );
        assert_eq!(
            refused(|p| p.voucher_signature = Some(None)),
            wrong("voucherSignature"),
            "even null: the field is the seller's"
        );
        assert_eq!(refused(|p| p.nonce = "-1".into()), wrong("nonce"));
    }

    #[test]
    fn a_missing_or_forged_buyer_signature_is_refused() {
        let w = world();
        let mut tx = signed(&w, &open_with(&w, &w.terms));
        tx.signatures[1] = Signature::default();
        assert_eq!(check(&w, &tx), Err(SponsoredDefect::BadPayerSignature));
    }
}
