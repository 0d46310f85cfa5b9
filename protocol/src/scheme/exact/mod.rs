//! The ecosystem's `exact` scheme on Solana (x402's `scheme_exact_svm.md`): the buyer
//! signs a versioned transaction of a compute budget, one `TransferChecked` to the
//! payee's associated token account, and a Memo; the seller's fee payer co-signs and
//! submits it. Both sides use this module: the client builds the transaction
//! ([`build_exact`]), the verifier checks it before its fee payer signs
//! ([`validate_exact`]).
//!
//! | module | holds |
//! |---|---|
//! | [`types`] | the terms, the offer, its `extra`, the payload, and their wire conversion |
//! | [`build`] | the transaction a buyer signs |
//! | [`validate`] | one check per rule, run before the fee payer co-signs |

pub mod build;
pub mod types;
pub mod validate;

use anchor_lang::prelude::Pubkey;
use anchor_lang::pubkey;

pub use build::build_exact;
pub use types::{ExactExtra, ExactOffer, ExactPayload, ExactScheme, ExactTerms, EXACT};
pub use validate::{validate_exact, ExactTransfer};

/// The SPL Memo program: the one Memo carries the seller's `extra.memo`.
pub const MEMO_PROGRAM: Pubkey = pubkey!("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr");

/// Lighthouse: wallets (Phantom, Solflare) add its assertions to protect their users, and
/// the specification requires that they be allowed.
pub const LIGHTHOUSE_PROGRAM: Pubkey = pubkey!("L2TExMFKdjpN9kozasaurPirfHy9P8sbXoAN1qA3S95");

/// The longest `extra.memo`, in bytes.
pub const MAX_MEMO_BYTES: usize = 256;

/// The compute-unit limit our client asks for: a transfer and a memo fit well inside.
pub const COMPUTE_UNIT_LIMIT: u32 = 20_000;

/// The compute-unit price our client offers, in micro-lamports: the seller pays it.
pub const COMPUTE_UNIT_PRICE: u64 = 1;
