//! What an `upto` payload states, read and checked against the offer before its `open`
//! is validated ([`crate::scheme::channel::validate_open`], with [`validate_open`]'s
//! terms).

use anchor_lang::prelude::Pubkey;
use solana_transaction::versioned::VersionedTransaction;

use super::types::{UptoPayload, UptoTerms};
use crate::scheme::channel::{self, Opening, Suffix};
use crate::scheme::sponsor::{SponsorPolicy, SponsoredDefect};

/// Whether the fee payer may co-sign `tx`, the `open` of `opening` under `terms`
/// ([`channel::validate_open`]): the ceiling escrowed, the receiver authorizer as the
/// channel's signer, exactly one Memo, the offer's when it has one.
pub fn validate_open(
    tx: &VersionedTransaction,
    terms: &UptoTerms,
    opening: &Opening,
    channel: &Pubkey,
    policy: &SponsorPolicy,
) -> Result<(), SponsoredDefect> {
    let suffix = Suffix {
        memo: terms.memo.as_deref(),
        binding: None,
        memo_optional: false,
    };
    channel::validate_open(tx, &terms.plan(), opening, channel, &suffix, policy)
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

#[cfg(test)]
mod tests {
    use anchor_lang::solana_program::instruction::{AccountMeta, Instruction};
    use solana_hash::Hash;
    use solana_keypair::Keypair;
    use solana_message::Message;
    use solana_signature::Signature;
    use solana_signer::Signer;

    use super::*;
    use crate::scheme::channel::{channel_address, open_instruction};
    use crate::scheme::exact::{LIGHTHOUSE_PROGRAM, MEMO_PROGRAM};
    use solana_compute_budget_interface::ComputeBudgetInstruction;

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
            open_instruction(&terms.plan(), &w.opening).0,
            memo("0123456789abcdef0123456789abcdef"),
        ]
    }

    fn check(w: &World, tx: &VersionedTransaction) -> Result<(), SponsoredDefect> {
        let channel = channel_address(&w.opening.seeds(&w.terms.plan()));
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
        let channel = channel_address(&w.opening.seeds(&w.terms.plan()));
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
            channel_id: channel_address(&w.opening.seeds(&w.terms.plan())).to_string(),
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
