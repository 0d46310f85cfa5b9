//! The `exact` transaction a buyer signs: compute budget, `TransferChecked`, Memo.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_spl::associated_token::get_associated_token_address_with_program_id;
use anchor_spl::token_2022::spl_token_2022;
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_message::{v0, VersionedMessage};
use solana_signature::Signature;
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;

use super::{ExactTerms, COMPUTE_UNIT_LIMIT, COMPUTE_UNIT_PRICE, MEMO_PROGRAM};
use crate::mint::MintInfo;

/// The transaction `payer` signs to pay `terms` in `mint` (facts the client read from a
/// ledger, never from the seller), for the fee payer to co-sign. With no memo asked for,
/// a random one keeps identical payments distinct.
pub fn build_exact(
    payer: &Keypair,
    terms: &ExactTerms,
    mint: &MintInfo,
    blockhash: Hash,
) -> VersionedTransaction {
    let owner = payer.pubkey();
    let source =
        get_associated_token_address_with_program_id(&owner, &terms.mint, &mint.token_program);
    let destination = get_associated_token_address_with_program_id(
        &terms.pay_to,
        &terms.mint,
        &mint.token_program,
    );
    let transfer = spl_token_2022::instruction::transfer_checked(
        &mint.token_program,
        &source,
        &terms.mint,
        &destination,
        &owner,
        &[],
        terms.amount,
        mint.decimals,
    )
    .expect("SPL Token or Token-2022: read_mint checked the owner");
    let memo = memo_or_nonce(terms.memo.as_deref());
    let [limit, price] = budget_prefix(COMPUTE_UNIT_LIMIT);
    let instructions = [
        limit,
        price,
        transfer,
        Instruction::new_with_bytes(MEMO_PROGRAM, memo.as_bytes(), vec![]),
    ];
    signed_by_buyer(payer, &terms.fee_payer, &instructions, blockhash)
}

/// `instructions` as a v0 transaction paid by `fee_payer`, signed by `payer` alone: the
/// fee payer's slot is left for it to sign.
pub(crate) fn signed_by_buyer(
    payer: &Keypair,
    fee_payer: &Pubkey,
    instructions: &[Instruction],
    blockhash: Hash,
) -> VersionedTransaction {
    let message = v0::Message::try_compile(fee_payer, instructions, &[], blockhash)
        .expect("no lookup tables, few accounts");
    let message = VersionedMessage::V0(message);
    let mut signatures = vec![Signature::default(); 2];
    signatures[1] = payer.sign_message(&message.serialize());
    VersionedTransaction {
        signatures,
        message,
    }
}

/// The seller's memo, or a random one (16 bytes, hex) that keeps identical payments
/// distinct.
pub(crate) fn memo_or_nonce(memo: Option<&str>) -> String {
    memo.map(str::to_owned).unwrap_or_else(|| {
        let mut nonce = [0u8; 16];
        getrandom::getrandom(&mut nonce).expect("the OS provides randomness");
        nonce.iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// The compute budget our clients ask for: `limit` units at our price.
pub(crate) fn budget_prefix(limit: u32) -> [Instruction; 2] {
    [
        budget(ComputeBudgetInstruction::SetComputeUnitLimit(limit)),
        budget(ComputeBudgetInstruction::SetComputeUnitPrice(
            COMPUTE_UNIT_PRICE,
        )),
    ]
}

/// A compute-budget instruction.
pub(crate) fn budget(instruction: ComputeBudgetInstruction) -> Instruction {
    Instruction::new_with_borsh(solana_compute_budget_interface::ID, &instruction, vec![])
}
