//! Chat requests to us, as records bound to their requester, each coming to exactly one end.
//!
//! The original P2P_Chat kept the user's `yes` in one global flag, so a `yes` typed with
//! nothing pending accepted whatever request came next. Here a request is a
//! [`PendingRequest`] bound to the peer that sent it, with its arrival time and expiry, and
//! `yes`/`no` can only take a record that exists and is still live. A record leaves the table
//! through a function that returns its [`IncomingEnd`] (expired, withdrawn, unanswered when
//! we exit) or as the request the user answers, whose end comes once the answer is sent
//! (`state/mod.rs`). Every end maps to exactly one event ([`IncomingEnd::event`]).
//!
//! Pure data and rules; the clock is a parameter, so the tests need no waiting.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use p2p_shared::handshake::{HandshakeMessage, Pattern};
use p2p_shared::identity::PublicKey;
use p2p_shared::{Answer, MessageId, PeerInfo, PeerName};

use crate::error::PeerError;
use crate::event::{Event, PeerKey, Withdrawal};

/// The most incoming requests pending at once (one per requester name).
pub const MAX_PENDING: usize = 32;
/// How many of those may be from requesters nobody vouches for (neither the registry nor a
/// pin here): the rest is kept for people the user already knows, so strangers cannot fill
/// the table for everyone.
pub const MAX_UNVERIFIED: usize = 24;
/// The most pending requests from one IP address.
pub const MAX_PER_ADDRESS: usize = 4;
/// The most pending requests signed by one key (under several names).
pub const MAX_PER_KEY: usize = 2;

/// One chat request waiting for this user's `yes` or `no`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRequest {
    pub id: MessageId,
    pub from: PeerName,
    pub addr: SocketAddr,
    /// The requester's long-term key (already checked against the pinned one).
    pub key: PublicKey,
    /// Message 1 of the chat's handshake, read again if the user says yes (`handshake.rs`).
    pub pattern: Pattern,
    pub handshake: HandshakeMessage,
    /// Whether the registry (or a pin here) vouched for the key under that name.
    pub verified: bool,
    /// Unverified because the registry did not answer about it: asked again on `yes`.
    pub unanswered: bool,
    pub received_at: DateTime<Utc>,
    pub expires_at: Instant,
}

impl PendingRequest {
    /// How it is shown as it waits for the user's answer, at `now`.
    pub fn arrived(&self, now: Instant) -> Event {
        Event::RequestArrived {
            peer: self.from,
            addr: self.addr,
            expires_in: self.expires_at.saturating_duration_since(now),
            key: PeerKey(self.key),
            verified: self.verified,
            unanswered: self.unanswered,
        }
    }
}

/// How a request to us ended.
#[derive(Debug, PartialEq, Eq)]
pub enum IncomingEnd {
    /// We said yes and the requester has our answer: the chat is open.
    Accepted {
        peer: PeerName,
        addr: SocketAddr,
        key: PublicKey,
    },
    Declined {
        peer: PeerName,
    },
    /// We said no, but the requester could not be told.
    DeclinedUntold {
        peer: PeerName,
        why: PeerError,
    },
    /// We said yes, but its handshake could not finish or its key is not the one pinned for
    /// its name: declined instead.
    YesRefused {
        peer: PeerName,
    },
    /// Nobody answered in time.
    Expired {
        peer: PeerName,
    },
    /// The requester's newer request replaced it, a chat opened another way, or the
    /// requester withdrew it as it left.
    Withdrawn {
        peer: PeerName,
        why: Withdrawal,
    },
    /// A request in the same name from another key, which the registry or a pin vouches for,
    /// took its place (nobody vouched for this one).
    Displaced {
        peer: PeerName,
    },
    /// We exit with it unanswered.
    Unanswered {
        peer: PeerName,
    },
    /// We said yes, but the answer did not reach the requester: no chat.
    Undelivered(PeerError),
}

impl IncomingEnd {
    /// The one event that tells the user.
    pub fn event(&self) -> Event {
        match self {
            IncomingEnd::Accepted { peer, addr, key } => Event::AcceptedChat {
                peer: *peer,
                addr: *addr,
                key: PeerKey(*key),
            },
            IncomingEnd::Declined { peer } => Event::DeclinedChat { peer: *peer },
            IncomingEnd::DeclinedUntold { peer, why } => Event::Error(PeerError::DeclinedUntold {
                peer: *peer,
                why: Box::new(why.clone()),
            }),
            IncomingEnd::YesRefused { peer } => {
                Event::Error(PeerError::CannotAccept { peer: *peer })
            }
            IncomingEnd::Expired { peer } => Event::RequestExpired { peer: *peer },
            IncomingEnd::Withdrawn { peer, why } => Event::RequestWithdrawn {
                peer: *peer,
                why: *why,
            },
            // To the user, a newer request from that name, as any other replacement.
            IncomingEnd::Displaced { peer } => Event::RequestWithdrawn {
                peer: *peer,
                why: Withdrawal::Replaced,
            },
            IncomingEnd::Unanswered { peer } => Event::RequestUnanswered { peer: *peer },
            IncomingEnd::Undelivered(error) => Event::Error(error.clone()),
        }
    }

    /// The `chat_answer` its requester is owed when a request ends this way: it waits for an
    /// answer until its own timeout otherwise. `None` when the user's answer goes instead, or
    /// the requester knows already (its own newer request replaced it, a chat with it is
    /// open). A displaced requester is told `declined`, as a `yes` that could not be kept is:
    /// this peer will not take the request, and no protocol version has another word for it.
    pub fn owed(&self) -> Option<Answer> {
        match self {
            IncomingEnd::Expired { .. } => Some(Answer::Expired),
            IncomingEnd::Unanswered { .. } => Some(Answer::Left),
            IncomingEnd::Displaced { .. } => Some(Answer::Declined),
            _ => None,
        }
    }
}

/// Why no pending request could be taken.
#[derive(Debug, PartialEq, Eq)]
pub enum TakeError {
    NonePending,
    NoneFrom(PeerName),
    /// Several are pending and no name was given.
    Ambiguous(Vec<PeerName>),
}

impl From<TakeError> for PeerError {
    fn from(e: TakeError) -> PeerError {
        match e {
            TakeError::NonePending => PeerError::NonePending,
            TakeError::NoneFrom(name) => PeerError::NonePendingFrom { name },
            TakeError::Ambiguous(names) => PeerError::Ambiguous { names },
        }
    }
}

/// Why a request could not be kept pending.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotKept {
    #[error("{MAX_PENDING} chat requests are already waiting; try again later")]
    Full,
    #[error(
        "{MAX_UNVERIFIED} chat requests from peers nobody vouches for are already waiting; \
         try again later"
    )]
    FullOfStrangers,
    #[error("{MAX_PER_ADDRESS} chat requests from this address are already waiting")]
    FromThisAddress,
    #[error("{MAX_PER_KEY} chat requests signed by this key are already waiting")]
    FromThisKey,
    #[error("a chat request from {0} with another key is already waiting")]
    OtherKey(PeerName),
}

/// Requests that others sent us, by requester.
#[derive(Debug)]
pub struct IncomingRequests {
    by_peer: BTreeMap<PeerName, PendingRequest>,
    ttl: Duration,
}

impl IncomingRequests {
    pub fn new(ttl: Duration) -> Self {
        IncomingRequests {
            by_peer: BTreeMap::new(),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Records request `id` from `from`, which arrived at `now` (`utc` on the wall clock);
    /// `verified` if the registry or a pin vouches for its key. It replaces an earlier one
    /// from the same name and key, which ends (returned, with how). One under another key is
    /// replaced only by a request someone vouches for, when nobody vouched for it: a stranger
    /// cannot push out a request, and cannot hold a name against its vouched-for owner.
    pub fn offer(
        &mut self,
        id: MessageId,
        from: &PeerInfo,
        (pattern, handshake, verified, unanswered): (Pattern, HandshakeMessage, bool, bool),
        now: Instant,
        utc: DateTime<Utc>,
    ) -> Result<Option<(PendingRequest, IncomingEnd)>, NotKept> {
        let record = PendingRequest {
            id,
            from: from.name,
            addr: from.addr,
            key: from.key,
            pattern,
            handshake,
            verified,
            unanswered,
            received_at: utc,
            expires_at: now + self.ttl,
        };
        self.could_keep(from, verified)?;
        // The bounds hold for the new record as for any other (a vouched-for key replacing a
        // stranger's could come from a full address): checked before the old one goes.
        let Some(existing) = self.by_peer.insert(from.name, record) else {
            return Ok(None);
        };
        let peer = from.name;
        let end = match existing.key == from.key {
            true => IncomingEnd::Withdrawn {
                peer,
                why: Withdrawal::Replaced,
            },
            false => IncomingEnd::Displaced { peer },
        };
        Ok(Some((existing, end)))
    }

    /// Whether a request from `from` fits the bounds that hold whatever the registry says of
    /// its name (all but the share of requesters nobody vouches for). Asked before the
    /// registry is, so that a request refused anyway costs no lookup. A request in a name
    /// pending under another key is not refused here: the registry may know it for an
    /// impostor's, and the user is to be warned of that.
    pub fn could_take(&self, from: &PeerInfo) -> Result<(), NotKept> {
        self.room_for(&from.name, from.addr.ip(), &from.key, true)
    }

    /// Whether a request from `from`, `verified` or not, may be kept: in place of the one
    /// pending in its name, if any, and within every bound.
    fn could_keep(&self, from: &PeerInfo, verified: bool) -> Result<(), NotKept> {
        match self.by_peer.get(&from.name) {
            Some(existing) if existing.key != from.key && (existing.verified || !verified) => {
                Err(NotKept::OtherKey(from.name))
            }
            _ => self.room_for(&from.name, from.addr.ip(), &from.key, verified),
        }
    }

    /// Whether one more request from `name` at `ip`, signed by `key`, fits every bound, in
    /// place of the one pending in that name if any (it would replace it).
    fn room_for(
        &self,
        name: &PeerName,
        ip: IpAddr,
        key: &PublicKey,
        verified: bool,
    ) -> Result<(), NotKept> {
        let others = || self.by_peer.values().filter(|r| r.from != *name);
        let count = |f: &dyn Fn(&PendingRequest) -> bool| others().filter(|r| f(r)).count();
        if others().count() >= MAX_PENDING {
            return Err(NotKept::Full);
        }
        if !verified && count(&|r| !r.verified) >= MAX_UNVERIFIED {
            return Err(NotKept::FullOfStrangers);
        }
        if count(&|r| r.addr.ip() == ip) >= MAX_PER_ADDRESS {
            return Err(NotKept::FromThisAddress);
        }
        if count(&|r| r.key == *key) >= MAX_PER_KEY {
            return Err(NotKept::FromThisKey);
        }
        Ok(())
    }

    /// Takes the live request from `name`, or the only live one if `name` is `None`, for the
    /// user's answer.
    pub fn take(
        &mut self,
        name: Option<&PeerName>,
        now: Instant,
    ) -> Result<PendingRequest, TakeError> {
        let name = self.peek(name, now)?.from;
        Ok(self.by_peer.remove(&name).expect("present just now"))
    }

    /// The live request [`IncomingRequests::take`] would take, left in place.
    pub fn peek(
        &self,
        name: Option<&PeerName>,
        now: Instant,
    ) -> Result<&PendingRequest, TakeError> {
        let live = |r: &&PendingRequest| r.expires_at > now;
        let name = match name {
            Some(name) => *name,
            None => {
                let mut live_names = self.by_peer.values().filter(live).map(|r| r.from);
                match (live_names.next(), live_names.next()) {
                    (None, _) => return Err(TakeError::NonePending),
                    (Some(only), None) => only,
                    (Some(_), Some(_)) => {
                        let names = self.by_peer.values().filter(live).map(|r| r.from);
                        return Err(TakeError::Ambiguous(names.collect()));
                    }
                }
            }
        };
        match self.by_peer.get(&name) {
            Some(record) if record.expires_at > now => Ok(record),
            _ => Err(TakeError::NoneFrom(name)),
        }
    }

    /// Ends the request from `peer`, if any: a chat with it opened another way.
    pub fn settle(&mut self, peer: &PeerName) -> Option<IncomingEnd> {
        self.by_peer.remove(peer)?;
        Some(IncomingEnd::Withdrawn {
            peer: *peer,
            why: Withdrawal::Settled,
        })
    }

    /// Ends request `id` from `from`, whose requester withdraws it (it exits). Only the key
    /// that made it, under the name it made it in, can: a request is bound to its requester,
    /// and anyone who saw its id go by could otherwise cancel it. `None` if no such request
    /// waits (answered, expired, replaced, or not that requester's).
    pub fn withdraw(&mut self, id: MessageId, from: &PeerInfo) -> Option<IncomingEnd> {
        let record = self.by_peer.get(&from.name)?;
        if record.id != id || record.key != from.key {
            return None;
        }
        self.by_peer.remove(&from.name);
        Some(IncomingEnd::Withdrawn {
            peer: from.name,
            why: Withdrawal::Left,
        })
    }

    /// Ends every request: we exit. The requesters are to be told.
    pub fn drain(&mut self) -> Vec<(PendingRequest, IncomingEnd)> {
        std::mem::take(&mut self.by_peer)
            .into_values()
            .map(|r| {
                let peer = r.from;
                (r, IncomingEnd::Unanswered { peer })
            })
            .collect()
    }

    /// Ends every request whose time is up. The requesters are to be told.
    pub fn expire(&mut self, now: Instant) -> Vec<(PendingRequest, IncomingEnd)> {
        let due: Vec<PeerName> = self
            .by_peer
            .values()
            .filter(|r| r.expires_at <= now)
            .map(|r| r.from)
            .collect();
        due.iter()
            .filter_map(|name| self.by_peer.remove(name))
            .map(|r| {
                let peer = r.from;
                (r, IncomingEnd::Expired { peer })
            })
            .collect()
    }

    /// The pending requests, by requester name.
    pub fn iter(&self) -> impl Iterator<Item = &PendingRequest> {
        self.by_peer.values()
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_peer.values().map(|r| r.expires_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::wire::new_id;

    const TTL: Duration = Duration::from_secs(60);

    /// `name` at 127.0.0.1:`port`, with one key per name for the whole test thread.
    fn sender(name: &str, port: u16) -> PeerInfo {
        from_ip(name, [127, 0, 0, 1], port)
    }

    fn from_ip(name: &str, ip: [u8; 4], port: u16) -> PeerInfo {
        thread_local! {
            static KEYS: std::cell::RefCell<std::collections::HashMap<String, PublicKey>> =
                Default::default();
        }
        let key = KEYS.with(|keys| {
            *keys
                .borrow_mut()
                .entry(name.to_owned())
                .or_insert_with(|| p2p_shared::identity::Identity::generate().public())
        });
        PeerInfo {
            name: name.parse().unwrap(),
            addr: SocketAddr::from((ip, port)),
            key,
        }
    }

    /// Message 1 of a handshake; `verified` says whether anyone vouched for the requester.
    fn first(verified: bool) -> (Pattern, HandshakeMessage, bool, bool) {
        let me = p2p_shared::identity::Identity::generate();
        let to = p2p_shared::handshake::Recipient::Unknown(None);
        let (_, pattern, first) = p2p_shared::handshake::Initiator::start(&me, new_id(), to);
        (pattern, first, verified, false)
    }

    fn share() -> (Pattern, HandshakeMessage, bool, bool) {
        first(true)
    }

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    fn offer(incoming: &mut IncomingRequests, who: &str, port: u16, now: Instant) {
        incoming
            .offer(new_id(), &sender(who, port), share(), now, Utc::now())
            .unwrap();
    }

    fn offer_from(
        incoming: &mut IncomingRequests,
        from: &PeerInfo,
        verified: bool,
    ) -> Result<Option<(PendingRequest, IncomingEnd)>, NotKept> {
        incoming.offer(new_id(), from, first(verified), Instant::now(), Utc::now())
    }

    #[test]
    fn yes_with_nothing_pending_takes_nothing_and_a_later_request_stays_pending() {
        let now = Instant::now();
        let mut incoming = IncomingRequests::new(TTL);
        assert_eq!(incoming.take(None, now), Err(TakeError::NonePending));
        offer(&mut incoming, "alice", 1, now);
        assert_eq!(incoming.next_expiry(), Some(now + TTL));
        assert_eq!(incoming.take(None, now).unwrap().from, name("alice"));
    }

    #[test]
    fn several_pending_need_a_name() {
        let now = Instant::now();
        let mut incoming = IncomingRequests::new(TTL);
        offer(&mut incoming, "alice", 1, now);
        offer(&mut incoming, "carol", 3, now);
        assert_eq!(
            incoming.take(None, now),
            Err(TakeError::Ambiguous(vec![name("alice"), name("carol")]))
        );
        assert_eq!(
            incoming.take(Some(&name("bob")), now),
            Err(TakeError::NoneFrom(name("bob")))
        );
        assert_eq!(
            incoming
                .take(Some(&name("carol")), now)
                .unwrap()
                .addr
                .port(),
            3
        );
        assert_eq!(incoming.take(None, now).unwrap().from, name("alice"));
    }

    #[test]
    fn a_repeated_request_replaces_its_record_and_the_old_one_ends() {
        let now = Instant::now();
        let mut incoming = IncomingRequests::new(TTL);
        let later = now + Duration::from_secs(30);
        let first = incoming.offer(new_id(), &sender("alice", 1), share(), now, Utc::now());
        assert_eq!(first, Ok(None));
        let second = new_id();
        let replaced = incoming.offer(second, &sender("alice", 1), share(), later, Utc::now());
        let (old, end) = replaced.unwrap().unwrap();
        assert_eq!(
            end.event(),
            Event::RequestWithdrawn {
                peer: name("alice"),
                why: Withdrawal::Replaced
            }
        );
        assert_eq!(end.owed(), None, "alice knows: she asked again");
        assert_ne!(old.id, second);
        let taken = incoming.take(None, later).unwrap();
        assert_eq!((taken.id, taken.expires_at), (second, later + TTL));
        assert_eq!(incoming.take(None, later), Err(TakeError::NonePending));
    }

    #[test]
    fn pending_requests_are_capped_with_room_kept_for_requesters_someone_vouches_for() {
        let mut incoming = IncomingRequests::new(TTL);
        let stranger = |i: usize| from_ip(&format!("s{i}"), [127, 1, 0, i as u8], 1);
        for i in 0..MAX_UNVERIFIED {
            assert_eq!(offer_from(&mut incoming, &stranger(i), false), Ok(None));
        }
        let one_more = offer_from(&mut incoming, &stranger(MAX_UNVERIFIED), false);
        assert_eq!(one_more, Err(NotKept::FullOfStrangers));
        // The rest of the table is for people the registry or a pin vouches for.
        let known = |i: usize| from_ip(&format!("k{i}"), [127, 0, 0, 1 + i as u8], 1);
        for i in 0..MAX_PENDING - MAX_UNVERIFIED {
            assert_eq!(offer_from(&mut incoming, &known(i), true), Ok(None));
        }
        let late = offer_from(&mut incoming, &known(MAX_PENDING), true);
        assert_eq!(late, Err(NotKept::Full));
        // A requester already on the list may still ask again, with the same key.
        assert!(matches!(
            offer_from(&mut incoming, &stranger(0), false),
            Ok(Some(_))
        ));
    }

    #[test]
    fn one_address_or_one_key_holds_only_a_few_requests() {
        let mut incoming = IncomingRequests::new(TTL);
        for i in 0..MAX_PER_ADDRESS {
            let from = from_ip(&format!("a{i}"), [127, 1, 2, 3], 1);
            assert_eq!(offer_from(&mut incoming, &from, false), Ok(None));
        }
        let same_address = from_ip("a-more", [127, 1, 2, 3], 2);
        assert_eq!(
            offer_from(&mut incoming, &same_address, false),
            Err(NotKept::FromThisAddress)
        );
        // One key under several names, from several addresses.
        let key = from_ip("k", [127, 2, 0, 1], 1).key;
        for i in 0..=MAX_PER_KEY {
            let from = PeerInfo {
                key,
                ..from_ip(&format!("k{i}"), [127, 2, 0, 1 + i as u8], 1)
            };
            let kept = offer_from(&mut incoming, &from, false);
            match i < MAX_PER_KEY {
                true => assert_eq!(kept, Ok(None)),
                false => assert_eq!(kept, Err(NotKept::FromThisKey)),
            }
        }
    }

    #[test]
    fn what_the_registry_cannot_change_is_known_before_asking_it() {
        let mut incoming = IncomingRequests::new(TTL);
        for i in 0..MAX_PER_ADDRESS {
            let from = from_ip(&format!("a{i}"), [127, 1, 2, 3], 1);
            assert_eq!(offer_from(&mut incoming, &from, false), Ok(None));
        }
        let full = from_ip("a-more", [127, 1, 2, 3], 2);
        assert_eq!(incoming.could_take(&full), Err(NotKept::FromThisAddress));
        // A name asking again replaces its own record: it fits.
        let again = from_ip("a0", [127, 1, 2, 3], 1);
        assert_eq!(incoming.could_take(&again), Ok(()));

        // Whether one more stranger fits depends on the registry's word: not refused before.
        for i in MAX_PER_ADDRESS..MAX_UNVERIFIED {
            let from = from_ip(&format!("s{i}"), [127, 2, 0, i as u8], 1);
            assert_eq!(offer_from(&mut incoming, &from, false), Ok(None));
        }
        let next = from_ip("s-next", [127, 3, 0, 1], 1);
        assert_eq!(incoming.could_take(&next), Ok(()));
        assert_eq!(
            offer_from(&mut incoming, &next, false),
            Err(NotKept::FullOfStrangers)
        );

        // A name pending under a key someone vouched for, asked for with another key: the
        // registry is asked all the same, so that an impostor is named as such.
        let carol = from_ip("carol", [127, 4, 0, 1], 1);
        assert_eq!(offer_from(&mut incoming, &carol, true), Ok(None));
        let other = PeerInfo {
            key: p2p_shared::identity::Identity::generate().public(),
            ..from_ip("carol", [127, 5, 0, 1], 1)
        };
        assert_eq!(incoming.could_take(&other), Ok(()));
        assert_eq!(
            offer_from(&mut incoming, &other, false),
            Err(NotKept::OtherKey(name("carol")))
        );
    }

    #[test]
    fn a_request_under_another_key_never_replaces_a_pending_one() {
        let now = Instant::now();
        let mut incoming = IncomingRequests::new(TTL);
        offer(&mut incoming, "carol", 1, now);
        let impostor = PeerInfo {
            key: p2p_shared::identity::Identity::generate().public(),
            ..sender("carol", 9)
        };
        let refused = offer_from(&mut incoming, &impostor, false);
        assert_eq!(refused, Err(NotKept::OtherKey(name("carol"))));
        let refused = offer_from(&mut incoming, &impostor, true);
        let why = "carol's was vouched for";
        assert_eq!(refused, Err(NotKept::OtherKey(name("carol"))), "{why}");
        assert_eq!(
            incoming.take(None, now).unwrap().key,
            sender("carol", 1).key
        );

        // A key someone vouches for takes a name from a stranger only within the bounds:
        // not from an address that holds its share already.
        for i in 0..MAX_PER_ADDRESS {
            let from = from_ip(&format!("full{i}"), [127, 3, 0, 1], 1);
            assert_eq!(offer_from(&mut incoming, &from, false), Ok(None));
        }
        let eve = from_ip("eve", [127, 4, 0, 1], 1);
        assert_eq!(offer_from(&mut incoming, &eve, false), Ok(None));
        let from_full = PeerInfo {
            key: p2p_shared::identity::Identity::generate().public(),
            ..from_ip("eve", [127, 3, 0, 1], 2)
        };
        let refused = offer_from(&mut incoming, &from_full, true);
        assert_eq!(refused, Err(NotKept::FromThisAddress));
        assert_eq!(incoming.take(Some(&name("eve")), now).unwrap().key, eve.key);

        // Nobody vouched for dave's: the key someone vouches for takes the name, and the
        // displaced requester is owed a `declined`.
        let dave = from_ip("dave", [127, 1, 0, 1], 1);
        assert_eq!(offer_from(&mut incoming, &dave, false), Ok(None));
        let real = PeerInfo {
            key: p2p_shared::identity::Identity::generate().public(),
            ..dave
        };
        let (displaced, end) = offer_from(&mut incoming, &real, true).unwrap().unwrap();
        assert_eq!(displaced.key, dave.key);
        assert_eq!(end, IncomingEnd::Displaced { peer: name("dave") });
        assert_eq!(end.owed(), Some(Answer::Declined));
        assert_eq!(
            incoming.take(Some(&name("dave")), now).unwrap().key,
            real.key
        );
    }

    #[test]
    fn expired_requests_cannot_be_taken_and_end_once() {
        let now = Instant::now();
        let mut incoming = IncomingRequests::new(TTL);
        offer(&mut incoming, "alice", 1, now);
        let after = now + TTL;
        assert!(incoming.expire(now).is_empty());
        let expired = incoming.expire(after);
        assert_eq!(expired.len(), 1);
        assert_eq!(
            expired[0].1.event(),
            Event::RequestExpired {
                peer: name("alice")
            }
        );
        assert!(incoming.expire(after).is_empty());
        offer(&mut incoming, "bob", 2, now);
        assert_eq!(incoming.take(None, after), Err(TakeError::NonePending));
        assert_eq!(
            incoming.take(Some(&name("bob")), after),
            Err(TakeError::NoneFrom(name("bob")))
        );
    }

    #[test]
    fn a_chat_opened_otherwise_settles_the_request_and_leaving_ends_the_rest() {
        let now = Instant::now();
        let mut incoming = IncomingRequests::new(TTL);
        offer(&mut incoming, "alice", 1, now);
        offer(&mut incoming, "bob", 2, now);
        assert!(matches!(
            incoming.settle(&name("alice")),
            Some(IncomingEnd::Withdrawn {
                why: Withdrawal::Settled,
                ..
            })
        ));
        assert_eq!(incoming.settle(&name("alice")), None, "one end");
        let left = incoming.drain();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1, IncomingEnd::Unanswered { peer: name("bob") });
    }
}
