//! Refusing what was already seen: replayed signed messages and replayed chat messages.
//!
//! Two mechanisms, one for each kind of message:
//!
//! - A signed message carries its id and the time it was sent. [`Freshness`] accepts it only
//!   if that time is within [`MAX_SKEW`] of ours and its id was not seen in that span, so a
//!   captured request (a registration, a chat request) cannot be played again, neither now
//!   nor later.
//! - A chat message carries a counter that its sender increments. [`ReplayWindow`] keeps the
//!   highest counter seen and a bitmap of the [`WINDOW`] counters below it (the sliding
//!   window of IPsec and WireGuard, RFC 6479), so each counter is accepted once, slight
//!   reordering is tolerated, and the memory is fixed.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::wire::MessageId;

/// How far a signed message's time may be from ours, either way.
pub const MAX_SKEW: Duration = Duration::from_secs(120);

/// How many recent ids [`Freshness`] keeps at most; more would be a flood.
pub const MAX_REMEMBERED: usize = 200_000;

/// Why a signed message is not fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    #[error("its time is more than {}s away from ours (check the clocks)", MAX_SKEW.as_secs())]
    Skewed,
    #[error("it was already received (a replay)")]
    Replayed,
    #[error("too many messages in the last minutes; try again later")]
    Full,
}

/// The ids of recently accepted signed messages.
#[derive(Debug, Default)]
pub struct Freshness {
    ids: HashSet<MessageId>,
    /// The same ids grouped by the second they were sent in (Unix time), so that a second's
    /// ids are forgotten together once their messages would be refused as skewed anyway. By
    /// send time, not arrival order: a message dated in the future holds back only its own
    /// second. 16 bytes an id, beside the set.
    by_second: BTreeMap<i64, Vec<MessageId>>,
}

impl Freshness {
    /// Accepts message `id` sent `at` once, if `at` is within [`MAX_SKEW`] of `now`.
    pub fn admit(
        &mut self,
        id: MessageId,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), Stale> {
        let skew = chrono::Duration::from_std(MAX_SKEW).expect("small duration");
        // Ids older than the window can go: their messages would be refused as skewed anyway.
        // Those of second `s` were sent before `s + 1`.
        let oldest_kept = (now - skew).timestamp();
        while let Some(second) = self.by_second.first_entry() {
            if *second.key() + 1 > oldest_kept {
                break;
            }
            for old in second.remove() {
                self.ids.remove(&old);
            }
        }
        check_skew(at, now)?;
        if self.ids.contains(&id) {
            return Err(Stale::Replayed);
        }
        if self.ids.len() >= MAX_REMEMBERED {
            return Err(Stale::Full);
        }
        self.ids.insert(id);
        self.by_second.entry(at.timestamp()).or_default().push(id);
        Ok(())
    }
}

impl Freshness {
    /// Forgets `id`: its message was answered `busy`, so it was not handled, and the sender
    /// may send it again under the same id. (Its entry by second goes when that second does.)
    pub fn forget(&mut self, id: &MessageId) {
        self.ids.remove(id);
    }
}

/// Whether a message sent `at` is within [`MAX_SKEW`] of `now`. Signed messages are held to
/// it, and so are requests in a registry session: their counter refuses a replay, and this a
/// request held back on the way and delivered much later.
pub fn check_skew(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Stale> {
    let skew = chrono::Duration::from_std(MAX_SKEW).expect("small duration");
    match at < now - skew || at > now + skew {
        true => Err(Stale::Skewed),
        false => Ok(()),
    }
}

/// How many counters below the highest one a [`ReplayWindow`] remembers.
pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// Which chat-message counters were already accepted.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    /// One more than the highest counter accepted (0: none yet).
    next: u64,
    /// Bit `i` of the window is counter `next - 1 - i`.
    bits: [u64; WORDS],
}

impl ReplayWindow {
    /// Accepts `counter` if it was not accepted before and is not too old. Call only after
    /// the message authenticated, so forged counters cannot move the window. The last
    /// counter, `u64::MAX`, is never accepted: no sender gets there, and `next` could not
    /// move past it.
    pub fn accept(&mut self, counter: u64) -> bool {
        if counter == u64::MAX {
            return false;
        }
        if counter >= self.next {
            self.shift(counter + 1 - self.next);
            self.next = counter + 1;
            self.set(0);
            return true;
        }
        let age = self.next - 1 - counter;
        if age >= WINDOW || self.get(age) {
            return false;
        }
        self.set(age);
        true
    }

    fn get(&self, i: u64) -> bool {
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: u64) {
        self.bits[(i / 64) as usize] |= 1 << (i % 64);
    }

    /// Moves every bit `by` places towards older.
    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.bits = [0; WORDS];
            return;
        }
        let (words, bits) = ((by / 64) as usize, (by % 64) as u32);
        for i in (0..WORDS).rev() {
            let from = i.checked_sub(words);
            let hi = from.map_or(0, |f| self.bits[f] << bits);
            let lo = match from.and_then(|f| f.checked_sub(1)) {
                Some(f) if bits > 0 => self.bits[f] >> (64 - bits),
                _ => 0,
            };
            self.bits[i] = hi | lo;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::new_id;

    #[test]
    fn a_signed_message_is_accepted_once_and_only_when_fresh() {
        let now = Utc::now();
        let mut fresh = Freshness::default();
        let id = new_id();
        assert_eq!(fresh.admit(id, now, now), Ok(()));
        assert_eq!(fresh.admit(id, now, now), Err(Stale::Replayed));
        let old = now - chrono::Duration::seconds(121);
        assert_eq!(fresh.admit(new_id(), old, now), Err(Stale::Skewed));
        let future = now + chrono::Duration::seconds(121);
        assert_eq!(fresh.admit(new_id(), future, now), Err(Stale::Skewed));
        // Much later the id is forgotten, but its message is stale by then anyway.
        let later = now + chrono::Duration::seconds(300);
        assert_eq!(fresh.admit(id, now, later), Err(Stale::Skewed));
        assert!(fresh.ids.is_empty());
    }

    #[test]
    fn a_message_from_the_future_does_not_keep_later_ids() {
        let now = Utc::now();
        let mut fresh = Freshness::default();
        let ahead = now + chrono::Duration::seconds(110);
        assert_eq!(fresh.admit(new_id(), ahead, now), Ok(()));
        let on_time = new_id();
        assert_eq!(fresh.admit(on_time, now, now), Ok(()));
        // 121 s later the on-time id can go (its message is stale), the early one not yet.
        let later = now + chrono::Duration::seconds(121);
        assert_eq!(fresh.admit(new_id(), later, later), Ok(()));
        assert!(!fresh.ids.contains(&on_time));
        assert_eq!(fresh.ids.len(), 2);
    }

    #[test]
    fn each_counter_is_accepted_once() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(0));
        assert!(!w.accept(0));
        assert!(w.accept(1));
        assert!(w.accept(5));
        assert!(w.accept(3), "a little reordering is fine");
        assert!(!w.accept(3));
        assert!(!w.accept(5));
        assert!(w.accept(2));
    }

    #[test]
    fn counters_older_than_the_window_are_refused() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(10));
        assert!(w.accept(10 + WINDOW));
        assert!(!w.accept(10), "fell out of the window");
        assert!(w.accept(11), "the oldest still inside");
        assert!(!w.accept(10 + WINDOW));
    }

    #[test]
    fn the_window_matches_a_simple_model() {
        // Compare against a set of everything accepted, over a pseudo-random sequence.
        let mut w = ReplayWindow::default();
        let mut seen = std::collections::BTreeSet::new();
        let mut highest = 0u64;
        let mut x: u64 = 12345;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let jump = (x >> 33) % 3000;
            let counter = if x & 1 == 0 {
                highest + jump % 70
            } else {
                highest.saturating_sub(jump)
            };
            let too_old = counter < highest && highest - counter >= WINDOW;
            let expected = !seen.contains(&counter) && !too_old;
            assert_eq!(
                w.accept(counter),
                expected,
                "counter {counter}, highest {highest}"
            );
            if expected {
                seen.insert(counter);
                highest = highest.max(counter);
            }
        }
    }

    /// Found by the `replay` fuzz target (docs/testing.md, finding 1): counter `u64::MAX`
    /// overflows `counter + 1` in `accept`. With overflow checks (debug builds) that panics;
    /// without them the window wraps to "nothing seen yet" and accepts old counters again.
    #[test]
    fn the_last_counter_neither_panics_nor_reopens_the_window() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(5));
        let first = w.accept(u64::MAX);
        assert!(!w.accept(u64::MAX) || !first, "u64::MAX accepted twice");
        assert!(!w.accept(5), "counter 5 accepted twice");
        assert!(!w.accept(0) || !first, "the window reopened after u64::MAX");
    }

    #[test]
    fn a_forgotten_id_is_admitted_again() {
        let mut fresh = Freshness::default();
        let (id, now) = (new_id(), Utc::now());
        fresh.admit(id, now, now).unwrap();
        assert_eq!(fresh.admit(id, now, now), Err(Stale::Replayed));
        fresh.forget(&id);
        assert_eq!(fresh.admit(id, now, now), Ok(()));
    }
}
