//! Broadcasts, as state: which ones are new, which origin sends too many, which origins the
//! user blocked. Without I/O; `flood.rs` at the top of the crate does the sending.
//!
//! A broadcast is new once: the seen-set remembers each (origin key, id) for [`SEEN_FOR`],
//! twice as long as a broadcast may be old when it is taken, so a repeat that is still young
//! enough to pass the age check is always recognised. It holds at most [`MAX_SEEN`]; past
//! that, the oldest are forgotten first (a repeat of one of them would be too old by then
//! unless [`MAX_SEEN`] broadcasts came within minutes, which [`PER_ORIGIN`] makes one origin
//! unable to cause). Each origin may have [`PER_ORIGIN`] new broadcasts taken a minute; the
//! rest are dropped here and not passed on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use p2p_shared::broadcast::{Broadcast, BroadcastError, MAX_BROADCAST_AGE_SECS};
use p2p_shared::identity::PublicKey;
use p2p_shared::{MessageId, PeerName};

use crate::known::FileWrite;

/// How long a broadcast is remembered as seen.
pub const SEEN_FOR: Duration = Duration::from_secs(2 * MAX_BROADCAST_AGE_SECS as u64);

/// The most broadcasts remembered as seen: 40 bytes each, well under a megabyte.
pub const MAX_SEEN: usize = 16_384;

/// New broadcasts taken from one origin per [`RATE_WINDOW`].
pub const PER_ORIGIN: u32 = 20;

pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// The most origins whose rate is counted at once; the oldest windows go first.
const MAX_ORIGINS: usize = 4096;

/// What a broadcast that arrived is to us.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    /// Show it and pass it on.
    New,
    /// Seen before: drop it.
    Repeat,
    /// From a blocked origin: drop it.
    Blocked,
    /// Its origin sent more than [`PER_ORIGIN`] this minute: drop it.
    TooMany,
    Invalid(BroadcastError),
}

pub struct Flood {
    seen: HashMap<(PublicKey, MessageId), Instant>,
    /// The same, in the order they were seen, to forget the oldest first.
    order: VecDeque<((PublicKey, MessageId), Instant)>,
    /// Per origin: when its window started, and how many it had taken in it.
    rates: HashMap<PublicKey, (Instant, u32)>,
    /// Blocked keys, with the name they were blocked under (for the file and for `unblock`).
    blocked: BTreeMap<PublicKey, PeerName>,
    path: PathBuf,
    /// [`MAX_SEEN`], or less in tests.
    max_seen: usize,
}

impl Flood {
    /// With the blocked keys of the file at `path` (missing: none).
    pub fn load(path: PathBuf) -> anyhow::Result<Flood> {
        let mut blocked = BTreeMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    let mut words = line.split_whitespace();
                    let (Some(name), Some(key)) = (words.next(), words.next()) else {
                        continue;
                    };
                    if let (Ok(name), Ok(key)) = (name.parse(), key.parse()) {
                        blocked.insert(key, name);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        }
        Ok(Flood {
            seen: HashMap::new(),
            order: VecDeque::new(),
            rates: HashMap::new(),
            blocked,
            path,
            max_seen: MAX_SEEN,
        })
    }

    /// Nothing blocked, writing nowhere: for tests.
    #[cfg(test)]
    pub fn empty() -> Flood {
        Flood {
            seen: HashMap::new(),
            order: VecDeque::new(),
            rates: HashMap::new(),
            blocked: BTreeMap::new(),
            path: PathBuf::new(),
            max_seen: MAX_SEEN,
        }
    }

    /// What `message`, arriving at `now` (`unix`: the same moment in Unix seconds), is.
    /// A new one is remembered as seen.
    pub fn hear(&mut self, message: &Broadcast, now: Instant, unix: i64) -> Heard {
        // Repeats first, before the signature: most copies of a flood are repeats (85 of 96
        // on twelve peers, docs/benchmarks.md), and only a checked one is ever remembered,
        // so a forged copy cannot make the real one a repeat.
        self.forget_old(now);
        let id = (message.key, message.id);
        if self.seen.contains_key(&id) {
            return Heard::Repeat;
        }
        if self.blocked.contains_key(&message.key) {
            return Heard::Blocked;
        }
        if let Err(e) = message.check(unix) {
            return Heard::Invalid(e);
        }
        if !self.take_rate(message.key, now) {
            return Heard::TooMany;
        }
        self.remember(id, now);
        Heard::New
    }

    /// Whether `message` would be new here (not seen, origin not blocked), without taking
    /// it: worth asking the registry about its name first.
    pub fn may_be_new(&self, message: &Broadcast) -> bool {
        !self.seen.contains_key(&(message.key, message.id))
            && !self.blocked.contains_key(&message.key)
    }

    /// Our own broadcast, about to go out: its echoes are repeats.
    pub fn sent(&mut self, message: &Broadcast, now: Instant) {
        self.forget_old(now);
        self.remember((message.key, message.id), now);
    }

    fn remember(&mut self, id: (PublicKey, MessageId), now: Instant) {
        if self.order.len() >= self.max_seen {
            if let Some((oldest, _)) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(id, now);
        self.order.push_back((id, now));
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some(&(id, at)) = self.order.front() {
            if now.saturating_duration_since(at) < SEEN_FOR {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&id);
        }
    }

    fn take_rate(&mut self, origin: PublicKey, now: Instant) -> bool {
        if self.rates.len() >= MAX_ORIGINS && !self.rates.contains_key(&origin) {
            self.rates
                .retain(|_, (start, _)| now.saturating_duration_since(*start) < RATE_WINDOW);
            if self.rates.len() >= MAX_ORIGINS {
                // As many origins at once as counted: a flood of fresh keys, each within
                // its rate. Take none from new ones until windows end.
                return false;
            }
        }
        let (start, count) = self.rates.entry(origin).or_insert((now, 0));
        if now.saturating_duration_since(*start) >= RATE_WINDOW {
            (*start, *count) = (now, 0);
        }
        if *count >= PER_ORIGIN {
            return false;
        }
        *count += 1;
        true
    }

    pub fn is_blocked(&self, key: &PublicKey) -> bool {
        self.blocked.contains_key(key)
    }

    /// Blocks `keys` under `name`; the file to write.
    pub fn block(&mut self, name: PeerName, keys: &[PublicKey]) -> FileWrite {
        for key in keys {
            self.blocked.insert(*key, name);
        }
        self.file()
    }

    /// Unblocks every key blocked under `name`: how many, and the file to write.
    pub fn unblock(&mut self, name: &PeerName) -> (usize, FileWrite) {
        let before = self.blocked.len();
        self.blocked.retain(|_, blocked| blocked != name);
        (before - self.blocked.len(), self.file())
    }

    fn file(&self) -> FileWrite {
        let mut contents = String::new();
        for (key, name) in &self.blocked {
            contents.push_str(&format!("{name} {key}\n"));
        }
        FileWrite {
            path: self.path.clone(),
            contents,
        }
    }
}

#[cfg(test)]
mod tests {
    use p2p_shared::identity::Identity;
    use p2p_shared::wire::new_id;

    use super::*;

    const UNIX: i64 = 1_796_000_000;

    fn from(who: &Identity, text: &str) -> Broadcast {
        Broadcast::sign(who, "alice".parse().unwrap(), new_id(), UNIX, text.into())
    }

    #[test]
    fn a_broadcast_is_new_once_until_long_after_it_is_too_old_to_take() {
        let (mut flood, now) = (Flood::empty(), Instant::now());
        let alice = Identity::generate();
        let b = from(&alice, "hello");
        assert_eq!(flood.hear(&b, now, UNIX), Heard::New);
        assert_eq!(flood.hear(&b, now, UNIX), Heard::Repeat);
        // Still remembered when it is as old as a broadcast may be.
        let later = now + Duration::from_secs(MAX_BROADCAST_AGE_SECS as u64);
        assert_eq!(
            flood.hear(&b, later, UNIX + MAX_BROADCAST_AGE_SECS),
            Heard::Repeat
        );
        // Forgotten only once it is too old to take at all.
        let forgotten = now + SEEN_FOR;
        let too_old = UNIX + 2 * MAX_BROADCAST_AGE_SECS;
        assert_eq!(
            flood.hear(&b, forgotten, too_old),
            Heard::Invalid(BroadcastError::TooOld)
        );
        let mut forged = from(&alice, "hello");
        forged.text = "forged".into();
        assert_eq!(
            flood.hear(&forged, now, UNIX),
            Heard::Invalid(BroadcastError::BadSignature)
        );
        // Our own comes back as a repeat.
        let mine = from(&Identity::generate(), "mine");
        flood.sent(&mine, now);
        assert_eq!(flood.hear(&mine, now, UNIX), Heard::Repeat);
    }

    #[test]
    fn one_origin_is_taken_at_a_bounded_rate_and_a_blocked_one_not_at_all() {
        let (mut flood, now) = (Flood::empty(), Instant::now());
        let (loud, quiet) = (Identity::generate(), Identity::generate());
        for i in 0..PER_ORIGIN {
            assert_eq!(
                flood.hear(&from(&loud, &i.to_string()), now, UNIX),
                Heard::New
            );
        }
        assert_eq!(
            flood.hear(&from(&loud, "one more"), now, UNIX),
            Heard::TooMany
        );
        assert_eq!(flood.hear(&from(&quiet, "hi"), now, UNIX), Heard::New);
        let next_minute = now + RATE_WINDOW;
        assert_eq!(
            flood.hear(&from(&loud, "again"), next_minute, UNIX),
            Heard::New
        );

        let write = flood.block("quiet".parse().unwrap(), &[quiet.public()]);
        assert!(write.contents.contains(&quiet.public().to_string()));
        assert_eq!(flood.hear(&from(&quiet, "hi"), now, UNIX), Heard::Blocked);
        let (unblocked, _) = flood.unblock(&"quiet".parse().unwrap());
        assert_eq!(unblocked, 1);
        assert_eq!(flood.hear(&from(&quiet, "hi"), now, UNIX), Heard::New);
    }

    #[test]
    fn the_seen_set_stays_bounded_forgetting_the_oldest() {
        let (mut flood, now) = (Flood::empty(), Instant::now());
        flood.max_seen = 64;
        let keys: Vec<Identity> = (0..4).map(|_| Identity::generate()).collect();
        let all: Vec<Broadcast> = keys
            .iter()
            .flat_map(|key| (0..PER_ORIGIN).map(move |i| from(key, &i.to_string())))
            .collect();
        for b in &all {
            assert_eq!(flood.hear(b, now, UNIX), Heard::New);
        }
        assert_eq!((flood.seen.len(), flood.order.len()), (64, 64));
        assert_eq!(
            flood.hear(&all[79], now, UNIX),
            Heard::Repeat,
            "the newest kept"
        );
    }
}
