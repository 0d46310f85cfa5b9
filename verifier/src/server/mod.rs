//! Building a running verifier from its configuration, and serving it until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use x402_protocol::ChallengeKey;

pub use listen::{banner, run, serve, shutdown_signal, ConnectionLimits};

use crate::app::MetricsAccess;
use crate::config::{
    ApiKeys, Config, ConfigError, JanitorConfig, MetricsListen, PaymentConfig,
    DEFAULT_METRICS_LISTEN,
};
use crate::context::{BatchSettings, PaymentSettings};
use crate::facilitator::access::{FacilitatorAccess, SponsorshipPolicy};
use crate::gate::Gate;
use crate::model::{Scheme, SETTLEMENT_GRACE_SECONDS};
use crate::proxy::{Proxy, Upstream};
use crate::sponsorship::SponsorLimits;
use crate::store::{GrantStore, StoreError};
use crate::tasks::{Janitor, Schedule};
use crate::{app, PaidRoute, RequestLimits, RouteService};

mod listen;
mod market;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

pub(crate) fn invalid(name: &'static str, why: impl ToString) -> StartError {
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
    /// `/metrics` on its own listener (by default; not when it is on the main listener
    /// or off).
    pub metrics: Option<MetricsListener>,
    pub routes: Vec<PaidRoute>,
    /// "embedded ledger" or "JSON-RPC ledger", for the banner.
    pub ledger_kind: &'static str,
    /// A funded payer for trying the API, written by the embedded ledger.
    pub demo_payer: Option<PathBuf>,
    pub connections: ConnectionLimits,
}

/// `/metrics` on a listener of its own.
#[derive(Clone)]
pub struct MetricsListener {
    pub address: SocketAddr,
    pub router: axum::Router,
    /// The default address rather than a configured one: when another process holds it,
    /// the verifier serves without metrics (and says so) instead of not starting.
    pub optional: bool,
}

/// Builds the verifier `config` describes and starts its background tasks.
pub async fn build(config: Config) -> Result<Verifier, StartError> {
    let state_dir = &config.state_dir;
    std::fs::create_dir_all(state_dir)
        .map_err(|e| StartError::Io(format!("cannot create {}: {e}", state_dir.display())))?;
    // A payer's proof names the host it presents to; without a configured public URL the
    // request's own Host header would name it, and a proof captured on one host could be
    // replayed with that Host at another. Only the local demo may go without one.
    if config.payment.rpc_url.is_some() && config.public_url.is_none() {
        return Err(invalid(
            "public_url",
            "required with a JSON-RPC ledger (X402_PUBLIC_URL): the host payers' proofs are bound to",
        ));
    }
    let market = market::open_market(&config).await?;
    let challenge_keys = match &config.payment.challenge_keys {
        Some(keys) => keys.0.clone(),
        None => vec![state_challenge_key(state_dir)?],
    };
    let store = match &config.store.url {
        Some(url) => GrantStore::connect(url.expose_secret()).await?,
        None => {
            let path = state_dir.join("grants.db");
            GrantStore::connect(&format!("sqlite://{}", path.display())).await?
        }
    };
    let p = &config.payment;
    let schemes = schemes(
        p.schemes
            .as_deref()
            .map(|names| named("payment.schemes", names))
            .transpose()?
            .as_deref(),
        market.fee_payer.is_some(),
        market.delivers_in_full,
    )?;
    let fee_payer = market.fee_payer.map(Arc::new);
    let settings = PaymentSettings {
        network: market.network,
        program: p.program_id,
        mint: market.mint,
        decimals: market.decimals,
        token_program: market.token_program,
        currency: p.currency.clone(),
        pay_to: market.pay_to,
        challenge_keys,
        fee_payer: fee_payer.clone(),
        schemes,
        sponsor_limits: sponsor_limits(p),
        max_compute_unit_price: p.max_compute_unit_price,
        max_compute_unit_limit: p.max_compute_unit_limit,
        ledger_timeout: p.ledger_timeout(),
        public_url: config.public_url.as_ref().map(|u| u.to_string()),
        facilitator_url: p.facilitator_url.as_ref().map(|u| u.to_string()),
        batch: BatchSettings {
            claim_interval: Duration::from_secs(p.batch_claim_interval_seconds.max(1)),
            idle_close: Duration::from_secs(p.batch_idle_close_seconds.max(1)),
            operator: batch_operator(p, fee_payer.as_deref())?,
        },
    };
    let schedule = Schedule {
        blockhash_refresh: market.blockhash_refresh,
        janitor: janitor_schedule(&config.janitor)?,
        ..Schedule::default()
    };
    let gate = Gate::new(settings, market.ledger, store);
    crate::tasks::start(&gate, &schedule).await;
    let routes = paid_routes(&config, &gate)?;
    let limits = RequestLimits {
        body_bytes: config.limits.request_body_bytes,
        timeout: Duration::from_secs(config.limits.request_timeout_seconds),
    };
    let access = MetricsAccess {
        token: config.metrics.token.clone(),
    };
    let own = |address, optional| MetricsListener {
        address,
        router: crate::app::metrics::router(gate.clone(), access.clone()),
        optional,
    };
    let (main_metrics, metrics) = match config.metrics.listen {
        None => (None, Some(own(DEFAULT_METRICS_LISTEN, true))),
        Some(MetricsListen::Address(address)) => (None, Some(own(address, false))),
        Some(MetricsListen::Main) => (Some(access.clone()), None),
        Some(MetricsListen::Off) => (None, None),
    };
    let facilitator = facilitator_access(&config, &gate)?;
    Ok(Verifier {
        router: app(
            gate.clone(),
            routes.clone(),
            &limits,
            main_metrics,
            facilitator,
        ),
        gate,
        listen: config.listen,
        metrics,
        routes,
        ledger_kind: market.kind,
        demo_payer: market.demo_payer,
        connections: ConnectionLimits {
            max_connections: config.limits.max_connections,
            max_connections_per_peer: config.limits.connections_per_peer(),
            header_read_timeout: Duration::from_secs(config.limits.header_read_timeout_seconds),
        },
    })
}

/// The schemes `names` names, or which of them is not one (`setting`).
fn named(setting: &'static str, names: &[String]) -> Result<Vec<Scheme>, StartError> {
    names
        .iter()
        .map(|name| name.parse().map_err(|why| invalid(setting, why)))
        .collect()
}

/// The server mode's operator, when one is configured: never the fee payer (the
/// specification forbids a channel whose voucher signer is its payee).
fn batch_operator(
    p: &PaymentConfig,
    fee_payer: Option<&solana_keypair::Keypair>,
) -> Result<Option<Arc<solana_keypair::Keypair>>, StartError> {
    use solana_signer::Signer;
    let Some(path) = &p.batch_operator_keypair else {
        return Ok(None);
    };
    let operator = x402_protocol::keypair::read_keypair_file(path)
        .map_err(|e| invalid("payment.batch_operator_keypair", e))?;
    if fee_payer.is_some_and(|f| f.pubkey() == operator.pubkey()) {
        return Err(invalid(
            "payment.batch_operator_keypair",
            "the operator must not be the fee payer",
        ));
    }
    Ok(Some(Arc::new(operator)))
}

/// The sponsorship's limits as configured.
fn sponsor_limits(p: &PaymentConfig) -> SponsorLimits {
    SponsorLimits {
        max_in_flight: p.max_sponsored_in_flight,
        max_in_flight_per_payer: p.max_sponsored_in_flight_per_payer,
        expiry_margin: Duration::from_secs(p.sponsor_expiry_margin_seconds),
        spend_ceiling: p.fee_payer_ceiling_lamports,
        max_failures: p.max_sponsored_failures,
        ..SponsorLimits::default()
    }
}

/// The janitor's schedule, `None` when it is off. A receipt is kept open at least for
/// the settlement grace: closing it sooner would refuse a payment presented late.
pub fn janitor_schedule(janitor: &JanitorConfig) -> Result<Option<Janitor>, StartError> {
    let grace = SETTLEMENT_GRACE_SECONDS.unsigned_abs();
    if janitor.retention_seconds < grace {
        return Err(invalid(
            "janitor.retention_seconds",
            format!("at least the settlement grace, {grace} seconds"),
        ));
    }
    Ok((janitor.interval_seconds > 0).then(|| Janitor {
        interval: Duration::from_secs(janitor.interval_seconds),
        retention: Duration::from_secs(janitor.retention_seconds),
    }))
}

/// The schemes the gate settles: as configured, or all of them when there is a fee
/// payer. `exact`, `upto` and `batch-settlement` need a fee payer (stock clients expect
/// the seller to pay the fee; in the channel schemes it is also the channel's payee and
/// rent payer) and a mint that delivers transfers in full (the price is checked on the
/// payee's side).
fn schemes(
    configured: Option<&[Scheme]>,
    sponsored: bool,
    delivers_in_full: bool,
) -> Result<Vec<Scheme>, StartError> {
    let schemes = match configured {
        Some(schemes) => schemes.to_vec(),
        None if sponsored && delivers_in_full => Scheme::ALL.to_vec(),
        None => vec![Scheme::Receipt],
    };
    if schemes.is_empty() {
        return Err(invalid("payment.schemes", "at least one scheme"));
    }
    for scheme in [Scheme::Exact, Scheme::Upto, Scheme::Batch] {
        if schemes.contains(&scheme) && !sponsored {
            return Err(invalid(
                "payment.schemes",
                format!("{scheme} needs payment.fee_payer_keypair"),
            ));
        }
        if schemes.contains(&scheme) && !delivers_in_full {
            return Err(invalid(
                "payment.schemes",
                format!("{scheme} cannot be offered in a mint with a transfer fee or hook"),
            ));
        }
    }
    Ok(schemes)
}

/// The facilitator's keys and policy, when it is on. Its keys come from the environment
/// or a file; on without any key, the verifier does not start.
fn facilitator_access(
    config: &Config,
    gate: &Gate,
) -> Result<Option<FacilitatorAccess>, StartError> {
    let f = &config.facilitator;
    if !f.enabled {
        return Ok(None);
    }
    let mut keys = f.keys.as_ref().map(|k| k.0.clone()).unwrap_or_default();
    if let Some(path) = &f.keys_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StartError::Io(format!("facilitator keys {}: {e}", path.display())))?;
        let list = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let parsed: ApiKeys = list
            .collect::<Vec<_>>()
            .join(",")
            .parse()
            .map_err(|e| invalid("facilitator.keys_file", e))?;
        keys.extend(parsed.0);
    }
    if keys.is_empty() {
        return Err(invalid(
            "facilitator",
            "enabled without API keys (X402_FACILITATOR_KEYS or facilitator.keys_file)",
        ));
    }
    let s = gate.settings();
    let min_amount = f
        .min_amount
        .as_deref()
        .unwrap_or(&config.payment.min_payment);
    let policy = SponsorshipPolicy {
        mints: if f.mints.is_empty() {
            vec![s.mint]
        } else {
            f.mints.clone()
        },
        payees: if f.payees.is_empty() {
            vec![s.pay_to]
        } else {
            f.payees.clone()
        },
        max_horizon: Duration::from_secs(f.max_horizon_seconds),
        min_amount: gate
            .parse_price(min_amount)
            .map_err(|e| invalid("facilitator.min_amount", e))?,
        budget_lamports: f.budget_lamports,
        window: Duration::from_secs(f.budget_window_seconds),
    };
    Ok(Some(FacilitatorAccess::new(keys, policy)))
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
    let minimum = config.payment.min_payment.as_str();
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
            let upstream = Upstream {
                url: route.upstream.to_string(),
                timeout: Duration::from_secs(config.limits.upstream_timeout_seconds),
                max_response_bytes: config.limits.response_body_bytes,
            };
            let enabled = &gate.settings().schemes;
            let named = route
                .schemes
                .as_deref()
                .map(|names| named("routes.schemes", names))
                .transpose()?;
            let unmetered: Vec<Scheme> = enabled
                .iter()
                .filter(|s| !s.on_channels())
                .copied()
                .collect();
            let schemes = named.as_deref().unwrap_or(&unmetered);
            if schemes.is_empty() || schemes.iter().any(|s| !enabled.contains(s)) {
                return Err(invalid(
                    "routes.schemes",
                    format!("{}: some of payment.schemes, at least one", route.path),
                ));
            }
            Ok(PaidRoute {
                pattern: route.path.clone(),
                methods: route.methods.clone(),
                payment: payment
                    .schemes(schemes)
                    .description(&route.description)
                    .mime_type(&route.mime_type)
                    .ttl(Duration::from_secs(route.ttl))
                    .charge_header(route.charge_header.clone()),
                service: RouteService::Proxy(Proxy::new(client.clone(), upstream)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_janitor_keeps_receipts_at_least_for_the_settlement_grace() {
        let janitor = |retention_seconds| JanitorConfig {
            interval_seconds: 60,
            retention_seconds,
        };
        assert!(janitor_schedule(&janitor(119)).is_err());
        let kept = janitor_schedule(&janitor(120)).unwrap().unwrap();
        assert_eq!(kept.retention, Duration::from_secs(120));
        let off = JanitorConfig {
            interval_seconds: 0,
            ..JanitorConfig::default()
        };
        assert!(janitor_schedule(&off).unwrap().is_none());
    }

    #[test]
    fn the_configuration_defaults_are_the_library_defaults() {
        let config = Config::default();
        let limits = sponsor_limits(&config.payment);
        let library = SponsorLimits::default();
        assert_eq!(
            format!("{limits:?}"),
            format!("{library:?}"),
            "config's [payment] sponsorship defaults"
        );
        let janitor = janitor_schedule(&config.janitor).unwrap().unwrap();
        assert_eq!(format!("{janitor:?}"), format!("{:?}", Janitor::default()));
        let route: crate::config::RouteConfig =
            toml::from_str("path = \"/x\"\nupstream = \"http://127.0.0.1:1\"").unwrap();
        assert_eq!(route.ttl, crate::model::DEFAULT_TTL.as_secs());
        assert_eq!(route.mime_type, crate::model::DEFAULT_MIME_TYPE);
    }

    #[test]
    fn sponsored_schemes_are_offered_only_with_a_fee_payer_and_a_mint_that_delivers_in_full() {
        use Scheme::{Batch, Exact, Receipt, Upto};
        assert_eq!(
            schemes(None, true, true).unwrap(),
            [Receipt, Exact, Upto, Batch]
        );
        assert_eq!(schemes(None, false, true).unwrap(), [Receipt]);
        assert_eq!(schemes(None, true, false).unwrap(), [Receipt]);
        assert_eq!(schemes(Some(&[Exact]), true, true).unwrap(), [Exact]);
        for (configured, sponsored, full) in [
            (&[Exact][..], false, true),
            (&[Upto][..], false, true),
            (&[Receipt, Exact][..], true, false),
            (&[Upto][..], true, false),
            (&[Batch][..], false, true),
            (&[Batch][..], true, false),
            (&[][..], true, true),
        ] {
            let refused = schemes(Some(configured), sponsored, full).unwrap_err();
            assert!(refused.to_string().contains("payment.schemes"), "{refused}");
        }
    }

    /// On the embedded ledger: built with the binary's feature (as `cargo test
    /// --workspace` builds the library).
    #[cfg(feature = "embedded-ledger")]
    #[tokio::test]
    async fn a_route_offers_its_own_schemes_among_the_gates_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let route = |schemes: &str| {
            format!(
                r#"
                state_dir = "{}"
                [payment]
                schemes = ["receipt"]
                [[routes]]
                path = "/api/*"
                upstream = "http://127.0.0.1:9"
                {schemes}
                "#,
                dir.path().display()
            )
        };
        let config: Config = toml::from_str(&route("")).unwrap();
        let verifier = build(config).await.unwrap();
        assert_eq!(verifier.gate.settings().schemes, [Scheme::Receipt]);
        assert_eq!(
            verifier.routes[0].payment.price().schemes,
            [Scheme::Receipt]
        );

        let config: Config = toml::from_str(&route(r#"schemes = ["exact"]"#)).unwrap();
        let refused = build(config).await.err().expect("exact is not the gate's");
        assert!(refused.to_string().contains("routes.schemes"), "{refused}");
    }

    /// A payer's proof names the host: on a real ledger it must be the configured one,
    /// never the Host header a caller sends.
    #[tokio::test]
    async fn a_json_rpc_ledger_needs_a_public_url() {
        let dir = tempfile::tempdir().unwrap();
        let config: Config = toml::from_str(&format!(
            r#"
            state_dir = "{}"
            [payment]
            rpc_url = "http://127.0.0.1:9"
            "#,
            dir.path().display()
        ))
        .unwrap();
        let refused = build(config).await.err().expect("no public_url");
        assert!(refused.to_string().contains("public_url"), "{refused}");
    }
}
