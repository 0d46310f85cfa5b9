//! `x402-verifier [CONFIG.toml]`: with no configuration at all it serves a paid demo
//! route on 127.0.0.1:8402 over an embedded local ledger.

use std::path::PathBuf;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use x402_verifier::config::Config;
use x402_verifier::server;

/// The Solana test bank logs every instruction at debug level; keep it quiet by default.
const DEFAULT_LOG: &str = "info,solana_runtime=warn,solana_program_test=warn,solana_rbpf=warn,solana_metrics=warn,tarpc=warn";

fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_none() {
        // SAFETY: no other thread runs yet; the runtime is built below.
        unsafe { std::env::set_var("RUST_LOG", DEFAULT_LOG) };
    }
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("x402-verifier: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("X402_CONFIG").ok())
        .map(PathBuf::from);
    let mut config = Config::load(path.as_deref())?;
    config.apply_env(|name| std::env::var(name).ok())?;
    let shutdown = server::shutdown_signal();
    let verifier = server::build(config).await?;
    let listener = tokio::net::TcpListener::bind(verifier.listen).await?;
    eprintln!("{}", server::banner(&verifier, listener.local_addr()?));
    server::serve(verifier.router, listener, shutdown).await?;
    Ok(())
}
