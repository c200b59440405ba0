//! The registry's state and rules: which name is at which address, and which key owns it.
//!
//! A name belongs to the key that first claimed it ([`Claims`], kept on disk). Registering
//! with that key adds or moves the name's address; any other key is refused, online owner or
//! not. Only the owner's key can unregister the address or release the name. The transport
//! has already checked that each request was signed by the key it names.
//!
//! Rules only, no network I/O, so each rule is unit-tested here. The broker task owns the one
//! instance.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use p2p_shared::identity::PublicKey;
use p2p_shared::message::PEERS_PAGE_LEN;
use p2p_shared::{PeerInfo, PeerName};

use crate::store::{Claims, StoreError, MAX_CLAIMS};

/// The most registrations (names with an address) held at once.
pub const CAPACITY: usize = 250_000;

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

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: SocketAddr,
    key: PublicKey,
}

pub struct Registry {
    claims: Claims,
    // A BTreeMap keeps names sorted, which makes `listpeer` pages cheap and stable.
    peers: BTreeMap<PeerName, Entry>,
}

impl Registry {
    pub fn new(claims: Claims) -> Registry {
        Registry {
            claims,
            peers: BTreeMap::new(),
        }
    }

    /// Registers `name` at `addr` for `key`, claiming the name if it is free.
    pub fn register(
        &mut self,
        name: &PeerName,
        addr: SocketAddr,
        key: PublicKey,
    ) -> Result<Registration, StoreError> {
        match self.claims.owner(name) {
            Some(owner) if owner != key => return Ok(Registration::Taken),
            Some(_) => {}
            None if self.claims.len() >= MAX_CLAIMS => return Ok(Registration::Full),
            None => self.claims.claim(name, key)?,
        }
        let full = self.peers.len() >= CAPACITY;
        Ok(match self.peers.get_mut(name) {
            Some(entry) if entry.addr == addr => Registration::Refreshed,
            Some(entry) => {
                entry.addr = addr;
                Registration::Added
            }
            None if full => Registration::Full,
            None => {
                self.peers.insert(name.clone(), Entry { addr, key });
                Registration::Added
            }
        })
    }

    /// Removes `name`'s address, if `key` owns the name.
    pub fn unregister(&mut self, name: &PeerName, key: PublicKey) -> Removal {
        match self.peers.get(name) {
            None => Removal::Unknown,
            Some(entry) if entry.key != key => Removal::NotOwner,
            Some(_) => {
                self.peers.remove(name);
                Removal::Done
            }
        }
    }

    /// Gives up `name` for good (its address and its claim), if `key` owns it.
    pub fn release(&mut self, name: &PeerName, key: PublicKey) -> Result<Removal, StoreError> {
        match self.claims.owner(name) {
            None => Ok(Removal::Unknown),
            Some(owner) if owner != key => Ok(Removal::NotOwner),
            Some(_) => {
                self.claims.release(name)?;
                self.peers.remove(name);
                Ok(Removal::Done)
            }
        }
    }

    pub fn lookup(&self, name: &PeerName) -> Option<PeerInfo> {
        self.peers.get(name).map(|e| info(name, e))
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
            .map(|(name, entry)| info(name, entry))
            .collect();
        let next = match rest.next() {
            Some(_) => peers.last().map(|p| p.name.clone()),
            None => None,
        };
        (peers, next)
    }
}

fn info(name: &PeerName, entry: &Entry) -> PeerInfo {
    PeerInfo {
        name: name.clone(),
        addr: entry.addr,
        key: entry.key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::identity::Identity;

    fn registry() -> Registry {
        Registry::new(Claims::in_memory().unwrap())
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

    #[test]
    fn a_name_belongs_to_the_key_that_claimed_it() {
        let mut r = registry();
        let (alice, mallory) = (key(), key());
        assert_eq!(
            r.register(&name("alice"), addr(1), alice).unwrap(),
            Registration::Added
        );
        assert_eq!(
            r.register(&name("alice"), addr(1), alice).unwrap(),
            Registration::Refreshed
        );
        assert_eq!(
            r.register(&name("alice"), addr(2), mallory).unwrap(),
            Registration::Taken
        );
        // The owner may move.
        assert_eq!(
            r.register(&name("alice"), addr(3), alice).unwrap(),
            Registration::Added
        );
        assert_eq!(r.lookup(&name("alice")).unwrap().addr, addr(3));
    }

    #[test]
    fn an_offline_owner_keeps_the_name() {
        let mut r = registry();
        let (alice, mallory) = (key(), key());
        r.register(&name("alice"), addr(1), alice).unwrap();
        assert_eq!(r.unregister(&name("alice"), mallory), Removal::NotOwner);
        assert_eq!(r.unregister(&name("alice"), alice), Removal::Done);
        assert_eq!(r.lookup(&name("alice")), None);
        assert_eq!(
            r.register(&name("alice"), addr(2), mallory).unwrap(),
            Registration::Taken
        );
    }

    #[test]
    fn only_the_owner_releases_a_name_and_then_anyone_may_claim_it() {
        let mut r = registry();
        let (alice, bob) = (key(), key());
        r.register(&name("alice"), addr(1), alice).unwrap();
        assert_eq!(r.release(&name("alice"), bob).unwrap(), Removal::NotOwner);
        assert_eq!(r.release(&name("alice"), alice).unwrap(), Removal::Done);
        assert_eq!(r.lookup(&name("alice")), None);
        assert_eq!(
            r.register(&name("alice"), addr(2), bob).unwrap(),
            Registration::Added
        );
        assert_eq!(r.release(&name("nobody"), bob).unwrap(), Removal::Unknown);
    }

    #[test]
    fn pages_cover_everyone_once_in_name_order() {
        let mut r = registry();
        let total = PEERS_PAGE_LEN * 2 + 7;
        for i in 0..total {
            r.register(&name(&format!("p{i:04}")), addr(i as u16), key())
                .unwrap();
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
        let mut r = registry();
        for i in 0..PEERS_PAGE_LEN {
            r.register(&name(&format!("p{i:04}")), addr(i as u16), key())
                .unwrap();
        }
        let (peers, next) = r.page(None);
        assert_eq!(peers.len(), PEERS_PAGE_LEN);
        assert_eq!(next, None);
    }
}
