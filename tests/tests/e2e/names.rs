//! Names mean what the registry says (issue 13): a peer's own signature proves only its key,
//! so before a name from a chat request, or from the peer that answers a request by address,
//! is shown as that name or pinned, it is checked against the key the registry binds it to.
//! Each attack runs against the real programs on loopback; the attacker is the test.

use p2p_e2e::{outcome, own_addr, signer_of, Peer, RawPeer, Server, Signer};
use serde_json::json;

const NONE: Vec<String> = Vec::new();

/// A registry with alice and bob registered at it.
fn registered() -> (Server, Peer, Peer) {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    alice.register();
    let bob = Peer::start("bob", server.addr());
    bob.register();
    (server, alice, bob)
}

#[test]
fn a_stranger_calling_itself_bob_is_refused_as_an_impostor() {
    let (_server, alice, bob) = registered();
    // Mallory signs correctly, with her own key, in bob's name.
    let mallory = Signer::new("bob", "127.0.0.1:1");
    let (request, _) = mallory.chat_request();
    let reply = mallory.send(alice.addr(), &request);
    assert_eq!(outcome(&reply), "key_changed", "{reply}");
    assert_eq!(signer_of(&reply), alice.key(), "{reply}");
    alice.expect_exact(&format!(
        "WARNING: a peer calling itself bob presented key {}, but the registry binds bob to \
         key {}. Someone is impersonating bob; refused.",
        mallory.key().fingerprint(),
        bob.fingerprint()
    ));
    let out = alice.run("yes bob");
    assert!(p2p_e2e::is_one_error(&out), "nothing pending: {out:?}");

    // The real bob is shown as bob, verified, and nothing of mallory's was pinned.
    bob.send("chat request alice");
    alice.expect_request_vouched("bob", bob.addr(), &bob.fingerprint(), true);
    alice.send("yes bob");
    bob.expect("chat accepted by alice");
    alice.expect("accepted chat with bob");
    bob.say(&alice, "it is really me");
}

#[test]
fn whoever_answers_at_an_address_cannot_take_a_registered_name() {
    let (_server, alice, bob) = registered();
    // Mallory listens somewhere and answers alice's request by address as "bob".
    let mallory = RawPeer::start("bob");
    alice.send(&format!("chat request 127.0.0.1 {}", mallory.addr().port()));
    let request = mallory.receive();
    assert_eq!(request.envelope["body"]["type"], "chat_request");
    request.reply(
        mallory.signer(),
        json!({ "type": "pending", "expires_in_ms": 60000 }),
    );
    let error = alice.expect_error();
    assert!(
        error.contains(&format!(
            "answers as bob with key {}, but the registry has key {} for bob",
            mallory.fingerprint(),
            bob.fingerprint()
        )),
        "{error}"
    );
    // Nothing was pinned for bob: the real bob is welcome.
    alice.send("chat request bob");
    alice.expect_request_sent_vouched(&bob, true);
    bob.expect_request_vouched("alice", alice.addr(), &alice.fingerprint(), true);
    bob.send("yes alice");
    alice.expect("chat accepted by bob");
}

#[test]
fn a_name_nobody_registered_is_shown_unverified_both_ways() {
    let (_server, alice, _bob) = registered();
    // carol is known to no registry: her request is shown, marked unverified.
    let carol = RawPeer::start("carol");
    let (request, _) = carol.signer().chat_request();
    let reply = carol.signer().send(alice.addr(), &request);
    assert_eq!(outcome(&reply), "pending", "{reply}");
    alice.expect_request_vouched("carol", carol.addr(), &carol.fingerprint(), false);
    alice.send("no carol");
    let answer = carol.receive();
    assert_eq!(answer.envelope["body"]["answer"], "declined");
    answer.reply(carol.signer(), json!({ "type": "ok" }));
    alice.expect_exact("declined chat request from carol");

    // And when alice asks carol's address, carol's answer says unverified too.
    let dave = RawPeer::start("dave");
    alice.send(&format!("chat request 127.0.0.1 {}", dave.addr().port()));
    let request = dave.receive();
    request.reply(
        dave.signer(),
        json!({ "type": "pending", "expires_in_ms": 60000 }),
    );
    alice.expect_exact(&format!(
        "chat request sent to dave (unverified) ({}), waiting for an answer",
        dave.addr()
    ));
    assert_eq!(alice.unread_lines(), NONE);
}

#[test]
fn a_stranger_pushed_out_by_the_owner_of_the_name_is_told_declined() {
    let (server, alice, _bob) = registered();
    // A stranger asks alice as carol, a name nobody has registered yet: shown unverified.
    let stranger = RawPeer::start("carol");
    let (request, _) = stranger.signer().chat_request();
    let reply = stranger.signer().send(alice.addr(), &request);
    assert_eq!(outcome(&reply), "pending", "{reply}");
    alice.expect_request_vouched("carol", stranger.addr(), &stranger.fingerprint(), false);

    // The real carol registers and asks: the registry vouches for her, and her request takes
    // the name's place.
    let carol = Peer::start("carol", server.addr());
    carol.register();
    carol.send("chat request alice");
    carol.expect_request_sent_vouched(&alice, true);
    alice.expect_exact("chat request from carol replaced by a newer one");
    alice.expect_request_vouched("carol", carol.addr(), &carol.fingerprint(), true);
    // The stranger is told at once that its request will not be taken, instead of waiting
    // for an answer that never comes.
    let answer = stranger.receive();
    let body = &answer.envelope["body"];
    assert_eq!(body["type"], "chat_answer", "{body}");
    assert_eq!(body["request"], request["id"], "{body}");
    assert_eq!(body["answer"], "declined", "{body}");
    assert_eq!(signer_of(&answer.envelope), alice.key());
    answer.reply(stranger.signer(), json!({ "type": "ok" }));

    // carol's is the one request pending.
    alice.accept_chat(&carol, alice.addr());
    carol.say(&alice, "the carol the registry knows");
}

#[test]
fn a_registry_with_a_new_key_is_trusted_only_by_its_fingerprint() {
    let first = Server::builder().at(own_addr()).start();
    let at = first.addr();
    let alice = Peer::start("alice", first.addr());
    alice.register();
    drop(first);

    // Another registry (a new key) at the same --server: refused, and the error says how to
    // accept it once its key is checked.
    let second = Server::builder().at(at).start();
    alice.send("register");
    let error = alice.expect_error();
    assert!(
        error.contains(&format!("type: trust registry {}", second.fingerprint())),
        "{error}"
    );
    let wrong = Server::start().fingerprint();
    let out = alice.run(&format!("trust registry {wrong}"));
    assert!(p2p_e2e::is_one_error(&out), "{out:?}");
    assert!(out[0].contains("not trusted"), "{out:?}");

    alice.send(&format!("trust registry {}", second.fingerprint()));
    alice.expect_exact(&format!(
        "trusting key {} for the registry {} from now on",
        second.fingerprint(),
        second.addr()
    ));
    alice.register();
}

#[test]
fn a_refusal_at_first_contact_pins_no_registry_key() {
    // Something at the registry's address refuses alice's first request with its own key.
    let fake = RawPeer::start("registry");
    let at = fake.addr();
    let mut alice = Peer::start("alice", fake.addr());
    alice.send("register");
    let request = fake.receive();
    request.reply(
        fake.signer(),
        json!({ "type": "error", "code": "busy", "detail": "try later" }),
    );
    alice.expect_error();
    drop(fake);

    // The real registry there is trusted on its first successful reply.
    let server = Server::builder().at(at).start();
    alice.register();
    alice.exit(); // after the disk thread has written what waits
    let known = std::fs::read_to_string(alice.data_file("known_registries")).unwrap();
    let pinned = format!("{} {} ", server.addr(), server.key());
    assert!(known.starts_with(&pinned), "{known}");
    assert_eq!(known.lines().count(), 1, "{known}");
}

#[test]
fn the_second_chat_by_name_uses_the_static_key_the_first_one_proved() {
    let (server, alice, bob) = registered();
    alice.chat_by_name_with(&bob);
    // Delivered means stored by alice's disk thread, after the pin it was given before.
    alice.say(&bob, "first chat");
    alice.send("disconnect bob");
    alice.expect_exact("disconnected from bob");
    bob.expect_exact("alice disconnected");
    // alice kept bob's Noise static key with his pin, so her next request to bob is IK even
    // without the registry's word for it (chosen by `PeerState::pinned_noise`, tested in the
    // peer's unit tests); the second chat must work over it.
    let known = alice.data_file("known_peers");
    let pinned = std::fs::read_to_string(&known).unwrap();
    // Pinned in the namespace of the registry that binds the name.
    let scoped = format!("@{}/bob ", server.key());
    let line = pinned.lines().find(|l| l.starts_with(&scoped)).unwrap();
    assert_eq!(line.split_whitespace().count(), 3, "{line}");

    alice.chat_by_name_with(&bob);
    alice.say(&bob, "second chat");
    bob.say(&alice, "and back");
}

/// Reads one frame from `stream`: its body.
fn read_frame(stream: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).expect("a frame header");
    let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
    stream.read_exact(&mut body).expect("a frame body");
    body
}

#[test]
fn a_reply_the_registry_signed_for_another_request_with_the_same_id_is_refused() {
    // On the path between alice and the registry, mallory sends the registry her own
    // `register` under the id of alice's, and hands alice the registry's signed answer.
    let server = Server::start();
    let path = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let alice = Peer::builder("alice")
        .server(path.local_addr().unwrap())
        .server_key(&server.key())
        .start();
    alice.send("register");
    let (mut from_alice, _) = path.accept().unwrap();
    let request = read_frame(&mut from_alice);
    let json: serde_json::Value = serde_json::from_slice(&request[65..]).unwrap();
    let mallory = Signer::new("alice", "127.0.0.1:9");
    let mut hers = mallory.envelope(json!({ "type": "register" }));
    hers["id"] = json["id"].clone();
    let signed = p2p_e2e::raw_exchange(server.addr(), &mallory.frame(&hers), false);
    let reply: serde_json::Value = p2p_e2e::decode_reply(&signed).unwrap();
    assert_eq!(
        reply["body"]["re"], json["id"],
        "the registry answers under alice's id"
    );
    assert_eq!(outcome(&reply), "registered", "{reply}");
    std::io::Write::write_all(&mut from_alice, &signed).unwrap();
    drop(from_alice);

    let error = alice.expect_error();
    assert!(error.contains("answers another request"), "{error}");
    assert_eq!(
        alice.unread_lines(),
        NONE,
        "alice is not told she is registered"
    );
}

#[test]
fn a_name_means_its_key_while_its_owner_is_offline() {
    let (_server, alice, bob) = registered();
    bob.send("exit network");
    bob.expect_exact("left the network");
    let error = alice.run("chat request bob");
    assert_eq!(
        error,
        ["error: bob is not online (its name is claimed, but not registered now)"]
    );
    // Mallory, as bob, while bob is away: still an impostor.
    let mallory = Signer::new("bob", "127.0.0.1:1");
    let (request, _) = mallory.chat_request();
    assert_eq!(
        outcome(&mallory.send(alice.addr(), &request)),
        "key_changed"
    );
    alice.expect_prefix("WARNING: a peer calling itself bob presented key");
    // bob himself, offline at the registry, is still bob.
    bob.send(&format!("chat request 127.0.0.1 {}", alice.port()));
    alice.expect_request_vouched("bob", bob.addr(), &bob.fingerprint(), true);
}

#[test]
fn a_request_while_the_registry_does_not_answer_is_shown_as_such_and_checked_on_yes() {
    let (server, alice, _bob) = registered();
    // The registry stops answering (as if someone on the path dropped alice's lookups).
    server.pause();
    let mallory = RawPeer::start("bob");
    let (request, _) = mallory.signer().chat_request();
    assert_eq!(
        outcome(&mallory.signer().send(alice.addr(), &request)),
        "pending"
    );
    alice.expect_prefix("chat request from bob (unverified: the registry did not answer) (");
    server.resume();
    // The registry answers again: `yes` asks it first, and the impostor gets a `no`.
    alice.send("yes bob");
    alice.expect_prefix("WARNING: a peer calling itself bob presented key");
    let answer = mallory.receive();
    assert_eq!(answer.envelope["body"]["answer"], "declined");
    answer.reply(mallory.signer(), json!({ "type": "ok" }));
    alice.expect_exact("declined chat request from bob");
    assert_eq!(alice.connected(), NONE);
}

#[test]
fn a_chat_request_handshake_moved_into_another_senders_request_is_refused() {
    // The misbinding of issue 13: mallory sees alice's chat request to bob go by and sends
    // bob its handshake (and its request id) in a request signed by her own key.
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    let path = p2p_e2e::Proxy::start(bob.addr());
    alice.send(&format!("chat request 127.0.0.1 {}", path.port()));
    alice.expect_request_sent(&bob);
    bob.expect_request_from(&alice);
    let seen = path.captures_of_kind(b'S').remove(0);
    let body = p2p_e2e::frame_body(&seen.sent).expect("one frame");
    let request: serde_json::Value = serde_json::from_slice(&body[65..]).unwrap();
    assert_eq!(request["body"]["type"], "chat_request");

    let mallory = Signer::new("mallory", "127.0.0.1:1");
    // Under alice's request id: a replay, whoever signs it.
    let mut hers = mallory.envelope(request["body"].clone());
    hers["id"] = request["id"].clone();
    let raw = p2p_e2e::raw_exchange(bob.addr(), &mallory.frame(&hers), false);
    let reply = p2p_e2e::decode_reply(&raw).unwrap();
    assert_eq!(outcome(&reply), "stale", "{reply}");
    // Under an id of her own: the handshake inside is alice's, not by the key that signed.
    let hers = mallory.envelope(request["body"].clone());
    let reply = mallory.send(bob.addr(), &hers);
    assert_eq!(outcome(&reply), "invalid_request", "{reply}");
    assert!(
        reply["body"]["result"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not the key")),
        "{reply}"
    );
    // Bob was asked by alice only; her request still opens the chat.
    assert_eq!(bob.unread_lines(), NONE);
    bob.send("yes alice");
    alice.expect("chat accepted by bob");
}

/// A name means what the registry in use binds it to: the bob alice met through one registry
/// is no reason to refuse the bob of another community, and her pins for each stay apart.
#[test]
fn each_registry_is_a_namespace_of_its_own() {
    let data = p2p_e2e::DataDir::new("alice");
    let alice_at = |server: &Server| {
        let alice = Peer::builder("alice")
            .server(server.addr())
            .data_dir(data.path())
            .start();
        alice.register();
        alice
    };
    let first = Server::start();
    let bob = Peer::start("bob", first.addr());
    bob.register();
    let mut alice = alice_at(&first);
    alice.chat_by_name_with(&bob);
    alice.say(&bob, "hello, first bob");
    alice.exit();

    let second = Server::start();
    let other_bob = Peer::start("bob", second.addr());
    other_bob.register();
    let mut alice = alice_at(&second);
    // No warning that bob's key changed: this registry's bob is someone else.
    alice.chat_by_name_with(&other_bob);
    alice.say(&other_bob, "hello, second bob");
    alice.exit();

    let known = std::fs::read_to_string(data.path().join("known_peers-alice")).unwrap();
    for (registry, bob) in [(&first, &bob), (&second, &other_bob)] {
        let pin = format!("@{}/bob {}", registry.key(), bob.key());
        assert!(
            known.lines().any(|l| l.starts_with(&pin)),
            "{pin} in {known}"
        );
    }
}
