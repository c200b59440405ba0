//! Typing ahead, pasting, huge input, Ctrl-C and conversations (`talk`) at a real terminal
//! (`pty.rs`), and `talk` and long messages through pipes: a conversation needs a chat, and
//! ends with it.
//!
//! What a user relies on: every line typed or pasted runs or is refused with a word; a paste
//! of several lines after `chat message PEER ` or in a conversation is one message; input past
//! the limit never locks the terminal, and Ctrl-C then acts.

use p2p_e2e::{DataDir, Peer, Server};

use crate::pty::Terminal;

/// The line limit of `p2p-peer` (`peer/src/input.rs`).
const MAX_LINE_LEN: usize = 16 * 1024;

#[test]
fn lines_typed_ahead_or_pasted_at_an_empty_prompt_all_run() {
    let server = Server::start();
    let data = DataDir::new("alice");
    let alice = Terminal::peer("alice", server.addr(), &data);
    alice.wait_for_input_line(">>");

    // Three lines arrive in one read, as from a fast typist or a terminal without
    // bracketed paste: each runs.
    alice.type_keys("whoami\rhelp talk\rhelp chat\r");
    alice.wait_for_text("alice key ");
    alice.wait_for_text("usage: talk PEER");
    alice.wait_for_text("chatting (help chat):");

    // A bracketed paste of three lines at the empty prompt, then Enter: three commands.
    alice.paste("help network\nhelp registry\nhelp peer\n");
    alice.type_keys("\r");
    alice.wait_for_text("the network without a registry (help network):");
    alice.wait_for_text("the registry (help registry):");
    alice.wait_for_text("this peer (help peer):");
}

#[test]
fn input_past_the_limit_is_refused_at_once_and_ctrl_c_then_acts() {
    let server = Server::start();
    let data = DataDir::new("alice");
    let mut alice = Terminal::peer("alice", server.addr(), &data);
    alice.wait_for_input_line(">>");

    // A megabyte typed as keys (a paste the terminal does not bracket): refused as soon as
    // the line is full, and the rest is dropped without locking the terminal up.
    alice.type_keys(&"y".repeat(1 << 20));
    alice.wait_for_wrapped_text(&format!("the line is longer than {MAX_LINE_LEN} bytes"));
    // Ctrl-C clears the half-typed line, as in bash, and the peer goes on.
    alice.type_keys("\x03");
    alice.wait_for_input_line(">>");
    alice.type_keys("whoami\r");
    alice.wait_for_text("alice key ");

    // A long line sent with Enter is refused, and kept in the history to be shortened.
    alice.type_keys(&format!("chat message bob {}\r", "z".repeat(MAX_LINE_LEN)));
    alice.wait_for_text("line too long (the limit is 16384 bytes)");
    alice.type_keys("\x1b[A");
    alice.wait_for("the refused line brought back by Up", |rows, cursor| {
        rows[cursor].trim_end().ends_with("zzzz")
    });
    alice.type_keys("\x03");
    alice.wait_for_input_line(">>");

    // A megabyte pasted in one bracket: refused at Enter.
    alice.paste(&"q".repeat(1 << 20));
    alice.type_keys("\r");
    alice.wait_for_text("line too long (the limit is 16384 bytes)");
    alice.wait_for_input_line(">>");

    // Ctrl-C on an empty line quits cleanly.
    alice.type_keys("\x03");
    alice.wait_for_text("bye");
    assert!(alice.wait_exit(), "the peer quits with success");
    let history = std::fs::read_to_string(data.path().join("history-alice")).unwrap();
    assert!(
        history.contains(&format!("chat message bob {}", "z".repeat(100))),
        "the refused line is in the history"
    );
}

#[test]
fn a_conversation_takes_plain_lines_as_messages_and_a_pasted_message_of_three_lines() {
    let server = Server::start();
    let bob = Peer::start("bob", server.addr());
    bob.register();
    let data = DataDir::new("alice");
    let alice = Terminal::peer("alice", server.addr(), &data);
    alice.wait_for_input_line(">>");
    alice.type_keys("chat request bob\r");
    bob.expect("chat request from alice");
    bob.send("yes");
    alice.wait_for_text("chat accepted by bob");

    alice.type_keys("talk bob\r");
    alice.wait_for_text("talking to bob");
    alice.wait_for_input_line("bob>");
    // A message saying exit is a message.
    alice.type_keys("exit\r");
    bob.expect_exact("alice: exit");
    alice.wait_for_text("delivered to bob");

    // Three lines pasted: one message of three lines.
    alice.paste("one\ntwo\nthree\n");
    alice.type_keys("\r");
    bob.expect_exact("alice: one\\u{a}two\\u{a}three");

    // After `chat message bob `, outside the conversation, the same.
    alice.type_keys("/talk\r");
    alice.wait_for_text("no conversation: lines are commands");
    alice.wait_for_input_line(">>");
    alice.type_keys("chat message bob ");
    alice.paste("four\nfive");
    alice.type_keys("\r");
    bob.expect_exact("alice: four\\u{a}five");
}

#[test]
fn talk_works_through_a_pipe_and_a_long_message_is_sent_in_parts() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    let bob = Peer::start("bob", server.addr());
    alice.chat_with(&bob);

    alice.send("talk bob");
    alice.expect_exact(
        "talking to bob: lines are messages to bob, commands start with / (/talk stops)",
    );
    alice.send("no");
    alice.expect_next("delivered to bob");
    bob.expect_next("alice: no");
    alice.send("//etc/hosts");
    alice.expect_next("delivered to bob");
    bob.expect_next("alice: /etc/hosts");

    // 15,000 bytes: more than one message takes (8 KiB), so two, each acknowledged.
    let long = "word ".repeat(3000);
    alice.send(&long);
    alice.expect_next("delivered to bob");
    alice.expect_next("delivered to bob");
    let first = bob.expect_prefix("alice: word");
    let second = bob.expect_prefix("alice: word");
    let words = |line: &str| line.matches("word").count();
    assert_eq!(words(&first) + words(&second), 3000);

    alice.send("/whoami");
    alice.expect_prefix("alice key ");
    alice.send("/exit");
    alice.expect_exact("bye");
}

#[test]
fn talk_is_refused_without_a_chat_and_with_ones_own_name() {
    let mut alice = Peer::start_offline("alice");
    alice.send("talk nobody");
    assert_eq!(alice.expect_error(), "error: not in a chat with nobody");
    alice.send("talk alice");
    assert_eq!(
        alice.expect_error(),
        "error: alice is this peer's own name: a chat is with another peer"
    );
    // Lines are still commands: a piped user is not trapped.
    alice.send("whoami");
    alice.expect_prefix("alice key ");
    alice.exit();
}

#[test]
fn a_conversation_ends_with_its_chat_and_lines_are_commands_again() {
    let mut alice = Peer::start_offline("alice");
    let mut bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    alice.send("talk bob");
    alice.expect_prefix("talking to bob: ");
    // bob leaves: the line alice wrote for the conversation is neither sent nor run.
    bob.exit();
    alice.expect_next("bob disconnected");
    alice.send("exit");
    alice.expect_next(
        "no chat with bob now: the conversation ended, lines are commands (the last line was \
         neither sent nor run)",
    );
    alice.send("whoami");
    alice.expect_prefix("alice key ");

    // alice ends it herself: the conversation ends at once.
    let carol = Peer::start_offline("carol");
    alice.chat_with(&carol);
    alice.send("talk carol");
    alice.expect_prefix("talking to carol: ");
    alice.send("/disconnect carol");
    alice.expect_next("disconnected from carol");
    alice.expect_next("no chat with carol now: the conversation ended, lines are commands");
    alice.exit();
}

#[test]
fn a_message_of_several_lines_is_shown_as_indented_lines_at_a_terminal() {
    let server = Server::start();
    let bob = Peer::builder("bob").server(server.addr()).start_json();
    bob.command("reg", "register");
    bob.expect_event("registered");
    let data = DataDir::new("alice");
    let alice = Terminal::peer("alice", server.addr(), &data);
    alice.wait_for_input_line(">>");
    alice.type_keys("chat request bob\r");
    bob.expect_event("request_arrived");
    bob.command("yes", "yes");
    alice.wait_for_text("chat accepted by bob");

    // A JSON command may hold a line break; so may a pasted message.
    bob.command("m1", "chat message alice six\nseven");
    bob.expect_event("delivered");
    alice.wait_for(
        "bob's two lines, the second indented under the first",
        |rows, _| {
            rows.windows(2).any(|pair| {
                let (first, second) = (pair[0].trim_end(), pair[1].trim_end());
                first.ends_with("bob: six")
                    && second.trim_start() == "seven"
                    && second.len() - "seven".len() == first.len() - "six".len()
            })
        },
    );
}
