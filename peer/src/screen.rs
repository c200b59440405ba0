//! The screen: events wait in one ordered queue, and a thread of their own writes them.
//!
//! A write to stdout blocks when nobody reads it (a full pipe, a paused terminal), and so
//! does rustyline's printer while the user types. The peer's event loop must never wait for
//! either, so it only queues events here, in the order they happened, and the screen thread
//! renders and writes them (`render.rs`), to stdout or above the prompt.
//!
//! The queue is bounded without losing a line the user must see:
//!
//! - events the network causes at any rate (a chat message, a chat request) enter only while
//!   fewer than [`ROOM`] events wait ([`Screen::has_room`], [`Screen::reserve`]); beyond
//!   that the peer answers `busy` and the sender retries;
//! - a command's result waits for room ([`Screen::show`]), which holds up the command loop
//!   (a signal still stops the peer);
//! - events no frame causes always enter, above [`ROOM`] if need be: a request's end (one
//!   per request, and each request took room when it came) with [`Screen::push`]; a partner
//!   gone, the registry lost or back, `bye` with [`Screen::push_state`], which merges a repeat
//!   into an equal event still waiting, so a registry that comes and goes while nobody reads
//!   adds no more lines.
//!
//! A chat message's place in the queue is reserved when it arrives ([`Slot`]), before the
//! broker opens it; it is filled then if its turn has come, and given back if it must wait
//! for those before it (it takes the next place when its turn comes). A message sent again
//! keeps its place until the disk thread has stored it, and fills it only if it was new. A
//! `delivered` line's place is reserved when the acknowledgement comes, and filled by the disk
//! thread once the message is stored.
//!
//! The thread writes only what cannot be written at once: while it sleeps, whoever makes an
//! event ready writes it, if the sink can do that without waiting (a pipe with room, on
//! Linux); whatever would wait is left to the thread.
//!
//! At a terminal, the log's lines come this way too ([`ScreenLog`], from `log.rs`), so that
//! rustyline prints them above the prompt and redraws the half-typed line, as it does events.
//! They have room of their own ([`LOG_ROOM`]), never taken from the network's events; the
//! log's thread waits for it, and the log's own bounded queue drops and counts beyond that.

mod sink;
mod writer;

pub use sink::{stderr_line, Sink, Stdout};

use std::collections::VecDeque;
use std::io;
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use event_listener::Event as Notify;

use crate::bell::Bell;
use crate::event::Shown;
use crate::json_command::CommandId;
use crate::render::Rendering;

/// How many events may wait before the network's are refused.
pub const ROOM: usize = 256;

/// How many log lines may wait, besides the events.
pub const LOG_ROOM: usize = 64;

/// A handle to the screen; cheap to clone. The thread ends once every handle is gone and
/// every event is written.
pub struct Screen {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Mutex<Queue>,
    /// Wakes the screen thread: an event arrived or a slot was filled.
    ready: Condvar,
    /// Wakes commands waiting for room.
    room: Notify,
    /// Wakes the log's thread waiting for room, or to be told the screen has ended.
    log_room: Condvar,
    /// The sink and how to render for it: the screen thread's while it writes, and the
    /// caller's of [`Inner::wake`] while the thread sleeps.
    output: Mutex<writer::Output>,
    /// Callers of the control socket (`control.rs`), each given a copy of every event that
    /// answers its command as it is written, until the command has ended (`untap`).
    taps: Mutex<Vec<(CommandId, async_channel::Sender<Shown>)>>,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    /// How many of `items` are log lines.
    logs: usize,
    next_slot: u64,
    handles: usize,
    /// The screen thread has returned: nothing queued now would be written.
    ended: bool,
    /// The screen thread waits for the queue to change: only then is it woken. (A condition
    /// variable's notify is a system call even when nobody waits, and under a burst of
    /// messages the thread is mostly awake, writing.)
    asleep: bool,
    /// Lines were written while the thread slept, and some could not be without waiting:
    /// the sink holds them for the thread to write.
    unflushed: bool,
}

impl Inner {
    /// Has what is ready written: call with the queue locked, after changing it. The screen
    /// thread, if it is awake, takes it; if it sleeps, the caller writes the events at the
    /// head of the queue itself when the sink can write them without waiting
    /// ([`writer::write_now`]), and wakes the thread only for the rest: a thread woken for
    /// every line costs more than the line, and the time to wake it at rest is the largest part
    /// of a chat line's way to the screen (docs/benchmarks.md).
    fn wake(&self, queue: &mut Queue) {
        if queue.asleep && !writer::write_now(self, queue) {
            self.ready.notify_one();
        }
    }
}

impl Queue {
    /// How many events wait (log lines have room of their own).
    fn events(&self) -> usize {
        self.items.len() - self.logs
    }

    /// Keeps the next place in line: its slot's id.
    fn keep_place(&mut self) -> u64 {
        let id = self.next_slot;
        self.next_slot += 1;
        self.items.push_back(Item::Reserved(id));
        id
    }
}

enum Item {
    /// Boxed: events are large, and most of the queue's items are small.
    Ready(Box<Shown>),
    /// A line of the log, already formatted.
    Log(String),
    /// A place kept for an event that is not ready yet.
    Reserved(u64),
    /// Answered once every event before it is written.
    Flush(mpsc::Sender<()>),
    /// The command with this id has ended: once every event before it is written, its tap
    /// is dropped, which tells the caller of the control socket it has every outcome.
    Untap(CommandId),
}

impl Screen {
    /// Starts the screen thread, writing to `sink` as `rendering` says; with a `bell`, the
    /// events it rings for start with a BEL (only at a terminal).
    pub fn start(
        rendering: Rendering,
        sink: Box<dyn Sink>,
        bell: Option<Bell>,
    ) -> io::Result<Screen> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue {
                handles: 1,
                ..Queue::default()
            }),
            ready: Condvar::new(),
            room: Notify::new(),
            log_room: Condvar::new(),
            output: Mutex::new(writer::Output {
                sink,
                rendering,
                bell,
            }),
            taps: Mutex::new(Vec::new()),
        });
        let thread_inner = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("screen".into())
            .spawn(move || writer::write_all(&thread_inner))?;
        Ok(Screen { inner })
    }

    /// Copies every event that answers `id` to `to` from now on, as it is written, until
    /// [`Screen::untap`] (a caller that does not read in time loses copies, never the screen).
    pub fn tap(&self, id: CommandId, to: async_channel::Sender<Shown>) {
        let mut taps = self.inner.taps.lock().unwrap_or_else(|p| p.into_inner());
        taps.retain(|(_, tap)| !tap.is_closed());
        taps.push((id, to));
    }

    /// Ends the tap of command `id` once every event queued before now is written: the
    /// command has ended, so nothing queued later answers it as the caller waits for.
    /// Always queued (one per command, so bounded by what the user and scripts do).
    pub fn untap(&self, id: CommandId) {
        let mut queue = self.queue();
        queue.items.push_back(Item::Untap(id));
        self.inner.wake(&mut queue);
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves the queue as it was: still usable.
        self.inner.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an event caused by the network may enter now.
    pub fn has_room(&self) -> bool {
        self.queue().events() < ROOM
    }

    /// Keeps the next place in line for an event caused by the network, if there is room.
    pub fn reserve(&self) -> Option<Slot> {
        let mut queue = self.queue();
        if queue.events() >= ROOM {
            return None;
        }
        let id = queue.keep_place();
        drop(queue);
        Some(self.slot(id))
    }

    /// Keeps the next place in line for an event let in earlier, when there was room: a
    /// held chat message whose turn came.
    pub fn reserve_now(&self) -> Slot {
        let id = self.queue().keep_place();
        self.slot(id)
    }

    fn slot(&self, id: u64) -> Slot {
        Slot {
            screen: self.clone(),
            id,
            filled: false,
        }
    }

    /// Queues `event` without waiting. For events the network causes, after a check of
    /// [`Screen::has_room`] in the same step.
    pub fn push(&self, event: impl Into<Shown>) {
        let mut queue = self.queue();
        queue.items.push_back(Item::Ready(Box::new(event.into())));
        self.inner.wake(&mut queue);
    }

    /// Queues an event no frame causes: always, merged into an equal one still waiting.
    pub fn push_state(&self, event: impl Into<Shown>) {
        let event = event.into();
        let mut queue = self.queue();
        let waiting = queue
            .items
            .iter()
            .any(|item| matches!(item, Item::Ready(e) if **e == event));
        if !waiting {
            queue.items.push_back(Item::Ready(Box::new(event)));
            self.inner.wake(&mut queue);
        }
    }

    /// Keeps the next place in line for a command's result, waiting for room.
    pub async fn reserve_waiting(&self) -> Slot {
        loop {
            let listener = self.inner.room.listen();
            if let Some(slot) = self.reserve() {
                return slot;
            }
            listener.await;
        }
    }

    /// Queues a command's result, waiting for room.
    pub async fn show(&self, event: impl Into<Shown>) {
        let event = event.into();
        loop {
            let listener = self.inner.room.listen();
            {
                let mut queue = self.queue();
                if queue.events() < ROOM {
                    queue.items.push_back(Item::Ready(Box::new(event)));
                    self.inner.wake(&mut queue);
                    return;
                }
            }
            listener.await;
        }
    }

    /// Where the log's lines go to be written above the prompt. It does not keep the screen
    /// thread alive: once that ends, lines are handed back.
    pub fn log(&self) -> ScreenLog {
        ScreenLog {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Waits, at most `grace`, until every event queued so far is written: before exiting.
    /// A reader may never take them, and the program must still exit.
    pub fn flush(&self, grace: Duration) {
        let (done, written) = mpsc::channel();
        let mut queue = self.queue();
        queue.items.push_back(Item::Flush(done));
        self.inner.wake(&mut queue);
        drop(queue);
        let _ = written.recv_timeout(grace);
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut queue = self.queue();
        queue.handles -= 1;
        // The last handle gone: the thread writes what is left and ends. (Every filled slot
        // drops a handle: waking the thread for each would cost a wake-up per chat line.)
        if queue.handles == 0 && queue.asleep {
            self.inner.ready.notify_one();
        }
    }
}

/// The log's way onto the screen: see [`Screen::log`].
#[derive(Clone)]
pub struct ScreenLog {
    inner: Arc<Inner>,
}

impl ScreenLog {
    /// Queues one log line (without its line ending) after the events queued so far, once
    /// fewer than [`LOG_ROOM`] lines wait: the log's thread waits, never the event loop.
    /// Gives the line back if the screen has ended.
    pub fn line(&self, text: String) -> Result<(), String> {
        let mut queue = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        while queue.logs >= LOG_ROOM && !queue.ended {
            queue = self
                .inner
                .log_room
                .wait(queue)
                .unwrap_or_else(|p| p.into_inner());
        }
        if queue.ended {
            return Err(text);
        }
        queue.items.push_back(Item::Log(text));
        queue.logs += 1;
        self.inner.wake(&mut queue);
        Ok(())
    }
}

/// A place in line kept for one event; given back if dropped unfilled.
pub struct Slot {
    screen: Screen,
    id: u64,
    filled: bool,
}

impl Slot {
    /// Puts `event` in its place.
    pub fn fill(mut self, event: impl Into<Shown>) {
        self.replace(Some(event.into()));
        self.filled = true;
    }

    fn replace(&self, event: Option<Shown>) {
        let mut queue = self.screen.queue();
        let at = queue
            .items
            .iter()
            .position(|item| matches!(item, Item::Reserved(id) if *id == self.id));
        if let Some(at) = at {
            match event {
                Some(event) => queue.items[at] = Item::Ready(Box::new(event)),
                None => {
                    queue.items.remove(at);
                }
            }
        }
        self.screen.inner.wake(&mut queue);
        drop(queue);
        self.screen.inner.room.notify(usize::MAX);
    }
}

impl Clone for Screen {
    fn clone(&self) -> Self {
        self.queue().handles += 1;
        Screen {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.filled {
            self.replace(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PeerError;
    use crate::event::Event;

    /// A sink that hands every line to the test.
    struct Lines(mpsc::Sender<String>);

    impl Sink for Lines {
        fn line(&mut self, text: &str) -> io::Result<()> {
            let _ = self.0.send(text.to_owned());
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn log(&mut self, text: &str) -> io::Result<()> {
            self.line(text)
        }
    }

    const PLAIN: Rendering = Rendering::Text {
        color: false,
        interactive: false,
    };

    fn screen() -> (Screen, mpsc::Receiver<String>) {
        let (tx, lines) = mpsc::channel();
        (
            Screen::start(PLAIN, Box::new(Lines(tx)), None).unwrap(),
            lines,
        )
    }

    fn error(n: usize) -> Event {
        Event::Error(PeerError::History { why: n.to_string() })
    }

    fn next(lines: &mpsc::Receiver<String>) -> String {
        lines.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    #[test]
    fn a_reserved_place_holds_back_what_came_after_it_until_filled() {
        let (screen, lines) = screen();
        let slot = screen.reserve().unwrap();
        screen.push(error(2));
        // A place given back unfilled holds nothing back.
        drop(screen.reserve().unwrap());
        screen.push(Event::Bye);
        assert!(lines.try_recv().is_err(), "nothing passes the empty place");
        slot.fill(error(1));
        assert_eq!(next(&lines), "error: 1");
        assert_eq!(next(&lines), "error: 2");
        assert_eq!(next(&lines), "bye");
    }

    #[test]
    fn the_network_is_refused_beyond_the_room_but_state_events_always_enter_once() {
        let (screen, _lines) = screen();
        let blocker = screen.reserve().unwrap();
        let _kept: Vec<Slot> = (1..ROOM).map(|_| screen.reserve().unwrap()).collect();
        assert!(!screen.has_room());
        assert!(screen.reserve().is_none());
        let gone = Event::PeerAway {
            peer: "bob".parse().unwrap(),
            why: "no answer".into(),
        };
        screen.push_state(gone.clone());
        screen.push_state(gone);
        assert_eq!(screen.queue().items.len(), ROOM + 1, "once, above the room");
        drop(blocker);
    }

    #[test]
    fn a_command_waits_for_room_and_then_shows_in_order() {
        let (screen, lines) = screen();
        let blocker = screen.reserve().unwrap();
        for n in 1..ROOM {
            screen.push(error(n));
        }
        let waiting = {
            let screen = screen.clone();
            std::thread::spawn(move || p2p_shared::runtime::block_on(screen.show(Event::Bye)))
        };
        blocker.fill(error(0));
        for n in 0..ROOM {
            assert_eq!(next(&lines), format!("error: {n}"));
        }
        waiting.join().unwrap();
        assert_eq!(next(&lines), "bye");
    }

    #[test]
    fn log_lines_keep_their_place_among_events_and_room_of_their_own() {
        let (screen, lines) = screen();
        let log = screen.log();
        let blocker = screen.reserve().unwrap();
        for n in 1..ROOM {
            screen.push(error(n));
        }
        log.line("WARN one".into()).unwrap();
        assert!(!screen.has_room(), "the events' room is full ...");
        // ... and the log's is another: a line waits only for the log's room.
        for n in 1..LOG_ROOM {
            log.line(format!("WARN {n}")).unwrap();
        }
        let waiting = {
            let log = log.clone();
            std::thread::spawn(move || log.line("WARN last".into()))
        };
        blocker.fill(error(0));
        for n in 0..ROOM {
            assert_eq!(next(&lines), format!("error: {n}"));
        }
        assert_eq!(next(&lines), "WARN one");
        for n in 1..LOG_ROOM {
            assert_eq!(next(&lines), format!("WARN {n}"));
        }
        assert_eq!(waiting.join().unwrap(), Ok(()));
        assert_eq!(next(&lines), "WARN last");
        // Once the screen has ended, a line is given back (for stderr).
        drop(screen);
        let given_back = loop {
            if let Err(text) = log.line("WARN after".into()) {
                break text;
            }
            assert_eq!(next(&lines), "WARN after");
        };
        assert_eq!(given_back, "WARN after");
    }

    #[test]
    fn flush_waits_for_what_was_queued() {
        let (screen, lines) = screen();
        screen.push(Event::Bye);
        screen.flush(Duration::from_secs(10));
        assert_eq!(lines.try_recv().unwrap(), "bye");
    }
}
