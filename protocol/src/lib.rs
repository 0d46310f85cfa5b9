//! Off-chain types shared by the verifier and the client: the x402 wire format and the
//! `receipt` scheme (references, receipt addresses, the `pay` transaction, receipt checks).

pub mod amount;
pub mod exact;
pub mod keypair;
pub mod ledger;
pub mod mint;
pub mod network;
pub mod proof;
pub mod receipt;
pub mod reference;
pub mod requirement;
#[cfg(feature = "rpc")]
pub mod rpc;
pub mod scheme;
pub mod sponsored;
pub mod wire;

pub use anchor_lang::prelude::Pubkey;

/// Unix seconds now: the clock challenges expire by.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
pub use exact::{ExactOffer, ExactTerms, EXACT};
pub use ledger::{AccountFilter, Landed, Ledger, LedgerError};
pub use mint::{read_mint, MintInfo};
pub use network::{Cluster, Network};
pub use proof::{check_proof, sign_proof, ProofTarget};
pub use receipt::{check_receipt, LedgerAccount, Receipt, ReceiptDefect};
pub use reference::{ChallengeKey, Reference, ReferenceError, Terms};
pub use requirement::{receipt_address, Requirement};
pub use scheme::{ReceiptExtra, ReceiptOffer, ReceiptPayload, SCHEME};
pub use sponsored::{validate_sponsored, SponsorPolicy, SponsoredDefect};
