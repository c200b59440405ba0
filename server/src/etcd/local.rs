//! What one registry instance on etcd keeps to itself: the registry sessions it opened and
//! the lease of each registration it made. (The claim rules' counts are in etcd, shared by
//! every instance: `register.rs`.)
//!
//! A registry session is a pair of symmetric keys agreed between one peer and one instance;
//! sharing it through etcd would put every peer's session keys in the store, so it stays
//! here, and a peer that fails over to another instance opens a new session there (one
//! signed `register`). The lease is kept so that a renewal through this instance is one
//! keepalive rather than a new lease and a write. Both are soft state: losing them (a
//! restart) costs a peer one signed registration.
//!
//! Rules only, no I/O, the time a parameter; the etcd threads (`etcd.rs`) hold it behind a
//! lock for the few map operations of each request, never across a call to etcd.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use p2p_shared::identity::PublicKey;
use p2p_shared::registry_session::{RegistrySession, Replier};
use p2p_shared::wire::frame::RegistryRequestHeader as Header;
use p2p_shared::PeerName;

/// A registration this instance made.
struct Entry {
    key: PublicKey,
    addr: SocketAddr,
    lease: i64,
    expires: Instant,
    session: Option<RegistrySession>,
}

pub struct Local {
    entries: HashMap<PeerName, Entry>,
    capacity: usize,
}

impl Local {
    /// At most `capacity` registrations remembered.
    pub fn new(capacity: usize) -> Local {
        Local {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// The lease of a live registration of `name` by `key` at `addr` made here: renewing it
    /// is all a renewal takes.
    pub fn lease(
        &self,
        name: &PeerName,
        key: PublicKey,
        addr: SocketAddr,
        now: Instant,
    ) -> Option<i64> {
        let entry = self.entries.get(name)?;
        (entry.key == key && entry.addr == addr && entry.expires > now).then_some(entry.lease)
    }

    /// The lease of `name` was renewed until `expires`, with a new `session` if one came.
    pub fn renewed(&mut self, name: &PeerName, session: Option<RegistrySession>, expires: Instant) {
        if let Some(entry) = self.entries.get_mut(name) {
            entry.expires = expires;
            if session.is_some() {
                entry.session = session;
            }
        }
    }

    /// Records a registration made here. A registration this instance cannot remember (it
    /// holds `capacity` live ones) is made all the same, without a session: the peer signs
    /// its requests instead.
    pub fn registered(
        &mut self,
        name: PeerName,
        (key, addr): (PublicKey, SocketAddr),
        lease: i64,
        session: Option<RegistrySession>,
        ttl: Duration,
        now: Instant,
    ) {
        let kept = self
            .entries
            .remove(&name)
            .and_then(|old| match old.key == key {
                true => old.session,
                false => None,
            });
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, e| e.expires > now);
        }
        if self.entries.len() >= self.capacity {
            return;
        }
        let entry = Entry {
            key,
            addr,
            lease,
            expires: now + ttl,
            session: session.or(kept),
        };
        self.entries.insert(name, entry);
    }

    /// Forgets `name` (unregistered or released).
    pub fn forget(&mut self, name: &PeerName) {
        self.entries.remove(name);
    }

    /// Accepts a request in the registry session of `header`'s name, as
    /// `Registry::accept` does.
    pub fn accept(
        &mut self,
        header: &Header,
        frame: &[u8],
        now: Instant,
    ) -> Option<(PublicKey, Vec<u8>, Replier)> {
        let entry = self
            .entries
            .get_mut(&header.name)
            .filter(|e| e.expires > now)?;
        let (json, replier) = entry.session.as_mut()?.accept(header, frame)?;
        Some((entry.key, json, replier))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::identity::Identity;

    #[test]
    fn a_lease_is_renewed_only_for_the_same_key_and_address_while_live() {
        let mut local = Local::new(10);
        let (name, key) = ("alice".parse().unwrap(), Identity::generate().public());
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let now = Instant::now();
        let ttl = Duration::from_secs(3);
        local.registered(name, (key, addr), 7, None, ttl, now);
        assert_eq!(local.lease(&name, key, addr, now), Some(7));
        let other = Identity::generate().public();
        assert_eq!(local.lease(&name, other, addr, now), None);
        assert_eq!(
            local.lease(&name, key, "127.0.0.1:2".parse().unwrap(), now),
            None
        );
        assert_eq!(local.lease(&name, key, addr, now + ttl), None, "lapsed");
    }

    #[test]
    fn the_entries_are_bounded() {
        let mut local = Local::new(2);
        let key = Identity::generate().public();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let now = Instant::now();
        let ttl = Duration::from_secs(3);
        for n in ["a", "b", "c"] {
            local.registered(n.parse().unwrap(), (key, addr), 1, None, ttl, now);
        }
        assert_eq!(local.entries.len(), 2);
    }
}
