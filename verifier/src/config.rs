//! Configuration: one TOML file, every setting overridable by an `X402_*` environment
//! variable. Secrets (the challenge key, the fee payer keypair) come from files or the
//! environment and are never logged.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to listen; `127.0.0.1:8402` by default.
    pub listen: Option<SocketAddr>,
    /// The public base URL of the API, used in challenges; the Host header otherwise.
    pub public_url: Option<String>,
    /// Where the verifier keeps its files (grants, the demo payer); `.x402` by default.
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub payment: PaymentConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub janitor: Janitor,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentConfig {
    /// `solana-localnet` (the embedded ledger, the default), `solana-devnet`, `solana`.
    pub network: Option<String>,
    /// The merchant's wallet (x402 `payTo`).
    pub pay_to: Option<String>,
    /// The mint paid in; the local ledger's own mint by default.
    pub asset: Option<String>,
    pub decimals: Option<u8>,
    pub currency: Option<String>,
    /// The receipts program; this build's `declare_id!` by default.
    pub program_id: Option<String>,
    pub rpc_url: Option<String>,
    pub commitment: Option<String>,
    /// A Solana CLI keypair file: with it the verifier sponsors payments.
    pub fee_payer_keypair: Option<PathBuf>,
    /// Challenge keys, hex, comma-separated, newest first (environment only:
    /// `X402_CHALLENGE_KEY`). A random key per start when absent.
    #[serde(skip)]
    pub challenge_keys: Option<String>,
    /// The price of routes that name none, and the least any route may charge.
    pub min_payment: Option<String>,
    pub facilitator_url: Option<String>,
    /// Highest compute-unit price, in micro-lamports, the fee payer pays.
    pub max_compute_unit_price: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path` (default `sqlite://<state_dir>/grants.db`) or a PostgreSQL URL.
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub request_body_bytes: usize,
    pub response_body_bytes: u64,
    pub upstream_timeout_seconds: u64,
    pub request_timeout_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_body_bytes: 1024 * 1024,
            response_body_bytes: 16 * 1024 * 1024,
            upstream_timeout_seconds: 30,
            request_timeout_seconds: 60,
        }
    }
}

/// Closing the expired receipts the fee payer funded, to take their rent back.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Janitor {
    /// Seconds between rounds; 0 turns the janitor off.
    pub interval_seconds: u64,
    /// How long after its expiry a receipt is kept open (for audits and late checks).
    pub retention_seconds: u64,
}

impl Default for Janitor {
    fn default() -> Self {
        Janitor {
            interval_seconds: 600,
            retention_seconds: 3600,
        }
    }
}

/// One priced route of the reverse proxy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `/api/generate` exactly, or `/api/*` for everything below `/api/`.
    pub path: String,
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// A decimal price in the payment token ("0.01"); `min_payment` when absent.
    pub price: Option<String>,
    pub upstream: String,
    #[serde(default)]
    pub description: String,
    pub mime_type: Option<String>,
    /// Seconds a challenge may be paid; 300 by default.
    pub ttl: Option<u64>,
}

fn default_methods() -> Vec<String> {
    vec!["GET".into()]
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {error}")]
    Parse {
        path: String,
        error: toml::de::Error,
    },
    #[error("{name} is not valid: {why}")]
    Invalid { name: &'static str, why: String },
}

impl Config {
    /// Reads `path` (TOML), or starts from defaults when there is none.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: shown.clone(),
            error,
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::Parse { path: shown, error })
    }

    /// Applies the `X402_*` overrides that `env` (the process environment, or a map in
    /// tests) holds.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let invalid = |name, why: String| ConfigError::Invalid { name, why };
        if let Some(listen) = env("X402_LISTEN") {
            self.listen = Some(
                listen
                    .parse()
                    .map_err(|e| invalid("X402_LISTEN", format!("{e}")))?,
            );
        }
        if let Some(value) = env("X402_DECIMALS") {
            self.payment.decimals = Some(
                value
                    .parse()
                    .map_err(|e| invalid("X402_DECIMALS", format!("{e}")))?,
            );
        }
        if let Some(value) = env("X402_MAX_COMPUTE_UNIT_PRICE") {
            self.payment.max_compute_unit_price = Some(
                value
                    .parse()
                    .map_err(|e| invalid("X402_MAX_COMPUTE_UNIT_PRICE", format!("{e}")))?,
            );
        }
        let limits: [(&'static str, &mut u64); 5] = [
            (
                "X402_JANITOR_INTERVAL_SECONDS",
                &mut self.janitor.interval_seconds,
            ),
            (
                "X402_JANITOR_RETENTION_SECONDS",
                &mut self.janitor.retention_seconds,
            ),
            (
                "X402_RESPONSE_BODY_BYTES",
                &mut self.limits.response_body_bytes,
            ),
            (
                "X402_UPSTREAM_TIMEOUT_SECONDS",
                &mut self.limits.upstream_timeout_seconds,
            ),
            (
                "X402_REQUEST_TIMEOUT_SECONDS",
                &mut self.limits.request_timeout_seconds,
            ),
        ];
        for (name, slot) in limits {
            if let Some(value) = env(name) {
                *slot = value.parse().map_err(|e| invalid(name, format!("{e}")))?;
            }
        }
        if let Some(value) = env("X402_REQUEST_BODY_BYTES") {
            self.limits.request_body_bytes = value
                .parse()
                .map_err(|e| invalid("X402_REQUEST_BODY_BYTES", format!("{e}")))?;
        }
        let p = &mut self.payment;
        let strings: [(&str, &mut Option<String>); 12] = [
            ("X402_PUBLIC_URL", &mut self.public_url),
            ("X402_NETWORK", &mut p.network),
            ("X402_MERCHANT_WALLET", &mut p.pay_to),
            ("X402_ASSET", &mut p.asset),
            ("X402_CURRENCY", &mut p.currency),
            ("X402_PROGRAM_ID", &mut p.program_id),
            ("X402_RPC_URL", &mut p.rpc_url),
            ("X402_COMMITMENT", &mut p.commitment),
            ("X402_CHALLENGE_KEY", &mut p.challenge_keys),
            ("X402_MIN_PAYMENT", &mut p.min_payment),
            ("X402_FACILITATOR_URL", &mut p.facilitator_url),
            ("X402_STORE_URL", &mut self.store.url),
        ];
        for (name, slot) in strings {
            if let Some(value) = env(name) {
                *slot = Some(value);
            }
        }
        if let Some(path) = env("X402_FEE_PAYER_KEYPAIR") {
            self.payment.fee_payer_keypair = Some(path.into());
        }
        if let Some(dir) = env("X402_STATE_DIR") {
            self.state_dir = Some(dir.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn reads_a_file_with_routes_and_applies_environment_overrides() {
        let mut config: Config = toml::from_str(
            r#"
            listen = "127.0.0.1:9000"
            [payment]
            network = "solana-localnet"
            pay_to = "from-file"
            [[routes]]
            path = "/api/*"
            methods = ["GET", "POST"]
            price = "0.05"
            upstream = "http://127.0.0.1:3000"
            description = "Generation"
            "#,
        )
        .unwrap();
        let env: HashMap<&str, &str> = [
            ("X402_MERCHANT_WALLET", "from-env"),
            ("X402_MIN_PAYMENT", "0.02"),
            ("X402_LISTEN", "0.0.0.0:1"),
            ("X402_UPSTREAM_TIMEOUT_SECONDS", "7"),
        ]
        .into();
        config
            .apply_env(|name| env.get(name).map(|v| v.to_string()))
            .unwrap();
        assert_eq!(config.payment.pay_to.as_deref(), Some("from-env"));
        assert_eq!(config.payment.min_payment.as_deref(), Some("0.02"));
        assert_eq!(config.payment.network.as_deref(), Some("solana-localnet"));
        assert_eq!(config.listen, Some("0.0.0.0:1".parse().unwrap()));
        assert_eq!(config.limits.upstream_timeout_seconds, 7);
        assert_eq!(config.routes[0].methods, ["GET", "POST"]);
        assert_eq!(config.routes[0].price.as_deref(), Some("0.05"));
    }

    #[test]
    fn unknown_settings_and_bad_values_are_errors() {
        assert!(toml::from_str::<Config>("[payment]\npay_too = \"typo\"").is_err());
        let mut config = Config::default();
        let error = config
            .apply_env(|name| (name == "X402_LISTEN").then(|| "nowhere".to_string()))
            .unwrap_err();
        assert!(error.to_string().contains("X402_LISTEN"));
    }
}
