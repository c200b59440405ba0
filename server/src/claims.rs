//! Which key owns which name, in memory: the registry's copy of the claims on disk.
//!
//! Checking a name is a hash lookup; only a new claim or a release touches the disk, through
//! the store thread (`store.rs`). A new claim counts here at once, so that a second key
//! asking for the same name a moment later is refused, but it stays *unsaved* until the
//! store reports it written: only then may its registration be confirmed. If the write fails,
//! the claim is dropped again ([`Claims::lost`]).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

use p2p_shared::identity::PublicKey;
use p2p_shared::PeerName;

/// The most names the registry will ever hold claims for; beyond, `register` is refused.
pub const MAX_CLAIMS: usize = 1_000_000;

#[derive(Default)]
pub struct Claims {
    owners: HashMap<PeerName, PublicKey>,
    /// How many names each key holds, for `--max-names-per-key`, by a keyed hash of the key:
    /// 8 bytes an entry rather than 40, at one entry per claim (5 MB of a registry of
    /// 100,000 claims otherwise). Nobody can aim at a collision without the (random) hash
    /// key, and a chance one only makes two keys share a count.
    held: HashMap<u32, u16>,
    hasher: RandomState,
    /// Claims made in memory whose write the store has not reported yet.
    unsaved: HashSet<PeerName>,
}

impl Claims {
    /// The claims read from disk at start-up.
    pub fn loaded(claims: impl IntoIterator<Item = (PeerName, PublicKey)>) -> Claims {
        let owners: HashMap<PeerName, PublicKey> = claims.into_iter().collect();
        let (mut held, hasher) = (HashMap::new(), RandomState::new());
        for key in owners.values() {
            let count: &mut u16 = held.entry(hasher.hash_one(key) as u32).or_default();
            *count = count.saturating_add(1);
        }
        Claims {
            owners,
            held,
            hasher,
            unsaved: HashSet::new(),
        }
    }

    /// The key that owns `name`, if any (saved or not).
    pub fn owner(&self, name: &PeerName) -> Option<PublicKey> {
        self.owners.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// How many names `key` holds claims on (saved or not).
    pub fn held_by(&self, key: &PublicKey) -> usize {
        let held = self.held.get(&(self.hasher.hash_one(key) as u32)).copied();
        held.unwrap_or(0) as usize
    }

    /// Records that `key` owns `name` (which must be unclaimed), unsaved until
    /// [`Claims::saved`].
    pub fn claim(&mut self, name: PeerName, key: PublicKey) {
        if let Some(old) = self.owners.insert(name, key) {
            self.unhold(old);
        }
        let count = self
            .held
            .entry(self.hasher.hash_one(key) as u32)
            .or_default();
        *count = count.saturating_add(1);
        self.unsaved.insert(name);
    }

    /// Whether `name`'s claim waits for its write.
    pub fn is_unsaved(&self, name: &PeerName) -> bool {
        self.unsaved.contains(name)
    }

    /// The store wrote `name`'s claim.
    pub fn saved(&mut self, name: &PeerName) {
        self.unsaved.remove(name);
    }

    /// The store could not write `name`'s claim: it is no claim. False if there was no
    /// unsaved claim on `name` (a claim saved since, say, by a later batch).
    pub fn lost(&mut self, name: &PeerName) -> bool {
        let lost = self.unsaved.remove(name);
        if lost {
            self.forget(name);
        }
        lost
    }

    /// Forgets the claim on `name` (the store has deleted it).
    pub fn release(&mut self, name: &PeerName) {
        self.forget(name);
        self.unsaved.remove(name);
    }

    fn forget(&mut self, name: &PeerName) {
        if let Some(key) = self.owners.remove(name) {
            self.unhold(key);
        }
    }

    fn unhold(&mut self, key: PublicKey) {
        let slot = self.hasher.hash_one(key) as u32;
        if let Some(count) = self.held.get_mut(&slot) {
            *count -= 1;
            if *count == 0 {
                self.held.remove(&slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::identity::Identity;

    #[test]
    fn a_claim_counts_at_once_and_a_lost_one_is_gone() {
        let mut claims = Claims::default();
        let (alice, bob): (PeerName, PeerName) = ("alice".parse().unwrap(), "bob".parse().unwrap());
        let key = Identity::generate().public();
        claims.claim(alice, key);
        claims.claim(bob, key);
        assert_eq!(claims.owner(&alice), Some(key), "a claim counts at once");
        assert!(claims.is_unsaved(&alice));
        claims.saved(&alice);
        assert!(!claims.is_unsaved(&alice));
        assert!(claims.lost(&bob));
        assert_eq!(claims.owner(&bob), None);
        assert!(
            !claims.lost(&alice),
            "a saved claim is not lost by a later failure"
        );
        assert_eq!(claims.owner(&alice), Some(key));
        assert_eq!(claims.held_by(&key), 1, "bob's lost claim is not held");
        claims.release(&alice);
        assert_eq!(claims.held_by(&key), 0);
        assert!(claims.held.is_empty());
    }
}
