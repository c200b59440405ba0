//! Refusing what was already seen: replayed signed messages and replayed chat messages.
//!
//! Two mechanisms, one for each kind of message:
//!
//! - A signed message carries its id and the time it was sent. [`Freshness`] accepts it only
//!   if that time is at most [`MAX_SKEW`] in the past and [`MAX_FUTURE_SKEW`] in the future,
//!   and its id was not seen in that span, so a captured request (a registration, a chat
//!   request) cannot be played again, neither now nor later. The ids it remembers are
//!   counted per sender (key, address, network prefix) against [`Quotas`]: a sender over its
//!   quota is refused `busy` itself, and never fills the memory that everybody else's
//!   requests need (docs/decisions.md, "Freshness nobody can use up for everyone").
//! - A chat message carries a counter that its sender increments. [`ReplayWindow`] keeps the
//!   highest counter seen and a bitmap of the [`WINDOW`] counters below it (the sliding
//!   window of IPsec and WireGuard, RFC 6479), so each counter is accepted once, slight
//!   reordering is tolerated, and the memory is fixed.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::identity::PublicKey;
use crate::prefix::Prefix;
use crate::wire::MessageId;

/// How far in the past a signed message's time may be: room for a slow delivery and for
/// retries under the same id.
pub const MAX_SKEW: Duration = Duration::from_secs(120);

/// How far in the future a signed message's time may be. Short, because an id is remembered
/// until its message would be stale, and a message dated ahead would hold its place that much
/// longer; 5 s is far more than NTP leaves between clocks on a LAN (milliseconds).
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(5);

/// How many ids [`Freshness`] remembers at most, from everyone together: about 75 bytes each
/// with their counts when each comes from a key, an address and a network of its own, 15 MB
/// in all (docs/benchmarks.md, item 17).
pub const MAX_REMEMBERED: usize = 200_000;

/// How many remembered ids one sender may hold, so that no sender can use up the memory
/// the others need. Each quota covers the ids of the last [`MAX_SKEW`] +
/// [`MAX_FUTURE_SKEW`]; beyond it the sender is answered `busy` until its old ids lapse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Per key. A peer signs a handful of requests a minute (its first registration, chat
    /// requests and answers); keys cost nothing to make, so the other quotas bound many keys.
    pub per_key: usize,
    /// Per IP address (several peers behind one NAT share one).
    pub per_address: usize,
    /// Per network prefix (/24 for IPv4, /64 for IPv6): a host that can take many addresses
    /// usually gets them in its own network.
    pub per_prefix: usize,
    /// Everybody together: what bounds the memory.
    pub total: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            per_key: 256,
            per_address: 2_048,
            per_prefix: 8_192,
            total: MAX_REMEMBERED,
        }
    }
}

/// Why a signed message is not fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    #[error(
        "its time is more than {}s behind ours or {}s ahead (check the clocks)",
        MAX_SKEW.as_secs(),
        MAX_FUTURE_SKEW.as_secs()
    )]
    Skewed,
    #[error("it was already received (a replay)")]
    Replayed,
    #[error("too many messages from this sender in the last minutes; try again later")]
    Full,
}

/// Who sent a signed message, for the quotas.
#[derive(Clone, Copy, Debug)]
pub struct Sender {
    pub key: PublicKey,
    pub ip: IpAddr,
}

/// The ids of recently accepted signed messages, counted per sender.
#[derive(Debug, Default)]
pub struct Freshness {
    quotas: Quotas,
    /// The remembered ids, by keyed hashes of 8 bytes rather than the 16 of an id: a replay
    /// has the same id, so the same hash, and is refused as before; a new id whose hash
    /// happens to equal a remembered one's is refused as a replay too (at 200,000 ids, one
    /// message in 10^14), and nobody can aim at that without the (random) hash key.
    ids: HashSet<u64>,
    /// Each remembered id once, beside whose quotas it counts against, grouped by the second
    /// it was sent in (Unix time), so that a second's ids are forgotten together once their
    /// messages would be refused as skewed anyway. By send time, not arrival order: a
    /// message dated in the future holds back only its own second. The owner is kept here,
    /// where each id has its place anyway, and not beside the id in `ids`, which then holds
    /// the hash alone: 29 bytes an id (20 here, 9 in `ids`'s table) instead of 49
    /// (docs/benchmarks.md, item 17).
    by_second: BTreeMap<i64, Vec<Remembered>>,
    per_key: HashMap<u32, u32>,
    per_address: HashMap<u32, u32>,
    per_prefix: HashMap<u32, u32>,
    /// Senders are counted by keyed hashes of 4 bytes rather than by their keys (32 bytes)
    /// and addresses (17): an owner takes 12 bytes instead of more than 49 (docs/benchmarks.md,
    /// item 16). Nobody can aim at a collision without the (random) hash key; a chance one
    /// only makes two senders share a quota.
    hasher: RandomState,
}

/// A remembered id, and whose quotas it counts against: keyed hashes of its key, address
/// and network.
#[derive(Clone, Copy, Debug)]
struct Remembered {
    /// The id's hash, as in `ids`, in two halves: a `u64` would align the entry to 8 bytes
    /// and make it 24 instead of 20.
    id: [u32; 2],
    key: u32,
    ip: u32,
    prefix: u32,
}

impl Remembered {
    fn id(&self) -> u64 {
        (self.id[0] as u64) << 32 | self.id[1] as u64
    }
}

impl Freshness {
    pub fn new(quotas: Quotas) -> Freshness {
        Freshness {
            quotas,
            ..Freshness::default()
        }
    }

    /// Accepts message `id` from `sender`, sent `at`, once, if `at` is fresh at `now` and the
    /// sender is within its quotas.
    pub fn admit(
        &mut self,
        id: MessageId,
        at: DateTime<Utc>,
        sender: Sender,
        now: DateTime<Utc>,
    ) -> Result<(), Stale> {
        self.forget_older_than(now);
        check_skew(at, now)?;
        let id = self.hasher.hash_one(id);
        if self.ids.contains(&id) {
            return Err(Stale::Replayed);
        }
        let hash = |h: u64| h as u32;
        let remembered = Remembered {
            id: [(id >> 32) as u32, id as u32],
            key: hash(self.hasher.hash_one(sender.key)),
            ip: hash(self.hasher.hash_one(sender.ip)),
            prefix: hash(self.hasher.hash_one(Prefix::of(sender.ip))),
        };
        let q = self.quotas;
        if self.ids.len() >= q.total
            || count(&self.per_key, &remembered.key) >= q.per_key
            || count(&self.per_address, &remembered.ip) >= q.per_address
            || count(&self.per_prefix, &remembered.prefix) >= q.per_prefix
        {
            return Err(Stale::Full);
        }
        *self.per_key.entry(remembered.key).or_default() += 1;
        *self.per_address.entry(remembered.ip).or_default() += 1;
        *self.per_prefix.entry(remembered.prefix).or_default() += 1;
        self.ids.insert(id);
        let second = self.by_second.entry(at.timestamp()).or_default();
        second.push(remembered);
        Ok(())
    }

    /// Forgets `id`, admitted as sent `at`: its message was answered `busy`, so it was not
    /// handled, and the sender may send it again under the same id.
    pub fn forget(&mut self, id: &MessageId, at: DateTime<Utc>) {
        let id = self.hasher.hash_one(id);
        let Some(second) = self.by_second.get_mut(&at.timestamp()) else {
            return;
        };
        // It was admitted moments ago, so it is near the end of its second.
        if let Some(i) = second.iter().rposition(|r| r.id() == id) {
            let gone = second.swap_remove(i);
            if second.is_empty() {
                self.by_second.remove(&at.timestamp());
            }
            self.drop_id(gone);
        }
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Ids older than the window can go: their messages would be refused as skewed anyway.
    /// Those of second `s` were sent before `s + 1`.
    fn forget_older_than(&mut self, now: DateTime<Utc>) {
        let skew = chrono::Duration::from_std(MAX_SKEW).expect("small duration");
        let oldest_kept = (now - skew).timestamp();
        while let Some(second) = self.by_second.first_entry() {
            if *second.key() + 1 > oldest_kept {
                break;
            }
            for old in second.remove() {
                self.drop_id(old);
            }
        }
    }

    /// Takes an id out of `ids` and its sender's counts (its entry by second is gone).
    fn drop_id(&mut self, gone: Remembered) {
        self.ids.remove(&gone.id());
        uncount(&mut self.per_key, gone.key);
        uncount(&mut self.per_address, gone.ip);
        uncount(&mut self.per_prefix, gone.prefix);
    }
}

/// How many ids `key` holds.
fn count<K: std::hash::Hash + Eq>(counts: &HashMap<K, u32>, key: &K) -> usize {
    counts.get(key).copied().unwrap_or(0) as usize
}

/// Takes one off `key`'s count, dropping the count at zero so the maps hold only senders
/// with ids remembered.
fn uncount<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, u32>, key: K) {
    if let Entry::Occupied(mut count) = counts.entry(key) {
        *count.get_mut() -= 1;
        if *count.get() == 0 {
            count.remove();
        }
    }
}

/// Whether a message sent `at` is fresh at `now`: at most [`MAX_SKEW`] old and
/// [`MAX_FUTURE_SKEW`] ahead. Signed messages are held to it, and so are requests in a
/// registry session: their counter refuses a replay, and this a request held back on the way
/// and delivered much later.
pub fn check_skew(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Stale> {
    let past = chrono::Duration::from_std(MAX_SKEW).expect("small duration");
    let future = chrono::Duration::from_std(MAX_FUTURE_SKEW).expect("small duration");
    match at < now - past || at > now + future {
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

    fn sender(ip: &str) -> Sender {
        Sender {
            key: crate::identity::Identity::generate().public(),
            ip: ip.parse().unwrap(),
        }
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    #[test]
    fn a_signed_message_is_accepted_once_and_only_when_fresh() {
        let now = Utc::now();
        let mut fresh = Freshness::default();
        let (id, alice) = (new_id(), sender("10.0.0.1"));
        assert_eq!(fresh.admit(id, now, alice, now), Ok(()));
        assert_eq!(fresh.admit(id, now, alice, now), Err(Stale::Replayed));
        let old = now - secs(121);
        assert_eq!(fresh.admit(new_id(), old, alice, now), Err(Stale::Skewed));
        let early = now + secs(6);
        assert_eq!(fresh.admit(new_id(), early, alice, now), Err(Stale::Skewed));
        let barely_early = now + secs(5);
        assert_eq!(fresh.admit(new_id(), barely_early, alice, now), Ok(()));
        // Much later the id is forgotten, but its message is stale by then anyway.
        let later = now + secs(300);
        assert_eq!(fresh.admit(id, now, alice, later), Err(Stale::Skewed));
        assert!(fresh.ids.is_empty() && fresh.by_second.is_empty());
        assert!(fresh.per_key.is_empty() && fresh.per_address.is_empty());
        assert!(fresh.per_prefix.is_empty());
    }

    /// The attack of issue 13: one throwaway key filled the shared cache with messages dated
    /// 115 s ahead, and every signed request was refused for four minutes.
    #[test]
    fn a_message_dated_far_ahead_is_refused() {
        let now = Utc::now();
        let mut fresh = Freshness::default();
        let ahead = now + secs(115);
        let result = fresh.admit(new_id(), ahead, sender("10.0.0.1"), now);
        assert_eq!(result, Err(Stale::Skewed));
        assert!(fresh.is_empty());
    }

    #[test]
    fn a_message_from_the_future_does_not_keep_later_ids() {
        let now = Utc::now();
        let mut fresh = Freshness::default();
        let alice = sender("10.0.0.1");
        assert_eq!(fresh.admit(new_id(), now + secs(4), alice, now), Ok(()));
        let on_time = new_id();
        assert_eq!(fresh.admit(on_time, now, alice, now), Ok(()));
        // 121 s later the on-time id can go (its message is stale), the early one not yet.
        let later = now + secs(121);
        assert_eq!(fresh.admit(new_id(), later, alice, later), Ok(()));
        assert!(!fresh.remembers(&on_time));
        assert_eq!(fresh.len(), 2);
    }

    /// The quotas, small enough to fill in a test.
    const SMALL: Quotas = Quotas {
        per_key: 4,
        per_address: 8,
        per_prefix: 12,
        total: 20,
    };

    /// Admits `n` new messages from `who` at `now`; how many were admitted.
    fn flood(fresh: &mut Freshness, who: Sender, n: usize, now: DateTime<Utc>) -> usize {
        (0..n)
            .filter(|_| fresh.admit(new_id(), now, who, now).is_ok())
            .count()
    }

    #[test]
    fn one_key_fills_only_its_own_quota() {
        let now = Utc::now();
        let mut fresh = Freshness::new(SMALL);
        let attacker = sender("10.1.0.1");
        assert_eq!(flood(&mut fresh, attacker, 1_000, now), SMALL.per_key);
        let result = fresh.admit(new_id(), now, attacker, now);
        assert_eq!(result, Err(Stale::Full), "the flooding key is busy");
        // Anyone else, even from the same address, is admitted.
        let neighbour = Sender {
            ip: attacker.ip,
            ..sender("10.1.0.1")
        };
        assert_eq!(fresh.admit(new_id(), now, neighbour, now), Ok(()));
        assert_eq!(fresh.admit(new_id(), now, sender("10.0.0.1"), now), Ok(()));
        // Once its ids lapse, the key has its quota again.
        let later = now + secs(122);
        assert_eq!(fresh.admit(new_id(), later, attacker, later), Ok(()));
    }

    #[test]
    fn many_keys_fill_only_their_address_and_then_their_prefix() {
        let now = Utc::now();
        let mut fresh = Freshness::new(SMALL);
        // Fresh keys from one address: its quota, then `busy` for that address only.
        let mut admitted = 0;
        for _ in 0..100 {
            admitted += flood(&mut fresh, sender("10.1.0.1"), 1, now);
        }
        assert_eq!(admitted, SMALL.per_address);
        assert_eq!(flood(&mut fresh, sender("10.1.0.2"), 1, now), 1);
        // Then other addresses of the same /24 share its quota.
        let mut more = 1;
        for i in 3..100 {
            more += flood(&mut fresh, sender(&format!("10.1.0.{i}")), 1, now);
        }
        assert_eq!(admitted + more, SMALL.per_prefix);
        // Another network is untouched.
        assert_eq!(flood(&mut fresh, sender("10.0.0.1"), 1, now), 1);
        assert_eq!(fresh.len(), SMALL.per_prefix + 1);
    }

    #[test]
    fn memory_is_bounded_by_the_total_whoever_sends() {
        let now = Utc::now();
        let mut fresh = Freshness::new(SMALL);
        let mut admitted = 0;
        for net in 0..10 {
            for host in 1..10 {
                admitted += flood(&mut fresh, sender(&format!("10.{net}.0.{host}")), 1, now);
            }
        }
        assert_eq!(admitted, SMALL.total);
        assert_eq!(fresh.len(), SMALL.total);
    }

    #[test]
    fn an_id_admitted_again_after_busy_stays_until_its_own_time_lapses() {
        let now = Utc::now();
        let mut fresh = Freshness::default();
        let (id, alice) = (new_id(), sender("10.0.0.1"));
        fresh.admit(id, now, alice, now).unwrap();
        fresh.forget(&id, now);
        let resent = now + secs(60);
        fresh.admit(id, resent, alice, resent).unwrap();
        // The first admission's second lapses; the second admission is still remembered.
        let later = now + secs(122);
        assert_eq!(fresh.admit(id, resent, alice, later), Err(Stale::Replayed));
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
        let (id, now, alice) = (new_id(), Utc::now(), sender("10.0.0.1"));
        fresh.admit(id, now, alice, now).unwrap();
        assert_eq!(fresh.admit(id, now, alice, now), Err(Stale::Replayed));
        fresh.forget(&id, now);
        assert_eq!(fresh.admit(id, now, alice, now), Ok(()));
    }

    /// Each remembered id has one place by second, with its owner: forgetting it there gives
    /// its sender's quotas back, and its second's lapse then takes nothing twice.
    #[test]
    fn a_forgotten_id_gives_its_quotas_back_and_leaves_nothing_behind() {
        let now = Utc::now();
        let mut fresh = Freshness::new(SMALL);
        let alice = sender("10.0.0.1");
        let ids: Vec<MessageId> = (0..SMALL.per_key).map(|_| new_id()).collect();
        for &id in &ids {
            fresh.admit(id, now, alice, now).unwrap();
        }
        assert_eq!(fresh.admit(new_id(), now, alice, now), Err(Stale::Full));
        // Under another time, or never admitted: nothing to forget.
        fresh.forget(&ids[0], now - secs(1));
        fresh.forget(&new_id(), now);
        assert_eq!(fresh.len(), SMALL.per_key);
        fresh.forget(&ids[0], now);
        assert!(!fresh.remembers(&ids[0]));
        assert_eq!(fresh.admit(new_id(), now, alice, now), Ok(()), "quota back");
        // Admitted again in the same second: one place, counted once.
        assert_eq!(fresh.admit(ids[0], now, alice, now), Err(Stale::Full));
        fresh.forget(&ids[1], now);
        assert_eq!(fresh.admit(ids[0], now, alice, now), Ok(()));
        let places: usize = fresh.by_second.values().map(Vec::len).sum();
        assert_eq!((places, fresh.len()), (SMALL.per_key, SMALL.per_key));
        let later = now + secs(122);
        assert_eq!(fresh.admit(ids[1], later, alice, later), Ok(()));
        assert_eq!(fresh.len(), 1);
        for counts in [&fresh.per_key, &fresh.per_address, &fresh.per_prefix] {
            assert_eq!(counts.values().collect::<Vec<_>>(), [&1]);
        }
    }

    /// What each remembered id costs besides `ids`'s table (docs/benchmarks.md, item 17).
    #[test]
    fn a_remembered_id_takes_20_bytes_by_second() {
        assert_eq!(std::mem::size_of::<Remembered>(), 20);
        let r = Remembered {
            id: [0x0123_4567, 0x89ab_cdef],
            key: 0,
            ip: 0,
            prefix: 0,
        };
        assert_eq!(r.id(), 0x0123_4567_89ab_cdef);
    }

    impl Freshness {
        fn remembers(&self, id: &MessageId) -> bool {
            self.ids.contains(&self.hasher.hash_one(id))
        }
    }
}
