//! Building a running verifier from its configuration, and serving it until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use anchor_spl::token::spl_token;
use solana_commitment_config::CommitmentConfig;
use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::amount::format_units;
use x402_protocol::keypair::{read_keypair_file, write_keypair_file};
use x402_protocol::rpc::{RpcLedger, RpcOptions};
use x402_protocol::{ChallengeKey, Ledger, Network};

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
    let program = match config.payment.program_id.as_deref() {
        Some(id) => Pubkey::from_str(id).map_err(|e| invalid("payment.program_id", e))?,
        None => x402_receipts::ID,
    };
    let state_dir = config
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".x402"));
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| StartError::Io(format!("cannot create {}: {e}", state_dir.display())))?;
    let market = match config.payment.rpc_url.as_deref() {
        Some(url) => rpc_market(&config, url).await?,
        None => embedded_market(&config, program, &state_dir).await?,
    };

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
        network: market.network,
        program,
        mint: market.mint,
        decimals: market.decimals,
        token_program: market.token_program,
        currency: config
            .payment
            .currency
            .clone()
            .unwrap_or_else(|| "USDC".into()),
        pay_to: market.pay_to,
        challenge_keys,
        fee_payer: market.fee_payer.map(Arc::new),
        max_compute_unit_price: config.payment.max_compute_unit_price.unwrap_or(100_000),
        max_compute_unit_limit: 200_000,
        blockhash_refresh: market.blockhash_refresh,
        ledger_timeout: Duration::from_secs(10),
        public_url: config.public_url.clone(),
        facilitator_url: config.payment.facilitator_url.clone(),
    };
    let gate = Gate::new(settings, market.ledger, store).await;
    if config.janitor.interval_seconds > 0 {
        spawn_janitor(&gate, &config.janitor);
    }
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
        local: market.local,
        demo_payer: market.demo_payer,
    })
}

/// Closes the fee payer's expired receipts every interval, while the gate lives.
fn spawn_janitor(gate: &Gate, janitor: &crate::config::Janitor) {
    let gate = gate.clone();
    let interval = Duration::from_secs(janitor.interval_seconds);
    let retention = Duration::from_secs(janitor.retention_seconds);
    tokio::spawn(async move {
        let mut rounds = tokio::time::interval(interval);
        loop {
            rounds.tick().await;
            match gate.close_expired_receipts(retention).await {
                Ok(report) if !report.closed.is_empty() => tracing::info!(
                    closed = report.closed.len(),
                    rent_returned = report.rent_returned,
                    "janitor closed expired receipts"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "janitor round failed"),
            }
        }
    });
}

/// Where payments go and are read: a ledger, its network, the token and the payee.
struct Market {
    ledger: Arc<dyn Ledger>,
    network: Network,
    mint: Pubkey,
    decimals: u8,
    token_program: Pubkey,
    pay_to: Pubkey,
    fee_payer: Option<Keypair>,
    blockhash_refresh: Duration,
    local: Option<Arc<LocalLedger>>,
    demo_payer: Option<PathBuf>,
}

/// The embedded ledger: its own mint, a funded fee payer and a demo payer.
async fn embedded_market(
    config: &Config,
    program: Pubkey,
    state_dir: &std::path::Path,
) -> Result<Market, StartError> {
    let network = config
        .payment
        .network
        .as_deref()
        .unwrap_or("solana-localnet");
    if network != "solana-localnet" {
        return Err(invalid(
            "payment.network",
            format!("{network} needs an RPC URL (X402_RPC_URL)"),
        ));
    }
    if config.payment.asset.is_some() {
        return Err(invalid(
            "payment.asset",
            "the embedded ledger pays in its own local mint",
        ));
    }
    if program != x402_receipts::ID {
        return Err(invalid(
            "payment.program_id",
            "the embedded ledger runs this build's program",
        ));
    }
    let pay_to = optional_key(config.payment.pay_to.as_deref(), "payment.pay_to")?;
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
    let demo_payer = state_dir.join("demo-payer.json");
    write_keypair_file(&market.demo_payer, &demo_payer)
        .map_err(|e| StartError::Io(format!("cannot write {}: {e}", demo_payer.display())))?;
    Ok(Market {
        ledger: market.ledger.clone(),
        network: market.ledger.network().clone(),
        mint: market.mint,
        decimals: LOCAL_DECIMALS,
        token_program: spl_token::ID,
        pay_to: market.merchant,
        fee_payer: Some(fee_payer),
        blockhash_refresh: LOCAL_BLOCKHASH_REFRESH,
        local: Some(market.ledger),
        demo_payer: Some(demo_payer),
    })
}

/// A Solana JSON-RPC node. The network named in configuration must be the node's.
async fn rpc_market(config: &Config, url: &str) -> Result<Market, StartError> {
    let p = &config.payment;
    let commitment = match p.commitment.as_deref().unwrap_or("confirmed") {
        "confirmed" => CommitmentConfig::confirmed(),
        "finalized" => CommitmentConfig::finalized(),
        other => {
            return Err(invalid(
                "payment.commitment",
                format!("{other}: confirmed or finalized"),
            ))
        }
    };
    let options = RpcOptions {
        commitment,
        ..RpcOptions::default()
    };
    let unreachable = |e: x402_protocol::LedgerError| StartError::Io(format!("the RPC node: {e}"));
    let ledger = match p.network.as_deref() {
        // A network named by its CAIP-2 id alone (a local validator): taken as given.
        Some(caip2) if caip2.starts_with("solana:") && Network::public(caip2).is_none() => {
            RpcLedger::with_network(
                url,
                Network::localnet(caip2.trim_start_matches("solana:")),
                options,
            )
        }
        named => {
            let ledger = RpcLedger::connect(url, options)
                .await
                .map_err(unreachable)?;
            if let Some(expected) = named.filter(|n| *n != "solana-localnet") {
                let expected = Network::public(expected)
                    .ok_or_else(|| invalid("payment.network", expected))?;
                if ledger.network() != &expected {
                    let on = ledger.network().caip2().to_string();
                    return Err(invalid(
                        "payment.network",
                        format!("the RPC node is on {on}, not {expected}"),
                    ));
                }
            }
            ledger
        }
    };
    let mint = optional_key(p.asset.as_deref(), "payment.asset")?.ok_or_else(|| {
        invalid(
            "payment.asset",
            "the mint to be paid in (USDC's on devnet or mainnet)",
        )
    })?;
    let pay_to = optional_key(p.pay_to.as_deref(), "payment.pay_to")?.ok_or_else(|| {
        invalid(
            "payment.pay_to",
            "the merchant's wallet (X402_MERCHANT_WALLET)",
        )
    })?;
    let (decimals, token_program) = match p.decimals {
        Some(decimals) => (decimals, spl_token::ID),
        None => {
            let account = ledger.account(&mint).await.map_err(unreachable)?;
            let account =
                account.ok_or_else(|| invalid("payment.asset", format!("no mint at {mint}")))?;
            // A mint's decimals sit at byte 44, in SPL Token and Token-2022 alike.
            let decimals = *account
                .data
                .get(44)
                .ok_or_else(|| invalid("payment.asset", "not a mint"))?;
            (decimals, account.owner)
        }
    };
    let fee_payer = p
        .fee_payer_keypair
        .as_deref()
        .map(read_keypair_file)
        .transpose()
        .map_err(StartError::Io)?;
    Ok(Market {
        network: ledger.network().clone(),
        ledger: Arc::new(ledger),
        mint,
        decimals,
        token_program,
        pay_to,
        fee_payer,
        blockhash_refresh: Duration::from_secs(20),
        local: None,
        demo_payer: None,
    })
}

fn optional_key(text: Option<&str>, name: &'static str) -> Result<Option<Pubkey>, StartError> {
    text.map(Pubkey::from_str)
        .transpose()
        .map_err(|e| invalid(name, e))
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
        "x402 verifier on http://{address} ({}, {}, pays {} to {})",
        s.network.v1_name(),
        if verifier.local.is_some() {
            "embedded ledger"
        } else {
            "JSON-RPC ledger"
        },
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

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    router: axum::Router,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not
/// when it is first awaited: a SIGTERM right after start-up must not kill the process.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}
