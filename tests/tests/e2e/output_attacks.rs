//! Attacks on what the programs print and keep on disk, tried against the real programs on
//! loopback (issue 13, "Output that cannot be forged", "Files"): log injection and log volume
//! at the registry, line breaks in `--json`, invisible and bidirectional characters in text,
//! names made only of dots, and a data folder left readable by all.
//!
//! Each test tries the attack and checks what a user or an operator would see (the lines
//! printed, the modes on disk); each failed before the fix (docs/testing.md).

use std::cell::Cell;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use p2p_e2e::{
    assert_refused, binary, dead_addr, frame, json, outcome, raw_exchange, DataDir, Peer, Proc,
    Server, Signer, Value,
};

/// The registry's budget: refusal lines per address in a window (`server/src/refusals.rs`).
const PER_ADDRESS: usize = 5;

/// A signed `register` whose request type is the attacker's text: the registry's JSON decoder
/// quotes an unknown type in its error, which the registry used to print as it was.
fn register_of_type(kind: &str) -> Vec<u8> {
    let tester = Signer::tester();
    tester.frame(&tester.envelope(json!({ "type": kind })))
}

#[test]
fn a_forged_line_and_escape_sequences_reach_the_registry_log_only_as_a_kind() {
    let server = Server::start();
    let forged = "x\u{1b}[2J\u{1b}]0;owned\u{7}\nregistered root 10.6.6.6:1 key AAAA\u{2028}y";
    let reply = raw_exchange(server.addr(), &register_of_type(forged), false);
    assert_refused(&reply, Some("bad_message"), "the registry");

    // Something after the attack, to know its line was written before this one.
    let alice = Peer::start("alice", server.addr());
    alice.register();
    server.expect_registered(&alice);

    let log = server.stdout_so_far();
    let refusals: Vec<&String> = log.iter().filter(|l| l.starts_with("refused ")).collect();
    assert!(
        matches!(refusals[..], [line] if line.starts_with("refused 127.0.0.1:")
            && line.ends_with(": malformed")),
        "one refusal line, with the kind and not the text: {log:#?}"
    );
    for line in &log {
        assert!(
            !line.starts_with("registered root"),
            "a forged line in the log: {log:#?}"
        );
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{2028}'),
            "a raw control character or line separator in the log: {line:?}"
        );
    }
}

/// A connection from `from` (another loopback address: another host to the registry).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .expect("bind to a loopback address");
    socket
        .connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("cannot connect to {to}: {e}"));
    socket.into()
}

/// Sends a frame the registry refuses from `from` and reads the refusal (so that its log line,
/// written before the reply, is queued by the time this returns).
fn refused_from(from: Ipv4Addr, to: SocketAddr) {
    use std::io::{Read, Write};
    let mut stream = connect_from(from, to);
    stream.write_all(&frame(b"not a request")).expect("send");
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(!reply.is_empty(), "every refusal is answered");
}

#[test]
fn a_flood_of_refusals_from_one_address_is_a_few_lines_and_one_summary() {
    const FLOOD: usize = 1_000;
    let server = Server::start();
    let attacker = Ipv4Addr::new(127, 4, 0, 1);
    for _ in 0..FLOOD {
        refused_from(attacker, server.addr());
    }
    // The refusals' lines are written before this registration's (one queue, in order).
    let alice = Peer::start("alice", server.addr());
    alice.register();

    // The budget's window ends on the registry's own schedule: wait for its summary, counting
    // the refusal lines before it (all the first window's).
    let shown = Cell::new(0);
    let summary = server.expect_line_within(
        "the summary of the refusals from 127.4.0.1",
        Duration::from_secs(60),
        |line| {
            if line.starts_with("refused 127.4.0.1:") {
                shown.set(shown.get() + 1);
            }
            line.contains(" more refusals from 127.4.0.1 in the last 10s (kinds: ")
        },
    );
    assert_eq!(
        shown.get(),
        PER_ADDRESS,
        "a few lines, then the summary: {summary}"
    );
    // The kind of frame sent, and nothing of its bytes.
    assert!(
        summary.ends_with("(kinds: unknown_frame_kind)"),
        "{summary}"
    );
    let more: usize = summary
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count first: {summary:?}"));
    assert!(
        (1..=FLOOD - PER_ADDRESS).contains(&more),
        "{summary:?} counts the refusals not shown"
    );
    // Over the whole flood: a few lines per window, whatever its length.
    let log = server.stdout_so_far();
    let lines = log
        .iter()
        .filter(|l| l.starts_with("refused 127.4.0.1:") || l.contains("from 127.4.0.1 "))
        .count();
    let windows = log.iter().filter(|l| l.contains("from 127.4.0.1 ")).count();
    assert!(
        lines <= (PER_ADDRESS + 1) * (windows + 1),
        "{lines} lines for {FLOOD} refusals"
    );
    assert!(server.is_running());
    assert_eq!(alice.listpeer(), [alice.peer_line()]);
}

/// Starts `p2p-peer --json` named `name`, offline, and returns it with its address.
fn json_peer(name: &str, data: &DataDir) -> (Proc, String) {
    let args = [
        "--json",
        "--name",
        name,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--server",
        &dead_addr().to_string(),
        "--data-dir",
        &data.arg(),
    ]
    .map(String::from);
    let proc = Proc::spawn(format!("json peer {name}"), &binary("p2p-peer"), &args);
    let listening = event(&proc);
    assert_eq!(listening["event"], "listening", "{listening}");
    let addr = listening["addr"].as_str().expect("an address").to_owned();
    let reachable = event(&proc);
    assert_eq!(reachable["event"], "reachable", "{reachable}");
    (proc, addr)
}

/// The next stdout line, which must be one JSON object, and the line as printed.
fn event_line(proc: &Proc) -> (Value, String) {
    let line = proc.next_line();
    let value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
    (value, line)
}

fn event(proc: &Proc) -> Value {
    event_line(proc).0
}

#[test]
fn line_separators_in_a_chat_message_reach_json_output_escaped() {
    let data = DataDir::new("bob");
    let (bob, bob_addr) = json_peer("bob", &data);
    let alice = Peer::start_offline("alice");
    let port = bob_addr.rsplit(':').next().expect("a port");
    alice.send(&format!("chat request 127.0.0.1 {port}"));
    assert_eq!(event(&bob)["event"], "request_arrived");
    bob.send("yes");
    assert_eq!(event(&bob)["event"], "accepted_chat");
    alice.expect("chat accepted by bob");

    let text = "one\u{2028}bob: forged\u{2029}two\u{85}three";
    alice.send(&format!("chat message bob {text}"));
    alice.expect_exact("delivered to bob");
    let (message, line) = event_line(&bob);
    assert_eq!(message["event"], "message", "{line}");
    // The same text once parsed, but not one raw line break in the line itself.
    assert_eq!(message["text"], text, "{line}");
    assert!(
        !line.contains(['\u{2028}', '\u{2029}', '\u{85}']),
        "raw line breaks in {line:?}"
    );
    assert!(
        line.contains(r#""text":"one\u2028bob: forged\u2029two\u0085three""#),
        "{line}"
    );
}

#[test]
fn bidi_and_invisible_characters_are_shown_escaped_in_text() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    // "invoice.exe" written so that a terminal shows "invoiceexe.pdf"-like text, with
    // zero-width and invisible characters between letters.
    let text =
        "invoice\u{202e}fdp.exe \u{200b}pay\u{200d}pal \u{2066}x\u{2069} \u{feff}\u{61c}\u{ad}";
    alice.send(&format!("chat message bob {text}"));
    alice.expect_exact("delivered to bob");
    let shown = bob.expect_prefix("alice: ");
    assert_eq!(
        shown,
        "alice: invoice\\u{202e}fdp.exe \\u{200b}pay\\u{200d}pal \\u{2066}x\\u{2069} \
         \\u{feff}\\u{61c}\\u{ad}"
    );
    // The history shows it the same way.
    bob.send("history alice");
    bob.expect_prefix("history with alice: ");
    let line = bob.next_line();
    assert!(line.ends_with(&shown["alice: ".len()..]), "{line:?}");
}

#[test]
fn names_made_only_of_dots_are_refused_by_the_registry_and_the_peer() {
    let server = Server::start();
    for name in [".", "..", "..."] {
        let signer = Signer::new(name, "127.0.0.1:1");
        let register = signer.frame(&signer.envelope(json!({ "type": "register" })));
        let reply = raw_exchange(server.addr(), &register, false);
        assert_refused(&reply, Some("bad_message"), &format!("register {name:?}"));
        server.expect_prefix("refused 127.0.0.1:");
    }
    // Nobody got a name.
    let lookup = Signer::tester().request(server.addr(), json!({ "type": "list_peers" }));
    assert_eq!(outcome(&lookup), "peers", "{lookup}");
    assert_eq!(lookup["body"]["result"]["peers"], json!([]), "{lookup}");

    let data = DataDir::new("dots");
    for name in [".", "..", "..."] {
        let out = Command::new(binary("p2p-peer"))
            .args(["--name", name, "--port", "0", "--bind", "127.0.0.1"])
            .args([
                "--server",
                &server.addr().to_string(),
                "--data-dir",
                &data.arg(),
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--name {name:?} must be refused");
        assert!(
            stderr.contains("a name cannot be only dots"),
            "--name {name:?}: {stderr}"
        );
    }
    assert_eq!(
        fs::read_dir(data.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// Every folder and file under `dir`, with its mode (links are not followed). A file that
/// is gone by the time it is looked at (a running peer's `.tmp` file, renamed over the one
/// it replaces) is skipped.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        found.push((path.clone(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            found.extend(modes(&path));
        }
    }
    found
}

/// Asserts that `dir`, its folders and its files are owner-only, and that `must` exist.
#[track_caller]
fn assert_private(dir: &Path, must: &[&str]) {
    let mode = fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    let found = modes(dir);
    for name in must {
        assert!(
            found.iter().any(|(path, _)| path.ends_with(name)),
            "{name} in {found:?}"
        );
    }
    for (path, mode) in &found {
        let wanted = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(*mode, wanted, "{} in {found:?}", path.display());
    }
}

/// Opens `dir` to everyone as an earlier version left it: folders 0755, files 0644; key
/// files stay 0600, as every version made them.
fn open_to_all(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    for (path, _) in modes(dir) {
        let mode = match path.extension() {
            _ if path.is_dir() => 0o755,
            Some(ext) if ext == "key" => 0o600,
            _ => 0o644,
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
}

#[test]
fn a_data_folder_left_open_is_made_private_at_start_history_included() {
    let server_dir = DataDir::new("registry");
    let alice_dir = DataDir::new("alice");
    let server = Server::builder().data_dir(server_dir.path()).start();
    let mut alice = Peer::builder("alice")
        .server(server.addr())
        .data_dir(alice_dir.path())
        .start();
    let bob = Peer::start("bob", server.addr());
    alice.register();
    alice.chat_with(&bob);
    alice.say(&bob, "kept in the history");
    bob.say(&alice, "me too");

    // New files are private from the start.
    let history = ["history-alice.db", "known_peers-alice", "alice.key"];
    assert_private(alice_dir.path(), &history);
    assert_private(server_dir.path(), &["claims.db", "registry.key"]);

    alice.exit();
    drop(server);
    open_to_all(alice_dir.path());
    open_to_all(server_dir.path());

    let server = Server::builder().data_dir(server_dir.path()).start();
    let log = server.stdout_so_far();
    let claims = server_dir.path().join("claims.db");
    assert!(
        log.contains(&format!(
            "made {} private: mode 644 -> 600",
            claims.display()
        )),
        "{log:#?}"
    );
    assert_private(server_dir.path(), &["claims.db", "registry.key"]);

    let alice = Peer::builder("alice")
        .server(server.addr())
        .data_dir(alice_dir.path())
        .start();
    // The folder first, then its files.
    alice.expect_log(&format!(
        "made {} private: mode 755 -> 700",
        alice_dir.path().display()
    ));
    let db = alice_dir.path().join("history-alice.db");
    alice.expect_log(&format!("made {} private: mode 644 -> 600", db.display()));
    // The history is still there, and what is written now is private too.
    assert_eq!(
        alice.run("history bob").len(),
        3,
        "the header and two lines"
    );
    alice.register();
    assert_private(alice_dir.path(), &history);
}
