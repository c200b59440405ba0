//! The interactive peer in a real pseudo-terminal, as a person sees it (`pty.rs`): messages
//! above a half-typed line, completion, history, the start-up questions. Pastes, huge input,
//! Ctrl-C and conversations are in `paste.rs`.

use p2p_e2e::{binary, DataDir, Peer, Server};

use crate::pty::Terminal;

#[test]
fn an_incoming_message_does_not_clobber_the_half_typed_line_and_tab_completes_names() {
    let server = Server::start();
    let bob = Peer::start("bob", server.addr());
    bob.register();

    let data = DataDir::new("alice");
    let alice = Terminal::spawn(
        binary("p2p-peer"),
        &[
            "--name".into(),
            "alice".into(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--port".into(),
            "0".into(),
            "--server".into(),
            server.addr().to_string(),
            "--data-dir".into(),
            data.arg(),
        ],
    );
    alice.wait_for_input_line(">>");

    // listpeer also teaches the completer bob's name.
    alice.type_keys("listpeer\r");
    alice.wait_for_text(&bob.peer_line());
    alice.type_keys("chat request bob\r");
    bob.expect("chat request from alice");
    bob.send("yes");
    alice.wait_for_text("chat accepted by bob");

    // Half a line typed, then a message arrives.
    alice.type_keys("chat message bob hel");
    alice.wait_for_input_line(">> chat message bob hel");
    bob.send("chat message alice hi from bob");
    bob.expect("delivered to alice");
    alice.wait_for("the message above the intact half line", |rows, cursor| {
        let message = rows.iter().position(|r| r.contains("bob: hi from bob"));
        message.is_some_and(|m| m < cursor) && rows[cursor].trim_end() == ">> chat message bob hel"
    });

    // Finish that line; it is sent as typed.
    alice.type_keys("lo\r");
    bob.expect_exact("alice: hello");
    alice.wait_for_text("delivered to bob");

    // Tab completes a peer name.
    alice.type_keys("disconnect b\t");
    alice.wait_for_input_line(">> disconnect bob");
    alice.type_keys("\r");
    bob.expect("alice disconnected");
    alice.wait_for_text("disconnected from bob");

    alice.type_keys("exit\r");
    alice.wait_for_text("bye");

    // The history is kept, privately.
    let history = data.path().join("history-alice");
    let kept = std::fs::read_to_string(&history).expect("history file");
    assert!(kept.contains("chat message bob hello"), "{kept}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&history).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "history is readable by others: {mode:o}");
    }
}

/// With no flags, the start-up questions ask again after a typo at a terminal.
#[test]
fn the_start_up_questions_ask_again_after_a_typo() {
    let data = DataDir::new("prompted");
    let peer = Terminal::spawn(
        binary("p2p-peer"),
        &[
            "--bind".into(),
            "127.0.0.1".into(),
            "--server".into(),
            p2p_e2e::dead_addr().to_string(),
            "--data-dir".into(),
            data.arg(),
        ],
    );
    peer.wait_for_input_line("serverport:");
    peer.type_keys("40o1\r");
    peer.wait_for_text(
        "error: serverport must be a port number (0-65535), not \"40o1\"; try again",
    );
    peer.wait_for_input_line("serverport:");
    peer.type_keys("0\r");
    peer.wait_for_input_line("Your name:");
    peer.type_keys("two words\r");
    peer.wait_for_text("error: invalid name \"two words\"");
    peer.wait_for_input_line("Your name:");
    peer.type_keys("alice\r");
    peer.wait_for_text("alice listening on 127.0.0.1:");
    peer.type_keys("exit\r");
    peer.wait_for_text("bye");
}
