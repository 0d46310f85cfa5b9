//! x402 verifier for Solana: answers 402 challenges, settles sponsored payments or checks
//! self-submitted ones in our `receipt` scheme and settles the ecosystem's `exact`, and
//! grants a request only once it has read what landed: the receipt account with the right
//! payee, mint, expiry and amount, or the `exact` transfer to the payee.
//!
//! Two ways to use it: in front of an API as a reverse proxy ([`app`] with proxy routes,
//! the `x402-verifier` binary), or inside an axum app as a tower layer
//! ([`Gate::price`]).
//!
//! Modules, from the bottom up: each imports only those listed before it.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`store`], [`paywall`] | the grant store; the paywall page and script |
//! | [`model`] | schemes by name, prices, targets, windows, settled payments, the merchant's check |
//! | [`error`], [`paths`] | every reason code ([`Reason`]) and the one refusal type ([`Refusal`]); the path filter |
//! | [`metrics`], [`sponsorship`] | the counters; the guards on the fee payer's money |
//! | [`context`] | what schemes see: settings, the ledger with its deadlines, the store, the guards |
//! | [`scheme`] | one module per scheme ([`scheme::receipt`], [`scheme::exact`]) and one leased submission |
//! | [`payment`] | reading a payment from request headers |
//! | [`gate`], [`render`] | the decision; the 402 challenge (v1 body, v2 header, page) and settlement header |
//! | [`tasks`] | background tasks: blockhash, rent gauge, janitor |
//! | [`layer`], [`proxy`], [`receipts`], [`facilitator`], [`app`] | the tower layer, the reverse proxy, the endpoints, the router |
//! | [`config`], [`ledger`], [`server`] | configuration, the ledgers, start-up |

pub mod app;
pub mod config;
pub mod context;
pub mod error;
pub mod facilitator;
pub mod gate;
pub mod layer;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod paths;
pub mod payment;
pub mod paywall;
pub mod proxy;
pub mod receipts;
pub mod render;
pub mod scheme;
pub mod server;
pub mod sponsorship;
pub mod store;
pub mod tasks;
#[cfg(test)]
mod testing;

pub use app::{app, PaidRoute, RequestLimits, RouteService};
pub use context::{BatchSettings, Context, PaymentSettings};
pub use error::{Reason, Refusal};
pub use gate::Gate;
pub use layer::PaymentLayer;
pub use model::{
    Charge, MeteredChannel, PaymentAttempt, PaymentCheck, Price, Scheme, SettledPayment,
};
pub use store::{Grant, GrantStore, Standing};

pub use x402_protocol::unix_now;
