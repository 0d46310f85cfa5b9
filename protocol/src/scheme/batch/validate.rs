//! The checks a `batch-settlement` payment passes: its channel configuration against the
//! offer, its voucher against the channel (no ledger call: this is the request path),
//! and a deposit's transaction before the fee payer co-signs it (an `open` through the
//! channels' shared validation, with the receiver-authorizer binding; a `top_up` here).

use anchor_lang::solana_program::instruction::Instruction;
use solana_transaction::versioned::VersionedTransaction;

use super::authorization::{BatchAuthorization, ReadAuthorization};
use super::types::{BatchTerms, BatchVoucher, Channel, ChannelConfig};
use super::voucher::ReadVoucher;
use crate::scheme::channel::validate::BuyersCall;
use crate::scheme::channel::{self, request_close_instruction, top_up_instruction, Suffix};
use crate::scheme::sponsor::{SponsorPolicy, SponsoredDefect};
use crate::scheme::SchemeError;

/// Why a `batch-settlement` payment is refused, each with the specification's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchDefect {
    #[error("the payment's `{0}` is missing or malformed")]
    Malformed(&'static str),
    #[error("the channel configuration does not match the offer: {0}")]
    ChannelConfig(&'static str),
    #[error("the voucher's channel is not the one its configuration derives")]
    ChannelIdMismatch,
    #[error("the channel's payer or voucher signer is the seller's fee payer")]
    FeePayerMismatch,
    #[error("the channel binds another receiver authorizer")]
    ReceiverAuthorizerMismatch,
    #[error("the channel's grace period is not the offer's")]
    WithdrawDelayMismatch,
    #[error("a voucher in this scheme never expires: expiresAt must be 0")]
    VoucherExpiry,
    #[error("the voucher is not signed by the channel's payer authorizer")]
    VoucherSignature,
    #[error("the voucher's cumulative amount is not the accepted one plus this request's price")]
    CumulativeMismatch,
    #[error("the voucher's cumulative amount exceeds the channel's deposit")]
    CumulativeExceedsDeposit,
    #[error("the deposit transaction fails the sponsor's checks: {0}")]
    SetupTransaction(SponsoredDefect),
    #[error("the refund's transaction fails the sponsor's checks: {0}")]
    RefundTransaction(SponsoredDefect),
    #[error("the proof is not the channel payer's for this operator, channel and request")]
    AuthorizationSignature,
    #[error("the proof has expired")]
    AuthorizationExpired,
    #[error("the proof does not authorize the offer's amount")]
    AuthorizationAmount,
}

impl BatchDefect {
    /// The specification's reason code.
    pub fn code(&self) -> &'static str {
        match self {
            BatchDefect::Malformed(_) => "invalid_batch_settlement_svm_payload_type",
            BatchDefect::ChannelConfig(_) => "invalid_batch_settlement_svm_channel_state",
            BatchDefect::ChannelIdMismatch => "invalid_batch_settlement_svm_channel_id_mismatch",
            BatchDefect::FeePayerMismatch => "invalid_batch_settlement_svm_fee_payer_mismatch",
            BatchDefect::ReceiverAuthorizerMismatch => {
                "invalid_batch_settlement_svm_receiver_authorizer_mismatch"
            }
            BatchDefect::WithdrawDelayMismatch => {
                "invalid_batch_settlement_svm_withdraw_delay_mismatch"
            }
            BatchDefect::VoucherExpiry => "invalid_batch_settlement_svm_voucher_expiry",
            BatchDefect::VoucherSignature => "invalid_batch_settlement_svm_voucher_signature",
            BatchDefect::CumulativeMismatch => {
                "invalid_batch_settlement_svm_cumulative_amount_mismatch"
            }
            BatchDefect::CumulativeExceedsDeposit => {
                "invalid_batch_settlement_svm_cumulative_exceeds_deposit"
            }
            BatchDefect::SetupTransaction(_) => "invalid_batch_settlement_svm_setup_transaction",
            BatchDefect::RefundTransaction(_) => "invalid_batch_settlement_svm_refund_transaction",
            BatchDefect::AuthorizationSignature => "invalid_batch_settlement_svm_voucher_signature",
            BatchDefect::AuthorizationExpired => "invalid_batch_settlement_svm_voucher_expiry",
            BatchDefect::AuthorizationAmount => {
                "invalid_batch_settlement_svm_cumulative_amount_mismatch"
            }
        }
    }
}

impl From<SchemeError> for BatchDefect {
    fn from(error: SchemeError) -> Self {
        match error {
            SchemeError::Malformed(field) => BatchDefect::Malformed(field),
            SchemeError::OtherScheme => BatchDefect::Malformed("scheme"),
        }
    }
}

/// Reads `config` for an offer of `terms`: its receiver is `payTo`, its receiver
/// authorizer the offer's, its token the offer's mint, its grace period the offer's; its
/// payer and voucher signer are not the fee payer (the program needs a distinct payee,
/// and a fee payer signing vouchers could pay itself); its mode the offer's, and in the
/// server mode its voucher signer the offer's operator.
pub fn read_channel(config: &ChannelConfig, terms: &BatchTerms) -> Result<Channel, BatchDefect> {
    let channel = config.read()?;
    match terms.operator {
        Some(operator) if channel.server_signed => {
            if channel.payer_authorizer != operator {
                return Err(BatchDefect::VoucherSignature);
            }
        }
        None if !channel.server_signed => {}
        _ => return Err(BatchDefect::ChannelConfig("voucherSigner")),
    }
    if channel.receiver_authorizer != terms.receiver_authorizer {
        return Err(BatchDefect::ReceiverAuthorizerMismatch);
    }
    if channel.withdraw_delay != terms.withdraw_delay {
        return Err(BatchDefect::WithdrawDelayMismatch);
    }
    if channel.receiver != terms.pay_to {
        return Err(BatchDefect::ChannelConfig("receiver"));
    }
    if channel.token != terms.mint {
        return Err(BatchDefect::ChannelConfig("token"));
    }
    if channel.payer == terms.fee_payer || channel.payer_authorizer == terms.fee_payer {
        return Err(BatchDefect::FeePayerMismatch);
    }
    Ok(channel)
}

/// Reads `voucher` for `channel` under `terms`: for the channel the configuration
/// derives, never expiring, signed by its payer authorizer. Its amount is the caller's to
/// check against what was accepted.
pub fn read_voucher(
    voucher: &BatchVoucher,
    channel: &Channel,
    terms: &BatchTerms,
) -> Result<ReadVoucher, BatchDefect> {
    let read = voucher.read()?;
    if read.channel != channel.address(&terms.fee_payer) {
        return Err(BatchDefect::ChannelIdMismatch);
    }
    if read.expires_at != 0 {
        return Err(BatchDefect::VoucherExpiry);
    }
    if !read.signed_by(&channel.payer_authorizer) {
        return Err(BatchDefect::VoucherSignature);
    }
    Ok(read)
}

/// Reads the server mode's `proof` for `channel` under `terms` at `now` (unix seconds):
/// for the channel the configuration derives, by its payer, for its operator (the
/// channel's payer authorizer), unexpired, authorizing exactly `amount` (the offer's, or
/// zero for a refund). Its request identifier is the caller's to keep single-use.
pub fn read_authorization(
    proof: &BatchAuthorization,
    channel: &Channel,
    terms: &BatchTerms,
    amount: u64,
    now: i64,
) -> Result<ReadAuthorization, BatchDefect> {
    let read = proof.read()?;
    if read.channel != channel.address(&terms.fee_payer) {
        return Err(BatchDefect::ChannelIdMismatch);
    }
    if read.payer != channel.payer || !read.signed_for(&channel.payer_authorizer) {
        return Err(BatchDefect::AuthorizationSignature);
    }
    if now >= read.expires_at {
        return Err(BatchDefect::AuthorizationExpired);
    }
    if read.amount != amount {
        return Err(BatchDefect::AuthorizationAmount);
    }
    Ok(read)
}

/// Whether the fee payer may co-sign `tx`, the `open` of `channel` with `deposit` under
/// `terms` ([`channel::validate_open`]), carrying the binding of the offer's receiver
/// authorizer.
pub fn validate_open(
    tx: &VersionedTransaction,
    terms: &BatchTerms,
    channel: &Channel,
    deposit: u64,
    policy: &SponsorPolicy,
) -> Result<(), BatchDefect> {
    let binding = terms.binding_memo();
    let suffix = Suffix {
        memo: terms.memo.as_deref(),
        binding: Some(&binding),
        memo_optional: false,
    };
    let address = channel.address(&terms.fee_payer);
    let plan = channel.plan(terms, deposit);
    channel::validate_open(tx, &plan, &channel.opening(), &address, &suffix, policy)
        .map_err(BatchDefect::SetupTransaction)
}

/// Whether the fee payer may co-sign `tx`, a `top_up` of `channel` by `amount` under
/// `terms`: one Memo (the offer's when it has one), and the rest of
/// [`check_fee_only`].
pub fn validate_top_up(
    tx: &VersionedTransaction,
    terms: &BatchTerms,
    channel: &Channel,
    amount: u64,
    policy: &SponsorPolicy,
) -> Result<(), BatchDefect> {
    let expected = top_up_instruction(
        &channel.plan(terms, 0),
        &channel.address(&terms.fee_payer),
        &channel.payer,
        amount,
    );
    let suffix = Suffix {
        memo: terms.memo.as_deref(),
        binding: None,
        memo_optional: false,
    };
    check_fee_only(tx, terms, channel, &expected, &suffix, policy)
        .map_err(BatchDefect::SetupTransaction)
}

/// Whether the fee payer may co-sign `tx`, the buyer's own `request_close` of `channel`
/// under `terms` (relayed when the cooperative close is unavailable): at most one Memo
/// (the offer's, when it has one), and the rest of [`check_fee_only`].
pub fn validate_request_close(
    tx: &VersionedTransaction,
    terms: &BatchTerms,
    channel: &Channel,
    policy: &SponsorPolicy,
) -> Result<(), BatchDefect> {
    let expected = request_close_instruction(&channel.address(&terms.fee_payer), &channel.payer);
    let suffix = Suffix {
        memo: terms.memo.as_deref(),
        binding: None,
        memo_optional: true,
    };
    check_fee_only(tx, terms, channel, &expected, &suffix, policy)
        .map_err(BatchDefect::RefundTransaction)
}

/// A buyer's transaction on its channel whose fee alone the fee payer pays.
fn check_fee_only(
    tx: &VersionedTransaction,
    terms: &BatchTerms,
    channel: &Channel,
    expected: &Instruction,
    suffix: &Suffix,
    policy: &SponsorPolicy,
) -> Result<(), SponsoredDefect> {
    let call = BuyersCall {
        offered: &terms.fee_payer,
        opening: &channel.opening(),
        expected,
        suffix,
        fee_payer_in_call: false,
    };
    call.check(tx, policy)
}

#[cfg(test)]
mod tests {
    use anchor_lang::prelude::Pubkey;
    use solana_hash::Hash;
    use solana_keypair::Keypair;
    use solana_signer::Signer;

    use super::*;
    use crate::scheme::batch::authorization::sign_authorization;
    use crate::scheme::batch::build::build_refund_closing;
    use crate::scheme::batch::build::{build_open, build_top_up, build_voucher, channel_of};
    use crate::scheme::batch::types::BatchPayload;
    use crate::scheme::batch::voucher::sign_voucher;
    use crate::scheme::channel::Opening;
    use crate::scheme::decode_transaction;
    use crate::scheme::exact::build::signed_by_buyer;
    use crate::scheme::exact::MEMO_PROGRAM;
    use anchor_lang::solana_program::instruction::Instruction;

    struct World {
        buyer: Keypair,
        terms: BatchTerms,
        channel: Channel,
        policy: SponsorPolicy,
    }

    fn world() -> World {
        let buyer = Keypair::new();
        let fee_payer = Pubkey::new_unique();
        let terms = BatchTerms {
            mint: Pubkey::new_unique(),
            token_program: anchor_spl::token::ID,
            pay_to: Pubkey::new_unique(),
            amount: 1_000,
            fee_payer,
            receiver_authorizer: Pubkey::new_unique(),
            withdraw_delay: 3_600,
            memo: None,
            min_deposit: None,
            operator: None,
        };
        let opening = Opening {
            payer: buyer.pubkey(),
            salt: 42,
            open_slot: 341_000_000,
        };
        World {
            channel: channel_of(&buyer, &terms, &opening),
            buyer,
            terms,
            policy: SponsorPolicy {
                fee_payer,
                max_compute_unit_price: 1_000_000,
                max_compute_unit_limit: 400_000,
            },
        }
    }

    fn transaction(payload: &BatchPayload) -> VersionedTransaction {
        match payload {
            BatchPayload::Deposit { deposit, .. } => {
                decode_transaction(&deposit.transaction).unwrap()
            }
            _ => panic!("not a deposit"),
        }
    }

    #[test]
    fn our_open_passes_and_binds_the_offers_receiver_authorizer() {
        let w = world();
        let payload = build_open(
            &w.buyer,
            &w.terms,
            &w.channel,
            50_000,
            1_000,
            Hash::new_unique(),
        );
        let tx = transaction(&payload);
        assert_eq!(
            validate_open(&tx, &w.terms, &w.channel, 50_000, &w.policy),
            Ok(())
        );
        assert!(
            validate_open(&tx, &w.terms, &w.channel, 50_001, &w.policy).is_err(),
            "another deposit than the payload states"
        );
        // A channel bound to another receiver authorizer: its binding Memo names that one.
        let other = BatchTerms {
            receiver_authorizer: Pubkey::new_unique(),
            ..w.terms.clone()
        };
        let foreign = build_open(
            &w.buyer,
            &other,
            &w.channel,
            50_000,
            1_000,
            Hash::new_unique(),
        );
        assert_eq!(
            validate_open(
                &transaction(&foreign),
                &w.terms,
                &w.channel,
                50_000,
                &w.policy
            ),
            Err(BatchDefect::SetupTransaction(
                SponsoredDefect::WrongPayment("binding memo")
            ))
        );
    }

    #[test]
    fn a_top_up_passes_only_with_the_fee_payer_paying_the_fee_alone() {
        let w = world();
        let payload = build_top_up(
            &w.buyer,
            &w.terms,
            &w.channel,
            7_000,
            2_000,
            Hash::new_unique(),
        );
        let tx = transaction(&payload);
        assert_eq!(
            validate_top_up(&tx, &w.terms, &w.channel, 7_000, &w.policy),
            Ok(())
        );
        assert!(validate_top_up(&tx, &w.terms, &w.channel, 7_001, &w.policy).is_err());
        // The fee payer named in the memo's accounts: refused.
        let mut message = tx.message.clone();
        match &mut message {
            solana_message::VersionedMessage::Legacy(m) => m.instructions[3].accounts.push(0),
            solana_message::VersionedMessage::V0(m) => m.instructions[3].accounts.push(0),
        }
        let mut misused = tx.clone();
        misused.message = message;
        misused.signatures[1] = w.buyer.sign_message(&misused.message.serialize());
        assert_eq!(
            validate_top_up(&misused, &w.terms, &w.channel, 7_000, &w.policy),
            Err(BatchDefect::SetupTransaction(
                SponsoredDefect::FeePayerMisused
            ))
        );
        // An open is no top-up.
        let open = build_open(
            &w.buyer,
            &w.terms,
            &w.channel,
            7_000,
            1_000,
            Hash::new_unique(),
        );
        assert!(
            validate_top_up(&transaction(&open), &w.terms, &w.channel, 7_000, &w.policy).is_err()
        );
    }

    #[test]
    fn a_channel_configuration_must_be_the_offers() {
        let w = world();
        let config = w.channel.config();
        assert_eq!(read_channel(&config, &w.terms), Ok(w.channel));
        let refused = |change: &dyn Fn(&mut ChannelConfig)| {
            let mut c = config.clone();
            change(&mut c);
            read_channel(&c, &w.terms).err()
        };
        let stranger = Pubkey::new_unique().to_string();
        assert_eq!(
            refused(&|c| c.receiver_authorizer = stranger.clone()),
            Some(BatchDefect::ReceiverAuthorizerMismatch)
        );
        assert_eq!(
            refused(&|c| c.withdraw_delay = 900),
            Some(BatchDefect::WithdrawDelayMismatch)
        );
        assert_eq!(
            refused(&|c| c.receiver = stranger.clone()),
            Some(BatchDefect::ChannelConfig("receiver"))
        );
        assert_eq!(
            refused(&|c| c.token = stranger.clone()),
            Some(BatchDefect::ChannelConfig("token"))
        );
        let fee_payer = w.terms.fee_payer.to_string();
        assert_eq!(
            refused(&|c| c.payer_authorizer = fee_payer.clone()),
            Some(BatchDefect::FeePayerMismatch),
            "a fee payer signing vouchers could pay itself"
        );
        assert_eq!(
            refused(&|c| c.payer = fee_payer.clone()),
            Some(BatchDefect::FeePayerMismatch)
        );
    }

    #[test]
    fn a_voucher_must_be_the_channels_never_expiring_and_its_authorizers() {
        let w = world();
        let BatchPayload::Voucher { voucher, .. } =
            build_voucher(&w.buyer, &w.terms, &w.channel, 3_000)
        else {
            panic!("a voucher payload")
        };
        let read = read_voucher(&voucher, &w.channel, &w.terms).unwrap();
        assert_eq!(read.cumulative, 3_000);
        let address = w.channel.address(&w.terms.fee_payer);
        let forged = sign_voucher(&Keypair::new(), &address, 3_000);
        assert_eq!(
            read_voucher(&forged, &w.channel, &w.terms),
            Err(BatchDefect::VoucherSignature)
        );
        let elsewhere = sign_voucher(&w.buyer, &Pubkey::new_unique(), 3_000);
        assert_eq!(
            read_voucher(&elsewhere, &w.channel, &w.terms),
            Err(BatchDefect::ChannelIdMismatch)
        );
        let mut expiring = voucher.clone();
        expiring.expires_at = 1;
        assert_eq!(
            read_voucher(&expiring, &w.channel, &w.terms),
            Err(BatchDefect::VoucherExpiry)
        );
        let mut raised = voucher;
        raised.max_claimable_amount = "3001".into();
        assert_eq!(
            read_voucher(&raised, &w.channel, &w.terms),
            Err(BatchDefect::VoucherSignature),
            "the amount is what was signed"
        );
    }

    #[test]
    fn the_server_mode_binds_its_operator_and_each_request_to_the_payers_proof() {
        let w = world();
        let operator = Keypair::new();
        let terms = BatchTerms {
            operator: Some(operator.pubkey()),
            ..w.terms.clone()
        };
        let opening = w.channel.opening();
        let channel = channel_of(&w.buyer, &terms, &opening);
        assert_eq!(channel.payer_authorizer, operator.pubkey());
        assert_eq!(read_channel(&channel.config(), &terms), Ok(channel));
        // The modes do not mix: a client-mode channel under the server mode's offer, a
        // server-mode one under the client mode's, or another operator.
        assert_eq!(
            read_channel(&w.channel.config(), &terms),
            Err(BatchDefect::ChannelConfig("voucherSigner"))
        );
        assert_eq!(
            read_channel(&channel.config(), &w.terms),
            Err(BatchDefect::ChannelConfig("voucherSigner"))
        );
        let other = BatchTerms {
            operator: Some(Pubkey::new_unique()),
            ..terms.clone()
        };
        assert_eq!(
            read_channel(&channel.config(), &other),
            Err(BatchDefect::VoucherSignature)
        );

        let now = 1_758_215_000;
        let proof = |payer: &Keypair, amount, expires_at| {
            sign_authorization(
                payer,
                &channel.address(&terms.fee_payer),
                &operator.pubkey(),
                "request-1",
                amount,
                expires_at,
            )
        };
        let read = read_authorization(
            &proof(&w.buyer, 1_000, now + 60),
            &channel,
            &terms,
            1_000,
            now,
        )
        .unwrap();
        assert_eq!(read.request_id, "request-1");
        assert_eq!(
            read_authorization(
                &proof(&Keypair::new(), 1_000, now + 60),
                &channel,
                &terms,
                1_000,
                now
            ),
            Err(BatchDefect::AuthorizationSignature),
            "another payer"
        );
        assert_eq!(
            read_authorization(&proof(&w.buyer, 1_000, now), &channel, &terms, 1_000, now),
            Err(BatchDefect::AuthorizationExpired)
        );
        assert_eq!(
            read_authorization(
                &proof(&w.buyer, 999, now + 60),
                &channel,
                &terms,
                1_000,
                now
            ),
            Err(BatchDefect::AuthorizationAmount)
        );
        let mut elsewhere = proof(&w.buyer, 1_000, now + 60);
        elsewhere.channel_id = Pubkey::new_unique().to_string();
        assert_eq!(
            read_authorization(&elsewhere, &channel, &terms, 1_000, now),
            Err(BatchDefect::ChannelIdMismatch)
        );
    }

    #[test]
    fn a_relayed_request_close_is_the_buyers_own_and_costs_the_fee_payer_its_fee_only() {
        let w = world();
        let address = w.channel.address(&w.terms.fee_payer);
        let voucher = sign_voucher(&w.buyer, &address, 0);
        let closing = |instructions: &[Instruction]| {
            let tx = signed_by_buyer(
                &w.buyer,
                &w.terms.fee_payer,
                instructions,
                Hash::new_unique(),
            );
            validate_request_close(&tx, &w.terms, &w.channel, &w.policy)
        };
        let BatchPayload::Refund {
            transaction: Some(ours),
            ..
        } = build_refund_closing(&w.buyer, &w.terms, &w.channel, voucher, Hash::new_unique())
        else {
            panic!("a refund with its transaction")
        };
        let ours: VersionedTransaction = decode_transaction(&ours).unwrap();
        assert_eq!(
            validate_request_close(&ours, &w.terms, &w.channel, &w.policy),
            Ok(())
        );
        let close = request_close_instruction(&address, &w.buyer.pubkey());
        let memo = Instruction::new_with_bytes(MEMO_PROGRAM, b"note", vec![]);
        assert_eq!(
            closing(&[close.clone(), memo.clone()]),
            Ok(()),
            "one Memo may follow"
        );
        let refused = |instructions: &[Instruction]| match closing(instructions) {
            Err(BatchDefect::RefundTransaction(_)) => true,
            other => panic!("{other:?}"),
        };
        assert!(refused(&[close.clone(), memo.clone(), memo]), "two Memos");
        let elsewhere = request_close_instruction(&Pubkey::new_unique(), &w.buyer.pubkey());
        assert!(refused(&[elsewhere]), "another channel");
        let drain = anchor_lang::solana_program::system_instruction::transfer(
            &w.terms.fee_payer,
            &w.buyer.pubkey(),
            1,
        );
        assert!(
            refused(&[close.clone(), drain]),
            "the fee payer moving lamports"
        );
        assert!(refused(&[close.clone(), close]), "two closes");
    }
}
