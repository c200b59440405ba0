//! Reopening away chats and sending what was kept for them: the I/O of the chat lifecycle
//! (`state/conversations.rs` decides).
//!
//! One task takes three kinds of jobs, one at a time:
//! - a **round** (from the keeper, every `--exchange-every`): each away chat is asked again,
//!   with a chat request to its pinned key at the address the book has for it (or where it
//!   was last), Noise IK when a chat proved its static key. Nothing is shown unless it opens.
//! - an **auto-accept**: a request from the partner of an away chat, which the state took
//!   without asking the user; it is answered `accepted` as a `yes` would be.
//! - a **flush**: a chat with kept messages is open: they go in the order they were typed,
//!   each under its own id, until the outbox is empty or a message fails (the chat is then
//!   away again, and the message stays first in line).
//!
//! Two partners who both ask at once settle it by their keys (`state/network.rs`): exactly
//! one request opens the chat.

use std::time::Duration;

use p2p_shared::handshake::{Initiator, Recipient};
use p2p_shared::transport::{self, Origin, Reply};
use p2p_shared::wire::new_id;
use p2p_shared::{runtime, ErrorCode, Outcome, PeerName, PeerRequest};

use crate::broker::Broker;
use crate::disk::{Disk, Record};
use crate::error::{Failure, PeerError};
use crate::event::Event;
use crate::in_chat::{self, Body, Sent};
use crate::liveness::is_transient;
use crate::retry::{retry, Attempt};
use crate::screen::Screen;
use crate::state::{Answering, PeerState, Resume};

/// What the task is asked to do.
pub enum Job {
    Round,
    AutoAccept(PeerName),
    Flush(PeerName),
}

/// The most jobs waiting; beyond, a job is dropped (the next round does it again).
pub const QUEUE: usize = 256;

pub struct Resumer {
    pub broker: Broker,
    pub origin: Origin,
    pub screen: Screen,
    pub disk: Disk,
    pub retry_for: Duration,
}

impl Resumer {
    /// Runs the jobs of `jobs` until every sender is gone.
    pub fn start(self, jobs: async_channel::Receiver<Job>) {
        runtime::spawn(async move {
            while let Ok(job) = jobs.recv().await {
                match job {
                    Job::Round => self.round().await,
                    Job::AutoAccept(peer) => self.auto_accept(peer).await,
                    Job::Flush(peer) => self.flush(peer).await,
                }
            }
        });
    }

    async fn round(&self) {
        let expired = self
            .broker
            .call(|state, cx, fx| state.expire_outbox(cx, fx));
        expired.await;
        let targets = self.broker.call(|state, cx, _| state.resumable(cx)).await;
        for target in targets.unwrap_or_default() {
            self.ask(target).await;
        }
    }

    /// A chat request to reopen the chat with `target`, shown only if it opens.
    async fn ask(&self, target: Resume) {
        let Resume {
            peer,
            key,
            addr,
            noise,
        } = target;
        let id = new_id();
        let to = match &noise {
            Some(noise) => Recipient::Pinned { name: peer, noise },
            None => Recipient::Unknown(Some(peer)),
        };
        let (handshake, pattern, first) = Initiator::start(&self.origin.identity, id, to);
        let recorded = self
            .broker
            .call(move |state, _, _| state.reopen_sent(id, (peer, key), addr, handshake));
        // Ended or opened since the round began (asking the others took a while).
        if recorded.await != Some(true) {
            return;
        }
        let body = PeerRequest::ChatRequest {
            pattern,
            handshake: first,
        };
        match transport::request(addr, &self.origin, id, body).await {
            Ok(Reply {
                from,
                outcome: Outcome::Pending { expires_in_ms },
                ..
            }) if from.name == peer && from.key == key => {
                let expires_in = Duration::from_millis(expires_in_ms);
                self.broker
                    .call(move |state, cx, fx| state.resume_pending(id, from, expires_in, cx, fx))
                    .await;
            }
            _ => {
                self.broker
                    .call(move |state, _, _| state.resume_failed(id))
                    .await;
            }
        }
    }

    async fn auto_accept(&self, peer: PeerName) {
        let taken = self
            .broker
            .call(move |state, cx, fx| state.auto_answer(peer, cx, fx));
        let Some(Some(answering)) = taken.await else {
            return;
        };
        let delivered = deliver_answer(&self.origin, self.retry_for, &answering).await;
        self.broker
            .call(move |state, _, fx| state.answer_sent(answering, delivered, fx))
            .await;
    }

    async fn flush(&self, peer: PeerName) {
        loop {
            let next = self
                .broker
                .call(move |state, _, _| state.outbox_next(&peer));
            let Some((queued, key)) = next.await.flatten() else {
                return;
            };
            // Kept, so maybe tried before: the partner's history decides whether it shows.
            let body = Body::Message {
                text: queued.text.clone(),
                again: true,
                to: Some(key),
            };
            let id = queued.id;
            // It may show from the moment it leaves: if the chat ends while it is on its way,
            // the user is told "no acknowledgement", not "not delivered".
            self.note_tried(peer, id, true).await;
            let sent = in_chat::send(&self.broker, peer, id, body).await;
            // Unless this try proves it did not show (nothing written, or an answer that
            // refuses it), and no earlier one may have.
            let shown_maybe = match &sent {
                Sent::ChatEnded | Sent::Answered(None, _) => true,
                Sent::Failed(e, _) => e.after_writing(),
                Sent::NoChat | Sent::Answered(Some(_), _) => false,
            };
            if !shown_maybe && !queued.tried {
                self.note_tried(peer, id, false).await;
            }
            let (acknowledged, route) = match sent {
                // No chat, or it ended under the message: it stays first in line, and a chat
                // that opens flushes it.
                Sent::NoChat | Sent::ChatEnded => return,
                Sent::Answered(outcome, route) => (outcome, route),
                Sent::Failed(_, route) => (None, route),
            };
            match acknowledged {
                Some(Outcome::Ok) => {
                    let done = move |state: &mut PeerState, _: &_, fx: &mut _| {
                        state.outbox_delivered(&peer, id, fx)
                    };
                    self.broker.call(done).await;
                    let record = Record {
                        id,
                        peer,
                        sender: self.origin.name,
                        text: queued.text,
                        at: chrono::Utc::now(),
                    };
                    let _ = self.disk.record(record, None).await;
                    // The outcome of the command that sent it, however long ago.
                    let delivered = Event::Delivered { peer }.answering(queued.cmd);
                    self.screen.push_state(delivered);
                }
                Some(Outcome::Error {
                    code: ErrorCode::Busy,
                    ..
                }) => return,
                // Nobody answered, or the chat is unknown there: the chat it was sent in is
                // away again; the message stays first in line for the next time.
                _ => {
                    let away = move |state: &mut PeerState, _: &_, fx: &mut _| {
                        state.away_if(&peer, route.chat, fx)
                    };
                    if self.broker.call(away).await == Some(true) {
                        let addr = route.addr;
                        let why = format!("{peer} ({addr}) did not take a kept message");
                        self.screen.push_state(Event::PeerAway { peer, why });
                    }
                    return;
                }
            }
        }
    }
}

impl Resumer {
    /// Notes whether kept message `id` to `peer` may have shown ([`PeerState::outbox_tried`]).
    async fn note_tried(&self, peer: PeerName, id: p2p_shared::MessageId, tried: bool) {
        let note = move |state: &mut PeerState, _: &_, fx: &mut _| {
            state.outbox_tried(&peer, id, tried, fx)
        };
        self.broker.call(note).await;
    }
}

/// Sends our answer to a chat request, retrying while the requester is busy (it has not
/// read our `pending` reply yet) or does not answer, for up to `retry_for`.
pub async fn deliver_answer(
    origin: &Origin,
    retry_for: Duration,
    answering: &Answering,
) -> Result<(), PeerError> {
    let (peer, addr) = (answering.request.from, answering.request.addr);
    let body = PeerRequest::ChatAnswer {
        request: answering.request.id,
        answer: answering.answer,
        handshake: answering.handshake.clone(),
    };
    let send = || async {
        match transport::request(addr, origin, new_id(), body.clone()).await {
            Err(e) if is_transient(&e) || e.code() == Some(ErrorCode::Busy) => Attempt::Again(e),
            result => Attempt::Done(result),
        }
    };
    match retry(retry_for, send).await.and_then(|result| result) {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(ErrorCode::UnknownRequest) => {
            Err(PeerError::NoLongerWaiting { peer })
        }
        Err(e) => {
            let why = Failure::of(&e, &format!("{peer} ({addr})"));
            Err(match answering.answer {
                p2p_shared::Answer::Accepted => PeerError::AnswerNotDelivered { why },
                _ => PeerError::CouldNotTell { peer, why },
            })
        }
    }
}
