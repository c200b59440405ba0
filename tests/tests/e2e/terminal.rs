//! The interactive peer in a real pseudo-terminal, as a person sees it.
//!
//! The peer runs on the slave side of a pty; everything it writes is fed into a terminal
//! emulator (`vt100`), and the assertions read that emulated screen. The emulator also answers
//! the terminal's cursor-position queries, as a real terminal would. Waiting re-checks the
//! screen each time new output arrives (a condition variable), with a deadline: no sleeps.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use p2p_e2e::{binary, DataDir, Peer, Server};
use p2p_kit::p2p_env;
use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

const ROWS: u16 = 24;
const COLS: u16 = 100;
const DEADLINE: Duration = Duration::from_secs(10);

/// A program running in a pseudo-terminal, with the screen it has drawn so far.
struct Terminal {
    child: Box<dyn Child + Send + Sync>,
    keyboard: Arc<Mutex<Box<dyn Write + Send>>>,
    screen: Arc<(Mutex<vt100::Parser>, Condvar)>,
    _master: Box<dyn MasterPty + Send>,
}

impl Terminal {
    fn spawn(program: PathBuf, args: &[String]) -> Terminal {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pty");
        let mut cmd = CommandBuilder::new(program);
        cmd.args(args);
        for var in p2p_env() {
            cmd.env_remove(var);
        }
        cmd.env("TERM", "xterm");
        let child = pty.slave.spawn_command(cmd).expect("spawn in the pty");
        drop(pty.slave);

        let keyboard = Arc::new(Mutex::new(pty.master.take_writer().expect("pty writer")));
        let screen = Arc::new((
            Mutex::new(vt100::Parser::new(ROWS, COLS, 0)),
            Condvar::new(),
        ));
        let mut output = pty.master.try_clone_reader().expect("pty reader");
        let (screen_in, answers) = (screen.clone(), keyboard.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = output.read(&mut buf) {
                let (parser, changed) = &*screen_in;
                let mut parser = parser.lock().unwrap();
                parser.process(&buf[..n]);
                changed.notify_all();
                // "Where is the cursor?" (DSR 6): answer like a terminal does.
                if buf[..n].windows(4).any(|w| w == b"\x1b[6n") {
                    let (row, col) = parser.screen().cursor_position();
                    let reply = format!("\x1b[{};{}R", row + 1, col + 1);
                    let _ = answers.lock().unwrap().write_all(reply.as_bytes());
                }
            }
        });
        Terminal {
            child,
            keyboard,
            screen,
            _master: pty.master,
        }
    }

    fn type_keys(&self, keys: &str) {
        let mut keyboard = self.keyboard.lock().unwrap();
        keyboard
            .write_all(keys.as_bytes())
            .expect("type into the pty");
        keyboard.flush().expect("flush the pty");
    }

    /// Waits until `ready` holds for the screen's rows and the cursor's row; panics showing
    /// the screen at the deadline.
    fn wait_for(&self, what: &str, ready: impl Fn(&[String], usize) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        let (parser, changed) = &*self.screen;
        let mut parser = parser.lock().unwrap();
        loop {
            let rows: Vec<String> = parser.screen().rows(0, COLS).collect();
            if ready(&rows, parser.screen().cursor_position().0 as usize) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("screen never showed {what}; it shows:\n{}", rows.join("\n"));
            }
            parser = changed.wait_timeout(parser, left).unwrap().0;
        }
    }

    fn wait_for_text(&self, text: &str) {
        self.wait_for(text, |rows, _| rows.iter().any(|r| r.contains(text)));
    }

    /// Waits until the line being edited (the cursor's row) reads exactly `line`.
    fn wait_for_input_line(&self, line: &str) {
        self.wait_for(&format!("the input line {line:?}"), |rows, cursor| {
            rows.get(cursor).map(|r| r.trim_end()) == Some(line)
        });
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// A line of the log (here the warning about a frame of garbage) is printed above the prompt,
/// as events are, and the half-typed line is drawn again intact (issue 17, item 9). Before,
/// it went straight to stderr, the same terminal: over the half-typed line, which rustyline
/// did not redraw.
#[test]
fn a_log_line_is_printed_above_the_prompt_not_over_the_half_typed_line() {
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
            p2p_e2e::dead_addr().to_string(),
            "--data-dir".into(),
            data.arg(),
        ],
    );
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
