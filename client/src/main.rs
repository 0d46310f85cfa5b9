//! `x402`: fetch paid URLs, quote them, and read receipts. See `x402 --help`.

use std::process::ExitCode;

use clap::Parser;

mod cli;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::run(args).await
}
