//! The peer's log: tracing's lines, on stderr, or above the prompt at a terminal.
//!
//! Logs go to stderr only, so stdout stays exactly the documented events. `--debug` shows
//! this program's debug events; RUST_LOG, when set, chooses freely; otherwise warnings only.
//!
//! A write to stderr blocks when nobody reads it, and a log line is never worth holding the
//! peer up: lines go to tracing-appender's writer thread through a bounded queue, and a line
//! that finds it full is dropped and counted; a task says how many, every
//! [`LOG_DROPS_EVERY`] ([`log_drops`]).
//!
//! At a terminal (stdin, stdout and stderr all one), a line written straight to stderr would
//! land over the prompt and the half-typed line. So once the screen runs, the writer thread
//! hands its lines to the screen ([`Log::above_prompt`]), which prints them above the prompt
//! in order with the events (`screen.rs`). Colours only when stderr is a terminal and
//! `NO_COLOR` is unset, as for events: a log redirected to a file holds no escape codes.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use p2p_shared::runtime;
use tracing_appender::non_blocking::{ErrorCounter, WorkerGuard};

use crate::screen::{Screen, ScreenLog};

/// How many log lines may wait for stderr; beyond, they are dropped and counted.
const LOG_QUEUE: usize = 1024;

/// How often the count of dropped log lines is looked at.
const LOG_DROPS_EVERY: Duration = Duration::from_secs(10);

/// The log, set up; keep it to the end: dropping it writes what the log still holds.
pub struct Log {
    _guard: WorkerGuard,
    dropped: ErrorCounter,
    route: Route,
}

/// Where the writer thread sends lines: the screen once [`Log::above_prompt`] said so, else
/// stderr.
#[derive(Clone, Default)]
struct Route(Arc<Mutex<Option<ScreenLog>>>);

impl Route {
    fn screen(&self) -> Option<ScreenLog> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What tracing-appender's writer thread writes to.
struct Out(Route);

impl Write for Out {
    /// Called with one whole formatted line at a time (the writer thread writes each event
    /// with one `write_all`).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(screen) = self.0.screen() {
            let text = String::from_utf8_lossy(buf);
            if screen.line(text.trim_end_matches('\n').to_owned()).is_ok() {
                return Ok(buf.len());
            }
        }
        io::stderr().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Sets up the log for the process.
pub fn init(debug: bool) -> Log {
    use tracing_subscriber::EnvFilter;
    let filter = if debug {
        EnvFilter::new("p2p_peer=debug,p2p_shared=debug")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"))
    };
    let route = Route::default();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE)
        .lossy(true)
        .thread_name("log")
        .finish(Out(route.clone()));
    let dropped = writer.error_counter();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours(
            io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(writer)
        .init();
    Log {
        _guard: guard,
        dropped,
        route,
    }
}

/// Whether log lines get colours: only on a terminal, and not with `NO_COLOR` set (to
/// anything but nothing: README), as events. tracing's own `NO_COLOR` check gives way to
/// `with_ansi`, so it is made here.
fn colours(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

impl Log {
    /// From now on, lines are printed above the prompt by `screen`.
    pub fn above_prompt(&self, screen: &Screen) {
        *self.route.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(screen.log());
    }

    /// Starts the task that says how many lines were dropped.
    pub fn count_drops(&self) {
        runtime::spawn(log_drops(self.dropped.clone()));
    }
}

/// Says, every [`LOG_DROPS_EVERY`], how many log lines were dropped since the last time.
async fn log_drops(dropped: ErrorCounter) {
    let mut reported = 0;
    loop {
        runtime::sleep(LOG_DROPS_EVERY).await;
        let count = dropped.dropped_lines();
        if count > reported {
            tracing::warn!(
                "{} log line(s) dropped: stderr was not read in time",
                count - reported
            );
            reported = count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_and_without_no_color() {
        assert!(colours(true, None));
        assert!(colours(true, Some("".into())), "empty: unset");
        assert!(!colours(true, Some("1".into())));
        assert!(!colours(false, None), "a file or a pipe");
    }
}
