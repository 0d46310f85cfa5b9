//! The payer side of x402 receipts on Solana: a reqwest client that answers 402
//! challenges by paying (sponsored by the server when it offers, through a ledger
//! otherwise) and retries, under a spending policy checked before anything is signed;
//! and the `x402` command (whose receipt functions are `x402_protocol::receipt`'s).

pub mod client;
pub mod policy;

pub use client::{
    Challenge, ClientError, Paid, Payment, Settlement, X402Client, X402ClientBuilder,
};
pub use policy::{Limit, PolicyRefusal, PolicyRule, SpendingPolicy};
