//! The claim rules on etcd: what a registration may do, decided from one consistent read of
//! the counts etcd keeps for it (`register.rs` reads them and writes the outcome in one
//! transaction that holds only if none of them changed).
//!
//! The same rules, in the same order, as the embedded store's `Registry::register`: the
//! owner first (`Taken`), then the names registered at once from the address
//! (`--max-names-per-ip`), and for a new claim the names the key holds
//! (`--max-names-per-key`), then the new names claimed from the address and its network in
//! the last hour (`--max-names-per-ip`, `--max-names-per-prefix`). Pure: the counts and
//! limits in, the decision out, so each rule is unit-tested here.

use std::net::{IpAddr, SocketAddr};

use p2p_shared::identity::PublicKey;

use crate::registry::{NameLimits, Registration};

/// What etcd holds for one registration attempt, read at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The store's revision the counts were read at: a write holds only if nothing it
    /// counted changed after it.
    pub revision: i64,
    /// The key that owns the name, if it is claimed.
    pub owner: Option<PublicKey>,
    /// Where the name is registered now, if it is.
    pub registered_at: Option<SocketAddr>,
    /// Names registered at once from the address asking.
    pub from_here: usize,
    /// Names the asking key holds claims on.
    pub held: usize,
    /// New names claimed from the address in the last hour.
    pub new_from_address: usize,
    /// New names claimed from its network in the last hour.
    pub new_from_network: usize,
}

/// What a registration allowed by the rules writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The name is unclaimed: the write claims it, counting it for the key and against the
    /// address's and network's hourly budgets.
    pub claim: bool,
    /// The name comes from an address it is not registered from: the write counts it there
    /// (and may only if the address's count did not change).
    pub moving_in: bool,
    /// The address the name moves away from, whose count the write takes it out of.
    pub moved_from: Option<IpAddr>,
}

/// Whether `key` may register the name of `snapshot` at `addr` within `limits`: the plan of
/// the write, or the refusal.
pub fn decide(
    snapshot: &Snapshot,
    key: PublicKey,
    addr: SocketAddr,
    limits: &NameLimits,
) -> Result<Plan, Registration> {
    if snapshot.owner.is_some_and(|owner| owner != key) {
        return Err(Registration::Taken);
    }
    let there = snapshot.registered_at.map(|at| at.ip());
    let moving_in = there != Some(addr.ip());
    if moving_in && snapshot.from_here >= limits.per_address {
        return Err(Registration::TooManyFromHere);
    }
    let claim = snapshot.owner.is_none();
    if claim {
        if snapshot.held >= limits.per_key {
            return Err(Registration::TooManyForKey);
        }
        if snapshot.new_from_address >= limits.per_address
            || snapshot.new_from_network >= limits.per_prefix
        {
            return Err(Registration::TooManyNewNames);
        }
    }
    Ok(Plan {
        claim,
        moving_in,
        moved_from: there.filter(|_| moving_in),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::identity::Identity;

    const LIMITS: NameLimits = NameLimits {
        per_address: 2,
        per_prefix: 3,
        per_key: 2,
    };

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_new_name_is_claimed_within_every_limit_and_refused_past_each() {
        let key = Identity::generate().public();
        let here = at("10.0.0.1:1");
        let fresh = Snapshot::default();
        assert_eq!(
            decide(&fresh, key, here, &LIMITS),
            Ok(Plan {
                claim: true,
                moving_in: true,
                moved_from: None
            })
        );
        let refused = |snapshot: Snapshot| decide(&snapshot, key, here, &LIMITS).unwrap_err();
        let from_here = Snapshot {
            from_here: 2,
            ..Snapshot::default()
        };
        assert_eq!(refused(from_here), Registration::TooManyFromHere);
        let held = Snapshot {
            held: 2,
            ..Snapshot::default()
        };
        assert_eq!(refused(held), Registration::TooManyForKey);
        let address = Snapshot {
            new_from_address: 2,
            ..Snapshot::default()
        };
        assert_eq!(refused(address), Registration::TooManyNewNames);
        let network = Snapshot {
            new_from_network: 3,
            ..Snapshot::default()
        };
        assert_eq!(refused(network), Registration::TooManyNewNames);
        // The order of the embedded store: the key's count before the hourly budget.
        let both = Snapshot {
            held: 2,
            new_from_address: 2,
            ..Snapshot::default()
        };
        assert_eq!(refused(both), Registration::TooManyForKey);
    }

    #[test]
    fn the_owner_registers_again_without_a_new_claim_and_moves_between_addresses() {
        let key = Identity::generate().public();
        let here = at("10.0.0.1:1");
        // Claimed by this key, at its budgets' ends: a registration is no new claim.
        let owned = Snapshot {
            owner: Some(key),
            held: 2,
            new_from_address: 2,
            new_from_network: 3,
            ..Snapshot::default()
        };
        let plan = decide(&owned, key, here, &LIMITS).unwrap();
        assert!(!plan.claim);
        // Registered from this address already (another port): it counts there already.
        let same_ip = Snapshot {
            registered_at: Some(at("10.0.0.1:2")),
            from_here: 2,
            ..owned.clone()
        };
        assert_eq!(
            decide(&same_ip, key, here, &LIMITS),
            Ok(Plan {
                claim: false,
                moving_in: false,
                moved_from: None
            })
        );
        // From another address: counted here, taken out there, and refused if here is full.
        let elsewhere = Snapshot {
            registered_at: Some(at("10.0.9.9:1")),
            from_here: 1,
            ..owned.clone()
        };
        let moved_from = Some(at("10.0.9.9:1").ip());
        assert_eq!(
            decide(&elsewhere, key, here, &LIMITS),
            Ok(Plan {
                claim: false,
                moving_in: true,
                moved_from
            })
        );
        let full_here = Snapshot {
            from_here: 2,
            ..elsewhere
        };
        assert_eq!(
            decide(&full_here, key, here, &LIMITS),
            Err(Registration::TooManyFromHere)
        );
    }

    #[test]
    fn another_key_is_refused_whatever_the_counts() {
        let (owner, other) = (Identity::generate().public(), Identity::generate().public());
        let owned = Snapshot {
            owner: Some(owner),
            from_here: 9,
            ..Snapshot::default()
        };
        assert_eq!(
            decide(&owned, other, at("10.0.0.1:1"), &LIMITS),
            Err(Registration::Taken)
        );
    }
}
