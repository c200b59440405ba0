//! The peer names a user may want Tab to complete: registered peers last seen by `listpeer`,
//! and everyone we are chatting with.
//!
//! This is the one piece of state shared across threads through a lock rather than owned by
//! a task: rustyline asks for completions synchronously on its own thread, where it cannot
//! wait on the broker. The lock is held only to copy a small set in or out.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use p2p_shared::{PeerInfo, PeerName};

/// The most registered names kept for completion: what one listing keeps
/// (`registry_client::MAX_LISTED`), so a registry cannot make completion hold more.
pub const MAX_NAMES: usize = crate::registry_client::MAX_LISTED;

#[derive(Clone, Default)]
pub struct Names {
    inner: Arc<Mutex<Sets>>,
}

#[derive(Default)]
struct Sets {
    registered: BTreeSet<PeerName>,
    chatting: BTreeSet<PeerName>,
}

impl Names {
    /// Replaces the registered names with a fresh `listpeer` result, keeping at most
    /// [`MAX_NAMES`] of them.
    pub fn set_registered(&self, peers: &[PeerInfo]) {
        self.with(|s| s.registered = peers.iter().take(MAX_NAMES).map(|p| p.name).collect());
    }

    /// Replaces the names of open chats.
    pub fn set_chatting<'a>(&self, peers: impl IntoIterator<Item = &'a PeerName>) {
        self.with(|s| s.chatting = peers.into_iter().cloned().collect());
    }

    /// Every known name starting with `prefix`, sorted, once each.
    pub fn starting_with(&self, prefix: &str) -> Vec<String> {
        self.with(|s| {
            s.registered
                .union(&s.chatting)
                .filter(|n| n.as_str().starts_with(prefix))
                .map(|n| n.to_string())
                .collect()
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Sets) -> T) -> T {
        // A panic elsewhere while holding the lock cannot leave these sets inconsistent
        // (each update is one assignment), so a poisoned lock is still usable.
        let mut sets = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut sets)
    }
}

/// Names with bob, bea and carol registered: the tests' fixture, here and in `terminal.rs`.
#[cfg(test)]
pub(crate) fn sample() -> Names {
    let names = Names::default();
    let info = |n: &str| PeerInfo {
        name: n.parse().unwrap(),
        addr: "127.0.0.1:1".parse().unwrap(),
        key: p2p_shared::identity::Identity::generate().public(),
    };
    names.set_registered(&[info("bob"), info("bea"), info("carol")]);
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_from_both_sources_once() {
        let names = sample();
        let bob: PeerName = "bob".parse().unwrap();
        let bert: PeerName = "bert".parse().unwrap();
        names.set_chatting([&bob, &bert]);
        assert_eq!(names.starting_with("b"), vec!["bea", "bert", "bob"]);
        assert_eq!(names.starting_with("c"), vec!["carol"]);
        assert!(names.starting_with("z").is_empty());
    }

    #[test]
    fn at_most_the_bound_of_registered_names_is_kept() {
        let names = Names::default();
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
