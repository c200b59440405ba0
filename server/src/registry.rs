//! The registry's state: which name is registered at which address.
//!
//! Plain data and rules, no I/O, so every rule is unit-tested here. The broker task owns the
//! one instance; nothing else touches it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use p2p_shared::message::PEERS_PAGE_LEN;
use p2p_shared::{PeerInfo, PeerName};

/// The most registrations held at once; beyond it `register` is refused with `registry_full`.
pub const CAPACITY: usize = 250_000;

/// What a registration attempt found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The name was free and is now registered.
    Added,
    /// The name was already registered at this address; nothing changed.
    Refreshed,
    /// Another address holds the name. Whether that holder is still alive is for the caller
    /// to find out (it takes network I/O, which the state does not do).
    HeldAt(SocketAddr),
    /// The registry holds [`CAPACITY`] names.
    Full,
}

#[derive(Debug, Default)]
pub struct Registry {
    // A BTreeMap keeps names sorted, which makes `listpeer` pages cheap and stable.
    peers: BTreeMap<PeerName, SocketAddr>,
}

impl Registry {
    /// Registers `name` at `addr` if the name is free or already at `addr`.
    pub fn claim(&mut self, name: &PeerName, addr: SocketAddr) -> Claim {
        match self.peers.get(name) {
            Some(&held) if held == addr => Claim::Refreshed,
            Some(&held) => Claim::HeldAt(held),
            None if self.peers.len() >= CAPACITY => Claim::Full,
            None => {
                self.peers.insert(name.clone(), addr);
                Claim::Added
            }
        }
    }

    /// Moves `name` from `stale` (found dead) to `addr`, unless it changed hands meanwhile.
    pub fn replace(&mut self, name: &PeerName, stale: SocketAddr, addr: SocketAddr) -> Claim {
        match self.peers.get_mut(name) {
            Some(held) if *held == stale => {
                *held = addr;
                Claim::Added
            }
            _ => self.claim(name, addr),
        }
    }

    /// Removes `name` if it is registered at `addr`. Returns whether it was.
    pub fn release(&mut self, name: &PeerName, addr: SocketAddr) -> bool {
        if self.peers.get(name) == Some(&addr) {
            self.peers.remove(name);
            true
        } else {
            false
        }
    }

    pub fn lookup(&self, name: &PeerName) -> Option<SocketAddr> {
        self.peers.get(name).copied()
    }

    /// Up to [`PEERS_PAGE_LEN`] peers sorted by name, starting after `after`, and the name to
    /// continue after if there are more.
    pub fn page(&self, after: Option<&PeerName>) -> (Vec<PeerInfo>, Option<PeerName>) {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = after.map_or(Unbounded, Excluded);
        let mut rest = self.peers.range((start, Unbounded));
        let peers: Vec<PeerInfo> = rest
            .by_ref()
            .take(PEERS_PAGE_LEN)
            .map(|(name, &addr)| PeerInfo {
                name: name.clone(),
                addr,
            })
            .collect();
        let next = match rest.next() {
            Some(_) => peers.last().map(|p| p.name.clone()),
            None => None,
        };
        (peers, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }
    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_name_is_held_by_one_address() {
        let mut r = Registry::default();
        assert_eq!(r.claim(&name("alice"), addr(1)), Claim::Added);
        assert_eq!(r.claim(&name("alice"), addr(1)), Claim::Refreshed);
        assert_eq!(r.claim(&name("alice"), addr(2)), Claim::HeldAt(addr(1)));
        assert_eq!(r.lookup(&name("alice")), Some(addr(1)));
    }

    #[test]
    fn a_stale_holder_is_replaced_only_if_still_there() {
        let mut r = Registry::default();
        r.claim(&name("alice"), addr(1));
        assert_eq!(r.replace(&name("alice"), addr(1), addr(2)), Claim::Added);
        assert_eq!(r.lookup(&name("alice")), Some(addr(2)));
        // A second racer that also found addr(1) dead must not take it from addr(2).
        assert_eq!(
            r.replace(&name("alice"), addr(1), addr(3)),
            Claim::HeldAt(addr(2))
        );
        // If the name was released meanwhile, the racer simply gets it.
        r.release(&name("alice"), addr(2));
        assert_eq!(r.replace(&name("alice"), addr(1), addr(3)), Claim::Added);
    }

    #[test]
    fn only_the_holders_address_releases_a_name() {
        let mut r = Registry::default();
        r.claim(&name("alice"), addr(1));
        assert!(!r.release(&name("alice"), addr(2)));
        assert!(!r.release(&name("bob"), addr(1)));
        assert!(r.release(&name("alice"), addr(1)));
        assert_eq!(r.lookup(&name("alice")), None);
    }

    #[test]
    fn pages_cover_everyone_once_in_name_order() {
        let mut r = Registry::default();
        let total = PEERS_PAGE_LEN * 2 + 7;
        for i in 0..total {
            r.claim(&name(&format!("p{i:04}")), addr(i as u16));
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (peers, next) = r.page(after.as_ref());
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
        let mut r = Registry::default();
        for i in 0..PEERS_PAGE_LEN {
            r.claim(&name(&format!("p{i:04}")), addr(i as u16));
        }
        let (peers, next) = r.page(None);
        assert_eq!(peers.len(), PEERS_PAGE_LEN);
        assert_eq!(next, None);
    }
}
