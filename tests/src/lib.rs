//! Harness for the p2p-chat end-to-end tests.
//!
//! The tests in `tests/tests/` start the real `p2p-server` and `p2p-peer` binaries on loopback
//! ports chosen at run time, type commands into the peers' stdin and read the lines they print,
//! exactly as a script would (stdin is not a terminal, so there are no prompts).
//!
//! - [`Server`] and [`Peer`] own one child process each; both dereference to [`Proc`], which
//!   sends lines and waits for output with a deadline ([`EXPECT_TIMEOUT`] per call). On a timeout
//!   the panic message shows everything that process printed so far, stdout and stderr.
//! - Every [`Server`] and [`Peer`] gets a fresh data directory ([`DataDir`], removed when it is
//!   dropped), so keys, pinned keys and name claims never leak between tests or into the home
//!   directory. Pass a [`DataDir`] of the test's own to start a program again with the same
//!   identity.
//! - Nothing here sleeps: stdout and stderr are read by background threads into a channel and a
//!   transcript, and every wait is a `recv_timeout` for the line the test expects.
//! - The wire protocol (docs/protocol.md, version 2) is spoken directly for the tests that send
//!   hostile bytes: [`Signer`] makes signed envelopes with a key of its own (or forges them in
//!   someone else's name), [`request`] and [`assert_refused`] read the signed replies,
//!   [`RawPeer`] runs a whole chat handshake and sends sealed frames of its choice, and [`Proxy`]
//!   sits between two programs on loopback and records every byte.
//!
//! The binaries are built once per test process with `cargo build --bins`, into the same target
//! directory and profile as the test executable itself.

use std::cell::RefCell;
use std::fmt::Display;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use p2p_shared::identity::{Identity, PublicKey};
use p2p_shared::seal::{ChatKeys, KeyShare, Role, Transcript};
use p2p_shared::PROTOCOL_VERSION;
pub use serde_json::{json, Value};

/// How long one `expect*` call waits for its line.
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`raw_exchange`] waits for the other side to close. The receiving side gives up on
/// reading a request 10 s after accept (docs/protocol.md), so this leaves it room to do so.
pub const RAW_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Environment variables the binaries read (README, "Command line"); cleared so that the
/// environment of whoever runs the tests cannot change what they start or print.
pub const P2P_ENV: [&str; 11] = [
    "P2P_NAME",
    "P2P_PORT",
    "P2P_BIND",
    "P2P_SERVER",
    "P2P_SERVER_KEY",
    "P2P_REQUEST_TIMEOUT",
    "P2P_JSON",
    "P2P_DEBUG",
    "P2P_DATA_DIR",
    "RUST_LOG",
    "NO_COLOR",
];

// ---------------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------------

/// The directory holding `p2p-server` and `p2p-peer`: the test executable lives in
/// `<target>/<profile>/deps/`, the binaries in `<target>/<profile>/`. The first call in a test
/// process builds them (once, whichever test asks first); if that fails, every test that needs
/// them fails with cargo's error output.
#[track_caller]
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(locate_and_build) {
        Ok(dir) => dir,
        Err(why) => panic!("{why}"),
    }
}

fn locate_and_build() -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot locate the test executable: {e}"))?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test executable path {}", exe.display()))?
        .to_path_buf();
    let profile = dir
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("debug");
    build_binaries(profile)?;
    for bin in ["p2p-server", "p2p-peer"] {
        let path = dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
        if !path.is_file() {
            return Err(format!(
                "cargo build succeeded but {} does not exist",
                path.display()
            ));
        }
    }
    Ok(dir)
}

/// `$CARGO build --bins -p p2p-server -p p2p-peer` in the workspace root, for the profile the
/// tests were built with. Cargo releases its build lock before it runs test executables, so
/// this works from inside `cargo test`.
fn build_binaries(profile_dir: &str) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args(["build", "--bins", "-p", "p2p-server", "-p", "p2p-peer"]);
    match profile_dir {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the binaries failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Full path of one of the workspace's binaries (built on first use).
#[track_caller]
pub fn binary(name: &str) -> PathBuf {
    bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

// ---------------------------------------------------------------------------------------------
// Data directories
// ---------------------------------------------------------------------------------------------

/// A fresh, empty directory under the system's temporary directory, unique to this test
/// process and this instance, removed (with everything in it) when dropped.
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// A new directory; `label` (a peer name, `server`, ...) only helps a person reading paths.
    #[track_caller]
    pub fn new(label: &str) -> DataDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("p2p-e2e-{}-{n}-{label}", std::process::id()));
        // Left over by an earlier process with the same id that was killed: start empty.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        DataDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a command-line argument.
    pub fn arg(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The directory a program runs with: one the test passed in (and keeps), or a fresh one the
/// program's handle owns.
enum DataDirUse {
    Given(PathBuf),
    Owned(DataDir),
}

impl DataDirUse {
    fn new(given: Option<PathBuf>, label: &str) -> DataDirUse {
        match given {
            Some(path) => DataDirUse::Given(path),
            None => DataDirUse::Owned(DataDir::new(label)),
        }
    }

    fn path(&self) -> &Path {
        match self {
            DataDirUse::Given(path) => path,
            DataDirUse::Owned(dir) => dir.path(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A child process driven through pipes
// ---------------------------------------------------------------------------------------------

/// One running program: its stdin, the lines it printed on stdout (as a channel) and the
/// transcript of stdout and stderr for failure messages. Dropping it kills the process.
pub struct Proc {
    label: String,
    child: RefCell<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// The lines printed on stderr (the log).
    err_lines: Receiver<String>,
    /// Disconnected once stderr has been read to its end.
    stderr_done: Receiver<()>,
    transcript: Arc<Mutex<Vec<String>>>,
    /// Holds the stdout reader while the test wants stdout left unread.
    stdout_gate: Arc<Gate>,
    /// The read end of the stdout pipe (kept open by the reader thread).
    stdout_pipe: std::os::fd::RawFd,
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

impl Proc {
    /// Starts `program args...` with piped stdin, stdout and stderr. `label` names it in
    /// failure messages.
    pub fn spawn(label: impl Into<String>, program: &Path, args: &[String]) -> Proc {
        let label = label.into();
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in P2P_ENV {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{label}: cannot start {}: {e}", program.display()));
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (stdout_done, _) = mpsc::channel();
        let (stderr_end, stderr_done) = mpsc::channel();
        let stdout_gate = Arc::new(Gate::default());
        let stdout_pipe = std::os::fd::AsRawFd::as_raw_fd(&stdout);
        spawn_reader(
            stdout,
            "out",
            Arc::clone(&transcript),
            Some((tx, Arc::clone(&stdout_gate))),
            stdout_done,
        );
        let (err_tx, err_lines) = mpsc::channel();
        let stderr_gate = Arc::new(Gate::default());
        spawn_reader(
            stderr,
            "err",
            Arc::clone(&transcript),
            Some((err_tx, stderr_gate)),
            stderr_end,
        );
        let stdin = child.stdin.take();
        Proc {
            label,
            child: RefCell::new(child),
            stdin,
            lines,
            err_lines,
            stderr_done,
            transcript,
            stdout_gate,
            stdout_pipe,
        }
    }

    /// Stops reading the program's stdout, as a reader who went away: after at most the
    /// chunk being read, its output waits in the pipe, and once the pipe is full the program's
    /// writes block. Shrink the pipe first ([`Proc::shrink_stdout_pipe`]) so that a few lines
    /// fill it.
    pub fn stop_reading_stdout(&self) {
        self.stdout_gate.set(true);
    }

    /// Reads stdout again, from where it stopped.
    pub fn resume_reading_stdout(&self) {
        self.stdout_gate.set(false);
    }

    /// Makes the stdout pipe hold at most one page (4 KiB, the kernel's least), so that an
    /// unread stdout blocks the program after a few lines rather than after 64 KiB.
    #[track_caller]
    pub fn shrink_stdout_pipe(&self) {
        // SAFETY: fcntl on a pipe descriptor the reader thread keeps open for our lifetime.
        let size = unsafe { libc::fcntl(self.stdout_pipe, libc::F_SETPIPE_SZ, 4096) };
        if size < 0 {
            self.fail(&format!(
                "F_SETPIPE_SZ: {}",
                std::io::Error::last_os_error()
            ));
        }
    }

    /// The process id (for messages and signals).
    pub fn pid(&self) -> u32 {
        self.child.borrow().id()
    }

    /// Writes `line` and a newline to stdin, and flushes.
    #[track_caller]
    pub fn send(&self, line: &str) {
        let Some(mut stdin) = self.stdin.as_ref() else {
            self.fail(&format!("cannot send {line:?}: stdin was closed"));
        };
        let written = stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush());
        if let Err(e) = written {
            self.fail(&format!("cannot send {line:?}: {e}"));
        }
    }

    /// Reads stdout lines until one satisfies `matches`, and returns it; the lines before it
    /// are consumed. Panics with the transcript after [`EXPECT_TIMEOUT`] or if stdout ends.
    #[track_caller]
    pub fn expect_line(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + EXPECT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if matches(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => self.fail(&format!(
                    "no line {what} within {}s",
                    EXPECT_TIMEOUT.as_secs()
                )),
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("stdout ended while waiting for a line {what}"))
                }
            }
        }
    }

    /// Waits for a line on stderr (the log) containing `needle`; the lines before it are
    /// consumed.
    #[track_caller]
    pub fn expect_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + EXPECT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err_lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => self.fail(&format!("no log line containing {needle:?}")),
            }
        }
    }

    /// Waits for a stdout line containing `needle`.
    #[track_caller]
    pub fn expect(&self, needle: &str) -> String {
        self.expect_line(&format!("containing {needle:?}"), |l| l.contains(needle))
    }

    /// Waits for a stdout line equal to `line`.
    #[track_caller]
    pub fn expect_exact(&self, line: &str) -> String {
        self.expect_line(&format!("equal to {line:?}"), |l| l == line)
    }

    /// Waits for a stdout line starting with `prefix`.
    #[track_caller]
    pub fn expect_prefix(&self, prefix: &str) -> String {
        self.expect_line(&format!("starting with {prefix:?}"), |l| {
            l.starts_with(prefix)
        })
    }

    /// The very next stdout line, whatever it is.
    #[track_caller]
    pub fn next_line(&self) -> String {
        self.expect_line("at all", |_| true)
    }

    /// The next `n` stdout lines.
    #[track_caller]
    pub fn expect_lines(&self, n: usize) -> Vec<String> {
        let mut lines = Vec::with_capacity(n);
        for _ in 0..n {
            lines.push(self.next_line());
        }
        lines
    }

    /// Waits for a header line `PREFIX N` (e.g. `peers: 3`) and returns the `N` lines after it.
    #[track_caller]
    pub fn expect_list(&self, prefix: &str) -> Vec<String> {
        let header = self.expect_prefix(prefix);
        let n: usize = header[prefix.len()..]
            .parse()
            .unwrap_or_else(|_| self.fail(&format!("bad list header {header:?}")));
        self.expect_lines(n)
    }

    /// Closes stdin: the program sees the end of its input.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits (at most [`EXPECT_TIMEOUT`]) for the process to end and returns its exit status.
    /// The end shows as the end of stdout, which the kernel closes when the process exits;
    /// lines not yet read are kept in the transcript, which then holds all of stderr too.
    #[track_caller]
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXPECT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self.fail(&format!(
                    "did not exit within {}s",
                    EXPECT_TIMEOUT.as_secs()
                )),
            }
        }
        // stderr is read by a thread of its own: wait for its end too, so that the transcript
        // is complete when this returns.
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(RecvTimeoutError::Timeout) = self.stderr_done.recv_timeout(left) {
            self.fail("stdout ended but stderr did not");
        }
        let waited = self.child.borrow_mut().wait();
        waited.unwrap_or_else(|e| self.fail(&format!("cannot wait for the process: {e}")))
    }

    /// True while the process has not exited.
    pub fn is_running(&self) -> bool {
        matches!(self.child.borrow_mut().try_wait(), Ok(None))
    }

    /// Kills the process (our own child) and reaps it.
    pub fn kill(&mut self) {
        let child = self.child.get_mut();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends SIGINT to the process, as Ctrl-C in a terminal would.
    #[track_caller]
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -INT {} failed", self.pid());
    }

    /// Everything the process printed so far, one entry per line, `out| ` or `err| ` first.
    pub fn transcript(&self) -> Vec<String> {
        self.transcript
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The stdout lines printed so far (read or not by `expect*`).
    pub fn stdout_so_far(&self) -> Vec<String> {
        self.transcript()
            .into_iter()
            .filter_map(|l| l.strip_prefix("out| ").map(str::to_owned))
            .collect()
    }

    /// Panics with `msg` and the transcript of this process.
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        let transcript = self.transcript();
        let body = if transcript.is_empty() {
            "    (nothing)".to_owned()
        } else {
            transcript
                .iter()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let state = match self.child.try_borrow_mut().map(|mut c| c.try_wait()) {
            Ok(Ok(Some(status))) => format!("exited, {status}"),
            Ok(Ok(None)) => "still running".to_owned(),
            _ => "state unknown".to_owned(),
        };
        panic!(
            "{} (pid {}, {state}): {msg}\n--- transcript of {} so far ---\n{body}\n---",
            self.label,
            self.pid(),
            self.label
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// Reads `stream` line by line into the transcript (tagged `tag`) and, for stdout, the channel
/// (waiting at the gate before each line); drops `done` at the end of the stream.
fn spawn_reader(
    stream: impl Read + Send + 'static,
    tag: &'static str,
    transcript: Arc<Mutex<Vec<String>>>,
    tx: Option<(Sender<String>, Arc<Gate>)>,
    done: Sender<()>,
) {
    thread::spawn(move || {
        // Dropped when this thread ends: the receiving side sees the end of the stream.
        let _done = done;
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            if let Some((_, gate)) = &tx {
                gate.wait_open();
            }
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            let line = String::from_utf8_lossy(&buf).into_owned();
            transcript
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(format!("{tag}| {line}"));
            if let Some((tx, _)) = &tx {
                let _ = tx.send(line);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------------------------

/// A running `p2p-server` on 127.0.0.1, with its address and its key.
pub struct Server {
    // Declared first: dropped (killed) before its data directory is removed.
    proc: Proc,
    addr: SocketAddr,
    key: PublicKey,
    data: DataDirUse,
}

/// Options for [`Server`]; see [`Server::builder`].
pub struct ServerBuilder {
    data_dir: Option<PathBuf>,
    port: u16,
    extra: Vec<String>,
}

impl ServerBuilder {
    /// `--data-dir DIR`: a directory the test keeps, to restart the registry with the same
    /// key and name claims. Without it the registry gets a fresh one of its own.
    pub fn data_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.data_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// `--port PORT` instead of `--port 0`.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Any extra argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra.push(arg.into());
        self
    }

    /// Starts the registry and waits for `listening on ADDR` and `registry key KEY (...)`.
    #[track_caller]
    pub fn start(self) -> Server {
        let data = DataDirUse::new(self.data_dir, "server");
        let mut args: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--port".into(),
            self.port.to_string(),
            "--data-dir".into(),
            data.path().display().to_string(),
        ];
        args.extend(self.extra);
        let proc = Proc::spawn("server", &binary("p2p-server"), &args);
        let addr = listening_addr(&proc, "listening on ");
        if self.port != 0 && addr.port() != self.port {
            proc.fail(&format!("asked for port {} but got {addr}", self.port));
        }
        let line = proc.expect_prefix("registry key ");
        let key = parse_key_line(&proc, &line, "registry key ", " (fingerprint ", ")");
        Server {
            proc,
            addr,
            key,
            data,
        }
    }
}

impl Server {
    /// `p2p-server --bind 127.0.0.1 --port 0 --data-dir FRESH`, once it printed its address
    /// and its key.
    #[track_caller]
    pub fn start() -> Server {
        Server::builder().start()
    }

    /// Options: `Server::builder().data_dir(dir.path()).port(4000).start()`.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            data_dir: None,
            port: 0,
            extra: Vec::new(),
        }
    }

    /// The address the registry listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The registry's key, as it printed it.
    pub fn key(&self) -> PublicKey {
        self.key
    }

    pub fn fingerprint(&self) -> String {
        self.key.fingerprint()
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Waits for the registry's `registered NAME ADDR key FP` line for `peer`.
    #[track_caller]
    pub fn expect_registered(&self, peer: &Peer) {
        self.expect_exact(&format!(
            "registered {} {} key {}",
            peer.name(),
            peer.addr(),
            peer.fingerprint()
        ));
    }
}

impl Deref for Server {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// Waits for `PREFIX 127.0.0.1:PORT` and parses the address.
#[track_caller]
fn listening_addr(proc: &Proc, prefix: &str) -> SocketAddr {
    let line = proc.expect_prefix(prefix);
    let addr: SocketAddr = line[prefix.len()..]
        .parse()
        .unwrap_or_else(|_| proc.fail(&format!("cannot parse the address in {line:?}")));
    if !addr.ip().is_loopback() || addr.port() == 0 {
        proc.fail(&format!(
            "expected a loopback address and a real port in {line:?}"
        ));
    }
    addr
}

/// Parses `PREFIX A MIDDLE B END` where one of A and B is a full key and the other its
/// fingerprint (`registry key KEY (fingerprint FP)`, `NAME key FP (KEY)`), checks that they
/// agree, and returns the key.
#[track_caller]
fn parse_key_line(proc: &Proc, line: &str, prefix: &str, middle: &str, end: &str) -> PublicKey {
    let parsed = line
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(end))
        .and_then(|rest| rest.split_once(middle));
    let Some((a, b)) = parsed else {
        proc.fail(&format!(
            "expected {prefix}...{middle}...{end}, got {line:?}"
        ))
    };
    let (key, fingerprint) = match (a.parse::<PublicKey>(), b.parse::<PublicKey>()) {
        (Ok(key), _) => (key, b),
        (_, Ok(key)) => (key, a),
        _ => proc.fail(&format!("no key in {line:?}")),
    };
    if key.fingerprint() != fingerprint {
        proc.fail(&format!(
            "the fingerprint in {line:?} is not the key's ({})",
            key.fingerprint()
        ));
    }
    key
}

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

/// A running `p2p-peer` on 127.0.0.1 and a port chosen at run time.
pub struct Peer {
    // Declared first: dropped (killed) before its data directory is removed.
    proc: Proc,
    name: String,
    addr: SocketAddr,
    key: PublicKey,
    data: DataDirUse,
}

/// Options for [`Peer`]; see [`Peer::builder`].
pub struct PeerBuilder {
    name: String,
    server: Option<String>,
    data_dir: Option<PathBuf>,
    extra: Vec<String>,
    flags: bool,
}

impl PeerBuilder {
    /// The registry (`--server`). Without it the peer gets a loopback port nobody listens on.
    pub fn server(mut self, addr: impl Display) -> Self {
        self.server = Some(addr.to_string());
        self
    }

    /// `--server-key KEY`.
    pub fn server_key(self, key: &PublicKey) -> Self {
        self.arg("--server-key").arg(key.to_string())
    }

    /// `--data-dir DIR`: a directory the test keeps, to restart the peer with the same key
    /// and pinned keys. Without it the peer gets a fresh one of its own.
    pub fn data_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.data_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// `--request-timeout DURATION`.
    pub fn request_timeout(self, duration: &str) -> Self {
        self.arg("--request-timeout").arg(duration)
    }

    /// Any extra argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra.push(arg.into());
        self
    }

    /// No `--name` and no `--port`: the peer reads the port (`0`) and the name from the first
    /// two lines of stdin, which `start` sends.
    pub fn prompted(mut self) -> Self {
        self.flags = false;
        self
    }

    /// Starts the peer, waits for `NAME listening on ADDR`, then asks `whoami` for its key.
    #[track_caller]
    pub fn start(self) -> Peer {
        let server = self.server.unwrap_or_else(|| dead_addr().to_string());
        let data = DataDirUse::new(self.data_dir, &self.name);
        let mut args: Vec<String> = Vec::new();
        if self.flags {
            args.extend([
                "--name".into(),
                self.name.clone(),
                "--port".into(),
                "0".into(),
            ]);
        }
        args.extend([
            "--bind".into(),
            "127.0.0.1".into(),
            "--server".into(),
            server,
            "--data-dir".into(),
            data.path().display().to_string(),
        ]);
        args.extend(self.extra);
        let proc = Proc::spawn(format!("peer {}", self.name), &binary("p2p-peer"), &args);
        if !self.flags {
            proc.send("0");
            proc.send(&self.name);
        }
        let addr = listening_addr(&proc, &format!("{} listening on ", self.name));
        let key = whoami(&proc, &self.name);
        Peer {
            proc,
            name: self.name,
            addr,
            key,
            data,
        }
    }
}

/// Sends `whoami` and parses `NAME key FP (KEY)`.
#[track_caller]
fn whoami(proc: &Proc, name: &str) -> PublicKey {
    proc.send("whoami");
    let prefix = format!("{name} key ");
    let line = proc.expect_prefix(&prefix);
    parse_key_line(proc, &line, &prefix, " (", ")")
}

impl Peer {
    /// Options: `Peer::builder("bob").server(addr).request_timeout("1s").start()`.
    pub fn builder(name: &str) -> PeerBuilder {
        PeerBuilder {
            name: name.to_owned(),
            server: None,
            data_dir: None,
            extra: Vec::new(),
            flags: true,
        }
    }

    /// `p2p-peer --name NAME --bind 127.0.0.1 --port 0 --server SERVER --data-dir FRESH`.
    #[track_caller]
    pub fn start(name: &str, server: impl Display) -> Peer {
        Peer::builder(name).server(server).start()
    }

    /// A peer whose `--server` is a loopback port nobody listens on: no registry at all.
    #[track_caller]
    pub fn start_offline(name: &str) -> Peer {
        Peer::builder(name).start()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address this peer listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The key `whoami` showed when the peer started.
    pub fn key(&self) -> PublicKey {
        self.key
    }

    pub fn fingerprint(&self) -> String {
        self.key.fingerprint()
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// `whoami` now: the key it shows.
    #[track_caller]
    pub fn whoami(&self) -> PublicKey {
        whoami(&self.proc, &self.name)
    }

    /// This peer as `listpeer` shows it: `peer NAME ADDR key FP`.
    pub fn peer_line(&self) -> String {
        format!(
            "peer {} {} key {}",
            self.name,
            self.addr,
            self.fingerprint()
        )
    }

    /// This peer as `list connected peer` shows it: `connected NAME ADDR key FP`.
    pub fn connected_line(&self) -> String {
        self.connected_line_at(self.addr)
    }

    /// The same, for a chat that reaches this peer at `addr` (through a proxy, say).
    pub fn connected_line_at(&self, addr: SocketAddr) -> String {
        format!("connected {} {addr} key {}", self.name, self.fingerprint())
    }

    /// `register`, and waits for `registered as NAME at ADDR`.
    #[track_caller]
    pub fn register(&self) {
        self.send("register");
        self.expect_exact(&format!("registered as {} at {}", self.name, self.addr));
    }

    /// `listpeer`: the `peer NAME ADDR key FP` lines after `peers: N`.
    #[track_caller]
    pub fn listpeer(&self) -> Vec<String> {
        self.send("listpeer");
        self.expect_list("peers: ")
    }

    /// `list connected peer`: the `connected NAME ADDR key FP` lines after `connected peers: N`.
    #[track_caller]
    pub fn connected(&self) -> Vec<String> {
        self.send("list connected peer");
        self.expect_list("connected peers: ")
    }

    /// Waits for the next `error:` line.
    #[track_caller]
    pub fn expect_error(&self) -> String {
        self.expect_prefix("error:")
    }

    /// Sends `command`, then `list connected peer` as a marker, and returns every line printed
    /// before the marker's answer: exactly what `command` printed (commands are processed in
    /// order). Only for commands that finish without waiting for another peer.
    #[track_caller]
    pub fn run(&self, command: &str) -> Vec<String> {
        self.send(command);
        self.unread_lines()
    }

    /// Sends `list connected peer` as a marker and returns every line printed before its answer
    /// that no `expect*` has read yet.
    #[track_caller]
    pub fn unread_lines(&self) -> Vec<String> {
        self.send("list connected peer");
        let mut out = Vec::new();
        loop {
            let line = self.next_line();
            if let Some(n) = line.strip_prefix("connected peers: ") {
                let n: usize = n
                    .parse()
                    .unwrap_or_else(|_| self.fail(&format!("bad list header {line:?}")));
                self.expect_lines(n);
                return out;
            }
            out.push(line);
        }
    }

    /// `chat request 127.0.0.1 PORT` to `other`, and waits for the `chat request sent` line.
    #[track_caller]
    pub fn request_chat(&self, other: &Peer) {
        self.send(&format!(
            "chat request {} {}",
            other.addr.ip(),
            other.port()
        ));
        self.expect_request_sent(other);
    }

    /// Waits for `chat request sent to OTHER (ADDR), waiting for an answer`.
    #[track_caller]
    pub fn expect_request_sent(&self, other: &Peer) {
        self.expect_exact(&format!(
            "chat request sent to {} ({}), waiting for an answer",
            other.name, other.addr
        ));
    }

    /// Waits for `chat request from OTHER (ADDR): answer yes or no (expires in Ns), key FP`
    /// and returns it.
    #[track_caller]
    pub fn expect_request_from(&self, other: &Peer) -> String {
        self.expect_request(&other.name, other.addr, &other.fingerprint())
    }

    /// The same for any requester: `chat request from NAME (ADDR): ..., key FINGERPRINT`.
    #[track_caller]
    pub fn expect_request(&self, name: &str, addr: SocketAddr, fingerprint: &str) -> String {
        let line = self.expect_prefix(&format!(
            "chat request from {name} ({addr}): answer yes or no (expires in "
        ));
        if !line.ends_with(&format!("s), key {fingerprint}")) {
            self.fail(&format!(
                "the request line {line:?} must end with the requester's key fingerprint \
                 {fingerprint}"
            ));
        }
        line
    }

    /// The line a peer prints when `name` shows key `offered` but key `pinned` is known.
    pub fn key_warning(name: &str, offered: &str, pinned: &str) -> String {
        format!(
            "WARNING: {name} presented key {offered}, but the key known for {name} is \
             {pinned}. Someone may be impersonating {name}; refused. If {name} really has a \
             new key, check its fingerprint with {name} and type: trust {name}"
        )
    }

    /// The whole handshake by address: `self` requests, `other` says `yes`, both see it.
    #[track_caller]
    pub fn chat_with(&self, other: &Peer) {
        self.request_chat(other);
        other.expect_request_from(self);
        other.accept_chat(self, other.addr);
    }

    /// The same, asking for the chat by name: the address comes from the registry.
    #[track_caller]
    pub fn chat_by_name_with(&self, other: &Peer) {
        self.send(&format!("chat request {}", other.name));
        self.expect_request_sent(other);
        other.expect_request_from(self);
        other.accept_chat(self, other.addr);
    }

    /// `yes` to `requester`'s pending request: `accepted chat with` here, and `chat accepted
    /// by` there, naming the address it reached us at (ours, or a proxy's).
    #[track_caller]
    pub fn accept_chat(&self, requester: &Peer, reached_at: SocketAddr) {
        self.send("yes");
        self.expect_exact(&format!(
            "accepted chat with {} ({})",
            requester.name, requester.addr
        ));
        requester.expect_exact(&format!("chat accepted by {} ({reached_at})", self.name));
    }

    /// `chat message OTHER TEXT`, waits for `delivered to OTHER` here and `SELF: TEXT` there.
    #[track_caller]
    pub fn say(&self, other: &Peer, text: &str) {
        self.send(&format!("chat message {} {text}", other.name));
        self.expect_exact(&format!("delivered to {}", other.name));
        other.expect_exact(&format!("{}: {text}", self.name));
    }

    /// `exit`, `bye`, and a zero exit status.
    #[track_caller]
    pub fn exit(&mut self) {
        self.send("exit");
        self.expect_exact("bye");
        let status = self.wait_exit();
        if !status.success() {
            self.fail(&format!("exit ended with {status}"));
        }
    }
}

/// True if `lines` (e.g. from [`Peer::run`]) is exactly one `error:` line.
pub fn is_one_error(lines: &[String]) -> bool {
    matches!(lines, [line] if line.starts_with("error:"))
}

impl Deref for Peer {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl DerefMut for Peer {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

// ---------------------------------------------------------------------------------------------
// Raw wire protocol
// ---------------------------------------------------------------------------------------------

/// What an Ed25519 signature on an envelope covers besides the JSON (docs/protocol.md).
pub const SIGNING_CONTEXT: &[u8] = b"p2p-chat/2 signed envelope\0";

/// A loopback address nobody listens on (a port the kernel just handed out and took back).
pub fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
    listener.local_addr().expect("local_addr")
}

/// Connects to `addr`, writes `bytes`, shuts the write half down if `shutdown_write`, and
/// returns everything that arrived until the other side closed (a reset also counts as the
/// end) or [`RAW_READ_TIMEOUT`] passed.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8], shutdown_write: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(RAW_READ_TIMEOUT))
        .expect("set_read_timeout");
    // A write error means the other side already closed; what it sent is still read below.
    if stream.write_all(bytes).is_ok() && shutdown_write {
        let _ = stream.shutdown(Shutdown::Write);
    }
    read_to_close(&mut stream)
}

/// Everything `stream` delivers until it closes, is reset, or its read timeout passes.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break, // reset, or nothing more within the timeout
        }
    }
    received
}

/// A frame: `body.len()` as a big-endian u32, then `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("body too long for a frame");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// The body of exactly one frame (u32 BE length, then that many bytes).
pub fn frame_body(bytes: &[u8]) -> Result<&[u8], String> {
    let Some((head, body)) = bytes.split_first_chunk::<4>() else {
        return Err(format!("{} bytes, less than a length prefix", bytes.len()));
    };
    let len = u32::from_be_bytes(*head) as usize;
    if body.len() != len {
        return Err(format!(
            "length prefix says {len} bytes but {} followed",
            body.len()
        ));
    }
    Ok(body)
}

/// A fresh message id, as JSON.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The current time as an envelope's `at`.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A version-2 envelope from `name` at `addr` with key `key`, a fresh id, stamped now.
pub fn envelope(name: &str, addr: impl Display, key: &PublicKey, body: Value) -> Value {
    json!({
        "v": PROTOCOL_VERSION,
        "id": new_id(),
        "at": now(),
        "from": { "name": name, "addr": addr.to_string(), "key": key.to_string() },
        "body": body,
    })
}

/// A fresh X25519 key share as it travels in JSON (`chat_request`'s `share`), thrown away.
pub fn share() -> Value {
    json!(KeyShare::new().public())
}

/// A signed frame body: `'S' | Ed25519 signature by identity over CONTEXT ++ json | json`.
pub fn sign_json(identity: &Identity, json: &[u8]) -> Vec<u8> {
    let signature = identity.sign(&[SIGNING_CONTEXT, json].concat());
    let mut body = vec![b'S'];
    body.extend_from_slice(&signature.to_bytes());
    body.extend_from_slice(json);
    body
}

/// Someone on the wire who is not one of the binaries: a name, an address it claims, and a
/// key of its own, with which it signs whatever envelope it is given (its own, or one in
/// somebody else's name).
pub struct Signer {
    name: String,
    addr: String,
    identity: Identity,
}

impl Signer {
    /// `name` at `addr`, with a new random key.
    pub fn new(name: &str, addr: impl Display) -> Signer {
        Signer {
            name: name.to_owned(),
            addr: addr.to_string(),
            identity: Identity::generate(),
        }
    }

    /// `tester` at `127.0.0.1:1` (nobody listens there; only the IP is checked).
    pub fn tester() -> Signer {
        Signer::new("tester", "127.0.0.1:1")
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key(&self) -> PublicKey {
        self.identity.public()
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// An envelope from this signer (its name, address and key) with `body`.
    pub fn envelope(&self, body: Value) -> Value {
        envelope(&self.name, &self.addr, &self.key(), body)
    }

    /// The whole frame (length prefix included) of `envelope`, signed with this signer's key
    /// whatever the envelope's `from` says.
    pub fn frame(&self, envelope: &Value) -> Vec<u8> {
        self.frame_json(&serde_json::to_vec(envelope).expect("serialize"))
    }

    /// The same for JSON bytes given as they are (malformed ones included).
    pub fn frame_json(&self, json: &[u8]) -> Vec<u8> {
        frame(&sign_json(&self.identity, json))
    }

    /// Signs and sends `envelope` to `addr`; returns the verified reply (see [`request`]).
    #[track_caller]
    pub fn send(&self, addr: SocketAddr, envelope: &Value) -> Value {
        request(addr, &self.frame(envelope), envelope)
    }

    /// Sends a request with `body` from this signer to `addr`; returns the verified reply.
    #[track_caller]
    pub fn request(&self, addr: SocketAddr, body: Value) -> Value {
        self.send(addr, &self.envelope(body))
    }
}

/// Parses one signed reply frame and checks its signature against the key it names: the
/// reply envelope, or why it is not one.
pub fn decode_reply(bytes: &[u8]) -> Result<Value, String> {
    let body = frame_body(bytes)?;
    if body.len() < 65 || body[0] != b'S' {
        return Err(format!(
            "not a signed frame (kind {:?}, {} bytes)",
            body.first().map(|&b| b as char),
            body.len()
        ));
    }
    let signature: [u8; 64] = body[1..65].try_into().expect("64 bytes");
    let signature = p2p_shared::identity::Signature::from_bytes(&signature);
    let json = &body[65..];
    let envelope: Value = serde_json::from_slice(json).map_err(|e| {
        format!(
            "body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(json)
        )
    })?;
    let key: PublicKey = envelope["from"]["key"]
        .as_str()
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| format!("no valid from.key in {envelope}"))?;
    if !key.verify(&[SIGNING_CONTEXT, json].concat(), &signature) {
        return Err(format!("the signature is not by from.key: {envelope}"));
    }
    if envelope["v"] != PROTOCOL_VERSION {
        return Err(format!(
            "reply version is not {PROTOCOL_VERSION}: {envelope}"
        ));
    }
    if envelope["body"]["type"] != "reply" {
        return Err(format!("not a reply: {envelope}"));
    }
    Ok(envelope)
}

/// The key that signed a reply envelope (already verified by [`decode_reply`]).
pub fn signer_of(reply: &Value) -> PublicKey {
    reply["from"]["key"]
        .as_str()
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("no from.key in {reply}"))
}

/// Sends the frame `bytes` carrying `envelope` to `addr` and returns the reply envelope, after
/// checking that it is one validly signed reply frame naming the request's id.
#[track_caller]
pub fn request(addr: SocketAddr, bytes: &[u8], envelope: &Value) -> Value {
    let raw = raw_exchange(addr, bytes, false);
    let reply = decode_reply(&raw)
        .unwrap_or_else(|e| panic!("no valid reply from {addr} to {envelope}: {e} (raw: {raw:?})"));
    assert_eq!(
        reply["body"]["re"], envelope["id"],
        "the reply must name the request's id: {reply}"
    );
    reply
}

/// The `result` of a reply: `"ok"`, `"pending"`, ... or the error code for an error.
pub fn outcome(reply: &Value) -> String {
    let result = &reply["body"]["result"];
    match result["type"].as_str() {
        Some("error") => result["code"].as_str().unwrap_or("?").to_owned(),
        other => other.unwrap_or("?").to_owned(),
    }
}

/// Sends a `ping` (signed by a fresh key) and asserts the reply is `ok`, signed by `key`
/// when given.
#[track_caller]
pub fn assert_ping_ok(addr: SocketAddr, key: Option<&PublicKey>) {
    let reply = Signer::tester().request(addr, json!({ "type": "ping" }));
    assert_eq!(outcome(&reply), "ok", "ping to {addr} must get ok: {reply}");
    if let Some(key) = key {
        assert_eq!(signer_of(&reply), *key, "ping reply signer: {reply}");
    }
}

/// What a receiver did with a bad request: it replied with an error, or it just closed.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An error reply frame with this code, signed by this key.
    Error { code: String, signer: PublicKey },
    /// The connection closed (or was reset) with nothing sent back.
    Closed,
}

/// Interprets what came back for a bad request: nothing (closed), or exactly one validly
/// signed error reply frame whose code, when `expected_code` is given, is that one. Panics
/// otherwise.
#[track_caller]
pub fn assert_refused(reply: &[u8], expected_code: Option<&str>, what: &str) -> Refusal {
    if reply.is_empty() {
        return Refusal::Closed;
    }
    let envelope = decode_reply(reply)
        .unwrap_or_else(|e| panic!("{what}: the reply is not one valid signed reply: {e}"));
    let result = &envelope["body"]["result"];
    assert_eq!(result["type"], "error", "{what}: not an error: {envelope}");
    let code = result["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: error without a code: {envelope}"));
    if let Some(expected) = expected_code {
        assert_eq!(code, expected, "{what}: error code: {envelope}");
    }
    Refusal::Error {
        code: code.to_owned(),
        signer: signer_of(&envelope),
    }
}

/// Sends `bytes` to `addr` and asserts that the answer is an error reply with `code`, signed
/// by `signer`.
#[track_caller]
pub fn assert_refused_with(addr: SocketAddr, bytes: &[u8], code: &str, signer: &PublicKey) {
    let reply = raw_exchange(addr, bytes, false);
    let refusal = assert_refused(&reply, Some(code), &format!("{addr}"));
    assert_eq!(
        refusal,
        Refusal::Error {
            code: code.to_owned(),
            signer: *signer
        },
        "{addr} must answer {code}, signed with its own key"
    );
}

// ---------------------------------------------------------------------------------------------
// A peer played by the test itself
// ---------------------------------------------------------------------------------------------

/// How long the accepting thread of an [`Acceptor`] waits in one `accept` before it looks
/// whether it should stop.
const ACCEPT_POLL: Duration = Duration::from_millis(100);

/// A listening socket whose connections a background thread accepts and hands over, so that
/// waiting for one has a deadline. The thread ends soon after the socket's owner is dropped:
/// each `accept` waits at most [`ACCEPT_POLL`] (a receive timeout on the listening socket),
/// so no wake-up connection is needed, which could itself fail on a loaded machine.
struct Acceptor {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    /// Listens on a fresh loopback port; each accepted connection goes to `on_accept`, which
    /// returns false to stop accepting.
    fn start(mut on_accept: impl FnMut(TcpStream) -> bool + Send + 'static) -> Acceptor {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
        let addr = listener.local_addr().expect("local_addr");
        socket2::SockRef::from(&listener)
            .set_read_timeout(Some(ACCEPT_POLL))
            .expect("a receive timeout on the listening socket");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        // Accepted sockets inherit the listener's timeout: their users set
                        // their own.
                        let _ = stream.set_read_timeout(None);
                        if !on_accept(stream) {
                            break;
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    // Out of descriptors, say: do not spin while it lasts.
                    Err(_) => thread::park_timeout(ACCEPT_POLL),
                }
            }
        });
        Acceptor {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A peer played by the test: it listens on loopback, signs with a key of its own, and can run
/// the chat handshake with a real [`Peer`] to get the chat's session keys, and then seal any
/// envelope it likes. Everything on the wire is built here from docs/protocol.md, with the
/// shared crate's primitives (keys, signatures, key agreement, sealing). It answers `ping`s by
/// itself (a real peer checks its chat partners with them); every other request waits for
/// [`RawPeer::receive`].
pub struct RawPeer {
    signer: Arc<Signer>,
    addr: SocketAddr,
    incoming: Receiver<Result<Incoming, String>>,
    _acceptor: Acceptor,
}

/// One incoming connection to a [`RawPeer`] and the signed request it carried.
pub struct Incoming {
    stream: TcpStream,
    /// The request envelope (its signature already checked against its `from.key`).
    pub envelope: Value,
}

impl Incoming {
    /// Reads one signed request from `stream` and checks its signature.
    fn read(mut stream: TcpStream) -> Result<Incoming, String> {
        stream
            .set_read_timeout(Some(RAW_READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut head = [0u8; 4];
        stream
            .read_exact(&mut head)
            .map_err(|e| format!("no frame header: {e}"))?;
        let len = u32::from_be_bytes(head) as usize;
        if len > 64 * 1024 {
            return Err(format!("a frame of {len} bytes"));
        }
        let mut body = vec![0u8; len];
        stream
            .read_exact(&mut body)
            .map_err(|e| format!("truncated frame: {e}"))?;
        if body.len() <= 65 || body[0] != b'S' {
            return Err("not a signed frame".into());
        }
        let signature: [u8; 64] = body[1..65].try_into().expect("64 bytes");
        let signature = p2p_shared::identity::Signature::from_bytes(&signature);
        let json = &body[65..];
        let envelope: Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
        let key: PublicKey = envelope["from"]["key"]
            .as_str()
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| format!("no from.key in {envelope}"))?;
        if !key.verify(&[SIGNING_CONTEXT, json].concat(), &signature) {
            return Err(format!("the signature is not by its from.key: {envelope}"));
        }
        Ok(Incoming { stream, envelope })
    }

    /// Answers with a reply whose `result` is `result`, signed by `signer`, and closes first
    /// as a receiver does.
    pub fn reply(mut self, signer: &Signer, result: Value) {
        let reply = signer.envelope(json!({
            "type": "reply",
            "re": self.envelope["id"],
            "result": result,
        }));
        let _ = self.stream.write_all(&signer.frame(&reply));
        let _ = self.stream.shutdown(Shutdown::Write);
        // The sender closes after our close; wait for that, boundedly.
        let _ = read_to_close(&mut self.stream);
    }
}

impl RawPeer {
    /// A raw peer called `name`, listening on a fresh loopback port, with a new key.
    pub fn start(name: &str) -> RawPeer {
        let (tx, incoming) = mpsc::channel();
        // The address is known only once listening; the signer (which claims it) is shared
        // with the connection threads through this slot.
        let slot: Arc<OnceLock<Arc<Signer>>> = Arc::new(OnceLock::new());
        let shared = Arc::clone(&slot);
        let acceptor = Acceptor::start(move |stream| {
            let (tx, slot) = (tx.clone(), Arc::clone(&shared));
            thread::spawn(move || {
                let request = Incoming::read(stream);
                match (request, slot.get()) {
                    (Ok(ping), Some(signer)) if ping.envelope["body"]["type"] == "ping" => {
                        ping.reply(signer, json!({ "type": "ok" }))
                    }
                    (request, _) => {
                        let _ = tx.send(request);
                    }
                }
            });
            true
        });
        let signer = Arc::new(Signer::new(name, acceptor.addr));
        let _ = slot.set(Arc::clone(&signer));
        RawPeer {
            signer,
            addr: acceptor.addr,
            incoming,
            _acceptor: acceptor,
        }
    }

    pub fn name(&self) -> &str {
        self.signer.name()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn key(&self) -> PublicKey {
        self.signer.key()
    }

    pub fn fingerprint(&self) -> String {
        self.key().fingerprint()
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Waits (at most [`EXPECT_TIMEOUT`]) for the next request that is not a ping.
    #[track_caller]
    pub fn receive(&self) -> Incoming {
        match self.incoming.recv_timeout(EXPECT_TIMEOUT) {
            Ok(Ok(incoming)) => incoming,
            Ok(Err(why)) => panic!("{}: a bad incoming request: {why}", self.name()),
            Err(_) => panic!("{}: no request within the deadline", self.name()),
        }
    }

    /// The chat handshake with `peer`, by address: a signed `chat_request`, `peer`'s user
    /// says `yes NAME`, its signed `chat_answer` arrives here and is acknowledged, and both
    /// sides derive the session keys. Returns the open chat.
    #[track_caller]
    pub fn chat_with(&self, peer: &Peer) -> RawChat {
        let ours = KeyShare::new();
        let mine = ours.public();
        let request = self
            .signer
            .envelope(json!({ "type": "chat_request", "share": mine }));
        let reply = self.signer.send(peer.addr(), &request);
        assert_eq!(outcome(&reply), "pending", "{reply}");
        assert_eq!(signer_of(&reply), peer.key(), "{reply}");
        peer.expect_request(self.name(), self.addr, &self.fingerprint());
        peer.send(&format!("yes {}", self.name()));

        let answer = self.receive();
        let body = answer.envelope["body"].clone();
        let from = answer.envelope["from"].clone();
        answer.reply(&self.signer, json!({ "type": "ok" }));
        peer.expect_exact(&format!(
            "accepted chat with {} ({})",
            self.name(),
            self.addr
        ));
        assert_eq!(body["type"], "chat_answer", "{body}");
        assert_eq!(body["request"], request["id"], "{body}");
        assert_eq!(body["answer"], "accepted", "{body}");
        assert_eq!(from["key"], peer.key().to_string(), "{from}");

        let request_id: uuid::Uuid = request["id"].as_str().unwrap().parse().unwrap();
        let theirs = serde_json::from_value(body["share"].clone()).expect("an X25519 share");
        let (me, them) = (self.key(), peer.key());
        let transcript = Transcript {
            request: request_id,
            requester: &me,
            accepter: &them,
            requester_share: &mine,
            accepter_share: &theirs,
        };
        let keys = ChatKeys::agree(Role::Requester, ours, &transcript)
            .expect("a usable key share from the peer");
        RawChat {
            keys,
            to: peer.addr(),
            next: 0,
            name: self.name().to_owned(),
            port: self.addr.port(),
            key: me,
        }
    }
}

/// A chat a [`RawPeer`] opened with a real peer: it seals envelopes with the session's keys.
pub struct RawChat {
    keys: ChatKeys,
    to: SocketAddr,
    next: u64,
    name: String,
    port: u16,
    key: PublicKey,
}

impl RawChat {
    /// Seals an envelope with `body` as our next message; returns its counter and the whole
    /// frame (length prefix included).
    pub fn seal(&mut self, body: Value) -> (u64, Vec<u8>) {
        let envelope = envelope(
            &self.name,
            format!("0.0.0.0:{}", self.port),
            &self.key,
            body,
        );
        self.seal_json(&serde_json::to_vec(&envelope).expect("serialize"))
    }

    /// Seals any bytes as our next message.
    pub fn seal_json(&mut self, plaintext: &[u8]) -> (u64, Vec<u8>) {
        let counter = self.next;
        self.next += 1;
        (counter, frame(&self.keys.seal(counter, plaintext)))
    }

    /// Sends a sealed frame (made by [`RawChat::seal`]) with `counter` to the peer and opens
    /// its sealed acknowledgement: the reply envelope. Panics if the answer is anything else.
    #[track_caller]
    pub fn exchange(&self, counter: u64, frame: &[u8]) -> Value {
        let raw = raw_exchange(self.to, frame, false);
        let body = frame_body(&raw).unwrap_or_else(|e| panic!("{}: {e}", self.to));
        let plaintext = self.keys.open_ack(counter, body).unwrap_or_else(|| {
            panic!(
                "the answer to sealed message {counter} is no acknowledgement: {:?}",
                decode_reply(&raw)
            )
        });
        serde_json::from_slice(&plaintext).expect("a JSON reply envelope")
    }

    /// Seals `body` and sends it: the opened acknowledgement.
    #[track_caller]
    pub fn send(&mut self, body: Value) -> Value {
        let (counter, frame) = self.seal(body);
        self.exchange(counter, &frame)
    }

    /// Sends a chat message: the opened acknowledgement.
    #[track_caller]
    pub fn message(&mut self, text: &str) -> Value {
        self.send(json!({ "type": "chat_message", "text": text }))
    }
}

// ---------------------------------------------------------------------------------------------
// A recording TCP proxy
// ---------------------------------------------------------------------------------------------

/// The most connections a [`Proxy`] takes; it stops accepting after that.
pub const PROXY_MAX_CONNECTIONS: usize = 256;

/// What one connection through a [`Proxy`] carried.
#[derive(Clone, Debug, Default)]
pub struct Capture {
    /// The bytes the connecting side sent (towards the target): one whole frame, length
    /// prefix included, and anything after it.
    pub sent: Vec<u8>,
    /// The bytes that came back (from the target).
    pub received: Vec<u8>,
    /// False when the proxy intercepted the frame: it never reached the target.
    pub forwarded: bool,
}

impl Capture {
    /// The kind byte of the frame sent (`b'S'`, `b'E'`, ...), if a frame was sent.
    pub fn kind(&self) -> Option<u8> {
        self.sent.get(4).copied()
    }

    /// For a signed frame, its envelope JSON (unchecked).
    pub fn signed_envelope(&self) -> Option<Value> {
        match self.kind() {
            Some(b'S') => serde_json::from_slice(self.sent.get(4 + 65..)?).ok(),
            _ => None,
        }
    }

    /// For a signed frame, its `body.type`.
    pub fn request_type(&self) -> Option<String> {
        Some(self.signed_envelope()?["body"]["type"].as_str()?.to_owned())
    }
}

struct ProxyState {
    target: SocketAddr,
    captures: Mutex<Vec<Capture>>,
    /// Notified on every change to `captures` and to `holding`.
    changed: Condvar,
    intercepting: AtomicBool,
    holding: AtomicBool,
}

impl ProxyState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Capture>> {
        self.captures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, connection: usize, change: impl FnOnce(&mut Capture)) {
        change(&mut self.lock()[connection]);
        self.changed.notify_all();
    }

    /// Waits while signed frames are held, at most [`RAW_READ_TIMEOUT`].
    fn wait_while_holding(&self) {
        let deadline = Instant::now() + RAW_READ_TIMEOUT;
        let mut captures = self.lock();
        while self.holding.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            captures = self
                .changed
                .wait_timeout(captures, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

/// A TCP proxy on loopback in front of `target`: every connection to it is forwarded to
/// `target`, and every byte in both directions is recorded before it is passed on (so
/// whatever an end has received is already in the capture). While it intercepts
/// ([`Proxy::intercept_sealed`]), a connection whose frame is a sealed chat frame is kept and
/// closed instead of forwarded, as by an attacker who holds a message back; while it holds
/// ([`Proxy::hold_signed`]), a connection whose frame is a signed request waits, unanswered,
/// until the hold ends, as by an attacker who delays a message.
///
/// Threads: one accepting (ended on drop), one or two per connection, each ended by the
/// connection's close or by [`RAW_READ_TIMEOUT`] of silence; at most
/// [`PROXY_MAX_CONNECTIONS`] connections.
pub struct Proxy {
    state: Arc<ProxyState>,
    acceptor: Acceptor,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let state = Arc::new(ProxyState {
            target,
            captures: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            intercepting: AtomicBool::new(false),
            holding: AtomicBool::new(false),
        });
        let shared = Arc::clone(&state);
        let acceptor = Acceptor::start(move |client| {
            let connection = {
                let mut captures = shared.lock();
                captures.push(Capture::default());
                captures.len() - 1
            };
            let state = Arc::clone(&shared);
            thread::spawn(move || relay(state, connection, client));
            connection + 1 < PROXY_MAX_CONNECTIONS
        });
        Proxy { state, acceptor }
    }

    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// While `on`, sealed chat frames (`E`) are kept and their connections closed unanswered;
    /// everything else is still forwarded.
    pub fn intercept_sealed(&self, on: bool) {
        self.state.intercepting.store(on, Ordering::SeqCst);
    }

    /// While `on`, signed frames wait (unanswered, at most [`RAW_READ_TIMEOUT`]) before
    /// they are forwarded; turning it off lets the waiting ones through.
    pub fn hold_signed(&self, on: bool) {
        let _captures = self.state.lock();
        self.state.holding.store(on, Ordering::SeqCst);
        self.state.changed.notify_all();
    }

    /// What every connection so far carried, in the order they were accepted.
    pub fn captures(&self) -> Vec<Capture> {
        self.state.lock().clone()
    }

    /// Waits (at most [`EXPECT_TIMEOUT`]) until some connection's capture satisfies `ready`,
    /// and returns it.
    #[track_caller]
    pub fn wait_for(&self, what: &str, ready: impl Fn(&Capture) -> bool) -> Capture {
        let deadline = Instant::now() + EXPECT_TIMEOUT;
        let mut captures = self.state.lock();
        loop {
            if let Some(found) = captures.iter().find(|c| ready(c)) {
                return found.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("the proxy saw no {what} within the deadline: {captures:?}");
            }
            captures = self
                .state
                .changed
                .wait_timeout(captures, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// The captures of the connections whose frame had kind `kind`.
    pub fn captures_of_kind(&self, kind: u8) -> Vec<Capture> {
        self.captures()
            .into_iter()
            .filter(|c| c.kind() == Some(kind))
            .collect()
    }

    /// The captures of signed requests of type `request_type` (`chat_request`, ...).
    pub fn requests_of_type(&self, request_type: &str) -> Vec<Capture> {
        self.captures()
            .into_iter()
            .filter(|c| c.request_type().as_deref() == Some(request_type))
            .collect()
    }

    /// Every byte seen, both ways, all connections.
    pub fn all_bytes(&self) -> Vec<u8> {
        self.captures()
            .into_iter()
            .flat_map(|c| [c.sent, c.received])
            .flatten()
            .collect()
    }
}

/// Reads the client's frame, then forwards it (or keeps it) and pumps the rest both ways.
fn relay(state: Arc<ProxyState>, connection: usize, mut client: TcpStream) {
    let _ = client.set_read_timeout(Some(RAW_READ_TIMEOUT));
    let mut frame = vec![0u8; 4];
    if client.read_exact(&mut frame).is_ok() {
        let len =
            (u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize).min(64 * 1024);
        frame.resize(4 + len, 0);
        if client.read_exact(&mut frame[4..]).is_err() {
            frame.truncate(4);
        }
    } else {
        frame.clear();
    }
    let intercept =
        state.intercepting.load(Ordering::SeqCst) && frame.get(4).copied() == Some(b'E');
    state.update(connection, |c| {
        c.sent.extend_from_slice(&frame);
        c.forwarded = !intercept;
    });
    if intercept {
        return; // dropping the client closes it with nothing said
    }
    if frame.get(4).copied() == Some(b'S') {
        state.wait_while_holding();
    }
    let Ok(mut server) = TcpStream::connect_timeout(&state.target, Duration::from_secs(5)) else {
        return;
    };
    if server.write_all(&frame).is_err() {
        return;
    }
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = Arc::clone(&state);
    thread::spawn(move || {
        pump(client2, server2, |bytes| {
            up.update(connection, |c| c.sent.extend_from_slice(bytes))
        })
    });
    pump(server, client, |bytes| {
        state.update(connection, |c| c.received.extend_from_slice(bytes))
    });
}

/// Copies `from` to `to`, recording each chunk first, until `from` ends; then passes the end on.
fn pump(mut from: TcpStream, mut to: TcpStream, record: impl Fn(&[u8])) {
    let _ = from.set_read_timeout(Some(RAW_READ_TIMEOUT));
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                record(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
