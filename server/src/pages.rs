//! The pages of the peer list, encoded once and sent to everyone who lists until the list
//! changes.
//!
//! A `list_peers` reply is mostly its page, and encoding a page of 256 peers to JSON (about
//! 60 µs here) costs the registry more than all else it does for that reply. Every peer that
//! lists gets the same page until a registration is added, moved or removed, and renewals,
//! most of the registry's traffic, change nothing. So the broker keeps the pages it encoded
//! for listings in a registry session (a signed listing, from a peer with no session, is
//! encoded each time) and drops them all at any change.
//!
//! A registration that lapses is removed by the broker's sweep (at most a second later), and
//! the pages with it; until then a kept page may still show it, where a fresh one would not.

use std::collections::HashMap;
use std::sync::Arc;

use p2p_shared::{Outcome, PeerInfo, PeerName};
use serde_json::value::RawValue;

/// The most pages kept: a listing reads the first pages far more often than the rest. When
/// more are asked for, all but the first are dropped, so that a peer asking for page after
/// page cannot push out the one everybody reads.
const MAX_KEPT: usize = 16;

/// One encoded page: the JSON of an [`Outcome::Peers`].
pub type EncodedPage = Arc<RawValue>;

#[derive(Default)]
pub struct Pages {
    /// By the name the page starts after (`None`: the first page).
    kept: HashMap<Option<PeerName>, EncodedPage>,
}

impl Pages {
    /// The page after `after`, encoded now from `page` unless it is kept.
    pub fn get(
        &mut self,
        after: Option<PeerName>,
        page: impl FnOnce(Option<&PeerName>) -> (Vec<PeerInfo>, Option<PeerName>),
    ) -> EncodedPage {
        if let Some(kept) = self.kept.get(&after) {
            return Arc::clone(kept);
        }
        let (peers, next) = page(after.as_ref());
        let encoded: EncodedPage = serde_json::value::to_raw_value(&Outcome::Peers { peers, next })
            .expect("pages always serialize")
            .into();
        if self.kept.len() >= MAX_KEPT {
            self.kept.retain(|after, _| after.is_none());
        }
        self.kept.insert(after, Arc::clone(&encoded));
        encoded
    }

    /// Forgets every page: the list changed.
    pub fn clear(&mut self) {
        self.kept.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str) -> PeerInfo {
        PeerInfo {
            name: name.parse().unwrap(),
            addr: "127.0.0.1:4000".parse().unwrap(),
            key: p2p_shared::identity::Identity::generate().public(),
        }
    }

    #[test]
    fn a_page_is_encoded_once_until_cleared() {
        let mut pages = Pages::default();
        let mut encodings = 0;
        let mut list = |_: Option<&PeerName>| {
            encodings += 1;
            (vec![peer("alice")], None)
        };
        let first = pages.get(None, &mut list);
        let again = pages.get(None, &mut list);
        assert!(Arc::ptr_eq(&first, &again));
        pages.clear();
        pages.get(None, &mut list);
        assert_eq!(encodings, 2);
        let outcome: Outcome = serde_json::from_str(first.get()).unwrap();
        assert!(matches!(outcome, Outcome::Peers { peers, next: None } if peers.len() == 1));
    }

    #[test]
    fn asking_for_many_pages_keeps_the_first() {
        let mut pages = Pages::default();
        let first = pages.get(None, |_| (vec![peer("alice")], None));
        for i in 0..3 * MAX_KEPT {
            let after: PeerName = format!("p{i}").parse().unwrap();
            pages.get(Some(after), |_| (vec![peer("bob")], None));
            assert!(pages.kept.len() <= MAX_KEPT);
        }
        let again = pages.get(None, |_| unreachable!("the first page is kept"));
        assert!(Arc::ptr_eq(&first, &again));
    }

    #[test]
    fn pages_after_different_names_are_different_pages() {
        let mut pages = Pages::default();
        let alice = pages.get(None, |_| {
            (vec![peer("alice")], Some("alice".parse().unwrap()))
        });
        let after = pages.get(Some("alice".parse().unwrap()), |after| {
            assert_eq!(after.map(PeerName::as_str), Some("alice"));
            (vec![peer("bob")], None)
        });
        assert_ne!(alice.get(), after.get());
    }
}
