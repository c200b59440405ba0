//! What the state does with what arrives from the network: signed requests from other peers
//! (pings, chat requests and their answers) and frames sealed in our chats.

use p2p_shared::handshake::{HandshakeMessage, Pattern, Responder};
use p2p_shared::transport::Refusal;
use p2p_shared::wire::MAX_TEXT_LEN;
use p2p_shared::{
    Answer, Envelope, ErrorCode, MessageId, Outcome, PeerInfo, PeerRequest, SealedRequest,
};

use super::chats::Chats;
use super::order::Turn;
use super::outgoing::{Ended, NotAnswerable, OutgoingEnd};
use super::{
    already_connected, screen_full, tell, AckTo, ChatMessage, Context, Effect, FromChat, PeerState,
    Showing, Storing, Vouch,
};
use crate::disk::Record;
use crate::event::{Event, PeerKey};

impl PeerState {
    /// The outcome of a signed request from another peer (its signature was checked).
    /// A chat request comes with what the registry says of its name and key (`vouch.rs`).
    pub fn signed_request(
        &mut self,
        request: Envelope<PeerRequest>,
        vouch: Option<Vouch>,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> Outcome {
        let Envelope { id, from, body, .. } = request;
        tracing::debug!(from = %from.name, addr = %from.addr, ?body, "request");
        match body {
            // `inbound.rs` answers pings without the broker; this is what it answers.
            PeerRequest::Ping => Outcome::Ok,
            PeerRequest::ChatRequest { pattern, handshake } => {
                let vouch = vouch.unwrap_or(Vouch::NoRegistry);
                self.chat_request(id, from, (pattern, handshake), vouch, cx, fx)
            }
            PeerRequest::ChatAnswer {
                request,
                answer,
                handshake,
            } => self.chat_answer(request, answer, handshake, from, cx, fx),
            PeerRequest::ChatWithdraw { request } => self.chat_withdrawn(request, &from, fx),
            // `inbound.rs` hands exchanges to `exchange_received`, with the address they came
            // in at; one here has none.
            PeerRequest::Exchange { .. } | PeerRequest::Broadcast { .. } => Outcome::error(
                ErrorCode::InvalidRequest,
                "exchanges and broadcasts are answered by exchange_received and \
                 broadcast_received",
            ),
        }
    }

    /// The refusal of a chat request from `from` that no word of the registry's about its
    /// name could change, if it is refused so. `inbound.rs` asks before it asks the registry,
    /// so that a request refused anyway costs no lookup; [`PeerState::signed_request`] asks
    /// again with the registry's answer, since the state may have changed meanwhile.
    pub fn refusal_before_vouching(&self, from: &PeerInfo, cx: &Context) -> Option<Outcome> {
        if from.name == self.origin.name {
            return Some(Outcome::error(
                ErrorCode::InvalidRequest,
                "that is my own name: no chat with yourself",
            ));
        }
        // `block NAME`: dropped without a word to the user.
        if self.is_blocked(&from.key) {
            return Some(Outcome::error(
                ErrorCode::InvalidRequest,
                "this peer takes no chat requests from you",
            ));
        }
        // First: a request shows a line (a warning, if its key is not the pinned one), and
        // anyone may send requests at any rate.
        if !cx.screen_room {
            return Some(screen_full());
        }
        // A request from the very key we chat with under that name. (Another key in that
        // name may be an impostor the registry knows: that one is refused with its warning.)
        // Unless it reopens our chat: then the partner lost its keys (it restarted before we
        // noticed), and the new handshake replaces them.
        let reopens = self.conversations.is_resumable(&from.name, &from.key);
        if self.chats.key(&from.name) == Some(from.key) && !reopens {
            return Some(already_connected(from));
        }
        // The bounds that hold even for a request the registry vouches for.
        let could = self.incoming.could_take(from);
        could
            .err()
            .map(|why| Outcome::error(ErrorCode::TooManyRequests, why.to_string()))
    }

    fn chat_request(
        &mut self,
        id: MessageId,
        from: PeerInfo,
        (pattern, handshake): (Pattern, HandshakeMessage),
        vouch: Vouch,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> Outcome {
        if let Some(refusal) = self.refusal_before_vouching(&from, cx) {
            return refusal;
        }
        // A name means the key the registry binds it to; then the key pinned for it here.
        if let Vouch::Impostor { registered } = vouch {
            let impostor = Event::Impostor {
                peer: from.name,
                offered: from.key.fingerprint(),
                registered: registered.fingerprint(),
                offered_key: from.key,
                registered_key: registered,
            };
            fx.push(Effect::Show(impostor.into()));
            return Outcome::error(
                ErrorCode::KeyChanged,
                format!("the registry binds {} to another key", from.name),
            );
        }
        if let Err(refusal) = self
            .pins
            .check(cx.namespace, &from.name, from.key, false, fx)
        {
            return refusal;
        }
        let verified =
            vouch.is_registered() || self.pins.vouches(cx.namespace, &from.name, &from.key);
        let unanswered = !verified && vouch == Vouch::Unanswered;
        if self.chats.contains(&from.name)
            && !self.conversations.is_resumable(&from.name, &from.key)
        {
            return already_connected(&from);
        }
        // Message 1 must be a handshake by the key that signed the request, meant for us.
        let me = &self.origin;
        let heard = Responder::hear(&me.identity, &me.name, id, pattern, &handshake, &from.key);
        if let Err(why) = heard {
            return Outcome::error(ErrorCode::InvalidRequest, why.to_string());
        }
        // The partner of an away chat asks to reopen it: taken without a `yes`, unless our own
        // request to reopen it crossed this one and ours goes first (the smaller key's does,
        // on both sides, so exactly one opens the chat).
        let resumable = self.conversations.is_resumable(&from.name, &from.key);
        if resumable
            && me.identity.public() < from.key
            && self
                .outgoing
                .awaiting()
                .any(|(peer, ..)| *peer == from.name)
        {
            return Outcome::error(
                ErrorCode::AlreadyConnected,
                "my own request to reopen our chat crossed yours and goes first",
            );
        }
        match self.incoming.offer(
            id,
            &from,
            (pattern, handshake, verified, unanswered),
            cx.now,
            cx.utc,
        ) {
            Ok(replaced) => {
                if let Some((old, end)) = replaced {
                    fx.push(Effect::Show(end.event().into()));
                    // A requester displaced by another key waits for an answer otherwise.
                    if let Some(answer) = end.owed() {
                        fx.push(tell(&old, answer));
                    }
                }
                let expires_in = self.incoming.ttl();
                let expires_in_ms = expires_in.as_millis().try_into().unwrap_or(u64::MAX);
                if resumable {
                    fx.push(Effect::AutoAccept(from.name));
                    return Outcome::Pending { expires_in_ms };
                }
                if let Ok(offered) = self.incoming.peek(Some(&from.name), cx.now) {
                    fx.push(Effect::Show(offered.arrived(cx.now).into()));
                }
                Outcome::Pending { expires_in_ms }
            }
            Err(why) => Outcome::error(ErrorCode::TooManyRequests, why.to_string()),
        }
    }

    fn chat_answer(
        &mut self,
        request: MessageId,
        answer: Answer,
        handshake: Option<HandshakeMessage>,
        from: PeerInfo,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> Outcome {
        let asked = match self.outgoing.answerable(request, &from.name) {
            Ok(asked) => asked,
            Err(NotAnswerable::NotYet) => {
                return Outcome::error(
                    ErrorCode::Busy,
                    "that request's pending reply is not read yet; answer again in a moment",
                )
            }
            // The acceptance that opened our chat, sent again: our reply to it was lost on
            // the way, and the accepter must not end the chat we both opened.
            Err(NotAnswerable::Unknown)
                if answer == Answer::Accepted
                    && self.chats.was_opened_by(&from.name, &from.key, request) =>
            {
                return Outcome::Ok
            }
            Err(NotAnswerable::Unknown) => return unknown_request(),
        };
        // Checked before anything is taken: a refused answer leaves the request to the
        // real one. (The key was pinned when the pending reply came.)
        if let Err(refusal) = self
            .pins
            .check(cx.namespace, &from.name, from.key, true, fx)
        {
            return refusal;
        }
        // A key trusted for the name since the `pending` reply was not asked.
        if from.key != asked {
            return unknown_request();
        }
        let Some(Ended { end, cmd }) = self.outgoing.answered(request, answer, handshake) else {
            unreachable!("answerable just now");
        };
        // A chat we had (open, or away) opens again: shown as that.
        let event = match &end {
            OutgoingEnd::Accepted {
                peer, addr, key, ..
            } if self.conversations.is_resumable(peer, key) => {
                let (peer, addr, key) = (*peer, *addr, PeerKey(*key));
                let queued = self.conversations.queued(&peer);
                Event::ChatResumed {
                    peer,
                    addr,
                    key,
                    queued,
                }
            }
            end => end.event(),
        };
        // A `no` to reopening a chat that has ended or opened another way since ends nothing,
        // and says nothing.
        let stale = match &end {
            OutgoingEnd::ReopenDeclined { peer, key } => !self.away_with(peer, key),
            _ => false,
        };
        if !stale {
            fx.push(Effect::Show(event.answering(cmd)));
        }
        match end {
            OutgoingEnd::Accepted {
                peer,
                addr,
                key,
                keys,
            } => {
                self.open_chat(peer, addr, key, keys, cx, fx);
                self.chats.opened_by(&peer, request);
                Outcome::Ok
            }
            OutgoingEnd::ReopenDeclined { peer, .. } => {
                if !stale {
                    self.close_chat(&peer, fx);
                }
                Outcome::Ok
            }
            OutgoingEnd::Failed(why) => Outcome::error(ErrorCode::InvalidRequest, why.to_string()),
            _ => Outcome::Ok,
        }
    }

    /// The requester `from` withdraws its request `id`: it exits. Only a request that key
    /// made under that name ends (`IncomingRequests::withdraw`); anything else is refused and
    /// shown to nobody, as a forged answer is.
    fn chat_withdrawn(&mut self, id: MessageId, from: &PeerInfo, fx: &mut Vec<Effect>) -> Outcome {
        let Some(end) = self.incoming.withdraw(id, from) else {
            return Outcome::error(
                ErrorCode::UnknownRequest,
                "no request of yours with that id is waiting for an answer here",
            );
        };
        // A request that reopens an away chat was never shown (it is taken without a `yes`),
        // so its end is not either.
        if !self.conversations.is_resumable(&from.name, &from.key) {
            fx.push(Effect::Show(end.event().into()));
        }
        Outcome::Ok
    }

    /// Opens a sealed frame from a partner and decides its acknowledgement.
    pub fn open_sealed(
        &mut self,
        frame: &[u8],
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> Result<FromChat, Refusal> {
        let opened = self.chats.open_frame(frame)?;
        let (peer, counter) = (opened.peer, opened.counter);
        let ack = |chats: &Chats, re, outcome| {
            chats
                .seal_ack(&self.origin, &peer, counter, re, outcome)
                .expect("the chat is open")
        };
        let request = match opened.request {
            Ok(request) => request,
            Err(e) => {
                let outcome = Outcome::error(e.code(), e.to_string());
                return Ok(FromChat::Ack(ack(&self.chats, None, outcome)));
            }
        };
        let re = Some(request.id);
        match request.body {
            SealedRequest::ChatMessage { text, .. }
                if text.is_empty() || text.len() > MAX_TEXT_LEN =>
            {
                let outcome = Outcome::error(
                    ErrorCode::InvalidRequest,
                    format!(
                        "a message has 1 to {MAX_TEXT_LEN} bytes, this one has {}",
                        text.len()
                    ),
                );
                Ok(FromChat::Ack(ack(&self.chats, re, outcome)))
            }
            SealedRequest::ChatMessage { seq: 0, .. } => {
                let outcome = Outcome::error(
                    ErrorCode::InvalidRequest,
                    "a chat message's seq starts at 1",
                );
                Ok(FromChat::Ack(ack(&self.chats, re, outcome)))
            }
            // Without room it waits at its sender (`busy`), unless it showed before: a retry
            // whose acknowledgement was lost is only stored and answered.
            SealedRequest::ChatMessage { .. }
                if !cx.screen_room && !self.chats.shown_before(request.id) =>
            {
                Ok(FromChat::Ack(ack(&self.chats, re, screen_full())))
            }
            // Shown in the order its sender typed it (`order.rs`), acknowledged once stored;
            // a retry of one shown (its acknowledgement lost) is never shown twice.
            SealedRequest::ChatMessage { text, seq, again } => {
                let turn = self.chats.turn(&peer, seq);
                let storing = Storing {
                    record: Record {
                        id: request.id,
                        peer,
                        sender: peer,
                        text: text.clone(),
                        at: cx.utc,
                    },
                    ack: AckTo {
                        peer,
                        counter,
                        re: request.id,
                    },
                    then: None,
                };
                // A message shows once, by id: a retry comes under the same one, and so does a
                // message kept by its sender while the chat was away, in the chat that reopened.
                // One sent again and not among the ids shown lately asks the history first.
                let event = Event::Message {
                    peer,
                    text,
                    at: cx.utc,
                };
                let showing = Showing::arrived(event, again);
                match turn {
                    Turn::Full => {
                        let why = "too many messages of this chat wait for one before them";
                        let busy = Outcome::error(ErrorCode::Busy, why);
                        return Ok(FromChat::Ack(ack(&self.chats, re, busy)));
                    }
                    Turn::Early => {
                        let message = Box::new(ChatMessage { showing, storing });
                        return Ok(FromChat::Early { peer, seq, message });
                    }
                    Turn::Next | Turn::Passed => {}
                }
                // Settled before the held ones it releases can push its id out of those shown.
                let showing = self.chats.settle(request.id, showing);
                if turn == Turn::Next {
                    let released = self.chats.show(&peer, seq);
                    fx.extend(released.into_iter().map(Effect::Release));
                }
                let message = ChatMessage { showing, storing };
                Ok(FromChat::Message(Box::new(message)))
            }
            SealedRequest::Keepalive => Ok(FromChat::Ack(ack(&self.chats, re, Outcome::Ok))),
            SealedRequest::Disconnect => {
                let sealed = ack(&self.chats, re, Outcome::Ok);
                self.close_chat(&peer, fx);
                fx.push(Effect::Show(Event::PeerDisconnected { peer }.into()));
                Ok(FromChat::Ack(sealed))
            }
        }
    }
}

/// The refusal of an answer to a request we have not made, or not of its sender.
fn unknown_request() -> Outcome {
    Outcome::error(
        ErrorCode::UnknownRequest,
        "no request of mine with that id is waiting for your answer",
    )
}
