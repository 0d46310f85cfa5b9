//! A solana-test-validator process on loopback (the `validator/` crate's binary), and a
//! TCP proxy in front of it that the test controls.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use x402_protocol::LedgerAccount;

/// Each validator gets its own ports: tests run side by side.
static NEXT_PORTS: AtomicU16 = AtomicU16::new(0);

/// The validator binary, as .ci/run builds it (`X402_TEST_VALIDATOR`).
fn binary() -> PathBuf {
    std::env::var_os("X402_TEST_VALIDATOR")
        .map(PathBuf::from)
        .expect(
            "X402_TEST_VALIDATOR names the x402-test-validator binary for the JSON-RPC tests: \
         `cargo build --manifest-path validator/Cargo.toml` (as .ci/run does)",
        )
}

pub struct Validator {
    process: Child,
    pub url: String,
    ledger: tempfile::TempDir,
}

impl Validator {
    /// Also loads the receipts program from `program` (an SBF build) and writes the
    /// funded mint keypair into the ledger directory (`payer.json`).
    pub async fn start_with(
        accounts: &[(Pubkey, LedgerAccount)],
        program: Option<&std::path::Path>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let slot = NEXT_PORTS.fetch_add(1, Ordering::SeqCst);
        let base = 21_000 + (std::process::id() % 40) as u16 * 600 + slot * 100;
        let mut command = Command::new(binary());
        command
            .args(["--rpc-port", &base.to_string()])
            .args(["--port-range", &format!("{}-{}", base + 10, base + 90)])
            .args(["--ledger", &dir.path().join("ledger").display().to_string()]);
        command.args([
            "--payer",
            &dir.path().join("payer.json").display().to_string(),
        ]);
        if let Some(program) = program {
            command.args([
                "--program",
                &format!("{}={}", x402_receipts::ID, program.display()),
            ]);
        }
        for (i, (address, account)) in accounts.iter().enumerate() {
            let file = dir.path().join(format!("account-{i}.json"));
            let json = serde_json::json!({
                "owner": account.owner.to_string(),
                "lamports": account.lamports,
                "data": base64::engine::general_purpose::STANDARD.encode(&account.data),
            });
            std::fs::write(&file, json.to_string()).unwrap();
            command.args(["--account", &format!("{address}={}", file.display())]);
        }
        let mut process = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let url = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            let ready =
                lines.find_map(|line| line.ok()?.strip_prefix("READY ").map(str::to_string));
            std::thread::spawn(move || lines.for_each(drop));
            ready.expect("the validator starts and says READY")
        })
        .await
        .unwrap();
        Validator {
            process,
            url,
            ledger: dir,
        }
    }
}

impl Validator {
    /// Writes `keypair` (Solana CLI format) beside the validator's ledger; its path.
    pub fn write_keypair(&self, name: &str, keypair: &solana_keypair::Keypair) -> PathBuf {
        let path = self.ledger.path().join(name);
        x402_protocol::keypair::write_keypair_file(keypair, &path).unwrap();
        path
    }

    /// The validator's funded mint keypair.
    pub fn payer(&self) -> solana_keypair::Keypair {
        x402_protocol::keypair::read_keypair_file(&self.ledger.path().join("payer.json")).unwrap()
    }
}

impl Drop for Validator {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// How the proxy treats the next connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Connections are closed at once.
    Down,
    /// Connections are accepted and never answered.
    Hang,
    /// Answers come after this long.
    Slow(Duration),
    /// Every request gets this HTTP status.
    Status(u16),
}

/// A TCP proxy to the node that counts the JSON-RPC methods going through.
pub struct Proxy {
    pub url: String,
    fault: Arc<Mutex<Fault>>,
    calls: Arc<Mutex<Vec<String>>>,
    requests: Arc<AtomicUsize>,
}

impl Proxy {
    pub async fn start(node_url: &str) -> Self {
        let upstream = node_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let proxy = Proxy {
            url,
            fault: Arc::new(Mutex::new(Fault::None)),
            calls: Arc::default(),
            requests: Arc::default(),
        };
        let (fault, calls, requests) = (
            proxy.fault.clone(),
            proxy.calls.clone(),
            proxy.requests.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let fault = *fault.lock().unwrap();
                tokio::spawn(serve(
                    client,
                    fault,
                    upstream.clone(),
                    calls.clone(),
                    requests.clone(),
                ));
            }
        });
        proxy
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// How often `method` went through to the node.
    pub fn count(&self, method: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|m| *m == method)
            .count()
    }
}

async fn serve(
    mut client: TcpStream,
    fault: Fault,
    upstream: String,
    calls: Arc<Mutex<Vec<String>>>,
    requests: Arc<AtomicUsize>,
) {
    requests.fetch_add(1, Ordering::SeqCst);
    match fault {
        Fault::Down => return,
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
        Fault::Status(status) => {
            let mut request = [0u8; 64 * 1024];
            let _ = client.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 {status} Fault\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = client.write_all(answer.as_bytes()).await;
            return;
        }
        Fault::Slow(delay) => tokio::time::sleep(delay).await,
        Fault::None => {}
    }
    let Ok(node) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_node, mut to_node) = node.into_split();
    let sniff = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(read @ 1..) = from_client.read(&mut buffer).await {
            record_methods(&buffer[..read], &calls);
            if to_node.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
    };
    let back = async move {
        let _ = tokio::io::copy(&mut from_node, &mut to_client).await;
    };
    tokio::join!(sniff, back);
}

/// Notes every `"method":"…"` in a chunk of a request.
fn record_methods(chunk: &[u8], calls: &Mutex<Vec<String>>) {
    let text = String::from_utf8_lossy(chunk);
    for part in text.split("\"method\":\"").skip(1) {
        if let Some(method) = part.split('"').next() {
            calls.lock().unwrap().push(method.to_string());
        }
    }
}
