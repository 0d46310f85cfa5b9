//! What a `batch-settlement` buyer sends: the deposit that opens its channel (or tops it
//! up), signed for the seller's fee payer to co-sign, with the voucher for its first
//! request; then one voucher a request; and the refund that closes the channel.
//!
//! In the client mode the payer signs its vouchers itself (its wallet is the channel's
//! payer authorizer); in the server mode it signs a proof for each request, and the
//! offer's operator is the payer authorizer.

use anchor_lang::solana_program::instruction::Instruction;
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_signer::Signer;

use super::authorization::{sign_authorization, BatchAuthorization};
use super::types::{BatchPayload, BatchTerms, BatchVoucher, Channel, Deposit};
use super::voucher::sign_voucher;
use crate::scheme::channel::{
    open_instruction, request_close_instruction, top_up_instruction, Opening,
    OPEN_COMPUTE_UNIT_LIMIT,
};
use crate::scheme::encode_transaction;
use crate::scheme::exact::build::{budget_prefix, memo_or_nonce, signed_by_buyer};
use crate::scheme::exact::MEMO_PROGRAM;

/// The compute-unit limit our client asks for a `top_up`: one token transfer.
pub const TOP_UP_COMPUTE_UNIT_LIMIT: u32 = 40_000;

/// The channel `payer` opens under `terms` with `opening`: the payer signs its own
/// vouchers (or, in the server mode, the offer's operator does), and the offer's
/// receiver authorizer is bound.
pub fn channel_of(payer: &Keypair, terms: &BatchTerms, opening: &Opening) -> Channel {
    Channel {
        payer: payer.pubkey(),
        payer_authorizer: terms.operator.unwrap_or(payer.pubkey()),
        receiver: terms.pay_to,
        receiver_authorizer: terms.receiver_authorizer,
        token: terms.mint,
        withdraw_delay: terms.withdraw_delay,
        salt: opening.salt,
        open_slot: opening.open_slot,
        server_signed: terms.operator.is_some(),
    }
}

/// What pays a request in the server mode: the buyer's proof for `request_id`, until
/// `expires_at` (unix seconds).
#[derive(Clone, Copy, Debug)]
pub struct Proof<'a> {
    pub request_id: &'a str,
    pub expires_at: i64,
}

impl Proof<'_> {
    fn sign(
        &self,
        payer: &Keypair,
        terms: &BatchTerms,
        channel: &Channel,
        amount: u64,
    ) -> BatchAuthorization {
        sign_authorization(
            payer,
            &channel.address(&terms.fee_payer),
            &channel.payer_authorizer,
            self.request_id,
            amount,
            self.expires_at,
        )
    }
}

/// The payment that opens `channel` with `deposit` base units and pays the first request
/// (`cumulative`, its price): the `open` (budget, `open`, the seller's memo or a random
/// one, the receiver-authorizer binding), signed by the buyer for the fee payer to
/// co-sign, and the voucher.
pub fn build_open(
    payer: &Keypair,
    terms: &BatchTerms,
    channel: &Channel,
    deposit: u64,
    cumulative: u64,
    blockhash: Hash,
) -> BatchPayload {
    let address = channel.address(&terms.fee_payer);
    BatchPayload::Deposit {
        channel_config: channel.config(),
        voucher: Some(sign_voucher(payer, &address, cumulative)),
        authorization: None,
        deposit: open_deposit(payer, terms, channel, deposit, blockhash),
    }
}

/// The server mode's [`build_open`]: the first request paid by the buyer's `proof` for
/// up to the offer's amount.
pub fn build_open_proved(
    payer: &Keypair,
    terms: &BatchTerms,
    channel: &Channel,
    deposit: u64,
    proof: Proof,
    blockhash: Hash,
) -> BatchPayload {
    BatchPayload::Deposit {
        channel_config: channel.config(),
        voucher: None,
        authorization: Some(proof.sign(payer, terms, channel, terms.amount)),
        deposit: open_deposit(payer, terms, channel, deposit, blockhash),
    }
}

fn open_deposit(
    payer: &Keypair,
    terms: &BatchTerms,
    channel: &Channel,
    deposit: u64,
    blockhash: Hash,
) -> Deposit {
    let plan = channel.plan(terms, deposit);
    let (open, _) = open_instruction(&plan, &channel.opening());
    let [limit, price] = budget_prefix(OPEN_COMPUTE_UNIT_LIMIT);
    let instructions = [
        limit,
        price,
        open,
        memo(&memo_or_nonce(terms.memo.as_deref())),
        memo(&terms.binding_memo()),
    ];
    let transaction = signed_by_buyer(payer, &terms.fee_payer, &instructions, blockhash);
    Deposit {
        amount: deposit.to_string(),
        transaction: encode_transaction(&transaction),
    }
}

/// The payment that adds `amount` base units to `channel`'s escrow and pays this request
/// (`cumulative`, the new total): the `top_up` (budget, `top_up`, a memo), signed by the
/// buyer for the fee payer to co-sign as fee payer only, and the voucher.
pub fn build_top_up(
    payer: &Keypair,
    terms: &BatchTerms,
    channel: &Channel,
    amount: u64,
    cumulative: u64,
    blockhash: Hash,
) -> BatchPayload {
    let address = channel.address(&terms.fee_payer);
    BatchPayload::Deposit {
        channel_config: channel.config(),
        voucher: Some(sign_voucher(payer, &address, cumulative)),
        authorization: None,
        deposit: top_up_deposit(payer, terms, channel, amount, blockhash),
    }
}

/// The server mode's [`build_top_up`]: this request paid by the buyer's `proof`.
pub fn build_top_up_proved(
    payer: &Keypair,
    terms: &BatchTerms,
    channel: &Channel,
    amount: u64,
    proof: Proof,
    blockhash: Hash,
) -> BatchPayload {
    BatchPayload::Deposit {
        channel_config: channel.config(),
        voucher: None,
        authorization: Some(proof.sign(payer, terms, channel, terms.amount)),
        deposit: top_up_deposit(payer, terms, channel, amount, blockhash),
    }
}

fn top_up_deposit(
    payer: &Keypair,
    terms: &BatchTerms,
    channel: &Channel,
    amount: u64,
    blockhash: Hash,
) -> Deposit {
    let plan = channel.plan(terms, 0);
    let address = channel.address(&terms.fee_payer);
    let [limit, price] = budget_prefix(TOP_UP_COMPUTE_UNIT_LIMIT);
    let instructions = [
        limit,
        price,
        top_up_instruction(&plan, &address, &channel.payer, amount),
        memo(&memo_or_nonce(terms.memo.as_deref())),
    ];
    let transaction = signed_by_buyer(payer, &terms.fee_payer, &instructions, blockhash);
    Deposit {
        amount: amount.to_string(),
        transaction: encode_transaction(&transaction),
    }
}

/// The payment of a request on `channel` at `cumulative` base units in all: a voucher.
pub fn build_voucher(
    payer: &Keypair,
    terms: &BatchTerms,
    channel: &Channel,
    cumulative: u64,
) -> BatchPayload {
    let address = channel.address(&terms.fee_payer);
    BatchPayload::Voucher {
        channel_config: channel.config(),
        voucher: sign_voucher(payer, &address, cumulative),
    }
}

/// The server mode's request on `channel`: the buyer's `proof` for up to the offer's
/// amount; the operator signs the voucher for what the answer cost.
pub fn build_authorization(
    payer: &Keypair,
    terms: &BatchTerms,
    channel: &Channel,
    proof: Proof,
) -> BatchPayload {
    BatchPayload::Authorization {
        channel_config: channel.config(),
        authorization: proof.sign(payer, terms, channel, terms.amount),
    }
}

/// The request that closes `channel`, whose seller accepted `voucher` last.
pub fn build_refund(channel: &Channel, voucher: BatchVoucher) -> BatchPayload {
    BatchPayload::Refund {
        channel_config: channel.config(),
        voucher: Some(voucher),
        authorization: None,
        transaction: None,
        close_authorization: None,
    }
}

/// [`build_refund`] with the buyer's own `request_close` of `channel`, signed for the
/// seller's fee payer to co-sign as fee payer only: the retry when the facilitator cannot
/// close cooperatively (`..._receiver_binding_unavailable`). The grace period starts;
/// the rest comes back once it has passed.
pub fn build_refund_closing(
    payer: &Keypair,
    terms: &BatchTerms,
    channel: &Channel,
    voucher: BatchVoucher,
    blockhash: Hash,
) -> BatchPayload {
    let address = channel.address(&terms.fee_payer);
    let close = request_close_instruction(&address, &payer.pubkey());
    let transaction = signed_by_buyer(payer, &terms.fee_payer, &[close], blockhash);
    BatchPayload::Refund {
        channel_config: channel.config(),
        voucher: Some(voucher),
        authorization: None,
        transaction: Some(encode_transaction(&transaction)),
        close_authorization: None,
    }
}

/// The server mode's [`build_refund`]: the buyer's proof of its close intent (an amount of
/// zero); the seller closes at the operator's latest voucher.
pub fn build_refund_proved(
    payer: &Keypair,
    terms: &BatchTerms,
    channel: &Channel,
    proof: Proof,
) -> BatchPayload {
    BatchPayload::Refund {
        channel_config: channel.config(),
        voucher: None,
        authorization: Some(proof.sign(payer, terms, channel, 0)),
        transaction: None,
        close_authorization: None,
    }
}

fn memo(text: &str) -> Instruction {
    Instruction::new_with_bytes(MEMO_PROGRAM, text.as_bytes(), vec![])
}
