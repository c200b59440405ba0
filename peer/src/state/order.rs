//! The order of a chat's messages: what lets several be in flight at once and still show in
//! the order they were typed.
//!
//! A sender does not wait for one message's acknowledgement before it sends the next
//! (`message_commands.rs`): each goes on a connection of its own, so they can arrive in any
//! order, and a retry arrives later still. So each chat message carries `seq`, its place in
//! the order its sender typed the chat's messages (1, 2, ...). The sender gives it when the
//! message is typed and keeps it for every retry in that chat ([`Sequencer`]); the frame's
//! counter cannot give the order, since a retry is sealed again under a new one.
//!
//! The receiver shows a message only once every message before it has shown ([`Reorder`]).
//! One that comes early is held, its connection waiting for its acknowledgement, until the
//! gap before it closes. The hold is bounded:
//!
//! - in count: a message more than [`HELD_MAX`] ahead of the next one to show, or one more
//!   while [`HELD_MAX`] are held, is answered `busy` (its sender retries);
//! - in time: a gap that stays open for [`HOLD_FOR`] is given up on, and what waited behind it
//!   shows. The missing message, if it ever comes, shows late rather than never: it is its
//!   sender's to retry, and a message is never lost to keep an order.
//!
//! A first try shows the moment its turn comes, while it is being stored; it is acknowledged
//! once stored. Whether one whose place was passed showed before (a retry: its
//! acknowledgement was lost) or not (its gap was given up on) is told by its id among the
//! last ids shown ([`ShownIds`]); a message its sender marks as sent again and whose id is not
//! among them is shown only if the history did not have it (`state/network.rs`). So a message
//! shows once, except when the receiver crashed between showing and storing it.
//!
//! A chat that opens again (after being away) starts again at 1, on both sides: a retry
//! sealed in the new chat takes a new place there.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use p2p_shared::MessageId;

/// How far ahead of the next message to show a message may be, and how many may be held:
/// twice the messages a sender has in flight ([`IN_FLIGHT_MAX`]), so an honest sender is
/// never told `busy` for its order alone.
pub const HELD_MAX: usize = 16;

/// How many chat messages a sender has in flight at once, over all its chats: half the
/// connections a receiver takes from one address at once (16, `--max-conns-per-ip`), so that
/// its requests and checks still get through, and well inside the receiver's [`HELD_MAX`]
/// and the 1,024 counters of the replay window, even with retries.
pub const IN_FLIGHT_MAX: usize = 8;

/// How long a gap may hold up the messages behind it: longer than a sender waits between two
/// tries of a message (at most 2 s, `retry.rs`), so that a message answered `busy` (a full
/// screen) is back before its successors give up on it; shorter than the 10 s an exchange
/// may take, so that one whose connection hangs does not hold the others that long.
pub const HOLD_FOR: Duration = Duration::from_secs(5);

/// How many of the last messages shown a receiver remembers by id, over all its chats.
pub const SHOWN_KEPT: usize = 1_024;

/// The most messages whose place a sender remembers: more than are ever in flight, so none
/// in flight is forgotten; the oldest goes first.
const REMEMBERED: usize = 4 * IN_FLIGHT_MAX;

/// The sender's side of one chat: the places given to our messages in flight.
#[derive(Default)]
pub struct Sequencer {
    /// The last place given.
    last: u64,
    /// Message ids and their places, oldest first, at most [`REMEMBERED`].
    given: VecDeque<(MessageId, u64)>,
}

impl Sequencer {
    /// The place of message `id`: the one it was given in this chat, or the next.
    pub fn place_of(&mut self, id: MessageId) -> u64 {
        if let Some((_, seq)) = self.given.iter().find(|(given, _)| *given == id) {
            return *seq;
        }
        self.last += 1;
        if self.given.len() == REMEMBERED {
            self.given.pop_front();
        }
        self.given.push_back((id, self.last));
        self.last
    }
}

/// The ids of the last [`SHOWN_KEPT`] messages shown, over every chat. A message its sender
/// kept while the chat was away (unacknowledged, though it may have shown) comes again in the
/// chat that reopens, under its id and with a new place: this is how the receiver knows it
/// showed. (Its history knows too, but a message shows before it is stored.)
#[derive(Default)]
pub struct ShownIds {
    order: VecDeque<MessageId>,
    set: HashSet<MessageId>,
}

impl ShownIds {
    /// Message `id` shows: false if it showed before (then it does not show again).
    pub fn first_time(&mut self, id: MessageId) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        if self.order.len() == SHOWN_KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        self.order.push_back(id);
        true
    }

    /// Whether message `id` is among the last shown.
    pub fn contains(&self, id: MessageId) -> bool {
        self.set.contains(&id)
    }
}

/// Where a message that arrived stands in its chat's order.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// It is the next to show.
    Next,
    /// Its place was passed: it showed before (a retry), or the gap it left was given up on
    /// (it shows now, late). Its id tells which ([`ShownIds`]).
    Passed,
    /// Messages before it have not shown yet: hold it.
    Early,
    /// Too far ahead, or too many held: `busy`.
    Full,
}

/// The receiver's side of one chat: the place of the last message shown, and the messages
/// held until the gap before them closes.
pub struct Reorder<T> {
    shown: u64,
    held: BTreeMap<u64, (T, Instant)>,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Reorder {
            shown: 0,
            held: BTreeMap::new(),
        }
    }
}

impl<T> Reorder<T> {
    /// Where message `seq` stands.
    pub fn turn(&self, seq: u64) -> Turn {
        let ahead = seq.saturating_sub(self.shown);
        match ahead {
            0 => Turn::Passed,
            1 => Turn::Next,
            _ if ahead - 1 > HELD_MAX as u64 => Turn::Full,
            // A retry of one held takes its place, so it needs no room of its own.
            _ if self.held.len() >= HELD_MAX && !self.held.contains_key(&seq) => Turn::Full,
            _ => Turn::Early,
        }
    }

    /// Message `seq`, the next, shows: returns the held ones that now follow it, in order.
    pub fn show(&mut self, seq: u64) -> Vec<T> {
        debug_assert_eq!(self.turn(seq), Turn::Next);
        self.shown = seq;
        self.release_following()
    }

    /// Holds `item`, message `seq` (early), from `now`. Returns the one it replaces: an
    /// earlier try of the same message, whose sender has given up on it.
    pub fn hold(&mut self, seq: u64, item: T, now: Instant) -> Option<T> {
        debug_assert_eq!(self.turn(seq), Turn::Early);
        self.held.insert(seq, (item, now)).map(|(old, _)| old)
    }

    /// Gives up on every gap that has held a message up for [`HOLD_FOR`] at `now`: returns
    /// the held messages that show, in order.
    pub fn expire(&mut self, now: Instant) -> Vec<T> {
        let mut released = Vec::new();
        while self.deadline().is_some_and(|at| at <= now) {
            let Some((&first, _)) = self.held.first_key_value() else {
                break;
            };
            self.shown = first - 1;
            released.extend(self.release_following());
        }
        released
    }

    /// When the oldest hold ends, if any message is held.
    pub fn deadline(&self) -> Option<Instant> {
        let oldest = self.held.values().map(|(_, since)| *since).min()?;
        Some(oldest + HOLD_FOR)
    }

    /// Every message held, in order: the chat ends, and what came shows.
    pub fn drain(&mut self) -> Vec<T> {
        std::mem::take(&mut self.held)
            .into_values()
            .map(|(item, _)| item)
            .collect()
    }

    /// Takes the held messages right after the last shown, in order, and shows them.
    fn release_following(&mut self) -> Vec<T> {
        let mut released = Vec::new();
        while let Some((item, _)) = self.held.remove(&(self.shown + 1)) {
            self.shown += 1;
            released.push(item);
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::wire::new_id;

    #[test]
    fn a_message_keeps_its_place_for_every_try_and_a_new_one_takes_the_next() {
        let mut order = Sequencer::default();
        let (first, second) = (new_id(), new_id());
        assert_eq!(order.place_of(first), 1);
        assert_eq!(order.place_of(second), 2);
        assert_eq!(order.place_of(first), 1, "a retry keeps its place");
        assert_eq!(order.place_of(new_id()), 3);
    }

    #[test]
    fn the_places_remembered_are_bounded_and_the_oldest_goes_first() {
        let mut order = Sequencer::default();
        let first = new_id();
        order.place_of(first);
        for _ in 0..REMEMBERED {
            order.place_of(new_id());
        }
        assert_eq!(order.given.len(), REMEMBERED);
        assert_eq!(order.place_of(first), REMEMBERED as u64 + 2, "forgotten");
    }

    #[test]
    fn messages_that_come_out_of_order_show_in_order() {
        let now = Instant::now();
        let mut order = Reorder::default();
        assert_eq!(order.turn(3), Turn::Early);
        assert!(order.hold(3, "three", now).is_none());
        assert_eq!(order.turn(2), Turn::Early);
        assert!(order.hold(2, "two", now).is_none());
        assert_eq!(order.turn(1), Turn::Next);
        assert_eq!(order.show(1), vec!["two", "three"]);
        assert_eq!(order.turn(4), Turn::Next);
        assert_eq!(order.show(4), Vec::<&str>::new());
        assert_eq!(order.turn(2), Turn::Passed, "a retry of one shown");
        assert_eq!(order.deadline(), None);
    }

    #[test]
    fn a_retry_of_a_held_message_takes_its_place() {
        let now = Instant::now();
        let mut order = Reorder::default();
        order.hold(2, "first try", now);
        assert_eq!(order.turn(2), Turn::Early);
        assert_eq!(order.hold(2, "second try", now), Some("first try"));
        assert_eq!(order.show(1), vec!["second try"]);
    }

    #[test]
    fn the_hold_is_bounded_in_distance_and_in_count() {
        let now = Instant::now();
        let mut order = Reorder::default();
        assert_eq!(order.turn(HELD_MAX as u64 + 1), Turn::Early);
        assert_eq!(order.turn(HELD_MAX as u64 + 2), Turn::Full, "too far ahead");
        for seq in 2..=HELD_MAX as u64 + 1 {
            order.hold(seq, seq, now);
        }
        assert_eq!(order.held.len(), HELD_MAX);
        assert_eq!(order.turn(HELD_MAX as u64 + 1), Turn::Early, "a retry");
        assert_eq!(order.show(1).len(), HELD_MAX);
        assert_eq!(order.turn(HELD_MAX as u64 + 2), Turn::Next);
    }

    #[test]
    fn a_gap_that_stays_open_is_given_up_on_and_its_message_shows_late() {
        let start = Instant::now();
        let mut order = Reorder::default();
        order.hold(3, "three", start);
        order.hold(6, "six", start + HOLD_FOR / 2);
        assert_eq!(order.deadline(), Some(start + HOLD_FOR));
        assert!(order.expire(start + HOLD_FOR / 2).is_empty());
        assert_eq!(order.expire(start + HOLD_FOR), vec!["three"]);
        assert_eq!(order.deadline(), Some(start + HOLD_FOR / 2 + HOLD_FOR));
        assert_eq!(order.turn(1), Turn::Passed, "given up on: shows late");
        assert_eq!(order.turn(4), Turn::Next);
        assert_eq!(order.expire(start + 2 * HOLD_FOR), vec!["six"]);
        assert_eq!(order.turn(7), Turn::Next);
    }

    /// Messages 1..=n arrive in an order shuffled within a sender's window, some twice (a
    /// retry), as the receiver's broker handles them: each shows once, in order.
    #[test]
    fn shuffled_arrivals_within_the_window_show_each_once_in_order() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move |below: u64| {
            // xorshift64: a fixed sequence, the same on every run.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        let now = Instant::now();
        for _round in 0..200 {
            let n = 1 + random(200);
            // Each message is sent when the sender's window (IN_FLIGHT_MAX) lets it, and
            // arrives after a random number of later ones, sometimes twice.
            let mut arrivals: Vec<(u64, u64)> = Vec::new();
            for seq in 1..=n {
                let at = seq * 8 + random(IN_FLIGHT_MAX as u64 * 8);
                arrivals.push((at, seq));
                if random(10) == 0 {
                    arrivals.push((at + random(64), seq));
                }
            }
            arrivals.sort();
            let mut order = Reorder::default();
            let mut shown = Vec::new();
            for (_, seq) in arrivals {
                match order.turn(seq) {
                    Turn::Next => {
                        shown.push(seq);
                        shown.extend(order.show(seq));
                    }
                    Turn::Early => drop(order.hold(seq, seq, now)),
                    // A retry of one shown: its id says so, it is not shown again.
                    Turn::Passed => assert!(shown.contains(&seq), "{seq} passed unshown"),
                    Turn::Full => panic!("{seq} refused within the window"),
                }
            }
            assert_eq!(shown, (1..=n).collect::<Vec<_>>());
            assert_eq!(order.deadline(), None, "nothing left held");
        }
    }

    #[test]
    fn an_id_shows_once_and_the_ids_remembered_are_bounded() {
        let mut shown = ShownIds::default();
        let first = new_id();
        assert!(shown.first_time(first));
        assert!(!shown.first_time(first), "sent again: not shown twice");
        for _ in 0..SHOWN_KEPT {
            assert!(shown.first_time(new_id()));
        }
        assert_eq!(shown.set.len(), SHOWN_KEPT);
        assert!(shown.first_time(first), "forgotten, the oldest first");
    }

    #[test]
    fn a_chat_that_ends_shows_what_it_held() {
        let mut order = Reorder::default();
        order.hold(5, "five", Instant::now());
        order.hold(3, "three", Instant::now());
        assert_eq!(order.drain(), vec!["three", "five"]);
        assert_eq!(order.deadline(), None);
    }
}
