//! The user's side of the peer: runs each command, one at a time, to its end.
//!
//! A command that talks to the network finishes (reply or error) before the next line is
//! read, so a script's commands take effect in order. Events from the network keep printing
//! meanwhile: they come from the broker, not from here. Every command ends in at least one
//! line of output, so nothing a user asked for passes in silence.
//!
//! Two things happen here without a command. Once registered, the session renews the
//! registration at a third of the time the registry grants, between commands (and so
//! registers again by itself when a restarted registry has forgotten it). And a chat message
//! that gets no answer is retried with backoff for `--retry-for`, under the same message id,
//! so the receiver never shows it twice; if it never gets through, the chat ends.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::future::{join, join_all, select, Either};
use p2p_shared::message::new_id;
use p2p_shared::seal::KeyShare;
use p2p_shared::transport::{self, Origin, Response, SendError};
use p2p_shared::{runtime, Answer, ErrorCode, Outcome, PeerName, Request};

use crate::broker::{Answered, Broker, KeyRefused};
use crate::command::{self, Command, Target};
use crate::input::{Input, Inputs};
use crate::liveness::is_transient;
use crate::names::Names;
use crate::output::{self, failure, show, Notice, Status};
use crate::registry::RegistryClient;
use crate::requests::TakeError;
use crate::retry::{retry, Attempt};

pub struct Session {
    origin: Origin,
    /// The address we listen on, as bound (0.0.0.0 when listening on every interface).
    listening: SocketAddr,
    broker: Broker,
    registry: RegistryClient,
    names: Names,
    retry_for: Duration,
    /// Whether we registered, so that `exit` knows to unregister and renewals go on.
    registered: bool,
    /// When to renew the registration next (while registered).
    renew_at: Option<Instant>,
    /// Whether the last renewal failed (to say so once, and again when it works).
    registry_lost: bool,
}

/// What the session does next.
enum Next {
    Input(Input),
    Renew,
}

/// How often to retry a renewal when the registry does not answer.
const RENEW_RETRY: Duration = Duration::from_secs(5);

impl Session {
    pub fn new(
        origin: Origin,
        listening: SocketAddr,
        broker: Broker,
        registry: RegistryClient,
        names: Names,
        retry_for: Duration,
    ) -> Self {
        Session {
            origin,
            listening,
            broker,
            registry,
            names,
            retry_for,
            registered: false,
            renew_at: None,
            registry_lost: false,
        }
    }

    /// Runs commands until `exit`, the end of input or Ctrl-C, then leaves cleanly.
    pub async fn run(mut self, inputs: Inputs) {
        loop {
            let line = match self.next(&inputs).await {
                Next::Renew => {
                    self.renew().await;
                    continue;
                }
                Next::Input(Input::Line(line)) => line,
                Next::Input(Input::Unreadable(why)) => {
                    output::error(why);
                    String::new()
                }
                Next::Input(Input::End) => break,
            };
            match command::parse(&line) {
                Ok(Some(Command::Exit)) => break,
                Ok(Some(command)) => {
                    tracing::debug!(?command, "running");
                    self.execute(command).await;
                }
                Ok(None) => {}
                Err(e) => output::error(e),
            }
            if let Some(done) = &inputs.done {
                let _ = done.send(()).await;
            }
        }
        self.leave().await;
    }

    async fn execute(&mut self, command: Command) {
        match command {
            Command::Register => self.register().await,
            Command::ListPeers => match self.registry.list().await {
                Ok(peers) => {
                    self.names.set_registered(&peers);
                    show(Notice::Peers { peers })
                }
                Err(e) => output::error(failure(&e, &self.registry.describe())),
            },
            Command::ExitNetwork => self.exit_network().await,
            Command::ChatRequest(target) => self.chat_request(target).await,
            Command::Answer { accept, from } => self.answer(accept, from).await,
            Command::ChatMessage { peer, text } => self.chat_message(peer, text).await,
            Command::ListConnected => show(Notice::Connected {
                peers: self.broker.list_connected().await,
            }),
            Command::Disconnect { peer } => self.disconnect(peer).await,
            Command::Status => self.status().await,
            Command::History { peer, n } => self.history(peer, n).await,
            Command::Whoami => show(Notice::Whoami {
                name: self.origin.name,
                key: self.origin.identity.public(),
            }),
            Command::Trust { peer } => self.trust(peer).await,
            Command::ReleaseName => self.release_name().await,
            Command::Help(None) => show(Notice::Help {
                text: command::help_text(),
            }),
            Command::Help(Some(topic)) => show(Notice::Help {
                text: command::topic_text(topic),
            }),
            Command::Exit => unreachable!("run handles exit"),
        }
    }

    async fn register(&mut self) {
        match self.registry.register().await {
            Ok((addr, ttl)) => {
                self.registered = true;
                self.registry_lost = false;
                self.renew_at = Some(Instant::now() + renewal_interval(ttl));
                show(Notice::Registered {
                    name: self.origin.name,
                    addr,
                });
            }
            Err(e) if e.code() == Some(ErrorCode::NameTaken) => output::error(format!(
                "the name {} is taken: it belongs to another key",
                self.origin.name
            )),
            Err(e) => output::error(failure(&e, &self.registry.describe())),
        }
    }

    async fn exit_network(&mut self) {
        match self.registry.unregister().await {
            Ok(()) => {
                self.registered = false;
                self.renew_at = None;
                show(Notice::LeftNetwork);
            }
            Err(e) if e.code() == Some(ErrorCode::NotRegistered) => {
                self.registered = false;
                self.renew_at = None;
                output::error(format!("{} is not registered", self.origin.name));
            }
            Err(e) => output::error(failure(&e, &self.registry.describe())),
        }
    }

    async fn chat_request(&mut self, target: Target) {
        // By name, the registry also says which key the peer must answer with.
        let (addr, expected) = match target {
            Target::Addr { host, port } => match runtime::resolve(&host, port).await {
                Ok(addr) => (addr, None),
                Err(e) => return output::error(format!("cannot find {host}: {e}")),
            },
            Target::Name(name) => match self.registry.lookup(&name).await {
                Ok(peer) => (peer.addr, Some((name, peer.key))),
                Err(e) if e.code() == Some(ErrorCode::UnknownPeer) => {
                    return output::error(format!("no peer named {name} is registered"))
                }
                Err(e) => return output::error(failure(&e, &self.registry.describe())),
            },
        };
        let (id, share) = (new_id(), KeyShare::new());
        let body = Request::ChatRequest {
            share: share.public(),
        };
        self.broker.request_sent(id, addr, share).await;
        let outcome = match transport::request(addr, &self.origin, id, body).await {
            Ok(Response {
                from,
                outcome: Outcome::Pending { expires_in_ms },
                ..
            }) => match expected {
                Some((name, key)) if from.name != name || from.key != key => Err(format!(
                    "the peer at {addr} answers as {} with key {}, but the registry has key {} \
                     for {name}: refused",
                    from.name,
                    from.key.fingerprint(),
                    key.fingerprint()
                )),
                _ => Ok((from, Duration::from_millis(expires_in_ms))),
            },
            Ok(other) => Err(format!(
                "{addr} answered the chat request with {:?}",
                other.outcome
            )),
            Err(e) => Err(match e.code() {
                Some(ErrorCode::AlreadyConnected) => {
                    format!("already in a chat with the peer at {addr}")
                }
                Some(ErrorCode::TooManyRequests) => format!(
                    "the peer at {addr} has too many pending chat requests; try again later"
                ),
                Some(ErrorCode::KeyChanged) => format!(
                    "the peer at {addr} knows another key for the name {}: refused",
                    self.origin.name
                ),
                _ => failure(&e, &addr.to_string()),
            }),
        };
        match outcome {
            Ok((from, expires_in)) => {
                let peer = from.name;
                // The broker says "sent" itself, in order with the answer, which may come at once.
                if let Err(KeyRefused) = self.broker.request_pending(id, from, expires_in).await {
                    // The warning is out; say what became of the request.
                    output::error(format!("chat request to {peer} not made"));
                }
            }
            Err(why) => {
                self.broker.request_failed(id).await;
                output::error(why);
            }
        }
    }

    async fn answer(&mut self, accept: bool, from: Option<PeerName>) {
        let Answered { request, share } = match self.broker.answer(from, accept).await {
            Ok(answered) => answered,
            Err(TakeError::NonePending) => return output::error("no pending chat request"),
            Err(TakeError::NoneFrom(name)) => {
                return output::error(format!("no pending chat request from {name}"))
            }
            Err(TakeError::Ambiguous(names)) => {
                let names: Vec<&str> = names.iter().map(PeerName::as_str).collect();
                return output::error(format!(
                    "{} chat requests are pending ({}); answer yes NAME or no NAME",
                    names.len(),
                    names.join(", ")
                ));
            }
        };
        let (peer, addr) = (request.from, request.addr);
        let accepted = accept && share.is_some();
        if accept && !accepted {
            output::error(format!(
                "no chat with {peer}: its key share is unusable, or its key is not the one known \
                 for {peer}; declining"
            ));
        }
        let body = Request::ChatAnswer {
            request: request.id,
            answer: if accepted {
                Answer::Accepted
            } else {
                Answer::Declined
            },
            share,
        };
        // The requester says `busy` if our answer overtook its reading of our `pending` reply:
        // it cannot tell us from an impostor until then. Try again for a while.
        let send = || async {
            match transport::request(addr, &self.origin, new_id(), body.clone()).await {
                Err(e) if e.code() == Some(ErrorCode::Busy) || is_transient(&e) => {
                    Attempt::Again(e)
                }
                result => Attempt::Done(result),
            }
        };
        let sent = retry(self.retry_for, send).await.and_then(|result| result);
        match (accepted, sent) {
            (true, Ok(_)) => show(Notice::AcceptedChat { peer, addr }),
            (true, Err(e)) => {
                self.broker.forget(&peer).await;
                output::error(match e.code() {
                    Some(ErrorCode::UnknownRequest) => {
                        format!("{peer} no longer waits for an answer; no chat started")
                    }
                    _ => format!(
                        "{}; no chat started",
                        failure(&e, &format!("{peer} ({addr})"))
                    ),
                });
            }
            (false, sent) => {
                show(Notice::DeclinedChat { peer });
                if let Err(e) = sent {
                    output::error(format!(
                        "could not tell {peer}: {}",
                        failure(&e, &addr.to_string())
                    ));
                }
            }
        }
    }

    async fn chat_message(&mut self, peer: PeerName, text: String) {
        // One id for every try, so the receiver can tell a retry from a new message.
        let id = new_id();
        let send = || async {
            let body = Request::ChatMessage { text: text.clone() };
            let Some(sealed) = self.broker.seal(&peer, id, body).await else {
                return Attempt::Done(Err(Undelivered::NoChat));
            };
            match transport::exchange(sealed.addr, sealed.frame).await {
                Ok(reply) => Attempt::Done(
                    self.broker
                        .acknowledged(&peer, sealed.counter, reply)
                        .await
                        .ok_or(Undelivered::BadAck(sealed.addr)),
                ),
                Err(e) if is_transient(&e) => Attempt::Again((e, sealed.addr)),
                Err(e) => Attempt::Done(Err(Undelivered::Failed(e, sealed.addr))),
            }
        };
        let outcome = match retry(self.retry_for, send).await {
            Ok(outcome) => outcome,
            Err((e, addr)) => {
                // Nobody answered for the whole retry time: the partner is gone.
                let why = failure(&e, &format!("{peer} ({addr})"));
                output::error(format!("{why}; message not delivered"));
                self.broker.forget(&peer).await;
                return show(Notice::PeerGone { peer, why });
            }
        };
        match outcome {
            Ok(Outcome::Ok) => match self.broker.record_sent(&peer, id, text).await {
                Ok(()) => show(Notice::Delivered { peer }),
                Err(why) => output::error(format!("delivered to {peer}, but {why}")),
            },
            Ok(Outcome::Error {
                code: ErrorCode::UnknownSession,
                ..
            }) => {
                self.broker.forget(&peer).await;
                output::error(format!("{peer} has closed the chat; message not delivered"));
            }
            Ok(Outcome::Error { detail, .. }) => {
                output::error(format!("{peer} refused the message: {detail}"))
            }
            Ok(other) => output::error(format!("{peer} answered with {other:?}")),
            Err(Undelivered::NoChat) => output::error(format!("not in a chat with {peer}")),
            Err(Undelivered::BadAck(addr)) => output::error(format!(
                "{peer} ({addr}) sent an acknowledgement that does not open with the chat's \
                 keys; message not confirmed"
            )),
            Err(Undelivered::Failed(e, addr)) => output::error(format!(
                "{}; message not delivered",
                failure(&e, &format!("{peer} ({addr})"))
            )),
        }
    }

    async fn history(&mut self, peer: PeerName, n: usize) {
        match self.broker.history(&peer, n).await {
            Ok(lines) => show(Notice::History { peer, lines }),
            Err(why) => output::error(why),
        }
    }

    /// Renews the registration; says once when the registry is lost, and again when it is
    /// back (a restarted registry forgot us, and this registers us again).
    async fn renew(&mut self) {
        match self.registry.register().await {
            Ok((addr, ttl)) => {
                if self.registry_lost {
                    self.registry_lost = false;
                    show(Notice::Reregistered {
                        name: self.origin.name,
                        addr,
                    });
                }
                self.renew_at = Some(Instant::now() + renewal_interval(ttl));
            }
            Err(e) if e.code() == Some(ErrorCode::NameTaken) => {
                self.registered = false;
                self.renew_at = None;
                output::error(format!(
                    "the registry no longer lets {} register: {}",
                    self.origin.name,
                    failure(&e, &self.registry.describe())
                ));
            }
            Err(e) => {
                if !self.registry_lost {
                    self.registry_lost = true;
                    output::error(format!(
                        "lost the registry ({}); trying again every {}s",
                        failure(&e, &self.registry.describe()),
                        RENEW_RETRY.as_secs()
                    ));
                }
                self.renew_at = Some(Instant::now() + RENEW_RETRY);
            }
        }
    }

    async fn disconnect(&mut self, peer: PeerName) {
        let Some(goodbye) = self.broker.forget(&peer).await else {
            return output::error(format!("not in a chat with {peer}"));
        };
        let told = transport::exchange(goodbye.addr, goodbye.frame).await;
        show(Notice::Disconnected { peer });
        if let Err(e) = told {
            output::error(format!(
                "could not tell {peer}: {}",
                failure(&e, &goodbye.addr.to_string())
            ));
        }
    }

    async fn trust(&mut self, peer: PeerName) {
        match self.broker.trust(&peer).await {
            Ok(key) => show(Notice::Trusted {
                peer,
                fingerprint: key.fingerprint(),
            }),
            Err(why) => output::error(why),
        }
    }

    async fn release_name(&mut self) {
        match self.registry.release().await {
            Ok(()) => {
                self.registered = false;
                self.renew_at = None;
                show(Notice::Released {
                    name: self.origin.name,
                });
            }
            Err(e) => output::error(failure(&e, &self.registry.describe())),
        }
    }

    async fn status(&mut self) {
        let reachable = self.registry.ping().await.is_ok();
        let Some(snapshot) = self.broker.snapshot().await else {
            return;
        };
        show(Notice::Status(Status {
            name: self.origin.name,
            addr: self.listening,
            registry: self.registry.addr(),
            registry_reachable: reachable,
            registered: self.registered,
            chats: snapshot.chats,
            incoming: snapshot.incoming,
            outgoing: snapshot.outgoing,
        }));
    }

    /// The next input or renewal; Ctrl-C counts as the end of input and goes before queued
    /// lines.
    async fn next(&self, inputs: &Inputs) -> Next {
        let renew_at = self.renew_at;
        let renewal = async move {
            match renew_at {
                Some(at) => runtime::sleep(at.saturating_duration_since(Instant::now())).await,
                None => futures::future::pending::<()>().await,
            }
        };
        let interrupt = std::pin::pin!(inputs.interrupts.recv());
        let renewal = std::pin::pin!(renewal);
        let line = std::pin::pin!(inputs.lines.recv());
        match select(select(interrupt, renewal), line).await {
            Either::Left((Either::Left(_), _)) => Next::Input(Input::End),
            Either::Left((Either::Right(_), _)) => Next::Renew,
            Either::Right((Ok(input), _)) => Next::Input(input),
            Either::Right((Err(_), _)) => Next::Input(Input::End),
        }
    }

    /// Ends every chat and tells everyone waiting for our answer that we left (all at once),
    /// then unregisters.
    async fn leave(&mut self) {
        let closing = self.broker.close().await;
        let goodbyes = closing
            .goodbyes
            .into_iter()
            .map(|g| transport::exchange(g.addr, g.frame));
        let notices = closing.requests.iter().map(|r| {
            let body = Request::ChatAnswer {
                request: r.id,
                answer: Answer::Left,
                share: None,
            };
            transport::request(r.addr, &self.origin, new_id(), body)
        });
        join(join_all(goodbyes), join_all(notices)).await;
        if self.registered {
            let _ = self.registry.unregister().await;
        }
        show(Notice::Bye);
    }
}

/// Why a chat message got no acknowledgement.
enum Undelivered {
    NoChat,
    BadAck(SocketAddr),
    Failed(SendError, SocketAddr),
}

/// Renew at a third of the time granted: two renewals may fail before it lapses.
fn renewal_interval(ttl: Duration) -> Duration {
    (ttl / 3).clamp(Duration::from_millis(500), Duration::from_secs(600))
}
