//! A program in a real pseudo-terminal, as a person sees it: the helper of the terminal
//! tests (`terminal.rs`, `paste.rs`).
//!
//! The program runs on the slave side of a pty; everything it writes is fed into a terminal
//! emulator (`vt100`), and the assertions read that emulated screen. The emulator also answers
//! the terminal's cursor-position queries, as a real terminal would. Waiting re-checks the
//! screen each time new output arrives (a condition variable), with a deadline: no sleeps.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use p2p_e2e::{binary, DataDir};
use p2p_kit::p2p_env;
use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

const ROWS: u16 = 24;
pub const COLS: u16 = 100;
const DEADLINE: Duration = Duration::from_secs(10);

/// A program running in a pseudo-terminal, with the screen it has drawn so far.
pub struct Terminal {
    child: Box<dyn Child + Send + Sync>,
    keyboard: Arc<Mutex<Box<dyn Write + Send>>>,
    screen: Arc<(Mutex<vt100::Parser>, Condvar)>,
    /// How many bell bytes (BEL) the program wrote, counted in the raw output (the emulator
    /// keeps no trace of them); changed only under the screen's lock.
    bells: Arc<AtomicUsize>,
    _master: Box<dyn MasterPty + Send>,
}

impl Terminal {
    pub fn spawn(program: PathBuf, args: &[String]) -> Terminal {
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
        let bells = Arc::new(AtomicUsize::new(0));
        let bells_in = bells.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = output.read(&mut buf) {
                let (parser, changed) = &*screen_in;
                let mut parser = parser.lock().unwrap();
                let rung = buf[..n].iter().filter(|&&b| b == 0x07).count();
                bells_in.fetch_add(rung, Ordering::SeqCst);
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
            bells,
            _master: pty.master,
        }
    }

    pub fn type_keys(&self, keys: &str) {
        let mut keyboard = self.keyboard.lock().unwrap();
        keyboard
            .write_all(keys.as_bytes())
            .expect("type into the pty");
        keyboard.flush().expect("flush the pty");
    }

    /// Waits until `ready` holds for the screen's rows and the cursor's row; panics showing
    /// the screen at the deadline.
    pub fn wait_for(&self, what: &str, ready: impl Fn(&[String], usize) -> bool) {
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

    /// How many bell bytes the program wrote up to what the screen shows now.
    pub fn bells(&self) -> usize {
        let _screen = self.screen.0.lock().unwrap();
        self.bells.load(Ordering::SeqCst)
    }

    pub fn wait_for_text(&self, text: &str) {
        self.wait_for(text, |rows, _| rows.iter().any(|r| r.contains(text)));
    }

    /// Waits for `text` on the screen, even wrapped over rows (a long line's end, its hint).
    pub fn wait_for_wrapped_text(&self, text: &str) {
        self.wait_for(text, |rows, _| {
            rows.iter()
                .map(|r| r.trim_end_matches(' '))
                .collect::<String>()
                .contains(text)
                || rows.concat().contains(text)
        });
    }

    /// Waits until the line being edited (the cursor's row) reads exactly `line`.
    pub fn wait_for_input_line(&self, line: &str) {
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

impl Terminal {
    /// `p2p-peer NAME` on loopback at a free port, with `server` as its registry.
    pub fn peer(name: &str, server: SocketAddr, data: &DataDir) -> Terminal {
        Terminal::spawn(
            binary("p2p-peer"),
            &[
                "--name".into(),
                name.into(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--port".into(),
                "0".into(),
                "--server".into(),
                server.to_string(),
                "--data-dir".into(),
                data.arg(),
            ],
        )
    }

    /// Pastes `text` as a terminal does when the program asked for bracketed paste.
    pub fn paste(&self, text: &str) {
        self.type_keys(&format!("\x1b[200~{text}\x1b[201~"));
    }

    /// Waits for the program to exit, and returns whether it succeeded.
    pub fn wait_exit(&mut self) -> bool {
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}
