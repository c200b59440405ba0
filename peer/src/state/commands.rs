//! What the state does for the user's commands: chat requests we send and their replies, the
//! answers we give, sealing our messages, leaving chats, trusting a new key.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use p2p_shared::handshake::{HandshakeMessage, Initiator, Responder};
use p2p_shared::identity::{NoiseKey, PublicKey};
use p2p_shared::seal::ChatKeys;
use p2p_shared::wire::frame::ChatId;
use p2p_shared::{Answer, MessageId, Outcome, PeerInfo, PeerName, SealedRequest};

use super::incoming::{IncomingEnd, PendingRequest};
use super::sealed::{Acked, Sealed, SentFrame};
use super::{Answering, Context, Effect, Held, Leaving, PeerState};
use crate::error::PeerError;
use crate::event::{Event, PeerKey};
use crate::json_command::CommandId;

impl PeerState {
    /// The Noise static key to ask `name` (whose key is `key`) with IK, if we have one.
    pub fn pinned_noise(&self, name: &PeerName, key: &PublicKey, cx: &Context) -> Option<NoiseKey> {
        self.pins.noise(cx.namespace, name, key)
    }

    /// Records a chat request, and our side of its handshake, before it goes out; `cmd` is
    /// the command that asks for it, whose id every event of the request carries.
    pub fn request_sent(
        &mut self,
        id: MessageId,
        addr: SocketAddr,
        handshake: Initiator,
        cmd: Option<CommandId>,
    ) {
        self.outgoing.sent(id, addr, handshake, (cmd, None));
    }

    /// The other side, `from`, said our request `id` is pending for `expires_in`; `verified`
    /// if the registry binds its name to its key. Refused if its key is not the one pinned for
    /// its name (the request then ends, and the warning is out).
    pub fn request_pending(
        &mut self,
        id: MessageId,
        from: PeerInfo,
        (expires_in, verified): (Duration, bool),
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) {
        let mut shown = Vec::new();
        self.pending_reply(id, from, (expires_in, verified), cx, &mut shown);
        fx.extend(shown);
    }

    pub(super) fn pending_reply(
        &mut self,
        id: MessageId,
        from: PeerInfo,
        (expires_in, verified): (Duration, bool),
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) {
        // Asked before this reply pins the key on first contact.
        let verified = verified || self.pins.vouches(cx.namespace, &from.name, &from.key);
        let cmd = self.outgoing.command(id);
        if self.pin_for(&cmd, (&from.name, from.key), cx, fx).is_err() {
            let why = PeerError::RequestNotMade { peer: from.name };
            self.request_failed(id, why, fx);
            return;
        }
        // None: the request has its end already (an answer cannot overtake this reply: it is
        // refused busy until the reply is read, but the request may have ended otherwise).
        let expires = self
            .outgoing
            .pending(id, from.name, from.key, expires_in, cx.now);
        if let Some(replaced) = expires {
            for ended in replaced {
                fx.push(Effect::Show(ended.shown()));
            }
            let sent = Event::RequestSent {
                peer: from.name,
                addr: from.addr,
                key: PeerKey(from.key),
                verified,
            };
            fx.push(Effect::Show(sent.answering(cmd)));
        }
    }

    /// Our request `id` could not be made.
    pub fn request_failed(&mut self, id: MessageId, why: PeerError, fx: &mut Vec<Effect>) {
        if let Some(ended) = self.outgoing.failed(id, why) {
            fx.push(Effect::Show(ended.shown()));
        }
    }

    /// The request a `yes` (from `from`, or the only one) would take, if the registry did not
    /// answer about it when it came: its name and key, to ask the registry again first.
    pub fn unchecked_request(
        &self,
        from: Option<PeerName>,
        now: Instant,
    ) -> Option<(PeerName, PublicKey)> {
        let request = self.incoming.peek(from.as_ref(), now).ok()?;
        request.unanswered.then_some((request.from, request.key))
    }

    /// Takes the request to answer (from `from`, or the only one) with the command `cmd`. On
    /// `yes` the chat's keys are agreed and the chat counts as open from this moment, so a
    /// message the requester sends right after our answer is not refused; a `yes` that cannot
    /// be kept (the handshake fails, or another key was pinned for the name since) becomes a
    /// `no`, with an error.
    pub fn answer(
        &mut self,
        from: Option<PeerName>,
        accept: bool,
        cmd: Option<CommandId>,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> Result<Answering, PeerError> {
        let request = self.incoming.take(from.as_ref(), cx.now)?;
        let declined = |request, yes_refused, cmd| Answering {
            request,
            answer: Answer::Declined,
            yes_refused,
            handshake: None,
            cmd,
        };
        if !accept {
            return Ok(declined(request, false, cmd));
        }
        let peer = request.from;
        // Accepting is choosing this contact: its key is pinned now.
        let keys = match self.pin_for(&cmd, (&peer, request.key), cx, fx) {
            Ok(()) => self.agree(&request),
            Err(_) => None,
        };
        let Some((keys, handshake)) = keys else {
            return Ok(declined(request, true, cmd));
        };
        let reopening = self.conversations.is_resumable(&peer, &request.key);
        self.open_chat(peer, request.addr, request.key, keys, cx, fx);
        self.chats.accepted(&peer, request.id);
        self.reopening = reopening.then_some(request.id);
        Ok(Answering {
            request,
            answer: Answer::Accepted,
            yes_refused: false,
            handshake: Some(handshake),
            cmd,
        })
    }

    /// Checks `key` against the one pinned for `name`, pinning it on first contact, for the
    /// command `cmd`: a changed key's warning answers that command.
    fn pin_for(
        &mut self,
        cmd: &Option<CommandId>,
        (name, key): (&PeerName, PublicKey),
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> Result<(), Outcome> {
        let mut effects = Vec::new();
        let checked = self.pins.check(cx.namespace, name, key, true, &mut effects);
        fx.extend(effects.into_iter().map(|effect| match effect {
            Effect::Show(shown) => Effect::Show(shown.event.answering(cmd.clone())),
            other => other,
        }));
        checked
    }

    /// Finishes our side of `request`'s handshake: the chat's keys, and message 2 that
    /// gives the requester its side; `None` if the handshake cannot finish.
    fn agree(&self, request: &PendingRequest) -> Option<(ChatKeys, HandshakeMessage)> {
        let me = &self.origin;
        Responder::accept(
            &me.identity,
            &me.name,
            request.id,
            request.pattern,
            &request.handshake,
            &request.key,
        )
        .ok()
    }

    /// Our answer reached the requester, or could not (`delivered`): the request's end.
    pub fn answer_sent(
        &mut self,
        answering: Answering,
        delivered: Result<(), PeerError>,
        fx: &mut Vec<Effect>,
    ) {
        let Answering {
            request,
            answer,
            yes_refused,
            cmd,
            ..
        } = answering;
        let peer = request.from;
        let end = match (answer, delivered) {
            (Answer::Accepted, Ok(())) => IncomingEnd::Accepted {
                peer,
                addr: request.addr,
                key: request.key,
            },
            (Answer::Accepted, Err(why)) => {
                // The chat opened when the user said yes; with no requester, it never starts.
                // Unless another request opened it since; and a chat this reopened is away
                // again, not ended.
                if self.chats.was_accepted(&peer, &request.key, request.id) {
                    match self.reopening == Some(request.id) {
                        true => self.away(&peer, fx),
                        false => self.close_chat(&peer, fx),
                    }
                }
                IncomingEnd::Undelivered(why)
            }
            (_, _) if yes_refused => IncomingEnd::YesRefused { peer },
            (_, Ok(())) => IncomingEnd::Declined { peer },
            (_, Err(why)) => IncomingEnd::DeclinedUntold { peer, why },
        };
        // A chat reopened without a `yes` is shown as that, not as an acceptance.
        let event = match end {
            IncomingEnd::Accepted { peer, addr, key } if self.reopening == Some(request.id) => {
                let queued = self.conversations.queued(&peer);
                let key = PeerKey(key);
                Event::ChatResumed {
                    peer,
                    addr,
                    key,
                    queued,
                }
            }
            end => end.event(),
        };
        fx.push(Effect::Show(event.answering(cmd)));
    }

    /// Seals `body` as message `id` for the chat with `peer`; `None` if no chat with it is
    /// open. A retry seals the same id again (under a new counter), so the receiver can tell
    /// it from a new message.
    pub fn seal(&mut self, peer: &PeerName, id: MessageId, body: SealedRequest) -> Option<Sealed> {
        self.chats.seal(&self.origin, peer, id, body)
    }

    /// Seals chat message `id` with `text` for the chat with `peer`, in its place in the
    /// chat's order (`order.rs`): the one it took when typed, or the next in this chat.
    /// `again`: it was sent before (the wire's `again`). `None` if the chat open is not with
    /// `to`, the key it was typed to.
    pub fn seal_message(
        &mut self,
        peer: &PeerName,
        id: MessageId,
        text: String,
        again: bool,
        to: Option<PublicKey>,
    ) -> Option<Sealed> {
        // Only in a chat with the key it was typed to (`conversations::Place`).
        if to.is_none() || self.chats.key(peer) != to {
            return None;
        }
        let seq = self.chats.place_of(peer, id)?;
        let message = SealedRequest::ChatMessage { text, seq, again };
        self.seal(peer, id, message)
    }

    /// Holds `peer`'s early chat message `seq` until its turn, `waiter` waiting for it.
    pub fn hold(&mut self, (peer, seq): (PeerName, u64), held: Held, now: Instant) {
        // The earlier try it replaces: its sender gave up on that connection, and dropping
        // its waiter answers it `busy`.
        drop(self.chats.hold(&peer, seq, held, now));
    }

    /// What the reply to our sealed frame `sent` to `peer` says.
    pub fn acknowledged(&self, peer: &PeerName, sent: SentFrame, reply: &[u8]) -> Acked {
        self.chats.acknowledged(peer, sent, reply)
    }

    /// Ends the chat with `peer`; returns a sealed `disconnect` to tell it, if one was open.
    pub fn disconnect(&mut self, peer: &PeerName, fx: &mut Vec<Effect>) -> Option<Sealed> {
        let goodbye = self.seal(peer, p2p_shared::wire::new_id(), SealedRequest::Disconnect)?;
        self.close_chat(peer, fx);
        Some(goodbye)
    }

    /// `forget PEER`: its chat ends (already told, if it was open), what was kept for it ends
    /// undelivered, and its pin goes. False if there was nothing to forget.
    pub fn forget(&mut self, peer: &PeerName, cx: &Context, fx: &mut Vec<Effect>) -> bool {
        let had_chat = self.end_away(peer, fx);
        let pin = self.pins.forget(cx.namespace, peer);
        let had_pin = pin.is_some();
        fx.extend(pin.map(Effect::Write));
        had_chat || had_pin
    }

    /// `disconnect PEER` for a chat that is away: it ends here (its partner cannot be told,
    /// and what was kept for it ends undelivered). False if there is none.
    pub fn end_away(&mut self, peer: &PeerName, fx: &mut Vec<Effect>) -> bool {
        let away = self.keeps_for(peer);
        if away {
            self.close_chat(peer, fx);
        }
        away
    }

    /// Chat `chat` with `peer`, if it is still the one open (not ended, nor opened again
    /// since under new keys, even with the same partner), lost its partner: it is away, its
    /// keys gone, until a new handshake opens it again. A verdict reached in a chat says
    /// nothing about the next one.
    pub fn away_if(&mut self, peer: &PeerName, chat: ChatId, fx: &mut Vec<Effect>) -> bool {
        let open = self.chats.id(peer) == Some(chat);
        if open {
            self.away(peer, fx);
        }
        open
    }

    /// The chat open with `peer` lost its partner: it is away.
    fn away(&mut self, peer: &PeerName, fx: &mut Vec<Effect>) {
        let Some(key) = self.chats.key(peer) else {
            return;
        };
        let held = self.chats.close(peer).unwrap_or_default();
        fx.extend(held.into_iter().map(Effect::Release));
        fx.push(Effect::ChatsChanged);
        if let Some(write) = self.conversations.away(peer, &key) {
            fx.push(Effect::Write(write));
        }
    }

    /// Ends every chat and every request: we leave. Returns whom to tell.
    pub fn leave(&mut self, fx: &mut Vec<Effect>) -> Leaving {
        let peers: Vec<PeerName> = self.chats.names().copied().collect();
        let goodbyes = peers
            .iter()
            .filter_map(|peer| self.disconnect(peer, fx))
            .collect();
        let mut unanswered = Vec::new();
        for (request, end) in self.incoming.drain() {
            fx.push(Effect::Show(end.event().into()));
            unanswered.push(request);
        }
        let (ends, withdraw) = self.outgoing.leave();
        for end in ends {
            fx.push(Effect::Show(end.shown()));
        }
        Leaving {
            goodbyes,
            unanswered,
            withdraw,
        }
    }

    /// Pins the changed key `peer` last offered.
    pub fn trust(
        &mut self,
        peer: &PeerName,
        fingerprint: &str,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> Result<PublicKey, PeerError> {
        self.pins.trust(cx.namespace, peer, fingerprint, fx)
    }
}
