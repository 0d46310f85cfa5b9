//! `x402-verifier [CONFIG.toml]`: with no configuration at all it serves a paid demo
//! route on 127.0.0.1:8402 over an embedded local ledger.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use x402_verifier::config::Config;
use x402_verifier::server;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The verifier's own lines at info; everything else (the embedded bank's runtime,
/// tarpc, OpenTelemetry) only when it fails. `RUST_LOG` replaces this.
const DEFAULT_LOG: &str = "error,x402_verifier=info,x402_protocol=info";

/// x402 verifier for Solana receipts: answers 402 challenges, settles payments, and
/// serves or forwards what was paid for.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The configuration file (TOML). Without one it serves the demo route over an
    /// embedded local ledger. Every setting has an `X402_*` environment override.
    #[arg(env = "X402_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("x402-verifier: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::load(args.config.as_deref())?;
    config.apply_env(|name| std::env::var(name).ok())?;
    let shutdown = server::shutdown_signal();
    let verifier = server::build(config).await?;
    server::run(verifier, shutdown).await?;
    Ok(())
}
