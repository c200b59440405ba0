//! The registry's log: one line per event on stdout, flushed at once.

use std::fmt::Display;
use std::io::Write;

/// Prints one line. A closed stdout is ignored rather than allowed to stop the registry.
pub fn say(line: impl Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
