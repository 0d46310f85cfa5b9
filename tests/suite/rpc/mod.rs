//! Over real JSON-RPC: a solana-test-validator running the receipts program built for
//! SBF, paid with `pay` transactions, read by the verifier's RPC ledger and by `x402`.

mod batch;
mod chain;
mod channels;
mod interop;
mod paykit;
mod paywall;
mod vendored;
