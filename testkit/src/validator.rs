//! A solana-test-validator process on loopback (the `validator/` crate's binary,
//! `x402-test-validator`), on ports found free, killed when dropped.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, TcpListener as StdTcpListener, UdpSocket};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anchor_lang::prelude::Pubkey;
use base64::Engine as _;
use x402_protocol::LedgerAccount;

use crate::process::{tail, Process};

/// Ports a validator binds, all given on its command line: JSON-RPC on `rpc`, its
/// websocket on `rpc + 1` (solana-test-validator's rule), and gossip (the range's first
/// port), TPU, TVU, repair and the rest in `range` (about 25 of them; some in pairs six
/// apart).
#[derive(Clone, Copy, Debug)]
struct Ports {
    rpc: u16,
    range: (u16, u16),
}

/// Consecutive ports given to one validator: `rpc`, `rpc + 1`, then its range.
const BLOCK: u16 = 100;

/// Validators started before one says READY (each with other ports) when the ports
/// were taken after all (by another process, between our check and its bind).
const ATTEMPTS: usize = 5;

/// How long a validator may take to say READY (it waits for the program's deployment
/// and SPL Token; tests start several at once on a small machine).
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// Where validators' ports come from: outside the kernel's ephemeral range (from which
/// every socket that connects or binds port 0 gets its port, ours and other
/// processes'), so a port found free stays free unless another process asks for that
/// very port. Below the ephemeral range from 20,000 up (clear of bench/'s fixed ports
/// around 18,500 and Solana's defaults), or above it; anywhere else only if neither has
/// room.
fn region() -> Range<u16> {
    let (low, high) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(str::parse::<u16>);
            Some((bounds.next()?.ok()?, bounds.next()?.ok()?))
        })
        .unwrap_or((32_768, 60_999));
    let room = 8 * BLOCK;
    if low >= 20_000 + room {
        20_000..low
    } else if high <= u16::MAX - room {
        high + 1..u16::MAX
    } else {
        20_000..u16::MAX
    }
}

/// Whether nothing holds `port` (TCP or UDP, on any address).
fn free(port: u16) -> bool {
    StdTcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
        && UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// The next block of ports in the region that nothing holds now. Blocks are handed out
/// in turn, so the validators of one test process never share one; each process starts
/// at a random block, so processes running side by side seldom try the same ones (and
/// skip those in use).
fn free_ports() -> Ports {
    static NEXT: OnceLock<AtomicUsize> = OnceLock::new();
    let region = region();
    let blocks = usize::from((region.end - region.start) / BLOCK);
    let next = NEXT.get_or_init(|| {
        let random = RandomState::new().hash_one(std::process::id());
        AtomicUsize::new(random as usize % blocks)
    });
    for _ in 0..blocks {
        let block = next.fetch_add(1, Ordering::SeqCst) % blocks;
        let rpc = region.start + block as u16 * BLOCK;
        if (rpc..rpc + BLOCK).all(free) {
            return Ports {
                rpc,
                range: (rpc + 2, rpc + BLOCK),
            };
        }
    }
    panic!("no block of {BLOCK} free ports in {region:?} for a validator");
}

/// Whether a validator that stopped before READY could not bind its ports.
fn ports_taken(output: &str) -> bool {
    [
        "Address already in use",
        "AddrInUse",
        "os error 98",
        "No available",
        "couldn't find two ports",
    ]
    .iter()
    .any(|sign| output.contains(sign))
}

/// Why a validator never said READY.
enum Failure {
    Exited(ExitStatus),
    TimedOut,
}

/// Waits for `READY <url>` in `log` (the process's standard output and error).
async fn wait_until_ready(process: &mut Child, log: &Path) -> Result<String, Failure> {
    let ready = || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.split_inclusive('\n')
            .filter(|line| line.ends_with('\n'))
            .find_map(|line| line.trim_end().strip_prefix("READY ").map(str::to_string))
    };
    let started = Instant::now();
    loop {
        if let Some(url) = ready() {
            return Ok(url);
        }
        if let Ok(Some(status)) = process.try_wait() {
            return ready().ok_or(Failure::Exited(status));
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(Failure::TimedOut);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A validator that said READY: its JSON-RPC URL, and its ledger directory (where its
/// funded payer is).
pub struct Validator {
    _process: Process,
    pub url: String,
    ledger: tempfile::TempDir,
}

impl Validator {
    /// Starts the validator `binary` with `accounts` in its genesis, and the receipts
    /// program from `program` (an SBF build) when given; writes the funded mint keypair
    /// into the ledger directory (`payer.json`).
    ///
    /// Its ports are ones found free outside the ephemeral range; when another process
    /// took them before the validator bound them, it starts again on others. Its output
    /// goes to `validator-<attempt>.log` beside the ledger; when it does not start, the
    /// panic shows that log's end and the directory is kept.
    pub async fn start(
        binary: &Path,
        accounts: &[(Pubkey, LedgerAccount)],
        program: Option<&Path>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut accounts_args = Vec::new();
        for (i, (address, account)) in accounts.iter().enumerate() {
            let file = dir.path().join(format!("account-{i}.json"));
            let json = serde_json::json!({
                "owner": account.owner.to_string(),
                "lamports": account.lamports,
                "data": base64::engine::general_purpose::STANDARD.encode(&account.data),
            });
            std::fs::write(&file, json.to_string()).unwrap();
            accounts_args.push(format!("{address}={}", file.display()));
        }
        // The third-party programs of every test world, as in the bank (p-token replacing
        // classic SPL Token at its address).
        let mut programs_args = Vec::new();
        for vendored in x402_verifier::ledger::bank::VENDORED_PROGRAMS {
            let file = dir.path().join(format!("{}.so", vendored.name));
            std::fs::write(&file, vendored.elf).unwrap();
            programs_args.push(format!("{}={}", vendored.id, file.display()));
        }
        for attempt in 1..=ATTEMPTS {
            let ports = free_ports();
            let log = dir.path().join(format!("validator-{attempt}.log"));
            let output = std::fs::File::create(&log).unwrap();
            let mut command = Command::new(binary);
            command
                .args(["--rpc-port", &ports.rpc.to_string()])
                .args([
                    "--port-range",
                    &format!("{}-{}", ports.range.0, ports.range.1),
                ])
                .args([
                    "--ledger",
                    &dir.path()
                        .join(format!("ledger-{attempt}"))
                        .display()
                        .to_string(),
                ])
                .args([
                    "--payer",
                    &dir.path().join("payer.json").display().to_string(),
                ]);
            if let Some(program) = program {
                command.args([
                    "--program",
                    &format!("{}={}", x402_receipts::ID, program.display()),
                ]);
            }
            for program in &programs_args {
                command.args(["--program", program]);
            }
            for account in &accounts_args {
                command.args(["--account", account]);
            }
            // Its panic message, not a backtrace, at the end of its output.
            let mut process = command
                .env("RUST_BACKTRACE", "0")
                .stdin(Stdio::piped())
                .stdout(output.try_clone().unwrap())
                .stderr(output)
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
            let failure = match wait_until_ready(&mut process, &log).await {
                Ok(url) => {
                    return Validator {
                        _process: Process(process),
                        url,
                        ledger: dir,
                    }
                }
                Err(failure) => failure,
            };
            let _ = process.kill();
            let _ = process.wait();
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            if matches!(failure, Failure::Exited(_)) && ports_taken(&output) && attempt < ATTEMPTS {
                eprintln!(
                    "the validator on {ports:?} found its ports taken (attempt {attempt}), \
                     starting it on others:\n{}",
                    tail(&log)
                );
                continue;
            }
            let why = match failure {
                Failure::Exited(status) => format!("stopped ({status})"),
                Failure::TimedOut => format!("did not say READY in {START_TIMEOUT:?}"),
            };
            let kept = dir.keep();
            panic!(
                "the validator starts and says READY: it {why} on {ports:?} (attempt {attempt}); \
                 its output, kept in {}:\n{}",
                kept.join(format!("validator-{attempt}.log")).display(),
                tail(&kept.join(format!("validator-{attempt}.log")))
            );
        }
        unreachable!("the last attempt returns or panics")
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
