//! The words a user may want Tab to complete: peer names (registered peers last seen by
//! `listpeer`, everyone we are chatting with), the peers whose chat requests wait for an
//! answer, and the fingerprint a peer last offered when its key changed (what `trust` takes).
//!
//! This is the one piece of state shared across threads through a lock rather than owned by
//! a task: rustyline asks for completions synchronously on its own thread, where it cannot
//! wait on the broker. The lock is held only to copy a small set in or out. The broker keeps
//! it up to date from the events it shows ([`Names::note`]), so no workflow has to know that
//! completion exists.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use p2p_shared::{PeerInfo, PeerName};

use crate::event::Event;

/// The most registered names kept for completion: what one listing keeps
/// (`registry_client::MAX_LISTED`), so a registry cannot make completion hold more.
pub const MAX_NAMES: usize = crate::registry_client::MAX_LISTED;

/// The most requesters and offered fingerprints kept: more than the requests that may wait
/// at once (`state::incoming`), so every pending one can be completed.
const MAX_PENDING: usize = 256;

#[derive(Clone)]
pub struct Names {
    inner: Arc<Mutex<Sets>>,
}

struct Sets {
    /// Our own name: never offered (nobody chats with themselves).
    own: PeerName,
    registered: BTreeSet<PeerName>,
    chatting: BTreeSet<PeerName>,
    requesting: BTreeSet<PeerName>,
    /// The fingerprint each peer offered when its key changed, until it is trusted.
    offered: BTreeMap<PeerName, String>,
}

impl Names {
    pub fn new(own: PeerName) -> Self {
        Names {
            inner: Arc::new(Mutex::new(Sets {
                own,
                registered: BTreeSet::new(),
                chatting: BTreeSet::new(),
                requesting: BTreeSet::new(),
                offered: BTreeMap::new(),
            })),
        }
    }

    /// Replaces the registered names with a fresh `listpeer` result, keeping at most
    /// [`MAX_NAMES`] of them.
    pub fn set_registered(&self, peers: &[PeerInfo]) {
        self.with(|s| s.registered = peers.iter().take(MAX_NAMES).map(|p| p.name).collect());
    }

    /// Replaces the names of open chats.
    pub fn set_chatting<'a>(&self, peers: impl IntoIterator<Item = &'a PeerName>) {
        self.with(|s| s.chatting = peers.into_iter().cloned().collect());
    }

    /// Learns from an event being shown: a request that arrived or ended, a key that changed
    /// or was trusted.
    pub fn note(&self, event: &Event) {
        self.with(|s| match event {
            Event::RequestArrived { peer, .. } if s.requesting.len() < MAX_PENDING => {
                s.requesting.insert(*peer);
            }
            Event::AcceptedChat { peer, .. }
            | Event::DeclinedChat { peer, .. }
            | Event::RequestExpired { peer, .. }
            | Event::RequestWithdrawn { peer, .. }
            | Event::RequestUnanswered { peer, .. } => {
                s.requesting.remove(peer);
            }
            Event::KeyChanged { peer, offered, .. }
                if s.offered.len() < MAX_PENDING || s.offered.contains_key(peer) =>
            {
                s.offered.insert(*peer, offered.clone());
            }
            Event::Trusted { peer, .. } => {
                s.offered.remove(peer);
            }
            _ => {}
        })
    }

    /// Every known peer name starting with `prefix`, sorted, once each; never our own.
    pub fn starting_with(&self, prefix: &str) -> Vec<String> {
        self.with(|s| {
            let known = s.registered.union(&s.chatting).collect::<BTreeSet<_>>();
            let known = known.into_iter().chain(s.requesting.iter());
            matching(known, &s.own, prefix)
        })
    }

    /// The peers whose chat requests wait for our answer, starting with `prefix`.
    pub fn requesters_starting_with(&self, prefix: &str) -> Vec<String> {
        self.with(|s| matching(s.requesting.iter(), &s.own, prefix))
    }

    /// The fingerprint `peer` offered when its key changed, if it is still untrusted.
    pub fn offered_fingerprint(&self, peer: &str) -> Option<String> {
        let peer: PeerName = peer.parse().ok()?;
        self.with(|s| s.offered.get(&peer).cloned())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Sets) -> T) -> T {
        // A panic elsewhere while holding the lock cannot leave these sets inconsistent
        // (each update is one assignment or one insertion), so a poisoned lock is usable.
        let mut sets = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut sets)
    }
}

/// The names of `names` that start with `prefix`, sorted and once each, without `own`.
fn matching<'a>(
    names: impl Iterator<Item = &'a PeerName>,
    own: &PeerName,
    prefix: &str,
) -> Vec<String> {
    let found: BTreeSet<&PeerName> = names
        .filter(|n| *n != own && n.as_str().starts_with(prefix))
        .collect();
    found.into_iter().map(|n| n.to_string()).collect()
}

/// Names as alice sees them, with alice, bob, bea and carol registered: the tests' fixture,
/// here and in `terminal/assist.rs`.
#[cfg(test)]
pub(crate) fn sample() -> Names {
    let names = Names::new("alice".parse().unwrap());
    let info = |n: &str| PeerInfo {
        name: n.parse().unwrap(),
        addr: "127.0.0.1:1".parse().unwrap(),
        key: p2p_shared::identity::Identity::generate().public(),
    };
    names.set_registered(&[info("alice"), info("bob"), info("bea"), info("carol")]);
    names
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::{PeerKey, Withdrawal};

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    fn arrived(peer: &str) -> Event {
        Event::RequestArrived {
            peer: name(peer),
            addr: "127.0.0.1:2".parse().unwrap(),
            expires_in: Duration::from_secs(60),
            key: PeerKey(p2p_shared::identity::Identity::generate().public()),
            verified: true,
            unanswered: false,
        }
    }

    #[test]
    fn completes_from_every_source_once_and_never_our_own_name() {
        let names = sample();
        names.set_chatting([&name("bob"), &name("bert")]);
        names.note(&arrived("dave"));
        assert_eq!(names.starting_with("b"), vec!["bea", "bert", "bob"]);
        assert_eq!(names.starting_with("d"), vec!["dave"]);
        assert!(names.starting_with("a").is_empty(), "our own name");
        assert!(names.starting_with("z").is_empty());
    }

    #[test]
    fn requesters_are_those_whose_requests_still_wait() {
        let names = sample();
        names.note(&arrived("dave"));
        names.note(&arrived("dana"));
        names.note(&arrived("erin"));
        assert_eq!(names.requesters_starting_with("d"), vec!["dana", "dave"]);
        names.note(&Event::AcceptedChat {
            peer: name("dave"),
            addr: "127.0.0.1:2".parse().unwrap(),
            key: PeerKey(p2p_shared::identity::Identity::generate().public()),
        });
        names.note(&Event::RequestWithdrawn {
            peer: name("erin"),
            why: Withdrawal::Replaced,
        });
        assert_eq!(names.requesters_starting_with(""), vec!["dana"]);
    }

    #[test]
    fn the_offered_fingerprint_is_kept_until_trusted() {
        let names = sample();
        names.note(&Event::KeyChanged {
            peer: name("bob"),
            pinned: "old".into(),
            offered: "new".into(),
            pinned_key: p2p_shared::identity::Identity::generate().public(),
            offered_key: p2p_shared::identity::Identity::generate().public(),
        });
        assert_eq!(names.offered_fingerprint("bob").as_deref(), Some("new"));
        names.note(&Event::Trusted {
            peer: name("bob"),
            key: PeerKey(p2p_shared::identity::Identity::generate().public()),
        });
        assert_eq!(names.offered_fingerprint("bob"), None);
        assert_eq!(names.offered_fingerprint("not a name!"), None);
    }

    #[test]
    fn at_most_the_bound_of_registered_names_is_kept() {
        let names = Names::new(name("alice"));
        let key = p2p_shared::identity::Identity::generate().public();
        let many: Vec<PeerInfo> = (0..MAX_NAMES + 10)
            .map(|i| PeerInfo {
                name: format!("p{i:05}").parse().unwrap(),
                addr: "127.0.0.1:1".parse().unwrap(),
                key,
            })
            .collect();
        names.set_registered(&many);
        assert_eq!(names.starting_with("p").len(), MAX_NAMES);
    }
}
