//! Chat requests in flight, as records with a lifetime.
//!
//! The original P2P_Chat kept the user's `yes` in one global flag, so a `yes` typed with
//! nothing pending accepted whatever request came next. Here an incoming request is a
//! [`PendingRequest`] bound to the peer that sent it, with its arrival time and expiry, and
//! `yes`/`no` can only take a record that exists and is still live. Outgoing requests are
//! records too, keyed by message id, so an answer is accepted only for a request we made.
//!
//! Pure data and rules; the clock is a parameter so the tests need no waiting.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use p2p_shared::identity::PublicKey;
use p2p_shared::seal::{EphemeralKey, KeyShare};
use p2p_shared::{MessageId, PeerName, Sender};

/// The most incoming requests pending at once (one per requester).
pub const MAX_PENDING: usize = 32;

/// How long past the other side's announced expiry a requester waits for an answer before it
/// gives up on its own (the answer may be on its way, or the other side may be gone).
pub const ANSWER_GRACE: Duration = Duration::from_secs(5);

/// The longest expiry a requester believes from the other side; a hostile peer could
/// otherwise announce one that never comes.
pub const MAX_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// One chat request waiting for this user's `yes` or `no`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRequest {
    pub id: MessageId,
    pub from: PeerName,
    pub addr: SocketAddr,
    /// The requester's long-term key (already checked against the pinned one).
    pub key: PublicKey,
    /// The requester's half of the chat's key agreement.
    pub share: EphemeralKey,
    pub received_at: DateTime<Utc>,
    pub expires_at: Instant,
}

/// An incoming request was added or refreshed.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    New,
    /// The same peer asked again; its record now has the new id and a new expiry.
    Refreshed,
}

/// Why no pending request could be taken.
#[derive(Debug, PartialEq, Eq)]
pub enum TakeError {
    NonePending,
    NoneFrom(PeerName),
    /// Several are pending and no name was given.
    Ambiguous(Vec<PeerName>),
}

/// A request arrived while [`MAX_PENDING`] others wait.
#[derive(Debug, PartialEq, Eq)]
pub struct TooMany;

/// Requests that others sent us.
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

    /// Records a request from `from`, replacing an earlier one from the same peer.
    pub fn offer(
        &mut self,
        id: MessageId,
        from: &Sender,
        share: EphemeralKey,
        now: Instant,
    ) -> Result<Offer, TooMany> {
        let record = PendingRequest {
            id,
            from: from.name,
            addr: from.addr,
            key: from.key,
            share,
            received_at: Utc::now(),
            expires_at: now + self.ttl,
        };
        let full = self.by_peer.len() >= MAX_PENDING;
        match self.by_peer.get_mut(&from.name) {
            Some(existing) => {
                *existing = record;
                Ok(Offer::Refreshed)
            }
            None if full => Err(TooMany),
            None => {
                self.by_peer.insert(from.name, record);
                Ok(Offer::New)
            }
        }
    }

    /// Removes and returns the live request from `name`, or the only live one if `name` is
    /// `None`.
    pub fn take(
        &mut self,
        name: Option<&PeerName>,
        now: Instant,
    ) -> Result<PendingRequest, TakeError> {
        self.by_peer.retain(|_, r| r.expires_at > now);
        let name = match name {
            Some(name) => *name,
            None => match self.by_peer.len() {
                0 => return Err(TakeError::NonePending),
                1 => self.by_peer.keys().next().cloned().expect("one entry"),
                _ => return Err(TakeError::Ambiguous(self.by_peer.keys().cloned().collect())),
            },
        };
        self.by_peer.remove(&name).ok_or(TakeError::NoneFrom(name))
    }

    /// Removes the request from `name`, whatever its state (the requester is now connected).
    pub fn forget(&mut self, name: &PeerName) {
        self.by_peer.remove(name);
    }

    /// Removes and returns every request (we are leaving).
    pub fn drain(&mut self) -> Vec<PendingRequest> {
        std::mem::take(&mut self.by_peer).into_values().collect()
    }

    /// Removes and returns every request whose time is up.
    pub fn expire(&mut self, now: Instant) -> Vec<PendingRequest> {
        let due: Vec<PeerName> = self
            .by_peer
            .iter()
            .filter(|(_, r)| r.expires_at <= now)
            .map(|(name, _)| *name)
            .collect();
        due.iter().filter_map(|n| self.by_peer.remove(n)).collect()
    }

    /// The live requests, by requester name.
    pub fn iter(&self) -> impl Iterator<Item = &PendingRequest> {
        self.by_peer.values()
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_peer.values().map(|r| r.expires_at).min()
    }
}

/// Where a request we sent stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// Sent; the other side's `pending` reply has not been read yet, so its name is unknown.
    Sent { addr: SocketAddr },
    /// The other side is asking its user; we wait until `deadline`.
    AwaitingAnswer {
        peer: PeerName,
        addr: SocketAddr,
        deadline: Instant,
    },
}

impl Outgoing {
    /// The address the request went to.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Outgoing::Sent { addr } | Outgoing::AwaitingAnswer { addr, .. } => *addr,
        }
    }
}

/// Why an answer cannot be taken for a request.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAnswerable {
    /// No such request, it has its outcome, or someone else was asked.
    Unknown,
    /// The other side's `pending` reply is not read yet: ask again in a moment.
    NotYet,
}

/// Requests we sent and that have no outcome yet, each with our half of its chat's key
/// agreement, which lives exactly as long as the request.
#[derive(Default)]
pub struct OutgoingRequests {
    by_id: HashMap<MessageId, (Outgoing, KeyShare)>,
}

impl OutgoingRequests {
    /// Records a request before it is sent, so that even an answer that overtakes the
    /// `pending` reply finds it.
    pub fn sent(&mut self, id: MessageId, addr: SocketAddr, share: KeyShare) {
        self.by_id.insert(id, (Outgoing::Sent { addr }, share));
    }

    /// The other side said `pending`. Returns false if the request already has its outcome.
    pub fn pending(
        &mut self,
        id: MessageId,
        peer: PeerName,
        expires_in: Duration,
        now: Instant,
    ) -> bool {
        let Some((Outgoing::Sent { addr }, _)) = self.by_id.get(&id) else {
            return false;
        };
        let addr = *addr;
        let (_, share) = self.by_id.remove(&id).expect("present just now");
        // The other side keeps one record per requester, so this request replaced any earlier
        // one of ours there: that one will never be answered.
        self.forget_peer(&peer);
        let state = Outgoing::AwaitingAnswer {
            peer,
            addr,
            deadline: now + expires_in.min(MAX_EXPIRY) + ANSWER_GRACE,
        };
        self.by_id.insert(id, (state, share));
        true
    }

    /// Drops every request waiting for `peer`'s answer, without an outcome: a chat with it is
    /// open anyway, or a newer request replaced them.
    pub fn forget_peer(&mut self, peer: &PeerName) {
        self.by_id.retain(
            |_, (state, _)| !matches!(state, Outgoing::AwaitingAnswer { peer: p, .. } if p == peer),
        );
    }

    /// The request could not be delivered.
    pub fn failed(&mut self, id: MessageId) {
        self.by_id.remove(&id);
    }

    /// Whether `from` may answer request `id`, without taking it: the caller still checks the
    /// answer's key, and a refused answer must leave the request to the real one.
    pub fn answerable(&self, id: MessageId, from: &PeerName) -> Result<(), NotAnswerable> {
        match self.by_id.get(&id).map(|(state, _)| state) {
            None => Err(NotAnswerable::Unknown),
            // Who was asked is known only from the signed `pending` reply. Until it is read,
            // an answer cannot be told from one by whoever saw the request id go by.
            Some(Outgoing::Sent { .. }) => Err(NotAnswerable::NotYet),
            Some(Outgoing::AwaitingAnswer { peer, .. }) if peer != from => {
                Err(NotAnswerable::Unknown)
            }
            Some(Outgoing::AwaitingAnswer { .. }) => Ok(()),
        }
    }

    /// Takes request `id`, with our key share, for its outcome (after
    /// [`OutgoingRequests::answerable`]).
    pub fn take(&mut self, id: MessageId) -> Option<(Outgoing, KeyShare)> {
        self.by_id.remove(&id)
    }

    /// Removes and returns the requests nobody answered in time.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerName> {
        let mut due = Vec::new();
        self.by_id.retain(|_, (state, _)| match state {
            Outgoing::AwaitingAnswer { peer, deadline, .. } if *deadline <= now => {
                due.push(*peer);
                false
            }
            _ => true,
        });
        due
    }

    /// The requests whose other side is asking its user: peer, address, our deadline.
    pub fn awaiting(&self) -> impl Iterator<Item = (&PeerName, SocketAddr, Instant)> {
        self.by_id.values().filter_map(|(state, _)| match state {
            Outgoing::AwaitingAnswer {
                peer,
                addr,
                deadline,
            } => Some((peer, *addr, *deadline)),
            Outgoing::Sent { .. } => None,
        })
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.awaiting().map(|(_, _, deadline)| deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::message::new_id;

    const TTL: Duration = Duration::from_secs(60);

    fn sender(name: &str, port: u16) -> Sender {
        Sender {
            name: name.parse().unwrap(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            key: p2p_shared::identity::Identity::generate().public(),
        }
    }

    fn share() -> EphemeralKey {
        p2p_shared::seal::KeyShare::new().public()
    }
    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    #[test]
    fn yes_with_nothing_pending_takes_nothing_and_a_later_request_stays_pending() {
        let now = Instant::now();
        let mut incoming = IncomingRequests::new(TTL);
        assert_eq!(incoming.take(None, now), Err(TakeError::NonePending));
        incoming
            .offer(new_id(), &sender("alice", 1), share(), now)
            .unwrap();
        assert_eq!(incoming.next_expiry(), Some(now + TTL));
        assert_eq!(incoming.take(None, now).unwrap().from, name("alice"));
    }

    #[test]
    fn several_pending_need_a_name() {
        let now = Instant::now();
        let mut incoming = IncomingRequests::new(TTL);
        incoming
            .offer(new_id(), &sender("alice", 1), share(), now)
            .unwrap();
        incoming
            .offer(new_id(), &sender("carol", 3), share(), now)
            .unwrap();
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
    fn a_repeated_request_refreshes_its_record() {
        let now = Instant::now();
        let mut incoming = IncomingRequests::new(TTL);
        let later = now + Duration::from_secs(30);
        assert_eq!(
            incoming.offer(new_id(), &sender("alice", 1), share(), now),
            Ok(Offer::New)
        );
        let second = new_id();
        assert_eq!(
            incoming.offer(second, &sender("alice", 1), share(), later),
            Ok(Offer::Refreshed)
        );
        let taken = incoming.take(None, later).unwrap();
        assert_eq!((taken.id, taken.expires_at), (second, later + TTL));
        assert_eq!(incoming.take(None, later), Err(TakeError::NonePending));
    }

    #[test]
    fn pending_requests_are_capped() {
        let now = Instant::now();
        let mut incoming = IncomingRequests::new(TTL);
        for i in 0..MAX_PENDING {
            incoming
                .offer(new_id(), &sender(&format!("p{i}"), 1), share(), now)
                .unwrap();
        }
        assert_eq!(
            incoming.offer(new_id(), &sender("late", 1), share(), now),
            Err(TooMany)
        );
        // A requester already on the list may still refresh.
        assert_eq!(
            incoming.offer(new_id(), &sender("p0", 1), share(), now),
            Ok(Offer::Refreshed)
        );
    }

    #[test]
    fn expired_requests_cannot_be_taken_and_are_reported_once() {
        let now = Instant::now();
        let mut incoming = IncomingRequests::new(TTL);
        incoming
            .offer(new_id(), &sender("alice", 1), share(), now)
            .unwrap();
        let after = now + TTL;
        assert_eq!(incoming.expire(now), vec![]);
        let expired = incoming.expire(after);
        assert_eq!(expired.len(), 1);
        assert_eq!(incoming.expire(after), vec![]);
        incoming
            .offer(new_id(), &sender("bob", 2), share(), now)
            .unwrap();
        assert_eq!(incoming.take(None, after), Err(TakeError::NonePending));
    }

    #[test]
    fn an_answer_is_taken_only_for_our_request_from_the_peer_we_asked() {
        let now = Instant::now();
        let mut outgoing = OutgoingRequests::default();
        let id = new_id();
        let addr = SocketAddr::from(([127, 0, 0, 1], 2));
        outgoing.sent(id, addr, KeyShare::new());
        assert!(outgoing.pending(id, name("bob"), TTL, now));
        assert_eq!(
            outgoing.answerable(new_id(), &name("bob")),
            Err(NotAnswerable::Unknown)
        );
        assert_eq!(
            outgoing.answerable(id, &name("mallory")),
            Err(NotAnswerable::Unknown)
        );
        // A refused answer takes nothing: the real one still counts.
        assert_eq!(outgoing.answerable(id, &name("bob")), Ok(()));
        assert!(matches!(
            outgoing.take(id),
            Some((Outgoing::AwaitingAnswer { .. }, _))
        ));
        assert_eq!(
            outgoing.answerable(id, &name("bob")),
            Err(NotAnswerable::Unknown),
            "one outcome"
        );
    }

    #[test]
    fn an_answer_before_the_pending_reply_must_wait_for_it() {
        let now = Instant::now();
        let mut outgoing = OutgoingRequests::default();
        let id = new_id();
        outgoing.sent(id, SocketAddr::from(([127, 0, 0, 1], 2)), KeyShare::new());
        assert_eq!(
            outgoing.answerable(id, &name("bob")),
            Err(NotAnswerable::NotYet)
        );
        assert_eq!(
            outgoing.answerable(id, &name("mallory")),
            Err(NotAnswerable::NotYet)
        );
        assert!(outgoing.pending(id, name("bob"), TTL, now));
        assert_eq!(outgoing.answerable(id, &name("bob")), Ok(()));
    }

    #[test]
    fn unanswered_requests_time_out_after_the_grace() {
        let now = Instant::now();
        let mut outgoing = OutgoingRequests::default();
        let id = new_id();
        outgoing.sent(id, SocketAddr::from(([127, 0, 0, 1], 2)), KeyShare::new());
        outgoing.pending(id, name("bob"), TTL, now);
        assert_eq!(outgoing.next_deadline(), Some(now + TTL + ANSWER_GRACE));
        assert_eq!(outgoing.expire(now + TTL), Vec::<PeerName>::new());
        assert_eq!(outgoing.expire(now + TTL + ANSWER_GRACE), vec![name("bob")]);
        assert_eq!(outgoing.next_deadline(), None);
    }

    #[test]
    fn a_newer_request_to_the_same_peer_replaces_the_older() {
        let now = Instant::now();
        let mut outgoing = OutgoingRequests::default();
        let addr = SocketAddr::from(([127, 0, 0, 1], 2));
        let (first, second) = (new_id(), new_id());
        outgoing.sent(first, addr, KeyShare::new());
        outgoing.pending(first, name("bob"), TTL, now);
        outgoing.sent(second, addr, KeyShare::new());
        outgoing.pending(second, name("bob"), TTL, now);
        assert_eq!(outgoing.awaiting().count(), 1);
        assert_eq!(
            outgoing.answerable(first, &name("bob")),
            Err(NotAnswerable::Unknown)
        );
        assert_eq!(outgoing.answerable(second, &name("bob")), Ok(()));
    }

    #[test]
    fn an_open_chat_settles_the_requests_to_that_peer() {
        let now = Instant::now();
        let mut outgoing = OutgoingRequests::default();
        let id = new_id();
        outgoing.sent(id, SocketAddr::from(([127, 0, 0, 1], 2)), KeyShare::new());
        outgoing.pending(id, name("bob"), TTL, now);
        outgoing.forget_peer(&name("carol"));
        assert_eq!(outgoing.awaiting().count(), 1);
        outgoing.forget_peer(&name("bob"));
        assert_eq!(
            outgoing.expire(now + TTL + ANSWER_GRACE),
            Vec::<PeerName>::new()
        );
    }

    #[test]
    fn an_absurd_expiry_is_capped() {
        let now = Instant::now();
        let mut outgoing = OutgoingRequests::default();
        let id = new_id();
        outgoing.sent(id, SocketAddr::from(([127, 0, 0, 1], 2)), KeyShare::new());
        outgoing.pending(id, name("bob"), Duration::from_secs(u64::MAX / 4), now);
        assert_eq!(
            outgoing.next_deadline(),
            Some(now + MAX_EXPIRY + ANSWER_GRACE)
        );
    }
}
