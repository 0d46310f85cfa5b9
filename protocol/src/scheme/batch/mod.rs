//! The ecosystem's `batch-settlement` scheme on Solana (x402's
//! `scheme_batch_settlement_svm.md`): the chain out of the request path. The buyer
//! deposits once into a channel of the payment-channels program (`open`, co-signed by
//! the seller's fee payer, which pays its rent), then pays each request with a
//! cumulative voucher it signs itself; the seller checks a voucher with no ledger call,
//! commits it and serves, and later claims the latest vouchers of many channels on chain
//! in a few transactions (`settle`, `distribute`). At close the seller settles what it
//! accepted and the rest goes back to the buyer.
//!
//! Only the client mode is spoken: the buyer signs every voucher. The server mode (an
//! operator signing vouchers up to the whole deposit) is refused on both sides.
//!
//! | module | holds |
//! |---|---|
//! | [`types`] | the terms, the offer, its `extra`, the channel configuration, the voucher, the payload's variants |
//! | [`voucher`] | signing a voucher, and checking one |
//! | [`build`] | the buyer's deposit (`open` or `top_up`), vouchers and refund |
//! | [`validate`] | the configuration, the voucher and the deposit transaction, each against the offer |
//! | [`close`] | what a seller asks its facilitator to settle (claims, payouts, seals) and its close authorization |

pub mod build;
pub mod close;
pub mod types;
pub mod validate;
pub mod voucher;

pub use build::{build_open, build_refund, build_top_up, build_voucher, channel_of};
pub use close::{
    ChannelEntry, ClaimEntry, CloseAuthorization, CloseIntent, Seal, SellerPayload,
    MAX_CHANNELS_PER_SETTLEMENT,
};
pub use types::{
    binding_memo, BatchExtra, BatchOffer, BatchPayload, BatchScheme, BatchTerms, BatchVoucher,
    Channel, ChannelConfig, ChannelState, Deposit, VoucherState, BATCH_SETTLEMENT,
    WITHDRAW_DELAY_RANGE,
};
pub use validate::{read_channel, read_voucher, validate_open, validate_top_up, BatchDefect};
pub use voucher::{sign_voucher, ReadVoucher};
