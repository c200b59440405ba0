//! The user's side of the peer: runs each command, one at a time, to its end.
//!
//! A command that talks to the network finishes (reply or error) before the next line is
//! read, so a script's commands take effect in order. Events from the network keep printing
//! meanwhile: they come from the broker, not from here. Every command ends in at least one
//! line of output, so nothing a user asked for passes in silence.

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::{join, join_all, select, Either};
use p2p_shared::message::new_id;
use p2p_shared::seal::KeyShare;
use p2p_shared::transport::{self, Origin, Response, SendError};
use p2p_shared::{runtime, Answer, ErrorCode, Outcome, PeerName, Request};

use crate::broker::{Answered, Broker, KeyRefused};
use crate::command::{self, Command, Target};
use crate::input::{Input, Inputs};
use crate::names::Names;
use crate::output::{self, show, Notice, Status};
use crate::registry::RegistryClient;
use crate::requests::TakeError;

pub struct Session {
    origin: Origin,
    /// The address we listen on, as bound (0.0.0.0 when listening on every interface).
    listening: SocketAddr,
    broker: Broker,
    registry: RegistryClient,
    names: Names,
    /// Whether we registered, so that `exit` knows to unregister.
    registered: bool,
}

impl Session {
    pub fn new(
        origin: Origin,
        listening: SocketAddr,
        broker: Broker,
        registry: RegistryClient,
        names: Names,
    ) -> Self {
        Session {
            origin,
            listening,
            broker,
            registry,
            names,
            registered: false,
        }
    }

    /// Runs commands until `exit`, the end of input or Ctrl-C, then leaves cleanly.
    pub async fn run(mut self, inputs: Inputs) {
        loop {
            let line = match next(&inputs).await {
                Input::Line(line) => line,
                Input::Unreadable(why) => {
                    output::error(why);
                    String::new()
                }
                Input::End => break,
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
            Command::Whoami => show(Notice::Whoami {
                name: self.origin.name.clone(),
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
            Ok(addr) => {
                self.registered = true;
                show(Notice::Registered {
                    name: self.origin.name.clone(),
                    addr,
                });
            }
            Err(e) if e.code() == Some(ErrorCode::NameTaken) => output::error(format!(
                "the name {} is taken by another live peer",
                self.origin.name
            )),
            Err(e) => output::error(failure(&e, &self.registry.describe())),
        }
    }

    async fn exit_network(&mut self) {
        match self.registry.unregister().await {
            Ok(()) => {
                self.registered = false;
                show(Notice::LeftNetwork);
            }
            Err(e) if e.code() == Some(ErrorCode::NotRegistered) => {
                self.registered = false;
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
                let (peer, addr) = (from.name.clone(), from.addr);
                // Ok(false) when the answer overtook this reply: its line is already out.
                match self.broker.request_pending(id, from, expires_in).await {
                    Ok(true) => show(Notice::RequestSent { peer, addr }),
                    Ok(false) => {}
                    // The warning is out; say what became of the request.
                    Err(KeyRefused) => output::error(format!("chat request to {peer} not made")),
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
            output::error(format!("{peer} sent an unusable key share; declining"));
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
        let sent = transport::request(addr, &self.origin, new_id(), body).await;
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
                show(Notice::DeclinedChat { peer: peer.clone() });
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
        let Some(sealed) = self.broker.seal(&peer, Request::ChatMessage { text }).await else {
            return output::error(format!("not in a chat with {peer}"));
        };
        let addr = sealed.addr;
        let reply = match transport::exchange(addr, sealed.frame).await {
            Ok(reply) => reply,
            Err(e) => {
                return output::error(format!(
                    "{}; message not delivered",
                    failure(&e, &format!("{peer} ({addr})"))
                ))
            }
        };
        match self.broker.acknowledged(&peer, sealed.counter, reply).await {
            Some(Outcome::Ok) => show(Notice::Delivered { peer }),
            Some(Outcome::Error {
                code: ErrorCode::UnknownSession,
                ..
            }) => {
                self.broker.forget(&peer).await;
                output::error(format!("{peer} has closed the chat; message not delivered"));
            }
            Some(Outcome::Error { detail, .. }) => {
                output::error(format!("{peer} refused the message: {detail}"))
            }
            Some(other) => output::error(format!("{peer} answered with {other:?}")),
            None => output::error(format!(
                "{peer} ({addr}) sent an acknowledgement that does not open with the chat's \
                 keys; message not confirmed"
            )),
        }
    }

    async fn disconnect(&mut self, peer: PeerName) {
        let Some(goodbye) = self.broker.forget(&peer).await else {
            return output::error(format!("not in a chat with {peer}"));
        };
        let told = transport::exchange(goodbye.addr, goodbye.frame).await;
        show(Notice::Disconnected { peer: peer.clone() });
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
                show(Notice::Released {
                    name: self.origin.name.clone(),
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
            name: self.origin.name.clone(),
            addr: self.listening,
            registry: self.registry.addr(),
            registry_reachable: reachable,
            registered: self.registered,
            chats: snapshot.chats,
            incoming: snapshot.incoming,
            outgoing: snapshot.outgoing,
        }));
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

/// The next input; Ctrl-C counts as the end of input and goes before queued lines.
async fn next(inputs: &Inputs) -> Input {
    let interrupt = std::pin::pin!(inputs.interrupts.recv());
    let line = std::pin::pin!(inputs.lines.recv());
    match select(interrupt, line).await {
        Either::Left(_) | Either::Right((Err(_), _)) => Input::End,
        Either::Right((Ok(input), _)) => input,
    }
}

/// One line saying why a request to `whom` failed.
fn failure(e: &SendError, whom: &str) -> String {
    match e {
        SendError::Unreachable { source, .. } => {
            // Plain OS errors read best as their kind ("connection refused").
            let why = match source.get_ref() {
                Some(_) => source.to_string(),
                None => source.kind().to_string(),
            };
            format!("cannot reach {whom}: {why}")
        }
        SendError::Timeout { .. } => format!("{whom} did not answer in time"),
        SendError::Broken { source, .. } => format!("the connection to {whom} failed: {source}"),
        SendError::BadReply { reason, .. } => format!("{whom} sent an invalid reply: {reason}"),
        SendError::Refused { detail, .. } => format!("{whom} refused: {detail}"),
    }
}
