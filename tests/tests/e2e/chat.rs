//! Whole chats: request, accept, messages both ways, list, disconnect.

use p2p_e2e::{outcome, Peer, RawPeer, Server};
use p2p_shared::handshake::{HandshakeMessage, Pattern, Responder};
use p2p_shared::identity::PublicKey;
use std::time::Duration;

/// Multiple spaces and non-ASCII text must arrive exactly as typed.
const TEXT: &str = "héllo  wörld 你好 🎉";

#[test]
fn full_chat_by_address() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    let bob = Peer::start("bob", server.addr());
    // Registered: the registry vouches for both names (no "(unverified)" on either line).
    alice.register();
    bob.register();

    alice.send(&format!("chat request 127.0.0.1 {}", bob.port()));
    alice.expect_exact(&format!(
        "chat request sent to bob ({}), waiting for an answer",
        bob.addr()
    ));
    let asked = bob.expect_request_from(&alice);
    assert_eq!(
        asked,
        format!(
            "chat request from alice ({}): answer yes or no (expires in 60s), key {}",
            alice.addr(),
            alice.fingerprint()
        ),
        "the default timeout is 60s, and the line ends with alice's key"
    );
    bob.accept_chat(&alice, bob.addr());

    alice.send(&format!("chat message bob {TEXT}"));
    alice.expect_exact("delivered to bob");
    bob.expect_exact(&format!("alice: {TEXT}"));

    bob.send("chat message alice and back:  ok ✓");
    bob.expect_exact("delivered to alice");
    alice.expect_exact("bob: and back:  ok ✓");

    assert_eq!(alice.connected(), vec![bob.connected_line()]);
    assert_eq!(bob.connected(), vec![alice.connected_line()]);

    alice.send("disconnect bob");
    alice.expect_exact("disconnected from bob");
    bob.expect_exact("alice disconnected");

    assert_eq!(alice.connected(), Vec::<String>::new());
    assert_eq!(bob.connected(), Vec::<String>::new());

    alice.send("chat message bob still there?");
    alice.expect_error();
    bob.send("chat message alice still there?");
    bob.expect_error();
    alice.send("disconnect bob");
    alice.expect_error();
}

#[test]
fn full_chat_by_name_through_the_registry() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    let bob = Peer::start("bob", server.addr());
    alice.register();
    bob.register();

    alice.chat_by_name_with(&bob);

    alice.say(&bob, TEXT);
    bob.say(&alice, "🎉 réponse  à   alice");

    assert_eq!(alice.connected(), vec![bob.connected_line()]);
    assert_eq!(bob.connected(), vec![alice.connected_line()]);
}

#[test]
fn chat_request_for_an_unknown_name_fails() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    alice.register();
    alice.send("chat request nobody");
    alice.expect_error();
    assert_eq!(alice.connected(), Vec::<String>::new());
}

#[test]
fn chat_without_any_registry() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");

    alice.send("register");
    alice.expect_error();

    alice.chat_with(&bob);
    alice.say(&bob, TEXT);
    bob.say(&alice, "no registry needed");
    assert_eq!(alice.connected(), vec![bob.connected_line()]);
    assert_eq!(bob.connected(), vec![alice.connected_line()]);
}

#[test]
fn one_peer_chats_with_two_others() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    let carol = Peer::start_offline("carol");

    bob.chat_with(&alice);
    carol.chat_with(&alice);
    assert_eq!(
        alice.connected(),
        vec![bob.connected_line(), carol.connected_line()]
    );

    alice.say(&bob, "to bob");
    alice.say(&carol, "to carol");
    bob.say(&alice, "from bob");
    carol.say(&alice, "from carol");

    bob.send("disconnect alice");
    bob.expect_exact("disconnected from alice");
    alice.expect_exact("bob disconnected");
    assert_eq!(alice.connected(), vec![carol.connected_line()]);
    alice.say(&carol, "still here");
}

#[test]
fn when_a_peer_in_a_chat_exits_the_other_side_is_told() {
    let alice = Peer::start_offline("alice");
    let mut bob = Peer::start_offline("bob");
    alice.chat_with(&bob);

    bob.send("exit");
    bob.expect_exact("bye");
    assert!(bob.wait_exit().success());

    alice.expect_exact("bob disconnected");
    assert_eq!(alice.connected(), Vec::<String>::new());
    alice.send("chat message bob anyone?");
    alice.expect_error();
}

#[test]
fn when_a_peer_in_a_chat_is_interrupted_the_other_side_is_told() {
    let alice = Peer::start_offline("alice");
    let mut bob = Peer::start_offline("bob");
    alice.chat_with(&bob);

    bob.interrupt();
    assert!(bob.wait_exit().success(), "Ctrl-C exits 0");

    alice.expect_exact("bob disconnected");
    assert_eq!(alice.connected(), Vec::<String>::new());
}

#[test]
fn control_characters_from_the_network_are_escaped() {
    // "alice" is played by the test, which can put anything in a chat message.
    let alice = RawPeer::start("alice");
    let bob = Peer::start_offline("bob");
    let mut chat = alice.chat_with(&bob);

    // An escape sequence and a newline in the text.
    let ack = chat.message("evil\u{1b}[2J\nforged line");
    assert_eq!(outcome(&ack), "ok", "{ack}");

    let shown = bob.expect_prefix("alice: evil");
    assert!(
        shown.contains("\\u{1b}[2J"),
        "ESC must be shown as \\u{{1b}}: {shown:?}"
    );
    assert!(
        shown.ends_with("forged line"),
        "the whole text stays on one line: {shown:?}"
    );
    assert!(
        !shown.chars().any(char::is_control),
        "no raw control characters: {shown:?}"
    );
    // Nothing else was printed: the newline did not make a second line.
    assert_eq!(bob.unread_lines(), Vec::<String>::new());
}

#[test]
fn the_longest_message_is_delivered_whole_and_a_longer_one_in_two() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);

    // 8,192 bytes of UTF-8 (2 bytes a character): the most one message takes.
    let longest = "é".repeat(4096);
    alice.say(&bob, &longest);

    // One byte more: two messages, each acknowledged, cut between characters.
    alice.send(&format!("chat message bob {longest}x"));
    alice.expect_next("delivered to bob");
    alice.expect_next("delivered to bob");
    bob.expect_next(&format!("alice: {longest}"));
    bob.expect_next("alice: x");
    alice.say(&bob, "short again");
}

#[test]
fn a_message_to_a_peer_that_died_is_kept_and_the_chat_is_away() {
    // A message that gets no answer is retried for --retry-for (10s by default) first.
    let alice = Peer::builder("alice").arg("--retry-for").arg("1s").start();
    let mut bob = Peer::start_offline("bob");
    alice.chat_with(&bob);

    bob.kill();
    alice.send("chat message bob are you there?");
    // The partner is away, and the message kept for it.
    alice.expect_prefix("bob is away (cannot reach bob");
    let queued = alice.expect_prefix("queued for bob: ");
    assert!(queued.contains("cannot reach bob"), "{queued}");
    assert!(
        !alice
            .stdout_so_far()
            .iter()
            .any(|l| l == "delivered to bob"),
        "not reported as delivered"
    );
    assert_eq!(
        alice.connected(),
        vec![format!("{} (away)", bob.connected_line())]
    );
    // The next one is kept at once.
    alice.send("chat message bob still there?");
    alice.expect_exact("queued for bob: bob is offline");
}

/// A chat request by name to a peer met for the first time is Noise IK: the registry's
/// `lookup` answer carried the static key that bob's identity signed when it registered, so
/// alice's message 1 (her identity's proof, whom she asks for) is encrypted to bob alone.
#[test]
fn a_request_by_name_to_a_peer_never_met_is_encrypted_to_its_registered_static_key() {
    let server = Server::start();
    let bob = RawPeer::start("bob");
    let registered = bob.signer().register(server.addr());
    assert_eq!(outcome(&registered), "registered", "{registered}");
    let alice = Peer::start("alice", server.addr());
    alice.register();

    alice.send("chat request bob");
    let request = bob.receive();
    let envelope = &request.envelope;
    assert_eq!(envelope["body"]["pattern"], "IK", "{envelope}");
    let handshake: HandshakeMessage =
        serde_json::from_value(envelope["body"]["handshake"].clone()).unwrap();
    let id = envelope["id"].as_str().unwrap().parse().unwrap();
    let from: PublicKey = envelope["from"]["key"].as_str().unwrap().parse().unwrap();
    let heard = Responder::hear(
        bob.signer().identity(),
        &"bob".parse().unwrap(),
        id,
        Pattern::IK,
        &handshake,
        &from,
    );
    assert_eq!(heard.map(|h| h.to), Ok(Some("bob".parse().unwrap())));
    assert_eq!(from, alice.key());
}

/// `disconnect` to a partner that takes the goodbye and never answers (paused): he may have
/// it, so alice says that, not that she could not tell him; and he has it once he runs.
#[test]
fn a_goodbye_with_no_answer_may_have_been_told() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    bob.pause();
    alice.send("disconnect bob");
    // Once the exchange gives up (10 s).
    let within = Duration::from_secs(20);
    alice.expect_line_within("disconnected", within, |l| l == "disconnected from bob");
    alice.expect_next(&format!(
        "error: bob may not have been told: {} did not answer in time",
        bob.addr()
    ));
    bob.resume();
    bob.expect_exact("alice disconnected");
}
