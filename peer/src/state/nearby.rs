//! The peers heard on the LAN (`--lan`), as state: what an announcement, a check of one, a
//! goodbye and a peer's death do to the list `nearby` shows. Without I/O; `lan.rs` listens
//! and checks.
//!
//! An announcement is a claim: a name, a key and addresses anyone on the LAN could send. It
//! becomes an entry at once (a hint, shown `(unverified)` unless a pin vouches for the name's
//! key), and the LAN task checks it with a peer exchange expecting that key: a reply signed by
//! it from one of the addresses proves the key is there (and puts the peer in the book, from
//! which `chat request NAME` finds it with no registry). An entry none of whose addresses
//! answers with its key is dropped. An entry leaves on the peer's goodbye (mDNS), or when the
//! book's checks find its key dead (`book.rs`: [`super::book::DEAD_AFTER`] missed checks,
//! one every `--exchange-every`). At most [`MAX_NEARBY`] entries: a LAN is not the world, and
//! a flood of announcements must not grow the peer.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use p2p_shared::identity::PublicKey;
use p2p_shared::PeerName;

use super::{Context, Effect, PeerState};
use crate::event::{Event, NearbyEntry, PeerKey};

/// The most entries kept; announcements of new instances beyond it are ignored.
pub const MAX_NEARBY: usize = 256;

/// The most addresses of one announcement tried.
pub const MAX_ADDRS: usize = 4;

/// The longest instance name kept (a DNS label is at most 63 bytes; this leaves room for
/// escapes).
pub const MAX_INSTANCE: usize = 255;

/// What one announcement on the LAN says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The DNS-SD instance's full name: what a goodbye names.
    pub instance: String,
    pub name: PeerName,
    pub key: PublicKey,
    /// Where to try, best first, at most [`MAX_ADDRS`].
    pub addrs: Vec<SocketAddr>,
}

/// One peer heard on the LAN.
#[derive(Clone, Debug, PartialEq)]
pub struct Heard {
    pub name: PeerName,
    pub key: PublicKey,
    /// The address that answered with the key, or the first announced until one did.
    pub addr: SocketAddr,
    /// Every address announced, best first.
    pub addrs: Vec<SocketAddr>,
    /// Whether a reply signed by the key came from `addr`.
    pub reached: bool,
    /// When it was last announced or reached.
    pub seen: DateTime<Utc>,
}

/// The peers heard on the LAN, by instance name.
#[derive(Default)]
pub struct Nearby {
    heard: BTreeMap<String, Heard>,
}

impl Nearby {
    /// Takes `a`, heard at `now` by the peer whose key is `me`: the addresses to check, none
    /// if it is our own, the list is full, or it says nothing new of a peer reached already.
    pub fn announced(
        &mut self,
        a: Announcement,
        me: &PublicKey,
        now: DateTime<Utc>,
    ) -> Vec<SocketAddr> {
        if a.key == *me || a.addrs.is_empty() || a.instance.len() > MAX_INSTANCE {
            return Vec::new();
        }
        let mut addrs = a.addrs;
        addrs.truncate(MAX_ADDRS);
        let full = self.heard.len() >= MAX_NEARBY;
        match self.heard.get_mut(&a.instance) {
            Some(h) if h.reached && h.key == a.key && addrs.contains(&h.addr) => {
                h.seen = now;
                h.name = a.name;
                Vec::new()
            }
            Some(h) => {
                *h = Heard::new(a.name, a.key, addrs.clone(), now);
                addrs
            }
            None if full => Vec::new(),
            None => {
                let heard = Heard::new(a.name, a.key, addrs.clone(), now);
                self.heard.insert(a.instance, heard);
                addrs
            }
        }
    }

    /// A reply signed by `key` came from `addr`, one of the addresses `instance` announced:
    /// the entry, if this made it reached.
    pub fn reached(
        &mut self,
        instance: &str,
        key: &PublicKey,
        addr: SocketAddr,
        now: DateTime<Utc>,
    ) -> Option<Heard> {
        let h = self.heard.get_mut(instance)?;
        if h.key != *key || !h.addrs.contains(&addr) {
            return None;
        }
        let new = !h.reached || h.addr != addr;
        h.addr = addr;
        h.reached = true;
        h.seen = now;
        new.then(|| h.clone())
    }

    /// No address `instance` announced answered with its key: the claim is dropped, unless
    /// it was reached meanwhile.
    pub fn unreached(&mut self, instance: &str, key: &PublicKey) {
        if self
            .heard
            .get(instance)
            .is_some_and(|h| !h.reached && h.key == *key)
        {
            self.heard.remove(instance);
        }
    }

    /// The instance said goodbye: its entry, if there was one.
    pub fn withdrawn(&mut self, instance: &str) -> Option<Heard> {
        self.heard.remove(instance)
    }

    /// `key` stopped answering the book's checks: the entries it had.
    pub fn dead(&mut self, key: &PublicKey) -> Vec<Heard> {
        let gone: Vec<String> = self
            .heard
            .iter()
            .filter(|(_, h)| h.key == *key)
            .map(|(instance, _)| instance.clone())
            .collect();
        gone.iter().filter_map(|i| self.heard.remove(i)).collect()
    }

    /// Every entry, sorted by name.
    pub fn list(&self) -> Vec<Heard> {
        let mut all: Vec<Heard> = self.heard.values().cloned().collect();
        all.sort_by_key(|h| (h.name, h.key, h.addr));
        all
    }
}

impl Heard {
    fn new(name: PeerName, key: PublicKey, addrs: Vec<SocketAddr>, now: DateTime<Utc>) -> Heard {
        Heard {
            name,
            key,
            addr: addrs[0],
            addrs,
            reached: false,
            seen: now,
        }
    }
}

impl PeerState {
    /// An announcement heard on the LAN: the addresses to check it at (`lan.rs`).
    pub fn nearby_announced(&mut self, a: Announcement, cx: &Context) -> Vec<SocketAddr> {
        let me = self.origin.identity.public();
        self.nearby.announced(a, &me, cx.utc)
    }

    /// The check of `instance` found `key` at `addr`.
    pub fn nearby_reached(
        &mut self,
        instance: &str,
        key: &PublicKey,
        addr: SocketAddr,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) {
        if let Some(h) = self.nearby.reached(instance, key, addr, cx.utc) {
            let found = Event::NearbyFound {
                peer: h.name,
                addr: h.addr,
                key: PeerKey(h.key),
                verified: self.pins.vouches(cx.namespace, &h.name, &h.key),
            };
            fx.push(Effect::Show(found.into()));
        }
    }

    /// The check of `instance` found nobody with `key`.
    pub fn nearby_unreached(&mut self, instance: &str, key: &PublicKey) {
        self.nearby.unreached(instance, key);
    }

    /// `instance` said goodbye on the LAN.
    pub fn nearby_withdrawn(&mut self, instance: &str, fx: &mut Vec<Effect>) {
        if let Some(h) = self.nearby.withdrawn(instance) {
            gone(h, "said goodbye", fx);
        }
    }

    /// The book found `key` dead: it leaves `nearby` too.
    pub(super) fn nearby_dead(&mut self, key: &PublicKey, fx: &mut Vec<Effect>) {
        for h in self.nearby.dead(key) {
            gone(h, "stopped answering", fx);
        }
    }

    /// `nearby`: a name is verified if a pin here vouches for its key.
    pub fn nearby_entries(&self, cx: &Context) -> Vec<NearbyEntry> {
        let entries = self.nearby.list().into_iter();
        entries
            .map(|h| NearbyEntry {
                verified: self.pins.vouches(cx.namespace, &h.name, &h.key),
                name: h.name,
                addr: h.addr,
                key: h.key,
                reached: h.reached,
                seen: h.seen,
            })
            .collect()
    }
}

fn gone(h: Heard, why: &str, fx: &mut Vec<Effect>) {
    let gone = Event::NearbyGone {
        peer: h.name,
        key: PeerKey(h.key),
        why: why.to_string(),
    };
    fx.push(Effect::Show(gone.into()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::identity::Identity;

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], 4000))
    }

    fn announcement(instance: &str, key: PublicKey, addrs: Vec<SocketAddr>) -> Announcement {
        Announcement {
            instance: instance.into(),
            name: "bob".parse().unwrap(),
            key,
            addrs,
        }
    }

    #[test]
    fn our_own_announcement_is_ignored() {
        let me = Identity::generate().public();
        let mut nearby = Nearby::default();
        let a = announcement("me", me, vec![addr(1)]);
        assert!(nearby.announced(a, &me, Utc::now()).is_empty());
        assert!(nearby.list().is_empty());
    }

    #[test]
    fn a_claim_is_checked_then_reached_once_and_not_checked_again() {
        let (me, bob) = (Identity::generate().public(), Identity::generate().public());
        let mut nearby = Nearby::default();
        let a = announcement("bob", bob, vec![addr(2), addr(3)]);
        assert_eq!(
            nearby.announced(a.clone(), &me, Utc::now()),
            vec![addr(2), addr(3)]
        );
        assert!(!nearby.list()[0].reached);
        // Another key answering there does not make the claim true.
        let other = Identity::generate().public();
        assert!(nearby.reached("bob", &other, addr(2), Utc::now()).is_none());
        // Nor an address it did not announce.
        assert!(nearby.reached("bob", &bob, addr(9), Utc::now()).is_none());
        let h = nearby.reached("bob", &bob, addr(3), Utc::now()).unwrap();
        assert_eq!(h.addr, addr(3));
        assert!(nearby.reached("bob", &bob, addr(3), Utc::now()).is_none());
        assert!(nearby.announced(a, &me, Utc::now()).is_empty());
        // The same instance with another key is a new claim, checked again.
        let b = announcement("bob", other, vec![addr(3)]);
        assert_eq!(nearby.announced(b, &me, Utc::now()), vec![addr(3)]);
        assert!(!nearby.list()[0].reached);
    }

    #[test]
    fn an_unreached_claim_is_dropped_a_reached_one_is_not() {
        let (me, bob) = (Identity::generate().public(), Identity::generate().public());
        let mut nearby = Nearby::default();
        nearby.announced(announcement("bob", bob, vec![addr(2)]), &me, Utc::now());
        nearby.announced(announcement("carl", bob, vec![addr(3)]), &me, Utc::now());
        nearby.reached("carl", &bob, addr(3), Utc::now());
        nearby.unreached("bob", &bob);
        nearby.unreached("carl", &bob);
        let left: Vec<SocketAddr> = nearby.list().iter().map(|h| h.addr).collect();
        assert_eq!(left, vec![addr(3)]);
    }

    #[test]
    fn goodbye_and_death_remove_entries() {
        let (me, bob) = (Identity::generate().public(), Identity::generate().public());
        let carl = Identity::generate().public();
        let mut nearby = Nearby::default();
        nearby.announced(announcement("bob", bob, vec![addr(2)]), &me, Utc::now());
        nearby.announced(announcement("carl", carl, vec![addr(3)]), &me, Utc::now());
        assert!(nearby.withdrawn("bob").is_some());
        assert!(nearby.withdrawn("bob").is_none());
        assert_eq!(nearby.dead(&carl).len(), 1);
        assert!(nearby.list().is_empty());
    }

    #[test]
    fn the_list_is_bounded_and_addresses_too() {
        let me = Identity::generate().public();
        let mut nearby = Nearby::default();
        for i in 0..MAX_NEARBY + 10 {
            let key = Identity::generate().public();
            let many = (0..20).map(addr).collect();
            let checks = nearby.announced(announcement(&i.to_string(), key, many), &me, Utc::now());
            assert_eq!(checks.len(), if i < MAX_NEARBY { MAX_ADDRS } else { 0 });
        }
        assert_eq!(nearby.list().len(), MAX_NEARBY);
        let long = announcement(&"x".repeat(MAX_INSTANCE + 1), me, vec![addr(1)]);
        let other = Identity::generate().public();
        assert!(Nearby::default()
            .announced(long, &other, Utc::now())
            .is_empty());
    }
}
