//! The payer side of x402 on Solana: a reqwest client that answers 402 challenges by
//! paying (in our `receipt` scheme, sponsored by the server when it offers, through a
//! ledger otherwise; or in the ecosystem's `exact` scheme, from any x402 server) and retries, under a spending policy checked before anything is signed;
//! and the `x402` command (whose receipt functions are `x402_protocol::receipt`'s).

pub mod client;
pub mod offer;
pub mod policy;

pub use client::{
    Challenge, ClientError, Paid, Payment, Settlement, X402Client, X402ClientBuilder,
    X_PAYMENT_PROOF,
};
pub use offer::{Offer, Terms};
pub use policy::{
    same_network, Limit, PolicyRefusal, PolicyRule, SpendingPolicy, DEFAULT_MAX_PER_REQUEST,
};
