//! The interface scripts and people rely on beyond the basic commands: `--json`, `help
//! COMMAND`, `status`, and logs that stay off stdout.

use p2p_e2e::{Peer, PublicKey, Server};

#[test]
fn json_mode_prints_one_object_per_line_for_every_event_and_result() {
    let server = Server::start();
    let alice = Peer::builder("alice").server(server.addr()).start_json();
    let alice_addr = alice.addr().to_string();
    let bob = Peer::start("bob", server.addr());
    bob.register();

    alice.send("whoami");
    let whoami = alice.next_event();
    assert_eq!(whoami["event"], "whoami", "{whoami}");
    assert_eq!(whoami["name"], "alice");
    let alice_key: PublicKey = whoami["key"].as_str().unwrap().parse().unwrap();

    alice.send("register");
    let registered = alice.next_event();
    assert_eq!(registered["event"], "registered");
    assert_eq!(registered["addr"], alice_addr.as_str());

    alice.send("listpeer");
    let peers = alice.next_event();
    assert_eq!(peers["event"], "peers");
    let listed: Vec<(&str, &str)> = peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["key"].as_str().unwrap()))
        .collect();
    let (alice_key_text, bob_key_text) = (alice_key.to_string(), bob.key().to_string());
    assert_eq!(
        listed,
        [
            ("alice", alice_key_text.as_str()),
            ("bob", bob_key_text.as_str())
        ]
    );

    // A chat, with text that would need escaping in any line-based format.
    bob.send(&format!(
        "chat request 127.0.0.1 {}",
        alice_addr.rsplit(':').next().unwrap()
    ));
    let arrived = alice.next_event();
    assert_eq!(arrived["event"], "request_arrived");
    assert_eq!(arrived["peer"], "bob");
    assert_eq!(arrived["expires_in_ms"], 60_000);
    assert_eq!(arrived["fingerprint"], bob.fingerprint().as_str());
    alice.send("status");
    let status = alice.next_event();
    assert_eq!(status["event"], "status", "{status}");
    let waiting = &status["incoming"][0];
    assert_eq!(waiting["peer"], "bob", "{status}");
    let received = waiting["received_at"].as_str().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(received).is_ok(),
        "the request's timestamp: {status}"
    );
    alice.send("yes");
    assert_eq!(alice.next_event()["event"], "accepted_chat");
    bob.expect("chat accepted by alice");
    bob.send("chat message alice tab\there \"quoted\" 你好");
    let message = alice.next_event();
    assert_eq!(message["event"], "message");
    assert_eq!(message["peer"], "bob");
    assert_eq!(message["text"], "tab\there \"quoted\" 你好");
    assert!(message["at"].as_str().unwrap().ends_with('Z'), "{message}");

    alice.send("chat message nobody hi");
    let error = alice.next_event();
    assert_eq!(error["event"], "error");
    assert_eq!(error["message"], "not in a chat with nobody");

    alice.send("exit");
    assert_eq!(alice.next_event()["event"], "bye");
    bob.expect("alice disconnected");
}

#[test]
fn help_command_explains_one_command_with_an_example() {
    let peer = Peer::start_offline("alice");
    peer.send("help chat message");
    peer.expect_exact("usage: chat message PEER TEXT");
    peer.expect_prefix("example: chat message bob");
    peer.send("help frobnicate");
    let error = peer.expect_error();
    assert!(error.contains("no command"), "{error}");
    // Still answering.
    peer.send("list connected peer");
    peer.expect_exact("connected peers: 0");
}

#[test]
fn status_shows_the_registry_chats_and_pending_requests_with_time_left() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    let bob = Peer::start("bob", server.addr());
    let carol = Peer::start("carol", server.addr());
    alice.register();
    alice.request_chat(&bob);
    bob.expect_request_from(&alice);
    bob.send("yes");
    alice.expect("chat accepted by bob");
    carol.request_chat(&alice);
    alice.expect_request_from(&carol);

    alice.send("status");
    alice.expect_exact(&format!("status: alice listening on {}", alice.addr()));
    alice.expect_exact(&format!(
        "registry {}: reachable, registered",
        server.addr()
    ));
    alice.expect_exact("chats: 1");
    alice.expect_exact(&format!(
        "chat bob {} key {}",
        bob.addr(),
        bob.fingerprint()
    ));
    alice.expect_exact("incoming requests: 1");
    let pending = alice.expect_prefix(&format!("request from carol {} expires in ", carol.addr()));
    let (left, received) = pending
        .rsplit_once(" (received ")
        .unwrap_or_else(|| panic!("no arrival time: {pending}"));
    assert!(left.ends_with('s'), "{pending}");
    let clock = received.strip_suffix(')').unwrap_or("");
    assert!(
        chrono::NaiveTime::parse_from_str(clock, "%H:%M:%S").is_ok(),
        "a local time: {pending}"
    );
    alice.expect_exact("outgoing requests: 0");

    // Without a registry, status says so rather than failing.
    let lone = Peer::start_offline("lone");
    lone.send("status");
    lone.expect_prefix("status: lone listening on");
    lone.expect(": unreachable");
}

#[test]
fn debug_logs_go_to_stderr_and_leave_stdout_to_the_events() {
    let server = Server::start();
    let mut peer = Peer::builder("alice")
        .server(server.addr())
        .arg("--debug")
        .start();
    peer.send("register");
    peer.expect_exact(&format!("registered as alice at {}", peer.addr()));
    // Exited: the transcript holds all of stderr.
    peer.exit();
    let stdout = peer.stdout_so_far();
    assert!(
        stdout.iter().all(|l| !l.contains("DEBUG")),
        "logs leaked into stdout: {stdout:?}"
    );
    let everything = peer.transcript();
    assert!(
        everything.iter().any(|l| l.contains("DEBUG")),
        "--debug logged nothing: {everything:?}"
    );
}
