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
//! messages included), Tab completion of commands and peer names, and hints that show the
//! arguments a command still needs.

use std::borrow::Cow;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rustyline::completion::Completer;
use rustyline::config::{CompletionType, Config};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::{Context, Editor, ExternalPrinter, Helper, Validator};

use crate::command::TOPICS;
use crate::error::PeerError;
use crate::input::{Input, MAX_LINE_LEN};
use crate::names::Names;
use crate::screen::{stderr_line, Sink, Stdout};

const PROMPT: &str = ">> ";

/// The terminal's parts for the rest of the peer.
pub struct Terminal {
    /// The lines typed.
    pub lines: async_channel::Receiver<Input>,
    /// Where the editor waits to be told that a line's command is done.
    pub done: async_channel::Sender<()>,
    /// Where events are printed, above the prompt.
    pub printer: Printer,
}

/// rustyline's external printer, as the screen's sink.
pub struct Printer(Box<dyn ExternalPrinter + Send>);

impl Sink for Printer {
    fn line(&mut self, text: &str) -> std::io::Result<()> {
        match self.0.print(format!("{text}\n")) {
            Ok(()) => Ok(()),
            // The prompt is gone (input ended): plain stdout from here on.
            Err(_) => Stdout.line(text),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Stdout.flush()
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
    editor.set_helper(Some(Assistant { names }));
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
    let printer = Printer(Box::new(printer));

    let (tx, lines) = async_channel::bounded(1);
    let (done, finished) = async_channel::bounded(1);
    std::thread::Builder::new()
        .name("terminal".into())
        .spawn(move || loop {
            let input = match editor.readline(PROMPT) {
                Ok(line) if line.len() > MAX_LINE_LEN => {
                    Input::Unreadable(PeerError::LineTooLong { max: MAX_LINE_LEN })
                }
                Ok(line) => {
                    if !line.trim().is_empty()
                        && editor.add_history_entry(line.as_str()).unwrap_or(false)
                    {
                        if let Some(path) = &history {
                            let _ = editor.append_history(path);
                        }
                    }
                    Input::Line(line)
                }
                // Ctrl-C and Ctrl-D end the peer, as they do in the plain mode.
                Err(ReadlineError::Interrupted | ReadlineError::Eof) => Input::End,
                Err(e) => {
                    tracing::warn!("terminal input failed: {e}");
                    Input::End
                }
            };
            let end = input == Input::End;
            if end || tx.send_blocking(input).is_err() || finished.recv_blocking().is_err() {
                if end {
                    let _ = tx.send_blocking(Input::End);
                }
                break;
            }
        })
        .context("cannot start the terminal reader")?;
    Ok(Terminal {
        lines,
        done,
        printer,
    })
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

/// rustyline's helper: completion and hints.
#[derive(Helper, Validator)]
struct Assistant {
    names: Names,
}

impl Completer for Assistant {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(completions(&line[..pos], &self.names))
    }
}

impl Hinter for Assistant {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, _: &Context<'_>) -> Option<String> {
        (pos == line.len()).then(|| hint(line)).flatten()
    }
}

impl Highlighter for Assistant {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            Cow::Borrowed(hint)
        } else {
            Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
        }
    }
}

/// Where the word being completed starts, and its candidates: a peer name where a command
/// expects one, otherwise a command.
fn completions(line: &str, names: &Names) -> (usize, Vec<String>) {
    let start = line.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let before: Vec<&str> = line[..start].split_whitespace().collect();
    if matches!(
        before.as_slice(),
        ["chat", "message"] | ["chat", "request"] | ["disconnect"] | ["yes"] | ["no"]
    ) {
        let word = &line[start..];
        let names = names
            .starting_with(word)
            .into_iter()
            .map(|n| n + " ")
            .collect();
        return (start, names);
    }
    let typed = line.trim_start();
    let offset = line.len() - typed.len();
    let commands = TOPICS
        .iter()
        .filter(|t| t.name.starts_with(typed) && t.name != typed.trim_end())
        .map(|t| format!("{} ", t.name))
        .collect();
    (offset, commands)
}

/// What to show after the cursor: the rest of the command's name and the arguments it still
/// needs, e.g. `chat m` -> `essage PEER TEXT`.
fn hint(line: &str) -> Option<String> {
    let typed: Vec<&str> = line.split_whitespace().collect();
    let (done, partial) = match (line.ends_with(char::is_whitespace), typed.split_last()) {
        (_, None) => return None,
        (true, _) => (typed.as_slice(), None),
        (false, Some((last, done))) => (done, Some(*last)),
    };
    // A complete one-word command ("exit") is not a prefix of a longer one ("exit network").
    if done.is_empty() && TOPICS.iter().any(|t| Some(t.name) == partial) && partial != Some("chat")
    {
        let topic = TOPICS.iter().find(|t| Some(t.name) == partial)?;
        let args: Vec<&str> = topic
            .usage
            .split(" | ")
            .next()?
            .split(' ')
            .skip(1)
            .collect();
        return (!args.is_empty()).then(|| format!(" {}", args.join(" ")));
    }
    let is_arg = |w: &str| w.starts_with('[') || w.chars().all(|c| c.is_ascii_uppercase());
    TOPICS
        .iter()
        .flat_map(|t| t.usage.split(" | "))
        .find_map(|usage| {
            let words: Vec<&str> = usage.split(' ').collect();
            if done.len() >= words.len()
                || !done.iter().zip(&words).all(|(t, u)| is_arg(u) || t == u)
            {
                return None;
            }
            let (next, rest) = (words[done.len()], &words[done.len() + 1..]);
            let rest = rest.iter().map(|w| format!(" {w}")).collect::<String>();
            match partial {
                None => Some(format!("{next}{rest}")),
                Some(p) if !is_arg(next) && next.starts_with(p) => {
                    Some(format!("{}{rest}", &next[p.len()..]))
                }
                Some(_) if is_arg(next) && !rest.is_empty() => Some(rest),
                Some(_) => None,
            }
        })
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        crate::names::sample()
    }

    #[test]
    fn completes_peer_names_where_a_command_expects_one() {
        assert_eq!(
            completions("disconnect b", &names()),
            (11, vec!["bea ".into(), "bob ".into()])
        );
        assert_eq!(
            completions("chat message c", &names()),
            (13, vec!["carol ".into()])
        );
        assert_eq!(completions("yes ", &names()).1.len(), 3);
    }

    #[test]
    fn completes_commands_from_the_start_of_the_line() {
        assert_eq!(
            completions("li", &names()),
            (0, vec!["listpeer ".into(), "list connected peer ".into()])
        );
        assert_eq!(
            completions("chat ", &names()),
            (0, vec!["chat request ".into(), "chat message ".into()])
        );
        assert_eq!(completions("zz", &names()).1, Vec::<String>::new());
    }

    #[test]
    fn hints_show_what_a_command_still_needs() {
        assert_eq!(hint("chat m").as_deref(), Some("essage PEER TEXT"));
        assert_eq!(hint("chat message ").as_deref(), Some("PEER TEXT"));
        assert_eq!(hint("chat message bob").as_deref(), Some(" TEXT"));
        assert_eq!(hint("disconnect").as_deref(), Some(" PEER"));
        assert_eq!(hint("exit"), None);
        assert_eq!(hint("chat message bob hello there"), None);
        assert_eq!(hint(""), None);
        assert_eq!(hint("frobnicate "), None);
    }
}
