//! Writing the screen: the screen thread takes the events at the head of the queue as they
//! become ready (`screen.rs` keeps the queue and its order), renders them (`render.rs`) and
//! writes each batch to its sink; while it sleeps, [`write_now`] does the same from the
//! thread that made an event ready, as far as the sink can write without waiting.

use super::{Inner, Item, Queue, Shown, Sink};
use crate::bell::{Bell, BEL};
use crate::json_command::CommandId;
use crate::render::Rendering;

/// The sink and how to render for it.
pub(super) struct Output {
    pub(super) sink: Box<dyn Sink>,
    pub(super) rendering: Rendering,
    /// Rings for the events it rings for (only at a terminal).
    pub(super) bell: Option<Bell>,
}

impl Output {
    /// Renders `event` into the sink (which may keep it until flushed) and copies it to the
    /// taps of the command it answers.
    fn put(&mut self, inner: &Inner, event: &Shown) {
        let mut text = self.rendering.render(event);
        // First: the terminal's printer ends what it prints with a line break.
        if self
            .bell
            .as_ref()
            .is_some_and(|b| b.rings_for(&event.event))
        {
            text.insert(0, BEL);
        }
        // A closed stdout must not stop the peer: its chats still need a goodbye.
        let _ = self.sink.line(&text);
        copy_to_taps(inner, event);
    }
}

/// The screen thread: takes the events at the head of the queue as they become ready, and
/// writes them. Ends when every handle is gone and the queue is empty.
pub(super) fn write_all(inner: &Inner) {
    loop {
        let mut batch = Vec::new();
        {
            let mut queue = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                while let Some(Item::Ready(_) | Item::Flush(_) | Item::Log(_) | Item::Untap(_)) =
                    queue.items.front()
                {
                    let item = queue.items.pop_front().expect("looked at just now");
                    if let Item::Log(_) = item {
                        queue.logs -= 1;
                    }
                    batch.push(item);
                }
                if !batch.is_empty() || queue.unflushed {
                    queue.unflushed = false;
                    break;
                }
                if queue.handles == 0 && queue.items.is_empty() {
                    queue.ended = true;
                    inner.log_room.notify_all();
                    return;
                }
                queue.asleep = true;
                queue = inner.ready.wait(queue).unwrap_or_else(|p| p.into_inner());
                queue.asleep = false;
            }
        }
        inner.room.notify(usize::MAX);
        inner.log_room.notify_all();
        let mut output = inner.output.lock().unwrap_or_else(|p| p.into_inner());
        for item in batch {
            match item {
                Item::Ready(event) => output.put(inner, &event),
                Item::Log(text) => {
                    let _ = output.sink.log(&text);
                }
                Item::Flush(done) => {
                    let _ = output.sink.flush();
                    let _ = done.send(());
                }
                Item::Untap(id) => untap(inner, id),
                Item::Reserved(_) => unreachable!("only ready items are taken"),
            }
        }
        let _ = output.sink.flush();
    }
}

/// Writes the events ready at the head of `queue` (locked) from the caller's thread, while
/// the screen thread sleeps, if the sink can write them without waiting. True if the thread
/// has nothing to do now (nothing ready at the head: an empty queue, or a place kept, whose
/// filling wakes it again): false if it must write what would have waited, or take an item
/// that is not an event (a log line, a flush), or end, or if the sink cannot write this way.
pub(super) fn write_now(inner: &Inner, queue: &mut Queue) -> bool {
    if queue.handles == 0 {
        return false;
    }
    match queue.items.front() {
        None | Some(Item::Reserved(_)) => return !queue.unflushed,
        Some(Item::Log(_) | Item::Flush(_)) => return false,
        Some(Item::Ready(_) | Item::Untap(_)) => {}
    }
    // Only the screen thread holds it otherwise, and it sleeps.
    let Ok(mut output) = inner.output.try_lock() else {
        return false;
    };
    if !output.sink.writes_without_waiting() {
        return false;
    }
    while let Some(Item::Ready(_) | Item::Untap(_)) = queue.items.front() {
        match queue.items.pop_front() {
            Some(Item::Ready(event)) => output.put(inner, &event),
            Some(Item::Untap(id)) => untap(inner, id),
            _ => unreachable!("looked at just now"),
        }
    }
    inner.room.notify(usize::MAX);
    // A failed write (a closed stdout) loses what it could not write, as the thread's does.
    if let Ok(false) = output.sink.try_flush() {
        queue.unflushed = true;
        return false;
    }
    !matches!(queue.items.front(), Some(Item::Log(_) | Item::Flush(_)))
}

/// Drops the tap of command `id`, which has ended: its caller has every outcome.
fn untap(inner: &Inner, id: CommandId) {
    let mut taps = inner.taps.lock().unwrap_or_else(|p| p.into_inner());
    taps.retain(|(tapped, tap)| *tapped != id && !tap.is_closed());
}

/// Gives `event` to the taps of the command it answers.
fn copy_to_taps(inner: &Inner, event: &Shown) {
    let Some(id) = &event.id else { return };
    let mut taps = inner.taps.lock().unwrap_or_else(|p| p.into_inner());
    taps.retain(|(_, tap)| !tap.is_closed());
    for (tapped, tap) in taps.iter() {
        if tapped == id {
            let _ = tap.try_send(event.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Condvar, Mutex};

    use event_listener::Event as Notify;

    use super::*;
    use crate::error::PeerError;
    use crate::event::Event;
    use crate::screen::Queue;

    /// A sink with room for `room` lines written without waiting; what it wrote is shared
    /// with the test.
    struct Limited {
        written: Arc<Mutex<Vec<String>>>,
        kept: Vec<String>,
        room: usize,
        nowait: bool,
    }

    impl Sink for Limited {
        fn line(&mut self, text: &str) -> io::Result<()> {
            self.kept.push(text.to_owned());
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.written.lock().unwrap().append(&mut self.kept);
            Ok(())
        }
        fn writes_without_waiting(&self) -> bool {
            self.nowait
        }
        fn try_flush(&mut self) -> io::Result<bool> {
            let n = self.room.min(self.kept.len());
            self.room -= n;
            self.written.lock().unwrap().extend(self.kept.drain(..n));
            Ok(self.kept.is_empty())
        }
    }

    /// A screen whose thread sleeps (none runs), and what its sink wrote.
    fn asleep(room: usize, nowait: bool, items: Vec<Item>) -> (Inner, Arc<Mutex<Vec<String>>>) {
        let written = Arc::default();
        let sink = Limited {
            written: Arc::clone(&written),
            kept: Vec::new(),
            room,
            nowait,
        };
        let inner = Inner {
            queue: Mutex::new(Queue {
                items: items.into(),
                handles: 1,
                asleep: true,
                ..Queue::default()
            }),
            ready: Condvar::new(),
            room: Notify::new(),
            log_room: Condvar::new(),
            output: Mutex::new(Output {
                sink: Box::new(sink),
                rendering: Rendering::Text {
                    color: false,
                    interactive: false,
                },
                bell: None,
            }),
            taps: Mutex::new(Vec::new()),
        };
        (inner, written)
    }

    fn ready(n: usize) -> Item {
        let event = Event::Error(PeerError::History { why: n.to_string() });
        Item::Ready(Box::new(event.into()))
    }

    fn write_now_on(inner: &Inner) -> bool {
        write_now(inner, &mut inner.queue.lock().unwrap())
    }

    fn numbers(written: &Mutex<Vec<String>>) -> Vec<String> {
        let written = written.lock().unwrap();
        written
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_events_ready_at_the_head_are_written_by_the_caller_and_the_thread_sleeps_on() {
        let items = vec![ready(1), ready(2), Item::Reserved(0), ready(3)];
        let (inner, written) = asleep(10, true, items);
        assert!(write_now_on(&inner), "nothing for the thread");
        assert_eq!(numbers(&written), ["1", "2"], "up to the place kept");
        let queue = inner.queue.lock().unwrap();
        assert!(matches!(queue.items.front(), Some(Item::Reserved(0))));
        assert_eq!(queue.items.len(), 2);
    }

    #[test]
    fn what_cannot_be_written_without_waiting_is_left_to_the_thread_in_order() {
        let (inner, written) = asleep(1, true, vec![ready(1), ready(2)]);
        assert!(!write_now_on(&inner), "the thread must write the rest");
        assert_eq!(numbers(&written), ["1"]);
        assert!(inner.queue.lock().unwrap().unflushed);
        inner.output.lock().unwrap().sink.flush().unwrap();
        assert_eq!(numbers(&written), ["1", "2"]);
    }

    #[test]
    fn a_sink_that_may_wait_is_written_by_the_thread_only() {
        let (inner, written) = asleep(10, false, vec![ready(1)]);
        assert!(!write_now_on(&inner));
        assert!(numbers(&written).is_empty());
        assert_eq!(inner.queue.lock().unwrap().items.len(), 1, "nothing taken");
    }

    #[test]
    fn nothing_ready_at_the_head_wakes_nobody_unless_a_write_is_unfinished() {
        let (inner, _) = asleep(10, true, vec![]);
        assert!(
            write_now_on(&inner),
            "an empty queue: nothing for the thread"
        );
        let (inner, _) = asleep(10, true, vec![Item::Reserved(0), ready(1)]);
        assert!(write_now_on(&inner), "a place kept: its filling wakes it");
        let (inner, _) = asleep(10, true, vec![]);
        inner.queue.lock().unwrap().unflushed = true;
        assert!(!write_now_on(&inner), "the thread finishes the write");
    }

    #[test]
    fn a_log_line_or_a_flush_waiting_is_the_threads() {
        let items = vec![ready(1), Item::Log("log".into())];
        let (inner, written) = asleep(10, true, items);
        assert!(!write_now_on(&inner), "the log line is the thread's");
        assert_eq!(numbers(&written), ["1"]);
    }
}
