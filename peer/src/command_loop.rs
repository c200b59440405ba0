//! The user's side of the peer: runs each command, one at a time, to its end.
//!
//! A command that talks to the network finishes (reply or error) before the next line is
//! read, so a script's commands take effect in order. Events from the network keep showing
//! meanwhile: they come from the broker, not from here. Every command ends in at least one
//! event, so nothing a user asked for passes in silence, and every event a command causes
//! carries its id (`json_command.rs`): the id of a JSON command, or `cN` for the Nth plain
//! line with a command. The id goes with the command into the state, where a request or a
//! kept message keeps it for the outcomes that come later.
//!
//! One thing happens here without a command: once registered, the loop renews the
//! registration at a third of the time the registry grants, between commands (and so
//! registers again by itself when a restarted registry has forgotten it). The chat commands
//! are in `chat_commands.rs`, the network's in `exchange_commands.rs`, registering and
//! renewing in `registry_commands.rs`; this file has the loop, `status` and leaving.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::future::{join, join_all, select, Either};
use p2p_shared::identity::NoiseKey;
use p2p_shared::transport::{self, Origin};
use p2p_shared::wire::new_id;
use p2p_shared::{runtime, Answer, ErrorCode};

use crate::broker::Broker;
use crate::command::{self, Command};
use crate::disk::Disk;
use crate::error::{Failure, PeerError};
use crate::event::{Event, PeerKey, Shown, Status};
use crate::input::{Input, Inputs};
use crate::json_command::{self, BadJsonCommand, CommandId, JsonCommand};
use crate::names::Names;
use crate::registry_client::RegistryClient;
use crate::registry_client::{Found, Listing};
use crate::screen::Screen;
use crate::state;

pub struct CommandLoop {
    pub(crate) origin: Origin,
    /// The address we listen on, as bound (0.0.0.0 when listening on every interface).
    listening: SocketAddr,
    pub(crate) broker: Broker,
    pub(crate) screen: Screen,
    pub(crate) disk: Disk,
    pub(crate) registry: RegistryClient,
    names: Names,
    pub(crate) retry_for: Duration,
    /// Whether we registered, so that `exit` knows to unregister and renewals go on.
    pub(crate) registered: bool,
    /// When to renew the registration next (while registered).
    pub(crate) renew_at: Option<Instant>,
    /// Whether the last renewal failed (to say so once, and again when it works).
    pub(crate) registry_lost: bool,
    /// Whether lines starting with `{` are JSON commands (`--json`).
    json: bool,
    /// How many plain lines with a command were read: the last one's id is `c` and this.
    plain: u64,
    /// The command running now: every event it causes answers it.
    pub(crate) running: Option<CommandId>,
}

/// What the loop does next.
enum Next {
    Input(Input),
    Renew,
}

/// What the peer needs to run commands.
pub struct Parts {
    pub origin: Origin,
    pub listening: SocketAddr,
    pub broker: Broker,
    pub screen: Screen,
    pub disk: Disk,
    pub registry: RegistryClient,
    pub names: Names,
    pub retry_for: Duration,
    /// `--json`: lines starting with `{` are JSON commands.
    pub json: bool,
}

impl CommandLoop {
    pub fn new(parts: Parts) -> Self {
        let Parts {
            origin,
            listening,
            broker,
            screen,
            disk,
            registry,
            names,
            retry_for,
            json,
        } = parts;
        CommandLoop {
            origin,
            listening,
            broker,
            screen,
            disk,
            registry,
            names,
            retry_for,
            registered: false,
            renew_at: None,
            registry_lost: false,
            json,
            plain: 0,
            running: None,
        }
    }

    /// Runs commands until `exit`, the end of input or Ctrl-C, then leaves cleanly.
    pub async fn run(mut self, inputs: Inputs) {
        loop {
            let input = match self.next(&inputs).await {
                Next::Renew => {
                    self.renew().await;
                    continue;
                }
                Next::Input(Input::End) => break,
                Next::Input(input) => input,
            };
            if let Some((id, command)) = self.read(input) {
                self.running = Some(id);
                let interrupted = match command {
                    // Still running: `bye` answers it.
                    Ok(Command::Exit) => break,
                    Ok(command) => self.run_until_interrupted(command, &inputs).await,
                    Err(e) => {
                        self.error(e).await;
                        false
                    }
                };
                self.running = None;
                if interrupted {
                    break;
                }
            }

            // The prompt comes back only now (the terminal waits for this).
            if let Some(done) = &inputs.done {
                let _ = done.send(()).await;
            }
        }
        self.leave().await;
    }

    /// The command `input` asks for, or why there is none to run, with its id: the one a
    /// JSON command gives (or, if it has none that can be read, the next `cN`), or the next
    /// `cN` for a plain line. `None` for a blank line, which asks for nothing.
    fn read(&mut self, input: Input) -> Option<(CommandId, Result<Command, PeerError>)> {
        let line = match input {
            Input::Line(line) => line,
            Input::Unreadable(why) => return Some((self.next_plain(), Err(why))),
            Input::End => return None,
        };
        let (id, text) = match self.json && json_command::is_json(&line) {
            true => match json_command::parse(&line) {
                Ok(JsonCommand { id, cmd }) => (Some(id), cmd),
                Err(BadJsonCommand { id, why }) => {
                    let id = id.unwrap_or_else(|| self.next_plain());
                    return Some((id, Err(PeerError::BadCommandJson { why })));
                }
            },
            false => (None, line),
        };
        let command = command::parse(&text)
            .map_err(PeerError::Usage)
            .transpose()?;
        Some((id.unwrap_or_else(|| self.next_plain()), command))
    }

    /// The id of the next plain line with a command: `c1`, `c2`, ...
    fn next_plain(&mut self) -> CommandId {
        self.plain = self.plain.saturating_add(1);
        CommandId::chosen(self.plain)
    }

    /// Runs `command`; true if a signal came first. A signal stops the peer even in the
    /// middle of a command (one waiting for room on a screen nobody reads, say): the command
    /// is dropped, and leaving ends what it had started (chats, requests) as it ends
    /// everything else.
    async fn run_until_interrupted(&mut self, command: Command, inputs: &Inputs) -> bool {
        tracing::debug!(?command, "running");
        let running = std::pin::pin!(self.execute(command));
        let interrupt = std::pin::pin!(inputs.interrupts.recv());
        matches!(select(running, interrupt).await, Either::Right(_))
    }

    /// Shows the result of the command running (waiting for room on the screen,
    /// `screen.rs`).
    pub(crate) async fn show(&self, event: impl Into<Event>) {
        self.screen.show(self.answering(event.into())).await;
    }

    pub(crate) async fn error(&self, error: PeerError) {
        self.show(error).await;
    }

    /// `event` as an answer to the command running.
    pub(crate) fn answering(&self, event: Event) -> Shown {
        event.answering(self.running.clone())
    }

    async fn execute(&mut self, command: Command) {
        match command {
            Command::Register => self.register().await,
            Command::ListPeers => match self.registry.list().await {
                Ok(Listing { peers, cut }) => {
                    self.names.set_registered(&peers);
                    let shown = peers.len();
                    self.show(Event::Peers { peers }).await;
                    if cut {
                        self.show(Event::ListingCut { shown }).await
                    }
                }
                Err(e) => self.error(self.registry_failure(&e)).await,
            },
            Command::ExitNetwork => self.exit_network().await,
            Command::ChatRequest(target) => self.chat_request(target).await,
            Command::Answer { accept, from } => self.answer(accept, from).await,
            Command::ChatMessage { peer, text } => self.chat_message(peer, text).await,
            Command::ListConnected => {
                let chats = self
                    .broker
                    .call(|state, _, _| (state.chats(), state.away_chats()));
                let (peers, away) = chats.await.unwrap_or_default();
                self.show(Event::Connected { peers, away }).await
            }
            Command::Disconnect { peer } => self.disconnect(peer).await,
            Command::Status => self.status().await,
            Command::History { peer, n } => self.history(peer, n).await,
            Command::Whoami => {
                self.show(Event::Whoami {
                    name: self.origin.name,
                    key: PeerKey(self.origin.identity.public()),
                })
                .await
            }
            Command::Trust { peer, fingerprint } => self.trust(peer, fingerprint).await,
            Command::TrustRegistry { fingerprint } => self.trust_registry(fingerprint).await,
            Command::ReleaseName => self.release_name().await,
            Command::Join { host, port } => self.join(host, port).await,
            Command::KnownPeers => self.known_peers().await,
            Command::Broadcast { text } => self.broadcast(text).await,
            Command::Block { peer } => self.block(peer).await,
            Command::Unblock { peer } => self.unblock(peer).await,
            Command::Forget { peer } => self.forget(peer).await,
            Command::Help(None) => {
                self.show(Event::Help {
                    text: command::help_text(),
                })
                .await
            }
            Command::Help(Some(topic)) => {
                self.show(Event::Help {
                    text: command::topic_text(topic),
                })
                .await
            }
            Command::Exit => unreachable!("run handles exit"),
        }
    }

    /// A failure to talk to the registry, as the user reads it.
    pub(crate) fn registry_failure(&self, e: &p2p_shared::transport::SendError) -> PeerError {
        PeerError::Registry(Failure::of(e, &self.registry.describe()))
    }

    /// Looks `name` up at the registry: where it is, its Noise static key if the registry
    /// had one its identity signed, and whether the key is vouched for (always, by the
    /// registry). With no registry to answer, the book says where `name` is: the key
    /// pinned for it, or the only key the book has for it (then not vouched for).
    pub(crate) async fn lookup(
        &mut self,
        name: &p2p_shared::PeerName,
    ) -> Result<(p2p_shared::PeerInfo, Option<NoiseKey>, bool), PeerError> {
        match self.registry.lookup(name).await {
            Ok(Found::Online(peer, noise)) => Ok((peer, noise, true)),
            Ok(Found::Offline(_)) => Err(PeerError::NotOnline { name: *name }),
            Err(e) if e.code() == Some(ErrorCode::UnknownPeer) => {
                Err(PeerError::UnknownPeer { name: *name })
            }
            Err(e) if crate::liveness::is_transient(&e) => {
                let name = *name;
                let booked = self
                    .broker
                    .call(move |state, cx, _| state.book_lookup(&name, cx));
                match booked.await.flatten() {
                    Some((peer, vouched)) => Ok((peer, None, vouched)),
                    None => Err(self.registry_failure(&e)),
                }
            }
            Err(e) => Err(self.registry_failure(&e)),
        }
    }

    async fn status(&mut self) {
        let reachable = self.registry.ping().await.is_ok();
        let other_key = match reachable {
            true => None,
            false => self.registry.other_key().await.map(|k| k.fingerprint()),
        };
        let snapshot = self.broker.call(|state, cx, _| state.snapshot(cx.now));
        let Some(snapshot) = snapshot.await else {
            return;
        };
        self.show(Event::Status(Status {
            name: self.origin.name,
            addr: self.listening,
            registry: self.registry.addr(),
            registry_reachable: reachable,
            registry_other_key: other_key,
            registered: self.registered,
            chats: snapshot.chats,
            incoming: snapshot.incoming,
            outgoing: snapshot.outgoing,
        }))
        .await;
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
        let leaving = self.broker.call(|state, _, fx| state.leave(fx)).await;
        if let Some(leaving) = leaving {
            let goodbyes = leaving
                .goodbyes
                .into_iter()
                .map(|g| transport::exchange(g.addr, g.frame));
            let notices = leaving.unanswered.iter().map(|r| {
                let body = state::unanswered(r, Answer::Left);
                transport::request(r.addr, &self.origin, new_id(), body)
            });
            join(join_all(goodbyes), join_all(notices)).await;
        }
        if self.registered {
            let _ = self.registry.unregister().await;
        }
        // Pins made at the last moment are on disk before we go.
        self.disk.written().await;
        // Not a command's result that waits for room: a peer whose stdout nobody reads must
        // still exit (its last lines are given a moment, SCREEN_GRACE in lib.rs). It answers
        // `exit`, if that is why we leave.
        self.screen.push_state(self.answering(Event::Bye));
    }
}
