//! Setting values that check themselves when read: the commitment, an RPC URL (hidden
//! from `Debug`), challenge keys, an API key list, where `/metrics` is served.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;
use x402_protocol::ChallengeKey;

/// The commitment at which receipts are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Commitment {
    Confirmed,
    Finalized,
}

impl FromStr for Commitment {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "confirmed" => Ok(Commitment::Confirmed),
            "finalized" => Ok(Commitment::Finalized),
            other => Err(format!("{other}: confirmed or finalized")),
        }
    }
}

/// A JSON-RPC URL. Providers put API keys in them, so it never shows in `Debug`.
#[derive(Clone)]
pub struct RpcUrl(Url);

impl RpcUrl {
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl FromStr for RpcUrl {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // The parser's error would quote the URL.
        let url = Url::parse(text).map_err(|_| "not a URL (not shown: it may hold a key)")?;
        match url.scheme() {
            "http" | "https" => Ok(RpcUrl(url)),
            _ => Err("not an http(s) URL"),
        }
    }
}

impl fmt::Debug for RpcUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RpcUrl(<hidden>)")
    }
}

/// Challenge keys, hex, comma-separated, newest first: the first signs, all verify.
#[derive(Clone, Debug)]
pub struct ChallengeKeys(pub Vec<ChallengeKey>);

impl FromStr for ChallengeKeys {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(|key| {
                let bytes = hex::decode(key.trim()).map_err(|_| "not hex".to_string())?;
                ChallengeKey::new(bytes).map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()
            .map(ChallengeKeys)
    }
}

/// API keys, comma-separated, each of 16 characters or more.
pub struct ApiKeys(pub Vec<SecretString>);

impl FromStr for ApiKeys {
    type Err = &'static str;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let keys: Vec<&str> = list.split(',').map(str::trim).collect();
        if keys.iter().any(|key| key.len() < 16) {
            return Err("keys of 16 characters or more, comma-separated");
        }
        Ok(ApiKeys(
            keys.into_iter().map(|k| k.to_string().into()).collect(),
        ))
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} hidden)", self.0.len())
    }
}

/// Where `/metrics` is served: a listener of its own, the main listener, or nowhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsListen {
    /// `"127.0.0.1:9402"`: its own listener, at an address operators alone can reach.
    Address(SocketAddr),
    /// `"main"`: beside the API, to whoever reaches the main listener.
    Main,
    /// `"off"`: not served.
    Off,
}

impl FromStr for MetricsListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "main" => Ok(MetricsListen::Main),
            "off" => Ok(MetricsListen::Off),
            address => address
                .parse()
                .map(MetricsListen::Address)
                .map_err(|_| format!("{address}: an address (host:port), main or off")),
        }
    }
}

impl fmt::Display for MetricsListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsListen::Address(address) => address.fmt(f),
            MetricsListen::Main => f.write_str("main"),
            MetricsListen::Off => f.write_str("off"),
        }
    }
}
