//! One test binary, for a fast link: the receipts program on a native bank, and the
//! verifier end to end over real sockets.

mod client;
mod program;
mod rpc;
mod verifier;
