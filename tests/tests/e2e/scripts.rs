//! What a script or a bot relies on with `--json` (docs/json.md): every event a command
//! causes carries the command's id, however late it comes; JSON commands carry ids of the
//! script's choosing and plain lines get the peer's own; a JSON line that is no command is
//! one error with a code; a JSON command is one command, whatever line breaks its text
//! holds; what no command caused (a message arriving, the registry lost
//! and back) carries no id; and wherever a peer appears, its key and fingerprint come with
//! it.

use p2p_e2e::{own_addr, DataDir, JsonPeer, Peer, PublicKey, Server, Value};

/// A peer with `--json` on the registry at `server`.
fn json_peer(name: &str, server: &Server) -> JsonPeer {
    Peer::builder(name).server(server.addr()).start_json()
}

/// `event` must be of kind `kind` and carry the id `id`.
#[track_caller]
fn assert_answers(event: &Value, kind: &str, id: &str) {
    assert_eq!(event["event"], kind, "{event}");
    assert_eq!(event["id"], id, "{event}");
}

/// `peer` (an event or an entry) must carry `key` and its fingerprint.
#[track_caller]
fn assert_keyed(peer: &Value, key: PublicKey) {
    assert_eq!(peer["key"], key.to_string(), "{peer}");
    assert_eq!(peer["fingerprint"], key.fingerprint(), "{peer}");
}

#[test]
fn every_event_a_command_causes_carries_its_id_and_plain_lines_get_the_peers_own() {
    let server = Server::start();
    let alice = json_peer("alice", &server);
    let bob = Peer::start("bob", server.addr());
    bob.register();

    // Plain lines still work with --json, numbered by the peer in order.
    alice.send("register");
    assert_answers(&alice.expect_next_event("registered"), "registered", "c1");
    alice.command("who", "whoami");
    assert_answers(&alice.expect_next_event("whoami"), "whoami", "who");

    // A chat request: the request is sent at once, accepted later; both answer it.
    alice.command("ask bob", "chat request bob");
    assert_answers(&alice.next_event(), "request_sent", "ask bob");
    bob.expect_request("alice", alice.addr(), &alice.fingerprint());
    bob.send("yes");
    bob.expect("accepted chat with alice");
    assert_answers(&alice.next_event(), "request_accepted", "ask bob");

    // Two messages in a row: each `delivered` names its own command. Both may be in flight
    // at once, so their outcomes come in either order; bob shows them in the order typed.
    alice.command("m1", "chat message bob one");
    alice.send("chat message bob two");
    let mut answered: Vec<String> = (0..2)
        .map(|_| {
            let event = alice.next_event();
            assert_eq!(event["event"], "delivered", "{event}");
            event["id"].as_str().expect("an id").to_owned()
        })
        .collect();
    answered.sort();
    assert_eq!(answered, ["c2", "m1"]);
    bob.expect_exact("alice: one");
    bob.expect_exact("alice: two");

    // An error answers the command it is about.
    alice.command("m3", "chat message nobody hi");
    let error = alice.next_event();
    assert_answers(&error, "error", "m3");
    assert_eq!(error["code"], "not_in_chat");

    // What the network alone causes answers no command.
    bob.send("chat message alice hello");
    bob.expect_exact("delivered to alice");
    let message = alice.expect_next_event("message");
    assert_eq!(message["text"], "hello");
    assert!(message.get("id").is_none(), "{message}");

    alice.command("last", "exit");
    assert_answers(&alice.next_event(), "bye", "last");
}

#[test]
fn a_json_line_that_is_no_command_is_one_error_with_its_code_and_id_when_readable() {
    let alice = Peer::builder("alice").start_json();
    let refused = |line: &str, id: &str| {
        alice.send(line);
        let error = alice.next_event();
        assert_answers(&error, "error", id);
        assert_eq!(error["code"], "bad_command_json", "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("not a JSON command ("),
            "{error}"
        );
    };
    refused(r#"{"id": "blank", "cmd": " "}"#, "blank");
    refused(r#"{"id": "x", "cmd": "whoami", "extra": 1}"#, "x");
    // No id to read: the peer gives one, as to a plain line.
    refused(r#"{"cmd": "whoami"}"#, "c1");
    refused("{not json", "c2");
    refused(
        &format!(r#"{{"id": "{}", "cmd": "whoami"}}"#, "i".repeat(65)),
        "c3",
    );
    // The command in a JSON line is checked as a typed one is.
    alice.command("typo", "frobnicate");
    let error = alice.next_event();
    assert_answers(&error, "error", "typo");
    assert_eq!(error["code"], "unknown_command");
    // Blank lines ask for nothing and take no number.
    alice.send("");
    alice.send("whoami");
    assert_answers(&alice.next_event(), "whoami", "c4");
    alice.command("still", "whoami");
    assert_answers(&alice.next_event(), "whoami", "still");

    // Without --json a JSON line is no command: it is typed text.
    let bob = Peer::start_offline("bob");
    bob.send(r#"{"id": "a", "cmd": "whoami"}"#);
    assert!(bob.expect_error().starts_with("error: unknown command"));
}

#[test]
fn a_json_command_is_one_command_and_a_line_break_cannot_add_another() {
    let server = Server::start();
    let alice = json_peer("alice", &server);
    let bob = Peer::start("bob", server.addr());
    bob.register();
    // A bot that puts outside text into a command (`broadcast {text}`) must not run what
    // the text says: each of these is refused whole, and nothing of it runs.
    for (id, cmd) in [("two", "whoami\nstatus"), ("leave", "whoami\nexit")] {
        alice.command(id, cmd);
        let error = alice.next_event();
        assert_answers(&error, "error", id);
        assert_eq!(error["code"], "line_break_in_command", "{error}");
    }
    // Still running, and nothing else was answered in between.
    alice.command("after", "whoami");
    assert_answers(&alice.next_event(), "whoami", "after");

    // A line break in a message's text is the text's: one message of two lines.
    alice.command("ask", "chat request bob");
    assert_answers(&alice.next_event(), "request_sent", "ask");
    bob.expect_request("alice", alice.addr(), &alice.fingerprint());
    bob.send("yes");
    bob.expect("accepted chat with alice");
    assert_answers(&alice.next_event(), "request_accepted", "ask");
    alice.command("two lines", "chat message bob a\nexit");
    assert_answers(&alice.next_event(), "delivered", "two lines");
    bob.expect_exact("alice: a\\u{a}exit");
    alice.command("last", "exit");
    assert_answers(&alice.next_event(), "bye", "last");
}

#[test]
fn a_message_kept_for_an_away_partner_is_delivered_later_answering_its_command() {
    let (bob_dir, bob_addr) = (DataDir::new("bob"), own_addr());
    let bob_at = |data: &DataDir| {
        Peer::builder("bob")
            .data_dir(data.path())
            .at(bob_addr)
            .arg("--exchange-every")
            .arg("1s")
            .start()
    };
    let alice = Peer::builder("alice")
        .arg("--keepalive")
        .arg("1s")
        .arg("--retry-for")
        .arg("1s")
        .arg("--exchange-every")
        .arg("1s")
        .start_json();
    let mut bob = bob_at(&bob_dir);
    bob.send(&format!("chat request 127.0.0.1 {}", alice.port()));
    alice.expect_next_event("request_arrived");
    alice.command("yes", "yes");
    assert_answers(&alice.next_event(), "accepted_chat", "yes");
    bob.expect("chat accepted by alice");
    // Shown once stored, and bob's record of the chat is written before that: after his
    // restart, he knows the chat and takes alice's request to reopen it without a `yes`.
    alice.command("hi", "chat message bob hi");
    assert_answers(&alice.next_event(), "delivered", "hi");
    bob.expect_exact("alice: hi");

    bob.kill();
    let away = alice.expect_event("peer_away");
    assert!(away.get("id").is_none(), "no command made bob go: {away}");
    alice.command("kept", "chat message bob are you there?");
    assert_answers(&alice.next_event(), "queued", "kept");

    let bob = bob_at(&bob_dir);
    let resumed = alice.expect_event("chat_resumed");
    assert!(resumed.get("id").is_none(), "{resumed}");
    assert_answers(&alice.expect_event("delivered"), "delivered", "kept");
    bob.expect_exact("alice: are you there?");
}

#[test]
fn losing_and_regaining_the_registry_are_events_no_command_caused() {
    let data = DataDir::new("registry");
    let mut server = Server::builder()
        .data_dir(data.path())
        .at(own_addr())
        .arg("--ttl")
        .arg("3s")
        .start();
    let at = server.addr();
    let alice = json_peer("alice", &server);
    alice.send("register");
    assert_answers(&alice.next_event(), "registered", "c1");

    server.kill();
    // At the next renewal, a third of the TTL later.
    let lost = alice.next_event();
    assert_eq!(lost["event"], "error", "{lost}");
    assert_eq!(lost["code"], "registry_lost", "{lost}");
    assert!(lost.get("id").is_none(), "{lost}");

    let _server = Server::builder()
        .data_dir(data.path())
        .at(at)
        .arg("--ttl")
        .arg("3s")
        .start();
    let back = alice.next_event();
    assert_eq!(back["event"], "reregistered", "{back}");
    assert_eq!(back["addr"], alice.addr().to_string(), "{back}");
    assert!(back.get("id").is_none(), "{back}");
}

#[test]
fn wherever_a_peer_appears_its_key_and_fingerprint_come_with_it() {
    let server = Server::start();
    let alice = json_peer("alice", &server);
    let (bob, carol) = (
        Peer::start("bob", server.addr()),
        Peer::start("carol", server.addr()),
    );
    for peer in [&bob, &carol] {
        peer.register();
    }
    alice.send("whoami");
    assert_keyed(&alice.expect_next_event("whoami"), alice.key());
    alice.send("listpeer");
    let listed = alice.expect_next_event("peers");
    let peers = listed["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "{listed}");
    assert_keyed(&peers[0], bob.key());
    assert_keyed(&peers[1], carol.key());

    // A request to us, pending, accepted.
    bob.send(&format!("chat request 127.0.0.1 {}", alice.port()));
    assert_keyed(&alice.expect_next_event("request_arrived"), bob.key());
    alice.send("status");
    let status = alice.expect_next_event("status");
    assert_keyed(&status["incoming"][0], bob.key());
    alice.send("yes");
    assert_keyed(&alice.expect_next_event("accepted_chat"), bob.key());
    bob.expect("chat accepted by alice");

    // Ours, sent, pending, accepted.
    alice.send("chat request carol");
    assert_keyed(&alice.expect_next_event("request_sent"), carol.key());
    alice.send("status");
    let status = alice.expect_next_event("status");
    assert_keyed(&status["outgoing"][0], carol.key());
    assert_keyed(&status["chats"][0], bob.key());
    carol.expect_request("alice", alice.addr(), &alice.fingerprint());
    carol.send("yes");
    assert_keyed(&alice.expect_next_event("request_accepted"), carol.key());

    alice.send("list connected peer");
    let connected = alice.expect_next_event("connected");
    assert_keyed(&connected["peers"][0], bob.key());
    assert_keyed(&connected["peers"][1], carol.key());
}
