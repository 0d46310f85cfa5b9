//! What an `upto` buyer signs: the `open` of a one-request channel that escrows the
//! ceiling, paid out wholly to the seller (`[{ payTo, 10000 bps }]`), with the seller's
//! fee payer as rent payer and zero-share payee and its receiver authorizer as the
//! channel's signer ([`build_upto`]). The rest of the channel's life is the program's
//! instructions ([`crate::scheme::channel::program`]).

use anchor_lang::solana_program::instruction::Instruction;
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_signer::Signer;

use super::types::{UptoPayload, UptoTerms};
use crate::scheme::channel::{open_instruction, ChannelPlan, Opening, OPEN_COMPUTE_UNIT_LIMIT};
use crate::scheme::encode_transaction;
use crate::scheme::exact::build::{budget_prefix, memo_or_nonce, signed_by_buyer};
use crate::scheme::exact::MEMO_PROGRAM;

impl UptoTerms {
    /// The channel these terms open: the ceiling escrowed, vouchers signed by the
    /// receiver authorizer.
    pub fn plan(&self) -> ChannelPlan {
        ChannelPlan {
            mint: self.mint,
            token_program: self.token_program,
            pay_to: self.pay_to,
            fee_payer: self.fee_payer,
            authorized_signer: self.receiver_authorizer,
            deposit: self.max_amount,
            grace_period: self.withdraw_delay,
        }
    }
}

/// When a payment may be used: from `valid_after` until `expires_at` (unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub valid_after: i64,
    pub expires_at: i64,
}

/// The payment `payer` makes for `terms`: the `open` of `opening`'s channel (budget,
/// `open`, the seller's memo or a random one), signed by the buyer for the fee payer to
/// co-sign, and what it states, as the payload carries them.
pub fn build_upto(
    payer: &Keypair,
    terms: &UptoTerms,
    opening: &Opening,
    window: Window,
    blockhash: Hash,
) -> UptoPayload {
    let (open, channel) = open_instruction(&terms.plan(), opening);
    let memo = memo_or_nonce(terms.memo.as_deref());
    let [limit, price] = budget_prefix(OPEN_COMPUTE_UNIT_LIMIT);
    let instructions = [
        limit,
        price,
        open,
        Instruction::new_with_bytes(MEMO_PROGRAM, memo.as_bytes(), vec![]),
    ];
    let open_transaction = signed_by_buyer(payer, &terms.fee_payer, &instructions, blockhash);
    UptoPayload {
        from: payer.pubkey().to_string(),
        max_amount: terms.max_amount.to_string(),
        expires_at: window.expires_at,
        valid_after: window.valid_after,
        nonce: opening.salt.to_string(),
        open_slot: opening.open_slot,
        channel_id: channel.to_string(),
        deposit: terms.max_amount.to_string(),
        authorized_signer: terms.receiver_authorizer.to_string(),
        open_transaction: encode_transaction(&open_transaction),
        voucher_signature: None,
    }
}
