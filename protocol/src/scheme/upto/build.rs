//! What the `upto` scheme sends to the payment-channels program: the buyer's `open` (and
//! the payment that carries it, [`build_upto`]), the fee payer's `settle_and_seal`
//! with the seller's voucher, `distribute` and `reclaim`, and the buyer's way out when
//! the seller never settles: `request_close`, then `seal` and `withdraw_payer` once the
//! grace period has passed.
//!
//! `open` escrows the ceiling in a one-request channel
//! whose payout goes wholly to the seller (`[{ payTo, 10000 bps }]`), with the seller's
//! fee payer as rent payer and zero-share payee and its receiver authorizer as the
//! channel's signer. Its layout is the payment-channels program's: discriminator `1`,
//! `salt u64 | deposit u64 | grace_period u32 | open_slot u64 | count u32 |
//! count × (recipient, bps u16)`, all little-endian, over 14 accounts.

use anchor_lang::prelude::Pubkey;
use anchor_lang::pubkey;
use anchor_lang::solana_program::instruction::{AccountMeta, Instruction};
use anchor_lang::solana_program::system_program;
use anchor_spl::associated_token::{self, get_associated_token_address_with_program_id};
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_message::compiled_instruction::CompiledInstruction;
use solana_message::{v0, VersionedMessage};
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;

use super::channel::{channel_address, voucher_message, ChannelSeeds};
use super::types::{UptoPayload, UptoTerms};
use super::PAYMENT_CHANNELS_PROGRAM;
use crate::network::Cluster;
use crate::scheme::encode_transaction;
use crate::scheme::exact::build::{budget, memo_or_nonce, signed_by_buyer};
use crate::scheme::exact::{COMPUTE_UNIT_PRICE, MEMO_PROGRAM};

/// The rent sysvar, which `open` names.
const RENT_SYSVAR: Pubkey = pubkey!("SysvarRent111111111111111111111111111111111");

/// `open`'s instruction discriminator.
const OPEN: u8 = 1;

/// `settle_and_seal`'s instruction discriminator.
const SETTLE_AND_SEAL: u8 = 4;

/// `request_close`'s instruction discriminator.
const REQUEST_CLOSE: u8 = 5;

/// `seal`'s instruction discriminator.
const SEAL: u8 = 6;

/// `distribute`'s instruction discriminator.
const DISTRIBUTE: u8 = 7;

/// `withdraw_payer`'s instruction discriminator.
const WITHDRAW_PAYER: u8 = 8;

/// `reclaim`'s instruction discriminator.
const RECLAIM: u8 = 9;

/// The owner of the treasury token accounts that take rounding residuals, on mainnet (a
/// program constant of its `mainnet-beta` build); its associated token account for the
/// mint must exist.
pub const TREASURY_OWNER: Pubkey = pubkey!("Cs2zdfUNonRdRGsiZUQQLdTxzxVvJZmgiX2mpLYKuEqP");

/// The treasury owner of the program's devnet deployment, as the x402 reference
/// implementation (@x402/svm) has it.
pub const DEVNET_TREASURY_OWNER: Pubkey = pubkey!("4zTeC5mVqWLruDexgU2mV66p9t5vCA9JyiZqdGDUspap");

/// The treasury owner of the program on `cluster`: devnet's deployment has its own; a
/// local ledger runs the mainnet build, as every test world here does.
pub fn treasury_owner(cluster: Cluster) -> Pubkey {
    match cluster {
        Cluster::Devnet => DEVNET_TREASURY_OWNER,
        Cluster::Mainnet | Cluster::Localnet => TREASURY_OWNER,
    }
}

/// The instructions sysvar, where `settle_and_seal` finds the voucher's precompile.
const INSTRUCTIONS_SYSVAR: Pubkey = pubkey!("Sysvar1nstructions1111111111111111111111111");

/// The compute-unit limit our client asks for: `open` creates two accounts and moves the
/// deposit.
pub const OPEN_COMPUTE_UNIT_LIMIT: u32 = 100_000;

/// The whole of a settlement, in basis points: the seller's single payout.
pub const ALL_BPS: u16 = 10_000;

/// The program's event authority, which it invokes itself to log events.
pub fn event_authority() -> Pubkey {
    Pubkey::find_program_address(&[b"event_authority"], &PAYMENT_CHANNELS_PROGRAM).0
}

/// The channel a buyer opens: who pays, its salt and the slot it opens at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opening {
    pub payer: Pubkey,
    /// The payload's `nonce`.
    pub salt: u64,
    pub open_slot: u64,
}

impl Opening {
    /// The seeds of the channel this opening creates under `terms`.
    pub fn seeds(&self, terms: &UptoTerms) -> ChannelSeeds {
        ChannelSeeds {
            payer: self.payer,
            payee: terms.fee_payer,
            mint: terms.mint,
            authorized_signer: terms.receiver_authorizer,
            salt: self.salt,
            open_slot: self.open_slot,
        }
    }
}

/// The `open` of `opening` under `terms`, and the channel it creates.
pub fn open_instruction(terms: &UptoTerms, opening: &Opening) -> (Instruction, Pubkey) {
    let channel = channel_address(&opening.seeds(terms));
    let ata = |owner: &Pubkey| token_account(terms, owner);
    let mut data = Vec::with_capacity(1 + 28 + 4 + 34);
    data.push(OPEN);
    data.extend_from_slice(&opening.salt.to_le_bytes());
    data.extend_from_slice(&terms.max_amount.to_le_bytes());
    data.extend_from_slice(&terms.withdraw_delay.to_le_bytes());
    data.extend_from_slice(&opening.open_slot.to_le_bytes());
    data.extend_from_slice(&distribution(terms));
    let accounts = vec![
        AccountMeta::new(opening.payer, true),
        AccountMeta::new(terms.fee_payer, true),
        AccountMeta::new_readonly(terms.fee_payer, false),
        AccountMeta::new_readonly(terms.mint, false),
        AccountMeta::new_readonly(terms.receiver_authorizer, false),
        AccountMeta::new(channel, false),
        AccountMeta::new(ata(&opening.payer), false),
        AccountMeta::new(ata(&channel), false),
        AccountMeta::new_readonly(terms.token_program, false),
        AccountMeta::new_readonly(system_program::ID, false),
        AccountMeta::new_readonly(RENT_SYSVAR, false),
        AccountMeta::new_readonly(associated_token::ID, false),
        AccountMeta::new_readonly(event_authority(), false),
        AccountMeta::new_readonly(PAYMENT_CHANNELS_PROGRAM, false),
    ];
    let instruction = Instruction {
        program_id: PAYMENT_CHANNELS_PROGRAM,
        accounts,
        data,
    };
    (instruction, channel)
}

/// The channel's one payout, as `open` commits it and `distribute` reveals it:
/// `count u32 | (recipient, bps u16)`, all of it to `payTo`.
fn distribution(terms: &UptoTerms) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + 34);
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(terms.pay_to.as_ref());
    bytes.extend_from_slice(&ALL_BPS.to_le_bytes());
    bytes
}

/// The channel an instruction of a message with `keys` opens, if it is an `open`.
pub fn opened_channel(instruction: &CompiledInstruction, keys: &[Pubkey]) -> Option<Pubkey> {
    let key = |index: u8| keys.get(usize::from(index)).copied();
    if key(instruction.program_id_index)? != PAYMENT_CHANNELS_PROGRAM
        || instruction.data.first() != Some(&OPEN)
    {
        return None;
    }
    key(*instruction.accounts.get(5)?)
}

/// `owner`'s associated token account of the terms' mint: where a channel's deposit
/// comes from and its payouts go.
pub fn token_account(terms: &UptoTerms, owner: &Pubkey) -> Pubkey {
    get_associated_token_address_with_program_id(owner, &terms.mint, &terms.token_program)
}

/// A transaction of the fee payer's own (settlements, reclaims), signed by it alone.
pub fn fee_payer_transaction(
    fee_payer: &Keypair,
    instructions: &[Instruction],
    blockhash: Hash,
) -> VersionedTransaction {
    let message = v0::Message::try_compile(&fee_payer.pubkey(), instructions, &[], blockhash)
        .expect("no lookup tables, few accounts");
    let message = VersionedMessage::V0(message);
    let signature = fee_payer.sign_message(&message.serialize());
    VersionedTransaction {
        signatures: vec![signature],
        message,
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
    let (open, channel) = open_instruction(terms, opening);
    let memo = memo_or_nonce(terms.memo.as_deref());
    let instructions = [
        budget(ComputeBudgetInstruction::SetComputeUnitLimit(
            OPEN_COMPUTE_UNIT_LIMIT,
        )),
        budget(ComputeBudgetInstruction::SetComputeUnitPrice(
            COMPUTE_UNIT_PRICE,
        )),
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

/// The fee payer's `distribute` of a sealed `channel` that `payer` opened under `terms`:
/// the settled amount to `payTo`'s token account, the rest back to the buyer's, the
/// escrow closed and the rent back to the fee payer (the channel's rent payer).
pub fn distribute_instruction(
    terms: &UptoTerms,
    channel: &Pubkey,
    payer: &Pubkey,
    treasury_owner: &Pubkey,
) -> Instruction {
    let ata = |owner: &Pubkey| token_account(terms, owner);
    let mut data = vec![DISTRIBUTE];
    data.extend_from_slice(&distribution(terms));
    Instruction {
        program_id: PAYMENT_CHANNELS_PROGRAM,
        accounts: vec![
            AccountMeta::new(*channel, false),
            AccountMeta::new(*payer, false),
            AccountMeta::new(terms.fee_payer, true),
            AccountMeta::new(ata(channel), false),
            AccountMeta::new(ata(payer), false),
            AccountMeta::new(ata(&terms.fee_payer), false),
            AccountMeta::new(ata(treasury_owner), false),
            AccountMeta::new_readonly(terms.mint, false),
            AccountMeta::new_readonly(terms.token_program, false),
            AccountMeta::new_readonly(event_authority(), false),
            AccountMeta::new_readonly(PAYMENT_CHANNELS_PROGRAM, false),
            AccountMeta::new(ata(&terms.pay_to), false),
        ],
        data,
    }
}

/// `reclaim` of a distributed `channel` once its slot window has passed (anyone may send
/// it): the channel's rent back to its rent payer, the fee payer.
pub fn reclaim_instruction(channel: &Pubkey, rent_payer: &Pubkey) -> Instruction {
    Instruction {
        program_id: PAYMENT_CHANNELS_PROGRAM,
        accounts: vec![
            AccountMeta::new(*channel, false),
            AccountMeta::new(*rent_payer, false),
        ],
        data: vec![RECLAIM],
    }
}

/// The buyer's `request_close` of its open `channel`: the grace period starts, during
/// which the seller's fee payer may still settle it.
pub fn request_close_instruction(channel: &Pubkey, payer: &Pubkey) -> Instruction {
    Instruction {
        program_id: PAYMENT_CHANNELS_PROGRAM,
        accounts: vec![
            AccountMeta::new_readonly(*payer, true),
            AccountMeta::new(*channel, false),
        ],
        data: vec![REQUEST_CLOSE],
    }
}

/// `seal` of a closing `channel` once its grace period has passed (anyone may send it):
/// what was settled is locked, and the buyer may withdraw the rest.
pub fn seal_instruction(channel: &Pubkey) -> Instruction {
    Instruction {
        program_id: PAYMENT_CHANNELS_PROGRAM,
        accounts: vec![AccountMeta::new(*channel, false)],
        data: vec![SEAL],
    }
}

/// The buyer's `withdraw_payer` of a sealed `channel` in `mint` (of `token_program`):
/// the deposit less what was settled, back to the buyer's token account.
pub fn withdraw_payer_instruction(
    channel: &Pubkey,
    payer: &Pubkey,
    mint: &Pubkey,
    token_program: &Pubkey,
) -> Instruction {
    let ata =
        |owner: &Pubkey| get_associated_token_address_with_program_id(owner, mint, token_program);
    Instruction {
        program_id: PAYMENT_CHANNELS_PROGRAM,
        accounts: vec![
            AccountMeta::new_readonly(*payer, true),
            AccountMeta::new(*channel, false),
            AccountMeta::new(ata(channel), false),
            AccountMeta::new(ata(payer), false),
            AccountMeta::new_readonly(*mint, false),
            AccountMeta::new_readonly(*token_program, false),
        ],
        data: vec![WITHDRAW_PAYER],
    }
}

/// A fresh random channel salt (the payload's `nonce`).
pub fn random_salt() -> u64 {
    let mut salt = [0u8; 8];
    getrandom::getrandom(&mut salt).expect("the OS provides randomness");
    u64::from_le_bytes(salt)
}

/// A voucher: `channel` settled at `cumulative_amount` until `expires_at`, signed by the
/// receiver authorizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Voucher {
    pub channel: Pubkey,
    pub cumulative_amount: u64,
    pub expires_at: i64,
    pub signer: Pubkey,
    pub signature: [u8; 64],
}

/// The fee payer's cooperative close of `channel`, as its payee: with a voucher for a
/// nonzero amount, the Ed25519 precompile that carries it and then `settle_and_seal`
/// applying it; without one (a zero charge, or an abandoned channel), `settle_and_seal`
/// alone, locking what was settled.
pub fn settle_and_seal_instructions(
    payee: &Pubkey,
    channel: &Pubkey,
    voucher: Option<&Voucher>,
) -> Vec<Instruction> {
    let settle = |has_voucher: u8| Instruction {
        program_id: PAYMENT_CHANNELS_PROGRAM,
        accounts: vec![
            AccountMeta::new(*payee, true),
            AccountMeta::new(*channel, false),
            AccountMeta::new_readonly(INSTRUCTIONS_SYSVAR, false),
        ],
        data: vec![SETTLE_AND_SEAL, has_voucher],
    };
    match voucher.filter(|v| v.cumulative_amount > 0) {
        Some(v) => {
            let message = voucher_message(&v.channel, v.cumulative_amount, v.expires_at);
            let precompile = solana_ed25519_program::new_ed25519_instruction_with_signature(
                &message,
                &v.signature,
                &v.signer.to_bytes(),
            );
            vec![precompile, settle(1)]
        }
        None => vec![settle(0)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms() -> UptoTerms {
        UptoTerms {
            mint: Pubkey::new_unique(),
            token_program: anchor_spl::token::ID,
            pay_to: Pubkey::new_unique(),
            max_amount: 10_000,
            fee_payer: Pubkey::new_unique(),
            receiver_authorizer: Pubkey::new_unique(),
            withdraw_delay: 3_600,
            memo: None,
        }
    }

    #[test]
    fn distribute_pays_rounding_residuals_to_the_treasury_of_the_deployment_it_runs_on() {
        let terms = terms();
        let (channel, payer) = (Pubkey::new_unique(), Pubkey::new_unique());
        let treasury_of = |cluster| {
            let owner = treasury_owner(cluster);
            distribute_instruction(&terms, &channel, &payer, &owner).accounts[6].pubkey
        };
        assert_eq!(
            treasury_of(Cluster::Mainnet),
            token_account(&terms, &TREASURY_OWNER)
        );
        assert_eq!(
            treasury_of(Cluster::Devnet),
            token_account(&terms, &DEVNET_TREASURY_OWNER),
            "devnet's deployment has its own treasury owner"
        );
        assert_eq!(
            treasury_of(Cluster::Localnet),
            treasury_of(Cluster::Mainnet),
            "test worlds load the mainnet build"
        );
    }

    #[test]
    fn open_binds_the_deposit_grace_slot_and_the_single_full_payout() {
        let terms = terms();
        let opening = Opening {
            payer: Pubkey::new_unique(),
            salt: 0x0102_0304,
            open_slot: 341_000_000,
        };
        let (open, channel) = open_instruction(&terms, &opening);
        assert_eq!(open.program_id, PAYMENT_CHANNELS_PROGRAM);
        let data = &open.data;
        assert_eq!(data.len(), 1 + 8 + 8 + 4 + 8 + 4 + 34, "no trailing bytes");
        assert_eq!(data[0], 1);
        assert_eq!(&data[1..9], &0x0102_0304u64.to_le_bytes());
        assert_eq!(
            &data[9..17],
            &10_000u64.to_le_bytes(),
            "deposit = maxAmount"
        );
        assert_eq!(
            &data[17..21],
            &3_600u32.to_le_bytes(),
            "grace = withdrawDelay"
        );
        assert_eq!(&data[21..29], &341_000_000u64.to_le_bytes());
        assert_eq!(&data[29..33], &1u32.to_le_bytes(), "one recipient");
        assert_eq!(&data[33..65], terms.pay_to.as_ref());
        assert_eq!(&data[65..], &10_000u16.to_le_bytes(), "all of it");
        assert_eq!(channel, channel_address(&opening.seeds(&terms)));
    }

    #[test]
    fn open_names_its_fourteen_accounts_in_order_with_their_privileges() {
        let terms = terms();
        let opening = Opening {
            payer: Pubkey::new_unique(),
            salt: 1,
            open_slot: 2,
        };
        let (open, channel) = open_instruction(&terms, &opening);
        let roles: Vec<(Pubkey, bool, bool)> = open
            .accounts
            .iter()
            .map(|a| (a.pubkey, a.is_signer, a.is_writable))
            .collect();
        let ata = |owner: &Pubkey| {
            get_associated_token_address_with_program_id(owner, &terms.mint, &terms.token_program)
        };
        assert_eq!(
            roles,
            vec![
                (opening.payer, true, true),
                (terms.fee_payer, true, true),
                (terms.fee_payer, false, false),
                (terms.mint, false, false),
                (terms.receiver_authorizer, false, false),
                (channel, false, true),
                (ata(&opening.payer), false, true),
                (ata(&channel), false, true),
                (terms.token_program, false, false),
                (system_program::ID, false, false),
                (RENT_SYSVAR, false, false),
                (associated_token::ID, false, false),
                (event_authority(), false, false),
                (PAYMENT_CHANNELS_PROGRAM, false, false),
            ]
        );
    }

    #[test]
    fn the_buyers_way_out_names_its_accounts_in_the_programs_order() {
        let (channel, payer, mint) = (
            Pubkey::new_unique(),
            Pubkey::new_unique(),
            Pubkey::new_unique(),
        );
        let roles = |ix: &Instruction| -> Vec<(Pubkey, bool, bool)> {
            assert_eq!(ix.program_id, PAYMENT_CHANNELS_PROGRAM);
            ix.accounts
                .iter()
                .map(|a| (a.pubkey, a.is_signer, a.is_writable))
                .collect()
        };
        let close = request_close_instruction(&channel, &payer);
        assert_eq!(close.data, vec![5]);
        assert_eq!(
            roles(&close),
            vec![(payer, true, false), (channel, false, true)]
        );
        let seal = seal_instruction(&channel);
        assert_eq!(seal.data, vec![6]);
        assert_eq!(roles(&seal), vec![(channel, false, true)]);
        let token_program = anchor_spl::token_2022::ID;
        let withdraw = withdraw_payer_instruction(&channel, &payer, &mint, &token_program);
        assert_eq!(withdraw.data, vec![8]);
        let ata = |owner: &Pubkey| {
            get_associated_token_address_with_program_id(owner, &mint, &token_program)
        };
        assert_eq!(
            roles(&withdraw),
            vec![
                (payer, true, false),
                (channel, false, true),
                (ata(&channel), false, true),
                (ata(&payer), false, true),
                (mint, false, false),
                (token_program, false, false),
            ]
        );
    }

    #[test]
    fn a_zero_charge_seals_without_applying_a_voucher() {
        let (payee, channel) = (Pubkey::new_unique(), Pubkey::new_unique());
        let zero = Voucher {
            channel,
            cumulative_amount: 0,
            expires_at: 1,
            signer: Pubkey::new_unique(),
            signature: [1; 64],
        };
        // The program requires settled < cumulative: a zero voucher cannot be applied.
        for voucher in [None, Some(&zero)] {
            let seal = settle_and_seal_instructions(&payee, &channel, voucher);
            assert_eq!(seal.len(), 1);
            assert_eq!(seal[0].data, vec![4, 0]);
        }
        let charged = Voucher {
            cumulative_amount: 5,
            ..zero
        };
        let seal = settle_and_seal_instructions(&payee, &channel, Some(&charged));
        assert_eq!(seal.len(), 2, "the precompile, then settle_and_seal");
        assert_eq!(seal[1].data, vec![4, 1]);
        assert!(seal[0].data.ends_with(&voucher_message(&channel, 5, 1)));
    }
}
