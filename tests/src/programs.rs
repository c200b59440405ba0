//! The real programs, started for a test: [`Server`] (a registry) and [`Peer`], each on
//! loopback and a port chosen at run time, with a data folder of its own, and the steps a
//! test takes with them (register, chat, ...), each checked as a user would.

use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use p2p_shared::identity::PublicKey;

use crate::proc::{binary, DataDirUse, Proc};
use crate::wire::dead_addr;

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
    at: Option<SocketAddr>,
    extra: Vec<String>,
}

/// A loopback address that no other program of the test run listens on (127.0.2.1 and on,
/// one per call) and a port free there: for a program that a test stops and starts again
/// at its address. A port of 127.0.0.1 let go could be taken meanwhile by another test's
/// listener or outgoing connection (every chat message is one). Other programs' connections
/// leave from 127.0.0.1 whatever loopback address they go to, and a program bound to its own
/// address sends from that one, so nothing else takes its port.
pub fn own_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let third = u8::try_from(2 + n / 254).expect("fewer than 64,000 own addresses");
    let ip = std::net::Ipv4Addr::new(127, 0, third, (1 + n % 254) as u8);
    let probe = std::net::TcpListener::bind((ip, 0)).expect("a port on an own loopback address");
    probe.local_addr().expect("local_addr")
}

impl ServerBuilder {
    /// `--data-dir DIR`: a directory the test keeps, to restart the registry with the same
    /// key and name claims. Without it the registry gets a fresh one of its own.
    pub fn data_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.data_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// `--bind IP --port PORT` for `addr` (from [`own_addr`]) instead of 127.0.0.1 and a
    /// port chosen at start: for a registry started again where its peers last saw it.
    pub fn at(mut self, addr: SocketAddr) -> Self {
        self.at = Some(addr);
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
        let at = self
            .at
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let mut args: Vec<String> = vec![
            "--bind".into(),
            at.ip().to_string(),
            "--port".into(),
            at.port().to_string(),
            "--data-dir".into(),
            data.path().display().to_string(),
        ];
        args.extend(self.extra);
        let proc = Proc::spawn("server", &binary("p2p-server"), &args);
        let addr = listening_addr(&proc, "listening on ", Some(at.ip()));
        if at.port() != 0 && addr != at {
            proc.fail(&format!("asked for {at} but got {addr}"));
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
            at: None,
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
        self.expect_exact(&registered_line(peer));
    }

    /// The same for each of `peers`, in whatever order they register.
    #[track_caller]
    pub fn expect_all_registered(&self, peers: &[&Peer]) {
        let mut waiting: Vec<String> = peers.iter().map(|p| registered_line(p)).collect();
        while !waiting.is_empty() {
            let line = self.expect_line("a registration of those waited for", |l| {
                waiting.iter().any(|w| w == l)
            });
            waiting.retain(|w| *w != line);
        }
    }
}

fn registered_line(peer: &Peer) -> String {
    format!(
        "registered {} {} key {}",
        peer.name(),
        peer.addr(),
        peer.fingerprint()
    )
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
fn listening_addr(proc: &Proc, prefix: &str, bind: Option<IpAddr>) -> SocketAddr {
    let line = proc.expect_prefix(prefix);
    let addr: SocketAddr = line[prefix.len()..]
        .parse()
        .unwrap_or_else(|_| proc.fail(&format!("cannot parse the address in {line:?}")));
    let where_wanted = bind.map_or(addr.ip().is_loopback(), |ip| addr.ip() == ip);
    if !where_wanted || addr.port() == 0 {
        proc.fail(&format!(
            "expected a loopback (or the given) address and a real port in {line:?}"
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
    at: Option<SocketAddr>,
    /// A network namespace to run in, and the address to bind there (`TestLan`).
    netns: Option<(String, IpAddr)>,
    /// The largest file the peer may write, in bytes (`RLIMIT_FSIZE`): a disk that fills.
    file_size_limit: Option<u64>,
}

impl PeerBuilder {
    /// The registry (`--server`). Without it the peer gets a loopback port nobody listens on.
    pub fn server(mut self, addr: impl Display) -> Self {
        self.server = Some(addr.to_string());
        self
    }

    /// `--bind IP --port PORT` for `addr` (from [`own_addr`]) instead of 127.0.0.1 and a
    /// port chosen at start: for a peer restarted where its partners last saw it.
    pub fn at(mut self, addr: SocketAddr) -> Self {
        self.at = Some(addr);
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

    /// Runs the peer in the network namespace `ns` (`ip netns exec`), listening on `ip`
    /// there: a host of a [`crate::TestLan`].
    pub fn netns(mut self, ns: &str, ip: IpAddr) -> Self {
        self.netns = Some((ns.to_string(), ip));
        self
    }

    /// Any extra argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra.push(arg.into());
        self
    }

    /// Runs the peer unable to grow any file past `bytes` (`prlimit --fsize`, with
    /// `SIGXFSZ` ignored so that a write past it fails instead of killing the peer): a disk
    /// that fills up under it.
    pub fn file_size_limit(mut self, bytes: u64) -> Self {
        self.file_size_limit = Some(bytes);
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
        let bind = self.netns.as_ref().map(|(_, ip)| *ip);
        let bind = bind.or(self.at.map(|at| at.ip()));
        let (proc, name, data) = self.spawn();
        let addr = listening_addr(&proc, &format!("{name} listening on "), bind);
        let key = whoami(&proc, &name);
        Peer {
            proc,
            name,
            addr,
            key,
            data,
        }
    }

    /// Starts the peer with these options, answering its start-up questions if it has no
    /// flags for them: the process, the peer's name and its data folder.
    #[track_caller]
    pub(crate) fn spawn(self) -> (Proc, String, DataDirUse) {
        let server = self.server.unwrap_or_else(|| dead_addr().to_string());
        let data = DataDirUse::new(self.data_dir, &self.name);
        let mut args: Vec<String> = Vec::new();
        if self.flags {
            args.extend([
                "--name".into(),
                self.name.clone(),
                "--port".into(),
                self.at.map_or(0, |at| at.port()).to_string(),
            ]);
        }
        let bind = self.netns.as_ref().map(|(_, ip)| *ip);
        let bind = bind.or(self.at.map(|at| at.ip()));
        args.extend([
            "--bind".into(),
            bind.map_or_else(|| "127.0.0.1".into(), |ip| ip.to_string()),
            "--server".into(),
            server,
            "--data-dir".into(),
            data.path().display().to_string(),
        ]);
        args.extend(self.extra);
        let label = format!("peer {}", self.name);
        let proc = match (self.netns, self.file_size_limit) {
            (None, None) => Proc::spawn(label, &binary("p2p-peer"), &args),
            (None, Some(bytes)) => {
                let limit = format!("trap '' XFSZ; exec prlimit --fsize={bytes} -- \"$@\"");
                let peer = binary("p2p-peer").display().to_string();
                let wrapped = ["-c".into(), limit, "sh".into(), peer];
                let args: Vec<String> = wrapped.into_iter().chain(args).collect();
                Proc::spawn(label, Path::new("sh"), &args)
            }
            (Some(_), Some(_)) => panic!("a file size limit in a network namespace: not built"),
            (Some((ns, _)), None) => {
                let peer = binary("p2p-peer").display().to_string();
                let inside = ["netns".into(), "exec".into(), ns, peer];
                let args: Vec<String> = inside.into_iter().chain(args).collect();
                Proc::spawn(label, Path::new("ip"), &args)
            }
        };
        if !self.flags {
            proc.send("0");
            proc.send(&self.name);
        }
        (proc, self.name, data)
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
            at: None,
            netns: None,
            file_size_limit: None,
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

    /// This peer's own file `file` in its data folder (`known_peers`: `DATA/known_peers-NAME`).
    pub fn data_file(&self, file: &str) -> PathBuf {
        self.data_dir().join(format!("{file}-{}", self.name))
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

    /// `register`, and checks that it printed exactly `registered as NAME at ADDR`.
    #[track_caller]
    pub fn register(&self) {
        self.send("register");
        self.expect_next(&format!("registered as {} at {}", self.name, self.addr));
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

    /// `peers`: the `known NAME ...` lines after `known peers: N`.
    #[track_caller]
    pub fn known(&self) -> Vec<String> {
        self.send("peers");
        self.expect_list("known peers: ")
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

    /// Waits for `chat request sent to OTHER (ADDR), waiting for an answer`, with or
    /// without ` (unverified)` after the name (tests of verification use
    /// [`Peer::expect_request_sent_vouched`]).
    #[track_caller]
    pub fn expect_request_sent(&self, other: &Peer) {
        let line = self.expect_prefix(&format!("chat request sent to {}", other.name));
        let rest = format!(" ({}), waiting for an answer", other.addr);
        if line != format!("chat request sent to {}{rest}", other.name)
            && line != format!("chat request sent to {} (unverified){rest}", other.name)
        {
            self.fail(&format!("unexpected line {line:?}"));
        }
    }

    /// The same, verified (`true`) or marked unverified.
    #[track_caller]
    pub fn expect_request_sent_vouched(&self, other: &Peer, verified: bool) {
        let mark = if verified { "" } else { " (unverified)" };
        self.expect_exact(&format!(
            "chat request sent to {}{mark} ({}), waiting for an answer",
            other.name, other.addr
        ));
    }

    /// Waits for `chat request from OTHER (ADDR): answer yes or no (expires in Ns), key FP`
    /// and returns it.
    #[track_caller]
    pub fn expect_request_from(&self, other: &Peer) -> String {
        self.expect_request(&other.name, other.addr, &other.fingerprint())
    }

    /// The same for any requester: `chat request from NAME (ADDR): ..., key FINGERPRINT`,
    /// with or without ` (unverified)` after NAME (tests of verification use
    /// [`Peer::expect_request_vouched`]).
    #[track_caller]
    pub fn expect_request(&self, name: &str, addr: SocketAddr, fingerprint: &str) -> String {
        let line = self.expect_prefix(&format!("chat request from {name} ("));
        let line = line.replacen(" (unverified)", "", 1);
        self.check_request_line(line, name, addr, fingerprint)
    }

    /// The same, verified (`true`) or marked unverified.
    #[track_caller]
    pub fn expect_request_vouched(
        &self,
        name: &str,
        addr: SocketAddr,
        fingerprint: &str,
        verified: bool,
    ) -> String {
        let mark = if verified { "" } else { " (unverified)" };
        let line = self.expect_prefix(&format!("chat request from {name}{mark} ({addr}): "));
        let line = line.replacen(mark, "", 1);
        self.check_request_line(line, name, addr, fingerprint)
    }

    #[track_caller]
    fn check_request_line(
        &self,
        line: String,
        name: &str,
        addr: SocketAddr,
        fingerprint: &str,
    ) -> String {
        let start = format!("chat request from {name} ({addr}): answer yes or no (expires in ");
        if !line.starts_with(&start) {
            self.fail(&format!("unexpected request line {line:?}"));
        }
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
        // `trust registry FP` is the registry's command: a peer of that name takes the longer
        // form.
        let trust = match name {
            "registry" => "trust peer",
            _ => "trust",
        };
        format!(
            "WARNING: {name} presented key {offered}, but the key known for {name} is \
             {pinned}. Someone may be impersonating {name}; refused. If {name} really has a \
             new key, check its fingerprint with {name} and type: {trust} {name} {offered}"
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

    /// `yes` to `requester`'s pending request: exactly `accepted chat with` here, and `chat
    /// accepted by` there, naming the address it reached us at (ours, or a proxy's).
    #[track_caller]
    pub fn accept_chat(&self, requester: &Peer, reached_at: SocketAddr) {
        self.send("yes");
        self.expect_next(&format!(
            "accepted chat with {} ({})",
            requester.name, requester.addr
        ));
        requester.expect_next(&format!("chat accepted by {} ({reached_at})", self.name));
    }

    /// `chat message OTHER TEXT`: exactly `delivered to OTHER` here and `SELF: TEXT` there.
    #[track_caller]
    pub fn say(&self, other: &Peer, text: &str) {
        self.send(&format!("chat message {} {text}", other.name));
        self.expect_next(&format!("delivered to {}", other.name));
        other.expect_next(&format!("{}: {text}", self.name));
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
