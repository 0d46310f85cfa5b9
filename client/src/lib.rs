//! The payer side of x402 on Solana: a reqwest client that answers 402 challenges by
//! paying (in our `receipt` scheme, sponsored by the server when it offers, through a
//! ledger otherwise; or in the ecosystem's `exact` and `upto` schemes, from any x402
//! server) and retries, under a spending policy checked before anything is signed; and
//! the `x402` command (whose receipt functions are `x402_protocol::receipt`'s).
//!
//! The modules: [`offer`] reads what a 402 offers (each scheme's reading in `scheme/`),
//! [`policy`] says what may be paid, `challenge` reads a 402 answer, `budget` picks the
//! offer to pay and reserves its amount, `scheme` signs it (one module per scheme),
//! `payment` holds the signed payment (and keeps it), `client` sends it and retries,
//! `settlement` reads what it bought, `error` says why not; [`channels`] finds the
//! buyer's `upto` channels and recovers a deposit a seller never settled, on the chain's
//! clock (`clock`).

pub mod book;
mod budget;
mod challenge;
pub mod channels;
pub mod client;
mod error;
pub mod offer;
mod payment;
pub mod policy;
mod proof;
mod scheme;
mod settlement;

pub use book::{ChannelBook, HeldChannel};
pub use challenge::Challenge;
pub use client::{X402Client, X402ClientBuilder, X_PAYMENT_PROOF};
pub use error::ClientError;
pub use offer::{Offer, Terms, Unreadable};
pub use payment::Payment;
pub use policy::{
    same_network, Limit, PolicyRefusal, PolicyRule, SpendingPolicy, TrustedOperator,
    DEFAULT_MAX_DEPOSIT, DEFAULT_MAX_PER_REQUEST, DEFAULT_MAX_WITHDRAW_DELAY,
};
pub use settlement::{Paid, Settlement};
pub use x402_protocol::ChainClock;
