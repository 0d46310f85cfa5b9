//! Reading configuration files.

use std::collections::HashMap;

use super::*;

#[test]
fn reads_a_file_with_routes_and_applies_environment_overrides() {
    let wallet = Pubkey::new_unique();
    let mut config: Config = toml::from_str(&format!(
        r#"
        listen = "127.0.0.1:9000"
        [payment]
        network = "solana-localnet"
        pay_to = "{wallet}"
        commitment = "finalized"
        [[routes]]
        path = "/api/*"
        methods = ["GET", "POST"]
        price = "0.05"
        upstream = "http://127.0.0.1:3000"
        description = "Generation"
        "#
    ))
    .unwrap();
    assert_eq!(config.payment.pay_to, Some(wallet));
    assert_eq!(config.payment.commitment, Commitment::Finalized);
    let from_env = Pubkey::new_unique().to_string();
    let env: HashMap<&str, &str> = [
        ("X402_MERCHANT_WALLET", from_env.as_str()),
        ("X402_MIN_PAYMENT", "0.02"),
        ("X402_LISTEN", "0.0.0.0:1"),
        ("X402_UPSTREAM_TIMEOUT_SECONDS", "7"),
        ("X402_LEDGER_TIMEOUT_SECONDS", "3"),
        ("X402_MAX_COMPUTE_UNIT_LIMIT", "150000"),
    ]
    .into();
    config
        .apply_env(|name| env.get(name).map(|v| v.to_string()))
        .unwrap();
    assert_eq!(config.payment.pay_to.unwrap().to_string(), from_env);
    assert_eq!(config.payment.min_payment, "0.02");
    assert_eq!(config.payment.network, "solana-localnet");
    assert_eq!(config.listen, "0.0.0.0:1".parse().unwrap());
    assert_eq!(config.limits.upstream_timeout_seconds, 7);
    assert_eq!(config.payment.ledger_timeout(), Duration::from_secs(3));
    assert_eq!(config.payment.max_compute_unit_limit, 150_000);
    assert_eq!(
        config.routes[0].methods,
        [http::Method::GET, http::Method::POST]
    );
    assert_eq!(config.routes[0].price.as_deref(), Some("0.05"));
    assert_eq!(config.routes[0].ttl, 300, "the default in one place");
}

#[test]
fn a_bad_file_is_named_by_line_without_repeating_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verifier.toml");
    std::fs::write(
        &path,
        "[payment]\nrpc_url = \"wss://rpc.example.com/?api-key=sekrit\"\n",
    )
    .unwrap();
    let error = Config::load(Some(&path)).unwrap_err().to_string();
    assert!(error.contains("line 2"), "{error}");
    assert!(!error.contains("sekrit"), "{error}");
}

#[test]
fn unknown_settings_and_bad_values_are_errors() {
    assert!(toml::from_str::<Config>("[payment]\npay_too = \"typo\"").is_err());
    // Decimals come from the mint alone: a setting could contradict it.
    assert!(toml::from_str::<Config>("[payment]\ndecimals = 18").is_err());
    assert!(toml::from_str::<Config>("[payment]\npay_to = \"not a key\"").is_err());
    assert!(toml::from_str::<Config>("[payment]\ncommitment = \"processed\"").is_err());
    let mut config = Config::default();
    let error = config
        .apply_env(|name| (name == "X402_LISTEN").then(|| "nowhere".to_string()))
        .unwrap_err();
    assert!(error.to_string().contains("X402_LISTEN"));
}

#[test]
fn metrics_are_off_the_main_listener_unless_it_is_asked_for() {
    let config = Config::default();
    assert_eq!(
        config.metrics.listen, None,
        "the default: its own loopback listener"
    );
    assert!(DEFAULT_METRICS_LISTEN.ip().is_loopback());
    for (text, listen) in [
        ("main", MetricsListen::Main),
        ("off", MetricsListen::Off),
        (
            "127.0.0.1:9500",
            MetricsListen::Address("127.0.0.1:9500".parse().unwrap()),
        ),
    ] {
        let config: Config = toml::from_str(&format!("[metrics]\nlisten = \"{text}\"")).unwrap();
        assert_eq!(config.metrics.listen, Some(listen));
        let mut config = Config::default();
        config
            .apply_env(|name| (name == "X402_METRICS_LISTEN").then(|| text.to_string()))
            .unwrap();
        assert_eq!(config.metrics.listen, Some(listen));
    }
    assert!(toml::from_str::<Config>("[metrics]\nlisten = \"public\"").is_err());
}

#[test]
fn one_peer_gets_64_connections_unless_told() {
    let mut limits = Limits::default();
    assert_eq!(limits.connections_per_peer(), 64);
    limits.max_connections = 2;
    assert_eq!(
        limits.connections_per_peer(),
        2,
        "no more than max_connections"
    );
    limits.max_connections_per_peer = Some(0);
    assert_eq!(limits.connections_per_peer(), 1, "at least one");
    let mut config = Config::default();
    config
        .apply_env(|name| (name == "X402_MAX_CONNECTIONS_PER_PEER").then(|| "2048".into()))
        .unwrap();
    assert_eq!(
        config.limits.connections_per_peer(),
        1024,
        "no more than max_connections"
    );
}
