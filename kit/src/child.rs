//! One program under test, as a child process driven through pipes.
//!
//! A [`Child`] owns one process. Its stdout is read on a thread of its own, which stamps each
//! line with the instant it was read, so a latency measured "until the line appears" does not
//! include the hop from that thread to whoever waits for the line. Its stderr (the log) is
//! read the same way. Both go into a transcript, the last [`TRANSCRIPT`] lines, for failure
//! messages. Stdin writes are one `write` call per line.
//!
//! A test can leave stdout or stderr unread on purpose, as a reader who went away:
//! [`Child::stop_reading`] holds the reader thread before its next line, and
//! [`Child::shrink_pipe`] makes the pipe hold one page, so that a few lines fill it and the
//! program's writes block.
//!
//! Dropping a `Child` kills that one process by its PID and reaps it, so a failure anywhere
//! leaves nothing running behind it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{p2p_env, Error};

/// How many lines of stdout and stderr the transcript keeps.
pub const TRANSCRIPT: usize = 5_000;

/// One line and when the reader thread got it.
#[derive(Clone, Debug)]
pub struct Line {
    pub text: String,
    pub at: Instant,
}

/// A running program under test.
pub struct Child {
    label: String,
    /// In a mutex only so that a `&Child` can check whether it has exited.
    process: Mutex<std::process::Child>,
    spawned_at: Instant,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    log: Receiver<Line>,
    /// Disconnected once stdout, then stderr, have been read to their end.
    stdout_done: Receiver<()>,
    stderr_done: Receiver<()>,
    transcript: Arc<Mutex<VecDeque<String>>>,
    /// Where the readers of stdout and stderr wait while the test leaves them unread.
    gates: [Arc<Gate>; 2],
    /// The read ends of the stdout and stderr pipes (kept open by their reader threads).
    pipes: [std::os::fd::RawFd; 2],
}

/// One of the two streams a program writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl Child {
    /// Starts `program args...` with all three standard streams piped, and the programs'
    /// environment variables cleared ([`p2p_env`]). `label` names it in messages.
    pub fn spawn(label: &str, program: &Path, args: &[String]) -> Result<Child, Error> {
        Child::spawn_with_env(label, program, args, &[])
    }

    /// [`Child::spawn`], with the environment variables `env` set (after the others are
    /// cleared).
    pub fn spawn_with_env(
        label: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Result<Child, Error> {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in p2p_env() {
            command.env_remove(var);
        }
        command.envs(env.iter().copied());
        let spawned_at = Instant::now();
        let mut process = command
            .spawn()
            .map_err(|e| format!("{label}: cannot start {}: {e}", program.display()))?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            unreachable!("all three streams were asked to be piped")
        };
        let transcript = Arc::new(Mutex::new(VecDeque::new()));
        let gates = [Arc::new(Gate::default()), Arc::new(Gate::default())];
        let pipes = [stdout.as_raw_fd(), stderr.as_raw_fd()];
        let (lines, stdout_done) = read_lines(stdout, "out", &transcript, gates[0].clone());
        let (log, stderr_done) = read_lines(stderr, "err", &transcript, gates[1].clone());
        Ok(Child {
            label: label.to_owned(),
            process: Mutex::new(process),
            spawned_at,
            stdin: Some(stdin),
            lines,
            log,
            stdout_done,
            stderr_done,
            transcript,
            gates,
            pipes,
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The instant just before the process was started.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    fn process(&self) -> std::sync::MutexGuard<'_, std::process::Child> {
        self.process.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn pid(&self) -> u32 {
        self.process().id()
    }

    /// Writes `line` and a newline to stdin in one call; returns the instant just before it.
    pub fn send(&self, line: &str) -> Result<Instant, Error> {
        let bytes = format!("{line}\n");
        let mut stdin: &ChildStdin = self
            .stdin
            .as_ref()
            .ok_or_else(|| format!("cannot send {line:?}: stdin was closed"))?;
        let at = Instant::now();
        stdin
            .write_all(bytes.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot send {line:?}: {e}"))?;
        Ok(at)
    }

    /// Closes stdin: the program sees the end of its input.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Reads stdout lines until one satisfies `matches` and returns it; the lines before it
    /// are skipped. The error says which line (`what`) did not come, and shows the
    /// transcript.
    pub fn expect(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<Line, Error> {
        self.next_matching(&self.lines, "a line", what, timeout, matches)
    }

    /// Reads log (stderr) lines until one satisfies `matches` and returns it.
    pub fn expect_log(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<Line, Error> {
        self.next_matching(&self.log, "a log line", what, timeout, matches)
    }

    fn next_matching(
        &self,
        lines: &Receiver<Line>,
        kind: &str,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<Line, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if matches(&line.text) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(&format!("no {kind} {what} within {timeout:?}")))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.failure(&format!("the stream ended before {kind} {what}")))
                }
            }
        }
    }

    /// The log (stderr) lines read so far and not yet taken, without waiting: for counting
    /// what a program logged over a while, where no one line marks the end.
    pub fn take_log(&self) -> Vec<Line> {
        self.log.try_iter().collect()
    }

    /// Waits for the `NAME listening on ADDR` (or `listening on ADDR`) line and returns ADDR.
    pub fn listening_addr(&self, timeout: Duration) -> Result<std::net::SocketAddr, Error> {
        const MARK: &str = "listening on ";
        let what = "saying where it listens";
        let line = self.expect(what, timeout, |l| l.contains(MARK))?;
        let addr = line.text.split(MARK).nth(1).unwrap_or_default();
        addr.parse()
            .map_err(|_| self.failure(&format!("{:?} names no address", line.text)))
    }

    /// Stops reading `stream`, as a reader who went away: after at most the chunk being
    /// read, the output waits in the pipe, and once the pipe is full the program's writes
    /// block.
    pub fn stop_reading(&self, stream: Stream) {
        self.gates[stream as usize].set(true);
    }

    /// Reads `stream` again, from where it stopped.
    pub fn resume_reading(&self, stream: Stream) {
        self.gates[stream as usize].set(false);
    }

    /// Makes the pipe of `stream` hold one page (4 KiB, the kernel's least), so that an
    /// unread stream blocks the program after a few lines rather than after 64 KiB.
    pub fn shrink_pipe(&self, stream: Stream) -> Result<(), Error> {
        let pipe = self.pipes[stream as usize];
        // SAFETY: fcntl on a pipe descriptor its reader thread keeps open until the stream
        // ends; a test shrinks a pipe while the program runs, before that.
        let size = unsafe { libc::fcntl(pipe, libc::F_SETPIPE_SZ, 4096) };
        match size {
            0.. => Ok(()),
            _ => Err(Error(format!(
                "F_SETPIPE_SZ: {}",
                std::io::Error::last_os_error()
            ))),
        }
    }

    /// Waits, at most `timeout`, for the process to end: the end shows as the end of stdout
    /// and stderr, which the kernel closes when the process exits. Lines not yet read stay in
    /// the transcript.
    pub fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(&format!("did not exit within {timeout:?}")))
                }
            }
        }
        for done in [&self.stdout_done, &self.stderr_done] {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(RecvTimeoutError::Timeout) = done.recv_timeout(left) {
                return Err(self.failure("stdout ended but stderr did not"));
            }
        }
        self.process()
            .wait()
            .map_err(|e| Error(format!("cannot wait for the process: {e}")))
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&self) -> Option<ExitStatus> {
        self.process().try_wait().ok().flatten()
    }

    /// Kills the process (our own child, by its PID) and reaps it.
    pub fn kill(&self) {
        let mut process = self.process();
        let _ = process.kill();
        let _ = process.wait();
    }

    /// Sends `signal` (SIGINT for Ctrl-C, SIGTERM, ...) to the process.
    pub fn signal(&self, signal: i32) -> Result<(), Error> {
        let pid = libc::pid_t::try_from(self.pid()).map_err(|e| e.to_string())?;
        // SAFETY: kill(2) on our own child's PID.
        match unsafe { libc::kill(pid, signal) } {
            0 => Ok(()),
            _ => Err(Error(format!("kill: {}", std::io::Error::last_os_error()))),
        }
    }

    /// Its resident memory, from `VmRSS` in /proc/PID/status, in KiB.
    pub fn rss_kib(&self) -> Result<u64, Error> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| Error(format!("{path} has no readable VmRSS line")))
    }

    /// The last lines the process printed, `out| ` or `err| ` first.
    pub fn transcript(&self) -> Vec<String> {
        let transcript = self.transcript.lock().unwrap_or_else(|p| p.into_inner());
        transcript.iter().cloned().collect()
    }

    /// A message naming this process, with what it last printed.
    pub fn failure(&self, what: &str) -> Error {
        let state = match self.process().try_wait() {
            Ok(Some(status)) => format!("exited, {status}"),
            Ok(None) => "still running".to_owned(),
            Err(_) => "state unknown".to_owned(),
        };
        let transcript = self.transcript();
        let body = match transcript.is_empty() {
            true => "    (nothing)".to_owned(),
            false => transcript
                .iter()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        Error(format!(
            "{} (pid {}, {state}): {what}\n--- what {} printed last ---\n{body}\n---",
            self.label,
            self.pid(),
            self.label
        ))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // `kill` signals this child's PID only, and fails harmlessly if it already exited.
        self.kill();
    }
}

/// A gate a reader thread waits at before each line, while it is closed.
#[derive(Default)]
struct Gate {
    closed: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn set(&self, closed: bool) {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = closed;
        self.opened.notify_all();
    }

    fn wait_open(&self) {
        let closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        let _open = self
            .opened
            .wait_while(closed, |closed| *closed)
            .unwrap_or_else(|p| p.into_inner());
    }
}

/// Reads `stream` line by line on a thread (waiting at `gate` before each line), into the
/// transcript (tagged `tag`) and the returned channel. The second receiver is disconnected at
/// the end of the stream.
fn read_lines(
    stream: impl Read + Send + 'static,
    tag: &'static str,
    transcript: &Arc<Mutex<VecDeque<String>>>,
    gate: Arc<Gate>,
) -> (Receiver<Line>, Receiver<()>) {
    let (tx, lines) = mpsc::channel();
    let (done, ended) = mpsc::channel::<()>();
    let transcript = Arc::clone(transcript);
    thread::spawn(move || {
        let _done = done;
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            gate.wait_open();
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let at = Instant::now();
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            let text = String::from_utf8_lossy(&buf).into_owned();
            {
                let mut transcript = transcript.lock().unwrap_or_else(|p| p.into_inner());
                if transcript.len() == TRANSCRIPT {
                    transcript.pop_front();
                }
                transcript.push_back(format!("{tag}| {text}"));
            }
            // The receiver may be gone (the bench stopped listening): keep draining the pipe,
            // so the program never blocks on it.
            let _ = tx.send(Line { text, at });
        }
    });
    (lines, ended)
}

/// A loopback port that was free a moment ago, for a program whose port must be known before
/// it starts.
pub fn free_port() -> Result<u16, Error> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(probe.local_addr().map_err(|e| e.to_string())?.port())
}
