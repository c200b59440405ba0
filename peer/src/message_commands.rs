//! `chat message PEER TEXT`: sending one message, trying again while it may pass, and what
//! the user is told of each outcome.
//!
//! A message that gets no reply, or a `busy` one, is retried with backoff for `--retry-for`,
//! under the same message id, so the receiver never shows it twice. A partner that does not
//! answer at all is away: the message is kept for it (`state/outbox.rs`). What the user
//! reads depends on whether the partner may have read the message: a try that failed before
//! its frame was written whole (nobody listens) cannot have been, one whose acknowledgement
//! never came may have (docs/decisions.md, "A message that may have arrived").

use std::cell::Cell;
use std::net::SocketAddr;

use p2p_shared::transport::SendError;
use p2p_shared::wire::new_id;
use p2p_shared::{ErrorCode, MessageId, Outcome, PeerName, SealedRequest};

use crate::command_loop::CommandLoop;
use crate::disk::Record;
use crate::error::{Failure, PeerError};
use crate::event::Event;
use crate::in_chat::{self, Sent};
use crate::liveness::is_transient;
use crate::retry::{retry, Attempt};
use crate::state::conversations::Typed;

/// Why a chat message got no acknowledgement.
enum Undelivered {
    NoChat,
    /// The partner answered `busy` until the retry time ran out.
    Busy,
    BadAck(SocketAddr),
    /// Nobody answered (retried), or the connection failed for good.
    Failed(SendError, SocketAddr),
}

impl CommandLoop {
    pub(crate) async fn chat_message(&mut self, peer: PeerName, text: String) {
        // One id for every try, so the receiver can tell a retry from a new message.
        let id = new_id();
        // A partner who is away gets it when back (`resume.rs`).
        let away = self.broker.call(move |state, _, _| state.keeps_for(&peer));
        if away.await == Some(true) {
            let why = format!("{peer} is offline");
            return self.keep(peer, (id, text), why).await;
        }
        // Whether a try was written whole before it failed: then the partner may have read
        // and shown it, whatever the last try came to, and the user must not be told it
        // was not delivered (docs/decisions.md, "A message that may have arrived").
        let written = Cell::new(false);
        let note = |e: &SendError| written.set(written.get() || e.after_writing());
        let send = || async {
            let body = SealedRequest::ChatMessage { text: text.clone() };
            match in_chat::send(&self.broker, peer, id, body).await {
                Sent::NoChat => Attempt::Done(Err(Undelivered::NoChat)),
                Sent::Answered(
                    Some(Outcome::Error {
                        code: ErrorCode::Busy,
                        ..
                    }),
                    _,
                ) => {
                    tracing::debug!(%peer, "busy; the message will be sent again");
                    Attempt::Again(Undelivered::Busy)
                }
                Sent::Answered(Some(outcome), _) => Attempt::Done(Ok(outcome)),
                Sent::Answered(None, addr) => Attempt::Done(Err(Undelivered::BadAck(addr))),
                Sent::Failed(e, addr) if is_transient(&e) => {
                    note(&e);
                    Attempt::Again(Undelivered::Failed(e, addr))
                }
                Sent::Failed(e, addr) => {
                    note(&e);
                    Attempt::Done(Err(Undelivered::Failed(e, addr)))
                }
            }
        };
        let outcome = retry(self.retry_for, send).await;
        let no_ack = PeerError::NoAcknowledgement { peer };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            // A busy partner is alive: the chat stays open.
            Err(Undelivered::Busy) if written.get() => return self.error(no_ack).await,
            Err(Undelivered::Busy) => {
                let secs = self.retry_for.as_secs();
                return self.error(PeerError::NotAcknowledged { peer, secs }).await;
            }
            Err(Undelivered::Failed(e, addr)) => {
                // Nobody answered for the whole retry time: the partner is away, and the
                // message is kept for it. One that may have arrived goes again all the same,
                // under its id: the partner shows an id once.
                let why = match written.get() {
                    true => {
                        let again =
                            format!("it goes again when {peer} is back, and {peer} shows it once");
                        (no_ack.to_string(), format!("{no_ack}; {again}"))
                    }
                    false => {
                        let why = Failure::of(&e, &format!("{peer} ({addr})")).text;
                        (why.clone(), why)
                    }
                };
                return self.keep_after_failure(peer, (id, text), why).await;
            }
            Err(_) => unreachable!("only busy and failures are retried"),
        };
        match outcome {
            Ok(Outcome::Ok) => {
                let record = Record {
                    id,
                    peer,
                    sender: self.origin.name,
                    text,
                    at: chrono::Utc::now(),
                };
                // Stored, then shown by the disk thread, in the place kept for it now.
                let slot = self.screen.reserve_waiting().await;
                let delivered = Some((slot, self.answering(Event::Delivered { peer })));
                match self.disk.record(record, delivered).await {
                    Ok(true) => {}
                    // Our message ids are new each time: never stored before, in fact.
                    Ok(false) => self.show(Event::Delivered { peer }).await,
                    Err(why) => {
                        self.error(PeerError::DeliveredNotStored { peer, why })
                            .await
                    }
                }
            }
            // The partner no longer knows the chat: it restarted. The chat is away until
            // it opens again, and the message is kept for it.
            Ok(Outcome::Error {
                code: ErrorCode::UnknownSession,
                ..
            }) => {
                let why = format!("{peer} no longer knows the chat (it restarted)");
                self.keep_after_failure(peer, (id, text), (why.clone(), why))
                    .await
            }
            Ok(Outcome::Error { detail, .. }) => {
                self.error(PeerError::MessageRefused { peer, detail }).await
            }
            Ok(other) => {
                let what = format!("{other:?}");
                self.error(PeerError::UnexpectedReply { peer, what }).await
            }
            Err(Undelivered::NoChat) => self.error(PeerError::NotInChat { peer }).await,
            Err(Undelivered::BadAck(addr)) => {
                self.error(PeerError::BadAcknowledgement { peer, addr })
                    .await
            }
            Err(Undelivered::Failed(e, addr)) => {
                let why = Failure::of(&e, &format!("{peer} ({addr})"));
                match written.get() {
                    true => {
                        tracing::warn!("no acknowledgement: {why}");
                        self.error(no_ack).await
                    }
                    false => self.error(PeerError::Undelivered { why }).await,
                }
            }
            Err(Undelivered::Busy) => unreachable!("busy is retried"),
        }
    }

    /// Keeps message `id` for `peer`, whose chat is away: `queued for PEER: why`. It keeps
    /// the command's id too, for its outcome when it goes.
    async fn keep(&self, peer: PeerName, (id, text): (MessageId, String), why: String) {
        let message = self.typed(id, text);
        let kept = self
            .broker
            .call(move |state, cx, fx| state.queue_message(peer, message, why, cx, fx));
        if let Some(Err(e)) = kept.await {
            self.error(e).await
        }
    }

    /// The same after message `id` could not reach `peer`: the chat goes away first. `why`
    /// says why it is away, then why the message is kept.
    async fn keep_after_failure(
        &self,
        peer: PeerName,
        (id, text): (MessageId, String),
        why: (String, String),
    ) {
        let message = self.typed(id, text);
        let kept = self
            .broker
            .call(move |state, cx, fx| state.message_failed(peer, message, why, cx, fx));
        if let Some(Err(e)) = kept.await {
            self.error(e).await
        }
    }

    /// Message `id`, typed as `text` with the command running.
    fn typed(&self, id: MessageId, text: String) -> Typed {
        let cmd = self.running.clone();
        Typed { id, text, cmd }
    }
}
