//! The `X402_*` environment overrides: one variable per setting, each parsed as its
//! setting is, through one helper.

use std::fmt;
use std::str::FromStr;

use super::{Config, ConfigError};

/// Names as one variable lists them: `receipt,exact`.
struct NameList(Vec<String>);

impl FromStr for NameList {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(NameList(
            text.split(',')
                .map(|name| name.trim().to_string())
                .collect(),
        ))
    }
}

impl Config {
    /// Applies the `X402_*` overrides that `env` (the process environment, or a map in
    /// tests) holds, each parsed as its setting is.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let env = Env(&env);
        let p = &mut self.payment;
        env.set("X402_LISTEN", |v| self.listen = v)?;
        env.set("X402_PUBLIC_URL", |v| self.public_url = Some(v))?;
        env.set("X402_STATE_DIR", |v| self.state_dir = v)?;
        env.set("X402_NETWORK", |v| p.network = v)?;
        env.set("X402_MERCHANT_WALLET", |v| p.pay_to = Some(v))?;
        env.set("X402_ASSET", |v| p.asset = Some(v))?;
        env.set("X402_CURRENCY", |v| p.currency = v)?;
        env.set("X402_PROGRAM_ID", |v| p.program_id = v)?;
        env.set("X402_RPC_URL", |v| p.rpc_url = Some(v))?;
        env.set("X402_COMMITMENT", |v| p.commitment = v)?;
        env.set("X402_FEE_PAYER_KEYPAIR", |v| p.fee_payer_keypair = Some(v))?;
        env.set("X402_SCHEMES", |v: NameList| p.schemes = Some(v.0))?;
        env.set("X402_ANNOUNCE_NETWORK", |v| p.announce_network = Some(v))?;
        env.set("X402_CHALLENGE_KEY", |v| p.challenge_keys = Some(v))?;
        env.set("X402_MIN_PAYMENT", |v| p.min_payment = v)?;
        env.set("X402_FACILITATOR_URL", |v| p.facilitator_url = Some(v))?;
        env.set("X402_MAX_COMPUTE_UNIT_PRICE", |v| {
            p.max_compute_unit_price = v
        })?;
        env.set("X402_MAX_COMPUTE_UNIT_LIMIT", |v| {
            p.max_compute_unit_limit = v
        })?;
        env.set("X402_LEDGER_TIMEOUT_SECONDS", |v| {
            p.ledger_timeout_seconds = v
        })?;
        env.set("X402_MAX_SPONSORED_IN_FLIGHT", |v| {
            p.max_sponsored_in_flight = v
        })?;
        env.set("X402_MAX_SPONSORED_IN_FLIGHT_PER_PAYER", |v| {
            p.max_sponsored_in_flight_per_payer = v
        })?;
        env.set("X402_SPONSOR_EXPIRY_MARGIN_SECONDS", |v| {
            p.sponsor_expiry_margin_seconds = v
        })?;
        env.set("X402_FEE_PAYER_CEILING_LAMPORTS", |v| {
            p.fee_payer_ceiling_lamports = v
        })?;
        env.set("X402_MAX_SPONSORED_FAILURES", |v| {
            p.max_sponsored_failures = v
        })?;
        env.set("X402_BATCH_CLAIM_INTERVAL_SECONDS", |v| {
            p.batch_claim_interval_seconds = v
        })?;
        env.set("X402_BATCH_IDLE_CLOSE_SECONDS", |v| {
            p.batch_idle_close_seconds = v
        })?;
        env.set("X402_BATCH_OPERATOR_KEYPAIR", |v| {
            p.batch_operator_keypair = Some(v)
        })?;
        env.set("X402_STORE_URL", |v: String| {
            self.store.url = Some(v.into())
        })?;
        let l = &mut self.limits;
        env.set("X402_REQUEST_BODY_BYTES", |v| l.request_body_bytes = v)?;
        env.set("X402_RESPONSE_BODY_BYTES", |v| l.response_body_bytes = v)?;
        env.set("X402_UPSTREAM_TIMEOUT_SECONDS", |v| {
            l.upstream_timeout_seconds = v
        })?;
        env.set("X402_REQUEST_TIMEOUT_SECONDS", |v| {
            l.request_timeout_seconds = v
        })?;
        env.set("X402_MAX_CONNECTIONS", |v| l.max_connections = v)?;
        env.set("X402_MAX_CONNECTIONS_PER_PEER", |v| {
            l.max_connections_per_peer = Some(v)
        })?;
        env.set("X402_HEADER_READ_TIMEOUT_SECONDS", |v| {
            l.header_read_timeout_seconds = v
        })?;
        let j = &mut self.janitor;
        env.set("X402_JANITOR_INTERVAL_SECONDS", |v| j.interval_seconds = v)?;
        env.set("X402_JANITOR_RETENTION_SECONDS", |v| {
            j.retention_seconds = v
        })?;
        env.set("X402_METRICS_LISTEN", |v| self.metrics.listen = Some(v))?;
        env.set("X402_FACILITATOR", |v| self.facilitator.enabled = v)?;
        env.set("X402_FACILITATOR_KEYS", |v| self.facilitator.keys = Some(v))?;
        env.set("X402_METRICS_TOKEN", |v: Token| {
            self.metrics.token = Some(v.0.into())
        })?;
        Ok(())
    }
}

/// A bearer token: an empty one would let every scraper in.
struct Token(String);

impl FromStr for Token {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.len() {
            0..16 => Err("a token of 16 characters or more"),
            _ => Ok(Token(text.to_string())),
        }
    }
}

/// The environment, read one typed variable at a time.
struct Env<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    /// Parses `name`, when set, as the setting's type and hands it to `assign`. The
    /// error names the variable but never repeats its value (it may be a secret).
    fn set<T: FromStr>(&self, name: &'static str, assign: impl FnOnce(T)) -> Result<(), ConfigError>
    where
        T::Err: fmt::Display,
    {
        let Some(text) = (self.0)(name) else {
            return Ok(());
        };
        let value = text
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                why: e.to_string(),
            })?;
        assign(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_short_metrics_token_is_refused() {
        for token in ["", "   ", "short"] {
            let error = Config::default()
                .apply_env(|name| (name == "X402_METRICS_TOKEN").then(|| token.to_string()))
                .unwrap_err();
            assert!(error.to_string().contains("X402_METRICS_TOKEN"), "{error}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let secret_url = "https://rpc.example.com/?api-key=sekrit";
        let mut config = Config::default();
        config
            .apply_env(|name| match name {
                "X402_RPC_URL" => Some(secret_url.into()),
                "X402_CHALLENGE_KEY" => Some("ab".repeat(32)),
                "X402_METRICS_TOKEN" => Some("sekrit-token-0123456789".into()),
                _ => None,
            })
            .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("sekrit"), "{shown}");
        assert!(!shown.contains(&"ab".repeat(32)), "{shown}");
        assert_eq!(config.payment.rpc_url.unwrap().expose(), secret_url);
        let error = Config::default()
            .apply_env(|name| (name == "X402_RPC_URL").then(|| "sekrit:/\u{0}".into()))
            .unwrap_err();
        assert!(!error.to_string().contains("sekrit"), "{error}");
    }
}
