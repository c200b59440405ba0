//! The registry's log: events handed to a thread of their own, never waited for.
//!
//! A write to stdout blocks when nobody reads it (a full pipe, a paused terminal, a stalled
//! log shipper). Written from the registry's one executor thread, such a write stopped it from
//! answering anybody after about 1,500 refused connections. So the registry only puts each
//! [`Event`] in a bounded queue ([`Log::event`] never blocks) and the [`LogWriter`] thread
//! writes them. When the queue is full, the event is counted and dropped; once the writer
//! catches up it says how many it lost ([`Event::Dropped`]). A log may lose lines; the
//! registry may not stop answering.
//!
//! Refusals, which anybody can cause at any rate, pass a budget first ([`Log::refused`],
//! `refusals.rs`): a few lines per address and window, then one summary. That is decided
//! before the queue, so a flood of refusals neither fills the queue (crowding out the lines
//! that matter) nor the disk behind stdout.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use p2p_shared::clock::Clock;

use crate::event::Event;
use crate::refusals::Refusals;

/// How many events wait for the writer at most: about a second of a flood's refusals.
pub const LOG_QUEUE: usize = 1024;

/// Where the registry's events go; cheap to clone.
#[derive(Clone)]
pub struct Log {
    tx: async_channel::Sender<Event>,
    dropped: Arc<AtomicU64>,
    /// The refusals counted in this window, shared by every clone. Only the registry's one
    /// executor thread takes the lock, for a few counter updates: it never waits on it.
    refusals: Arc<Mutex<Refusals>>,
    /// Where the budget of refusal lines reads the time.
    clock: Clock,
}

impl Log {
    /// A log whose events arrive on the receiver, for [`LogWriter::start`] or a test.
    pub fn channel() -> (Log, Events) {
        let (tx, rx) = async_channel::bounded(LOG_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let log = Log {
            tx,
            dropped: Arc::clone(&dropped),
            refusals: Arc::default(),
            clock: Clock::System,
        };
        (log, Events { rx, dropped })
    }

    /// The same log, reading the time for its budget of refusal lines from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Log {
        self.clock = clock;
        self
    }

    /// Reports `event`; drops it (and counts it) if the queue is full.
    pub fn event(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reports a connection from `remote` refused for a reason of `kind`, within the budget
    /// of refusal lines; a refusal over it is counted for the window's summary.
    pub fn refused(&self, remote: SocketAddr, kind: &'static str) {
        let events = self.lock().refused(remote, kind, self.clock.now());
        for event in events {
            self.event(event);
        }
    }

    /// Sums up the refusals over the budget once their window has ended: called every
    /// second, so that the last window of a flood is reported without waiting for another
    /// refusal.
    pub fn tick(&self) {
        let events = self.lock().tick(self.clock.now());
        for event in events {
            self.event(event);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Refusals> {
        // The counters stay consistent even if a holder panicked: each update is one step.
        self.refusals.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The receiving end of a [`Log`].
pub struct Events {
    rx: async_channel::Receiver<Event>,
    dropped: Arc<AtomicU64>,
}

impl Events {
    /// The next event, once one is there; `None` when every [`Log`] is gone.
    pub async fn next(&self) -> Option<Event> {
        self.rx.recv().await.ok()
    }

    /// Another receiver of the same events (each event goes to one of them).
    pub fn clone_receiver(&self) -> Events {
        Events {
            rx: self.rx.clone(),
            dropped: Arc::clone(&self.dropped),
        }
    }

    /// The events dropped since the last call.
    fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
}

/// The thread that writes the events as lines of text.
pub struct LogWriter {
    /// Disconnected when the thread has written its last line.
    done: mpsc::Receiver<()>,
}

impl LogWriter {
    /// Writes every event of `events` to `out`, one line each, until every [`Log`] is gone.
    /// Lines are flushed whenever the queue is empty, so a reader sees each at once.
    pub fn start(events: Events, out: impl Write + Send + 'static) -> std::io::Result<LogWriter> {
        let (finished, done) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("log".into())
            .spawn(move || {
                let _finished = finished;
                write_all(events, out)
            })?;
        Ok(LogWriter { done })
    }

    /// Waits up to `grace` for the last lines to be written, once every [`Log`] is gone: a
    /// reader may never take them, and the registry must still exit.
    pub fn finish(self, grace: Duration) {
        let _ = self.done.recv_timeout(grace);
    }
}

fn write_all(events: Events, mut out: impl Write) {
    // A write error (stdout closed) is ignored: the registry goes on without its log.
    while let Ok(event) = events.rx.recv_blocking() {
        let _ = writeln!(out, "{event}");
        if events.rx.is_empty() {
            let dropped = events.take_dropped();
            if dropped > 0 {
                let _ = writeln!(out, "{}", Event::Dropped { count: dropped });
            }
            let _ = out.flush();
        }
    }
    let dropped = events.take_dropped();
    if dropped > 0 {
        let _ = writeln!(out, "{}", Event::Dropped { count: dropped });
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> p2p_shared::PeerName {
        s.parse().unwrap()
    }

    #[test]
    fn refusals_over_the_budget_are_summed_up_once_their_window_ends() {
        use crate::refusals::{PER_ADDRESS, WINDOW};
        let clock = Clock::manual();
        let (log, events) = Log::channel();
        let log = log.with_clock(clock.clone());
        let remote: SocketAddr = "127.1.0.1:4000".parse().unwrap();
        for _ in 0..1000 {
            log.refused(remote, "malformed");
        }
        log.tick();
        clock.advance(WINDOW);
        log.tick();
        drop(log);
        let mut out = Vec::new();
        write_all(events, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), PER_ADDRESS as usize + 1, "{text}");
        assert_eq!(lines[0], "refused 127.1.0.1:4000: malformed");
        assert_eq!(
            lines[PER_ADDRESS as usize],
            "995 more refusals from 127.1.0.1 in the last 10s (kinds: malformed)"
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_the_writer_says_so() {
        let (log, events) = Log::channel();
        for _ in 0..LOG_QUEUE + 3 {
            log.event(Event::Expired { name: name("a") });
        }
        drop(log);
        let mut out = Vec::new();
        write_all(events, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), LOG_QUEUE + 1);
        assert_eq!(lines[0], "expired a (not renewed in time)");
        assert_eq!(
            lines[LOG_QUEUE],
            "3 log line(s) dropped: stdout was not read in time"
        );
    }
}
