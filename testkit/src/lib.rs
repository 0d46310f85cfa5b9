//! Dev-only helpers the tests (`tests/`, `verifier/tests/`) and the benchmarks (`bench/`)
//! share, each in one place: the bank set-up ([`bank`]), one fake ledger with knobs
//! ([`ledger::TestLedger`]), [`serve`], the verifier binary as a process
//! ([`process::VerifierProcess`]), a JSON-RPC proxy that counts and breaks
//! ([`rpc_proxy::RpcProxy`]), a gate's settings for tests ([`settings::settings`]) and
//! solana-test-validator as a process ([`validator::Validator`]), and instructions that
//! tell the third-party programs of a test world apart ([`vendored`]).

pub mod bank;
pub mod ledger;
pub mod process;
pub mod rpc_proxy;
pub mod settings;
pub mod validator;
pub mod vendored;

pub use ledger::TestLedger;
pub use process::VerifierProcess;
pub use rpc_proxy::{Fault, RpcProxy};
pub use settings::settings;
pub use validator::Validator;

/// Serves `router` on a free loopback port, in the background; its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serves") });
    url
}
