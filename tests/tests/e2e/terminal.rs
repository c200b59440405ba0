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
    let alice = Terminal::peer("alice", server.addr(), &data);
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

/// A line of the log (here the warning about a frame of garbage) is printed above the prompt,
/// as events are, and the half-typed line is drawn again intact (issue 17, item 9). Before,
/// it went straight to stderr, the same terminal: over the half-typed line, which rustyline
/// did not redraw.
#[test]
fn a_log_line_is_printed_above_the_prompt_not_over_the_half_typed_line() {
    let data = DataDir::new("alice");
    let alice = Terminal::peer("alice", p2p_e2e::dead_addr(), &data);
    alice.wait_for_input_line(">>");
    let listening = std::cell::RefCell::new(None);
    alice.wait_for("the listening line", |rows, _| {
        let addr = rows.iter().find_map(|r| {
            let addr = r.trim_end().strip_prefix("alice listening on ")?;
            addr.parse::<std::net::SocketAddr>().ok()
        });
        *listening.borrow_mut() = addr;
        addr.is_some()
    });
    let addr = listening.into_inner().expect("waited for");

    alice.type_keys("chat message bob hel");
    alice.wait_for_input_line(">> chat message bob hel");
    // A frame of an unknown kind: refused, with a warning in alice's log.
    let reply = p2p_e2e::raw_exchange(addr, &[0, 0, 0, 1, b'Z'], false);
    assert!(!reply.is_empty(), "answered with a refusal");
    alice.wait_for("the warning above the intact half line", |rows, cursor| {
        let warning = rows
            .iter()
            .position(|r| r.contains("WARN") && r.contains("refused 127.0.0.1"));
        warning.is_some_and(|w| w < cursor) && rows[cursor].trim_end() == ">> chat message bob hel"
    });
    alice.type_keys("lo\r");
    alice.wait_for_text("error: not in a chat with bob");
    alice.type_keys("exit\r");
    alice.wait_for_text("bye");
}
