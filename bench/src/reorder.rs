//! The relay floor's receiving order: messages shown in the order they were typed.
//!
//! The relay (`relay.rs`) sends each typed line on a fresh connection and keeps several in
//! flight, so they may arrive in any order; each carries the sender's sequence number, and
//! the receiver shows a message only once every earlier one is shown. This is what issue 19
//! asks of the pipelined peer, done as simply as it can be: the floor's share of that work.
//! The buffer is bounded: a number too far ahead is refused, as is one already taken.

use std::collections::BTreeMap;

/// Why a message was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("already shown or waiting")]
    Repeat,
    #[error("too far ahead of the next message to show")]
    TooFarAhead,
}

/// Messages waiting for the ones before them.
#[derive(Debug)]
pub struct Reorder<T> {
    /// The sequence number to show next.
    next: u64,
    waiting: BTreeMap<u64, T>,
    /// How far ahead of `next` a message may be.
    room: u64,
}

impl<T> Reorder<T> {
    /// An empty buffer expecting number 0, taking numbers less than `room` ahead.
    pub fn new(room: u64) -> Reorder<T> {
        Reorder {
            next: 0,
            waiting: BTreeMap::new(),
            room,
        }
    }

    /// Takes message `seq`; returns the messages it puts in order (none while an earlier one
    /// is missing), in order.
    pub fn take(&mut self, seq: u64, item: T) -> Result<Vec<T>, Refused> {
        if seq < self.next || self.waiting.contains_key(&seq) {
            return Err(Refused::Repeat);
        }
        if seq - self.next >= self.room {
            return Err(Refused::TooFarAhead);
        }
        self.waiting.insert(seq, item);
        let mut ready = Vec::new();
        while let Some(item) = self.waiting.remove(&self.next) {
            ready.push(item);
            self.next += 1;
        }
        Ok(ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_in_order_are_shown_at_once() {
        let mut r = Reorder::new(4);
        assert_eq!(r.take(0, "a"), Ok(vec!["a"]));
        assert_eq!(r.take(1, "b"), Ok(vec!["b"]));
    }

    #[test]
    fn a_late_message_releases_the_ones_after_it() {
        let mut r = Reorder::new(4);
        assert_eq!(r.take(2, "c"), Ok(vec![]));
        assert_eq!(r.take(1, "b"), Ok(vec![]));
        assert_eq!(r.take(0, "a"), Ok(vec!["a", "b", "c"]));
        assert_eq!(r.take(3, "d"), Ok(vec!["d"]));
    }

    #[test]
    fn repeats_and_numbers_beyond_the_room_are_refused() {
        let mut r = Reorder::new(2);
        assert_eq!(r.take(0, "a"), Ok(vec!["a"]));
        assert_eq!(r.take(0, "a"), Err(Refused::Repeat));
        assert_eq!(r.take(2, "c"), Ok(vec![]));
        assert_eq!(r.take(2, "c"), Err(Refused::Repeat));
        assert_eq!(r.take(3, "d"), Err(Refused::TooFarAhead));
        assert_eq!(r.take(u64::MAX, "z"), Err(Refused::TooFarAhead));
    }
}
