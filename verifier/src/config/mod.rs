//! Configuration: one TOML file, typed when it is read (keys, URLs, commitment), the
//! defaults in the `Default` impls below and nowhere else, and every setting overridable
//! by an `X402_*` environment variable ([`Config::apply_env`]). It says what the file
//! says and imports nothing of the verifier's domain: the server turns it into schemes,
//! limits and schedules, and checks them ([`crate::server`]). Secrets (the challenge
//! keys, the RPC URL, the metrics token) hide themselves from `Debug`; the fee payer
//! keypair is a path, read at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use secrecy::SecretString;
use serde::Deserialize;
use serde_with::{serde_as, DisplayFromStr};
use url::Url;

mod env;
mod values;

pub use values::{ApiKeys, ChallengeKeys, Commitment, MetricsListen, RpcUrl};

#[serde_as]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    #[serde_as(as = "DisplayFromStr")]
    pub listen: SocketAddr,
    /// The public base URL of the API, used in challenges; the Host header otherwise.
    #[serde_as(as = "Option<DisplayFromStr>")]
    pub public_url: Option<Url>,
    /// Where the verifier keeps its files (grants, the challenge key, the demo payer).
    pub state_dir: PathBuf,
    pub payment: PaymentConfig,
    pub store: StoreConfig,
    pub limits: Limits,
    pub janitor: JanitorConfig,
    pub metrics: MetricsConfig,
    pub facilitator: FacilitatorConfig,
    pub routes: Vec<RouteConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8402)),
            public_url: None,
            state_dir: PathBuf::from(".x402"),
            payment: PaymentConfig::default(),
            store: StoreConfig::default(),
            limits: Limits::default(),
            janitor: JanitorConfig::default(),
            metrics: MetricsConfig::default(),
            facilitator: FacilitatorConfig::default(),
            routes: Vec::new(),
        }
    }
}

#[serde_as]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentConfig {
    /// `solana-localnet` (the embedded ledger, or a local validator with `rpc_url`),
    /// `solana-devnet`, `solana`, or a CAIP-2 id (`solana:<genesis hash>`).
    pub network: String,
    /// The merchant's wallet (x402 `payTo`); a new wallet on the embedded ledger.
    #[serde_as(as = "Option<DisplayFromStr>")]
    pub pay_to: Option<Pubkey>,
    /// The mint paid in; the embedded ledger's own mint by default.
    #[serde_as(as = "Option<DisplayFromStr>")]
    pub asset: Option<Pubkey>,
    /// The token's name for people.
    pub currency: String,
    /// The receipts program; this build's `declare_id!` by default.
    #[serde_as(as = "DisplayFromStr")]
    pub program_id: Pubkey,
    /// A Solana JSON-RPC URL; none: the embedded ledger.
    #[serde_as(as = "Option<DisplayFromStr>")]
    pub rpc_url: Option<RpcUrl>,
    pub commitment: Commitment,
    /// A Solana CLI keypair file: with it the verifier sponsors payments.
    pub fee_payer_keypair: Option<PathBuf>,
    /// The schemes challenges offer: `receipt` and `exact` when there is a fee payer
    /// (stock x402 clients expect the seller to pay the fee), `receipt` otherwise.
    pub schemes: Option<Vec<String>>,
    /// Development only: announce this public network (`solana-devnet`) while the RPC
    /// node is a local validator, as stock x402 sellers do, since stock clients refuse a
    /// local network's id. Logged loudly at start.
    pub announce_network: Option<String>,
    /// Environment only (`X402_CHALLENGE_KEY`): kept out of files that get copied around.
    #[serde(skip)]
    pub challenge_keys: Option<ChallengeKeys>,
    /// The price of routes that name none, and the least any route may charge.
    pub min_payment: String,
    #[serde_as(as = "Option<DisplayFromStr>")]
    pub facilitator_url: Option<Url>,
    /// Highest compute-unit price, in micro-lamports, the fee payer pays.
    pub max_compute_unit_price: u64,
    /// Highest compute-unit limit a sponsored transaction may ask for.
    pub max_compute_unit_limit: u32,
    /// The deadline of each ledger call made for a request, in seconds.
    pub ledger_timeout_seconds: u64,
    /// Sponsored submissions in flight at once, overall and per payer.
    pub max_sponsored_in_flight: usize,
    pub max_sponsored_in_flight_per_payer: usize,
    /// No sponsoring this close to a challenge's expiry, in seconds.
    pub sponsor_expiry_margin_seconds: u64,
    /// The most the fee payer may have at stake (an hour's fees plus the rent in open
    /// receipts), in lamports; past it, sponsorship is refused.
    pub fee_payer_ceiling_lamports: u64,
    /// Failed sponsored payments an hour, from anyone, after which nothing is sponsored
    /// until the hour ends.
    pub max_sponsored_failures: usize,
    /// How often `batch-settlement` vouchers are claimed on chain, in seconds: what is
    /// accepted and not yet claimed is credit the seller extends.
    pub batch_claim_interval_seconds: u64,
    /// How long a `batch-settlement` channel may go without a paid request before the
    /// seller closes it (settled, the rest refunded), in seconds.
    pub batch_idle_close_seconds: u64,
    /// A Solana CLI keypair file: with it `batch-settlement` routes also offer the server
    /// mode, this key signing the vouchers for what each answer cost. Not the fee payer's.
    pub batch_operator_keypair: Option<PathBuf>,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        PaymentConfig {
            network: "solana-localnet".into(),
            pay_to: None,
            asset: None,
            currency: "USDC".into(),
            program_id: x402_receipts::ID,
            rpc_url: None,
            commitment: Commitment::Confirmed,
            fee_payer_keypair: None,
            schemes: None,
            announce_network: None,
            challenge_keys: None,
            min_payment: "0.01".into(),
            facilitator_url: None,
            max_compute_unit_price: 100_000,
            max_compute_unit_limit: 200_000,
            ledger_timeout_seconds: 10,
            max_sponsored_in_flight: 32,
            max_sponsored_in_flight_per_payer: 2,
            sponsor_expiry_margin_seconds: 10,
            fee_payer_ceiling_lamports: 10_000_000_000,
            max_sponsored_failures: 50,
            batch_claim_interval_seconds: 60,
            batch_idle_close_seconds: 86_400,
            batch_operator_keypair: None,
        }
    }
}

impl PaymentConfig {
    pub fn ledger_timeout(&self) -> Duration {
        Duration::from_secs(self.ledger_timeout_seconds)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://path` (default `sqlite://<state_dir>/grants.db`) or a PostgreSQL URL,
    /// which may hold a password: never shown.
    pub url: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub request_body_bytes: usize,
    pub response_body_bytes: u64,
    pub upstream_timeout_seconds: u64,
    pub request_timeout_seconds: u64,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections served at once from one peer (an IPv4 address, an IPv6 /56); 64 when
    /// unset (a handful of addresses must not fill `max_connections`). Behind a reverse
    /// proxy every connection comes from the proxy: set it to `max_connections` there.
    pub max_connections_per_peer: Option<usize>,
    /// How long a client has to send a request's head: from when its connection opens,
    /// and again from when each answer ends (the keep-alive idle time).
    pub header_read_timeout_seconds: u64,
}

/// Connections one peer may hold at once, unless configured.
const DEFAULT_CONNECTIONS_PER_PEER: usize = 64;

impl Limits {
    /// Connections one peer may hold at once.
    pub fn connections_per_peer(&self) -> usize {
        self.max_connections_per_peer
            .unwrap_or(DEFAULT_CONNECTIONS_PER_PEER)
            .clamp(1, self.max_connections.max(1))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_body_bytes: 1024 * 1024,
            response_body_bytes: 16 * 1024 * 1024,
            upstream_timeout_seconds: 30,
            request_timeout_seconds: 60,
            max_connections: 1024,
            max_connections_per_peer: None,
            header_read_timeout_seconds: 10,
        }
    }
}

/// Closing the expired receipts the fee payer funded, to take their rent back.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JanitorConfig {
    /// Seconds between rounds; 0 turns the janitor off.
    pub interval_seconds: u64,
    /// How long after its expiry a receipt is kept open (for audits and late checks).
    pub retention_seconds: u64,
}

impl Default for JanitorConfig {
    fn default() -> Self {
        JanitorConfig {
            interval_seconds: 600,
            retention_seconds: 3600,
        }
    }
}

/// The facilitator API (`/verify`, `/settle`, `/supported`) for other resource servers:
/// off unless enabled, and then only for callers with an API key, within a policy.
#[serde_as]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FacilitatorConfig {
    pub enabled: bool,
    /// A file of API keys, one a line (or `X402_FACILITATOR_KEYS`, comma-separated).
    pub keys_file: Option<PathBuf>,
    /// Environment only (`X402_FACILITATOR_KEYS`).
    #[serde(skip)]
    pub keys: Option<ApiKeys>,
    /// The mints it verifies and settles; the payment's own by default.
    #[serde_as(as = "Vec<DisplayFromStr>")]
    pub mints: Vec<Pubkey>,
    /// The payees; the merchant's own by default.
    #[serde_as(as = "Vec<DisplayFromStr>")]
    pub payees: Vec<Pubkey>,
    /// The latest expiry it sponsors, in seconds from now.
    pub max_horizon_seconds: u64,
    /// The least amount, a decimal in the payment token; `min_payment` by default.
    pub min_amount: Option<String>,
    /// Lamports of fees and rent each key may cost the fee payer per window.
    pub budget_lamports: u64,
    pub budget_window_seconds: u64,
}

impl Default for FacilitatorConfig {
    fn default() -> Self {
        FacilitatorConfig {
            enabled: false,
            keys_file: None,
            keys: None,
            mints: Vec::new(),
            payees: Vec::new(),
            max_horizon_seconds: 900,
            min_amount: None,
            budget_lamports: 50_000_000,
            budget_window_seconds: 3600,
        }
    }
}

/// Where `/metrics` is served, and to whom.
#[serde_as]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// An address of its own, `"main"` (the main listener, public when it is) or `"off"`.
    /// Unset: [`DEFAULT_METRICS_LISTEN`], on loopback only, and never the main listener.
    #[serde_as(as = "Option<DisplayFromStr>")]
    pub listen: Option<MetricsListen>,
    /// Environment only (`X402_METRICS_TOKEN`): scrapers send `Authorization: Bearer`.
    #[serde(skip)]
    pub token: Option<SecretString>,
}

/// Where `/metrics` is served when `[metrics] listen` is unset: a listener of its own on
/// loopback. When another process holds it (a second verifier on the host), the verifier
/// starts without metrics and says so.
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9402);

/// One priced route of the reverse proxy.
#[serde_as]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `/api/generate` exactly, or `/api/*` for everything below `/api/`.
    pub path: String,
    #[serde(default = "default_methods")]
    #[serde_as(as = "Vec<DisplayFromStr>")]
    pub methods: Vec<http::Method>,
    /// A decimal price in the payment token ("0.01"); `min_payment` when absent.
    pub price: Option<String>,
    #[serde_as(as = "DisplayFromStr")]
    pub upstream: Url,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_mime_type")]
    pub mime_type: String,
    /// Seconds a challenge may be paid.
    #[serde(default = "default_ttl")]
    pub ttl: u64,
    /// The schemes this route offers, among `payment.schemes`; all of those by default,
    /// but `upto`, which a route offers only when it names it (its price is a ceiling).
    #[serde(default)]
    pub schemes: Option<Vec<String>>,
    /// On an `upto` route, the upstream's response header that says what the answer
    /// cost, a decimal amount of the token ("0.0042"); taken off before the buyer sees
    /// it. An answer without it costs the price.
    #[serde(default = "default_charge_header")]
    #[serde_as(as = "DisplayFromStr")]
    pub charge_header: http::HeaderName,
}

fn default_charge_header() -> http::HeaderName {
    http::HeaderName::from_static("x402-charge")
}

fn default_methods() -> Vec<http::Method> {
    vec![http::Method::GET]
}

fn default_mime_type() -> String {
    "application/json".into()
}

fn default_ttl() -> u64 {
    300
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    /// The file's own text is not repeated: a line may hold a secret (an RPC URL's key).
    #[error("{path}, line {line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{name} is not valid: {why}")]
    Invalid { name: &'static str, why: String },
}

impl Config {
    /// Reads `path` (TOML), or starts from the defaults when there is none.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: shown.clone(),
            error,
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: shown,
            line: error
                .span()
                .map(|span| text[..span.start].matches('\n').count() + 1)
                .unwrap_or(1),
            message: error.message().to_string(),
        })
    }
}

#[cfg(test)]
mod tests;
