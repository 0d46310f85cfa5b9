//! The `x402` command's own promises about its arguments: help, usage errors (exit 2).
//! (Its payments are tested against a real verifier in tests/suite/client, which runs
//! this same binary: this test target is also why `cargo test` builds it.)

use std::process::Command;

fn x402(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_x402"))
        .args(args)
        .env_remove("X402_RPC_URL")
        .output()
        .unwrap()
}

#[test]
fn help_lists_every_command() {
    let help = String::from_utf8(x402(&["--help"]).stdout).unwrap();
    for command in [
        "fetch",
        "quote",
        "receipt",
        "receipts",
        "channels",
        "close-expired",
    ] {
        assert!(help.contains(command), "{command} in {help}");
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(x402(&["fetch"]).status.code(), Some(2), "no URL");
    assert_eq!(
        x402(&["receipt", "REF"]).status.code(),
        Some(2),
        "neither --verifier nor --rpc-url"
    );
    assert_eq!(
        x402(&[
            "receipts",
            "--payee",
            "not-a-key",
            "--rpc-url",
            "http://127.0.0.1:9"
        ])
        .status
        .code(),
        Some(2)
    );
    let bad_method = x402(&[
        "fetch",
        "http://127.0.0.1:9/",
        "-X",
        "NOT A METHOD",
        "--keypair",
        "/nonexistent",
    ]);
    assert_eq!(bad_method.status.code(), Some(2));
}

#[test]
fn help_says_what_fetch_pays_without_being_told() {
    let help = String::from_utf8(x402(&["--help"]).stdout).unwrap();
    for promise in [
        "at most 1.00",
        "--max-units",
        "--no-limit",
        "--allow-network",
        "--resume",
    ] {
        assert!(help.contains(promise), "{promise} in {help}");
    }
    let fetch = String::from_utf8(x402(&["fetch", "--help"]).stdout).unwrap();
    for flag in [
        "--max-amount",
        "--max-units",
        "--no-limit",
        "--allow-network",
    ] {
        assert!(fetch.contains(flag), "{flag} in {fetch}");
    }
}

#[test]
fn one_per_request_limit_at_most() {
    let conflicting: [&[&str]; 3] = [
        &["--max-amount", "0.05", "--no-limit"],
        &["--max-units", "5", "--no-limit"],
        &["--max-amount", "0.05", "--max-units", "5"],
    ];
    for limits in conflicting {
        let mut args = vec!["fetch", "http://127.0.0.1:9/", "--keypair", "/nonexistent"];
        args.extend(limits);
        assert_eq!(x402(&args).status.code(), Some(2), "{limits:?}");
    }
}
