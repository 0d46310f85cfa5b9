//! `x402-test-validator`: a Solana test validator on 127.0.0.1 for x402's tests against
//! real JSON-RPC. It prints `READY <rpc url>` once it answers, and stops on SIGTERM or
//! when its standard input closes.
//!
//! ```text
//! x402-test-validator --rpc-port 18899 --port-range 18900-18950 --ledger DIR
//!     [--payer FILE]                 write the funded mint keypair there (Solana CLI format)
//!     [--account ADDRESS=FILE]...    {"owner": base58, "lamports": n, "data": base64}
//!     [--program ID=PATH.so]         the receipts program, built for SBF, when there is one
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;

use base64::Engine as _;
use solana_account::{Account, AccountSharedData};
use solana_pubkey::Pubkey;
use solana_test_validator::{TestValidatorGenesis, UpgradeableProgramInfo};
use tokio::io::AsyncReadExt;

fn fail(message: String) -> ! {
    eprintln!("x402-test-validator: {message}");
    std::process::exit(2)
}

fn read_account(path: &str) -> AccountSharedData {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| fail(format!("{path}: {e}")));
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| fail(format!("{path}: {e}")));
    let field = |name: &str| {
        json[name]
            .as_str()
            .unwrap_or_else(|| fail(format!("{path}: no {name}")))
            .to_string()
    };
    let data = base64::engine::general_purpose::STANDARD
        .decode(field("data"))
        .unwrap_or_else(|e| fail(format!("{path}: data: {e}")));
    AccountSharedData::from(Account {
        lamports: json["lamports"]
            .as_u64()
            .unwrap_or_else(|| fail(format!("{path}: no lamports"))),
        data,
        owner: Pubkey::from_str(&field("owner"))
            .unwrap_or_else(|e| fail(format!("{path}: owner: {e}"))),
        executable: false,
        rent_epoch: 0,
    })
}

fn split<'a>(value: &'a str, flag: &str) -> (&'a str, &'a str) {
    value
        .split_once('=')
        .unwrap_or_else(|| fail(format!("{flag} takes KEY=VALUE")))
}

/// Waits until SPL Token runs: just after start, a transaction calling it may still be
/// refused with "Unsupported program id" (the validator waits for our program, not for
/// the ones it loads itself). An empty instruction fails inside the program once it runs.
async fn wait_for_the_token_program(
    validator: &solana_test_validator::TestValidator,
    payer: &solana_keypair::Keypair,
) {
    use solana_signer::Signer;
    let rpc = validator.get_async_rpc_client();
    for _ in 0..100 {
        let Ok(blockhash) = rpc.get_latest_blockhash().await else {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let probe = solana_transaction::Transaction::new_signed_with_payer(
            &[solana_instruction::Instruction::new_with_bytes(
                Pubkey::from_str_const("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"),
                &[],
                vec![],
            )],
            Some(&payer.pubkey()),
            &[payer],
            blockhash,
        );
        match rpc.simulate_transaction(&probe).await {
            Ok(answer) if !format!("{:?}", answer.value.err).contains("UnsupportedProgramId") => {
                return
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    fail("SPL Token never became usable".into())
}

#[tokio::main]
async fn main() {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut genesis = TestValidatorGenesis::default();
    // Transaction history, as RPC providers serve it: an `exact` payment is settled by
    // reading its transaction (status and token balances) back.
    genesis.rpc_config(solana_rpc::rpc::JsonRpcConfig {
        enable_rpc_transaction_history: true,
        ..solana_rpc::rpc::JsonRpcConfig::default_for_test()
    });
    genesis
        .bind_ip_addr(loopback)
        .gossip_host(loopback)
        .faucet_addr(None);
    let mut payer_file: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| fail(format!("{flag} needs a value")));
        match flag.as_str() {
            "--rpc-port" => {
                genesis.rpc_port(
                    value
                        .parse()
                        .unwrap_or_else(|e| fail(format!("--rpc-port: {e}"))),
                );
            }
            "--port-range" => {
                let (low, high) = value
                    .split_once('-')
                    .unwrap_or_else(|| fail("--port-range takes LOW-HIGH".into()));
                let port = |p: &str| {
                    p.parse()
                        .unwrap_or_else(|e| fail(format!("--port-range: {e}")))
                };
                genesis
                    .port_range((port(low), port(high)))
                    .gossip_port(port(low));
            }
            "--ledger" => {
                genesis.ledger_path(value);
            }
            "--payer" => payer_file = Some(value.into()),
            "--account" => {
                let (address, path) = split(&value, "--account");
                let address =
                    Pubkey::from_str(address).unwrap_or_else(|e| fail(format!("--account: {e}")));
                genesis.add_account(address, read_account(path));
            }
            "--program" => {
                let (id, path) = split(&value, "--program");
                genesis.add_upgradeable_programs_with_path(&[UpgradeableProgramInfo {
                    program_id: Pubkey::from_str(id)
                        .unwrap_or_else(|e| fail(format!("--program: {e}"))),
                    loader: solana_sdk_ids::bpf_loader_upgradeable::id(),
                    upgrade_authority: Pubkey::default(),
                    program_path: path.into(),
                }]);
            }
            other => fail(format!("unknown flag {other}")),
        }
    }

    let (validator, payer) = genesis.start_async().await;
    wait_for_the_token_program(&validator, &payer).await;
    if let Some(path) = payer_file {
        let bytes = payer.to_bytes().to_vec();
        std::fs::write(
            &path,
            serde_json::to_string(&bytes).expect("bytes serialize"),
        )
        .unwrap_or_else(|e| fail(format!("{}: {e}", path.display())));
    }
    println!("READY {}", validator.rpc_url());

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    loop {
        tokio::select! {
            _ = term.recv() => break,
            read = stdin.read(&mut sink) => if matches!(read, Ok(0) | Err(_)) { break },
        }
    }
    drop(validator);
}
