//! Ledgers the verifier reads receipts from and submits sponsored payments to. The trait
//! is `x402_protocol::Ledger`, shared with the client.

pub mod local;

pub use local::{LocalLedger, LocalMarket};
