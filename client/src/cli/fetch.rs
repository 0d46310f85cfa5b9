//! `x402 fetch`: pays a URL's 402 challenge and prints the answer; keeps a payment that
//! could not be presented, and presents a kept one again.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use x402_client::{ChannelBook, ClientError, Payment, SpendingPolicy, X402Client};
use x402_protocol::keypair::read_keypair_file;
use x402_protocol::Network;

use super::connect;
use super::exit::{fail, Detail, Exit, Failure};
use super::output::{print_json, shown, Fetched, SettlementView};

#[allow(clippy::too_many_arguments)]
pub async fn fetch(
    url: &str,
    method: &str,
    headers: &[String],
    data: Option<String>,
    policy: SpendingPolicy,
    prefer: &[String],
    keypair: &Path,
    channels: &Path,
    deposit: Option<u64>,
    rpc_url: Option<&str>,
    resume: Option<&Path>,
    json: bool,
) -> Result<Exit, Failure> {
    let mut builder = X402Client::builder().policy(policy);
    if !prefer.is_empty() {
        let prefer: Vec<&str> = prefer.iter().map(String::as_str).collect();
        builder = builder.prefer(&prefer);
    }
    if keypair.exists() {
        builder = builder.keypair(read_keypair_file(keypair).map_err(|e| fail(Exit::Error, e))?);
    }
    if let Some(rpc_url) = rpc_url {
        builder = builder.ledger(Arc::new(connect(rpc_url).await?));
    }
    if prefer.iter().any(|s| s == x402_protocol::BATCH_SETTLEMENT) {
        let book = ChannelBook::open(channels).map_err(|e| fail(Exit::Error, e))?;
        builder = builder.channel_book(book);
    }
    if let Some(deposit) = deposit {
        builder = builder.deposit(deposit);
    }
    let client = builder.build();
    let method =
        reqwest::Method::from_str(&method.to_uppercase()).map_err(|e| fail(Exit::Usage, e))?;
    let mut request = client.http().request(method, url);
    for header in headers {
        let (name, value) = header.split_once(':').ok_or_else(|| {
            fail(
                Exit::Usage,
                format!("a header is \"Name: value\": {header}"),
            )
        })?;
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
                exit: Exit::Unavailable,
                message: format!(
                    "unavailable after {attempts} attempts; the payment is kept in {kept}: \
                     present it with `x402 fetch {url} --resume {kept}`, do not pay again"
                ),
                detail: Some(Box::new(Detail::Kept {
                    kept: kept.to_string(),
                })),
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
                exit: Exit::Unavailable,
                message: format!(
                    "the server answered {status} to the paid request ({said}); the payment \
                     is kept in {kept}: present it with `x402 fetch {url} --resume {kept}`, \
                     do not pay again"
                ),
                detail: Some(Box::new(Detail::NotServed {
                    body,
                    kept: kept.to_string(),
                    status: status.as_u16(),
                })),
            });
        }
        Err(error) => return Err(error.into()),
    };
    let status = paid.response.status();
    let body = paid
        .response
        .bytes()
        .await
        .map_err(|e| fail(Exit::Unavailable, e.without_url()))?;
    let exit = if status.is_client_error() || status.is_server_error() {
        Exit::RequestFailed
    } else {
        Exit::Done
    };
    let settlement = paid.settlement.map(|s| SettlementView {
        explorer: explorer(&s.network, &format!("tx/{}", s.transaction)),
        amount: s.shown_amount,
        amount_base_units: s.amount.to_string(),
        maximum_base_units: s.maximum.map(|maximum| maximum.to_string()),
        network: s.network,
        payer: s.payer,
        receipt: s.receipt,
        reference: s.reference,
        scheme: s.scheme,
        transaction: s.transaction,
    });
    if json {
        print_json(&Fetched {
            body: String::from_utf8_lossy(&body).into_owned(),
            settlement,
            status: status.as_u16(),
        });
        return Ok(exit);
    }
    use std::io::Write;
    std::io::stdout()
        .write_all(&body)
        .map_err(|e| fail(Exit::Error, e))?;
    // The settlement's fields are the server's words.
    match &settlement {
        Some(s) => eprintln!(
            "x402: {}",
            shown(&format!(
                "{} paid {} in {} (reference {}, receipt {}): {}",
                status,
                s.amount,
                s.scheme,
                s.reference.as_deref().unwrap_or("none"),
                s.receipt.as_deref().unwrap_or("none"),
                s.explorer
            ))
        ),
        None => eprintln!("x402: {status}, nothing paid"),
    }
    Ok(exit)
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
            Exit::Error,
            format!("cannot keep the payment in {}: {e}", file.display()),
        )
    })?;
    Ok(file)
}

/// A payment kept by [`keep`].
fn read_kept(file: &Path) -> Result<Payment, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| fail(Exit::Error, format!("{}: {e}", file.display())))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| fail(Exit::Error, format!("{}: {e}", file.display())))?;
    Payment::from_json(&json).map_err(|e| fail(Exit::Error, e))
}

fn explorer(network: &str, path: &str) -> String {
    let network = Network::public(network).unwrap_or_else(|| Network::localnet(""));
    network.explorer_url(path, None)
}
