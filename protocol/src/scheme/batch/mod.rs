//! The ecosystem's `batch-settlement` scheme on Solana (x402's
//! `scheme_batch_settlement_svm.md`): the chain out of the request path. The buyer
//! deposits once into a channel of the payment-channels program (`open`, co-signed by
//! the seller's fee payer, which pays its rent), then pays each request with a
//! cumulative voucher it signs itself; the seller checks a voucher with no ledger call,
//! commits it and serves, and later claims the latest vouchers of many channels on chain
//! in a few transactions (`settle`, `distribute`). At close the seller settles what it
//! accepted and the rest goes back to the buyer.
//!
//! Both modes are spoken: the client mode (the buyer signs every voucher), and the server
//! mode, in which the buyer signs an expiring proof for each request and the seller's
//! operator signs the cumulative voucher for what the answer cost. The operator can then
//! take up to the whole deposit: a buyer enters it only for an operator it trusts.
//!
//! | module | holds |
//! |---|---|
//! | [`types`] | the terms, the offer, its `extra`, the channel configuration, the voucher, the payload's variants |
//! | [`voucher`] | signing a voucher, and checking one |
//! | [`authorization`] | the server mode's proof for one request: signing it, and checking it |
//! | [`build`] | the buyer's deposit (`open` or `top_up`), vouchers and refund |
//! | [`validate`] | the configuration, the voucher and the deposit transaction, each against the offer |
//! | [`close`] | what a seller asks its facilitator to settle (claims, payouts, seals) and its close authorization |

pub mod authorization;
pub mod build;
pub mod close;
pub mod types;
pub mod validate;
pub mod voucher;

pub use authorization::{sign_authorization, BatchAuthorization, ReadAuthorization};
pub use build::{
    build_authorization, build_open, build_open_proved, build_refund, build_refund_closing,
    build_refund_proved, build_top_up, build_top_up_proved, build_voucher, channel_of, Proof,
};
pub use close::{
    ChannelEntry, ClaimEntry, CloseAuthorization, CloseIntent, Seal, SellerPayload,
    MAX_CHANNELS_PER_SETTLEMENT,
};
pub use types::{
    binding_memo, BatchExtra, BatchOffer, BatchPayload, BatchScheme, BatchTerms, BatchVoucher,
    Channel, ChannelConfig, ChannelState, Deposit, VoucherState, BATCH_SETTLEMENT, SERVER_SIGNER,
    WITHDRAW_DELAY_RANGE,
};
pub use validate::{
    read_authorization, read_channel, read_voucher, validate_open, validate_request_close,
    validate_top_up, BatchDefect,
};
pub use voucher::{sign_voucher, ReadVoucher};
