//! The verifier end to end: real HTTP over sockets, the embedded ledger, a real upstream
//! HTTP server, and a SQLite grant store in a file.

pub mod support;

mod batch;
mod batch_server;
mod copies;
mod exact;
mod facilitator;
mod facilitator_batch;
mod facilitator_upto;
mod layer;
mod operations;
mod postgres;
mod proxy;
mod refusals;
mod settlement;
mod upto;
