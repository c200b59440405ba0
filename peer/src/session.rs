//! The user's side of the peer: runs each command, one at a time, to its end.
//!
//! A command that talks to the network finishes (reply or error) before the next line is
//! read, so a script's commands take effect in order. Events from the network keep printing
//! meanwhile: they come from the broker, not from here. Every command ends in at least one
//! line of output, so nothing a user asked for passes in silence.

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::{join_all, select, Either};
use p2p_shared::message::new_id;
use p2p_shared::transport::{self, Origin, Response, SendError};
use p2p_shared::{runtime, Answer, ErrorCode, Outcome, PeerName, Request};

use crate::broker::Broker;
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
        let addr = match target {
            Target::Addr { host, port } => match runtime::resolve(&host, port).await {
                Ok(addr) => addr,
                Err(e) => return output::error(format!("cannot find {host}: {e}")),
            },
            Target::Name(name) => match self.registry.lookup(&name).await {
                Ok(peer) => peer.addr,
                Err(e) if e.code() == Some(ErrorCode::UnknownPeer) => {
                    return output::error(format!("no peer named {name} is registered"))
                }
                Err(e) => return output::error(failure(&e, &self.registry.describe())),
            },
        };
        let id = new_id();
        self.broker.request_sent(id, addr).await;
        match transport::request(addr, &self.origin, id, Request::ChatRequest).await {
            Ok(Response {
                from,
                outcome: Outcome::Pending { expires_in_ms },
            }) => {
                let expires_in = Duration::from_millis(expires_in_ms);
                // False when the answer overtook this reply: its line is already out.
                if self
                    .broker
                    .request_pending(id, from.name.clone(), expires_in)
                    .await
                {
                    show(Notice::RequestSent {
                        peer: from.name,
                        addr: from.addr,
                    });
                }
            }
            Ok(other) => {
                self.broker.request_failed(id).await;
                output::error(format!(
                    "{addr} answered the chat request with {:?}",
                    other.outcome
                ));
            }
            Err(e) => {
                self.broker.request_failed(id).await;
                output::error(match e.code() {
                    Some(ErrorCode::AlreadyConnected) => {
                        format!("already in a chat with the peer at {addr}")
                    }
                    Some(ErrorCode::TooManyRequests) => {
                        format!("the peer at {addr} has too many pending chat requests; try again later")
                    }
                    _ => failure(&e, &addr.to_string()),
                });
            }
        }
    }

    async fn answer(&mut self, accept: bool, from: Option<PeerName>) {
        let request = match self.broker.answer(from, accept).await {
            Ok(request) => request,
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
        let answer = if accept {
            Answer::Accepted
        } else {
            Answer::Declined
        };
        let body = Request::ChatAnswer {
            request: request.id,
            answer,
        };
        let sent = transport::request(addr, &self.origin, new_id(), body).await;
        match (accept, sent) {
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
        let Some(addr) = self.broker.chat_addr(&peer).await else {
            return output::error(format!("not in a chat with {peer}"));
        };
        let body = Request::ChatMessage { text };
        match transport::request(addr, &self.origin, new_id(), body).await {
            Ok(_) => show(Notice::Delivered { peer }),
            Err(e) if e.code() == Some(ErrorCode::NotConnected) => {
                self.broker.forget(&peer).await;
                output::error(format!("{peer} has closed the chat; message not delivered"));
            }
            Err(e) => output::error(format!(
                "{}; message not delivered",
                failure(&e, &format!("{peer} ({addr})"))
            )),
        }
    }

    async fn disconnect(&mut self, peer: PeerName) {
        let Some(addr) = self.broker.forget(&peer).await else {
            return output::error(format!("not in a chat with {peer}"));
        };
        let told = transport::request(addr, &self.origin, new_id(), Request::Disconnect).await;
        show(Notice::Disconnected { peer: peer.clone() });
        match told {
            Err(e) if e.code() != Some(ErrorCode::NotConnected) => output::error(format!(
                "could not tell {peer}: {}",
                failure(&e, &addr.to_string())
            )),
            _ => {}
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
            .chats
            .iter()
            .map(|p| (p.addr, Request::Disconnect))
            .chain(closing.requests.iter().map(|r| {
                let answer = Request::ChatAnswer {
                    request: r.id,
                    answer: Answer::Left,
                };
                (r.addr, answer)
            }));
        join_all(
            goodbyes.map(|(addr, body)| transport::request(addr, &self.origin, new_id(), body)),
        )
        .await;
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
