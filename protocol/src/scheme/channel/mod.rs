//! The payment-channels program (`CHNLxYvVA28MJP9PrFuDXccuoGXAx7jBacfLEkahyGsX`), which
//! both channel schemes run on: `upto` (a one-request channel) and `batch-settlement`
//! (a channel kept open across many requests). What they share is here; what each binds
//! and carries on the wire is its own module's.
//!
//! | module | holds |
//! |---|---|
//! | [`account`] | a channel's address, the voucher message, the channel account as the program keeps it, and the filters that find channels |
//! | [`program`] | the program's instructions: `open`, `top_up`, `settle`, `settle_and_seal`, `distribute`, `request_close`, `seal`, `withdraw_payer`, `reclaim` |
//! | [`validate`] | the strict checks a fee payer runs on a buyer's `open` before co-signing it |

pub mod account;
pub mod program;
pub mod validate;

use anchor_lang::prelude::Pubkey;
use anchor_lang::pubkey;

pub use account::{
    channel_address, deposited_by, funded_by, voucher_message, ChannelAccount, ChannelSeeds,
    ChannelStatus, CHANNEL_ACCOUNT_BYTES, VOUCHER_MESSAGE_BYTES,
};
pub use program::{
    distribute_instruction, fee_payer_transaction, open_instruction, opened_channel, random_salt,
    reclaim_instruction, request_close_instruction, seal_instruction, settle_and_seal_instructions,
    settle_instructions, signatures_paid, token_account, top_up_instruction, treasury_owner,
    withdraw_payer_instruction, ChannelPlan, Opening, Voucher, DEVNET_TREASURY_OWNER,
    OPEN_COMPUTE_UNIT_LIMIT, TREASURY_OWNER,
};
pub use validate::{validate_open, Suffix};

/// The payment-channels program: a network constant, never taken from an offer.
pub const PAYMENT_CHANNELS_PROGRAM: Pubkey =
    pubkey!("CHNLxYvVA28MJP9PrFuDXccuoGXAx7jBacfLEkahyGsX");
