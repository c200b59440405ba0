//! Harness for the p2p-chat end-to-end tests.
//!
//! The tests in `tests/tests/` start the real `p2p-server` and `p2p-peer` binaries on loopback
//! ports chosen at run time, type commands into the peers' stdin and read the lines they print,
//! exactly as a script would (stdin is not a terminal, so there are no prompts).
//!
//! - [`Server`] and [`Peer`] own one child process each; both dereference to [`Proc`], which
//!   sends lines and waits for output with a deadline ([`EXPECT_TIMEOUT`] per call). On a timeout
//!   the panic message shows everything that process printed so far, stdout and stderr.
//! - Nothing here sleeps: stdout and stderr are read by background threads into a channel and a
//!   transcript, and every wait is a `recv_timeout` for the line the test expects.
//! - [`raw_exchange`], [`frame`], [`envelope`] and [`decode_frame`] speak the wire protocol
//!   (docs/protocol.md) directly, for the tests that send hostile bytes.
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
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub use serde_json::{json, Value};

/// How long one `expect*` call waits for its line.
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`raw_exchange`] waits for the other side to close. The receiving side gives up on
/// reading a request 10 s after accept (docs/protocol.md), so this leaves it room to do so.
pub const RAW_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Environment variables the binaries read (README, "Command line"); cleared so that the
/// environment of whoever runs the tests cannot change what they start or print.
pub const P2P_ENV: [&str; 10] = [
    "P2P_NAME",
    "P2P_PORT",
    "P2P_BIND",
    "P2P_SERVER",
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
// A child process driven through pipes
// ---------------------------------------------------------------------------------------------

/// One running program: its stdin, the lines it printed on stdout (as a channel) and the
/// transcript of stdout and stderr for failure messages. Dropping it kills the process.
pub struct Proc {
    label: String,
    child: RefCell<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    transcript: Arc<Mutex<Vec<String>>>,
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
        spawn_reader(stdout, "out", Arc::clone(&transcript), Some(tx));
        spawn_reader(stderr, "err", Arc::clone(&transcript), None);
        let stdin = child.stdin.take();
        Proc {
            label,
            child: RefCell::new(child),
            stdin,
            lines,
            transcript,
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
    /// lines not yet read are kept in the transcript.
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

/// Reads `stream` line by line into the transcript (tagged `tag`) and, for stdout, the channel.
fn spawn_reader(
    stream: impl Read + Send + 'static,
    tag: &'static str,
    transcript: Arc<Mutex<Vec<String>>>,
    tx: Option<Sender<String>>,
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
            let line = String::from_utf8_lossy(&buf).into_owned();
            transcript
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(format!("{tag}| {line}"));
            if let Some(tx) = &tx {
                let _ = tx.send(line);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------------------------

/// A running `p2p-server` on 127.0.0.1 and a port chosen at run time.
pub struct Server {
    proc: Proc,
    addr: SocketAddr,
}

impl Server {
    /// `p2p-server --bind 127.0.0.1 --port 0`, once it printed `listening on ADDR`.
    #[track_caller]
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// The same with extra arguments.
    #[track_caller]
    pub fn start_with(extra: &[&str]) -> Server {
        let mut args: Vec<String> = ["--bind", "127.0.0.1", "--port", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::spawn("server", &binary("p2p-server"), &args);
        let addr = listening_addr(&proc, "listening on ");
        Server { proc, addr }
    }

    /// The address the registry listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

/// A running `p2p-peer` on 127.0.0.1 and a port chosen at run time.
pub struct Peer {
    proc: Proc,
    name: String,
    addr: SocketAddr,
}

/// Options for [`Peer`]; see [`Peer::builder`].
pub struct PeerBuilder {
    name: String,
    server: Option<String>,
    extra: Vec<String>,
    flags: bool,
}

impl PeerBuilder {
    /// The registry (`--server`). Without it the peer gets a loopback port nobody listens on.
    pub fn server(mut self, addr: impl Display) -> Self {
        self.server = Some(addr.to_string());
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

    /// Starts the peer and waits for `NAME listening on ADDR`.
    #[track_caller]
    pub fn start(self) -> Peer {
        let server = self.server.unwrap_or_else(|| dead_addr().to_string());
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
        ]);
        args.extend(self.extra);
        let proc = Proc::spawn(format!("peer {}", self.name), &binary("p2p-peer"), &args);
        if !self.flags {
            proc.send("0");
            proc.send(&self.name);
        }
        let addr = listening_addr(&proc, &format!("{} listening on ", self.name));
        Peer {
            proc,
            name: self.name,
            addr,
        }
    }
}

impl Peer {
    /// Options: `Peer::builder("bob").server(addr).request_timeout("1s").start()`.
    pub fn builder(name: &str) -> PeerBuilder {
        PeerBuilder {
            name: name.to_owned(),
            server: None,
            extra: Vec::new(),
            flags: true,
        }
    }

    /// `p2p-peer --name NAME --bind 127.0.0.1 --port 0 --server SERVER`.
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

    /// This peer as `listpeer` shows it: `peer NAME ADDR`.
    pub fn peer_line(&self) -> String {
        format!("peer {} {}", self.name, self.addr)
    }

    /// This peer as `list connected peer` shows it: `connected NAME ADDR`.
    pub fn connected_line(&self) -> String {
        format!("connected {} {}", self.name, self.addr)
    }

    /// `register`, and waits for `registered as NAME at ADDR`.
    #[track_caller]
    pub fn register(&self) {
        self.send("register");
        self.expect_exact(&format!("registered as {} at {}", self.name, self.addr));
    }

    /// `listpeer`: the `peer NAME ADDR` lines after `peers: N`.
    #[track_caller]
    pub fn listpeer(&self) -> Vec<String> {
        self.send("listpeer");
        self.expect_list("peers: ")
    }

    /// `list connected peer`: the `connected NAME ADDR` lines after `connected peers: N`.
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

    /// Waits for `chat request from OTHER (ADDR): answer yes or no (expires in ...)`.
    #[track_caller]
    pub fn expect_request_from(&self, other: &Peer) -> String {
        self.expect_prefix(&format!(
            "chat request from {} ({}): answer yes or no",
            other.name, other.addr
        ))
    }

    /// The whole handshake by address: `self` requests, `other` says `yes`, both see it.
    #[track_caller]
    pub fn chat_with(&self, other: &Peer) {
        self.request_chat(other);
        other.expect_request_from(self);
        other.send("yes");
        other.expect_exact(&format!("accepted chat with {} ({})", self.name, self.addr));
        self.expect_exact(&format!("chat accepted by {} ({})", other.name, other.addr));
    }

    /// `chat message OTHER TEXT`, waits for `delivered to OTHER` here and `SELF: TEXT` there.
    #[track_caller]
    pub fn say(&self, other: &Peer, text: &str) {
        self.send(&format!("chat message {} {text}", other.name));
        self.expect_exact(&format!("delivered to {}", other.name));
        other.expect_exact(&format!("{}: {text}", self.name));
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

/// A version-1 request envelope from `tester` at `127.0.0.1:1` with a fresh id.
pub fn envelope(body: Value) -> Value {
    envelope_from("tester", "127.0.0.1:1", body)
}

/// A version-1 request envelope from `name` at `addr` with a fresh id.
pub fn envelope_from(name: &str, addr: &str, body: Value) -> Value {
    json!({
        "v": 1,
        "id": uuid::Uuid::new_v4().to_string(),
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "from": { "name": name, "addr": addr },
        "body": body,
    })
}

/// The frame carrying `envelope`.
pub fn encode(envelope: &Value) -> Vec<u8> {
    frame(&serde_json::to_vec(envelope).expect("serialize"))
}

/// Decodes exactly one reply frame (u32 BE length, then that much JSON).
pub fn decode_frame(bytes: &[u8]) -> Result<Value, String> {
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
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(body)
        )
    })
}

/// Sends one request envelope to `addr` and returns the decoded reply envelope; panics if no
/// well-formed reply frame came back.
#[track_caller]
pub fn request(addr: SocketAddr, envelope: &Value) -> Value {
    let reply = raw_exchange(addr, &encode(envelope), false);
    let reply = decode_frame(&reply).unwrap_or_else(|e| {
        panic!("no valid reply from {addr} to {envelope}: {e} (raw: {reply:?})")
    });
    assert_eq!(reply["v"], 1, "reply version: {reply}");
    assert_eq!(reply["body"]["type"], "reply", "reply body type: {reply}");
    assert_eq!(
        reply["body"]["re"], envelope["id"],
        "the reply must name the request's id: {reply}"
    );
    reply
}

/// Sends a valid `ping` and asserts the reply is `ok`.
#[track_caller]
pub fn assert_ping_ok(addr: SocketAddr) {
    let reply = request(addr, &envelope(json!({ "type": "ping" })));
    assert_eq!(
        reply["body"]["result"]["type"], "ok",
        "ping to {addr} must get ok: {reply}"
    );
}

/// What a receiver did with a bad request: it replied with an error, or it just closed.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An error reply frame with this code.
    Error(String),
    /// The connection closed (or was reset) with nothing sent back.
    Closed,
}

/// Interprets what came back for a bad request: nothing (closed), or exactly one error reply
/// frame whose code, when `expected_code` is given, is that one. Panics otherwise.
#[track_caller]
pub fn assert_refused(reply: &[u8], expected_code: Option<&str>, what: &str) -> Refusal {
    if reply.is_empty() {
        return Refusal::Closed;
    }
    let envelope = decode_frame(reply)
        .unwrap_or_else(|e| panic!("{what}: the reply is not one valid frame: {e}"));
    assert_eq!(envelope["v"], 1, "{what}: reply version: {envelope}");
    assert_eq!(
        envelope["body"]["type"], "reply",
        "{what}: not a reply: {envelope}"
    );
    let result = &envelope["body"]["result"];
    assert_eq!(result["type"], "error", "{what}: not an error: {envelope}");
    let code = result["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: error without a code: {envelope}"));
    if let Some(expected) = expected_code {
        assert_eq!(code, expected, "{what}: error code: {envelope}");
    }
    Refusal::Error(code.to_owned())
}
