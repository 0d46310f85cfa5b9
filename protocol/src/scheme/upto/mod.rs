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
//! | [`build`] | the buyer's `open` ([`build_upto`]); the channel's other instructions are [`crate::scheme::channel`]'s |
//! | [`validate`] | the payload's statements, then the `open`'s strict validation |

pub mod build;
pub mod types;
pub mod validate;

pub use crate::scheme::channel::{
    channel_address, deposited_by, distribute_instruction, fee_payer_transaction, funded_by,
    open_instruction, opened_channel, random_salt, reclaim_instruction, request_close_instruction,
    seal_instruction, settle_and_seal_instructions, token_account, treasury_owner, voucher_message,
    withdraw_payer_instruction, ChannelAccount, ChannelPlan, ChannelSeeds, ChannelStatus, Opening,
    Voucher, CHANNEL_ACCOUNT_BYTES, DEVNET_TREASURY_OWNER, OPEN_COMPUTE_UNIT_LIMIT,
    PAYMENT_CHANNELS_PROGRAM, TREASURY_OWNER, VOUCHER_MESSAGE_BYTES,
};
pub use build::{build_upto, Window};
pub use types::{UptoExtra, UptoOffer, UptoPayload, UptoScheme, UptoTerms, UPTO};
pub use validate::{read_payload, validate_open, Claimed};
