//! The registrations by deadline, in buckets of one second: what the sweep looks at.
//!
//! A registration lapses `ttl` after it was last made, and the sweep must find the lapsed ones
//! without looking at every registration. Each registration has exactly one place here: its
//! name, in the bucket of a second at or before its deadline. A renewal moves the deadline
//! but not the place, so renewals, most of the registry's traffic, cost nothing here: when
//! the sweep reaches a name whose deadline has moved on, the registry puts it back, in the
//! bucket of its new deadline. A registration that ends otherwise (unregistered, moved,
//! released) takes its name out of its bucket.
//!
//! A bucket keeps its names packed, each as its length and its characters: a name of 7
//! characters takes 8 bytes, where a [`PeerName`] takes 33 whatever its length
//! (docs/benchmarks.md, item 17). The names are read back only when the sweep reaches their
//! second, and taking one out of a bucket (rare: unregistered, moved, released) moves the
//! names after it, as finding it already looked at the names before it. An ordered set of
//! (deadline, name) did the same with a place per deadline, but cost 106 bytes a
//! registration.

use std::collections::BTreeMap;
use std::time::Instant;

use p2p_shared::PeerName;

/// A bucket: the second, counted from the registry's start, that its deadlines fall in.
pub type Bucket = u32;

pub struct Deadlines {
    /// Second 0.
    epoch: Instant,
    buckets: BTreeMap<Bucket, Packed>,
}

/// Names packed one after another, each as its length (one byte) and its characters.
#[derive(Default)]
struct Packed(Vec<u8>);

impl Packed {
    fn push(&mut self, name: &PeerName) {
        let name = name.as_str().as_bytes();
        // A name is at most 32 bytes (`PeerName::MAX_LEN`), so its length fits.
        self.0.push(name.len() as u8);
        self.0.extend_from_slice(name);
    }

    /// Each name's bytes, with where its entry starts and ends in the packed bytes.
    fn entries(&self) -> impl Iterator<Item = (std::ops::Range<usize>, &[u8])> {
        let mut at = 0;
        std::iter::from_fn(move || {
            let len = usize::from(*self.0.get(at)?);
            let entry = at..at + 1 + len;
            at = entry.end;
            Some((entry.clone(), &self.0[entry.start + 1..entry.end]))
        })
    }

    /// Takes `name` out, if it is here.
    fn remove(&mut self, name: &PeerName) {
        let name = name.as_str().as_bytes();
        let found = self.entries().find(|(_, bytes)| *bytes == name);
        if let Some((entry, _)) = found {
            self.0.drain(entry);
        }
    }

    fn names(&self) -> impl Iterator<Item = PeerName> + '_ {
        self.entries().map(|(_, bytes)| {
            let name = std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok());
            name.expect("only names are packed")
        })
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Deadlines {
    pub fn new(epoch: Instant) -> Deadlines {
        Deadlines {
            epoch,
            buckets: BTreeMap::new(),
        }
    }

    /// The bucket of `at`: the second it falls in, so never after it.
    fn bucket(&self, at: Instant) -> Bucket {
        let secs = at.saturating_duration_since(self.epoch).as_secs();
        Bucket::try_from(secs).unwrap_or(Bucket::MAX)
    }

    /// Places `name`, whose deadline is `deadline`; returns its bucket, for [`Deadlines::remove`].
    pub fn insert(&mut self, name: PeerName, deadline: Instant) -> Bucket {
        let bucket = self.bucket(deadline);
        self.buckets.entry(bucket).or_default().push(&name);
        bucket
    }

    /// Takes `name` out of `bucket`.
    pub fn remove(&mut self, name: &PeerName, bucket: Bucket) {
        if let Some(names) = self.buckets.get_mut(&bucket) {
            names.remove(name);
            if names.is_empty() {
                self.buckets.remove(&bucket);
            }
        }
    }

    /// Takes every name whose bucket has begun at `now`. Each may have lapsed, or been renewed
    /// since it was placed: the caller looks, and places the renewed ones again.
    pub fn due(&mut self, now: Instant) -> Vec<PeerName> {
        let now = self.bucket(now);
        let mut due = Vec::new();
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > now {
                break;
            }
            due.extend(entry.remove().names());
        }
        due
    }

    /// How many names are placed.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.values().map(|b| b.entries().count()).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    #[test]
    fn names_come_due_with_their_second_and_not_before() {
        let epoch = Instant::now();
        let mut deadlines = Deadlines::new(epoch);
        let at = |ms| epoch + Duration::from_millis(ms);
        deadlines.insert(name("a"), at(1_500));
        let b = deadlines.insert(name("b"), at(2_200));
        deadlines.insert(name("c"), at(2_900));
        assert!(deadlines.due(at(999)).is_empty());
        assert_eq!(deadlines.due(at(1_000)), [name("a")], "its second began");
        deadlines.remove(&name("b"), b);
        assert_eq!(deadlines.due(at(60_000)), [name("c")]);
        assert_eq!(deadlines.len(), 0);
    }

    /// Names of every length share a bucket, and taking one out of the middle leaves the
    /// others whole.
    #[test]
    fn packed_names_come_back_as_they_went_in() {
        let epoch = Instant::now();
        let mut deadlines = Deadlines::new(epoch);
        let long = "n".repeat(PeerName::MAX_LEN);
        let names = ["a", "alice", &long, "b.c", "alic", "alice-2"].map(name);
        let bucket = deadlines.insert(names[0], epoch);
        for n in &names[1..] {
            assert_eq!(deadlines.insert(*n, epoch), bucket);
        }
        deadlines.remove(&name("alic"), bucket);
        deadlines.remove(&name("nobody"), bucket);
        deadlines.remove(&name("a"), bucket + 1);
        assert_eq!(deadlines.len(), names.len() - 1);
        let left: Vec<PeerName> = names.into_iter().filter(|n| *n != name("alic")).collect();
        assert_eq!(deadlines.due(epoch), left);
        for n in names {
            deadlines.insert(n, epoch);
            deadlines.remove(&n, bucket);
        }
        assert!(deadlines.buckets.is_empty(), "an emptied bucket goes");
    }
}
