//! Attacks on protocol version 2 (docs/security.md), each against the real binaries on
//! loopback: the attack is tried, seen refused, and the system is seen still working after it.
//!
//! The attacker is played by the test: [`Signer`] signs envelopes with a key of its own (in any
//! name), and [`Proxy`] sits between alice and bob (or a peer and the registry), records every
//! byte both ways, and can hold sealed chat frames back.

use std::os::unix::fs::PermissionsExt;

use p2p_e2e::{
    assert_refused, assert_refused_with, contains, envelope, json, outcome, own_addr, raw_exchange,
    signer_of, stray_handshake, Capture, DataDir, Identity, Peer, Proc, Proxy, Refusal, Server,
    Signer, Value,
};

const NONE: Vec<String> = Vec::new();

/// alice asks bob for a chat through a proxy in front of bob (`chat request 127.0.0.1
/// PROXYPORT`), bob accepts. alice keeps the address she dialed, so her chat messages (and
/// bob's acknowledgements of them) travel through the proxy; bob's answer and bob's own
/// messages go straight to alice's address.
fn proxied_chat() -> (Peer, Peer, Proxy) {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    let proxy = Proxy::start(bob.addr());
    alice.send(&format!("chat request 127.0.0.1 {}", proxy.port()));
    // bob's reply names his own address.
    alice.expect_request_sent(&bob);
    bob.expect_request_from(&alice);
    bob.accept_chat(&alice, proxy.addr());
    assert_eq!(alice.connected(), vec![bob.connected_line_at(proxy.addr())]);
    (alice, bob, proxy)
}

/// The one capture in `captures`.
#[track_caller]
fn only(captures: Vec<Capture>, what: &str) -> Capture {
    match <[Capture; 1]>::try_from(captures) {
        Ok([capture]) => capture,
        Err(all) => panic!("expected one {what} through the proxy, got {}", all.len()),
    }
}

/// `history PEER 100` at `peer`: the `TIME NAME: TEXT` lines.
#[track_caller]
/// A `chat_answer` accepting the chat request `request`, with a fresh key share.
fn acceptance_of(request: &Value) -> Value {
    json!({
        "type": "chat_answer",
        "request": request["id"],
        "answer": "accepted",
        "pattern": "IX", "handshake": stray_handshake(),
    })
}

fn history(peer: &Peer, with: &str) -> Vec<String> {
    peer.send(&format!("history {with} 100"));
    peer.expect_list(&format!("history with {with}: "))
}

// ---------------------------------------------------------------------------------------------
// a. Messages claiming to be from alice, not made with alice's key
// ---------------------------------------------------------------------------------------------

#[test]
fn a_chat_request_in_alices_name_not_signed_by_her_key_is_refused() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");

    // alice's name, address and key, signed by mallory's key.
    let mallory = Signer::new("mallory", alice.addr());
    let forged = envelope(
        "alice",
        alice.addr(),
        &alice.key(),
        json!({ "type": "chat_request", "pattern": "IX", "handshake": stray_handshake() }),
    );
    assert_refused_with(
        bob.addr(),
        &mallory.frame(&forged),
        "bad_signature",
        &bob.key(),
    );
    assert_eq!(bob.unread_lines(), NONE, "no request, no warning");
    let out = bob.run("yes");
    assert!(p2p_e2e::is_one_error(&out), "nothing pending: {out:?}");

    // The real alice is welcome.
    alice.chat_with(&bob);
    alice.say(&bob, "it is really me");
}

#[test]
fn a_signed_chat_request_from_another_key_in_a_pinned_name_is_refused_with_a_warning() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    // bob pins alice's key on first contact.
    alice.chat_with(&bob);
    alice.send("disconnect bob");
    alice.expect_exact("disconnected from bob");
    bob.expect_exact("alice disconnected");

    // mallory calls herself alice, with her own key, and signs correctly.
    let mallory = Signer::new("alice", alice.addr());
    let (request, _) = mallory.chat_request();
    let reply = mallory.send(bob.addr(), &request);
    assert_eq!(outcome(&reply), "key_changed", "{reply}");
    assert_eq!(signer_of(&reply), bob.key(), "{reply}");
    bob.expect_exact(&Peer::key_warning(
        "alice",
        &mallory.key().fingerprint(),
        &alice.fingerprint(),
    ));
    assert_eq!(bob.unread_lines(), NONE, "no chat request is shown");
    let out = bob.run("yes alice");
    assert!(p2p_e2e::is_one_error(&out), "nothing pending: {out:?}");

    // The real alice is still known and welcome.
    alice.chat_with(&bob);
    alice.say(&bob, "it is really me");
    assert_eq!(bob.connected(), vec![alice.connected_line()]);
}

#[test]
fn forged_sealed_frames_are_refused_and_show_nothing() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);

    let random = || uuid::Uuid::new_v4().as_bytes().to_vec();
    let frames = [
        // A random session id, counter 0, random ciphertext.
        [
            vec![b'E'],
            random(),
            vec![0; 8],
            random(),
            random(),
            random(),
        ]
        .concat(),
        // The same with a large counter.
        [vec![b'E'], random(), vec![0xff; 8], random(), random()].concat(),
        // A header and no ciphertext at all.
        [vec![b'E'], random(), vec![0; 8]].concat(),
    ];
    for body in frames {
        assert_refused_with(
            bob.addr(),
            &p2p_e2e::frame(&body),
            "unknown_session",
            &bob.key(),
        );
    }
    assert_eq!(bob.unread_lines(), NONE, "nothing shown");
    alice.say(&bob, "still here");
    bob.say(&alice, "me too");
}

// ---------------------------------------------------------------------------------------------
// b. Captured messages replayed
// ---------------------------------------------------------------------------------------------

#[test]
fn a_captured_chat_message_replayed_is_refused_and_shown_once() {
    let (alice, bob, proxy) = proxied_chat();
    alice.say(&bob, "pay mallory 10 euros");
    let sealed = only(proxy.captures_of_kind(b'E'), "sealed frame");
    assert!(sealed.forwarded);

    // Straight to bob's real port, length prefix included, byte for byte.
    assert_refused_with(bob.addr(), &sealed.sent, "stale", &bob.key());
    assert_eq!(bob.unread_lines(), NONE, "not shown again");
    // And the captured chat request: its id was seen.
    let request = only(proxy.requests_of_type("chat_request"), "chat request");
    assert_refused_with(bob.addr(), &request.sent, "stale", &bob.key());
    assert_eq!(bob.unread_lines(), NONE);

    let kept: Vec<String> = history(&bob, "alice")
        .into_iter()
        .filter(|l| l.ends_with("alice: pay mallory 10 euros"))
        .collect();
    assert_eq!(kept.len(), 1, "stored once: {kept:?}");
    alice.say(&bob, "only once, please");
    bob.say(&alice, "only once it is");
    assert_eq!(bob.connected(), vec![alice.connected_line()]);
}

// ---------------------------------------------------------------------------------------------
// c. Tampered messages
// ---------------------------------------------------------------------------------------------

#[test]
fn a_tampered_chat_message_is_refused_and_nothing_is_shown() {
    // alice gives up on a message after one second of no answer, and asks her away chats
    // again every second.
    let alice = Peer::builder("alice")
        .arg("--retry-for")
        .arg("1s")
        .arg("--exchange-every")
        .arg("1s")
        .start();
    let bob = Peer::start_offline("bob");
    let proxy = Proxy::start(bob.addr());
    alice.send(&format!("chat request 127.0.0.1 {}", proxy.port()));
    alice.expect_request_sent(&bob);
    bob.expect_request_from(&alice);
    bob.accept_chat(&alice, proxy.addr());

    // The attacker holds alice's message back (every try): bob never sees it. alice's
    // requests to reopen the chat (every second, once it is away) wait at the proxy until
    // the end, so that the frames below meet the chat they were sealed in.
    proxy.intercept_sealed(true);
    proxy.hold_signed(true);
    alice.send("chat message bob the code is 4711");
    alice.expect_prefix("bob is away (");
    alice.expect_prefix("queued for bob: ");
    proxy.intercept_sealed(false);
    let held: Vec<Capture> = proxy
        .captures_of_kind(b'E')
        .into_iter()
        .filter(|c| !c.forwarded)
        .collect();
    assert!(!held.is_empty(), "alice's tries were held back");
    let frame = &held[0].sent;
    // 4 length bytes, then 'E' | session id (16) | counter (8) | ciphertext and tag.
    assert!(frame.len() > 4 + 25 + 16, "{} bytes", frame.len());

    let positions = [
        ("session id", 4 + 1),
        ("session id", 4 + 16),
        ("counter", 4 + 17),
        ("counter", 4 + 24),
        ("ciphertext", 4 + 25),
        ("ciphertext", 4 + 25 + 10),
        ("tag", frame.len() - 1),
    ];
    for (what, i) in positions {
        for flip in [0x01, 0x80] {
            let mut tampered = frame.clone();
            tampered[i] ^= flip;
            let reply = raw_exchange(bob.addr(), &tampered, false);
            let refusal =
                p2p_e2e::assert_refused(&reply, Some("unknown_session"), &format!("{what} {i}"));
            assert_ne!(refusal, p2p_e2e::Refusal::Closed, "{what} byte {i}");
        }
    }
    // The kind byte: no longer a sealed frame at all.
    let mut tampered = frame.clone();
    tampered[4] = b'D';
    assert_refused_with(bob.addr(), &tampered, "bad_frame", &bob.key());
    assert_eq!(bob.unread_lines(), NONE, "nothing from the tampered frames");

    // The frame as alice sealed it still opens at bob: only the tampering was refused.
    let reply = raw_exchange(bob.addr(), frame, false);
    assert_eq!(reply.get(4), Some(&b'A'), "a sealed acknowledgement");
    bob.expect_exact("alice: the code is 4711");
    assert_refused_with(bob.addr(), frame, "stale", &bob.key());

    // Afterwards: alice reopens the chat and sends the kept message again, under its id:
    // bob, who has it already, does not show it twice.
    proxy.hold_signed(false);
    alice.expect_prefix("bob is back (");
    alice.expect_exact("delivered to bob");
    bob.expect_prefix("alice is back (");
    alice.say(&bob, "new chat");
    bob.say(&alice, "fine");
    let shown = bob.stdout_so_far();
    let shown: Vec<&String> = shown
        .iter()
        .filter(|l| l.ends_with("the code is 4711"))
        .collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
}

/// The swapped reply of issue 13: a refusal bob really signed, but for another frame, handed
/// to alice as his answer to her message. It used to close her chat.
#[test]
fn a_refusal_bob_signed_for_another_frame_does_not_end_alices_chat() {
    // alice's liveness checks go through the proxy too: an hour apart, so that the one frame
    // the attacker answers is her message, not a check.
    let alice = Peer::builder("alice").arg("--keepalive").arg("1h").start();
    let bob = Peer::start_offline("bob");
    let proxy = Proxy::start(bob.addr());
    alice.send(&format!("chat request 127.0.0.1 {}", proxy.port()));
    alice.expect_request_sent(&bob);
    bob.expect_request_from(&alice);
    bob.accept_chat(&alice, proxy.addr());

    // On the path, mallory keeps alice's next message from bob and sends bob a copy with one
    // bit of its tag changed: the same chat id and counter, in a frame that opens nowhere.
    // Bob's signed `unknown_session` refusal of that copy is the answer alice gets.
    let to_bob = bob.addr();
    proxy.answer_next_sealed(move |frame| {
        let mut altered = frame.to_vec();
        *altered.last_mut().expect("a whole frame") ^= 0x01;
        raw_exchange(to_bob, &altered, false)
    });
    alice.send("chat message bob pay mallory 10 euros");
    assert_eq!(
        alice.expect_error(),
        format!(
            "error: bob ({}) sent an acknowledgement that does not open with the chat's keys; \
             message not confirmed",
            proxy.addr()
        ),
        "the message is reported unconfirmed, not the chat as closed by bob"
    );
    // What alice was handed: a refusal signed by bob's key, naming a frame that is not hers.
    let swapped = only(proxy.captures_of_kind(b'E'), "sealed frame");
    assert!(!swapped.forwarded, "alice's message never reached bob");
    let refusal = p2p_e2e::decode_reply(&swapped.received).expect("a signed reply");
    assert_eq!(outcome(&refusal), "unknown_session", "{refusal}");
    assert_eq!(signer_of(&refusal), bob.key(), "{refusal}");
    let hers = p2p_e2e::frame_body(&swapped.sent).expect("one frame");
    let hers = p2p_shared::wire::RequestDigest::of(hers);
    assert_ne!(refusal["body"]["re_digest"], json!(hers), "{refusal}");
    assert_eq!(bob.unread_lines(), NONE, "bob showed nothing");

    // alice's chat is still open, and her next message is delivered and shown at bob.
    assert_eq!(alice.connected(), vec![bob.connected_line_at(proxy.addr())]);
    alice.say(&bob, "this one is really from me");
    bob.say(&alice, "got it");
    assert_eq!(bob.connected(), vec![alice.connected_line()]);
}

// ---------------------------------------------------------------------------------------------
// d. No plaintext on the wire
// ---------------------------------------------------------------------------------------------

#[test]
fn the_bytes_of_a_chat_on_the_wire_contain_no_plaintext() {
    let (alice, bob, proxy) = proxied_chat();
    let from_alice = [
        "zebra quokka 4711 canary",
        "Überweisung an Mallory: 1000 €",
        "secret-secret-secret-secret-secret-secret-secret",
    ];
    let from_bob = ["walrus narwhal 0815 canary", "rendez-vous à 12h"];
    for (a, b) in from_alice.iter().zip(from_bob.iter().chain([&"ok"])) {
        alice.say(&bob, a);
        bob.say(&alice, b);
    }
    alice.send("disconnect bob");
    alice.expect_exact("disconnected from bob");
    bob.expect_exact("alice disconnected");

    let sealed = proxy.captures_of_kind(b'E');
    assert!(
        sealed.len() > from_alice.len(),
        "alice's messages and goodbye went through the proxy: {} sealed frames",
        sealed.len()
    );
    assert!(
        sealed.iter().all(|c| c.received.get(4) == Some(&b'A')),
        "each was acknowledged through the proxy"
    );
    let wire = proxy.all_bytes();
    // The search works: signed requests are readable on the wire (names and ids are public).
    assert!(
        contains(&wire, b"chat_request"),
        "the capture is searchable"
    );
    assert!(contains(&wire, b"\"alice\""), "the capture is searchable");
    for text in from_alice.iter().chain(from_bob.iter()) {
        assert!(!contains(&wire, text.as_bytes()), "{text:?} is on the wire");
        // Nor any long piece of it.
        let bytes = text.as_bytes();
        for piece in bytes.windows(8) {
            assert!(!contains(&wire, piece), "{:?} of {text:?}", piece);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// e. A held name, before and after a registry restart
// ---------------------------------------------------------------------------------------------

#[test]
fn another_key_cannot_register_a_held_name_before_or_after_a_registry_restart() {
    let (registry_dir, alice_dir) = (DataDir::new("registry"), DataDir::new("alice"));
    let mut server = Server::builder().data_dir(registry_dir.path()).start();
    let mut alice = Peer::builder("alice")
        .server(server.addr())
        .data_dir(alice_dir.path())
        .start();
    alice.register();
    server.expect_registered(&alice);

    let impostor = Peer::start("alice", server.addr());
    assert_ne!(impostor.key(), alice.key());
    impostor.send("register");
    let error = impostor.expect_error();
    assert!(error.contains("taken"), "expected 'taken' in {error:?}");
    assert_eq!(impostor.listpeer(), vec![alice.peer_line()]);
    drop(impostor);

    // Everyone goes; the registry is killed, and comes back with the same data directory on
    // another port.
    alice.exit();
    let registry_key = server.key();
    server.kill();
    drop(server);
    let server = Server::builder().data_dir(registry_dir.path()).start();
    assert_eq!(server.key(), registry_key, "the registry kept its key");
    let key_file = registry_dir.path().join("registry.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}: {mode:o}", key_file.display());

    let impostor = Peer::start("alice", server.addr());
    impostor.send("register");
    let error = impostor.expect_error();
    assert!(error.contains("taken"), "expected 'taken' in {error:?}");
    assert_eq!(impostor.listpeer(), NONE, "nobody is registered");

    // The real alice (same data directory, same key) still owns the name.
    let alice = Peer::builder("alice")
        .server(server.addr())
        .data_dir(alice_dir.path())
        .start();
    alice.register();
    server.expect_registered(&alice);
    assert_eq!(impostor.listpeer(), vec![alice.peer_line()]);
}

// ---------------------------------------------------------------------------------------------
// f. exit network (and the like) for alice, sent by someone else
// ---------------------------------------------------------------------------------------------

#[test]
fn only_alices_key_can_unregister_release_or_move_her_name() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    alice.register();
    server.expect_registered(&alice);
    let mallory = Signer::new("mallory", alice.addr());

    for request in ["unregister", "release", "register"] {
        let body = json!({ "type": request });
        // In alice's name, signed (validly) by mallory's key, which does not own the name.
        let as_alice = envelope("alice", alice.addr(), &mallory.key(), body.clone());
        let reply = mallory.send(server.addr(), &as_alice);
        assert_eq!(outcome(&reply), "name_taken", "{request}: {reply}");
        assert_eq!(signer_of(&reply), server.key(), "{reply}");
        // Naming alice's key, which mallory cannot sign for.
        let forged = envelope("alice", alice.addr(), &alice.key(), body);
        assert_refused_with(
            server.addr(),
            &mallory.frame(&forged),
            "bad_signature",
            &server.key(),
        );
        server.expect_prefix("refused 127.0.0.1:");
    }
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);

    // alice still holds her name and leaves by herself.
    alice.send("exit network");
    alice.expect_exact("left the network");
    server.expect_exact("unregistered alice");
    assert_eq!(alice.listpeer(), NONE);
}

#[test]
fn a_captured_exit_network_replayed_after_alice_came_back_is_refused() {
    let server = Server::start();
    let proxy = Proxy::start(server.addr());
    let alice = Peer::start("alice", proxy.addr());
    alice.register();
    alice.send("exit network");
    alice.expect_exact("left the network");
    alice.register();
    server.expect_registered(&alice);

    // Her first `register` was signed and opened a registry session; `exit network` was
    // sealed in it and ended it; coming back took a signed `register` again.
    let unregister = only(proxy.captures_of_kind(b'R'), "sealed exit network");
    assert_refused_with(
        server.addr(),
        &unregister.sent,
        "unknown_session",
        &server.key(),
    );
    let register = proxy.requests_of_type("register");
    assert_eq!(register.len(), 2, "two signed registrations");
    assert_refused_with(server.addr(), &register[0].sent, "stale", &server.key());
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);
}

#[test]
fn after_registering_a_peer_needs_no_signatures_and_replays_are_refused() {
    let server = Server::start();
    let proxy = Proxy::start(server.addr());
    let alice = Peer::start("alice", proxy.addr());
    alice.register();
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);
    alice.register();

    // One signed request (the first registration), then only requests in the session,
    // answered in it.
    assert_eq!(proxy.captures_of_kind(b'S').len(), 1, "one signed request");
    let sealed = proxy.captures_of_kind(b'R');
    assert_eq!(sealed.len(), 2, "listpeer and the renewal, in the session");
    for capture in &sealed {
        assert_eq!(
            capture.received.get(4),
            Some(&b'r'),
            "a reply in the session"
        );
    }

    // Played again, or altered, a request in the session is refused; the session goes on.
    let list = &sealed[0].sent;
    assert_refused_with(server.addr(), list, "unknown_session", &server.key());
    // Altered in its JSON it may no longer parse (bad_message); altered anywhere, its tag
    // no longer matches (unknown_session).
    for at in [list.len() / 2, list.len() - 1] {
        let mut altered = list.clone();
        altered[at] ^= 0x01;
        let reply = raw_exchange(server.addr(), &altered, false);
        match assert_refused(&reply, None, "an altered request") {
            Refusal::Error { code, signer } => {
                assert!(
                    ["unknown_session", "bad_message"].contains(&code.as_str()),
                    "{code}"
                );
                assert_eq!(signer, server.key());
            }
            Refusal::Closed => panic!("an altered request got no answer"),
        }
    }
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);
    assert_eq!(
        proxy.captures_of_kind(b'S').len(),
        1,
        "still one signed request"
    );
}

#[test]
fn a_registry_restart_ends_the_sessions_and_peers_sign_again() {
    let registry_dir = DataDir::new("registry");
    let mut server = Server::builder()
        .data_dir(registry_dir.path())
        .at(own_addr())
        .start();
    let at = server.addr();
    let proxy = Proxy::start(server.addr());
    let alice = Peer::start("alice", proxy.addr());
    alice.register();
    server.kill();
    drop(server);
    let server = Server::builder()
        .data_dir(registry_dir.path())
        .at(at)
        .start();

    // alice's session is gone with the old process: her `listpeer` in it is refused, with a
    // signed refusal naming her frame (its id is sealed, so by digest); she registers again
    // at once (signed, opening a new session), then asks again signed, and is listed.
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);
    server.expect_prefix("refused 127.0.0.1:");
    server.expect_registered(&alice);
    let refused = proxy
        .captures_of_kind(b'R')
        .pop()
        .expect("a request in the old session");
    let refusal = p2p_e2e::decode_reply(&refused.received).expect("a signed refusal");
    assert_eq!(outcome(&refusal), "unknown_session", "{refusal}");
    let body = p2p_e2e::frame_body(&refused.sent).expect("one frame");
    let digest = p2p_shared::wire::RequestDigest::of(body);
    assert_eq!(
        refusal["body"]["re_digest"],
        serde_json::json!(digest),
        "names the request's frame: {refusal}"
    );

    // The new session is what her next listing uses.
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);
    let last = proxy.captures().pop().expect("the last listing");
    assert_eq!(last.kind(), Some(b'R'), "in a session");
    assert_eq!(last.received.get(4), Some(&b'r'), "answered in it");
}

// ---------------------------------------------------------------------------------------------
// g. A fake registry
// ---------------------------------------------------------------------------------------------

#[test]
fn a_registry_with_another_key_at_the_pinned_address_is_refused_as_an_impostor() {
    let real_dir = DataDir::new("registry");
    let mut real = Server::builder()
        .data_dir(real_dir.path())
        .at(own_addr())
        .start();
    let (at, real_key) = (real.addr(), real.key());
    let alice = Peer::start("alice", real.addr());
    // The first answer pins the registry's key for this address.
    alice.register();

    real.kill();
    drop(real);
    let fake = Server::builder().at(at).start();
    assert_ne!(fake.key(), real_key);
    for command in ["listpeer", "register", "exit network"] {
        alice.send(command);
        let error = alice.expect_error();
        assert!(error.contains("impostor"), "{command}: {error:?}");
        assert!(
            error.contains(&fake.fingerprint()) && error.contains(&real_key.fingerprint()),
            "{command}: both fingerprints in {error:?}"
        );
    }
    assert_eq!(alice.unread_lines(), NONE, "nothing else: no registration");
    // `status` says what is there: a registry with another key, not an unreachable one.
    alice.send("status");
    let line = alice.expect_prefix(&format!("registry {at}: "));
    assert!(line.contains("answers with another key"), "{line}");
    assert!(
        line.contains(&format!("trust registry {}", fake.fingerprint())),
        "{line}"
    );
    alice.expect_prefix("outgoing requests: ");
    drop(fake);

    // The real registry comes back at the same address: trusted again.
    let real = Server::builder().data_dir(real_dir.path()).at(at).start();
    assert_eq!(real.key(), real_key);
    alice.register();
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);
}

#[test]
fn a_peer_given_the_registry_key_refuses_any_other_registry() {
    let real = Server::start();
    let fake = Server::start();
    let alice = Peer::builder("alice")
        .server(fake.addr())
        .server_key(&real.key())
        .start();
    alice.send("register");
    let error = alice.expect_error();
    assert!(error.contains("impostor"), "{error:?}");
    alice.send("listpeer");
    let error = alice.expect_error();
    assert!(error.contains("impostor"), "{error:?}");

    // The same flag with the real registry works.
    let bob = Peer::builder("bob")
        .server(real.addr())
        .server_key(&real.key())
        .start();
    bob.register();
    assert_eq!(bob.listpeer(), vec![bob.peer_line()]);
}

#[test]
fn status_tells_a_peer_given_the_registry_key_to_start_again_with_a_new_one_not_to_trust_it() {
    let real = Server::start();
    let moved = Server::start();
    let alice = Peer::builder("alice")
        .server(moved.addr())
        .server_key(&real.key())
        .start();
    alice.send("status");
    let line = alice.expect_prefix(&format!("registry {}: ", moved.addr()));
    assert!(
        line.ends_with(&format!(
            "answers with another key, {}, not the --server-key given for it: refused. If its \
             operator confirms that key, start again with --server-key {}",
            moved.fingerprint(),
            moved.key()
        )),
        "{line}"
    );
    // What it used to advise is refused with a --server-key.
    assert!(!line.contains("trust registry"), "{line}");
    alice.expect_prefix("outgoing requests: ");

    // Its advice, followed, works.
    let again = Peer::builder("alice2")
        .server(moved.addr())
        .server_key(&moved.key())
        .start();
    again.register();
}

// ---------------------------------------------------------------------------------------------
// h. A peer whose pinned key changed
// ---------------------------------------------------------------------------------------------

#[test]
fn a_peer_with_a_new_key_is_refused_until_trusted() {
    let alice = Peer::start_offline("alice");
    let mut bob = Peer::start_offline("bob");
    bob.chat_with(&alice);
    bob.say(&alice, "hello with my first key");
    let old = bob.fingerprint();
    bob.exit();
    alice.expect_exact("bob disconnected");

    // bob again, with a fresh data directory: a new key, the same name.
    let bob = Peer::start_offline("bob");
    assert_ne!(bob.fingerprint(), old);
    bob.send(&format!("chat request 127.0.0.1 {}", alice.port()));
    let warning = alice.expect_prefix("WARNING: bob");
    assert_eq!(
        warning,
        Peer::key_warning("bob", &bob.fingerprint(), &old),
        "the warning names both keys"
    );
    assert!(
        warning.ends_with(&format!("type: trust bob {}", bob.fingerprint())),
        "{warning}"
    );
    let error = bob.expect_error();
    assert!(error.contains("another key"), "{error:?}");
    assert_eq!(alice.unread_lines(), NONE, "no chat request is shown");

    // The trust race: mallory offers her key for bob after bob did. `trust bob FP` pins the
    // key the user checked with bob, not whichever came last; a fingerprint nobody offered
    // pins nothing.
    let mallory = Signer::new("bob", "127.0.0.1:1");
    let (request, _) = mallory.chat_request();
    assert_eq!(
        outcome(&mallory.send(alice.addr(), &request)),
        "key_changed"
    );
    alice.expect_exact(&Peer::key_warning(
        "bob",
        &mallory.key().fingerprint(),
        &old,
    ));
    let out = alice.run(&format!(
        "trust bob {}",
        Identity::generate().public().fingerprint()
    ));
    assert!(p2p_e2e::is_one_error(&out), "{out:?}");
    assert!(out[0].contains("not trusted"), "{out:?}");

    alice.send(&format!("trust bob {}", bob.fingerprint()));
    alice.expect_exact(&format!(
        "trusting key {} for bob from now on",
        bob.fingerprint()
    ));
    let known = std::fs::read_to_string(alice.data_file("known_peers")).unwrap();
    assert!(
        known.contains(&format!("/bob {}", bob.key())),
        "pinned: {known}"
    );
    let mode = std::fs::metadata(alice.data_file("known_peers"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "known_peers: {mode:o}");

    bob.chat_with(&alice);
    bob.say(&alice, "new key, same bob");
}

/// What alice kept for bob while he was away was for his key. Once she trusts the new key he
/// comes back with and a chat with it opens, each kept message ends undelivered, saying why,
/// and none reaches the new key.
#[test]
fn messages_kept_for_a_key_end_undelivered_when_the_user_trusts_another() {
    let alice = Peer::builder("alice").arg("--retry-for").arg("1s").start();
    let mut bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    let old = bob.fingerprint();
    bob.kill();
    alice.send("chat message bob are you there?");
    alice.expect_prefix("bob is away (cannot reach bob");
    alice.expect_prefix("queued for bob: ");
    alice.send("chat message bob still there?");
    alice.expect_exact("queued for bob: bob is offline");

    // bob again, with a fresh data directory: a new key, the same name.
    let bob = Peer::start_offline("bob");
    bob.send(&format!("chat request 127.0.0.1 {}", alice.port()));
    alice.expect_exact(&Peer::key_warning("bob", &bob.fingerprint(), &old));
    bob.expect_error();
    alice.send(&format!("trust bob {}", bob.fingerprint()));
    alice.expect_exact(&format!(
        "trusting key {} for bob from now on",
        bob.fingerprint()
    ));
    alice.request_chat(&bob);
    bob.expect_request_from(&alice);
    bob.send("yes");
    bob.expect_prefix("accepted chat with alice");
    alice.expect_prefix("chat accepted by bob");
    // One line for each message kept, right after the chat opens.
    let dropped = "not delivered to bob: it was typed to the key bob had before; bob's key has \
                   changed since";
    alice.expect_next(dropped);
    alice.expect_next(dropped);
    alice.say(&bob, "hello, new bob");
    let shown = bob.stdout_so_far();
    assert!(
        !shown.iter().any(|l| l.contains("there?")),
        "nothing typed to the old key reaches the new one: {shown:?}"
    );
}

#[test]
fn a_peer_called_registry_is_trusted_with_trust_peer() {
    // `trust registry FP` pins the registry's key: a peer called registry needs another form.
    let alice = Peer::start_offline("alice");
    let mut first = Peer::start_offline("registry");
    first.chat_with(&alice);
    let old = first.fingerprint();
    first.exit();
    alice.expect_exact("registry disconnected");

    // registry again, with a new key: the warning names the form that means the peer.
    let registry = Peer::start_offline("registry");
    let new = registry.fingerprint();
    registry.send(&format!("chat request 127.0.0.1 {}", alice.port()));
    let warning = alice.expect_prefix("WARNING: registry");
    assert_eq!(warning, Peer::key_warning("registry", &new, &old));
    assert!(
        warning.ends_with(&format!("type: trust peer registry {new}")),
        "{warning}"
    );
    registry.expect_error();

    // The short form is still the registry's (alice has none that answers): the peer's new
    // key is not trusted by it.
    let out = alice.run(&format!("trust registry {new}"));
    assert!(p2p_e2e::is_one_error(&out), "{out:?}");
    registry.send(&format!("chat request 127.0.0.1 {}", alice.port()));
    let error = registry.expect_error();
    assert!(error.contains("another key"), "{error:?}");
    assert_eq!(
        alice.unread_lines(),
        NONE,
        "no request shown (warned once per key)"
    );

    alice.send(&format!("trust peer registry {new}"));
    alice.expect_exact(&format!("trusting key {new} for registry from now on"));
    registry.chat_with(&alice);
    registry.say(&alice, "new key, same name");
}

// ---------------------------------------------------------------------------------------------
// i. Keys persist, privately
// ---------------------------------------------------------------------------------------------

#[test]
fn a_peers_key_persists_in_its_data_directory_readable_only_by_it() {
    let dir = DataDir::new("alice");
    let mut alice = Peer::builder("alice").data_dir(dir.path()).start();
    let key = alice.key();
    alice.exit();

    let key_file = dir.path().join("keys").join("alice.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}: {mode:o}", key_file.display());
    let folder = std::fs::metadata(dir.path().join("keys"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(folder & 0o077, 0, "keys/: {folder:o}");

    let again = Peer::builder("alice").data_dir(dir.path()).start();
    assert_eq!(again.key(), key, "the same key after a restart");
    let elsewhere = Peer::start_offline("alice");
    assert_ne!(elsewhere.key(), key, "another data directory, another key");
    // Others see the same fingerprint.
    let bob = Peer::start_offline("bob");
    again.chat_with(&bob);
    assert_eq!(bob.connected(), vec![again.connected_line()]);
}

#[test]
fn a_key_file_others_can_read_is_refused_at_start() {
    let dir = DataDir::new("alice");
    let mut alice = Peer::builder("alice").data_dir(dir.path()).start();
    let key = alice.key();
    alice.exit();
    let key_file = dir.path().join("keys").join("alice.key");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();

    let args: Vec<String> = [
        "--name",
        "alice",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--server",
        &p2p_e2e::dead_addr().to_string(),
        "--data-dir",
        &dir.arg(),
    ]
    .map(String::from)
    .to_vec();
    let mut refused = Proc::spawn("peer alice", &p2p_e2e::binary("p2p-peer"), &args);
    let status = refused.wait_exit();
    assert!(!status.success(), "{status}");
    let said = refused.transcript().join("\n");
    assert!(said.contains("chmod 600"), "says how to fix it: {said}");

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let alice = Peer::builder("alice").data_dir(dir.path()).start();
    assert_eq!(alice.key(), key);
}

// ---------------------------------------------------------------------------------------------
// Beyond the list: chat answers forged by someone on the path, who saw the request id
// ---------------------------------------------------------------------------------------------

#[test]
fn a_forged_acceptance_of_a_captured_request_is_refused_and_the_real_answer_still_counts() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    let proxy = Proxy::start(bob.addr());
    alice.send(&format!("chat request 127.0.0.1 {}", proxy.port()));
    alice.expect_request_sent(&bob);
    bob.expect_request_from(&alice);

    // mallory saw the request go by and answers it first, as bob, with her key.
    let request: Value = only(proxy.requests_of_type("chat_request"), "chat request")
        .signed_envelope()
        .unwrap();
    let mallory = Signer::new("bob", "127.0.0.1:1");
    let reply = mallory.request(alice.addr(), acceptance_of(&request));
    assert_eq!(outcome(&reply), "key_changed", "{reply}");
    alice.expect_exact(&Peer::key_warning(
        "bob",
        &mallory.key().fingerprint(),
        &bob.fingerprint(),
    ));
    assert_eq!(alice.connected(), NONE);

    // bob's real answer still opens the chat.
    bob.accept_chat(&alice, proxy.addr());
    alice.say(&bob, "the real bob");
}

#[test]
fn an_acceptance_from_someone_else_while_a_request_is_in_flight_opens_no_chat() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    let proxy = Proxy::start(bob.addr());
    // mallory delays the request on its way to bob, and answers it herself meanwhile.
    proxy.hold_signed(true);
    alice.send(&format!("chat request 127.0.0.1 {}", proxy.port()));
    let request = proxy
        .wait_for("chat request", |c| {
            c.request_type().as_deref() == Some("chat_request")
        })
        .signed_envelope()
        .unwrap();
    let mallory = Signer::new("mallory", "127.0.0.1:1");
    let reply = mallory.request(alice.addr(), acceptance_of(&request));
    proxy.hold_signed(false);
    assert_eq!(reply["body"]["result"]["type"], "error", "{reply}");

    alice.expect_request_sent(&bob);
    bob.expect_request_from(&alice);
    bob.accept_chat(&alice, proxy.addr());
    assert_eq!(alice.connected(), vec![bob.connected_line_at(proxy.addr())]);
    let shown = alice.stdout_so_far();
    assert!(
        !shown.iter().any(|l| l.contains("mallory")),
        "nothing of mallory: {shown:?}"
    );
}

#[test]
fn only_the_requester_can_withdraw_its_request() {
    let mut alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    let proxy = Proxy::start(bob.addr());
    alice.send(&format!("chat request 127.0.0.1 {}", proxy.port()));
    alice.expect_request_sent(&bob);
    bob.expect_request_from(&alice);

    // mallory saw the request go by and withdraws it: as herself, in alice's name with her
    // own key, and in alice's name with alice's key, which she cannot sign for.
    let request: Value = only(proxy.requests_of_type("chat_request"), "chat request")
        .signed_envelope()
        .unwrap();
    let withdraw = json!({ "type": "chat_withdraw", "request": request["id"] });
    let mallory = Signer::new("mallory", "127.0.0.1:1");
    let reply = mallory.request(bob.addr(), withdraw.clone());
    assert_eq!(outcome(&reply), "unknown_request", "{reply}");
    let as_alice = Signer::new("alice", alice.addr());
    let reply = as_alice.request(bob.addr(), withdraw.clone());
    assert_eq!(outcome(&reply), "unknown_request", "{reply}");
    let forged = envelope("alice", alice.addr(), &alice.key(), withdraw);
    assert_refused_with(
        bob.addr(),
        &mallory.frame(&forged),
        "bad_signature",
        &bob.key(),
    );
    assert_eq!(bob.unread_lines(), NONE, "nothing shown");
    bob.send("status");
    bob.expect_exact("incoming requests: 1");

    // alice's own withdrawal, as she exits, counts.
    alice.exit();
    bob.expect_exact("chat request from alice withdrawn: alice left");
    bob.send("yes");
    bob.expect_next("error: no pending chat request");
}
