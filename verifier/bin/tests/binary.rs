//! The `x402-verifier` binary as a person runs it: no configuration at all, a paid demo
//! route over the embedded ledger, a clean exit on SIGTERM, a challenge key kept across
//! restarts, `/metrics` off the public listener, and connections that cannot be held
//! for nothing.

use std::path::Path;

use x402_testkit::process::Launch;
use x402_testkit::VerifierProcess;

/// Starts the binary on a free port with `state` as its state directory; returns it, its
/// address and its banner.
fn start(state: &Path) -> (VerifierProcess, String, String) {
    start_with(state, &[])
}

/// [`start`] with more environment; the banner includes its lines up to the demo's.
/// `/metrics` is off unless `env` says where: its default address is one for all tests.
fn start_with(state: &Path, env: &[(&str, &str)]) -> (VerifierProcess, String, String) {
    launch(state, &[&[("X402_METRICS_LISTEN", "off")], env].concat())
}

/// [`start_with`] without turning `/metrics` off; the default log filter, as a person
/// starting it gets it.
fn launch(state: &Path, env: &[(&str, &str)]) -> (VerifierProcess, String, String) {
    let mut verifier = Launch::new(env!("CARGO_BIN_EXE_x402-verifier"))
        .envs(env)
        .env("X402_STATE_DIR", state)
        .start();
    let banner = verifier.log_until("Pay it:");
    let address = verifier.address.clone();
    (verifier, address, banner)
}

fn stop(verifier: VerifierProcess) {
    let status = verifier.stop();
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

#[tokio::test]
async fn metrics_are_on_loopback_by_default_and_not_on_the_public_listener() {
    let state = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    // The default address is fixed: another verifier on this host (another test run)
    // may hold it for a while, and then this one starts without metrics and says so.
    let mut attempts = 0;
    let (verifier, address) = loop {
        let (verifier, address, banner) = launch(state.path(), &[]);
        if banner.contains("metrics on http://127.0.0.1:9402/metrics") {
            break (verifier, address);
        }
        assert!(
            banner.contains("metrics are not served"),
            "it says why there are no metrics: {banner}"
        );
        stop(verifier);
        attempts += 1;
        assert!(attempts < 30, "127.0.0.1:9402 stayed taken");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    let public = http
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404, "not on the public listener");
    let scraped = http
        .get("http://127.0.0.1:9402/metrics")
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

    // Where it used to be, when asked for.
    let (verifier, address, _) = start_with(state.path(), &[("X402_METRICS_LISTEN", "main")]);
    let main = http
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 200);
    stop(verifier);
}

/// The HTTP/2 preface, which a client speaking HTTP/2 without TLS opens with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection from `from` (a loopback address) to `address`, after it sent `bytes`.
async fn connect_from(from: &str, address: &str, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(address.parse().unwrap()).await.unwrap();
    if !bytes.is_empty() {
        stream.write_all(bytes).await.unwrap();
    }
    stream
}

/// Whether the verifier closes `stream` within `within` (it may answer something first).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut rest = Vec::new();
    // A reset counts as closed too.
    tokio::time::timeout(within, stream.read_to_end(&mut rest))
        .await
        .is_ok()
}

#[tokio::test]
async fn connections_that_send_nothing_or_only_an_http2_start_hold_no_slot_for_long() {
    use std::time::{Duration, Instant};
    let state = tempfile::tempdir().unwrap();
    let (verifier, address, _) = start_with(
        state.path(),
        &[
            ("X402_MAX_CONNECTIONS", "4"),
            ("X402_MAX_CONNECTIONS_PER_PEER", "4"),
            ("X402_HEADER_READ_TIMEOUT_SECONDS", "1"),
        ],
    );
    // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
    let settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
    let with_settings = [H2_PREFACE, &settings[..]].concat();
    let openings: [(&str, &[u8]); 3] = [
        ("nothing", b""),
        ("part of the HTTP/2 preface", &H2_PREFACE[..10]),
        ("the HTTP/2 preface and SETTINGS", &with_settings),
    ];
    let url = format!("http://{address}/healthz");
    for (what, opening) in openings {
        // Every slot taken by connections that sent `opening` and then nothing.
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(connect_from("127.0.0.2", &address, opening).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;

        // A new client waits at most about the header timeout for its turn.
        let started = Instant::now();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(8))
            .build()
            .unwrap();
        let served = client.get(&url).send().await;
        assert!(
            served.as_ref().is_ok_and(|r| r.status() == 200),
            "served while 4 connections sent {what}: {served:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(8));
        for stream in &mut held {
            assert!(
                closed_within(stream, Duration::from_secs(5)).await,
                "a connection that sent {what} was closed"
            );
        }
    }
    stop(verifier);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let state = tempfile::tempdir().unwrap();
    let (verifier, address, _) = start_with(
        state.path(),
        &[
            ("X402_MAX_CONNECTIONS", "1"),
            ("X402_HEADER_READ_TIMEOUT_SECONDS", "1"),
        ],
    );
    let mut kept = connect_from("127.0.0.1", &address, b"").await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"ok") {
        let mut buffer = [0u8; 1024];
        let read = kept.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the answer, then the connection kept alive");
        answer.extend_from_slice(&buffer[..read]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    // Answered, kept alive, and then idle: it is closed, and the only slot is free.
    assert!(closed_within(&mut kept, Duration::from_secs(5)).await);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let served = client.get(format!("http://{address}/healthz")).send().await;
    assert_eq!(served.unwrap().status(), 200);
    stop(verifier);
}

#[tokio::test]
async fn one_peer_cannot_hold_more_than_its_share_of_connections() {
    use std::time::Duration;
    let state = tempfile::tempdir().unwrap();
    let (verifier, address, _) = start_with(
        state.path(),
        &[
            ("X402_MAX_CONNECTIONS", "8"),
            ("X402_MAX_CONNECTIONS_PER_PEER", "2"),
            // Long enough not to close anything during the test.
            ("X402_HEADER_READ_TIMEOUT_SECONDS", "60"),
        ],
    );
    let mut first = connect_from("127.0.0.2", &address, b"").await;
    let mut second = connect_from("127.0.0.2", &address, b"").await;
    let mut third = connect_from("127.0.0.2", &address, b"").await;
    assert!(
        closed_within(&mut third, Duration::from_secs(5)).await,
        "past its share, a peer's connection is closed at once"
    );
    for held in [&mut first, &mut second] {
        assert!(
            !closed_within(held, Duration::from_millis(300)).await,
            "its share is served"
        );
    }

    // Another peer is served; the first is refused until one of its own closes.
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(Some(ip.parse().unwrap()))
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let url = format!("http://{address}/healthz");
    let other = from("127.0.0.1").get(&url).send().await.unwrap();
    assert_eq!(other.status(), 200);
    assert!(from("127.0.0.2").get(&url).send().await.is_err());
    drop(first);
    let mut served = None;
    for _ in 0..50 {
        match from("127.0.0.2").get(&url).send().await {
            Ok(response) => {
                served = Some(response.status());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(served, Some(http::StatusCode::OK), "its slot came back");
    drop(second);
    stop(verifier);
}
