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
