//! Building a running verifier from its configuration, and serving it until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use anchor_spl::token::spl_token;
use solana_signer::Signer;
use x402_protocol::amount::format_units;
use x402_protocol::keypair::{read_keypair_file, write_keypair_file};
use x402_protocol::{ChallengeKey, Ledger};

use crate::config::{Config, ConfigError};
use crate::gate::{Gate, PaymentSettings};
use crate::ledger::local::{LocalLedger, LOCAL_BLOCKHASH_REFRESH, LOCAL_DECIMALS};
use crate::proxy::{Proxy, Upstream};
use crate::store::{GrantStore, StoreError};
use crate::{app, PaidRoute, RequestLimits, RouteService};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("{0}")]
    Io(String),
}

fn invalid(name: &'static str, why: impl ToString) -> StartError {
    StartError::Config(ConfigError::Invalid {
        name,
        why: why.to_string(),
    })
}

/// A verifier ready to serve.
pub struct Verifier {
    pub router: axum::Router,
    pub gate: Gate,
    pub listen: SocketAddr,
    pub routes: Vec<PaidRoute>,
    /// The embedded ledger, when no RPC URL is configured.
    pub local: Option<Arc<LocalLedger>>,
    /// A funded payer for trying the API, written by the embedded ledger.
    pub demo_payer: Option<PathBuf>,
}

/// Builds the verifier `config` describes.
pub async fn build(config: Config) -> Result<Verifier, StartError> {
    let network = config
        .payment
        .network
        .as_deref()
        .unwrap_or("solana-localnet");
    if network != "solana-localnet" || config.payment.rpc_url.is_some() {
        return Err(StartError::Unsupported(
            "only the embedded local ledger (network solana-localnet, no RPC URL) is built so far; \
             the Solana JSON-RPC ledger for devnet and mainnet is the next milestone",
        ));
    }
    if config.payment.asset.is_some() {
        return Err(invalid(
            "payment.asset",
            "the embedded ledger pays in its own local mint",
        ));
    }
    let pay_to = config
        .payment
        .pay_to
        .as_deref()
        .map(Pubkey::from_str)
        .transpose()
        .map_err(|e| invalid("payment.pay_to", e))?;
    let program = match config.payment.program_id.as_deref() {
        Some(id) => Pubkey::from_str(id).map_err(|e| invalid("payment.program_id", e))?,
        None => x402_receipts::ID,
    };
    if program != x402_receipts::ID {
        return Err(invalid(
            "payment.program_id",
            "the embedded ledger runs this build's program",
        ));
    }
    let state_dir = config
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".x402"));

    let market = LocalLedger::start_market(pay_to).await;
    let fee_payer = match &config.payment.fee_payer_keypair {
        Some(path) => {
            let keypair = read_keypair_file(path).map_err(StartError::Io)?;
            market
                .ledger
                .airdrop(&keypair.pubkey(), 10_000_000_000)
                .await;
            keypair
        }
        None => market.fee_payer.insecure_clone(),
    };
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| StartError::Io(format!("cannot create {}: {e}", state_dir.display())))?;
    let demo_payer = state_dir.join("demo-payer.json");
    write_keypair_file(&market.demo_payer, &demo_payer)
        .map_err(|e| StartError::Io(format!("cannot write {}: {e}", demo_payer.display())))?;

    let challenge_keys = match config.payment.challenge_keys.as_deref() {
        Some(list) => list
            .split(',')
            .map(|key| {
                let bytes = hex::decode(key.trim())
                    .map_err(|_| invalid("X402_CHALLENGE_KEY", "not hex"))?;
                ChallengeKey::new(bytes).map_err(|e| invalid("X402_CHALLENGE_KEY", e))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![state_challenge_key(&state_dir)?],
    };
    let store_url = config
        .store
        .url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", state_dir.join("grants.db").display()));
    let store = GrantStore::connect(&store_url).await?;

    let settings = PaymentSettings {
        network: market.ledger.network().clone(),
        program,
        mint: market.mint,
        decimals: LOCAL_DECIMALS,
        token_program: spl_token::ID,
        currency: config
            .payment
            .currency
            .clone()
            .unwrap_or_else(|| "USDC".into()),
        pay_to: market.merchant,
        challenge_keys,
        fee_payer: Some(Arc::new(fee_payer)),
        max_compute_unit_price: config.payment.max_compute_unit_price.unwrap_or(100_000),
        max_compute_unit_limit: 200_000,
        blockhash_refresh: LOCAL_BLOCKHASH_REFRESH,
        ledger_timeout: Duration::from_secs(10),
        public_url: config.public_url.clone(),
        facilitator_url: config.payment.facilitator_url.clone(),
    };
    let ledger: Arc<dyn Ledger> = market.ledger.clone();
    let gate = Gate::new(settings, ledger, store).await;
    let routes = paid_routes(&config, &gate)?;
    let limits = RequestLimits {
        body_bytes: config.limits.request_body_bytes,
        timeout: Duration::from_secs(config.limits.request_timeout_seconds),
    };
    Ok(Verifier {
        router: app(gate.clone(), routes.clone(), &limits),
        gate,
        listen: config
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8402))),
        routes,
        local: Some(market.ledger),
        demo_payer: Some(demo_payer),
    })
}

/// The challenge key kept in the state directory, made on first start: challenges (and
/// references paid but not yet presented) survive a restart.
fn state_challenge_key(state_dir: &std::path::Path) -> Result<ChallengeKey, StartError> {
    let path = state_dir.join("challenge-key");
    let io = |e: std::io::Error| StartError::Io(format!("challenge key {}: {e}", path.display()));
    let secret = match std::fs::read_to_string(&path) {
        Ok(text) => {
            hex::decode(text.trim()).map_err(|_| invalid("challenge key file", "not hex"))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = vec![0u8; 32];
            getrandom::getrandom(&mut secret).map_err(|e| StartError::Io(e.to_string()))?;
            write_secret(&path, &hex::encode(&secret)).map_err(io)?;
            secret
        }
        Err(e) => return Err(io(e)),
    };
    ChallengeKey::new(secret).map_err(|e| invalid("challenge key file", e))
}

/// Writes a secret readable by its owner only.
fn write_secret(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, text.as_bytes())
}

/// The configured routes, or the built-in demo route `GET /demo` when there are none.
fn paid_routes(config: &Config, gate: &Gate) -> Result<Vec<PaidRoute>, StartError> {
    let minimum = config.payment.min_payment.as_deref().unwrap_or("0.01");
    let floor = gate
        .parse_price(minimum)
        .map_err(|e| invalid("payment.min_payment", e))?;
    if config.routes.is_empty() {
        let payment = gate
            .try_price(minimum)
            .map_err(|e| invalid("payment.min_payment", e))?
            .description("The verifier's demo resource");
        return Ok(vec![PaidRoute {
            pattern: "/demo".into(),
            methods: vec![http::Method::GET],
            payment,
            service: RouteService::Demo,
        }]);
    }
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| StartError::Io(e.to_string()))?;
    config
        .routes
        .iter()
        .map(|route| {
            let price = route.price.as_deref().unwrap_or(minimum);
            let payment = gate
                .try_price(price)
                .map_err(|e| invalid("routes.price", format!("{price:?}: {e}")))?;
            if payment.price().amount < floor {
                return Err(invalid(
                    "routes.price",
                    format!("{price} for {} is below min_payment {minimum}", route.path),
                ));
            }
            let methods = route
                .methods
                .iter()
                .map(|m| {
                    http::Method::from_str(&m.to_uppercase())
                        .map_err(|e| invalid("routes.methods", e))
                })
                .collect::<Result<_, _>>()?;
            let upstream = Upstream {
                url: route.upstream.clone(),
                timeout: Duration::from_secs(config.limits.upstream_timeout_seconds),
                max_response_bytes: config.limits.response_body_bytes,
            };
            Ok(PaidRoute {
                pattern: route.path.clone(),
                methods,
                payment: payment
                    .description(&route.description)
                    .mime_type(route.mime_type.as_deref().unwrap_or("application/json"))
                    .ttl(Duration::from_secs(route.ttl.unwrap_or(300))),
                service: RouteService::Proxy(Proxy::new(client.clone(), upstream)),
            })
        })
        .collect()
}

/// What a person needs to know to pay, printed at start.
pub fn banner(verifier: &Verifier, address: SocketAddr) -> String {
    let s = verifier.gate.settings();
    let mut lines = vec![format!(
        "x402 verifier on http://{address} ({}, embedded ledger, pays {} to {})",
        s.network.v1_name(),
        s.currency,
        s.pay_to
    )];
    for route in &verifier.routes {
        let methods: Vec<&str> = route.methods.iter().map(|m| m.as_str()).collect();
        let price = format_units(route.payment.price().amount, s.decimals);
        lines.push(format!(
            "  {} http://{address}{} costs {price} {}",
            methods.join("|"),
            route.pattern,
            s.currency
        ));
    }
    if let Some(payer) = &verifier.demo_payer {
        lines.push(format!(
            "Demo payer with 100 {}: {}",
            s.currency,
            payer.display()
        ));
        let route = verifier
            .routes
            .first()
            .map(|r| r.pattern.trim_end_matches("/*").to_string())
            .unwrap_or_default();
        lines.push(format!(
            "Pay it:  cargo run -p x402-client -- fetch http://{address}{route} --keypair {}",
            payer.display()
        ));
    }
    lines.join("\n")
}

/// Serves until SIGTERM or Ctrl-C, then lets requests in flight finish.
pub async fn serve(router: axum::Router, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
