//! The payment-channels program's instructions, as both channel schemes send them.
//!
//! A channel's [`ChannelPlan`] is what its `open` binds: its mint, the single payout of
//! everything settled to `payTo`, the seller's fee payer as rent payer and zero-share
//! payee, who signs its vouchers, its deposit and its grace period. `open`'s layout is
//! the program's: discriminator `1`, `salt u64 | deposit u64 | grace_period u32 |
//! open_slot u64 | count u32 | count × (recipient, bps u16)`, all little-endian, over 14
//! accounts.

use anchor_lang::prelude::Pubkey;
use anchor_lang::pubkey;
use anchor_lang::solana_program::instruction::{AccountMeta, Instruction};
use anchor_lang::solana_program::system_program;
use anchor_spl::associated_token::{self, get_associated_token_address_with_program_id};
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_message::compiled_instruction::CompiledInstruction;
use solana_message::{v0, VersionedMessage};
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;

use super::account::{channel_address, voucher_message, ChannelSeeds};
use super::PAYMENT_CHANNELS_PROGRAM;
use crate::network::Cluster;

/// The rent sysvar, which `open` names.
const RENT_SYSVAR: Pubkey = pubkey!("SysvarRent111111111111111111111111111111111");

/// The instructions sysvar, where `settle` and `settle_and_seal` find the voucher's
/// precompile.
const INSTRUCTIONS_SYSVAR: Pubkey = pubkey!("Sysvar1nstructions1111111111111111111111111");

/// The program's instruction discriminators.
const OPEN: u8 = 1;
const SETTLE: u8 = 2;
const TOP_UP: u8 = 3;
const SETTLE_AND_SEAL: u8 = 4;
const REQUEST_CLOSE: u8 = 5;
const SEAL: u8 = 6;
const DISTRIBUTE: u8 = 7;
const WITHDRAW_PAYER: u8 = 8;
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

/// The compute-unit limit our clients ask for: `open` creates two accounts and moves the
/// deposit (about 33,000 units, and about 1,500 more for each step of its address
/// searches, which vary with the salt), and a `batch-settlement` open's two Memos cost
/// about 43,000 more. At 100,000 one open in a few dozen failed on chain, its fee spent;
/// this leaves room for dozens of search steps, and is within the sponsors' cap.
pub const OPEN_COMPUTE_UNIT_LIMIT: u32 = 200_000;

/// The whole of a settlement, in basis points: the seller's single payout.
const ALL_BPS: u16 = 10_000;

/// The program's event authority, which it invokes itself to log events.
fn event_authority() -> Pubkey {
    Pubkey::find_program_address(&[b"event_authority"], &PAYMENT_CHANNELS_PROGRAM).0
}

/// What a channel's `open` binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelPlan {
    pub mint: Pubkey,
    pub token_program: Pubkey,
    /// Who receives everything settled.
    pub pay_to: Pubkey,
    /// The seller's fee payer: the channel's rent payer and zero-share payee.
    pub fee_payer: Pubkey,
    /// Who signs the channel's vouchers.
    pub authorized_signer: Pubkey,
    /// Base units escrowed at `open`.
    pub deposit: u64,
    /// Seconds the buyer waits after `request_close` before it may withdraw.
    pub grace_period: u32,
}

impl ChannelPlan {
    /// The commitment an `open` of this plan writes into its channel: the SHA-256 of its
    /// payout (all of it to `pay_to`). A channel that holds another pays someone else.
    pub fn distribution_hash(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        Sha256::digest(distribution(self)).into()
    }
}

/// The channel a buyer opens: who pays, its salt and the slot it opens at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opening {
    pub payer: Pubkey,
    pub salt: u64,
    pub open_slot: u64,
}

impl Opening {
    /// The seeds of the channel this opening creates under `plan`.
    pub fn seeds(&self, plan: &ChannelPlan) -> ChannelSeeds {
        ChannelSeeds {
            payer: self.payer,
            payee: plan.fee_payer,
            mint: plan.mint,
            authorized_signer: plan.authorized_signer,
            salt: self.salt,
            open_slot: self.open_slot,
        }
    }
}

/// The `open` of `opening` under `plan`, and the channel it creates.
pub fn open_instruction(plan: &ChannelPlan, opening: &Opening) -> (Instruction, Pubkey) {
    let channel = channel_address(&opening.seeds(plan));
    let ata = |owner: &Pubkey| token_account(plan, owner);
    let mut data = Vec::with_capacity(1 + 28 + 4 + 34);
    data.push(OPEN);
    data.extend_from_slice(&opening.salt.to_le_bytes());
    data.extend_from_slice(&plan.deposit.to_le_bytes());
    data.extend_from_slice(&plan.grace_period.to_le_bytes());
    data.extend_from_slice(&opening.open_slot.to_le_bytes());
    data.extend_from_slice(&distribution(plan));
    let accounts = vec![
        AccountMeta::new(opening.payer, true),
        AccountMeta::new(plan.fee_payer, true),
        AccountMeta::new_readonly(plan.fee_payer, false),
        AccountMeta::new_readonly(plan.mint, false),
        AccountMeta::new_readonly(plan.authorized_signer, false),
        AccountMeta::new(channel, false),
        AccountMeta::new(ata(&opening.payer), false),
        AccountMeta::new(ata(&channel), false),
        AccountMeta::new_readonly(plan.token_program, false),
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
fn distribution(plan: &ChannelPlan) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + 34);
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(plan.pay_to.as_ref());
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

/// The buyer's `top_up` of its open `channel`: `amount` more base units from its token
/// account into the escrow. The fee payer is no account of it.
pub fn top_up_instruction(
    plan: &ChannelPlan,
    channel: &Pubkey,
    payer: &Pubkey,
    amount: u64,
) -> Instruction {
    let ata = |owner: &Pubkey| token_account(plan, owner);
    let mut data = vec![TOP_UP];
    data.extend_from_slice(&amount.to_le_bytes());
    Instruction {
        program_id: PAYMENT_CHANNELS_PROGRAM,
        accounts: vec![
            AccountMeta::new(*payer, true),
            AccountMeta::new(*channel, false),
            AccountMeta::new(ata(payer), false),
            AccountMeta::new(ata(channel), false),
            AccountMeta::new_readonly(plan.mint, false),
            AccountMeta::new_readonly(plan.token_program, false),
        ],
        data,
    }
}

/// `owner`'s associated token account of the plan's mint: where a channel's deposit
/// comes from and its payouts go.
pub fn token_account(plan: &ChannelPlan, owner: &Pubkey) -> Pubkey {
    get_associated_token_address_with_program_id(owner, &plan.mint, &plan.token_program)
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

/// `distribute` of `channel`, which `payer` opened under `plan` (anyone may send it; the
/// fee payer does): what was settled and not yet paid goes to `payTo`'s token account.
/// Of a sealed channel, the rest goes back to the buyer's, the escrow is closed and the
/// rent goes back to the fee payer (the channel's rent payer).
pub fn distribute_instruction(
    plan: &ChannelPlan,
    channel: &Pubkey,
    payer: &Pubkey,
    treasury_owner: &Pubkey,
) -> Instruction {
    let ata = |owner: &Pubkey| token_account(plan, owner);
    let mut data = vec![DISTRIBUTE];
    data.extend_from_slice(&distribution(plan));
    Instruction {
        program_id: PAYMENT_CHANNELS_PROGRAM,
        accounts: vec![
            AccountMeta::new(*channel, false),
            AccountMeta::new(*payer, false),
            AccountMeta::new(plan.fee_payer, true),
            AccountMeta::new(ata(channel), false),
            AccountMeta::new(ata(payer), false),
            AccountMeta::new(ata(&plan.fee_payer), false),
            AccountMeta::new(ata(treasury_owner), false),
            AccountMeta::new_readonly(plan.mint, false),
            AccountMeta::new_readonly(plan.token_program, false),
            AccountMeta::new_readonly(event_authority(), false),
            AccountMeta::new_readonly(PAYMENT_CHANNELS_PROGRAM, false),
            AccountMeta::new(ata(&plan.pay_to), false),
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

/// A fresh random channel salt.
pub fn random_salt() -> u64 {
    let mut salt = [0u8; 8];
    getrandom::getrandom(&mut salt).expect("the OS provides randomness");
    u64::from_le_bytes(salt)
}

/// A voucher: `channel` settled at `cumulative_amount` until `expires_at` (zero: no
/// expiry), signed by the channel's authorized signer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Voucher {
    pub channel: Pubkey,
    pub cumulative_amount: u64,
    pub expires_at: i64,
    pub signer: Pubkey,
    pub signature: [u8; 64],
}

impl Voucher {
    /// The Ed25519 precompile that proves the voucher to the instruction after it.
    fn precompile(&self) -> Instruction {
        let message = voucher_message(&self.channel, self.cumulative_amount, self.expires_at);
        solana_ed25519_program::new_ed25519_instruction_with_signature(
            &message,
            &self.signature,
            &self.signer.to_bytes(),
        )
    }
}

/// The Ed25519 precompile, which proves a voucher to the instruction after it.
const ED25519_PROGRAM: Pubkey = pubkey!("Ed25519SigVerify111111111111111111111111111");

/// The signatures a fee payer's transaction of `instructions` pays for: its own, and one
/// for each voucher its precompiles verify (the network charges those too).
pub fn signatures_paid(instructions: &[Instruction]) -> u64 {
    let precompiles = instructions
        .iter()
        .filter(|ix| ix.program_id == ED25519_PROGRAM)
        .count();
    1 + precompiles as u64
}

/// `settle` of an open channel by `voucher` (anyone may send it): the precompile that
/// carries the voucher, then `settle`, which moves the channel's watermark up to it.
pub fn settle_instructions(voucher: &Voucher) -> [Instruction; 2] {
    let settle = Instruction {
        program_id: PAYMENT_CHANNELS_PROGRAM,
        accounts: vec![
            AccountMeta::new(voucher.channel, false),
            AccountMeta::new_readonly(INSTRUCTIONS_SYSVAR, false),
        ],
        data: vec![SETTLE],
    };
    [voucher.precompile(), settle]
}

/// The fee payer's cooperative close of `channel`, as its payee: with a voucher above
/// what is settled, the Ed25519 precompile that carries it and then `settle_and_seal`
/// applying it; without one (nothing more to charge, or an abandoned channel),
/// `settle_and_seal` alone, locking what was settled.
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
        Some(v) => vec![v.precompile(), settle(1)],
        None => vec![settle(0)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::channel::account::channel_address;

    fn plan() -> ChannelPlan {
        ChannelPlan {
            mint: Pubkey::new_unique(),
            token_program: anchor_spl::token::ID,
            pay_to: Pubkey::new_unique(),
            fee_payer: Pubkey::new_unique(),
            authorized_signer: Pubkey::new_unique(),
            deposit: 10_000,
            grace_period: 3_600,
        }
    }

    #[test]
    fn distribute_pays_rounding_residuals_to_the_treasury_of_the_deployment_it_runs_on() {
        let plan = plan();
        let (channel, payer) = (Pubkey::new_unique(), Pubkey::new_unique());
        let treasury_of = |cluster| {
            let owner = treasury_owner(cluster);
            distribute_instruction(&plan, &channel, &payer, &owner).accounts[6].pubkey
        };
        assert_eq!(
            treasury_of(Cluster::Mainnet),
            token_account(&plan, &TREASURY_OWNER)
        );
        assert_eq!(
            treasury_of(Cluster::Devnet),
            token_account(&plan, &DEVNET_TREASURY_OWNER),
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
        let plan = plan();
        let opening = Opening {
            payer: Pubkey::new_unique(),
            salt: 0x0102_0304,
            open_slot: 341_000_000,
        };
        let (open, channel) = open_instruction(&plan, &opening);
        assert_eq!(open.program_id, PAYMENT_CHANNELS_PROGRAM);
        let data = &open.data;
        assert_eq!(data.len(), 1 + 8 + 8 + 4 + 8 + 4 + 34, "no trailing bytes");
        assert_eq!(data[0], 1);
        assert_eq!(&data[1..9], &0x0102_0304u64.to_le_bytes());
        assert_eq!(&data[9..17], &10_000u64.to_le_bytes(), "the deposit");
        assert_eq!(&data[17..21], &3_600u32.to_le_bytes(), "the grace period");
        assert_eq!(&data[21..29], &341_000_000u64.to_le_bytes());
        assert_eq!(&data[29..33], &1u32.to_le_bytes(), "one recipient");
        assert_eq!(&data[33..65], plan.pay_to.as_ref());
        assert_eq!(&data[65..], &10_000u16.to_le_bytes(), "all of it");
        assert_eq!(channel, channel_address(&opening.seeds(&plan)));
    }

    #[test]
    fn open_names_its_fourteen_accounts_in_order_with_their_privileges() {
        let plan = plan();
        let opening = Opening {
            payer: Pubkey::new_unique(),
            salt: 1,
            open_slot: 2,
        };
        let (open, channel) = open_instruction(&plan, &opening);
        let roles: Vec<(Pubkey, bool, bool)> = open
            .accounts
            .iter()
            .map(|a| (a.pubkey, a.is_signer, a.is_writable))
            .collect();
        let ata = |owner: &Pubkey| {
            get_associated_token_address_with_program_id(owner, &plan.mint, &plan.token_program)
        };
        assert_eq!(
            roles,
            vec![
                (opening.payer, true, true),
                (plan.fee_payer, true, true),
                (plan.fee_payer, false, false),
                (plan.mint, false, false),
                (plan.authorized_signer, false, false),
                (channel, false, true),
                (ata(&opening.payer), false, true),
                (ata(&channel), false, true),
                (plan.token_program, false, false),
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
        assert_eq!(
            signatures_paid(&seal),
            2,
            "the fee payer's, and the voucher's"
        );
        assert_eq!(
            signatures_paid(&settle_and_seal_instructions(&payee, &channel, None)),
            1
        );
    }

    #[test]
    fn top_up_and_settle_name_their_accounts_in_the_programs_order() {
        let plan = plan();
        let (channel, payer) = (Pubkey::new_unique(), Pubkey::new_unique());
        let top_up = top_up_instruction(&plan, &channel, &payer, 0x0102);
        assert_eq!(top_up.data, [&[3u8][..], &0x0102u64.to_le_bytes()].concat());
        let roles: Vec<(Pubkey, bool, bool)> = top_up
            .accounts
            .iter()
            .map(|a| (a.pubkey, a.is_signer, a.is_writable))
            .collect();
        assert_eq!(
            roles,
            vec![
                (payer, true, true),
                (channel, false, true),
                (token_account(&plan, &payer), false, true),
                (token_account(&plan, &channel), false, true),
                (plan.mint, false, false),
                (plan.token_program, false, false),
            ]
        );
        assert!(
            top_up.accounts.iter().all(|a| a.pubkey != plan.fee_payer),
            "the fee payer pays only the fee"
        );
        let voucher = Voucher {
            channel,
            cumulative_amount: 7,
            expires_at: 0,
            signer: Pubkey::new_unique(),
            signature: [3; 64],
        };
        let [precompile, settle] = settle_instructions(&voucher);
        assert!(precompile.data.ends_with(&voucher_message(&channel, 7, 0)));
        assert_eq!(settle.data, vec![2]);
        assert_eq!(settle.accounts[0], AccountMeta::new(channel, false));
        assert_eq!(
            settle.accounts[1],
            AccountMeta::new_readonly(INSTRUCTIONS_SYSVAR, false)
        );
    }
}
