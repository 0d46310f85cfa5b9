//! The `x402` command line. Exit codes, for scripts and agents:
//! 0 done; 1 error; 2 usage; 3 refused by the spending policy (nothing signed);
//! 4 payment refused by the server; 5 server or ledger unavailable, or the paid request
//! answered 5xx (the payment is kept: present it again with --resume); 6 receipt not
//! found; 7 the request answered 4xx (paid or not), or 5xx without a payment.
//!
//! Everything a server says (descriptions, reasons, settlement fields, error text) is
//! shown with its control characters escaped; `--json` prints it exactly, as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use anchor_lang::prelude::Pubkey;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use x402_client::{Challenge, ClientError, Limit, Payment, SpendingPolicy, Terms, X402Client};
use x402_protocol::janitor::{close_expired, find_receipt, receipts_for_payee, FoundReceipt};
use x402_protocol::keypair::read_keypair_file;
use x402_protocol::rpc::{RpcLedger, RpcOptions};
use x402_protocol::{Ledger, Network, Reference};

#[derive(Parser)]
#[command(
    name = "x402",
    version,
    about = "Pay for HTTP APIs with x402 on Solana (receipt and exact schemes)",
    after_help = SPENDING_HELP
)]
pub struct Cli {
    /// Print one JSON document on stdout, for scripts and agents.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// What `x402 fetch` pays without being told, in `--help`.
const SPENDING_HELP: &str = "\
Spending: `x402 fetch` pays at most 1.00 per request of a stablecoin x402 knows itself
(USDC) unless told otherwise. An offer in any other token (the seller picks it: 1 wSOL
is no dollar) is refused unless given a limit of your own: --max-units N (base units),
or --max-amount 0.05 (read with the mint's decimals from --rpc-url, never the server's
word); --no-limit removes the limit. An offer whose network is not where its money is
(a well-known mint of another cluster, another network than --rpc-url's) is refused;
without --rpc-url, an offer signed over the seller's blockhash (`exact`, or a sponsored
`receipt`) is paid only on networks allowed with --allow-network.

Exit codes: 0 done; 1 error; 2 usage; 3 refused by the spending policy (nothing signed);
4 payment refused by the server; 5 unavailable, or the paid request answered 5xx (the
payment is kept in a file: present it with --resume FILE, do not pay again); 6 receipt
not found; 7 the request answered 4xx (paid or not), or 5xx without a payment.";

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
        /// default: a receipt settles once, on chain).
        #[arg(long, value_delimiter = ',')]
        prefer: Vec<String>,
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

fn default_keypair() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".config/solana/id.json")
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
    detail: Value,
}

fn fail(code: u8, message: impl ToString) -> Failure {
    Failure {
        code,
        message: message.to_string(),
        detail: Value::Null,
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        let message = error.to_string();
        match error {
            ClientError::Policy(refusal) => Failure {
                code: 3,
                message,
                detail: json!({
                    "rule": format!("{:?}", refusal.rule),
                    "amount": refusal.amount.to_string(),
                    "mint": refusal.mint.to_string(),
                    "payTo": refusal.pay_to.to_string(),
                    "network": refusal.network,
                }),
            },
            ClientError::PaymentRefused { reason, .. } => Failure {
                code: 4,
                message,
                detail: json!({"reason": reason}),
            },
            ClientError::Unavailable { .. }
            | ClientError::ServerError { .. }
            | ClientError::Ledger(x402_protocol::LedgerError::Unavailable(_)) => fail(5, message),
            _ => fail(1, message),
        }
    }
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
            let mut policy = SpendingPolicy {
                max_per_request,
                networks: allow_networks,
                mints: allow_mints,
                payees: allow_payees,
                ..defaults
            };
            policy.programs.extend(allow_programs);
            fetch(
                &url,
                &method,
                &headers,
                data,
                policy,
                &prefer,
                &keypair,
                rpc_url.as_deref(),
                resume.as_deref(),
                json,
            )
            .await
        }
        Command::Quote { url } => quote(&url, json).await,
        Command::Receipt {
            reference,
            verifier,
            rpc_url,
            program,
        } => {
            receipt(
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
        } => list(&payee, &rpc_url, &program, json).await,
        Command::CloseExpired {
            keypair,
            rpc_url,
            program,
        } => close(&keypair, &rpc_url, &program, json).await,
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            if json {
                println!(
                    "{}",
                    json!({"error": failure.message, "exitCode": failure.code, "detail": failure.detail})
                );
            } else {
                eprintln!("x402: {}", shown(&failure.message));
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Text a server chose, for a terminal: every control character (Unicode Cc: escape
/// sequences, carriage returns, newlines, C1 controls) and every bidirectional-text
/// control shown escaped (`\u{1b}`, `\u{202e}`), so that a seller cannot move the cursor,
/// retitle the window or clear the screen, forge a line of ours, or reorder what is shown
/// (an amount or an address read backwards). Human output only: `--json` prints the text
/// exactly, JSON-escaped.
fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || is_bidi_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The controls of the Unicode bidirectional algorithm (Bidi_Control): the embeddings
/// and overrides (U+202A..U+202E), the isolates (U+2066..U+2069), the marks (U+200E,
/// U+200F) and the Arabic letter mark (U+061C).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

async fn connect(rpc_url: &str) -> Result<RpcLedger, Failure> {
    RpcLedger::connect(rpc_url, RpcOptions::default())
        .await
        .map_err(|e| fail(5, e))
}

fn explorer(network: &str, path: &str) -> String {
    let network = Network::public(network).unwrap_or_else(|| Network::localnet(""));
    network.explorer_url(path, None)
}

#[allow(clippy::too_many_arguments)]
async fn fetch(
    url: &str,
    method: &str,
    headers: &[String],
    data: Option<String>,
    policy: SpendingPolicy,
    prefer: &[String],
    keypair: &std::path::Path,
    rpc_url: Option<&str>,
    resume: Option<&std::path::Path>,
    json: bool,
) -> Result<u8, Failure> {
    let mut builder = X402Client::builder().policy(policy);
    if !prefer.is_empty() {
        let prefer: Vec<&str> = prefer.iter().map(String::as_str).collect();
        builder = builder.prefer(&prefer);
    }
    if keypair.exists() {
        builder = builder.keypair(read_keypair_file(keypair).map_err(|e| fail(1, e))?);
    }
    if let Some(rpc_url) = rpc_url {
        builder = builder.ledger(Arc::new(connect(rpc_url).await?));
    }
    let client = builder.build();
    let method = reqwest::Method::from_str(&method.to_uppercase()).map_err(|e| fail(2, e))?;
    let mut request = client.http().request(method, url);
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| fail(2, format!("a header is \"Name: value\": {header}")))?;
        request = request.header(name.trim(), value.trim());
    }
    if let Some(data) = data {
        request = request.body(data);
    }
    let sent = match resume {
        Some(file) => client.send_with(request, &read_kept(file)?).await,
        None => client.send(request).await,
    };
    let paid = match sent {
        Ok(paid) => paid,
        Err(ClientError::Unavailable { attempts, payment }) => {
            let file = keep(&payment)?;
            let kept = file.display();
            return Err(Failure {
                code: 5,
                message: format!(
                    "unavailable after {attempts} attempts; the payment is kept in {kept}: \
                     present it with `x402 fetch {url} --resume {kept}`, do not pay again"
                ),
                detail: json!({"kept": kept.to_string()}),
            });
        }
        // Not served: the seller gave the payment back (or failed with it). Kept, to be
        // presented again with the payer's proof; never paid again.
        Err(ClientError::ServerError {
            status,
            body,
            payment,
        }) => {
            let file = keep(&payment)?;
            let kept = file.display();
            let said: String = body.trim().chars().take(200).collect();
            return Err(Failure {
                code: 5,
                message: format!(
                    "the server answered {status} to the paid request ({said}); the payment \
                     is kept in {kept}: present it with `x402 fetch {url} --resume {kept}`, \
                     do not pay again"
                ),
                detail: json!({"kept": kept.to_string(), "status": status.as_u16(), "body": body}),
            });
        }
        Err(error) => return Err(error.into()),
    };
    let status = paid.response.status();
    let body = paid
        .response
        .bytes()
        .await
        .map_err(|e| fail(5, e.without_url()))?;
    let code = if status.is_client_error() || status.is_server_error() {
        7
    } else {
        0
    };
    let settlement = paid.settlement.as_ref().map(|s| {
        json!({
            "scheme": s.scheme,
            "transaction": s.transaction,
            "reference": s.reference,
            "receipt": s.receipt,
            "amount": s.shown_amount,
            "amountBaseUnits": s.amount.to_string(),
            "network": s.network,
            "payer": s.payer,
            "explorer": explorer(&s.network, &format!("tx/{}", s.transaction)),
        })
    });
    if json {
        let text = String::from_utf8_lossy(&body);
        println!(
            "{}",
            json!({"status": status.as_u16(), "body": text, "settlement": settlement})
        );
        return Ok(code);
    }
    use std::io::Write;
    std::io::stdout().write_all(&body).map_err(|e| fail(1, e))?;
    // The settlement's fields are the server's words.
    match &settlement {
        Some(s) => eprintln!(
            "x402: {}",
            shown(&format!(
                "{} paid {} in {} (reference {}, receipt {}): {}",
                status,
                s["amount"].as_str().unwrap_or_default(),
                s["scheme"].as_str().unwrap_or_default(),
                s["reference"].as_str().unwrap_or("none"),
                s["receipt"].as_str().unwrap_or("none"),
                s["explorer"].as_str().unwrap_or_default()
            ))
        ),
        None => eprintln!("x402: {status}, nothing paid"),
    }
    Ok(code)
}

/// Writes a payment that could not be presented to `x402-payment-<reference>.json` in
/// the current directory (or, without a reference, named after its challenge's memo or
/// the time); its path.
fn keep(payment: &Payment) -> Result<PathBuf, Failure> {
    let name: String = match payment.offer.reference() {
        Some(reference) => reference.to_string(),
        // A stock server's memo is its own text: only its safe characters name a file.
        None => payment
            .offer
            .key()
            .unwrap_or_else(|| x402_protocol::unix_now().to_string())
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(64)
            .collect(),
    };
    let file = PathBuf::from(format!("x402-payment-{name}.json"));
    std::fs::write(&file, payment.to_json().to_string()).map_err(|e| {
        fail(
            1,
            format!("cannot keep the payment in {}: {e}", file.display()),
        )
    })?;
    Ok(file)
}

/// A payment kept by [`keep`].
fn read_kept(file: &std::path::Path) -> Result<Payment, Failure> {
    let text =
        std::fs::read_to_string(file).map_err(|e| fail(1, format!("{}: {e}", file.display())))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| fail(1, format!("{}: {e}", file.display())))?;
    Payment::from_json(&json).map_err(|e| fail(1, e))
}

async fn quote(url: &str, json: bool) -> Result<u8, Failure> {
    let client = X402Client::builder().auto_pay(false).build();
    let challenge = match client.get(url).await {
        Ok(paid) => {
            let status = paid.response.status();
            if json {
                println!(
                    "{}",
                    json!({"status": status.as_u16(), "paymentRequired": false})
                );
            } else {
                println!("{url}: {status}, no payment asked");
            }
            return Ok(0);
        }
        Err(ClientError::PaymentRequired(challenge)) => challenge,
        Err(other) => return Err(other.into()),
    };
    let Challenge {
        offers, unpayable, ..
    } = *challenge;
    let offers: Vec<Value> = offers
        .iter()
        .map(|o| {
            let expires_at = match &o.terms {
                Terms::Receipt(r) => Some(r.requirement.expires_at),
                Terms::Exact(_) => None,
            };
            json!({
                "scheme": o.scheme(),
                "amount": o.shown_amount(),
                "amountBaseUnits": o.amount().to_string(),
                "asset": o.mint().to_string(),
                "payTo": o.pay_to().to_string(),
                "network": o.network(),
                "sponsored": o.sponsored(),
                "reference": o.reference().map(|r| r.to_string()),
                "expiresAt": expires_at,
                "description": o.description(),
            })
        })
        .collect();
    if json {
        println!(
            "{}",
            json!({"status": 402, "paymentRequired": true, "offers": offers, "unpayable": unpayable})
        );
    } else {
        // Every field but the scheme is the server's word.
        for o in &offers {
            let description = o["description"].as_str().unwrap_or_default();
            let line = format!(
                "{url} costs {} of {} to {} on {}, scheme {}{}{}",
                o["amount"].as_str().unwrap_or_default(),
                o["asset"].as_str().unwrap_or_default(),
                o["payTo"].as_str().unwrap_or_default(),
                o["network"].as_str().unwrap_or_default(),
                o["scheme"].as_str().unwrap_or_default(),
                if o["sponsored"] == true {
                    " (sponsored: no SOL needed)"
                } else {
                    ""
                },
                if description.is_empty() {
                    String::new()
                } else {
                    format!(": {description}")
                },
            );
            println!("{}", shown(&line));
        }
        for why in &unpayable {
            println!("{}", shown(&format!("{url} also offers {why}")));
        }
    }
    Ok(0)
}

fn receipt_json(found: &FoundReceipt, network: &Network) -> Value {
    let r = &found.receipt;
    let link = |path: String| network.explorer_url(&path, None);
    json!({
        "reference": Reference(r.reference).to_string(),
        "receipt": found.address.to_string(),
        "payer": r.payer.to_string(),
        "payee": r.payee.to_string(),
        "mint": r.mint.to_string(),
        "amount": r.amount.to_string(),
        "rentPayer": r.rent_payer.to_string(),
        "paidAt": r.paid_at,
        "slot": r.slot,
        "expiresAt": r.expires_at,
        "lamports": found.lamports,
        "explorer": {"receipt": link(format!("address/{}", found.address))},
    })
}

async fn receipt(
    reference: &str,
    verifier: Option<&str>,
    rpc_url: Option<&str>,
    program: &Pubkey,
    json: bool,
) -> Result<u8, Failure> {
    let parsed: Reference = reference.parse().map_err(|e| fail(2, e))?;
    let found = match (verifier, rpc_url) {
        (Some(verifier), _) => {
            let url = format!("{}/receipts/{parsed}", verifier.trim_end_matches('/'));
            let response = reqwest::get(&url)
                .await
                .map_err(|e| fail(5, e.without_url()))?;
            match response.status().as_u16() {
                200 => response
                    .json::<Value>()
                    .await
                    .map_err(|e| fail(1, e.without_url()))?,
                404 => return Err(fail(6, format!("no receipt for reference {parsed}"))),
                503 => return Err(fail(5, "the verifier's ledger is unavailable")),
                other => return Err(fail(1, format!("the verifier answered {other}"))),
            }
        }
        (None, Some(rpc_url)) => {
            let ledger = connect(rpc_url).await?;
            let found = find_receipt(&ledger, program, &parsed)
                .await
                .map_err(|e| fail(5, e))?;
            let found =
                found.ok_or_else(|| fail(6, format!("no receipt for reference {parsed}")))?;
            receipt_json(&found, ledger.network())
        }
        (None, None) => return Err(fail(2, "give --verifier URL or --rpc-url URL")),
    };
    if json {
        println!("{found}");
    } else {
        // A verifier's answer is its word: shown escaped.
        for key in [
            "reference",
            "receipt",
            "payer",
            "payee",
            "mint",
            "amount",
            "expiresAt",
            "paidAt",
            "rentPayer",
        ] {
            let value = found[key]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| found[key].to_string());
            println!("{key:>10}: {}", shown(&value));
        }
        println!(
            "{:>10}: {}",
            "explorer",
            shown(found["explorer"]["receipt"].as_str().unwrap_or_default())
        );
    }
    Ok(0)
}

async fn list(payee: &Pubkey, rpc_url: &str, program: &Pubkey, json: bool) -> Result<u8, Failure> {
    let ledger = connect(rpc_url).await?;
    let found = receipts_for_payee(&ledger, program, payee)
        .await
        .map_err(|e| fail(5, e))?;
    let mut totals = std::collections::BTreeMap::<String, u64>::new();
    for f in &found {
        let total = totals.entry(f.receipt.mint.to_string()).or_default();
        *total = total.saturating_add(f.receipt.amount);
    }
    if json {
        let receipts: Vec<Value> = found
            .iter()
            .map(|f| receipt_json(f, ledger.network()))
            .collect();
        let totals: serde_json::Map<String, Value> = totals
            .into_iter()
            .map(|(k, v)| (k, v.to_string().into()))
            .collect();
        println!(
            "{}",
            json!({"payee": payee.to_string(), "count": found.len(), "receipts": receipts, "totals": totals})
        );
    } else {
        for f in &found {
            let r = &f.receipt;
            println!(
                "{} {} paid {} of {} (reference {})",
                r.paid_at,
                r.payer,
                r.amount,
                r.mint,
                Reference(r.reference)
            );
        }
        for (mint, total) in totals {
            println!("total: {total} base units of {mint}");
        }
        println!("{} receipts", found.len());
    }
    Ok(0)
}

async fn close(
    keypair: &std::path::Path,
    rpc_url: &str,
    program: &Pubkey,
    json: bool,
) -> Result<u8, Failure> {
    let keypair = read_keypair_file(keypair).map_err(|e| fail(1, e))?;
    let ledger = connect(rpc_url).await?;
    let report = close_expired(&ledger, program, &keypair, x402_protocol::unix_now())
        .await
        .map_err(|e| match e {
            x402_protocol::LedgerError::Unavailable(_) => fail(5, e),
            other => fail(1, other),
        })?;
    if json {
        let closed: Vec<String> = report.closed.iter().map(|k| k.to_string()).collect();
        println!(
            "{}",
            json!({"closed": closed, "rentReturned": report.rent_returned, "transactions": report.transactions})
        );
    } else {
        println!(
            "closed {} receipts, {} lamports of rent returned",
            report.closed.len(),
            report.rent_returned
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn every_control_character_is_shown_escaped_and_nothing_else_changes() {
        assert_eq!(
            shown("\x1b]0;pwned\x07 \x1b[2J\r\n\t\u{9b}31m"),
            "\\u{1b}]0;pwned\\u{7} \\u{1b}[2J\\r\\n\\t\\u{9b}31m"
        );
        assert_eq!(shown("0,01 € à Zürich"), "0,01 € à Zürich");
    }

    #[test]
    fn every_bidirectional_control_is_shown_escaped() {
        // "pay 1.00" that a terminal would show reordered, an address spelled backwards.
        assert_eq!(
            shown("pay \u{202e}00.1\u{202c} to \u{2066}abc\u{2069}"),
            "pay \\u{202e}00.1\\u{202c} to \\u{2066}abc\\u{2069}"
        );
        let controls = [
            '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
            '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ];
        for c in controls {
            assert_eq!(
                shown(&c.to_string()),
                format!("\\u{{{:x}}}", c as u32),
                "{c:?}"
            );
        }
        // Their neighbours, and right-to-left text itself, are shown as they are.
        for kept in [
            '\u{061b}', '\u{200d}', '\u{2029}', '\u{202f}', '\u{2065}', '\u{206a}', 'ש', 'ع',
        ] {
            assert_eq!(shown(&kept.to_string()), kept.to_string(), "{kept:?}");
        }
    }
}
