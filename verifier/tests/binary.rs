//! The `x402-verifier` binary as a person runs it: no configuration at all, a paid demo
//! route over the embedded ledger, a clean exit on SIGTERM, and a challenge key kept
//! across restarts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts the binary on a free port with `state` as its state directory; returns it, its
/// address and its banner.
fn start(state: &Path) -> (Child, String, String) {
    start_with(state, &[])
}

/// [`start`] with more environment; the banner includes its lines up to the demo's.
fn start_with(state: &Path, env: &[(&str, &str)]) -> (Child, String, String) {
    let mut verifier = Command::new(env!("CARGO_BIN_EXE_x402-verifier"))
        .envs(env.iter().copied())
        .env("X402_LISTEN", "127.0.0.1:0")
        .env("X402_STATE_DIR", state)
        // The default log filter, as a person starting it gets it.
        .env_remove("RUST_LOG")
        .env_remove("X402_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(verifier.stderr.take().unwrap()).lines();
    let mut banner = Vec::new();
    let address = loop {
        let line = lines.next().expect("the verifier prints a banner").unwrap();
        banner.push(line.clone());
        if let Some(rest) = line.strip_prefix("x402 verifier on http://") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    while !banner.last().unwrap().starts_with("Pay it:") {
        banner.push(lines.next().unwrap().unwrap());
    }
    std::thread::spawn(move || lines.for_each(drop));
    (verifier, address, banner.join("\n"))
}

fn stop(mut verifier: Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &verifier.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = verifier.wait().unwrap();
    assert!(status.success(), "a clean exit on SIGTERM: {status}");
}

#[tokio::test]
async fn with_no_configuration_it_serves_a_paid_demo_route_and_stops_on_sigterm() {
    let state = tempfile::tempdir().unwrap();
    let (verifier, address, banner) = start(state.path());
    assert!(
        banner.starts_with("x402 verifier on http://"),
        "the banner comes first, not the embedded bank's warnings: {banner}"
    );
    assert!(
        banner.contains(&format!("GET http://{address}/demo costs 0.01 USDC")),
        "{banner}"
    );
    assert!(
        banner.contains("x402-client -- fetch"),
        "it says how to pay: {banner}"
    );

    let response = reqwest::get(format!("http://{address}/demo"))
        .await
        .unwrap();
    assert_eq!(response.status(), 402);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["accepts"][0]["scheme"], "receipt");
    assert_eq!(body["accepts"][0]["network"], "solana-localnet");
    assert!(
        body["accepts"][0]["extra"]["feePayer"].is_string(),
        "the demo sponsors payments"
    );
    let facilitator = reqwest::Client::new()
        .post(format!("http://{address}/settle"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        facilitator.status(),
        404,
        "the facilitator is off by default"
    );
    let payer = std::fs::read_to_string(state.path().join("demo-payer.json")).unwrap();
    let payer: Vec<u8> = serde_json::from_str(&payer).unwrap();
    assert_eq!(payer.len(), 64, "a Solana CLI keypair file");
    stop(verifier);

    // The challenge key is kept in the state directory, readable by its owner only, and
    // used again after a restart. (The embedded ledger itself starts afresh, with a new
    // mint; with a persistent ledger, references in flight survive the restart.)
    let key_file = state.path().join("challenge-key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.trim().len(), 64, "32 bytes, hex");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (verifier, _, _) = start(state.path());
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    stop(verifier);
}

#[tokio::test]
async fn metrics_can_have_their_own_listener_behind_a_bearer_token() {
    let state = tempfile::tempdir().unwrap();
    let (verifier, address, banner) = start_with(
        state.path(),
        &[
            ("X402_METRICS_LISTEN", "127.0.0.1:0"),
            ("X402_METRICS_TOKEN", "scrape-me-0123456789"),
        ],
    );
    let metrics = banner
        .lines()
        .find_map(|line| line.trim().strip_prefix("metrics on "))
        .unwrap_or_else(|| panic!("the banner names the metrics listener: {banner}"))
        .to_string();
    let http = reqwest::Client::new();
    let main = http
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404, "not on the public listener");
    let anonymous = http.get(&metrics).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let scraped = http
        .get(&metrics)
        .bearer_auth("scrape-me-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped
        .text()
        .await
        .unwrap()
        .contains("x402_challenges_total"));
    stop(verifier);
}

#[tokio::test]
async fn a_slow_client_holds_no_connection_past_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let state = tempfile::tempdir().unwrap();
    let (verifier, address, _) = start_with(
        state.path(),
        &[
            ("X402_MAX_CONNECTIONS", "1"),
            ("X402_HEADER_READ_TIMEOUT_SECONDS", "1"),
        ],
    );
    // A client that sends its request head a byte at a time, and stops.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // It holds the only connection: another client waits.
    let quick = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(500))
        .build()
        .unwrap();
    let url = format!("http://{address}/healthz");
    assert!(
        quick.get(&url).send().await.is_err(),
        "the one slot is taken"
    );

    // Past the header timeout its connection is closed, and the slot is free again.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        slow.read_to_end(&mut rest),
    )
    .await;
    assert!(closed.is_ok(), "the slow connection was closed");
    let patient = reqwest::Client::new();
    assert_eq!(patient.get(&url).send().await.unwrap().status(), 200);
    stop(verifier);
}
