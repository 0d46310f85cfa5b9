//! The `x402-verifier` binary as a person runs it: no configuration at all, a paid demo
//! route over the embedded ledger, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn with_no_configuration_it_serves_a_paid_demo_route_and_stops_on_sigterm() {
    let state = tempfile::tempdir().unwrap();
    let mut verifier = Command::new(env!("CARGO_BIN_EXE_x402-verifier"))
        .env("X402_LISTEN", "127.0.0.1:0")
        .env("X402_STATE_DIR", state.path())
        .env("RUST_LOG", "warn")
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
    for _ in 0..3 {
        banner.push(lines.next().unwrap().unwrap());
    }
    let banner = banner.join("\n");
    assert!(
        banner.contains(&format!("GET http://{address}/demo costs 0.01 USDC")),
        "{banner}"
    );
    assert!(
        banner.contains("--example pay"),
        "it says how to pay: {banner}"
    );
    std::thread::spawn(move || lines.for_each(drop));

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
    let payer: Vec<u8> = serde_json::from_str(
        &std::fs::read_to_string(state.path().join("demo-payer.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(payer.len(), 64, "a Solana CLI keypair file");

    let killed = Command::new("kill")
        .args(["-TERM", &verifier.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = verifier.wait().unwrap();
    assert!(status.success(), "a clean exit on SIGTERM: {status}");
}
