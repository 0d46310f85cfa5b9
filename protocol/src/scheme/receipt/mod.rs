//! The `receipt` scheme: the buyer calls the x402-receipts program's `pay`, which moves
//! the tokens and creates a receipt account for the challenge's reference; the seller
//! reads that account. Sponsored, the seller's fee payer co-signs and submits the `pay`
//! transaction; otherwise the buyer submits it and presents the reference.
//!
//! | module | holds |
//! |---|---|
//! | [`types`] | the offer, its `extra`, the payload, and their wire conversion |
//! | [`build`] | the [`Requirement`] and the `pay` transaction a buyer signs |
//! | [`validate`] | the checks on a sponsored `pay` before the fee payer co-signs |
//! | [`account`] | the receipt account: decoding, checks, filters |

pub mod account;
pub mod build;
pub mod types;
pub mod validate;

pub use account::{
    check_receipt, decode_receipt, funded_by, offsets, paid_to, Receipt, ReceiptDefect,
};
pub use build::{paid_reference, receipt_address, Requirement};
pub use types::{ReceiptExtra, ReceiptOffer, ReceiptPayload, ReceiptScheme, SCHEME};
pub use validate::validate_sponsored;
