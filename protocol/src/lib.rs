//! Off-chain types shared by the verifier and the client: the x402 wire format, the
//! payment schemes (offers, payloads, the transactions a buyer signs and the checks a fee
//! payer runs before co-signing), and the ledger both read.
//!
//! | module | holds |
//! |---|---|
//! | [`wire`] | x402 v1 and v2, the three messages, the facilitator API |
//! | [`scheme`] | the [`Scheme`] trait, the shared transaction encoding, and one module per scheme: [`scheme::receipt`], [`scheme::exact`], [`scheme::upto`] (wire types and channel so far); [`scheme::sponsor`], what a fee payer co-signs |
//! | [`reference`](mod@reference) | references, challenge keys and the terms they are derived from |
//! | [`proof`] | the payer's proof that it presents a reference for a request |
//! | [`janitor`] | receipts on a ledger: found, listed, the expired ones closed |
//! | [`ledger`] | the ledger trait; `rpc` (feature `rpc`) its Solana JSON-RPC implementation |
//! | [`mint`], [`amount`], [`network`], [`keypair`] | mints, token amounts, networks, keypair files |

pub mod amount;
pub mod janitor;
pub mod keypair;
pub mod ledger;
pub mod mint;
pub mod network;
pub mod proof;
pub mod reference;
#[cfg(feature = "rpc")]
pub mod rpc;
pub mod scheme;
pub mod wire;

pub use anchor_lang::prelude::Pubkey;

/// Unix seconds now: the clock challenges expire by.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
pub use ledger::{AccountFilter, ChainClock, Landed, Ledger, LedgerAccount, LedgerError};
pub use mint::{read_mint, MintInfo};
pub use network::{Cluster, Network};
pub use proof::{check_proof, sign_proof, ProofTarget};
pub use reference::{ChallengeKey, Reference, ReferenceError, Terms};
pub use scheme::batch::{BatchOffer, BatchScheme, BatchTerms, BATCH_SETTLEMENT};
pub use scheme::exact::{ExactOffer, ExactScheme, ExactTerms, EXACT};
pub use scheme::receipt::{
    check_receipt, receipt_address, validate_sponsored, Receipt, ReceiptDefect, ReceiptExtra,
    ReceiptOffer, ReceiptPayload, ReceiptScheme, Requirement, SCHEME,
};
pub use scheme::sponsor::{SponsorPolicy, SponsoredDefect};
pub use scheme::upto::{UptoOffer, UptoScheme, UptoTerms, UPTO};
pub use scheme::Scheme;
