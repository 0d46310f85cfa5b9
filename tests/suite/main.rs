//! One test binary, for a fast link: the receipts program on a native bank, the verifier
//! end to end over real sockets, the client, the validator and stock x402 software, and
//! the paywall in a real browser.

mod browser;
mod client;
mod program;
mod rpc;
mod verifier;
