//! The registrations by deadline, in buckets of one second: what the sweep looks at.
//!
//! A registration lapses `ttl` after it was last made, and the sweep must find the lapsed ones
//! without looking at every registration. Each registration has exactly one place here: its
//! name, in the bucket of a second at or before its deadline (33 bytes). A renewal moves the
//! deadline but not the place, so renewals, most of the registry's traffic, cost nothing
//! here: when the sweep reaches a name whose deadline has moved on, the registry puts it
//! back, in the bucket of its new deadline. A registration that ends otherwise (unregistered,
//! moved, released) takes its name out of its bucket.
//!
//! An ordered set of (deadline, name) did the same with a place per deadline, but cost 106
//! bytes a registration, 10.6 MB for 100,000 (docs/benchmarks.md).

use std::collections::BTreeMap;
use std::time::Instant;

use p2p_shared::PeerName;

/// A bucket: the second, counted from the registry's start, that its deadlines fall in.
pub type Bucket = u32;

pub struct Deadlines {
    /// Second 0.
    epoch: Instant,
    buckets: BTreeMap<Bucket, Vec<PeerName>>,
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
        self.buckets.entry(bucket).or_default().push(name);
        bucket
    }

    /// Takes `name` out of `bucket`.
    pub fn remove(&mut self, name: &PeerName, bucket: Bucket) {
        if let Some(names) = self.buckets.get_mut(&bucket) {
            if let Some(i) = names.iter().position(|n| n == name) {
                names.swap_remove(i);
            }
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
            due.extend(entry.remove());
        }
        due
    }

    /// How many names are placed.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.values().map(Vec::len).sum()
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
}
