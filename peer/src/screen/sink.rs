//! Where the screen thread's lines go: standard output, or (at a terminal) rustyline's
//! printer (`terminal.rs`), which prints above the prompt.

use std::io::{self, Write};

/// Where the screen thread writes lines.
pub trait Sink: Send + 'static {
    /// Writes one line (without its line ending).
    fn line(&mut self, text: &str) -> io::Result<()>;
    /// Makes what was written visible: called whenever the queue is empty.
    fn flush(&mut self) -> io::Result<()>;
    /// Writes one line of the log (without its line ending): to stderr, unless the sink
    /// has a better place for it.
    fn log(&mut self, text: &str) -> io::Result<()> {
        stderr_line(text)
    }
}

/// Writes one line to stderr.
pub fn stderr_line(text: &str) -> io::Result<()> {
    writeln!(io::stderr().lock(), "{text}")
}

/// Standard output. The lines of one batch (what waited in the queue together) go out in one
/// write when the batch ends, instead of one write each: under a burst of messages, that is
/// most of the screen thread's system calls.
#[derive(Default)]
pub struct Stdout {
    batch: Vec<u8>,
}

impl Sink for Stdout {
    fn line(&mut self, text: &str) -> io::Result<()> {
        self.batch.extend_from_slice(text.as_bytes());
        self.batch.push(b'\n');
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let written = io::stdout().lock().write_all(&self.batch);
        self.batch.clear();
        written?;
        io::stdout().flush()
    }
}
