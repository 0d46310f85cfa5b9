//! Processes a test or a benchmark starts: killed when dropped, so that a failing test
//! leaves nothing holding ports; the verifier binary's standard error in a log file
//! that is kept, and its end printed, when the test fails.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A child process, killed when dropped.
pub(crate) struct Process(pub(crate) Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// Its peak resident set (VmHWM), in KiB.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .expect("the process's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }
}

/// The last lines of a process's log, for a panic message.
pub(crate) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| format!("({e})"));
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    if tail.trim().is_empty() {
        "(no output)".to_string()
    } else {
        tail
    }
}

/// The banner line that says the verifier listens, and where.
const LISTENING: &str = "x402 verifier on http://";

/// How to start the `x402-verifier` binary: no configuration file and no log filter
/// unless given (as a person starts it), on a free loopback port, its standard error in
/// `verifier.log` of its directory (a new temporary one unless [`Launch::in_dir`]).
pub struct Launch {
    command: Command,
    dir: Option<PathBuf>,
    config: Option<String>,
}

impl Launch {
    pub fn new(binary: impl AsRef<OsStr>) -> Self {
        let mut command = Command::new(binary);
        command
            .env_remove("X402_CONFIG")
            .env_remove("X402_METRICS_LISTEN")
            .env_remove("RUST_LOG")
            .env("X402_LISTEN", "127.0.0.1:0");
        Launch {
            command,
            dir: None,
            config: None,
        }
    }

    /// One more environment variable (a later one for the same name wins).
    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    /// Environment variables, in order.
    pub fn envs(mut self, vars: &[(&str, &str)]) -> Self {
        self.command.envs(vars.iter().copied());
        self
    }

    /// Its configuration file: `toml`, written to `verifier.toml` in its directory.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_string());
        self
    }

    /// Its log and configuration in `dir` (which stays), not in a temporary directory.
    pub fn in_dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// Starts it and waits for its banner: the verifier, listening.
    pub fn start(mut self) -> VerifierProcess {
        let (dir, temporary) = match self.dir {
            Some(dir) => (dir, None),
            None => {
                let temporary = tempfile::tempdir().expect("a temporary directory");
                (temporary.path().to_path_buf(), Some(temporary))
            }
        };
        if let Some(toml) = &self.config {
            let config = dir.join("verifier.toml");
            std::fs::write(&config, toml).expect("the verifier's configuration");
            self.command.arg(config);
        }
        let log = dir.join("verifier.log");
        let child = self
            .command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("the verifier starts");
        let mut verifier = VerifierProcess {
            process: Some(Process(child)),
            address: String::new(),
            log,
            temporary,
        };
        let banner = verifier.log_until(LISTENING);
        let listening = banner.lines().last().expect("the banner's line");
        verifier.address = listening[LISTENING.len()..]
            .split_whitespace()
            .next()
            .expect("an address")
            .to_string();
        verifier
    }
}

/// The verifier binary, running; killed when dropped, its log kept when a test fails.
pub struct VerifierProcess {
    process: Option<Process>,
    /// Where it listens: `host:port`.
    pub address: String,
    log: PathBuf,
    temporary: Option<tempfile::TempDir>,
}

impl VerifierProcess {
    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Its log from the start up to and with the first line that starts with `prefix`,
    /// once that line is written; the test fails if the process ends before, or a minute
    /// passes.
    pub fn log_until(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            // Only whole lines: the last one may still be being written.
            let whole = log.rfind('\n').map_or("", |end| &log[..=end]);
            let mut upto = Vec::new();
            for line in whole.lines() {
                upto.push(line);
                if line.starts_with(prefix) {
                    return upto.join("\n");
                }
            }
            let child = &mut self.process.as_mut().expect("running").0;
            if let Some(status) = child.try_wait().expect("the verifier's status") {
                panic!("the verifier ended ({status}) before \"{prefix}\"; its log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "no \"{prefix}\" from the verifier in a minute; its log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its peak resident set (VmHWM), in KiB.
    pub fn peak_rss(&self) -> u64 {
        self.process.as_ref().expect("running").peak_rss()
    }

    /// Stops it with SIGTERM, as a service manager does; how it exited.
    pub fn stop(mut self) -> ExitStatus {
        let Process(child) = self.process.as_mut().expect("running");
        let signalled = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(signalled.success());
        let status = child.wait().expect("the verifier's exit");
        self.process = None;
        status
    }
}

impl Drop for VerifierProcess {
    fn drop(&mut self) {
        self.process = None;
        if std::thread::panicking() {
            eprintln!(
                "the verifier's log, kept at {}; its end:\n{}",
                self.log.display(),
                tail(&self.log)
            );
            if let Some(temporary) = self.temporary.take() {
                let _ = temporary.keep();
            }
        }
    }
}
