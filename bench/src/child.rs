//! The programs under test, as child processes driven through pipes.
//!
//! A [`Child`] owns one process. Its stdout is read on a thread of its own, which stamps each
//! line with the instant it was read, so a latency measured "until the line appears" does not
//! include the hop from that thread to whoever waits for the line. Stdin writes are one
//! `write` call per line, stamped just before the call. stderr is read too (a full pipe would
//! block the program) and its last lines are kept for error messages.
//!
//! Dropping a `Child` kills that one process by its PID and reaps it, so an error anywhere in
//! the bench leaves nothing running behind it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Environment variables the programs read (README, "Command line"); cleared so that the
/// environment of whoever runs the bench cannot change what it measures.
const P2P_ENV: [&str; 5] = [
    "P2P_NAME",
    "P2P_PORT",
    "P2P_BIND",
    "P2P_SERVER",
    "P2P_REQUEST_TIMEOUT",
];

/// How many stderr lines are kept for error messages.
const STDERR_TAIL: usize = 20;

/// One stdout line and when the reader thread got it.
pub struct Line {
    pub text: String,
    pub at: Instant,
}

/// A running program under test.
pub struct Child {
    label: String,
    process: std::process::Child,
    spawned_at: Instant,
    stdin: ChildStdin,
    lines: Receiver<Line>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Child {
    /// Starts `program args...` with all three standard streams piped.
    pub fn spawn(label: &str, program: &Path, args: &[String]) -> anyhow::Result<Child> {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in P2P_ENV {
            command.env_remove(var);
        }
        let spawned_at = Instant::now();
        let mut process = command
            .spawn()
            .with_context(|| format!("{label}: cannot start {}", program.display()))?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            unreachable!("all three streams were asked to be piped")
        };
        let (tx, lines) = mpsc::channel();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        read_lines(stdout, move |text| {
            tx.send(Line {
                text,
                at: Instant::now(),
            })
            .is_ok()
        });
        let keep = Arc::clone(&tail);
        read_lines(stderr, move |text| {
            let mut tail = keep.lock().unwrap_or_else(|p| p.into_inner());
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(text);
            true
        });
        Ok(Child {
            label: label.to_owned(),
            process,
            spawned_at,
            stdin,
            lines,
            stderr: tail,
        })
    }

    /// The instant just before the process was started.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// Writes `line` and a newline to stdin in one call; returns the instant just before it.
    pub fn send(&mut self, line: &str) -> anyhow::Result<Instant> {
        let bytes = format!("{line}\n");
        let at = Instant::now();
        self.stdin
            .write_all(bytes.as_bytes())
            .with_context(|| format!("{}: cannot write {line:?} to its stdin", self.label))?;
        Ok(at)
    }

    /// Reads stdout lines until one satisfies `matches` and returns it; the lines before it
    /// are skipped. Fails after `timeout` or if stdout ends.
    pub fn expect(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Line> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if matches(&line.text) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    bail!(self.failure(&format!("no line {what} within {timeout:?}")))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!(self.failure(&format!("stdout ended before a line {what}")))
                }
            }
        }
    }

    /// Waits for the `NAME listening on ADDR` (or `listening on ADDR`) line and returns ADDR.
    pub fn listening_addr(&self, timeout: Duration) -> anyhow::Result<SocketAddr> {
        const MARK: &str = "listening on ";
        let line = self.expect("saying where it listens", timeout, |l| l.contains(MARK))?;
        let addr = line.text.split(MARK).nth(1).unwrap_or_default();
        addr.parse()
            .with_context(|| format!("{}: {:?} names no address", self.label, line.text))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Waits up to `limit` for the process to end by itself; returns whether it did.
    pub fn ended_within(&mut self, limit: Duration) -> anyhow::Result<bool> {
        let deadline = Instant::now() + limit;
        loop {
            let ended = self
                .process
                .try_wait()
                .with_context(|| format!("{}: cannot wait for it", self.label))?;
            if ended.is_some() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its resident memory, from `VmRSS` in /proc/PID/status, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.process.id());
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{path} has no readable VmRSS line"))
    }

    /// A failure message naming this process, with what it last said on stderr.
    fn failure(&self, what: &str) -> String {
        let tail = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let stderr = if tail.is_empty() {
            "(nothing on stderr)".to_owned()
        } else {
            format!(
                "last lines on stderr:\n  {}",
                Vec::from(tail.clone()).join("\n  ")
            )
        };
        format!(
            "{} (pid {}): {what}; {stderr}",
            self.label,
            self.process.id()
        )
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // `kill` signals this child's PID only, and fails harmlessly if it already exited.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Reads `stream` line by line on a thread, handing each line to `take` until it returns
/// false or the stream ends.
fn read_lines(
    stream: impl Read + Send + 'static,
    mut take: impl FnMut(String) -> bool + Send + 'static,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            if !take(String::from_utf8_lossy(&buf).into_owned()) {
                break;
            }
        }
    });
}

/// A loopback port that was free a moment ago, for a program whose port must be known before
/// it starts (to time how soon it accepts connections).
pub fn free_port() -> anyhow::Result<u16> {
    let probe =
        std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(probe.local_addr()?.port())
}
