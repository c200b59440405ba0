//! Living in the chat (issue 18): the terminal bell, `contacts`, and `p2p-peer send` from a
//! script to the peer already running. Presence (`bob is away`, `bob is back`) is with the
//! chat lifecycle, in `lifecycle.rs`.

use p2p_e2e::{DataDir, Peer, Server};

use crate::pty::Terminal;

/// alice at a terminal, bob in a pipe: what rings alice's bell and what does not.
#[test]
fn a_new_message_or_request_rings_the_bell_at_a_terminal_unless_talking_to_its_sender() {
    let server = Server::start();
    let data = DataDir::new("alice");
    let alice = Terminal::peer("alice", server.addr(), &data);
    alice.wait_for_input_line(">>");
    alice.type_keys("register\r");
    alice.wait_for_text("registered as alice");
    assert_eq!(alice.bells(), 0, "nothing rang at start");

    let bob = Peer::start("bob", server.addr());
    bob.send("chat request alice");
    alice.wait_for_text("chat request from bob");
    assert_eq!(alice.bells(), 1, "a chat request rings");
    alice.type_keys("yes\r");
    bob.expect("chat accepted by alice");

    let from_bob = |text: &str| {
        bob.send(&format!("chat message alice {text}"));
        bob.expect_exact("delivered to alice");
        alice.wait_for_text(&format!("bob: {text}"));
    };
    from_bob("one");
    assert_eq!(alice.bells(), 2, "a message rings");

    // Typing to bob already: his message does not ring.
    alice.type_keys("talk bob\r");
    alice.wait_for_input_line("bob>");
    from_bob("two");
    assert_eq!(alice.bells(), 2, "no bell for the current conversation");

    alice.type_keys("/talk\r");
    alice.wait_for_input_line(">>");
    alice.type_keys("bell off\r");
    alice.wait_for_text("bell off");
    from_bob("three");
    assert_eq!(alice.bells(), 2, "the bell is off");

    alice.type_keys("bell on\r");
    alice.wait_for_text("bell on: new messages and chat requests ring");
    from_bob("four");
    assert_eq!(alice.bells(), 3, "on again");
}

/// The same events in a pipe: a script's output never holds a bell byte, even with
/// `--bell on`.
#[test]
fn nothing_rings_in_a_pipe() {
    let alice = Peer::builder("alice").arg("--bell").arg("on").start();
    let bob = Peer::start_offline("bob");
    bob.chat_with(&alice);
    bob.say(&alice, "hello");
    let out = alice.run("bell on");
    assert_eq!(out, vec!["bell on, but it rings only at a terminal"]);
    bob.say(&alice, "again");
    let shown = alice.stdout_so_far();
    assert!(shown.iter().any(|l| l == "bob: again"), "{shown:?}");
    assert!(!shown.iter().any(|l| l.contains('\x07')), "{shown:?}");
}

/// `contacts` after chats with two peers, one of them forgotten: the other is listed with its
/// fingerprint, how its key is vouched for, its chat, what is kept for it, and when it was
/// last seen; away with a kept message once it is killed.
#[test]
fn contacts_lists_the_pinned_peers_after_chats_with_two_one_forgotten() {
    let mut alice = Peer::builder("alice")
        .arg("--keepalive")
        .arg("1s")
        .arg("--retry-for")
        .arg("1s")
        .start();
    let mut bob = Peer::start_offline("bob");
    let carol = Peer::start_offline("carol");
    alice.chat_with(&bob);
    alice.chat_with(&carol);
    alice.say(&bob, "hi bob");
    alice.say(&carol, "hi carol");

    alice.send("forget carol");
    alice.expect_exact("forgot carol: no chat, no kept messages, no pinned key");
    let bob_line = format!(
        "contact bob key {} pinned on first contact, ",
        bob.fingerprint()
    );
    let listed = contacts(&alice);
    assert_eq!(listed.len(), 1, "carol is forgotten: {listed:?}");
    assert!(
        listed[0].starts_with(&format!("{bob_line}chat open, 0 queued, last seen 20")),
        "{listed:?}"
    );

    bob.kill();
    alice.expect_prefix("bob is away (");
    alice.send("chat message bob still there?");
    alice.expect_exact("queued for bob: bob is offline");
    let listed = contacts(&alice);
    assert!(
        listed[0].starts_with(&format!("{bob_line}chat away, 1 queued, last seen 20")),
        "{listed:?}"
    );

    alice.send("disconnect bob");
    alice.expect_exact("not delivered to bob: the chat ended");
    let listed = contacts(&alice);
    assert!(
        listed[0].starts_with(&format!("{bob_line}chat ended, 0 queued, last seen 20")),
        "{listed:?}"
    );
    alice.exit();
}

/// `contacts`: the `contact ...` lines after `contacts: N`.
fn contacts(peer: &Peer) -> Vec<String> {
    let lines = peer.run("contacts");
    let listed: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("contact "))
        .cloned()
        .collect();
    assert!(
        lines.contains(&format!("contacts: {}", listed.len())),
        "{lines:?}"
    );
    listed
}
