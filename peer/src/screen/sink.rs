//! Where the screen thread's lines go: standard output, or (at a terminal) rustyline's
//! printer (`terminal.rs`), which prints above the prompt.

use std::io::{self, Write};

/// Where the screen thread writes lines.
pub trait Sink: Send + 'static {
    /// Writes one line (without its line ending), or keeps it for [`Sink::flush`].
    fn line(&mut self, text: &str) -> io::Result<()>;
    /// Makes what was written visible, waiting if it must: called whenever the queue is
    /// empty.
    fn flush(&mut self) -> io::Result<()>;
    /// Whether [`Sink::try_flush`] may write: only then do other threads write through this
    /// sink (`screen/writer.rs`).
    fn writes_without_waiting(&self) -> bool {
        false
    }
    /// Writes what was kept as far as that needs no waiting: true if all is written, false
    /// if some is left for [`Sink::flush`].
    fn try_flush(&mut self) -> io::Result<bool> {
        Ok(false)
    }
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
///
/// On Linux it writes without waiting where the kernel can (`pwritev2` with `RWF_NOWAIT`:
/// a pipe, since Linux 5.x): a full pipe answers "would block" instead of stopping the
/// writer, and what is left waits for the screen thread. Where the kernel cannot (a file, a
/// terminal, an older kernel), every line is the screen thread's, as before.
pub struct Stdout {
    batch: Vec<u8>,
    /// Whether writes without waiting may work here: until the kernel says they do not.
    nowait: bool,
}

impl Default for Stdout {
    fn default() -> Self {
        Stdout {
            batch: Vec::new(),
            nowait: cfg!(target_os = "linux"),
        }
    }
}

impl Sink for Stdout {
    fn line(&mut self, text: &str) -> io::Result<()> {
        self.batch.extend_from_slice(text.as_bytes());
        self.batch.push(b'\n');
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let written = write_waiting(&self.batch);
        self.batch.clear();
        written
    }

    fn writes_without_waiting(&self) -> bool {
        self.nowait
    }

    #[cfg(target_os = "linux")]
    fn try_flush(&mut self) -> io::Result<bool> {
        use rustix::io::{pwritev2, Errno, ReadWriteFlags};
        while !self.batch.is_empty() {
            let slice = [io::IoSlice::new(&self.batch)];
            // An offset of `u64::MAX` writes at the current position, as `write` does.
            match pwritev2(io::stdout(), &slice, u64::MAX, ReadWriteFlags::NOWAIT) {
                Ok(n) => drop(self.batch.drain(..n)),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(false),
                Err(Errno::OPNOTSUPP | Errno::INVAL | Errno::NOSYS) => {
                    self.nowait = false;
                    return Ok(false);
                }
                Err(e) => {
                    self.batch.clear();
                    return Err(e.into());
                }
            }
        }
        Ok(true)
    }
}

/// Writes all of `bytes` to stdout, waiting for room: past the standard library's buffer,
/// so that these writes and those without waiting keep one order.
fn write_waiting(mut bytes: &[u8]) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};
    use rustix::io::Errno;
    let stdout = io::stdout();
    while !bytes.is_empty() {
        match rustix::io::write(&stdout, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            // Someone made the pipe non-blocking (it is shared with the programs around us):
            // wait for room rather than lose the lines.
            Err(Errno::AGAIN) => {
                let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
                let _ = poll(&mut fds, None);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
