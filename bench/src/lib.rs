//! What the benchmarks share: their arguments, the processes they start and what they
//! read of them.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `--name value` pairs of the command line, by name.
pub struct Args(HashMap<String, String>);

impl Args {
    pub fn parse() -> Args {
        let mut named = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let (Some(flag), Some(value)) = (args.next(), args.next()) {
            named.insert(flag.trim_start_matches("--").to_string(), value);
        }
        Args(named)
    }

    /// `--name`'s value; without it the program stops with `usage`.
    pub fn required(&mut self, name: &str, usage: &str) -> String {
        self.0
            .remove(name)
            .unwrap_or_else(|| panic!("{usage}: no --{name}"))
    }

    /// `--name`'s number, or `default`.
    pub fn number(&mut self, name: &str, default: usize) -> usize {
        self.0.remove(name).map_or(default, |n| {
            n.parse()
                .unwrap_or_else(|_| panic!("--{name} takes a number"))
        })
    }
}

/// A child process, killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// The verifier `command` (its binary with its configuration), with its own log
    /// filter as a seller runs it and its log in `work/verifier.log`, once it answers at
    /// `url`.
    pub async fn verifier(mut command: Command, work: &Path, url: &str) -> Process {
        let log = std::fs::File::create(work.join("verifier.log")).expect("a log file");
        let process = Process(
            command
                .env_remove("RUST_LOG")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("the verifier starts"),
        );
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if http.get(format!("{url}/healthz")).send().await.is_ok() {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the verifier at {url} never answered");
    }

    /// Its peak resident set (VmHWM), in KiB.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .expect("the process's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }
}
