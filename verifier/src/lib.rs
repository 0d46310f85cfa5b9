//! x402 verifier for Solana: answers 402 challenges, settles sponsored payments or checks
//! self-submitted ones in our `receipt` scheme and settles the ecosystem's `exact`, and
//! grants a request only once it has read what landed: the receipt account with the right
//! payee, mint, expiry and amount, or the `exact` transfer to the payee.
//!
//! Two ways to use it: in front of an API as a reverse proxy ([`app`] with proxy routes,
//! the `x402-verifier` binary), or inside an axum app as a tower layer
//! ([`Gate::price`]).
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`gate::decision`] | the decision: payment, reference checks, grant store, settle, grant |
//! | [`scheme`] | the schemes' checks and settlement ([`scheme::receipt`], [`scheme::exact`]) |
//! | [`render`], [`paywall`] | the 402 challenge (JSON, or a page for browsers) and the settlement header |
//! | [`error`] | every reason code ([`Reason`]) and the one refused answer ([`Refusal`]) |
//! | [`tasks`] | background tasks: blockhash, rent gauge, janitor |
//! | [`layer`], [`proxy`], [`app`] | the tower layer, the reverse proxy, the router |
//! | [`paths`] | the path filter: one form of a path, or a refusal |
//! | [`facilitator`], [`receipts`], [`metrics`] | the other endpoints |
//! | [`config`], [`server`] | configuration and start-up |

pub mod app;
pub mod config;
pub mod error;
pub mod facilitator;
pub mod gate;
pub mod layer;
pub mod ledger;
pub mod metrics;
pub mod paths;
pub mod payment;
pub mod paywall;
pub mod proxy;
pub mod receipts;
pub mod render;
pub mod scheme;
pub mod server;
pub mod store;
pub mod tasks;

pub use app::{app, PaidRoute, RequestLimits, RouteService};
pub use error::{Reason, Refusal};
pub use gate::{Gate, PaymentAttempt, PaymentCheck, PaymentSettings, Price, SettledPayment};
pub use layer::PaymentLayer;
pub use scheme::Scheme;
pub use store::{Grant, GrantStore, Standing};

pub use x402_protocol::unix_now;
