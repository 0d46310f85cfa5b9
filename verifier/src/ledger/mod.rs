//! The ledger the verifier can run on by itself, besides Solana JSON-RPC
//! (`x402_protocol::rpc::RpcLedger`): the embedded local ledger for trying it out (cargo
//! feature `embedded-ledger`). Which one a server uses is its start-up's choice
//! ([`crate::server`]).

#[cfg(feature = "embedded-ledger")]
pub mod bank;
#[cfg(feature = "embedded-ledger")]
pub mod local;
