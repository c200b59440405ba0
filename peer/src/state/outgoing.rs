//! Our chat requests, as records that each come to exactly one end.
//!
//! A request is [`Outgoing::Sent`] until the other side's signed `pending` reply says who it
//! is, then [`Outgoing::Awaiting`] its answer until a deadline. It leaves the table only
//! through a function that returns its [`OutgoingEnd`], and every end maps to exactly one
//! event ([`OutgoingEnd::event`]): the user who typed `chat request` sees one outcome, always,
//! and it carries the id of that command ([`Ended`]), however much later it comes.
//!
//! Pure data and rules; the clock is a parameter, so the tests need no waiting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use p2p_shared::handshake::{HandshakeMessage, Initiator};
use p2p_shared::identity::PublicKey;
use p2p_shared::seal::ChatKeys;
use p2p_shared::{Answer, MessageId, PeerName};

use crate::error::PeerError;
use crate::event::{Event, PeerKey, Shown};
use crate::json_command::CommandId;

/// How long past the other side's announced expiry a requester waits for an answer before it
/// gives up on its own (the answer may be on its way, or the other side may be gone).
pub const ANSWER_GRACE: Duration = Duration::from_secs(5);

/// The longest expiry a requester believes from the other side; a hostile peer could
/// otherwise announce one that never comes.
pub const MAX_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// Where a request we sent stands. Each holds our side of its chat's handshake, which lives
/// exactly as long as the request.
pub enum Outgoing {
    /// Sent; the other side's `pending` reply has not been read yet, so who it is is unknown.
    Sent {
        addr: SocketAddr,
        handshake: Initiator,
        cmd: Option<CommandId>,
        /// The away chat it reopens (`resume.rs`), if that is what it is for.
        reopens: Option<PeerName>,
    },
    /// The other side, `peer` with `key`, is asking its user; we wait until `deadline`.
    Awaiting {
        peer: PeerName,
        key: PublicKey,
        addr: SocketAddr,
        deadline: Instant,
        handshake: Initiator,
        cmd: Option<CommandId>,
        /// It reopens the away chat with `peer`.
        reopens: bool,
    },
}

/// One of our requests at its end, with the command that made it (none for a request that
/// reopens an away chat, `resume.rs`): its event answers that command.
pub struct Ended {
    pub end: OutgoingEnd,
    pub cmd: Option<CommandId>,
}

impl Ended {
    /// The one event that tells the user, with the id of the command that made the request.
    pub fn shown(&self) -> Shown {
        self.end.event().answering(self.cmd.clone())
    }
}

/// How one of our requests ended.
pub enum OutgoingEnd {
    /// The other side said yes: the chat is open with these keys.
    Accepted {
        peer: PeerName,
        addr: SocketAddr,
        key: PublicKey,
        keys: ChatKeys,
    },
    Declined {
        peer: PeerName,
    },
    /// The partner of an away chat declined our request to reopen it: it ended the chat,
    /// and a request every round would only ask its user again and again.
    ReopenDeclined {
        peer: PeerName,
        key: PublicKey,
    },
    /// Nobody answered in time (our deadline, or the other side's expiry).
    TimedOut {
        peer: PeerName,
    },
    /// The other side exited without answering.
    Abandoned {
        peer: PeerName,
    },
    /// It never reached anyone who would ask, or the acceptance was unusable.
    Failed(PeerError),
    /// A chat with the peer opened another way (its request to us was accepted).
    Settled {
        peer: PeerName,
    },
    /// A newer request to the same peer replaced it there (one record per requester).
    Replaced {
        peer: PeerName,
    },
    /// We exit with it unanswered.
    Dropped {
        peer: PeerName,
    },
}

impl OutgoingEnd {
    /// The one event that tells the user.
    pub fn event(&self) -> Event {
        match self {
            OutgoingEnd::Accepted {
                peer, addr, key, ..
            } => Event::RequestAccepted {
                peer: *peer,
                addr: *addr,
                key: PeerKey(*key),
            },
            OutgoingEnd::Declined { peer } => Event::RequestDeclined { peer: *peer },
            OutgoingEnd::ReopenDeclined { peer, .. } => Event::ReopenDeclined { peer: *peer },
            OutgoingEnd::TimedOut { peer } => Event::RequestTimedOut { peer: *peer },
            OutgoingEnd::Abandoned { peer } => Event::RequestAbandoned { peer: *peer },
            OutgoingEnd::Failed(error) => Event::Error(error.clone()),
            OutgoingEnd::Settled { peer } => Event::RequestSettled { peer: *peer },
            OutgoingEnd::Replaced { peer } => Event::RequestReplaced { peer: *peer },
            OutgoingEnd::Dropped { peer } => Event::RequestDropped { peer: *peer },
        }
    }
}

/// A request of ours to withdraw as we exit: its id, and where it was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Withdraw {
    pub request: MessageId,
    pub addr: SocketAddr,
}

/// Why an answer cannot be taken for a request.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAnswerable {
    /// No such request, it has its outcome, or someone else was asked.
    Unknown,
    /// The other side's `pending` reply is not read yet: ask again in a moment.
    NotYet,
}

/// Our requests that have no end yet, by message id.
#[derive(Default)]
pub struct OutgoingRequests {
    by_id: HashMap<MessageId, Outgoing>,
}

impl OutgoingRequests {
    /// Records a request before it is sent, so that even an answer that overtakes the
    /// `pending` reply finds it; `cmd` is the command that makes it, `reopens` the away chat
    /// it reopens instead.
    pub fn sent(
        &mut self,
        id: MessageId,
        addr: SocketAddr,
        handshake: Initiator,
        (cmd, reopens): (Option<CommandId>, Option<PeerName>),
    ) {
        let sent = Outgoing::Sent {
            addr,
            handshake,
            cmd,
            reopens,
        };
        self.by_id.insert(id, sent);
    }

    /// The command that made request `id`, while it has no end.
    pub fn command(&self, id: MessageId) -> Option<CommandId> {
        match self.by_id.get(&id)? {
            Outgoing::Sent { cmd, .. } | Outgoing::Awaiting { cmd, .. } => cmd.clone(),
        }
    }

    /// The other side, `peer` with `key`, said `pending`. The other side keeps one record per
    /// requester, so this request replaced any earlier one of ours there: those end. `None`
    /// if this request already has its end.
    pub fn pending(
        &mut self,
        id: MessageId,
        peer: PeerName,
        key: PublicKey,
        expires_in: Duration,
        now: Instant,
    ) -> Option<Vec<Ended>> {
        let Some(Outgoing::Sent { .. }) = self.by_id.get(&id) else {
            return None;
        };
        let Some(Outgoing::Sent {
            addr,
            handshake,
            cmd,
            reopens,
        }) = self.by_id.remove(&id)
        else {
            unreachable!("present just now");
        };
        let replaced = self.take_awaiting(&peer, |peer| OutgoingEnd::Replaced { peer });
        let deadline = now + expires_in.min(MAX_EXPIRY) + ANSWER_GRACE;
        let awaiting = Outgoing::Awaiting {
            peer,
            key,
            addr,
            deadline,
            handshake,
            cmd,
            reopens: reopens.is_some(),
        };
        self.by_id.insert(id, awaiting);
        Some(replaced)
    }

    /// The request could not be made; `None` if it already has its end.
    pub fn failed(&mut self, id: MessageId, error: PeerError) -> Option<Ended> {
        let (Outgoing::Sent { cmd, .. } | Outgoing::Awaiting { cmd, .. }) =
            self.by_id.remove(&id)?;
        Some(Ended {
            end: OutgoingEnd::Failed(error),
            cmd,
        })
    }

    /// Whether `from` may answer request `id`, without taking it; the key that said
    /// `pending`, which alone may answer. The caller checks the answer's key against the pin
    /// first (a stranger's key is a warning), then against this one (a key trusted for the
    /// name since answers nothing it was not asked). A refused answer must leave the request
    /// to the real one.
    pub fn answerable(&self, id: MessageId, from: &PeerName) -> Result<PublicKey, NotAnswerable> {
        match self.by_id.get(&id) {
            None => Err(NotAnswerable::Unknown),
            // Who was asked is known only from the signed `pending` reply. Until it is read,
            // an answer cannot be told from one by whoever saw the request id go by.
            Some(Outgoing::Sent { .. }) => Err(NotAnswerable::NotYet),
            Some(Outgoing::Awaiting { peer, .. }) if peer != from => Err(NotAnswerable::Unknown),
            Some(Outgoing::Awaiting { key, .. }) => Ok(*key),
        }
    }

    /// Ends request `id` (after [`OutgoingRequests::answerable`]) with the other side's
    /// answer; an acceptance carries message 2 of the handshake.
    pub fn answered(
        &mut self,
        id: MessageId,
        answer: Answer,
        handshake: Option<HandshakeMessage>,
    ) -> Option<Ended> {
        let Outgoing::Awaiting {
            peer,
            key,
            addr,
            handshake: ours,
            cmd,
            reopens,
            ..
        } = self.by_id.remove(&id)?
        else {
            return None;
        };
        let end = match answer {
            Answer::Accepted => {
                let unusable =
                    |why| OutgoingEnd::Failed(PeerError::AcceptanceUnusable { peer, why });
                match handshake.map(|theirs| ours.finish(&theirs, &key)) {
                    None => unusable("the acceptance carries no handshake"),
                    // The address we asked at, which is the one the user chose.
                    Some(Ok(keys)) => OutgoingEnd::Accepted {
                        peer,
                        addr,
                        key,
                        keys,
                    },
                    Some(Err(_)) => unusable("the acceptance's handshake does not finish ours"),
                }
            }
            Answer::Declined if reopens => OutgoingEnd::ReopenDeclined { peer, key },
            Answer::Declined => OutgoingEnd::Declined { peer },
            Answer::Expired => OutgoingEnd::TimedOut { peer },
            Answer::Left => OutgoingEnd::Abandoned { peer },
        };
        Some(Ended { end, cmd })
    }

    /// Ends every request waiting for `peer`'s answer: a chat with it opened another way.
    pub fn settle(&mut self, peer: &PeerName) -> Vec<Ended> {
        self.take_awaiting(peer, |peer| OutgoingEnd::Settled { peer })
    }

    fn take_awaiting(
        &mut self,
        peer: &PeerName,
        end: impl Fn(PeerName) -> OutgoingEnd,
    ) -> Vec<Ended> {
        self.take(|state| match state {
            Outgoing::Awaiting { peer: p, .. } if p == peer => Some(end(*peer)),
            _ => None,
        })
    }

    /// Ends the requests for which `end` has an end, each with the command that made it.
    fn take(&mut self, end: impl Fn(&Outgoing) -> Option<OutgoingEnd>) -> Vec<Ended> {
        let mut ends = Vec::new();
        self.by_id.retain(|_, state| match end(state) {
            Some(end) => {
                let (Outgoing::Sent { cmd, .. } | Outgoing::Awaiting { cmd, .. }) = state;
                let cmd = cmd.take();
                ends.push(Ended { end, cmd });
                false
            }
            None => true,
        });
        ends
    }

    /// Ends the requests nobody answered in time.
    pub fn expire(&mut self, now: Instant) -> Vec<Ended> {
        self.take(|state| match state {
            Outgoing::Awaiting { peer, deadline, .. } if *deadline <= now => {
                Some(OutgoingEnd::TimedOut { peer: *peer })
            }
            _ => None,
        })
    }

    /// Ends the requests that reopen the chat with `peer`, which has ended: an acceptance on
    /// its way must not open it again. Each is to be withdrawn where it was sent.
    pub fn stop_reopening(&mut self, peer: &PeerName) -> Vec<Withdraw> {
        let mut withdraw = Vec::new();
        self.by_id.retain(|&request, state| {
            let (reopens, addr) = match state {
                Outgoing::Sent { reopens, addr, .. } => (reopens.as_ref() == Some(peer), *addr),
                Outgoing::Awaiting {
                    peer: p,
                    reopens,
                    addr,
                    ..
                } => (*reopens && p == peer, *addr),
            };
            if reopens {
                withdraw.push(Withdraw { request, addr });
            }
            !reopens
        });
        withdraw
    }

    /// Ends every request: we exit. Each is to be withdrawn where it was sent, so that its
    /// other side does not keep asking its user (`chat_withdraw`); one still being sent too,
    /// since it may have arrived. Those whose other side is asking end with an event that
    /// answers the command that made them; one still being sent has none: its command, or
    /// the reopening of an away chat, is over.
    pub fn leave(&mut self) -> (Vec<Ended>, Vec<Withdraw>) {
        let (mut ends, mut withdraw) = (Vec::new(), Vec::new());
        for (request, state) in self.by_id.drain() {
            let addr = match state {
                Outgoing::Awaiting {
                    peer, addr, cmd, ..
                } => {
                    let end = OutgoingEnd::Dropped { peer };
                    ends.push(Ended { end, cmd });
                    addr
                }
                Outgoing::Sent { addr, .. } => addr,
            };
            withdraw.push(Withdraw { request, addr });
        }
        (ends, withdraw)
    }

    /// The requests whose other side is asking its user: peer, address, key, our deadline.
    pub fn awaiting(&self) -> impl Iterator<Item = (&PeerName, SocketAddr, PublicKey, Instant)> {
        self.by_id.values().filter_map(|state| match state {
            Outgoing::Awaiting {
                peer,
                addr,
                key,
                deadline,
                ..
            } => Some((peer, *addr, *key, *deadline)),
            Outgoing::Sent { .. } => None,
        })
    }

    /// Whether a request of ours to `peer`, or to `addr`, has no end yet.
    pub fn asking(&self, peer: &PeerName, addr: SocketAddr) -> bool {
        self.by_id.values().any(|state| match state {
            Outgoing::Awaiting {
                peer: p, addr: a, ..
            } => p == peer || *a == addr,
            Outgoing::Sent { addr: a, .. } => *a == addr,
        })
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.awaiting().map(|(.., deadline)| deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::handshake::{Recipient, Responder};
    use p2p_shared::identity::Identity;
    use p2p_shared::wire::new_id;

    const TTL: Duration = Duration::from_secs(60);

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 2))
    }

    fn key() -> PublicKey {
        Identity::generate().public()
    }

    /// Our side of the handshake of a request `id` to anybody.
    fn initiator(id: MessageId) -> Initiator {
        let me = Identity::generate();
        Initiator::start(&me, id, Recipient::Unknown(None)).0
    }

    /// A request to bob that bob's side has as pending.
    fn awaiting_bob(outgoing: &mut OutgoingRequests, now: Instant) -> MessageId {
        let id = new_id();
        outgoing.sent(id, addr(), initiator(id), (None, None));
        outgoing.pending(id, name("bob"), key(), TTL, now).unwrap();
        id
    }

    fn events(ends: &[Ended]) -> Vec<Event> {
        ends.iter().map(|e| e.end.event()).collect()
    }

    #[test]
    fn an_answer_is_taken_only_for_our_request_from_the_peer_we_asked() {
        let mut outgoing = OutgoingRequests::default();
        let id = awaiting_bob(&mut outgoing, Instant::now());
        assert_eq!(
            outgoing.answerable(new_id(), &name("bob")).map(|_| ()),
            Err(NotAnswerable::Unknown)
        );
        assert_eq!(
            outgoing.answerable(id, &name("mallory")).map(|_| ()),
            Err(NotAnswerable::Unknown)
        );
        // A refused answer takes nothing: the real one still counts.
        assert_eq!(outgoing.answerable(id, &name("bob")).map(|_| ()), Ok(()));
        let end = outgoing.answered(id, Answer::Declined, None).unwrap();
        assert_eq!(
            end.end.event(),
            Event::RequestDeclined { peer: name("bob") }
        );
        assert_eq!(
            outgoing.answerable(id, &name("bob")).map(|_| ()),
            Err(NotAnswerable::Unknown),
            "one end"
        );
        assert!(outgoing.answered(id, Answer::Declined, None).is_none());
    }

    #[test]
    fn an_answer_before_the_pending_reply_must_wait_for_it() {
        let mut outgoing = OutgoingRequests::default();
        let id = new_id();
        outgoing.sent(id, addr(), initiator(id), (None, None));
        assert_eq!(
            outgoing.answerable(id, &name("bob")).map(|_| ()),
            Err(NotAnswerable::NotYet)
        );
        assert!(outgoing
            .pending(id, name("bob"), key(), TTL, Instant::now())
            .is_some());
        assert_eq!(outgoing.answerable(id, &name("bob")).map(|_| ()), Ok(()));
    }

    #[test]
    fn an_acceptance_opens_a_chat_that_both_sides_agree_on() {
        let mut outgoing = OutgoingRequests::default();
        let (me, bob) = (Identity::generate(), Identity::generate());
        let id = new_id();
        let (ours, pattern, first) = Initiator::start(&me, id, Recipient::Unknown(None));
        outgoing.sent(id, addr(), ours, (None, None));
        outgoing
            .pending(id, name("bob"), bob.public(), TTL, Instant::now())
            .unwrap();
        let (bobs, second) =
            Responder::accept(&bob, &name("bob"), id, pattern, &first, &me.public()).unwrap();
        let end = outgoing
            .answered(id, Answer::Accepted, Some(second))
            .unwrap();
        let OutgoingEnd::Accepted { keys, peer, .. } = end.end else {
            panic!("accepted")
        };
        assert_eq!(peer, name("bob"));
        assert_eq!(bobs.open(&keys.seal(0, b"hi")), Some((0, b"hi".to_vec())));
    }

    #[test]
    fn an_acceptance_without_a_handshake_fails_with_one_error() {
        let mut outgoing = OutgoingRequests::default();
        let id = awaiting_bob(&mut outgoing, Instant::now());
        let end = outgoing.answered(id, Answer::Accepted, None).unwrap();
        assert!(matches!(
            end.end.event(),
            Event::Error(PeerError::AcceptanceUnusable { .. })
        ));
    }

    #[test]
    fn unanswered_requests_time_out_after_the_grace() {
        let now = Instant::now();
        let mut outgoing = OutgoingRequests::default();
        awaiting_bob(&mut outgoing, now);
        assert_eq!(outgoing.next_deadline(), Some(now + TTL + ANSWER_GRACE));
        assert!(outgoing.expire(now + TTL).is_empty());
        assert_eq!(
            events(&outgoing.expire(now + TTL + ANSWER_GRACE)),
            [Event::RequestTimedOut { peer: name("bob") }]
        );
        assert_eq!(outgoing.next_deadline(), None);
    }

    #[test]
    fn a_newer_request_to_the_same_peer_replaces_the_older() {
        let now = Instant::now();
        let mut outgoing = OutgoingRequests::default();
        let first = awaiting_bob(&mut outgoing, now);
        let second = new_id();
        outgoing.sent(second, addr(), initiator(second), (None, None));
        let replaced = outgoing
            .pending(second, name("bob"), key(), TTL, now)
            .unwrap();
        assert_eq!(
            events(&replaced),
            [Event::RequestReplaced { peer: name("bob") }]
        );
        assert_eq!(outgoing.awaiting().count(), 1);
        assert_eq!(
            outgoing.answerable(first, &name("bob")).map(|_| ()),
            Err(NotAnswerable::Unknown)
        );
        assert_eq!(
            outgoing.answerable(second, &name("bob")).map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn an_open_chat_settles_the_requests_to_that_peer() {
        let now = Instant::now();
        let mut outgoing = OutgoingRequests::default();
        awaiting_bob(&mut outgoing, now);
        assert!(outgoing.settle(&name("carol")).is_empty());
        assert_eq!(
            events(&outgoing.settle(&name("bob"))),
            [Event::RequestSettled { peer: name("bob") }]
        );
        assert!(outgoing.expire(now + TTL + ANSWER_GRACE).is_empty());
    }

    #[test]
    fn an_absurd_expiry_is_capped() {
        let now = Instant::now();
        let mut outgoing = OutgoingRequests::default();
        let id = new_id();
        outgoing.sent(id, addr(), initiator(id), (None, None));
        let forever = Duration::from_secs(u64::MAX / 4);
        outgoing.pending(id, name("bob"), key(), forever, now);
        assert_eq!(
            outgoing.next_deadline(),
            Some(now + MAX_EXPIRY + ANSWER_GRACE)
        );
    }

    #[test]
    fn leaving_withdraws_every_request_and_drops_what_awaits_an_answer() {
        let mut outgoing = OutgoingRequests::default();
        let awaiting = awaiting_bob(&mut outgoing, Instant::now());
        let sending = new_id();
        let elsewhere = SocketAddr::from(([127, 0, 0, 1], 3));
        outgoing.sent(sending, elsewhere, initiator(sending), (None, None));
        let (ends, mut withdraw) = outgoing.leave();
        assert_eq!(events(&ends), [Event::RequestDropped { peer: name("bob") }]);
        withdraw.sort_by_key(|w| w.addr);
        assert_eq!(
            withdraw,
            [
                Withdraw {
                    request: awaiting,
                    addr: addr()
                },
                Withdraw {
                    request: sending,
                    addr: elsewhere
                }
            ]
        );
        // The command that was sending it finds it ended: no second end.
        let why = PeerError::RequestNotMade { peer: name("bob") };
        assert!(outgoing.failed(sending, why).is_none(), "one end");
        let (ends, withdraw) = outgoing.leave();
        assert!(
            ends.is_empty() && withdraw.is_empty(),
            "each withdrawn once"
        );
    }
}
