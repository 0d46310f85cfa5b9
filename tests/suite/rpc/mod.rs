//! Over real JSON-RPC: a solana-test-validator whose genesis holds receipts the program
//! produced (run natively, its accounts' bytes then placed in the validator), read by
//! the verifier's RPC ledger and by `x402`.

mod chain;
mod node;
