//! The payer side against a real verifier over sockets: the library, the receipt
//! functions on the embedded ledger, and the `x402` binary.

pub mod cli;
mod js;
mod library;
mod receipts;
pub mod seller;
