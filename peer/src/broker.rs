//! The broker task: the one owner of this peer's chat state.
//!
//! Open chats (with their session keys and replay windows), incoming requests waiting for
//! `yes`/`no`, our own requests waiting for an answer (with our half of their key agreement),
//! and the pinned keys of other peers all live in one [`State`], owned by one task. The
//! network side (inbound requests and sealed frames) and the user side (the session running
//! commands) talk to it through a [`Broker`] handle and get their answers on oneshot
//! channels: no locks, and every change happens in one order. All sealing and opening of
//! chat frames happens here too, since the keys and counters are part of that state.
//!
//! The broker never waits on the network, so a slow peer never delays another; the only
//! sends it starts (expiry notices) run as tasks of their own. Timers need no task either:
//! the loop waits for the next message or the next expiry, whichever comes first.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use p2p_shared::identity::PublicKey;
use p2p_shared::message::{new_id, SignedEnvelope, MAX_TEXT_LEN, SIGNED};
use p2p_shared::replay::{ReplayWindow, Stale};
use p2p_shared::seal::{
    session_of, EphemeralKey, KeyShare, Role, SessionId, SessionKeys, Transcript, SEALED_ACK,
};
use p2p_shared::transport::{self, Origin, Refusal};
use p2p_shared::{
    runtime, Answer, Envelope, ErrorCode, MessageId, Outcome, PeerInfo, PeerName, Reply, Request,
    Sender,
};

use crate::history::{History, Line};
use crate::known::{KnownKeys, Pin};
use crate::names::Names;
use crate::output::{show, Notice, Waiting};
use crate::requests::{
    IncomingRequests, NotAnswerable, OutgoingRequests, PendingRequest, TakeError, TooMany,
    MAX_PENDING,
};

enum Msg {
    Inbound {
        request: Envelope<Request>,
        done: oneshot::Sender<Outcome>,
    },
    Sealed {
        frame: Vec<u8>,
        done: oneshot::Sender<Result<Vec<u8>, Refusal>>,
    },
    Seal {
        peer: PeerName,
        id: MessageId,
        body: Request,
        done: oneshot::Sender<Option<Sealed>>,
    },
    Record {
        peer: PeerName,
        id: MessageId,
        text: String,
        done: oneshot::Sender<Result<(), String>>,
    },
    History {
        peer: PeerName,
        n: usize,
        done: oneshot::Sender<Result<Vec<Line>, String>>,
    },
    ForgetIf {
        peer: PeerName,
        key: PublicKey,
        done: oneshot::Sender<bool>,
    },
    Acknowledged {
        peer: PeerName,
        counter: u64,
        reply: Vec<u8>,
        done: oneshot::Sender<Option<Outcome>>,
    },
    ListConnected {
        done: oneshot::Sender<Vec<PeerInfo>>,
    },
    Answer {
        from: Option<PeerName>,
        accept: bool,
        done: oneshot::Sender<Result<Answered, TakeError>>,
    },
    Forget {
        peer: PeerName,
        done: oneshot::Sender<Option<Sealed>>,
    },
    Close {
        done: oneshot::Sender<Closing>,
    },
    Snapshot {
        done: oneshot::Sender<Snapshot>,
    },
    RequestSent {
        id: MessageId,
        addr: SocketAddr,
        share: KeyShare,
        done: oneshot::Sender<()>,
    },
    RequestPending {
        id: MessageId,
        from: Sender,
        expires_in: Duration,
        done: oneshot::Sender<Result<(), KeyRefused>>,
    },
    RequestFailed {
        id: MessageId,
        done: oneshot::Sender<()>,
    },
    Trust {
        peer: PeerName,
        done: oneshot::Sender<Result<PublicKey, String>>,
    },
}

/// A chat frame ready to send: where, the bytes, and the counter its acknowledgement names.
pub struct Sealed {
    pub addr: SocketAddr,
    pub frame: Vec<u8>,
    pub counter: u64,
}

/// A request we answered: the record, and on `yes` our half of the key agreement.
pub struct Answered {
    pub request: PendingRequest,
    pub share: Option<EphemeralKey>,
}

/// Everyone to say goodbye to when we leave.
pub struct Closing {
    /// A sealed `disconnect` for each open chat.
    pub goodbyes: Vec<Sealed>,
    /// Requests nobody answered; their senders are waiting.
    pub requests: Vec<PendingRequest>,
}

/// The chat state at one moment, for `status`.
pub struct Snapshot {
    pub chats: Vec<PeerInfo>,
    pub incoming: Vec<Waiting>,
    pub outgoing: Vec<Waiting>,
}

/// The other side's key is not the one pinned for its name (the warning is already shown).
#[derive(Debug)]
pub struct KeyRefused;

/// A handle to the broker task.
#[derive(Clone)]
pub struct Broker {
    tx: async_channel::Sender<Msg>,
}

impl Broker {
    /// Starts the broker. Incoming requests wait `request_timeout` for an answer; the names
    /// of open chats are published to `names` for completion; `known` holds pinned keys.
    pub fn start(
        origin: Origin,
        request_timeout: Duration,
        names: Names,
        known: KnownKeys<PeerName>,
        history: History,
    ) -> Broker {
        let (tx, rx) = async_channel::bounded(256);
        let state = State {
            origin,
            names,
            known,
            offered: HashMap::new(),
            connected: BTreeMap::new(),
            sessions: HashMap::new(),
            incoming: IncomingRequests::new(request_timeout),
            outgoing: OutgoingRequests::default(),
            history,
        };
        runtime::spawn(run(state, rx));
        Broker { tx }
    }

    /// Decides the outcome of a signed request from the network.
    pub async fn inbound(&self, request: Envelope<Request>) -> Outcome {
        self.ask(|done| Msg::Inbound { request, done })
            .await
            .unwrap_or_else(|| Outcome::error(ErrorCode::Busy, "this peer is shutting down"))
    }

    /// Opens a sealed frame from the network and returns the sealed acknowledgement.
    pub async fn sealed(&self, frame: Vec<u8>) -> Result<Vec<u8>, Refusal> {
        self.ask(|done| Msg::Sealed { frame, done })
            .await
            .unwrap_or(Err(Refusal::UnknownSession))
    }

    /// Seals `body` as message `id` for the chat with `peer`; `None` if no chat with it is
    /// open. A retry seals the same id again (under a new counter), so the receiver can tell
    /// it from a new message.
    pub async fn seal(&self, peer: &PeerName, id: MessageId, body: Request) -> Option<Sealed> {
        let peer = *peer;
        self.ask(|done| Msg::Seal {
            peer,
            id,
            body,
            done,
        })
        .await
        .flatten()
    }

    /// Stores a message we sent to `peer` (it was acknowledged) in the history.
    pub async fn record_sent(
        &self,
        peer: &PeerName,
        id: MessageId,
        text: String,
    ) -> Result<(), String> {
        let peer = *peer;
        self.ask(|done| Msg::Record {
            peer,
            id,
            text,
            done,
        })
        .await
        .unwrap_or_else(|| Err("this peer is shutting down".into()))
    }

    /// The last `n` lines of the chat with `peer`.
    pub async fn history(&self, peer: &PeerName, n: usize) -> Result<Vec<Line>, String> {
        let peer = *peer;
        self.ask(|done| Msg::History { peer, n, done })
            .await
            .unwrap_or_else(|| Err("this peer is shutting down".into()))
    }

    /// Ends the chat with `peer` if it is still the one with `key` (not a newer chat).
    pub async fn forget_if(&self, peer: &PeerName, key: PublicKey) -> bool {
        let peer = *peer;
        self.ask(|done| Msg::ForgetIf { peer, key, done })
            .await
            .unwrap_or(false)
    }

    /// What the reply to our sealed message `counter` to `peer` says; `None` if it is no
    /// valid reply from that peer.
    pub async fn acknowledged(
        &self,
        peer: &PeerName,
        counter: u64,
        reply: Vec<u8>,
    ) -> Option<Outcome> {
        let peer = *peer;
        self.ask(|done| Msg::Acknowledged {
            peer,
            counter,
            reply,
            done,
        })
        .await
        .flatten()
    }

    pub async fn list_connected(&self) -> Vec<PeerInfo> {
        self.ask(|done| Msg::ListConnected { done })
            .await
            .unwrap_or_default()
    }

    /// Takes the pending request to answer. On `yes` the chat's keys are agreed and the chat
    /// counts as open from this moment, so a message the requester sends right after our
    /// answer is not refused.
    pub async fn answer(
        &self,
        from: Option<PeerName>,
        accept: bool,
    ) -> Result<Answered, TakeError> {
        self.ask(|done| Msg::Answer { from, accept, done })
            .await
            .unwrap_or(Err(TakeError::NonePending))
    }

    /// Ends the chat with `peer`; returns a sealed `disconnect` to tell it, if a chat was open.
    pub async fn forget(&self, peer: &PeerName) -> Option<Sealed> {
        let peer = *peer;
        self.ask(|done| Msg::Forget { peer, done }).await.flatten()
    }

    /// Ends every chat and drops every pending request; returns whom to tell, and how.
    pub async fn close(&self) -> Closing {
        self.ask(|done| Msg::Close { done })
            .await
            .unwrap_or(Closing {
                goodbyes: Vec::new(),
                requests: Vec::new(),
            })
    }

    pub async fn snapshot(&self) -> Option<Snapshot> {
        self.ask(|done| Msg::Snapshot { done }).await
    }

    /// Records a chat request, and our half of its key agreement, before it goes out.
    pub async fn request_sent(&self, id: MessageId, addr: SocketAddr, share: KeyShare) {
        self.ask(|done| Msg::RequestSent {
            id,
            addr,
            share,
            done,
        })
        .await;
    }

    /// The other side is asking its user: the broker says so (unless the answer overtook
    /// this reply and the outcome is out already). An error if the other side's key is not
    /// the pinned one.
    pub async fn request_pending(
        &self,
        id: MessageId,
        from: Sender,
        expires_in: Duration,
    ) -> Result<(), KeyRefused> {
        self.ask(|done| Msg::RequestPending {
            id,
            from,
            expires_in,
            done,
        })
        .await
        .unwrap_or(Ok(()))
    }

    pub async fn request_failed(&self, id: MessageId) {
        self.ask(|done| Msg::RequestFailed { id, done }).await;
    }

    /// Pins the changed key `peer` last offered.
    pub async fn trust(&self, peer: &PeerName) -> Result<PublicKey, String> {
        let peer = *peer;
        self.ask(|done| Msg::Trust { peer, done })
            .await
            .unwrap_or_else(|| Err("this peer is shutting down".into()))
    }

    /// Sends a message and waits for the answer; `None` only if the broker has stopped.
    async fn ask<T>(&self, msg: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Option<T> {
        let (done, answer) = oneshot::channel();
        self.tx.send(msg(done)).await.ok()?;
        answer.await.ok()
    }
}

/// One open chat.
struct Chat {
    addr: SocketAddr,
    key: PublicKey,
    keys: SessionKeys,
    /// The counter of our next message.
    next: u64,
    /// The counters of theirs already accepted.
    window: ReplayWindow,
}

struct State {
    origin: Origin,
    names: Names,
    known: KnownKeys<PeerName>,
    /// Changed keys we refused, for `trust NAME`.
    offered: HashMap<PeerName, PublicKey>,
    connected: BTreeMap<PeerName, Chat>,
    sessions: HashMap<SessionId, PeerName>,
    incoming: IncomingRequests,
    outgoing: OutgoingRequests,
    history: History,
}

async fn run(mut state: State, rx: async_channel::Receiver<Msg>) {
    loop {
        let next = match state.next_deadline() {
            None => rx.recv().await,
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                match runtime::timeout(wait, rx.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        state.expire(Instant::now());
                        continue;
                    }
                }
            }
        };
        let Ok(msg) = next else { break };
        // Whatever is past due goes first, so no message ever sees an expired record.
        state.expire(Instant::now());
        state.handle(msg);
    }
}

impl State {
    fn next_deadline(&self) -> Option<Instant> {
        [self.incoming.next_expiry(), self.outgoing.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn expire(&mut self, now: Instant) {
        for request in self.incoming.expire(now) {
            show(Notice::RequestExpired { peer: request.from });
            // Tell the requester, so it need not wait out its own grace period.
            let body = Request::ChatAnswer {
                request: request.id,
                answer: Answer::Expired,
                share: None,
            };
            let origin = self.origin.clone();
            runtime::spawn(async move {
                let _ = transport::request(request.addr, &origin, new_id(), body).await;
            });
        }
        for peer in self.outgoing.expire(now) {
            show(Notice::RequestTimedOut { peer });
        }
    }

    // A dropped `done` only means the asker gave up waiting; there is nothing to undo.
    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Inbound { request, done } => {
                let _ = done.send(self.inbound(request));
            }
            Msg::Sealed { frame, done } => {
                let _ = done.send(self.open_sealed(&frame));
            }
            Msg::Seal {
                peer,
                id,
                body,
                done,
            } => {
                let _ = done.send(self.seal(&peer, id, body));
            }
            Msg::Record {
                peer,
                id,
                text,
                done,
            } => {
                let me = self.origin.name;
                let stored = self
                    .history
                    .record(id, &peer, &me, &text, chrono::Utc::now());
                let _ = done.send(stored.map(|_| ()).map_err(|e| e.to_string()));
            }
            Msg::History { peer, n, done } => {
                let _ = done.send(self.history.last(&peer, n).map_err(|e| e.to_string()));
            }
            Msg::ForgetIf { peer, key, done } => {
                let same = self
                    .connected
                    .get(&peer)
                    .is_some_and(|chat| chat.key == key);
                if same {
                    self.close_chat(&peer);
                }
                let _ = done.send(same);
            }
            Msg::Acknowledged {
                peer,
                counter,
                reply,
                done,
            } => {
                let _ = done.send(self.acknowledged(&peer, counter, &reply));
            }
            Msg::ListConnected { done } => {
                let _ = done.send(self.peers());
            }
            Msg::Answer { from, accept, done } => {
                let _ = done.send(self.answer(from, accept));
            }
            Msg::Forget { peer, done } => {
                let goodbye = self.seal(&peer, new_id(), Request::Disconnect);
                self.close_chat(&peer);
                let _ = done.send(goodbye);
            }
            Msg::Close { done } => {
                let peers: Vec<PeerName> = self.connected.keys().cloned().collect();
                let goodbyes = peers
                    .iter()
                    .filter_map(|peer| {
                        let goodbye = self.seal(peer, new_id(), Request::Disconnect);
                        self.close_chat(peer);
                        goodbye
                    })
                    .collect();
                let requests = self.incoming.drain();
                let _ = done.send(Closing { goodbyes, requests });
            }
            Msg::Snapshot { done } => {
                let _ = done.send(self.snapshot(Instant::now()));
            }
            Msg::RequestSent {
                id,
                addr,
                share,
                done,
            } => {
                self.outgoing.sent(id, addr, share);
                let _ = done.send(());
            }
            Msg::RequestPending {
                id,
                from,
                expires_in,
                done,
            } => {
                let result = match self.check_key(&from.name, from.key, true) {
                    Ok(()) => {
                        let (peer, addr) = (from.name, from.addr);
                        if self
                            .outgoing
                            .pending(id, from.name, expires_in, Instant::now())
                        {
                            show(Notice::RequestSent { peer, addr });
                        }
                        Ok(())
                    }
                    Err(_) => {
                        self.outgoing.failed(id);
                        Err(KeyRefused)
                    }
                };
                let _ = done.send(result);
            }
            Msg::RequestFailed { id, done } => {
                self.outgoing.failed(id);
                let _ = done.send(());
            }
            Msg::Trust { peer, done } => {
                let _ = done.send(self.trust(&peer));
            }
        }
    }

    /// Checks `key` against the one pinned for `name`, and pins it on first contact if
    /// `pin_new`. A changed key is refused, with a warning the first time it is seen.
    ///
    /// Only a contact the user chose pins a key: a request we sent (`pin_new`), or one we
    /// accepted ([`State::answer`]). An unsolicited request does not, or anyone could fill
    /// `known_peers` with names, or claim a name here before its owner first asks.
    fn check_key(&mut self, name: &PeerName, key: PublicKey, pin_new: bool) -> Result<(), Outcome> {
        match self.known.check(name, &key) {
            Pin::Known => Ok(()),
            Pin::New if !pin_new => Ok(()),
            Pin::New => {
                self.pin(name, key);
                Ok(())
            }
            Pin::Changed { pinned } => {
                if self.offered.insert(*name, key) != Some(key) {
                    show(Notice::KeyChanged {
                        peer: *name,
                        pinned: pinned.fingerprint(),
                        offered: key.fingerprint(),
                    });
                }
                Err(Outcome::error(
                    ErrorCode::KeyChanged,
                    format!("the key for {name} is not the one this peer knows"),
                ))
            }
        }
    }

    fn pin(&mut self, name: &PeerName, key: PublicKey) {
        if let Err(e) = self.known.pin(name, key) {
            tracing::warn!("{e:#}");
        }
    }

    fn trust(&mut self, peer: &PeerName) -> Result<PublicKey, String> {
        let key = self
            .offered
            .remove(peer)
            .ok_or_else(|| format!("{peer} has offered no new key"))?;
        self.known.pin(peer, key).map_err(|e| format!("{e:#}"))?;
        Ok(key)
    }

    /// Opens a chat. Requests between us and `peer` in either direction are settled by it:
    /// none of them will get (or needs) another answer.
    fn open_chat(&mut self, peer: PeerName, addr: SocketAddr, key: PublicKey, keys: SessionKeys) {
        self.incoming.forget(&peer);
        self.outgoing.forget_peer(&peer);
        self.close_chat(&peer);
        self.sessions.insert(keys.id, peer);
        let chat = Chat {
            addr,
            key,
            keys,
            next: 0,
            window: ReplayWindow::default(),
        };
        self.connected.insert(peer, chat);
        self.names.set_chatting(self.connected.keys());
    }

    fn close_chat(&mut self, peer: &PeerName) -> Option<Chat> {
        let chat = self.connected.remove(peer)?;
        self.sessions.remove(&chat.keys.id);
        self.names.set_chatting(self.connected.keys());
        Some(chat)
    }

    fn answer(&mut self, from: Option<PeerName>, accept: bool) -> Result<Answered, TakeError> {
        let request = self.incoming.take(from.as_ref(), Instant::now())?;
        if !accept {
            return Ok(Answered {
                request,
                share: None,
            });
        }
        // Accepting is choosing this contact: its key is pinned now. Another key may have been
        // pinned for the name since the request came (by a chat we asked for): then no.
        if self.check_key(&request.from, request.key, true).is_err() {
            return Ok(Answered {
                request,
                share: None,
            });
        }
        let ours = KeyShare::new();
        let share = ours.public();
        let (me, theirs) = (self.origin.identity.public(), request.share);
        let transcript = Transcript {
            request: request.id,
            requester: &request.key,
            accepter: &me,
            requester_share: &theirs,
            accepter_share: &share,
        };
        match SessionKeys::agree(Role::Accepter, ours, &transcript) {
            Ok(keys) => {
                self.open_chat(request.from, request.addr, request.key, keys);
                Ok(Answered {
                    request,
                    share: Some(share),
                })
            }
            // Their share was unusable: no chat is possible, so the answer is no.
            Err(_) => Ok(Answered {
                request,
                share: None,
            }),
        }
    }

    fn snapshot(&self, now: Instant) -> Snapshot {
        let incoming = self
            .incoming
            .iter()
            .map(|r| Waiting {
                peer: r.from,
                addr: r.addr,
                expires_in: r.expires_at.saturating_duration_since(now),
                received_at: Some(r.received_at),
            })
            .collect();
        let outgoing = self
            .outgoing
            .awaiting()
            .map(|(peer, addr, deadline)| Waiting {
                peer: *peer,
                addr,
                expires_in: deadline.saturating_duration_since(now),
                received_at: None,
            })
            .collect();
        Snapshot {
            chats: self.peers(),
            incoming,
            outgoing,
        }
    }

    fn peers(&self) -> Vec<PeerInfo> {
        self.connected
            .iter()
            .map(|(name, chat)| PeerInfo {
                name: *name,
                addr: chat.addr,
                key: chat.key,
            })
            .collect()
    }

    fn inbound(&mut self, request: Envelope<Request>) -> Outcome {
        let Envelope { id, from, body, .. } = request;
        tracing::debug!(from = %from.name, addr = %from.addr, ?body, "request");
        match body {
            Request::Ping => Outcome::Ok,
            Request::ChatRequest { share } => self.chat_request(id, from, share),
            Request::ChatAnswer {
                request,
                answer,
                share,
            } => self.chat_answer(request, answer, share, from),
            Request::ChatMessage { .. } | Request::Disconnect => Outcome::error(
                ErrorCode::UnsupportedRequest,
                "chat messages travel sealed in a chat session",
            ),
            Request::Register { .. }
            | Request::Unregister
            | Request::Release
            | Request::ListPeers { .. }
            | Request::Lookup { .. } => Outcome::error(
                ErrorCode::UnsupportedRequest,
                "this is a peer, not the registry",
            ),
        }
    }

    fn chat_request(&mut self, id: MessageId, from: Sender, share: EphemeralKey) -> Outcome {
        if from.name == self.origin.name {
            return Outcome::error(
                ErrorCode::InvalidRequest,
                "that is my own name: no chat with yourself",
            );
        }
        if let Err(refusal) = self.check_key(&from.name, from.key, false) {
            return refusal;
        }
        if self.connected.contains_key(&from.name) {
            return Outcome::error(
                ErrorCode::AlreadyConnected,
                format!("already in a chat with {}", from.name),
            );
        }
        match self.incoming.offer(id, &from, share, Instant::now()) {
            Ok(_) => {
                let expires_in = self.incoming.ttl();
                show(Notice::RequestArrived {
                    peer: from.name,
                    addr: from.addr,
                    expires_in,
                    fingerprint: from.key.fingerprint(),
                });
                Outcome::Pending {
                    expires_in_ms: expires_in.as_millis().try_into().unwrap_or(u64::MAX),
                }
            }
            Err(TooMany) => Outcome::error(
                ErrorCode::TooManyRequests,
                format!("{MAX_PENDING} chat requests are already waiting; try again later"),
            ),
        }
    }

    fn chat_answer(
        &mut self,
        request: MessageId,
        answer: Answer,
        share: Option<EphemeralKey>,
        from: Sender,
    ) -> Outcome {
        match self.outgoing.answerable(request, &from.name) {
            Ok(()) => {}
            Err(NotAnswerable::NotYet) => {
                return Outcome::error(
                    ErrorCode::Busy,
                    "that request's pending reply is not read yet; answer again in a moment",
                )
            }
            Err(NotAnswerable::Unknown) => {
                return Outcome::error(
                    ErrorCode::UnknownRequest,
                    "no request of mine with that id is waiting for your answer",
                )
            }
        }
        // Checked before anything is taken: a refused answer leaves the request to the
        // real one. (The key was pinned when the pending reply came.)
        if let Err(refusal) = self.check_key(&from.name, from.key, true) {
            return refusal;
        }
        let (record, ours) = self.outgoing.take(request).expect("answerable just now");
        let peer = from.name;
        match answer {
            Answer::Accepted => {
                // The request is taken: whatever is wrong with this acceptance, say what became
                // of it, so the user still sees exactly one outcome.
                let failed = |why: &str| {
                    show(Notice::Error {
                        message: format!("chat request to {peer} failed: {why}"),
                    });
                    Outcome::error(ErrorCode::InvalidRequest, why)
                };
                let Some(theirs) = share else {
                    return failed("the acceptance carries no key share");
                };
                let me = self.origin.identity.public();
                let mine = ours.public();
                let transcript = Transcript {
                    request,
                    requester: &me,
                    accepter: &from.key,
                    requester_share: &mine,
                    accepter_share: &theirs,
                };
                let Ok(keys) = SessionKeys::agree(Role::Requester, ours, &transcript) else {
                    return failed("the acceptance's key share is unusable");
                };
                // The address we asked at, which is the one the user chose.
                let addr = record.addr();
                self.open_chat(peer, addr, from.key, keys);
                show(Notice::RequestAccepted { peer, addr });
            }
            Answer::Declined => show(Notice::RequestDeclined { peer }),
            Answer::Expired => show(Notice::RequestTimedOut { peer }),
            Answer::Left => show(Notice::RequestAbandoned { peer }),
        }
        Outcome::Ok
    }

    /// Seals `body` as our next message in the chat with `peer`. Inside a session the sender
    /// is known by its keys, so `from.addr` carries no address.
    fn seal(&mut self, peer: &PeerName, id: MessageId, body: Request) -> Option<Sealed> {
        let from = self.origin.sender(Ipv4Addr::UNSPECIFIED.into());
        let chat = self.connected.get_mut(peer)?;
        let counter = chat.next;
        chat.next += 1;
        let plaintext = Envelope::new(id, from, body).encode();
        Some(Sealed {
            addr: chat.addr,
            frame: chat.keys.seal(counter, &plaintext),
            counter,
        })
    }

    /// Opens a sealed frame, acts on it and seals the acknowledgement. Each counter is
    /// accepted once, so no acknowledgement is ever sealed twice under the same nonce.
    fn open_sealed(&mut self, frame: &[u8]) -> Result<Vec<u8>, Refusal> {
        let session = session_of(frame).ok_or(Refusal::UnknownSession)?;
        let peer = *self.sessions.get(&session).ok_or(Refusal::UnknownSession)?;
        let chat = self
            .connected
            .get_mut(&peer)
            .ok_or(Refusal::UnknownSession)?;
        let (counter, plaintext) = chat.keys.open(frame).ok_or(Refusal::UnknownSession)?;
        if !chat.window.accept(counter) {
            return Err(Refusal::Stale(Stale::Replayed));
        }
        let (outcome, re, bye) = match Envelope::<Request>::decode(&plaintext) {
            Err(e) => (Outcome::error(e.code(), e.to_string()), None, false),
            Ok(request) => {
                let bye = matches!(request.body, Request::Disconnect);
                let outcome = match request.body {
                    Request::ChatMessage { text }
                        if text.is_empty() || text.len() > MAX_TEXT_LEN =>
                    {
                        Outcome::error(
                            ErrorCode::InvalidRequest,
                            format!(
                                "a message has 1 to {MAX_TEXT_LEN} bytes, this one has {}",
                                text.len()
                            ),
                        )
                    }
                    // Stored before it is shown; a message already stored (a retry whose first
                    // acknowledgement was lost) is acknowledged again but not shown twice.
                    Request::ChatMessage { text } => {
                        let at = chrono::Utc::now();
                        match self.history.record(request.id, &peer, &peer, &text, at) {
                            Ok(true) => {
                                show(Notice::Message { peer, text, at });
                                Outcome::Ok
                            }
                            Ok(false) => Outcome::Ok,
                            Err(e) => {
                                tracing::warn!("{e}");
                                Outcome::error(
                                    ErrorCode::Busy,
                                    "the receiver cannot store the message",
                                )
                            }
                        }
                    }
                    Request::Disconnect => Outcome::Ok,
                    _ => Outcome::error(
                        ErrorCode::UnsupportedRequest,
                        "only chat messages and disconnects travel sealed",
                    ),
                };
                (outcome, Some(request.id), bye)
            }
        };
        let from = self.origin.sender(Ipv4Addr::UNSPECIFIED.into());
        let reply = Envelope::new(
            new_id(),
            from,
            Reply {
                re,
                result: outcome,
            },
        )
        .encode();
        let sealed = chat.keys.seal_ack(counter, &reply);
        if bye {
            self.close_chat(&peer);
            show(Notice::PeerDisconnected { peer });
        }
        Ok(sealed)
    }

    /// Reads the reply to our message `counter` to `peer`: a sealed acknowledgement, or a
    /// refusal signed by the peer's own key (it could not open our frame).
    fn acknowledged(&self, peer: &PeerName, counter: u64, reply: &[u8]) -> Option<Outcome> {
        let chat = self.connected.get(peer)?;
        match reply.first() {
            Some(&SEALED_ACK) => {
                let plaintext = chat.keys.open_ack(counter, reply)?;
                Some(Envelope::<Reply>::decode(&plaintext).ok()?.body.result)
            }
            // A signed reply to a sealed frame can only be a refusal (the peer could not open
            // it). Never a success: the peer signs `ok` to pings too, so a saved one could be
            // played back to fake "delivered"; only the sealed acknowledgement proves that.
            Some(&SIGNED) => {
                let signed = SignedEnvelope::<Reply>::decode(reply).ok()?;
                let valid = signed.envelope.from.key == chat.key && signed.verify();
                let result = signed.envelope.body.result;
                (valid && matches!(result, Outcome::Error { .. })).then_some(result)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::identity::Identity;
    use std::sync::Arc;

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    /// A broker state for "alice", with a fresh known_peers file and history.
    fn alice(dir: &std::path::Path) -> State {
        let origin = Origin {
            name: name("alice"),
            port: 40001,
            identity: Arc::new(Identity::generate()),
        };
        State {
            origin,
            names: Names::default(),
            known: KnownKeys::load(dir.join("known_peers")).unwrap(),
            offered: HashMap::new(),
            connected: BTreeMap::new(),
            sessions: HashMap::new(),
            incoming: IncomingRequests::new(Duration::from_secs(60)),
            outgoing: OutgoingRequests::default(),
            history: History::in_memory().unwrap(),
        }
    }

    fn temp_dir(label: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("p2p-broker-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sender(name_: &str, identity: &Identity) -> Sender {
        Sender {
            name: name(name_),
            addr: "127.0.0.1:40002".parse().unwrap(),
            key: identity.public(),
        }
    }

    #[test]
    fn only_a_sealed_acknowledgement_proves_delivery() {
        let dir = temp_dir("ack");
        let mut state = alice(&dir);
        let bob = Identity::generate();
        // A chat with bob, keys agreed as both sides would.
        let (a, b) = (KeyShare::new(), KeyShare::new());
        let (ea, eb) = (a.public(), b.public());
        let me = state.origin.identity.public();
        let t = Transcript {
            request: new_id(),
            requester: &me,
            accepter: &bob.public(),
            requester_share: &ea,
            accepter_share: &eb,
        };
        let ours = SessionKeys::agree(Role::Requester, a, &t).unwrap();
        let theirs = SessionKeys::agree(Role::Accepter, b, &t).unwrap();
        state.open_chat(
            name("bob"),
            "127.0.0.1:40002".parse().unwrap(),
            bob.public(),
            ours,
        );

        let sealed = state
            .seal(&name("bob"), new_id(), Request::Disconnect)
            .unwrap();
        // A signed `ok` bob once gave to a ping, played back: not a delivery.
        let ok = Envelope::new(
            new_id(),
            sender("bob", &bob),
            Reply {
                re: Some(new_id()),
                result: Outcome::Ok,
            },
        );
        assert_eq!(
            state.acknowledged(&name("bob"), sealed.counter, &ok.sign(&bob)),
            None
        );
        // A signed refusal from bob's key is an answer.
        let refusal = Outcome::error(ErrorCode::UnknownSession, "no such session");
        let no = Envelope::new(
            new_id(),
            sender("bob", &bob),
            Reply {
                re: None,
                result: refusal,
            },
        );
        assert!(matches!(
            state.acknowledged(&name("bob"), sealed.counter, &no.sign(&bob)),
            Some(Outcome::Error { .. })
        ));
        // ... but not from someone else's key.
        let mallory = Identity::generate();
        assert_eq!(
            state.acknowledged(&name("bob"), sealed.counter, &no.sign(&mallory)),
            None
        );
        // The sealed acknowledgement is the proof.
        let reply = Envelope::new(
            new_id(),
            sender("bob", &bob),
            Reply {
                re: None,
                result: Outcome::Ok,
            },
        );
        let ack = theirs.seal_ack(sealed.counter, &reply.encode());
        assert_eq!(
            state.acknowledged(&name("bob"), sealed.counter, &ack),
            Some(Outcome::Ok)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unsolicited_request_pins_nothing_until_the_user_accepts() {
        let dir = temp_dir("pins");
        let mut state = alice(&dir);
        let (bob, mallory) = (Identity::generate(), Identity::generate());
        let request = |from: &Identity| {
            let share = KeyShare::new().public();
            Envelope::new(
                new_id(),
                sender("bob", from),
                Request::ChatRequest { share },
            )
        };
        // Mallory asks first, as "bob": nothing is pinned, so the real bob is not locked out.
        assert!(matches!(
            state.inbound(request(&mallory)),
            Outcome::Pending { .. }
        ));
        assert_eq!(state.known.check(&name("bob"), &mallory.public()), Pin::New);
        // The real bob's request replaces mallory's record (one per name); alice says yes.
        assert!(matches!(
            state.inbound(request(&bob)),
            Outcome::Pending { .. }
        ));
        let answered = state.answer(Some(name("bob")), true).unwrap();
        assert!(answered.share.is_some());
        assert_eq!(state.known.check(&name("bob"), &bob.public()), Pin::Known);
        // From now on another key for bob is refused.
        assert!(matches!(
            state.inbound(request(&mallory)),
            Outcome::Error {
                code: ErrorCode::KeyChanged,
                ..
            }
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
