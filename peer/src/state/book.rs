//! The book: the peers this peer knows of, from their own signed records, with what it has
//! seen of each. Without I/O, like the rest of the state.
//!
//! A record says where its key's owner was and when; it comes from the peer itself (a `join`,
//! or an exchange it started) or passed on by others (peer exchange). The book keeps the
//! newest record per key, bounded in size, and, for each, whether a reply signed by that key
//! has come from that address (seen), and how many checks in a row failed since. A peer that
//! fails [`DEAD_AFTER`] checks in a row is dead: kept, shown as such, checked again with
//! backoff, and forgotten once dead for [`FORGET_AFTER`]. Exchanges pass on records of peers
//! that are not known dead. The file (`DATA/book-NAME`) is one JSON record per line with what was
//! seen of it, rewritten by the disk thread.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use p2p_shared::identity::PublicKey;
use p2p_shared::record::{PeerRecord, RecordError, MAX_RECORDS};
use serde::{Deserialize, Serialize};

use crate::known::FileWrite;

/// The most peers the book holds: a lab or a LAN, with room to spare. A record for a new key
/// beyond it takes the place of the longest dead peer, or is dropped.
pub const MAX_BOOK: usize = 1024;

/// Failed checks in a row after which a peer is dead.
pub const DEAD_AFTER: u32 = 3;

/// How long a dead peer is kept (and tried again now and then) before it is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// How a record came to the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// From the peer itself: it answered our `join` or our exchange, or sent us one.
    Direct,
    /// Passed on by another peer in an exchange.
    Exchange,
}

/// One peer in the book.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Known {
    pub record: PeerRecord,
    pub source: Source,
    /// When a reply signed by this key last came from the record's address.
    pub seen: Option<DateTime<Utc>>,
    /// Checks failed in a row since.
    #[serde(default)]
    pub failures: u32,
    /// Since when it is dead, if it is.
    #[serde(default)]
    pub dead_since: Option<DateTime<Utc>>,
}

impl Known {
    pub fn is_dead(&self) -> bool {
        self.dead_since.is_some()
    }
}

/// What became of a record offered to the book.
#[derive(Debug, PartialEq, Eq)]
pub enum Learned {
    /// A key the book did not know.
    New,
    /// A newer record of a known key.
    Updated,
    /// Not newer than the one kept.
    Stale,
    /// Our own, or the book is full of live peers.
    Ignored,
    Refused(RecordError),
}

/// A peer's liveness changed with a check.
#[derive(Debug, PartialEq, Eq)]
pub enum Liveness {
    Dead,
    Back,
}

pub struct Book {
    path: PathBuf,
    me: PublicKey,
    peers: BTreeMap<PublicKey, Known>,
    /// Changed since the file was last written.
    dirty: bool,
}

impl Book {
    /// The book of the peer whose key is `me`, from the file at `path` (missing: empty).
    /// Lines that do not parse, or whose record's signature does not verify, are skipped.
    pub fn load(path: PathBuf, me: PublicKey) -> anyhow::Result<Book> {
        let mut book = Book {
            path,
            me,
            peers: BTreeMap::new(),
            dirty: false,
        };
        let text = match std::fs::read_to_string(&book.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(book),
            Err(e) => anyhow::bail!("cannot read {}: {e}", book.path.display()),
        };
        for line in text.lines() {
            let Ok(known) = serde_json::from_str::<Known>(line) else {
                continue;
            };
            // The age is checked when a record is passed on, not here: a peer that was
            // away for days is still worth trying at its last address.
            let signed = known.record.check(known.record.at) == Ok(());
            if signed && known.record.key != me && book.peers.len() < MAX_BOOK {
                book.peers.insert(known.record.key, known);
            }
        }
        Ok(book)
    }

    /// An empty book that writes nowhere: for tests.
    #[cfg(test)]
    pub fn empty(me: PublicKey) -> Book {
        Book {
            path: PathBuf::new(),
            me,
            peers: BTreeMap::new(),
            dirty: false,
        }
    }

    /// Takes `record` (from `source`) if it is valid at `now` and newer than the one kept.
    pub fn learn(&mut self, record: PeerRecord, source: Source, now: DateTime<Utc>) -> Learned {
        if record.key == self.me {
            return Learned::Ignored;
        }
        if let Err(e) = record.check(now.timestamp()) {
            return Learned::Refused(e);
        }
        let learned = match self.peers.get_mut(&record.key) {
            Some(known) if known.record.at >= record.at => return Learned::Stale,
            Some(known) => {
                // A new address is a hint until a reply from there proves it.
                if known.record.addr != record.addr {
                    known.seen = None;
                    known.failures = 0;
                    known.dead_since = None;
                }
                known.record = record;
                if source == Source::Direct {
                    known.source = Source::Direct;
                }
                Learned::Updated
            }
            None => {
                if self.peers.len() >= MAX_BOOK && !self.drop_longest_dead() {
                    return Learned::Ignored;
                }
                let known = Known {
                    record,
                    source,
                    seen: None,
                    failures: 0,
                    dead_since: None,
                };
                self.peers.insert(known.record.key, known);
                Learned::New
            }
        };
        self.dirty = true;
        learned
    }

    fn drop_longest_dead(&mut self) -> bool {
        let oldest = self
            .peers
            .values()
            .filter_map(|k| k.dead_since.map(|since| (since, k.record.key)))
            .min();
        match oldest {
            Some((_, key)) => self.peers.remove(&key).is_some(),
            None => false,
        }
    }

    /// A reply signed by `key` came from `addr` at `now`.
    pub fn seen(
        &mut self,
        key: &PublicKey,
        addr: SocketAddr,
        now: DateTime<Utc>,
    ) -> Option<Liveness> {
        let known = self.peers.get_mut(key)?;
        if known.record.addr != addr {
            return None;
        }
        let back = known.dead_since.take().map(|_| Liveness::Back);
        known.seen = Some(now);
        known.failures = 0;
        // When it was last seen goes to disk with the next change that matters, not at
        // every check.
        self.dirty |= back.is_some();
        back
    }

    /// A check of `key` at its address failed at `now` (no answer, or another key there).
    pub fn failed(&mut self, key: &PublicKey, now: DateTime<Utc>) -> Option<Liveness> {
        let known = self.peers.get_mut(key)?;
        known.failures = known.failures.saturating_add(1);
        match known.dead_since {
            None if known.failures >= DEAD_AFTER => {
                known.dead_since = Some(now);
                self.dirty = true;
                Some(Liveness::Dead)
            }
            _ => None,
        }
    }

    /// Forgets the peers dead for longer than [`FORGET_AFTER`].
    pub fn forget_long_dead(&mut self, now: DateTime<Utc>) {
        let before = self.peers.len();
        let limit = chrono::Duration::from_std(FORGET_AFTER).expect("a week fits");
        self.peers
            .retain(|_, k| k.dead_since.is_none_or(|since| now - since < limit));
        self.dirty |= self.peers.len() != before;
    }

    /// Which peers to check now: each live one, and each dead one whose backoff is over
    /// (twice as long after each failure, from one check interval, at most a day).
    pub fn due(&self, now: DateTime<Utc>, interval: Duration) -> Vec<(PublicKey, SocketAddr)> {
        self.peers
            .values()
            .filter(|k| match k.dead_since {
                None => true,
                Some(since) => {
                    let steps = k.failures.saturating_sub(DEAD_AFTER).min(16);
                    let wait = interval
                        .saturating_mul(1 << steps)
                        .min(Duration::from_secs(86_400));
                    let wait = chrono::Duration::from_std(wait).expect("a day fits");
                    now - since >= wait
                }
            })
            .map(|k| (k.record.key, k.record.addr))
            .collect()
    }

    /// Records to pass on to `to` in an exchange: of peers not known dead and young enough,
    /// newest first, at most a page less one (the sender's own record goes first).
    pub fn page(&self, to: Option<&PublicKey>, now: DateTime<Utc>) -> Vec<PeerRecord> {
        let mut records: Vec<&PeerRecord> = self
            .peers
            .values()
            .filter(|k| !k.is_dead() && Some(&k.record.key) != to)
            .map(|k| &k.record)
            .filter(|r| r.check_age(now.timestamp()).is_ok())
            .collect();
        records.sort_by_key(|r| std::cmp::Reverse(r.at));
        records.into_iter().take(MAX_RECORDS - 1).cloned().collect()
    }

    /// The live peers, for broadcasts and exchanges.
    pub fn live(&self) -> Vec<(PublicKey, SocketAddr)> {
        self.peers
            .values()
            .filter(|k| !k.is_dead())
            .map(|k| (k.record.key, k.record.addr))
            .collect()
    }

    /// Every peer, sorted by name.
    pub fn list(&self) -> Vec<Known> {
        let mut all: Vec<Known> = self.peers.values().cloned().collect();
        all.sort_by_key(|k| (k.record.name, k.record.key));
        all
    }

    /// The keys of the records named `name`.
    pub fn keys_named(&self, name: &p2p_shared::PeerName) -> Vec<PublicKey> {
        self.peers
            .values()
            .filter(|k| k.record.name == *name)
            .map(|k| k.record.key)
            .collect()
    }

    pub fn get(&self, key: &PublicKey) -> Option<&Known> {
        self.peers.get(key)
    }

    /// The file to write, if anything changed since the last one.
    pub fn take_write(&mut self) -> Option<FileWrite> {
        if !std::mem::take(&mut self.dirty) || self.path.as_os_str().is_empty() {
            return None;
        }
        let mut contents = String::new();
        for known in self.peers.values() {
            contents.push_str(&serde_json::to_string(known).expect("a record serializes"));
            contents.push('\n');
        }
        Some(FileWrite {
            path: self.path.clone(),
            contents,
        })
    }
}

#[cfg(test)]
mod tests;
