//! The network side of the peer: what it answers to each incoming request.
//!
//! The shared transport reads, bounds and validates each request and checks its signature;
//! this [`Service`] answers pings itself and hands the rest, and the sealed chat frames, to
//! the broker, which owns the state (and the keys) they need. A chat request that could be
//! taken first waits for the registry's word on its name and key (`vouch.rs`); one refused
//! whatever the registry says is refused before it is asked. A chat message shows when its
//! turn comes (the broker shows it) and is acknowledged once stored on the disk thread: the
//! connection task waits for that, not the broker. Refused connections are warnings in the log on stderr (stdout belongs to the
//! user's events).

use std::net::SocketAddr;

use p2p_shared::printable::printable;
use p2p_shared::runtime;
use p2p_shared::transport::{Origin, Refusal, SealedRefusal, Service};
use p2p_shared::{Envelope, ErrorCode, Outcome, PeerRequest};

use crate::broker::{Acknowledge, Broker};
use crate::disk::Disk;
use crate::error::PeerError;
use crate::event::Event;
use crate::flood;
use crate::state::{Effect, Storing, Vouch};
use crate::vouch::Voucher;

#[derive(Clone)]
pub struct PeerService {
    broker: Broker,
    disk: Disk,
    voucher: Voucher,
    /// Who we are, to pass broadcasts on.
    origin: Origin,
}

impl PeerService {
    pub fn new(broker: Broker, disk: Disk, voucher: Voucher, origin: Origin) -> Self {
        PeerService {
            broker,
            disk,
            voucher,
            origin,
        }
    }
}

impl Service for PeerService {
    type Request = PeerRequest;

    /// A ping only asks "who are you?", and the signed reply answers it; everything else a
    /// peer receives must prove its sender.
    fn needs_signature(&self, request: &PeerRequest) -> bool {
        !matches!(request, PeerRequest::Ping)
    }

    async fn handle(
        &self,
        request: Envelope<PeerRequest>,
        _remote: SocketAddr,
        local: SocketAddr,
    ) -> Outcome {
        let vouch = match request.body {
            PeerRequest::Ping => return Outcome::Ok,
            // Peer exchange: the book learns, and answers with our record for the address
            // the sender reached us at.
            PeerRequest::Exchange { records } => {
                let from = request.from;
                let answer = self.broker.call(move |state, cx, fx| {
                    state.exchange_received(&from, records, local, cx, fx)
                });
                return answer.await.unwrap_or_else(shutting_down);
            }
            // A broadcast: shown once, acknowledged, then passed on without keeping the
            // sender waiting for that.
            PeerRequest::Broadcast { message, hops } => {
                let from = request.from;
                // Every copy, new or repeated: what a flood costs (p2p-bench counts these).
                tracing::debug!(from = %from.name, id = %message.id, hops, "broadcast received");
                // Its origin's name means what the registry says, as a requester's does; asked
                // only for a broadcast that may be new (most copies are repeats).
                let (name, key) = (message.name, message.key);
                let peek = message.clone();
                let new = self
                    .broker
                    .call(move |state, _, _| state.broadcast_may_be_new(&peek));
                let vouch = match new.await {
                    Some(true) => self.voucher.vouch(name, key).await,
                    Some(false) => Vouch::NoRegistry,
                    None => return shutting_down(),
                };
                let heard = self.broker.call(move |state, cx, fx| {
                    state.broadcast_received(&from, (message, hops), vouch, cx, fx)
                });
                let Some((outcome, forward)) = heard.await else {
                    return shutting_down();
                };
                if let Some(forward) = forward {
                    let origin = self.origin.clone();
                    runtime::spawn(async move { flood::send(&origin, forward).await });
                }
                return outcome;
            }
            PeerRequest::ChatRequest { .. } => {
                // A request refused whatever the registry says (its address holds its share
                // of pending requests, say) is refused first: only one that could be taken
                // costs a lookup, which anyone could otherwise cause by the thousand.
                let from = request.from.clone();
                let refused = self
                    .broker
                    .call(move |state, cx, _| state.refusal_before_vouching(&from, cx));
                match refused.await {
                    Some(None) => {}
                    Some(Some(refusal)) => return refusal,
                    None => return shutting_down(),
                }
                // Before anyone is shown this name: does the registry bind it to this key?
                let from = &request.from;
                Some(self.voucher.vouch(from.name, from.key).await)
            }
            PeerRequest::ChatAnswer { .. } | PeerRequest::ChatWithdraw { .. } => None,
        };
        let answer = self
            .broker
            .call(move |state, cx, fx| state.signed_request(request, vouch, cx, fx));
        answer.await.unwrap_or_else(shutting_down)
    }

    async fn handle_sealed(
        &self,
        frame: Vec<u8>,
        _remote: SocketAddr,
    ) -> Result<Vec<u8>, SealedRefusal> {
        let (storing, ok) = match self.broker.sealed(frame).await? {
            Acknowledge::Now(ack) => return Ok(ack),
            Acknowledge::AfterStoring(storing, ok) => (storing, ok),
            // Held for its turn (`state/order.rs`), which comes within a bounded time: the
            // chat's order is given up on a gap after `HOLD_FOR`. Dropped instead (a retry
            // took its place, or the peer is stopping): `busy`, and its sender tries again.
            Acknowledge::WhenItsTurnComes(turn) => match turn.await {
                Ok(storing) => storing,
                Err(_) => return Err(Refusal::NotNow.into()),
            },
        };
        // Stored, then acknowledged: `ok` says it has shown (the broker showed it when its
        // turn came, or before) or, for one sent again, that the disk thread showed it if
        // the history did not have it. A retry of one stored before is acknowledged again.
        let Storing { record, then, .. } = *storing;
        let (peer, id, shown) = (record.peer, record.id, then.is_none());
        match self.disk.record(record, then).await {
            Ok(_) => Ok(ok),
            // Shown but not stored: it has arrived, as the sender is told; only this peer's
            // history lacks it, as its user is told.
            Err(why) if shown => {
                let error = PeerError::ReceivedNotStored { peer, why };
                let show = move |_: &mut _, _: &_, fx: &mut Vec<Effect>| {
                    fx.push(Effect::Show(Event::Error(error).into()))
                };
                self.broker.call(show).await;
                Ok(ok)
            }
            // Not shown: it shows when a retry is stored.
            Err(why) => {
                tracing::warn!("a chat message sent again could not be stored: {why}");
                Err(SealedRefusal {
                    re: Some(id),
                    why: Refusal::NotNow,
                })
            }
        }
    }

    fn refused(&self, remote: SocketAddr, why: &Refusal) {
        match why {
            // A goodbye that crossed a frame in flight: how chats end, not a warning. A
            // message not taken now is logged where that arises, if it is worth a warning.
            Refusal::Ended | Refusal::NotNow => tracing::debug!("refused {remote}: {why}"),
            _ => tracing::warn!("refused {remote}: {}", printable(&why.to_string())),
        }
    }
}

/// The answer when the broker has stopped.
fn shutting_down() -> Outcome {
    Outcome::error(ErrorCode::Busy, "this peer is shutting down")
}
