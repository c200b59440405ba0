//! The interactive terminal: rustyline, for a person typing at a prompt.
//!
//! Used only when stdin and stdout are both terminals; pipes keep the plain reader in
//! `input.rs`. rustyline has no async API, so its loop runs on a thread of its own and hands
//! each line to the command loop over the same bounded channel the plain reader uses. It
//! shows the next prompt only once the command loop says the command is done, as a shell
//! does: results come out in order, and `exit` leaves no stray prompt behind. Events that
//! arrive while a line is being typed are printed through rustyline's external printer
//! ([`Printer`], the screen thread's sink), which prints them above the prompt and redraws the
//! half-typed line, so typing is never clobbered.
//!
//! Also here: history kept across runs (a private file, since it holds what was typed,
//! messages included). The prompt shows the current conversation (`talk.rs`), as the command
//! loop says with each "done". Tab completion and hints are in `terminal/assist.rs`; the key
//! handlers that keep huge pastes and Ctrl-C working in `terminal/keys.rs`.

mod assist;
mod keys;
mod type_ahead;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustyline::config::{CompletionType, Config};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Editor, ExternalPrinter};

use crate::error::PeerError;
use crate::input::{Input, MAX_LINE_LEN};
use crate::names::Names;
use crate::screen::{stderr_line, Sink, Stdout};
use crate::talk::PROMPT;
use assist::Assistant;
use keys::LineNotes;
use type_ahead::TypeAhead;

/// The terminal's parts for the rest of the peer.
pub struct Terminal {
    /// The lines typed.
    pub lines: async_channel::Receiver<Input>,
    /// Where the editor waits to be told that a line's commands are done, and the prompt to
    /// show next.
    pub done: async_channel::Sender<String>,
    /// Where events are printed, above the prompt.
    pub printer: Printer,
    /// Keeps what is typed while a command runs (`terminal/type_ahead.rs`) until dropped, at
    /// the end of the session, which puts the terminal's own mode back.
    pub type_ahead: Option<TypeAhead>,
}

/// rustyline's external printer, as the screen's sink; plain stdout once the prompt is gone.
pub struct Printer(Box<dyn ExternalPrinter + Send>, Stdout);

impl Sink for Printer {
    fn line(&mut self, text: &str) -> std::io::Result<()> {
        match self.0.print(format!("{text}\n")) {
            Ok(()) => Ok(()),
            // The prompt is gone (input ended): plain stdout from here on.
            Err(_) => self.1.line(text),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.1.flush()
    }

    /// Above the prompt too, so that the half-typed line is redrawn (`log.rs`).
    fn log(&mut self, text: &str) -> std::io::Result<()> {
        match self.0.print(format!("{text}\n")) {
            Ok(()) => Ok(()),
            Err(_) => stderr_line(text),
        }
    }
}

/// Starts the editor thread.
pub fn start(names: Names, history: Option<PathBuf>) -> anyhow::Result<Terminal> {
    let config = Config::builder()
        .max_history_size(1000)
        .context("history size")?
        .history_ignore_dups(true)
        .context("history settings")?
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<Assistant, FileHistory> =
        Editor::with_config(config).context("cannot set up the terminal")?;
    let talking = Arc::new(AtomicBool::new(false));
    editor.set_helper(Some(Assistant {
        names,
        talking: talking.clone(),
    }));
    let history = history.and_then(|path| match private_file(&path) {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!("no command history: {e:#}");
            None
        }
    });
    if let Some(path) = &history {
        // An empty or unreadable history is no reason not to start.
        let _ = editor.load_history(path);
    }
    let printer = editor
        .create_external_printer()
        .context("cannot set up printing above the prompt")?;
    let printer = Printer(Box::new(printer), Stdout::default());
    let notes = Arc::new(LineNotes::default());
    keys::bind(&mut editor, notes.clone());

    // Before the editor first reads: it puts back, after each line, the mode it found.
    let type_ahead = TypeAhead::hold()
        .map_err(|e| tracing::warn!("lines typed while a command runs may be cut: {e}"))
        .ok();
    let (tx, lines) = async_channel::bounded(1);
    let (done, finished) = async_channel::bounded(1);
    std::thread::Builder::new()
        .name("terminal".into())
        .spawn(move || {
            let mut prompt = PROMPT.to_string();
            loop {
                notes.clear();
                let input = match editor.readline(&prompt) {
                    Ok(line) => {
                        remember(&mut editor, &line, history.as_deref());
                        if line.len() > MAX_LINE_LEN {
                            Input::Unreadable(PeerError::LineTooLong { max: MAX_LINE_LEN })
                        } else if notes.pasted_at_start() {
                            Input::Pasted(line)
                        } else {
                            Input::Line(line)
                        }
                    }
                    // Ctrl-C on an empty line (a half-typed one is cleared, `keys.rs`) and
                    // Ctrl-D end the peer, as they do in the plain mode.
                    Err(ReadlineError::Interrupted | ReadlineError::Eof) => Input::End,
                    Err(e) => {
                        tracing::warn!("terminal input failed: {e}");
                        Input::End
                    }
                };
                let end = input == Input::End;
                if end || tx.send_blocking(input).is_err() {
                    if end {
                        let _ = tx.send_blocking(Input::End);
                    }
                    break;
                }
                match finished.recv_blocking() {
                    Ok(next) => {
                        talking.store(next != PROMPT, Ordering::Relaxed);
                        prompt = next;
                    }
                    Err(_) => break,
                }
            }
        })
        .context("cannot start the terminal reader")?;
    Ok(Terminal {
        lines,
        done,
        printer,
        type_ahead,
    })
}

/// Adds a typed line to the history, so that Up brings it back: a refused one too, to be
/// shortened and sent again. Of a line past the limit only its first [`MAX_LINE_LEN`] bytes
/// are kept, so that one paste cannot make the history file megabytes long.
fn remember(editor: &mut Editor<Assistant, FileHistory>, line: &str, file: Option<&Path>) {
    if line.trim().is_empty() {
        return;
    }
    let mut end = line.len().min(MAX_LINE_LEN);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    if editor.add_history_entry(&line[..end]).unwrap_or(false) {
        if let Some(path) = file {
            let _ = editor.append_history(path);
        }
    }
}

/// Makes sure `path` exists and only its owner can read it (and its folder only its owner can
/// list), before rustyline writes anything there.
fn private_file(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(())
}
