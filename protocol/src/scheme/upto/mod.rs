//! The ecosystem's `upto` scheme on Solana (x402's `scheme_upto_svm.md`): metered
//! payments. The buyer escrows a ceiling in a one-request channel of the payment-channels
//! program (`open`, co-signed by the seller's fee payer, which pays its rent); the seller
//! serves, signs a voucher for what the answer cost with its receiver authorizer, and its
//! fee payer settles it (`settle_and_seal`, `distribute`): the seller is paid that much,
//! the rest goes back to the buyer, and the rent to the fee payer.
//!
//! | module | holds |
//! |---|---|
//! | [`types`] | the terms, the offer, its `extra`, the payload, and their wire conversion |
//! | [`channel`] | the channel's address and the voucher a receiver authorizer signs |
//! | [`build`] | the buyer's `open`; the fee payer's `settle_and_seal` with the seller's voucher, `distribute` and `reclaim`; the buyer's `request_close`, `seal` and `withdraw_payer` |
//! | [`validate`] | one check per rule, run before the fee payer co-signs the `open` |

pub mod build;
pub mod channel;
pub mod types;
pub mod validate;

use anchor_lang::prelude::Pubkey;
use anchor_lang::pubkey;

pub use build::{
    build_upto, distribute_instruction, fee_payer_transaction, open_instruction, opened_channel,
    random_salt, reclaim_instruction, request_close_instruction, seal_instruction,
    settle_and_seal_instructions, token_account, treasury_owner, withdraw_payer_instruction,
    Opening, Voucher, Window, DEVNET_TREASURY_OWNER, OPEN_COMPUTE_UNIT_LIMIT, TREASURY_OWNER,
};
pub use channel::{
    channel_address, deposited_by, funded_by, voucher_message, ChannelAccount, ChannelSeeds,
    ChannelStatus, CHANNEL_ACCOUNT_BYTES, VOUCHER_MESSAGE_BYTES,
};
pub use types::{UptoExtra, UptoOffer, UptoPayload, UptoScheme, UptoTerms, UPTO};
pub use validate::{read_payload, validate_open, Claimed};

/// The payment-channels program: a network constant, never taken from an offer.
pub const PAYMENT_CHANNELS_PROGRAM: Pubkey =
    pubkey!("CHNLxYvVA28MJP9PrFuDXccuoGXAx7jBacfLEkahyGsX");
