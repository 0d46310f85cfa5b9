//! The `x402` command line: its arguments here; each command in its module; the exit
//! codes in [`exit`]; what it prints in [`output`].
//!
//! Everything a server says (descriptions, reasons, settlement fields, error text) is
//! shown with its control characters escaped; `--json` prints it exactly, as JSON.

mod channels;
mod exit;
mod fetch;
mod output;
mod quote;
mod receipts;

use std::path::PathBuf;
use std::process::ExitCode;

use anchor_lang::prelude::Pubkey;
use clap::{Args, Parser, Subcommand};
use x402_client::{Limit, SpendingPolicy, TrustedOperator};
use x402_protocol::rpc::{RpcLedger, RpcOptions};

use exit::{fail, Exit, Failure};
use output::{print_json, shown};

#[derive(Parser)]
#[command(
    name = "x402",
    version,
    about = "Pay for HTTP APIs with x402 on Solana (receipt, exact, upto and batch-settlement schemes)",
    after_help = format!("{SPENDING_HELP}\n\n{}", Exit::help())
)]
pub struct Cli {
    /// Print one JSON document on stdout, for scripts and agents.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// What `x402 fetch` pays without being told, in `--help` (before the exit codes).
const SPENDING_HELP: &str = "\
Spending: `x402 fetch` pays at most 1.00 per request of a stablecoin x402 knows itself
(USDC) unless told otherwise. An offer in any other token (the seller picks it: 1 wSOL
is no dollar) is refused unless given a limit of your own: --max-units N (base units),
or --max-amount 0.05 (read with the mint's decimals from --rpc-url, never the server's
word); --no-limit removes the limit. An offer whose network is not where its money is
(a well-known mint of another cluster, another network than --rpc-url's) is refused;
without --rpc-url, an offer signed over the seller's blockhash (`exact`, or a sponsored
`receipt`) is paid only on networks allowed with --allow-network.";

// Parsed once per run: the size of `fetch`'s arguments costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Fetch URL, paying its 402 challenge: the body on stdout, the settlement on stderr.
    /// Pays at most 1.00 of a stablecoin (USDC) unless told otherwise; another token only
    /// under a limit of your own (see x402 --help).
    Fetch {
        url: String,
        #[arg(short = 'X', long = "request", default_value = "GET")]
        method: String,
        /// A request header, "Name: value"; repeatable.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The request body.
        #[arg(short = 'd', long = "data")]
        data: Option<String>,
        /// The most to pay for this request, in the token's units ("0.05"), in any token.
        /// Read with the mint's decimals from --rpc-url or, for USDC, known ones; never
        /// the server's. Without them the payment is refused. (By default: 1.00, of USDC
        /// only.)
        #[arg(long, conflicts_with_all = ["max_units", "no_limit"])]
        max_amount: Option<String>,
        /// The most to pay for this request, in base units: needs no decimals.
        #[arg(long, conflicts_with = "no_limit")]
        max_units: Option<u64>,
        /// Pay whatever the server asks for this request (no per-request maximum).
        #[arg(long)]
        no_limit: bool,
        /// Pay only on these networks (solana, solana-devnet, or a CAIP-2 id); repeatable.
        /// Without --rpc-url, an offer signed over the seller's blockhash (`exact`, or a
        /// sponsored `receipt`) is paid only on a network named here. With a local
        /// --rpc-url, also pays offers naming this network (a local validator announcing
        /// devnet's id).
        #[arg(long = "allow-network")]
        allow_networks: Vec<String>,
        /// Pay only these payees; repeatable.
        #[arg(long = "allow-payee")]
        allow_payees: Vec<Pubkey>,
        /// Pay only in these tokens (mints); repeatable.
        #[arg(long = "allow-mint")]
        allow_mints: Vec<Pubkey>,
        /// Also sign `pay` for this receipts program (a deployment of your own); this
        /// build's program is always allowed. Repeatable.
        #[arg(long = "allow-program")]
        allow_programs: Vec<Pubkey>,
        /// The schemes to pay first when several are offered (`receipt,exact` by
        /// default: a receipt settles once, on chain). `upto` (escrows the maximum, the
        /// seller settles what the answer cost) and `batch-settlement` (a deposit once,
        /// then a voucher a request, nothing on chain) come first only when named here.
        #[arg(long, value_delimiter = ',')]
        prefer: Vec<String>,
        /// The most a `batch-settlement` deposit may escrow, in the token's units (read
        /// as --max-amount is). By default 5.00 of a stablecoin (USDC).
        #[arg(long, conflicts_with = "max_deposit_units")]
        max_deposit: Option<String>,
        /// The most a `batch-settlement` deposit may escrow, in base units.
        #[arg(long)]
        max_deposit_units: Option<u64>,
        /// A `batch-settlement` operator trusted to sign the vouchers for what each answer
        /// cost (the server mode), as OPERATOR=MAX_DEPOSIT_UNITS: it could take up to a
        /// channel's whole deposit, which it caps. Repeatable; none by default.
        #[arg(long = "trust-operator", value_parser = trusted_operator)]
        trust_operators: Vec<TrustedOperator>,
        /// What a new `batch-settlement` channel (or a top-up) escrows, in base units
        /// (at most the deposit limit); by default the seller's suggested minimum.
        #[arg(long)]
        deposit_units: Option<u64>,
        /// Where `batch-settlement` channels are kept: a later `x402 fetch` continues them.
        #[arg(long, env = "X402_CHANNELS", default_value_os_t = default_channels())]
        channels: PathBuf,
        /// Present the payment kept in FILE (written when a paid request was not served:
        /// the server unavailable or answering 5xx) instead of paying, with the payer's
        /// proof (X-Payment-Proof) beside it.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// The payer, a Solana CLI keypair file.
        #[arg(long, env = "X402_KEYPAIR", default_value_os_t = default_keypair())]
        keypair: PathBuf,
        /// To pay yourself when the server does not sponsor (never printed).
        #[arg(long, env = "X402_RPC_URL", hide_env_values = true)]
        rpc_url: Option<String>,
    },
    /// Show what URL costs, without paying.
    Quote { url: String },
    /// Show the receipt of REFERENCE, from a verifier or from the chain.
    Receipt {
        reference: String,
        /// A verifier's base URL: asks its /receipts/{reference}.
        #[arg(long, conflicts_with = "rpc_url")]
        verifier: Option<String>,
        #[arg(
            long,
            env = "X402_RPC_URL",
            hide_env_values = true,
            required_unless_present = "verifier"
        )]
        rpc_url: Option<String>,
        #[arg(long, default_value_t = x402_receipts::ID)]
        program: Pubkey,
    },
    /// List the receipts paying PAYEE, newest first, with totals.
    Receipts {
        #[arg(long)]
        payee: Pubkey,
        #[arg(long, env = "X402_RPC_URL", hide_env_values = true)]
        rpc_url: String,
        #[arg(long, default_value_t = x402_receipts::ID)]
        program: Pubkey,
    },
    /// List the `upto` channels your keypair deposited in; `channels recover` takes back a
    /// deposit a seller never settled.
    #[command(args_conflicts_with_subcommands = true)]
    Channels {
        /// Without a subcommand (which takes its own).
        #[command(flatten)]
        wallet: Option<Wallet>,
        #[command(subcommand)]
        action: Option<ChannelsAction>,
    },
    /// Close the expired receipts your keypair funded and take their rent back.
    CloseExpired {
        #[arg(long, env = "X402_KEYPAIR", default_value_os_t = default_keypair())]
        keypair: PathBuf,
        #[arg(long, env = "X402_RPC_URL", hide_env_values = true)]
        rpc_url: String,
        #[arg(long, default_value_t = x402_receipts::ID)]
        program: Pubkey,
    },
}

/// The wallet a command acts for, and the ledger it reads.
#[derive(Args)]
struct Wallet {
    #[arg(long, env = "X402_KEYPAIR", default_value_os_t = default_keypair())]
    keypair: PathBuf,
    #[arg(long, env = "X402_RPC_URL", hide_env_values = true)]
    rpc_url: String,
}

#[derive(Subcommand)]
enum ChannelsAction {
    /// Close the `batch-settlement` channel CHANNEL (or every open one kept in
    /// --channels): the seller settles what it accepted and returns the rest at once.
    Close {
        channel: Option<String>,
        #[arg(long, env = "X402_KEYPAIR", default_value_os_t = default_keypair())]
        keypair: PathBuf,
        #[arg(long, env = "X402_CHANNELS", default_value_os_t = default_channels())]
        channels: PathBuf,
    },
    /// Take back the deposit of CHANNEL (or of every channel): `request_close` for an open
    /// one (the seller may still settle during its grace period), then, run again once
    /// the grace period has passed, `withdraw_payer` of what was not settled. Exits 8
    /// while the grace period runs.
    Recover {
        channel: Option<Pubkey>,
        #[command(flatten)]
        wallet: Wallet,
    },
}

fn default_keypair() -> PathBuf {
    home().join(".config/solana/id.json")
}

fn default_channels() -> PathBuf {
    home().join(".local/share/x402/channels")
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
}

pub async fn run(cli: Cli) -> ExitCode {
    let json = cli.json;
    let outcome = match cli.command {
        Command::Fetch {
            url,
            method,
            headers,
            data,
            max_amount,
            max_units,
            no_limit,
            allow_networks,
            allow_payees,
            allow_mints,
            allow_programs,
            prefer,
            max_deposit,
            max_deposit_units,
            trust_operators,
            deposit_units,
            channels,
            resume,
            keypair,
            rpc_url,
        } => {
            let defaults = SpendingPolicy::default();
            let max_per_request = match (max_amount, max_units, no_limit) {
                (Some(decimal), _, _) => Some(Limit::Decimal(decimal)),
                (_, Some(units), _) => Some(Limit::Units(units)),
                (_, _, true) => None,
                _ => defaults.max_per_request.clone(),
            };
            let max_deposit = match (max_deposit, max_deposit_units) {
                (Some(decimal), _) => Some(Limit::Decimal(decimal)),
                (_, Some(units)) => Some(Limit::Units(units)),
                _ => defaults.max_deposit.clone(),
            };
            let mut policy = SpendingPolicy {
                max_per_request,
                max_deposit,
                networks: allow_networks,
                mints: allow_mints,
                payees: allow_payees,
                trusted_operators: trust_operators,
                ..defaults
            };
            policy.programs.extend(allow_programs);
            fetch::fetch(
                &url,
                &method,
                &headers,
                data,
                policy,
                &prefer,
                &keypair,
                &channels,
                deposit_units,
                rpc_url.as_deref(),
                resume.as_deref(),
                json,
            )
            .await
        }
        Command::Quote { url } => quote::quote(&url, json).await,
        Command::Receipt {
            reference,
            verifier,
            rpc_url,
            program,
        } => {
            receipts::receipt(
                &reference,
                verifier.as_deref(),
                rpc_url.as_deref(),
                &program,
                json,
            )
            .await
        }
        Command::Receipts {
            payee,
            rpc_url,
            program,
        } => receipts::list(&payee, &rpc_url, &program, json).await,
        Command::Channels {
            wallet: Some(wallet),
            action: None,
        } => channels::list(&wallet.keypair, &wallet.rpc_url, json).await,
        Command::Channels {
            action: Some(ChannelsAction::Recover { channel, wallet }),
            ..
        } => channels::recover_channels(&wallet.keypair, &wallet.rpc_url, channel, json).await,
        Command::Channels {
            action:
                Some(ChannelsAction::Close {
                    channel,
                    keypair,
                    channels,
                }),
            ..
        } => channels::close(&keypair, &channels, channel.as_deref(), json).await,
        Command::Channels {
            wallet: None,
            action: None,
        } => Err(fail(Exit::Usage, "give --rpc-url URL")),
        Command::CloseExpired {
            keypair,
            rpc_url,
            program,
        } => receipts::close(&keypair, &rpc_url, &program, json).await,
    };
    match outcome {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(failure) => {
            if json {
                print_json(&failure.output());
            } else {
                eprintln!("x402: {}", shown(&failure.message));
            }
            ExitCode::from(failure.exit.code())
        }
    }
}

async fn connect(rpc_url: &str) -> Result<RpcLedger, Failure> {
    RpcLedger::connect(rpc_url, RpcOptions::default())
        .await
        .map_err(|e| fail(Exit::Unavailable, e))
}

/// An operator trusted with a deposit cap: OPERATOR=MAX_DEPOSIT_UNITS.
fn trusted_operator(text: &str) -> Result<TrustedOperator, String> {
    let (operator, cap) = text.split_once('=').ok_or(
        "OPERATOR=MAX_DEPOSIT_UNITS, the operator's key and its deposit cap in base units",
    )?;
    Ok(TrustedOperator {
        operator: operator
            .parse()
            .map_err(|_| format!("{operator} is not a key"))?,
        max_deposit: cap
            .parse()
            .map_err(|_| format!("{cap} is not an amount in base units"))?,
    })
}
