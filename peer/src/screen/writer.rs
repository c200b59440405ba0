//! The screen thread: it takes the events at the head of the queue as they become ready
//! (`screen.rs` keeps the queue and its order), renders them (`render.rs`) and writes each
//! batch to its sink.

use super::{Inner, Item, Shown, Sink};
use crate::bell::{Bell, BEL};
use crate::render::Rendering;

/// The screen thread: takes the events at the head of the queue as they become ready, and
/// writes them. Ends when every handle is gone and the queue is empty.
pub(super) fn write_all(
    inner: &Inner,
    (rendering, bell): (Rendering, Option<Bell>),
    mut sink: Box<dyn Sink>,
) {
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
                if !batch.is_empty() {
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
        for item in batch {
            match item {
                // A closed stdout must not stop the peer: its chats still need a goodbye.
                Item::Ready(event) => {
                    let mut text = rendering.render(&event);
                    // First: the terminal's printer ends what it prints with a line break.
                    if bell.as_ref().is_some_and(|b| b.rings_for(&event.event)) {
                        text.insert(0, BEL);
                    }
                    let _ = sink.line(&text);
                    copy_to_taps(inner, &event);
                }
                Item::Log(text) => {
                    let _ = sink.log(&text);
                }
                Item::Flush(done) => {
                    let _ = sink.flush();
                    let _ = done.send(());
                }
                Item::Untap(id) => {
                    let mut taps = inner.taps.lock().unwrap_or_else(|p| p.into_inner());
                    taps.retain(|(tapped, tap)| *tapped != id && !tap.is_closed());
                }
                Item::Reserved(_) => unreachable!("only ready items are taken"),
            }
        }
        let _ = sink.flush();
    }
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
