//! `chat message PEER TEXT`: sending one message, trying again while it may pass, and what
//! the user is told of each outcome.
//!
//! A message does not hold up the command loop: it takes its place in the chat's order when
//! typed (`state/order.rs`), then a task of its own ([`Messenger`]) sends it, retries it and
//! shows its outcome, answering the command that typed it. The next `chat message` runs at
//! once, so several may be in flight, at most [`IN_FLIGHT_MAX`] (`in_flight.rs`); any other
//! command waits for them first, so that a script's `disconnect` or `exit` comes after its
//! messages, and its other commands see what they did.
//!
//! A message that gets no reply, or a `busy` one, is retried with backoff for `--retry-for`,
//! under the same message id and place, so the receiver never shows it twice nor out of
//! order. A partner that does not answer at all is away: the message is kept for it
//! (`state/outbox.rs`). What the user reads depends on whether the partner may have read
//! the message: a try that failed before its frame was written whole (nobody listens) cannot
//! have been, one whose acknowledgement never came may have (docs/decisions.md, "A message
//! that may have arrived").
//!
//! [`IN_FLIGHT_MAX`]: crate::state::order::IN_FLIGHT_MAX

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use p2p_shared::transport::SendError;
use p2p_shared::wire::frame::ChatId;
use p2p_shared::wire::new_id;
use p2p_shared::{runtime, ErrorCode, Outcome, PeerName};

use crate::broker::Broker;
use crate::command_loop::CommandLoop;
use crate::disk::{Disk, Record};
use crate::error::{Failure, PeerError};
use crate::event::Event;
use crate::in_chat::{self, Body, Route, Sent};
use crate::json_command::CommandId;
use crate::liveness::is_transient;
use crate::names::Names;
use crate::retry::{retry, Attempt};
use crate::screen::Screen;
use crate::state::conversations::Typed;
use crate::state::sealed::Sealed;
use crate::state::Typing;

/// Why a try of a chat message is sent again; the last one, if the retry time runs out.
enum Again {
    /// The partner answered `busy`.
    Busy,
    /// Its chat ended while the try was on its way (the next is sealed in the chat open
    /// then).
    ChatEnded,
    /// Nobody answered, or the connection broke, in this chat.
    Failed(SendError, Route),
}

/// Why a chat message got no acknowledgement, with no try left to make.
enum Undelivered {
    NoChat,
    BadAck(SocketAddr),
    /// Its chat ended or went away after the first try, and none is open now: it is kept.
    ChatGone,
    /// The connection failed in a way trying again does not change.
    Failed(SendError, SocketAddr),
}

/// The partner's answer, and the chat it came from.
struct Answer {
    outcome: Outcome,
    chat: ChatId,
}

/// What becomes of a message as it is typed.
enum FirstTry {
    /// Its chat is away: it is kept.
    Keep,
    /// Sent, this frame first (`None`: no chat to seal it in; its try says so).
    Send(Option<Sealed>),
}

/// What sends chat messages, each in a task of its own; cheap to clone.
#[derive(Clone)]
pub struct Messenger {
    pub broker: Broker,
    pub screen: Screen,
    pub disk: Disk,
    pub names: Names,
    /// Our own name, the sender of what we record.
    pub me: PeerName,
    pub retry_for: Duration,
}

impl CommandLoop {
    /// `chat message PEER TEXT` (one part of it, `split.rs`): once there is room in flight,
    /// kept if the chat is away, else given its place in the chat's order and sent by a task
    /// of its own.
    pub(crate) async fn chat_message(&mut self, peer: PeerName, text: String) {
        // One id for every try, so the receiver can tell a retry from a new message.
        let id = new_id();
        let mut message = Typed {
            id,
            text,
            cmd: self.running.clone(),
            place: None,
            tried: false,
        };
        // Room in flight first: a frame sealed now must not wait (for as long as the oldest
        // message's retries) while its chat closes or reopens. The command loop runs one
        // command at a time, so the order typed is kept all the same.
        self.in_flight.make_room().await;
        // Its place in the chat's order is taken now, as typed, and its first try sealed in
        // the same turn of the broker: one hand-off fewer before it leaves.
        let text = message.text.clone();
        let typed = self.broker.call(move |state, _, _| {
            let Typing { keep, place } = state.message_typed(&peer, id);
            let to = place.map(|place| place.key);
            let first = match keep {
                true => FirstTry::Keep,
                false => FirstTry::Send(state.seal_message(&peer, id, text, false, to)),
            };
            (place, first)
        });
        let messenger = self.messenger.clone();
        let (place, first) = typed.await.unwrap_or((None, FirstTry::Send(None)));
        message.place = place;
        let first = match first {
            // A partner who is away gets it when back (`resume.rs`).
            FirstTry::Keep => {
                let why = format!("{peer} is offline");
                return messenger.keep(peer, message, None, why).await;
            }
            FirstTry::Send(sealed) => sealed,
        };
        self.in_flight
            .add(runtime::spawn(messenger.send(peer, message, first)));
    }
}

impl Messenger {
    /// Sends `message` to `peer`, `first` as its first try, and shows its outcome.
    async fn send(self, peer: PeerName, mut message: Typed, first: Option<Sealed>) {
        let (id, cmd) = (message.id, &message.cmd);
        // Whether a try was written whole before it failed: then the partner may have read
        // and shown it, whatever the last try came to, and the user must not be told it
        // was not delivered (docs/decisions.md, "A message that may have arrived").
        let written = AtomicBool::new(false);
        let note = |e: &SendError| {
            if e.after_writing() {
                written.store(true, Relaxed);
            }
        };
        // Every try after the first says so: an earlier one may have shown (docs/protocol.md).
        let tried = AtomicBool::new(false);
        let first = Mutex::new(first);
        let send = || async {
            let again = tried.swap(true, Relaxed);
            let sealed = first.lock().unwrap_or_else(|p| p.into_inner()).take();
            let sent = match sealed {
                Some(sealed) => in_chat::send_sealed(&self.broker, peer, Some(sealed)).await,
                None => {
                    let text = message.text.clone();
                    let to = message.place.map(|place| place.key);
                    let body = Body::Message { text, again, to };
                    in_chat::send(&self.broker, peer, id, body).await
                }
            };
            match sent {
                // No chat for a try after the first: it ended (or went away) while the message
                // was on its way, so the message is kept for the next, not refused as typed
                // outside a chat.
                Sent::NoChat if again => Attempt::Done(Err(Undelivered::ChatGone)),
                Sent::NoChat => Attempt::Done(Err(Undelivered::NoChat)),
                // Sealed in a chat that has ended, maybe opened again since: the next try is
                // sealed in the chat open then, marked `again` (this one may have shown); with
                // none open, the message is kept for the next.
                Sent::ChatEnded => {
                    tracing::debug!(%peer, "the chat ended under a message; it goes again");
                    written.store(true, Relaxed);
                    Attempt::Again(Again::ChatEnded)
                }
                Sent::Answered(
                    Some(Outcome::Error {
                        code: ErrorCode::Busy,
                        ..
                    }),
                    _,
                ) => {
                    tracing::debug!(%peer, "busy; the message will be sent again");
                    Attempt::Again(Again::Busy)
                }
                Sent::Answered(Some(outcome), route) => Attempt::Done(Ok(Answer {
                    outcome,
                    chat: route.chat,
                })),
                Sent::Answered(None, route) => Attempt::Done(Err(Undelivered::BadAck(route.addr))),
                Sent::Failed(e, route) if is_transient(&e) => {
                    note(&e);
                    Attempt::Again(Again::Failed(e, route))
                }
                Sent::Failed(e, route) => {
                    note(&e);
                    Attempt::Done(Err(Undelivered::Failed(e, route.addr)))
                }
            }
        };
        let outcome = retry(self.retry_for, send).await;
        // Kept from here on, it carries whether it may have shown.
        message.tried = written.load(Relaxed);
        let no_ack = PeerError::NoAcknowledgement { peer };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            // A busy partner is alive: the chat stays open.
            Err(Again::Busy) if written.load(Relaxed) => return self.error(cmd, no_ack).await,
            // Its chat kept ending under it until the retry time ran out.
            Err(Again::ChatEnded) => return self.keep(peer, message, None, ended(peer)).await,
            Err(Again::Busy) => {
                let secs = self.retry_for.as_secs();
                return self
                    .error(cmd, PeerError::NotAcknowledged { peer, secs })
                    .await;
            }
            Err(Again::Failed(e, Route { addr, chat })) => {
                // Nobody answered for the whole retry time: the partner is away, and the
                // message is kept for it. One that may have arrived goes again all the same,
                // under its id: the partner shows an id once.
                let (away, why) = match written.load(Relaxed) {
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
                return self.keep(peer, message, Some((chat, away)), why).await;
            }
        };
        match outcome {
            Ok(Answer {
                outcome: Outcome::Ok,
                ..
            }) => {
                let record = Record {
                    id,
                    peer,
                    sender: self.me,
                    text: message.text,
                    at: chrono::Utc::now(),
                };
                // Stored, then shown by the disk thread, in the place kept for it now.
                let slot = self.screen.reserve_waiting().await;
                let delivered = Some((slot, Event::Delivered { peer }.answering(cmd.clone())));
                match self.disk.record(record, delivered).await {
                    Ok(true) => {}
                    // Our message ids are new each time: never stored before, in fact.
                    Ok(false) => self.show(cmd, Event::Delivered { peer }).await,
                    Err(why) => {
                        self.error(cmd, PeerError::DeliveredNotStored { peer, why })
                            .await
                    }
                }
            }
            // The partner no longer knows the chat: it restarted, or ended it while we did
            // not answer. The chat is away until it opens again, and the message is kept.
            Ok(Answer {
                outcome:
                    Outcome::Error {
                        code: ErrorCode::UnknownSession,
                        ..
                    },
                chat,
            }) => {
                let why = format!(
                    "{peer} no longer knows the chat (it restarted, or ended it meanwhile)"
                );
                self.keep(peer, message, Some((chat, why.clone())), why)
                    .await
            }
            Ok(Answer {
                outcome: Outcome::Error { detail, .. },
                ..
            }) => {
                self.error(cmd, PeerError::MessageRefused { peer, detail })
                    .await
            }
            Ok(Answer { outcome: other, .. }) => {
                let what = format!("{other:?}");
                self.error(cmd, PeerError::UnexpectedReply { peer, what })
                    .await
            }
            Err(Undelivered::NoChat) => self.error(cmd, PeerError::NotInChat { peer }).await,
            Err(Undelivered::BadAck(addr)) => {
                self.error(cmd, PeerError::BadAcknowledgement { peer, addr })
                    .await
            }
            Err(Undelivered::Failed(e, addr)) => {
                let why = Failure::of(&e, &format!("{peer} ({addr})"));
                match written.load(Relaxed) {
                    true => {
                        tracing::warn!("no acknowledgement: {why}");
                        self.error(cmd, no_ack).await
                    }
                    false => self.error(cmd, PeerError::Undelivered { why }).await,
                }
            }
            Err(Undelivered::ChatGone) => self.keep(peer, message, None, ended(peer)).await,
        }
    }

    /// Keeps `message` for `peer`: `queued for PEER: why`, answering the command that sent it,
    /// as its later outcome will. With `failed_in`, the chat it could not reach `peer` in goes
    /// away first, for the reason given (`PeerState::message_failed`); without, no verdict is
    /// passed on any chat. A chat that ended for good meanwhile keeps nothing: the state ends
    /// the message there, saying whether it may have shown.
    async fn keep(
        &self,
        peer: PeerName,
        message: Typed,
        failed_in: Option<(ChatId, String)>,
        why: String,
    ) {
        let cmd = message.cmd.clone();
        let kept = self.broker.call(move |state, cx, fx| match failed_in {
            Some((chat, away)) => state.message_failed(peer, message, chat, (away, why), cx, fx),
            None => state.queue_message(peer, message, why, cx, fx),
        });
        if let Some(Err(e)) = kept.await {
            self.error(&cmd, e).await
        }
    }

    /// Shows `event`, an outcome of the command `cmd` (waiting for room on the screen).
    async fn show(&self, cmd: &Option<CommandId>, event: impl Into<Event>) {
        let event = event.into();
        self.names.note(&event);
        self.screen.show(event.answering(cmd.clone())).await;
    }

    async fn error(&self, cmd: &Option<CommandId>, error: PeerError) {
        self.show(cmd, error).await;
    }
}

/// Why a message whose chat ended (or went away) while it was on its way is kept.
fn ended(peer: PeerName) -> String {
    format!(
        "its chat ended while it was on its way; it goes again when a chat with {peer} is open, \
         and {peer} shows it once"
    )
}
