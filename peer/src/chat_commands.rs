//! The chat commands: asking for a chat, answering one, leaving a chat, reading the history,
//! trusting a new key, a conversation (`talk`; sending a message is in
//! `message_commands.rs`).
//!
//! A conversation needs a chat: `talk` is refused without one (or with our own name), and
//! ends, saying so, once its chat has ended, so that lines are commands again and a user
//! whose `exit` would be a message is never trapped.
//!
//! Each sends what it must on the network itself and asks the broker for every change of
//! state, which ends each chat request in exactly one event (`state/`). An answer that gets
//! no reply, or a `busy` one, is retried with backoff for `--retry-for`.

use std::time::Duration;

use p2p_shared::handshake::{Initiator, Recipient};
use p2p_shared::transport::{self, Reply};
use p2p_shared::wire::new_id;
use p2p_shared::{runtime, ErrorCode, Outcome, PeerName, PeerRequest};

use crate::command::Target;
use crate::command_loop::CommandLoop;
use crate::error::{Failure, KeyMismatch, PeerError};
use crate::event::{Event, PeerKey};
use crate::resume;
use crate::retry::{retry, Attempt};
use crate::state::{Context, PeerState};

impl CommandLoop {
    pub(crate) async fn chat_request(&mut self, target: Target) {
        // By name, the registry also says which key the peer must answer with, and, most
        // often, the static key that key signed.
        let (addr, expected, registered_noise, vouched) = match target {
            Target::Addr { host, port } => match runtime::resolve(&host, port).await {
                Ok(addr) => (addr, None, None, false),
                Err(e) => {
                    let why = e.to_string();
                    return self.error(PeerError::UnknownHost { host, why }).await;
                }
            },
            // Not asked of the registry: it would say the name is not online, or hand back
            // our own address.
            Target::Name(name) if name == self.origin.name => {
                return self.error(PeerError::OwnName { name }).await
            }
            Target::Name(name) => match self.lookup(&name).await {
                Ok((peer, noise, vouched)) => (peer.addr, Some((name, peer.key)), noise, vouched),
                Err(e) => return self.error(e).await,
            },
        };
        // A chat open with that peer (or at that address) is not asked for again: the other
        // side would take it as reopening the chat.
        let name = expected.map(|(name, _)| name);
        let open = move |state: &mut PeerState, _: &_, _: &mut _| state.chat_open_with(name, addr);
        if self.broker.call(open).await == Some(true) {
            return self.error(PeerError::AlreadyConnected { addr }).await;
        }
        let id = new_id();
        // By name, to a peer whose static key we know for the key the name means (proved in
        // an earlier chat, or signed by that key in the registry's answer): IK, so that only
        // that peer can read message 1's payload or answer it. Otherwise IX; message 1 then
        // names whom we asked for, when we asked by name, and nobody else takes it.
        let noise = match expected {
            Some((name, key)) => {
                let pinned = move |state: &mut PeerState, cx: &_, _: &mut _| {
                    state.pinned_noise(&name, &key, cx)
                };
                self.broker
                    .call(pinned)
                    .await
                    .flatten()
                    .or(registered_noise)
            }
            None => None,
        };
        let to = match (expected, &noise) {
            (Some((name, _)), Some(noise)) => Recipient::Pinned { name, noise },
            (expected, _) => Recipient::Unknown(expected.map(|(name, _)| name)),
        };
        let (handshake, pattern, first) = Initiator::start(&self.origin.identity, id, to);
        let body = PeerRequest::ChatRequest {
            pattern,
            handshake: first,
        };
        // The request keeps the command's id: its end may come long after the command.
        let cmd = self.running.clone();
        let recorded = self
            .broker
            .call(move |state, _, _| state.request_sent(id, addr, handshake, cmd));
        recorded.await;
        // A `busy` peer (its user is not reading, or it is flooded) may take it in a moment;
        // one that does not answer at all is reported at once (a wrong address, most likely).
        let send = || async {
            match transport::request(addr, &self.origin, id, body.clone()).await {
                // Not taken: the receiver forgot its id, so the same request may come again.
                Err(e) if e.code() == Some(ErrorCode::Busy) => {
                    tracing::debug!(%addr, "busy; the chat request will be sent again");
                    Attempt::Again(e)
                }
                result => Attempt::Done(result),
            }
        };
        let sent = retry(self.retry_for, send).await.and_then(|result| result);
        let outcome = match sent {
            Ok(Reply {
                from,
                outcome: Outcome::Pending { expires_in_ms },
                ..
            }) => match expected {
                Some((name, key)) if from.name != name || from.key != key => {
                    Err(PeerError::NotTheRegisteredKey(Box::new(KeyMismatch {
                        addr,
                        answered: from.name,
                        offered: from.key.fingerprint(),
                        expected: key.fingerprint(),
                        name,
                    })))
                }
                // By name, the registry's key was checked just now (or, with no registry to
                // answer, the book's, vouched for if pinned).
                Some(_) => Ok((from, Duration::from_millis(expires_in_ms), vouched)),
                // By address, whoever answered chose its name: the registry must bind that
                // name to that key, or it is an impostor; a name it does not know stays
                // unverified.
                None => match self.registry.lookup(&from.name).await {
                    Ok(registered) if registered.key() != from.key => {
                        Err(PeerError::NotTheRegisteredKey(Box::new(KeyMismatch {
                            addr,
                            answered: from.name,
                            offered: from.key.fingerprint(),
                            expected: registered.key().fingerprint(),
                            name: from.name,
                        })))
                    }
                    vouched => {
                        let verified = vouched.is_ok();
                        Ok((from, Duration::from_millis(expires_in_ms), verified))
                    }
                },
            },
            Ok(other) => Err(PeerError::UnexpectedAnswer {
                addr,
                what: format!("{:?}", other.outcome),
            }),
            Err(e) => Err(match e.code() {
                Some(ErrorCode::AlreadyConnected) => PeerError::AlreadyConnected { addr },
                Some(ErrorCode::TooManyRequests) => PeerError::TooManyRequests { addr },
                Some(ErrorCode::KeyChanged) => PeerError::KnownOtherwise {
                    addr,
                    me: self.origin.name,
                },
                _ => PeerError::RequestFailed(Failure::of(&e, &addr.to_string())),
            }),
        };
        // Either way the request's end (or "sent") is the broker's to show, in order with
        // the answer, which may come at once.
        self.broker
            .call(move |state, cx, fx| match outcome {
                Ok((from, expires_in, verified)) => {
                    state.request_pending(id, from, (expires_in, verified), cx, fx)
                }
                Err(why) => state.request_failed(id, why, fx),
            })
            .await;
    }

    pub(crate) async fn answer(&mut self, accept: bool, from: Option<PeerName>) {
        // A request the registry did not answer about when it came: ask again before a `yes`
        // pins its key. An impostor after all gets a `no`.
        let mut accept = accept;
        if accept {
            let unchecked = move |state: &mut PeerState, cx: &Context, _: &mut _| {
                state.unchecked_request(from, cx.now)
            };
            if let Some((name, key)) = self.broker.call(unchecked).await.flatten() {
                match self.registry.lookup(&name).await {
                    Ok(found) if found.key() != key => {
                        let warning = Event::Impostor {
                            peer: name,
                            offered: key.fingerprint(),
                            registered: found.key().fingerprint(),
                            offered_key: key,
                            registered_key: found.key(),
                        };
                        self.show(warning).await;
                        accept = false;
                    }
                    _ => {}
                }
            }
        }
        let cmd = self.running.clone();
        let taken = self
            .broker
            .call(move |state, cx, fx| state.answer(from, accept, cmd, cx, fx));
        let answering = match taken.await {
            Some(Ok(answering)) => answering,
            Some(Err(e)) => return self.error(e).await,
            None => return,
        };
        let delivered = resume::deliver_answer(&self.origin, self.retry_for, &answering).await;
        self.broker
            .call(move |state, _, fx| state.answer_sent(answering, delivered, fx))
            .await;
    }

    pub(crate) async fn disconnect(&mut self, peer: PeerName) {
        let goodbye = self
            .broker
            .call(move |state, _, fx| state.disconnect(&peer, fx));
        let Some(goodbye) = goodbye.await.flatten() else {
            let ended = self
                .broker
                .call(move |state, _, fx| state.end_away(&peer, fx));
            return match ended.await {
                Some(true) => self.show(Event::Disconnected { peer }).await,
                _ => self.error(PeerError::NotInChat { peer }).await,
            };
        };
        let told = transport::exchange(goodbye.from, goodbye.addr, goodbye.frame).await;
        self.show(Event::Disconnected { peer }).await;
        if let Err(e) = told {
            let why = Failure::of(&e, &goodbye.addr.to_string());
            // Written whole with no answer: it may well have arrived.
            let error = match e.after_writing() {
                true => PeerError::MayNotHaveTold { peer, why },
                false => PeerError::CouldNotTell { peer, why },
            };
            self.error(error).await;
        }
    }

    /// `talk PEER`: plain lines are messages to PEER from now on, if there is a chat with
    /// it, open or away (whose messages are kept); `talk` alone: lines are commands again.
    pub(crate) async fn talk(&mut self, with: Option<PeerName>) {
        if let Some(peer) = with {
            if peer == self.origin.name {
                return self.error(PeerError::OwnName { name: peer }).await;
            }
            if !self.has_chat_with(peer).await {
                return self.error(PeerError::NotInChat { peer }).await;
            }
        }
        self.talk.set(with);
        self.bell.0.talking(with);
        self.show(Event::Talking { peer: with }).await
    }

    /// Ends the conversation if its chat has ended (neither open nor away), telling the user
    /// in answer to the command running; `untaken`: the line just read was written for it,
    /// and is neither sent nor run. True if it ended.
    pub(crate) async fn end_talk_if_chat_ended(&mut self, untaken: bool) -> bool {
        let Some(peer) = self.talk.with() else {
            return false;
        };
        if self.has_chat_with(peer).await {
            return false;
        }
        self.talk.set(None);
        self.bell.0.talking(None);
        self.show(Event::TalkEnded { peer, untaken }).await;
        true
    }

    /// Whether there is a chat with `peer`, open or away (true if the broker is gone: the
    /// peer is leaving, and there is nothing to end).
    async fn has_chat_with(&self, peer: PeerName) -> bool {
        let has = self
            .broker
            .call(move |state, _, _| state.has_chat_with(&peer));
        has.await.unwrap_or(true)
    }

    pub(crate) async fn history(&mut self, peer: PeerName, n: usize) {
        match self.disk.last(peer, n).await {
            Ok(lines) => self.show(Event::History { peer, lines }).await,
            Err(why) => self.error(PeerError::History { why }).await,
        }
    }

    pub(crate) async fn trust(&mut self, peer: PeerName, fingerprint: String) {
        let trusted = self
            .broker
            .call(move |state, cx, fx| state.trust(&peer, &fingerprint, cx, fx));
        match trusted.await {
            Some(Ok(key)) => {
                self.disk.written().await;
                let key = PeerKey(key);
                self.show(Event::Trusted { peer, key }).await
            }
            Some(Err(e)) => self.error(e).await,
            None => {}
        }
    }

    pub(crate) async fn trust_registry(&mut self, fingerprint: String) {
        match self.registry.trust(&fingerprint).await {
            Ok((registry, key)) => {
                self.disk.written().await;
                let key = PeerKey(key);
                self.show(Event::RegistryTrusted { registry, key }).await
            }
            Err(why) => self.error(PeerError::RegistryNotTrusted(why)).await,
        }
    }
}
