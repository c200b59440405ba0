//! The peer's log (stderr): ordinary events are not warnings, and a log written to a file
//! holds no terminal codes (issue 17, item 9).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use p2p_e2e::{assert_refused, binary, dead_addr, raw_exchange, DataDir, Peer, Proxy};
use p2p_kit::p2p_env;

/// The warnings among `peer`'s log lines read so far (all of them once it exited).
fn warnings(peer: &Peer) -> Vec<String> {
    let log = peer.take_log();
    log.into_iter().filter(|l| l.contains("WARN")).collect()
}

#[test]
fn a_check_that_crossed_the_partners_goodbye_is_no_warning() {
    // alice checks bob every second with a keepalive sealed in the chat.
    let mut alice = Peer::builder("alice").arg("--keepalive").arg("1s").start();
    let mut bob = Peer::start_offline("bob");
    let proxy = Proxy::start(bob.addr());
    alice.send(&format!("chat request 127.0.0.1 {}", proxy.port()));
    alice.expect_request_sent(&bob);
    bob.expect_request_from(&alice);
    bob.accept_chat(&alice, proxy.addr());

    // One of alice's checks is held up on the way (kept by the proxy) while she says goodbye:
    // it reaches bob only after the chat ended at both ends.
    proxy.intercept_sealed(true);
    let late = proxy.wait_for("a check of alice's, kept", |c| {
        c.kind() == Some(b'E') && !c.forwarded
    });
    proxy.intercept_sealed(false);
    alice.send("disconnect bob");
    alice.expect_exact("disconnected from bob");
    bob.expect_exact("alice disconnected");
    let reply = raw_exchange(bob.addr(), &late.sent, false);
    // Answered as before (alice's check learns the chat is gone), ...
    assert_refused(&reply, Some("unknown_session"), "the late check");
    alice.exit();
    bob.exit();
    // ... but a goodbye crossing a check is how chats end, not tampering: no warning (before,
    // `WARN refused ...: it opens in no session here (unknown or ended session, or altered)`).
    assert_eq!(warnings(&bob), Vec::<String>::new());
    assert_eq!(warnings(&alice), Vec::<String>::new());
}

#[test]
fn a_log_redirected_to_a_file_holds_no_terminal_codes() {
    let data = DataDir::new("alice");
    let logs = DataDir::new("logs");
    // A folder an earlier version left open to all: the peer fixes it and says so, a warning.
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = logs.path().join("alice.log");
    let mut command = Command::new(binary("p2p-peer"));
    command
        .args(["--name", "alice", "--port", "0", "--bind", "127.0.0.1"])
        .args([
            "--server",
            &dead_addr().to_string(),
            "--data-dir",
            &data.arg(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&file).unwrap());
    for var in p2p_env() {
        command.env_remove(var);
    }
    let mut peer = command.spawn().unwrap();
    peer.stdin.take().unwrap().write_all(b"exit\n").unwrap();
    assert!(peer.wait().unwrap().success());
    let log = std::fs::read_to_string(&file).unwrap();
    assert!(log.contains("WARN") && log.contains("private"), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");
}
