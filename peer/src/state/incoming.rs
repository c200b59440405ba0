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
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use p2p_shared::handshake::{HandshakeMessage, Pattern};
use p2p_shared::identity::PublicKey;
use p2p_shared::{MessageId, PeerInfo, PeerName};

use crate::error::PeerError;
use crate::event::{Event, Withdrawal};

/// The most incoming requests pending at once (one per requester).
pub const MAX_PENDING: usize = 32;

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
    pub received_at: DateTime<Utc>,
    pub expires_at: Instant,
}

/// How a request to us ended.
#[derive(Debug, PartialEq, Eq)]
pub enum IncomingEnd {
    /// We said yes and the requester has our answer: the chat is open.
    Accepted {
        peer: PeerName,
        addr: SocketAddr,
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
    /// The requester's newer request replaced it, or a chat opened another way.
    Withdrawn {
        peer: PeerName,
        why: Withdrawal,
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
            IncomingEnd::Accepted { peer, addr } => Event::AcceptedChat {
                peer: *peer,
                addr: *addr,
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
            IncomingEnd::Unanswered { peer } => Event::RequestUnanswered { peer: *peer },
            IncomingEnd::Undelivered(error) => Event::Error(error.clone()),
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

/// A request arrived while [`MAX_PENDING`] others wait.
#[derive(Debug, PartialEq, Eq)]
pub struct TooMany;

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

    /// Records request `id` from `from`, which arrived at `now` (`utc` on the wall clock).
    /// It replaces an earlier one from the same peer, which ends (returned).
    pub fn offer(
        &mut self,
        id: MessageId,
        from: &PeerInfo,
        (pattern, handshake): (Pattern, HandshakeMessage),
        now: Instant,
        utc: DateTime<Utc>,
    ) -> Result<Option<IncomingEnd>, TooMany> {
        let record = PendingRequest {
            id,
            from: from.name,
            addr: from.addr,
            key: from.key,
            pattern,
            handshake,
            received_at: utc,
            expires_at: now + self.ttl,
        };
        let full = self.by_peer.len() >= MAX_PENDING;
        match self.by_peer.get_mut(&from.name) {
            Some(existing) => {
                *existing = record;
                Ok(Some(IncomingEnd::Withdrawn {
                    peer: from.name,
                    why: Withdrawal::Replaced,
                }))
            }
            None if full => Err(TooMany),
            None => {
                self.by_peer.insert(from.name, record);
                Ok(None)
            }
        }
    }

    /// Takes the live request from `name`, or the only live one if `name` is `None`, for the
    /// user's answer.
    pub fn take(
        &mut self,
        name: Option<&PeerName>,
        now: Instant,
    ) -> Result<PendingRequest, TakeError> {
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
            Some(record) if record.expires_at > now => {
                Ok(self.by_peer.remove(&name).expect("present just now"))
            }
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

    fn sender(name: &str, port: u16) -> PeerInfo {
        PeerInfo {
            name: name.parse().unwrap(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            key: p2p_shared::identity::Identity::generate().public(),
        }
    }

    fn share() -> (Pattern, HandshakeMessage) {
        let me = p2p_shared::identity::Identity::generate();
        let to = p2p_shared::handshake::Recipient::Unknown(None);
        let (_, pattern, first) = p2p_shared::handshake::Initiator::start(&me, new_id(), to);
        (pattern, first)
    }

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    fn offer(incoming: &mut IncomingRequests, who: &str, port: u16, now: Instant) {
        incoming
            .offer(new_id(), &sender(who, port), share(), now, Utc::now())
            .unwrap();
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
        assert_eq!(
            replaced.unwrap().unwrap().event(),
            Event::RequestWithdrawn {
                peer: name("alice"),
                why: Withdrawal::Replaced
            }
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
            offer(&mut incoming, &format!("p{i}"), 1, now);
        }
        let late = incoming.offer(new_id(), &sender("late", 1), share(), now, Utc::now());
        assert_eq!(late, Err(TooMany));
        // A requester already on the list may still ask again.
        let again = incoming.offer(new_id(), &sender("p0", 1), share(), now, Utc::now());
        assert!(matches!(again, Ok(Some(_))));
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
