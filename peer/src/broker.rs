//! The broker task: the one owner of this peer's chat state.
//!
//! Open chats, incoming requests waiting for `yes`/`no`, and our own requests waiting for an
//! answer all live in one [`State`], owned by one task. The network side (inbound requests)
//! and the user side (the session running commands) talk to it through a [`Broker`] handle
//! and get their answers on oneshot channels: no locks, and every change happens in one
//! order. The broker never waits on the network, so a slow peer never delays another; the
//! only sends it starts (expiry notices) run as tasks of their own.
//!
//! Timers need no task either: the loop waits for the next message or the next expiry,
//! whichever comes first.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use p2p_shared::message::{new_id, MAX_TEXT_LEN};
use p2p_shared::transport::{self, Origin};
use p2p_shared::{
    runtime, Answer, Envelope, ErrorCode, MessageId, Outcome, PeerInfo, PeerName, Request, Sender,
};

use crate::names::Names;
use crate::output::{show, Notice, Waiting};
use crate::requests::{
    IncomingRequests, OutgoingRequests, PendingRequest, TakeError, TooMany, MAX_PENDING,
};

enum Msg {
    Inbound {
        request: Envelope<Request>,
        done: oneshot::Sender<Outcome>,
    },
    ChatAddr {
        peer: PeerName,
        done: oneshot::Sender<Option<SocketAddr>>,
    },
    ListConnected {
        done: oneshot::Sender<Vec<PeerInfo>>,
    },
    Answer {
        from: Option<PeerName>,
        accept: bool,
        done: oneshot::Sender<Result<PendingRequest, TakeError>>,
    },
    Forget {
        peer: PeerName,
        done: oneshot::Sender<Option<SocketAddr>>,
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
        done: oneshot::Sender<()>,
    },
    RequestPending {
        id: MessageId,
        peer: PeerName,
        expires_in: Duration,
        done: oneshot::Sender<bool>,
    },
    RequestFailed {
        id: MessageId,
        done: oneshot::Sender<()>,
    },
}

/// The chat state at one moment, for `status`.
pub struct Snapshot {
    pub chats: Vec<PeerInfo>,
    pub incoming: Vec<Waiting>,
    pub outgoing: Vec<Waiting>,
}

/// Everyone to say goodbye to when we leave.
pub struct Closing {
    pub chats: Vec<PeerInfo>,
    /// Requests nobody answered; their senders are waiting.
    pub requests: Vec<PendingRequest>,
}

/// A handle to the broker task.
#[derive(Clone)]
pub struct Broker {
    tx: async_channel::Sender<Msg>,
}

impl Broker {
    /// Starts the broker. Incoming requests wait `request_timeout` for an answer.
    /// The names of open chats are published to `names` for completion.
    pub fn start(origin: Origin, request_timeout: Duration, names: Names) -> Broker {
        let (tx, rx) = async_channel::bounded(256);
        let state = State {
            origin,
            names,
            connected: BTreeMap::new(),
            incoming: IncomingRequests::new(request_timeout),
            outgoing: OutgoingRequests::default(),
        };
        runtime::spawn(run(state, rx));
        Broker { tx }
    }

    /// Decides the outcome of a request from the network.
    pub async fn inbound(&self, request: Envelope<Request>) -> Outcome {
        self.ask(|done| Msg::Inbound { request, done })
            .await
            .unwrap_or_else(|| Outcome::error(ErrorCode::Busy, "this peer is shutting down"))
    }

    /// The address of `peer` if a chat with it is open.
    pub async fn chat_addr(&self, peer: &PeerName) -> Option<SocketAddr> {
        let peer = peer.clone();
        self.ask(|done| Msg::ChatAddr { peer, done })
            .await
            .flatten()
    }

    pub async fn list_connected(&self) -> Vec<PeerInfo> {
        self.ask(|done| Msg::ListConnected { done })
            .await
            .unwrap_or_default()
    }

    /// Takes the pending request to answer. On `yes` the chat counts as open from this moment,
    /// so a message the requester sends right after our answer is not refused.
    pub async fn answer(
        &self,
        from: Option<PeerName>,
        accept: bool,
    ) -> Result<PendingRequest, TakeError> {
        self.ask(|done| Msg::Answer { from, accept, done })
            .await
            .unwrap_or(Err(TakeError::NonePending))
    }

    /// Ends the chat with `peer`; returns its address if one was open.
    pub async fn forget(&self, peer: &PeerName) -> Option<SocketAddr> {
        let peer = peer.clone();
        self.ask(|done| Msg::Forget { peer, done }).await.flatten()
    }

    /// Ends every chat and drops every pending request; returns whom to tell.
    pub async fn close(&self) -> Closing {
        self.ask(|done| Msg::Close { done })
            .await
            .unwrap_or(Closing {
                chats: Vec::new(),
                requests: Vec::new(),
            })
    }

    pub async fn snapshot(&self) -> Option<Snapshot> {
        self.ask(|done| Msg::Snapshot { done }).await
    }

    /// Records a chat request before it goes out.
    pub async fn request_sent(&self, id: MessageId, addr: SocketAddr) {
        self.ask(|done| Msg::RequestSent { id, addr, done }).await;
    }

    /// The other side is asking its user. False if the request already has an outcome.
    pub async fn request_pending(
        &self,
        id: MessageId,
        peer: PeerName,
        expires_in: Duration,
    ) -> bool {
        self.ask(|done| Msg::RequestPending {
            id,
            peer,
            expires_in,
            done,
        })
        .await
        .unwrap_or(false)
    }

    pub async fn request_failed(&self, id: MessageId) {
        self.ask(|done| Msg::RequestFailed { id, done }).await;
    }

    /// Sends a message and waits for the answer; `None` only if the broker has stopped.
    async fn ask<T>(&self, msg: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Option<T> {
        let (done, answer) = oneshot::channel();
        self.tx.send(msg(done)).await.ok()?;
        answer.await.ok()
    }
}

struct State {
    origin: Origin,
    names: Names,
    connected: BTreeMap<PeerName, SocketAddr>,
    incoming: IncomingRequests,
    outgoing: OutgoingRequests,
}

async fn run(mut state: State, rx: async_channel::Receiver<Msg>) {
    loop {
        let next = match state.next_deadline() {
            None => rx.recv().await,
            Some(at) => {
                match runtime::timeout(at.saturating_duration_since(Instant::now()), rx.recv())
                    .await
                {
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
            show(Notice::RequestExpired {
                peer: request.from.clone(),
            });
            // Tell the requester, so it need not wait out its own grace period.
            let (origin, body) = (
                self.origin.clone(),
                Request::ChatAnswer {
                    request: request.id,
                    answer: Answer::Expired,
                },
            );
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
            Msg::ChatAddr { peer, done } => {
                let _ = done.send(self.connected.get(&peer).copied());
            }
            Msg::ListConnected { done } => {
                let _ = done.send(self.peers());
            }
            Msg::Answer { from, accept, done } => {
                let taken = self.incoming.take(from.as_ref(), Instant::now());
                if let (Ok(request), true) = (&taken, accept) {
                    self.open_chat(request.from.clone(), request.addr);
                }
                let _ = done.send(taken);
            }
            Msg::Forget { peer, done } => {
                let _ = done.send(self.close_chat(&peer));
            }
            Msg::Close { done } => {
                let chats = self.peers();
                self.connected.clear();
                self.names.set_chatting([]);
                let requests = self.incoming.drain();
                let _ = done.send(Closing { chats, requests });
            }
            Msg::Snapshot { done } => {
                let _ = done.send(self.snapshot(Instant::now()));
            }
            Msg::RequestSent { id, addr, done } => {
                self.outgoing.sent(id, addr);
                let _ = done.send(());
            }
            Msg::RequestPending {
                id,
                peer,
                expires_in,
                done,
            } => {
                let _ = done.send(self.outgoing.pending(id, peer, expires_in, Instant::now()));
            }
            Msg::RequestFailed { id, done } => {
                self.outgoing.failed(id);
                let _ = done.send(());
            }
        }
    }

    /// Opens a chat. Requests between us and `peer` in either direction are settled by it:
    /// none of them will get (or needs) another answer.
    fn open_chat(&mut self, peer: PeerName, addr: SocketAddr) {
        self.incoming.forget(&peer);
        self.outgoing.forget_peer(&peer);
        self.connected.insert(peer, addr);
        self.names.set_chatting(self.connected.keys());
    }

    fn close_chat(&mut self, peer: &PeerName) -> Option<SocketAddr> {
        let addr = self.connected.remove(peer);
        self.names.set_chatting(self.connected.keys());
        addr
    }

    fn snapshot(&self, now: Instant) -> Snapshot {
        let incoming = self
            .incoming
            .iter()
            .map(|r| Waiting {
                peer: r.from.clone(),
                addr: r.addr,
                expires_in: r.expires_at.saturating_duration_since(now),
            })
            .collect();
        let outgoing = self
            .outgoing
            .awaiting()
            .map(|(peer, addr, deadline)| Waiting {
                peer: peer.clone(),
                addr,
                expires_in: deadline.saturating_duration_since(now),
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
            .map(|(name, &addr)| PeerInfo {
                name: name.clone(),
                addr,
            })
            .collect()
    }

    fn inbound(&mut self, request: Envelope<Request>) -> Outcome {
        let Envelope { id, from, body, .. } = request;
        tracing::debug!(from = %from.name, addr = %from.addr, ?body, "request");
        match body {
            Request::Ping => Outcome::Ok,
            Request::ChatRequest => self.chat_request(id, from),
            Request::ChatAnswer { request, answer } => self.chat_answer(request, answer, from),
            Request::ChatMessage { text } => self.chat_message(from, text),
            Request::Disconnect => self.disconnected(from),
            Request::Register
            | Request::Unregister
            | Request::ListPeers { .. }
            | Request::Lookup { .. } => Outcome::error(
                ErrorCode::UnsupportedRequest,
                "this is a peer, not the registry",
            ),
        }
    }

    fn chat_request(&mut self, id: MessageId, from: Sender) -> Outcome {
        if from.name == self.origin.name {
            return Outcome::error(
                ErrorCode::InvalidRequest,
                "that is my own name: no chat with yourself",
            );
        }
        if self.connected.contains_key(&from.name) {
            return Outcome::error(
                ErrorCode::AlreadyConnected,
                format!("already in a chat with {}", from.name),
            );
        }
        match self.incoming.offer(id, &from, Instant::now()) {
            Ok(_) => {
                let expires_in = self.incoming.ttl();
                show(Notice::RequestArrived {
                    peer: from.name,
                    addr: from.addr,
                    expires_in,
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

    fn chat_answer(&mut self, request: MessageId, answer: Answer, from: Sender) -> Outcome {
        if self.outgoing.resolve(request, &from.name).is_none() {
            return Outcome::error(
                ErrorCode::UnknownRequest,
                "no request of mine with that id is waiting for an answer",
            );
        }
        let peer = from.name;
        match answer {
            Answer::Accepted => {
                self.open_chat(peer.clone(), from.addr);
                show(Notice::RequestAccepted {
                    peer,
                    addr: from.addr,
                });
            }
            Answer::Declined => show(Notice::RequestDeclined { peer }),
            Answer::Expired => show(Notice::RequestTimedOut { peer }),
            Answer::Left => show(Notice::RequestAbandoned { peer }),
        }
        Outcome::Ok
    }

    /// Whether `from` is the peer we have a chat with under that name, at that address.
    fn in_chat(&self, from: &Sender) -> bool {
        self.connected.get(&from.name) == Some(&from.addr)
    }

    fn chat_message(&mut self, from: Sender, text: String) -> Outcome {
        if !self.in_chat(&from) {
            return Outcome::error(ErrorCode::NotConnected, "no chat with you is open here");
        }
        if text.is_empty() || text.len() > MAX_TEXT_LEN {
            return Outcome::error(
                ErrorCode::InvalidRequest,
                format!(
                    "a message has 1 to {MAX_TEXT_LEN} bytes, this one has {}",
                    text.len()
                ),
            );
        }
        show(Notice::Message {
            peer: from.name,
            text,
            at: chrono::Utc::now(),
        });
        Outcome::Ok
    }

    fn disconnected(&mut self, from: Sender) -> Outcome {
        if !self.in_chat(&from) {
            return Outcome::error(ErrorCode::NotConnected, "no chat with you is open here");
        }
        self.close_chat(&from.name);
        show(Notice::PeerDisconnected { peer: from.name });
        Outcome::Ok
    }
}
