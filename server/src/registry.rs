//! The registry's state and rules: which name is at which address, and which key owns it.
//!
//! A name belongs to the key that first claimed it ([`Claims`], kept on disk). Registering
//! with that key adds or moves the name's address; any other key is refused, online owner or
//! not. Only the owner's key can unregister the address or release the name. Each request
//! was proven by the key it names before it gets here: by its signature, which the transport
//! checked, or by the registry session it came in, which was agreed with that key.
//!
//! Addresses are soft state: a registration lapses `ttl` after it was last made, so a peer
//! that died without `exit network` drops out of `listpeer` by itself, and live peers renew
//! theirs well within it. Lapsed registrations are found through an index ordered by
//! deadline, so a sweep costs what it removes, not a look at every registration. One IP
//! address may hold a bounded number of names (`--max-names-per-ip`); new claims are bounded
//! per address and per network each hour (`claim_budget.rs`) and per key at any time
//! (`--max-names-per-key`): claims last until released, so without those limits one host
//! could register, leave and repeat until no name is left for anyone.
//!
//! Rules only, no I/O, and the time is a parameter, so each rule is unit-tested here. What
//! must reach the disk comes out as [`Op`]s ([`Registry::take_ops`]) for the broker to hand
//! to the store thread, and the store's answer comes back in [`Registry::written`]. The
//! broker task owns the one instance.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use p2p_shared::identity::PublicKey;
use p2p_shared::registry_session::{RegistrySession, Replier};
use p2p_shared::wire::frame::RegistryRequestHeader as Header;
use p2p_shared::wire::PEERS_PAGE_LEN;
use p2p_shared::{PeerInfo, PeerName};

use crate::claim_budget::ClaimBudget;
use crate::claims::{Claims, MAX_CLAIMS};
use crate::deadlines::{Bucket, Deadlines};
use crate::store::Op;

/// The most registrations (names with an address) held at once, by default
/// (`--max-registrations`): a million fit in 640 MB (docs/benchmarks.md).
pub const CAPACITY: usize = 1_000_000;

/// What a registration attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Registration {
    /// The name is now registered at the address (new, or moved there).
    Added,
    /// The name was already registered at this address; nothing changed.
    Refreshed,
    /// Another key owns the name.
    Taken,
    /// The registry holds as many names as it may.
    Full,
    /// This IP address holds as many names as one address may.
    TooManyFromHere,
    /// This IP address, or its network, claimed as many new names in the last hour as it may.
    TooManyNewNames,
    /// This key holds as many names as one key may.
    TooManyForKey,
}

/// What `unregister` and `release` came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    Done,
    /// Nothing to remove.
    Unknown,
    /// Another key owns the name.
    NotOwner,
}

/// A registered address. Its owner's key is the name's claim in [`Claims`]: every
/// registration has one (a name is claimed before it is registered, and releasing it removes
/// both), and keeping the key once saves 32 bytes a registration.
struct Entry {
    addr: SocketAddr,
    expires: Instant,
    /// Where its name is in [`Deadlines`].
    bucket: Bucket,
    /// The keys of the peer's registry session, if its registration opened one: they last
    /// as long as the registration.
    session: Option<RegistrySession>,
}

/// How many names one address, network and key may have (`--max-names-per-*`).
#[derive(Clone, Copy, Debug)]
pub struct NameLimits {
    /// Registered at once from one address, and new names claimed from it per hour.
    pub per_address: usize,
    /// New names claimed from one /24 or /64 per hour.
    pub per_prefix: usize,
    /// Names one key holds claims on.
    pub per_key: usize,
}

/// What the registry knows of a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Registered now, at this address.
    Online(PeerInfo),
    /// Claimed by this key, not registered now.
    Offline(PublicKey),
    Unknown,
}

pub struct Registry {
    claims: Claims,
    ttl: Duration,
    /// The most registrations held at once.
    capacity: usize,
    max_per_ip: usize,
    // A BTreeMap keeps names sorted, which makes `listpeer` pages cheap and stable.
    peers: BTreeMap<PeerName, Entry>,
    /// Every entry of `peers` by its deadline (or an earlier one, if renewed since).
    deadlines: Deadlines,
    per_ip: HashMap<IpAddr, usize>,
    /// New names claimed per address and per network in the last hour.
    budget: ClaimBudget,
    max_per_key: usize,
    /// Where and when each unsaved claim was made: a claim the disk refused does not count
    /// against its address.
    unsaved: HashMap<PeerName, (IpAddr, Instant)>,
    /// Writes for the store, in the order they were decided.
    ops: Vec<Op>,
}

impl Registry {
    /// A registry whose registrations last `ttl` unless renewed, within `limits`, holding
    /// at most `capacity` registrations, started at `now`.
    pub fn new(
        claims: Claims,
        ttl: Duration,
        limits: NameLimits,
        capacity: usize,
        now: Instant,
    ) -> Registry {
        Registry {
            claims,
            ttl,
            capacity,
            max_per_ip: limits.per_address,
            peers: BTreeMap::new(),
            deadlines: Deadlines::new(now),
            per_ip: HashMap::new(),
            budget: ClaimBudget::new(limits.per_address, limits.per_prefix),
            max_per_key: limits.per_key,
            unsaved: HashMap::new(),
            ops: Vec::new(),
        }
    }

    /// Registers (or renews) `name` at `addr` for `key`, claiming the name if it is free (in
    /// memory; the claim's [`Op`] goes to the store, see [`Registry::take_ops`]). A new
    /// `session` replaces the registration's session; without one, a live registration keeps
    /// its own.
    pub fn register(
        &mut self,
        name: &PeerName,
        addr: SocketAddr,
        key: PublicKey,
        session: Option<RegistrySession>,
        now: Instant,
    ) -> Registration {
        let owner = self.claims.owner(name);
        if owner.is_some_and(|owner| owner != key) {
            return Registration::Taken;
        }
        let expires = now + self.ttl;
        let moving_in = match self.peers.get_mut(name) {
            Some(entry) if entry.expires > now && entry.addr == addr => {
                // Its place in the deadlines stays: the sweep moves it when it gets there.
                entry.expires = expires;
                if session.is_some() {
                    entry.session = session;
                }
                return Registration::Refreshed;
            }
            Some(entry) => entry.addr.ip() != addr.ip(),
            None => true,
        };
        if moving_in && self.per_ip.get(&addr.ip()).copied().unwrap_or(0) >= self.max_per_ip {
            return Registration::TooManyFromHere;
        }
        if !self.peers.contains_key(name) && self.peers.len() >= self.capacity {
            return Registration::Full;
        }
        if owner.is_none() {
            if self.claims.len() >= MAX_CLAIMS.max(self.capacity) {
                return Registration::Full;
            }
            if self.claims.held_by(&key) >= self.max_per_key {
                return Registration::TooManyForKey;
            }
            if !self.budget.take(addr.ip(), now) {
                return Registration::TooManyNewNames;
            }
            self.claims.claim(*name, key);
            self.unsaved.insert(*name, (addr.ip(), now));
            self.ops.push(Op::Claim { name: *name, key });
        }
        // Moving keeps the session. So does a renewal that arrives just after the registration
        // lapsed (before the sweep removed it): the peer sent it in that session.
        let kept = self.peers.get_mut(name).and_then(|old| old.session.take());
        self.remove(name);
        let session = session.or(kept);
        let bucket = self.deadlines.insert(*name, expires);
        self.peers.insert(
            *name,
            Entry {
                addr,
                expires,
                bucket,
                session,
            },
        );
        *self.per_ip.entry(addr.ip()).or_default() += 1;
        Registration::Added
    }

    /// Whether `name`'s claim waits for the store: its registration must not be confirmed
    /// before the store reports it written.
    pub fn claim_unsaved(&self, name: &PeerName) -> bool {
        self.claims.is_unsaved(name)
    }

    /// The writes decided since the last call, for the store.
    pub fn take_ops(&mut self) -> Vec<Op> {
        std::mem::take(&mut self.ops)
    }

    /// The store wrote `ops` (`ok`) or could not. A claim written is saved; a claim the store
    /// could not write is no claim, and its registration is undone: its name comes back. A
    /// release written removes the name's claim and its registration; one not written changes
    /// nothing.
    pub fn written(&mut self, ops: &[Op], ok: bool) -> Vec<PeerName> {
        let mut lost = Vec::new();
        for op in ops {
            match (op, ok) {
                (Op::Claim { name, .. }, true) => {
                    self.claims.saved(name);
                    self.unsaved.remove(name);
                }
                (Op::Claim { name, .. }, false) => {
                    if self.claims.lost(name) {
                        self.remove(name);
                        self.uncount_claim(name);
                        lost.push(*name);
                    }
                }
                // Only if the claim is still that key's: a claim it lost to a failed write may
                // have been made again, by another key, while the release was on its way.
                (Op::Release { name, key }, true) if self.claims.owner(name) == Some(*key) => {
                    self.claims.release(name);
                    self.unsaved.remove(name);
                    self.remove(name);
                }
                (Op::Release { .. }, true) => {}
                (Op::Release { .. }, false) => {}
            }
        }
        lost
    }

    /// Takes back the count of `name`'s claim against the address that made it.
    fn uncount_claim(&mut self, name: &PeerName) {
        if let Some((ip, at)) = self.unsaved.remove(name) {
            self.budget.give_back(ip, at);
        }
    }

    /// Accepts a request in the registry session of the name in its `header`: returns the
    /// key the session was agreed with, the request's JSON and the means to reply. `None` if
    /// the name has no live registration with a session, or the frame is not authentic in
    /// it, or is a replay.
    pub fn accept(
        &mut self,
        header: &Header,
        frame: &[u8],
        now: Instant,
    ) -> Option<(PublicKey, Vec<u8>, Replier)> {
        let entry = self
            .peers
            .get_mut(&header.name)
            .filter(|e| e.expires > now)?;
        let (json, replier) = entry.session.as_mut()?.accept(header, frame)?;
        Some((self.claims.owner(&header.name)?, json, replier))
    }

    /// Removes `name`'s address, if `key` owns the name.
    pub fn unregister(&mut self, name: &PeerName, key: PublicKey) -> Removal {
        match self.peers.get(name) {
            None => Removal::Unknown,
            Some(_) if self.claims.owner(name) != Some(key) => Removal::NotOwner,
            Some(_) => {
                self.remove(name);
                Removal::Done
            }
        }
    }

    /// Drops every registration not renewed in time (and forgets claim counts older than the
    /// window); returns the names dropped.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerName> {
        self.budget.sweep(now);
        let mut lapsed = Vec::new();
        for name in self.deadlines.due(now) {
            let Some(entry) = self.peers.get_mut(&name) else {
                continue;
            };
            if entry.expires > now {
                // Renewed since it was placed: placed again, by its new deadline.
                entry.bucket = self.deadlines.insert(name, entry.expires);
                continue;
            }
            // Out of the deadlines already: taken by `due`.
            entry.bucket = Bucket::MAX;
            self.remove(&name);
            lapsed.push(name);
        }
        lapsed
    }

    fn remove(&mut self, name: &PeerName) {
        if let Some(entry) = self.peers.remove(name) {
            self.deadlines.remove(name, entry.bucket);
            let ip = entry.addr.ip();
            if let Some(count) = self.per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
    }

    /// Whether `key` may give up `name` for good (its address and its claim). On `Done` the
    /// release's [`Op`] goes to the store; the name is released once it is written
    /// ([`Registry::written`]).
    pub fn release(&mut self, name: &PeerName, key: PublicKey) -> Removal {
        match self.claims.owner(name) {
            None => Removal::Unknown,
            Some(owner) if owner != key => Removal::NotOwner,
            Some(_) => {
                self.ops.push(Op::Release { name: *name, key });
                Removal::Done
            }
        }
    }

    /// A live registration; one past its time is as good as gone, even before `expire`.
    /// Without one, the key that claims the name, if any: who the name means even while its
    /// owner is offline.
    pub fn lookup(&self, name: &PeerName, now: Instant) -> Lookup {
        let live = self.peers.get(name).filter(|e| e.expires > now);
        match live.and_then(|e| self.info(name, e)) {
            Some(peer) => Lookup::Online(peer),
            None => match self.claims.owner(name) {
                Some(key) => Lookup::Offline(key),
                None => Lookup::Unknown,
            },
        }
    }

    /// Up to [`PEERS_PAGE_LEN`] peers sorted by name, starting after `after`, and the name to
    /// continue after if there are more.
    pub fn page(
        &self,
        after: Option<&PeerName>,
        now: Instant,
    ) -> (Vec<PeerInfo>, Option<PeerName>) {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = after.map_or(Unbounded, Excluded);
        let mut rest = self
            .peers
            .range((start, Unbounded))
            .filter(|(_, e)| e.expires > now);
        let peers: Vec<PeerInfo> = rest
            .by_ref()
            .take(PEERS_PAGE_LEN)
            .filter_map(|(name, entry)| self.info(name, entry))
            .collect();
        let next = match rest.next() {
            Some(_) => peers.last().map(|p| p.name),
            None => None,
        };
        (peers, next)
    }

    fn info(&self, name: &PeerName, entry: &Entry) -> Option<PeerInfo> {
        Some(PeerInfo {
            name: *name,
            addr: entry.addr,
            key: self.claims.owner(name)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::identity::Identity;
    use p2p_shared::registry_session::{self, PeerSession};

    const TTL: Duration = Duration::from_secs(60);

    const PER_IP: usize = 8;
    /// Limits that only the per-address one reaches in these tests.
    const LIMITS: NameLimits = NameLimits {
        per_address: PER_IP,
        per_prefix: 1_000,
        per_key: 1_000,
    };

    fn registry() -> Registry {
        Registry::new(Claims::default(), TTL, LIMITS, CAPACITY, Instant::now())
    }
    /// A different IP for each `i`, to stay under the per-IP limit.
    fn host(i: usize) -> SocketAddr {
        SocketAddr::from(([10, (i / 250) as u8, (i % 250) as u8, 1], 40000))
    }
    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }
    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }
    fn key() -> PublicKey {
        Identity::generate().public()
    }
    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn registrations_lapse_unless_renewed() {
        let mut r = registry();
        let (alice, bob) = (key(), key());
        let start = now();
        r.register(&name("alice"), addr(1), alice, None, start);
        r.register(&name("bob"), addr(2), bob, None, start);
        let half = start + TTL / 2;
        assert_eq!(
            r.register(&name("bob"), addr(2), bob, None, half),
            Registration::Refreshed
        );
        let later = start + TTL;
        assert!(
            matches!(r.lookup(&name("alice"), later), Lookup::Offline(_)),
            "lapsed, even before expire(): claimed, not online"
        );
        assert!(matches!(r.lookup(&name("bob"), later), Lookup::Online(_)));
        assert_eq!(r.page(None, later).0.len(), 1);
        assert_eq!(r.expire(later), vec![name("alice")]);
        // The name is still alice's: only her key may register it again.
        assert_eq!(
            r.register(&name("alice"), addr(3), bob, None, later),
            Registration::Taken
        );
        assert_eq!(
            r.register(&name("alice"), addr(3), alice, None, later),
            Registration::Added
        );
    }

    #[test]
    fn one_address_claims_a_bounded_number_of_new_names_per_hour() {
        let mut r = registry();
        let t = now();
        let here = addr(1);
        for i in 0..PER_IP {
            let (n, k) = (name(&format!("p{i}")), key());
            assert_eq!(r.register(&n, here, k, None, t), Registration::Added);
            assert_eq!(
                r.unregister(&n, k),
                Removal::Done,
                "leaving frees the place..."
            );
        }
        assert_eq!(
            r.register(&name("one-more"), here, key(), None, t),
            Registration::TooManyNewNames,
            "...but not the claim"
        );
        let other = SocketAddr::from(([127, 0, 0, 2], 1));
        assert_eq!(
            r.register(&name("one-more"), other, key(), None, t),
            Registration::Added
        );
        let later = t + crate::claim_budget::CLAIM_WINDOW;
        r.expire(later);
        assert_eq!(
            r.register(&name("next-hour"), here, key(), None, later),
            Registration::Added
        );
    }

    /// Squatting of issue 13: 60 addresses claimed 3,776 names, 64 each. A network shares
    /// one budget, and one key holds only so many names whatever its addresses.
    #[test]
    fn new_names_are_bounded_per_network_and_per_key() {
        let limits = NameLimits {
            per_address: PER_IP,
            per_prefix: 20,
            per_key: 2,
        };
        let mut r = Registry::new(Claims::default(), TTL, limits, CAPACITY, now());
        let t = now();
        let mut added = 0;
        for host in 1..=60u8 {
            for i in 0..PER_IP {
                let at = SocketAddr::from(([10, 1, 0, host], 1));
                let n = name(&format!("squat-{host}-{i}"));
                if r.register(&n, at, key(), None, t) == Registration::Added {
                    added += 1;
                }
            }
        }
        assert_eq!(added, 20, "one /24 claims its budget and no more");
        let elsewhere = SocketAddr::from(([10, 2, 0, 1], 1));
        assert_eq!(
            r.register(&name("alice"), elsewhere, key(), None, t),
            Registration::Added
        );
        let one_key = key();
        for (i, host) in [3u8, 4].into_iter().enumerate() {
            let at = SocketAddr::from(([10, host, 0, 1], 1));
            let n = name(&format!("mine-{i}"));
            assert_eq!(r.register(&n, at, one_key, None, t), Registration::Added);
        }
        let at = SocketAddr::from(([10, 5, 0, 1], 1));
        assert_eq!(
            r.register(&name("mine-2"), at, one_key, None, t),
            Registration::TooManyForKey
        );
        // Releasing one of its names (once written) gives the key room again.
        assert_eq!(r.release(&name("mine-0"), one_key), Removal::Done);
        let ops = r.take_ops();
        r.written(&ops, true);
        assert_eq!(
            r.register(&name("mine-2"), at, one_key, None, t),
            Registration::Added
        );
    }

    #[test]
    fn one_address_holds_a_bounded_number_of_names() {
        let mut r = registry();
        let t = now();
        for i in 0..PER_IP {
            let n = name(&format!("p{i}"));
            assert_eq!(
                r.register(&n, addr(i as u16), key(), None, t),
                Registration::Added
            );
        }
        let other = SocketAddr::from(([127, 0, 0, 2], 1));
        assert_eq!(
            r.register(&name("late"), addr(999), key(), None, t),
            Registration::TooManyFromHere
        );
        assert_eq!(
            r.register(&name("elsewhere"), other, key(), None, t),
            Registration::Added
        );
        // Lapsing frees the places (and after an hour, the new-name budget).
        let hour = crate::claim_budget::CLAIM_WINDOW;
        r.expire(t + hour);
        assert_eq!(
            r.register(&name("late"), addr(999), key(), None, t + hour),
            Registration::Added
        );
    }

    #[test]
    fn a_name_belongs_to_the_key_that_claimed_it() {
        let mut r = registry();
        let (alice, mallory) = (key(), key());
        assert_eq!(
            r.register(&name("alice"), addr(1), alice, None, now()),
            Registration::Added
        );
        assert_eq!(
            r.register(&name("alice"), addr(1), alice, None, now()),
            Registration::Refreshed
        );
        assert_eq!(
            r.register(&name("alice"), addr(2), mallory, None, now()),
            Registration::Taken
        );
        // The owner may move.
        assert_eq!(
            r.register(&name("alice"), addr(3), alice, None, now()),
            Registration::Added
        );
        let Lookup::Online(peer) = r.lookup(&name("alice"), now()) else {
            panic!("alice is online");
        };
        assert_eq!(peer.addr, addr(3));
    }

    #[test]
    fn an_offline_owner_keeps_the_name() {
        let mut r = registry();
        let (alice, mallory) = (key(), key());
        r.register(&name("alice"), addr(1), alice, None, now());
        assert_eq!(r.unregister(&name("alice"), mallory), Removal::NotOwner);
        assert_eq!(r.unregister(&name("alice"), alice), Removal::Done);
        // Offline, and still alice's: a lookup says whose.
        assert_eq!(r.lookup(&name("alice"), now()), Lookup::Offline(alice));
        assert_eq!(r.lookup(&name("nobody"), now()), Lookup::Unknown);
        assert_eq!(
            r.register(&name("alice"), addr(2), mallory, None, now()),
            Registration::Taken
        );
    }

    #[test]
    fn only_the_owner_releases_a_name_and_then_anyone_may_claim_it() {
        let mut r = registry();
        let (alice, bob) = (key(), key());
        r.register(&name("alice"), addr(1), alice, None, now());
        assert_eq!(r.release(&name("alice"), bob), Removal::NotOwner);
        assert_eq!(r.release(&name("alice"), alice), Removal::Done);
        assert!(
            matches!(r.lookup(&name("alice"), now()), Lookup::Online(_)),
            "until it is written"
        );
        let ops = r.take_ops();
        assert_eq!(
            ops.last(),
            Some(&Op::Release {
                name: name("alice"),
                key: alice,
            })
        );
        r.written(&ops, true);
        assert!(!matches!(
            r.lookup(&name("alice"), now()),
            Lookup::Online(_)
        ));
        assert_eq!(
            r.register(&name("alice"), addr(2), bob, None, now()),
            Registration::Added
        );
        assert_eq!(r.release(&name("nobody"), bob), Removal::Unknown);
    }

    #[test]
    fn pages_cover_everyone_once_in_name_order() {
        let mut r = registry();
        let total = PEERS_PAGE_LEN * 2 + 7;
        for i in 0..total {
            r.register(&name(&format!("p{i:04}")), host(i), key(), None, now());
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (peers, next) = r.page(after.as_ref(), now());
            assert!(peers.len() <= PEERS_PAGE_LEN);
            seen.extend(peers.into_iter().map(|p| p.name));
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen.len(), total);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn an_exact_page_has_no_next() {
        let mut r = registry();
        for i in 0..PEERS_PAGE_LEN {
            r.register(&name(&format!("p{i:04}")), host(i), key(), None, now());
        }
        let (peers, next) = r.page(None, now());
        assert_eq!(peers.len(), PEERS_PAGE_LEN);
        assert_eq!(next, None);
    }

    fn accepts(r: &mut Registry, peer: &mut PeerSession, at: Instant) -> bool {
        let (_, frame) = peer.request(b"{}");
        r.accept(&Header::parse(&frame).unwrap(), &frame, at)
            .is_some()
    }

    #[test]
    fn a_session_lasts_as_long_as_its_registration() {
        let mut r = registry();
        let alice = key();
        let start = now();
        let (mut first, session) = registry_session::pair(name("alice"));
        r.register(&name("alice"), addr(1), alice, Some(session), start);
        assert!(accepts(&mut r, &mut first, start));
        // Renewed and moved without a new session: the session stays.
        r.register(&name("alice"), addr(1), alice, None, start);
        r.register(&name("alice"), addr(2), alice, None, start);
        assert!(accepts(&mut r, &mut first, start));
        // A new session replaces it.
        let (mut second, session) = registry_session::pair(name("alice"));
        r.register(&name("alice"), addr(2), alice, Some(session), start);
        assert!(!accepts(&mut r, &mut first, start));
        assert!(accepts(&mut r, &mut second, start));
        // It ends with the registration: lapsed, or unregistered.
        assert!(!accepts(&mut r, &mut second, start + TTL));
        assert_eq!(r.unregister(&name("alice"), alice), Removal::Done);
        assert!(!accepts(&mut r, &mut second, start));
    }

    #[test]
    fn a_new_claim_waits_for_its_write_and_a_failed_write_undoes_its_registration() {
        let mut r = registry();
        let t = now();
        let (alice, bob) = (key(), key());
        assert_eq!(
            r.register(&name("alice"), addr(1), alice, None, t),
            Registration::Added
        );
        assert!(r.claim_unsaved(&name("alice")));
        let ops = r.take_ops();
        assert_eq!(
            ops,
            vec![Op::Claim {
                name: name("alice"),
                key: alice
            }]
        );
        assert!(r.take_ops().is_empty(), "each write is asked for once");
        assert_eq!(r.written(&ops, true), Vec::<PeerName>::new());
        assert!(!r.claim_unsaved(&name("alice")));

        assert_eq!(
            r.register(&name("bob"), addr(2), bob, None, t),
            Registration::Added
        );
        assert!(
            matches!(r.lookup(&name("bob"), t), Lookup::Online(_)),
            "listed before it is written"
        );
        let ops = r.take_ops();
        assert_eq!(r.written(&ops, false), vec![name("bob")]);
        assert!(
            !matches!(r.lookup(&name("bob"), t), Lookup::Online(_)),
            "not registered"
        );
        assert_eq!(
            r.register(&name("bob"), addr(3), key(), None, t),
            Registration::Added,
            "not claimed: the next key may have it"
        );
        assert!(
            matches!(r.lookup(&name("alice"), t), Lookup::Online(_)),
            "written before, kept"
        );
    }

    #[test]
    fn claims_the_disk_refused_do_not_count_against_their_address() {
        let mut r = registry();
        let t = now();
        for i in 0..PER_IP + 1 {
            let n = name(&format!("p{i}"));
            assert_eq!(r.register(&n, addr(1), key(), None, t), Registration::Added);
            let ops = r.take_ops();
            assert_eq!(r.written(&ops, false), vec![n]);
        }
    }

    #[test]
    fn the_sweep_takes_registrations_in_deadline_order_and_renewals_move_them() {
        let mut r = registry();
        let t = now();
        let (a, b) = (key(), key());
        r.register(&name("a"), addr(1), a, None, t);
        r.register(&name("b"), addr(2), b, None, t + TTL / 4);
        // a renews after b registered: b lapses first.
        r.register(&name("a"), addr(1), a, None, t + TTL / 2);
        assert_eq!(
            r.expire(t + TTL - Duration::from_secs(1)),
            Vec::<PeerName>::new()
        );
        assert_eq!(r.expire(t + TTL + TTL / 4), vec![name("b")]);
        assert_eq!(r.expire(t + TTL + TTL / 2), vec![name("a")]);
        assert_eq!(r.deadlines.len(), 0);
        // Moving and unregistering leave no stale deadline behind.
        r.register(&name("a"), addr(1), a, None, t);
        r.register(&name("a"), addr(3), a, None, t);
        assert_eq!(r.deadlines.len(), 1);
        r.unregister(&name("a"), a);
        assert_eq!(r.deadlines.len(), 0);
    }

    #[test]
    fn a_release_written_late_leaves_another_keys_new_claim_alone() {
        let mut r = registry();
        let t = now();
        let (a, b) = (key(), key());
        r.register(&name("alice"), addr(1), a, None, t);
        let claim_a = r.take_ops();
        assert_eq!(r.release(&name("alice"), a), Removal::Done);
        let release_a = r.take_ops();
        // A's claim is lost; B claims the name; then A's release is reported written.
        r.written(&claim_a, false);
        assert_eq!(
            r.register(&name("alice"), addr(2), b, None, t),
            Registration::Added
        );
        let claim_b = r.take_ops();
        r.written(&release_a, true);
        r.written(&claim_b, true);
        assert!(matches!(r.lookup(&name("alice"), t), Lookup::Online(p) if p.key == b));
        assert_eq!(
            r.register(&name("alice"), addr(3), key(), None, t),
            Registration::Taken
        );
    }
}
