//! The user's side of the peer: runs each command, one at a time, to its end.
//!
//! A command that talks to the network finishes (reply or error) before the next line is
//! read, so a script's commands take effect in order. The one exception is `chat message`:
//! its message goes in a task of its own, so that several may be in flight, and every other
//! command waits for them first (`in_flight.rs`). Events from the network keep showing
//! meanwhile: they come from the broker, not from here. Every command ends in at least one
//! event, so nothing a user asked for passes in silence, and every event a command causes
//! carries its id (`json_command.rs`): the id of a JSON command, or `cN` for the Nth plain
//! line with a command. The id goes with the command into the state, where a request or a
//! kept message keeps it for the outcomes that come later.
//!
//! One thing happens here without a command: once registered, the loop renews the
//! registration at a third of the time the registry grants, between commands (and so
//! registers again by itself when a restarted registry has forgotten it). The chat commands
//! are in `chat_commands.rs` (`chat message` in `message_commands.rs`), the network's in
//! `exchange_commands.rs`, registering, renewing and lookups in `registry_commands.rs`, `status`,
//! `contacts` and leaving in `own_commands.rs`; this file has the loop.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::future::{select, Either};
use p2p_shared::runtime;
use p2p_shared::transport::Origin;
use p2p_shared::wire::MAX_TEXT_LEN;

use crate::bell::Bell;
use crate::broker::Broker;
use crate::command::{self, Command, HelpOn};
use crate::control;
use crate::disk::Disk;
use crate::error::PeerError;
use crate::event::{Event, PeerKey, Shown};
use crate::in_flight::InFlight;
use crate::input::{Input, Inputs};
use crate::json_command::{self, BadJsonCommand, CommandId, JsonCommand};
use crate::message_commands::Messenger;
use crate::names::Names;
use crate::registry_client::Listing;
use crate::registry_client::RegistryClient;
use crate::screen::Screen;
use crate::split;
use crate::talk::Talk;

pub struct CommandLoop {
    pub(crate) origin: Origin,
    /// The address we listen on, as bound (0.0.0.0 when listening on every interface).
    pub(crate) listening: SocketAddr,
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
    /// The current conversation, if any (`talk PEER`).
    pub(crate) talk: Talk,
    /// Whether the bell is on, and whether this session has one (a terminal, not JSON).
    pub(crate) bell: (Bell, bool),
    /// Whether lines starting with `{` are JSON commands (`--json`).
    json: bool,
    /// How many plain lines with a command were read: the last one's id is `c` and this.
    plain: u64,
    /// The command running now: every event it causes answers it.
    pub(crate) running: Option<CommandId>,
    /// What sends chat messages, and the messages in flight (`in_flight.rs`).
    pub(crate) messenger: Messenger,
    pub(crate) in_flight: InFlight,
}

/// What the loop does next.
enum Next {
    Input(Input),
    /// A message from a script, through the control socket.
    Control(control::Request),
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
    /// The bell the screen rings, and whether the screen has one (a terminal, not JSON).
    pub bell: (Bell, bool),
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
            bell,
        } = parts;
        let messenger = Messenger {
            broker: broker.clone(),
            screen: screen.clone(),
            disk: disk.clone(),
            names: names.clone(),
            me: origin.name,
            retry_for,
        };
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
            talk: Talk::default(),
            bell,
            json,
            plain: 0,
            running: None,
            messenger,
            in_flight: InFlight::default(),
        }
    }

    /// Runs commands until `exit`, the end of input or Ctrl-C, then leaves cleanly.
    pub async fn run(mut self, inputs: Inputs) {
        'inputs: loop {
            let input = match self.next(&inputs).await {
                Next::Renew => {
                    self.renew().await;
                    continue;
                }
                Next::Input(Input::End) => break,
                Next::Control(request) => {
                    if self.run_control(request, &inputs).await {
                        break 'inputs;
                    }
                    continue;
                }
                Next::Input(input) => input,
            };
            let commands = self.read(input);
            // A conversation whose chat ended since the last line: the line was written for
            // it, so it is neither sent as a message nor run as a command (`exit` typed as a
            // message must not end the peer).
            let untaken = match commands.first() {
                Some((id, _)) => {
                    self.running = Some(id.clone());
                    let ended = self.end_talk_if_chat_ended(true).await;
                    self.running = None;
                    ended
                }
                None => false,
            };
            // Every command of a paste runs, in order, each to its end.
            for (id, command) in commands.into_iter().filter(|_| !untaken) {
                self.running = Some(id);
                let interrupted = match command {
                    // Still running: `bye` answers it.
                    Ok(Command::Exit) => break 'inputs,
                    Ok(command) => self.run_until_interrupted(command, &inputs).await,
                    Err(e) => {
                        self.error(e).await;
                        false
                    }
                };
                // `/disconnect` (or `/forget`) of the partner ends the conversation at once.
                self.end_talk_if_chat_ended(false).await;
                self.running = None;
                if interrupted {
                    break 'inputs;
                }
            }

            // The prompt comes back only now (the terminal waits for this), while messages
            // may still be in flight.
            if let Some(done) = &inputs.done {
                let _ = done.send(self.talk.prompt()).await;
            }
        }
        // `exit` and the end of input come after the messages typed before them; a signal
        // waits for them too (each ends within --retry-for), unless a second one comes.
        until_interrupted(self.in_flight.settle(), &inputs).await;
        self.leave().await;
    }

    /// The commands `input` asks for (`talk.rs`: a paste may hold several), or why one cannot
    /// run, each with its id: the one a JSON command gives (or, if it has none that can be
    /// read, the next `cN`), or the next `cN` for each plain command. None for a blank line.
    fn read(&mut self, input: Input) -> Vec<(CommandId, Result<Command, PeerError>)> {
        let (line, pasted) = match input {
            Input::Line(line) => (line, false),
            Input::Pasted(text) => (text, true),
            Input::Unreadable(why) => return vec![(self.next_plain(), Err(why))],
            Input::End => return Vec::new(),
        };
        if self.json && json_command::is_json(&line) {
            // A JSON command is one command, however many lines its text has.
            return match json_command::parse(&line) {
                Ok(JsonCommand { id, cmd }) => self
                    .talk
                    .command(&cmd)
                    .transpose()
                    .map(|c| (id, c))
                    .into_iter()
                    .collect(),
                Err(BadJsonCommand { id, why }) => {
                    let id = id.unwrap_or_else(|| self.next_plain());
                    vec![(id, Err(PeerError::BadCommandJson { why }))]
                }
            };
        }
        // A paste may hold several commands, each with its own id.
        let commands = self.talk.commands(&line, pasted);
        let mut read = Vec::new();
        for parsed in commands {
            if let Some(command) = parsed.map_err(PeerError::Usage).transpose() {
                read.push((self.next_plain(), command));
            }
        }
        read
    }

    /// Runs a script's `chat message` (`p2p-peer send`) as the next command, with an id of
    /// its own (`cN`, as a typed line's), and has the screen copy what answers it to the
    /// caller until it has ended; true if a signal came first.
    async fn run_control(&mut self, request: control::Request, inputs: &Inputs) -> bool {
        let id = self.next_plain();
        self.screen.tap(id.clone(), request.tap);
        self.running = Some(id.clone());
        let command = Command::ChatMessage {
            peer: request.peer,
            text: request.text,
        };
        let settled = async {
            self.execute(command).await;
            // Its outcome, shown by the message's own task, is the caller's too.
            self.in_flight.settle().await;
        };
        let interrupted = until_interrupted(settled, inputs).await;
        self.running = None;
        // After every event the command queued (the broker's and the disk's included:
        // they are queued, or have their place, before the command goes on).
        self.screen.untap(id);
        interrupted
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
        until_interrupted(self.execute(command), inputs).await
    }

    /// Shows the result of the command running (waiting for room on the screen,
    /// `screen.rs`).
    pub(crate) async fn show(&self, event: impl Into<Event>) {
        let event = event.into();
        self.names.note(&event);
        self.screen.show(self.answering(event)).await;
    }

    pub(crate) async fn error(&self, error: PeerError) {
        self.show(error).await;
    }

    /// `event` as an answer to the command running.
    pub(crate) fn answering(&self, event: Event) -> Shown {
        event.answering(self.running.clone())
    }

    async fn execute(&mut self, command: Command) {
        // Chat messages go on while the last ones are in flight; every other command comes
        // after them (`in_flight.rs`).
        if !matches!(command, Command::ChatMessage { .. }) {
            self.in_flight.settle().await;
        }
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
            Command::ChatMessage { peer, text } => {
                // Longer than one message takes: several, each with its own outcome.
                for part in split::parts(&text, MAX_TEXT_LEN) {
                    self.chat_message(peer, part.to_string()).await;
                }
            }
            Command::ListConnected => {
                let chats = self
                    .broker
                    .call(|state, _, _| (state.chats(), state.away_chats()));
                let (peers, away) = chats.await.unwrap_or_default();
                self.show(Event::Connected { peers, away }).await
            }
            Command::Disconnect { peer } => self.disconnect(peer).await,
            Command::Status => self.status().await,
            Command::Contacts => self.contacts().await,
            Command::Bell(on) => {
                self.bell.0.set(on);
                let at_terminal = self.bell.1;
                self.show(Event::Bell { on, at_terminal }).await
            }
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
            Command::Nearby => self.nearby().await,
            Command::Graph { json } => self.graph(json).await,
            Command::Broadcast { text } => self.broadcast(text).await,
            Command::Block { peer } => self.block(peer).await,
            Command::Unblock { peer } => self.unblock(peer).await,
            Command::Forget { peer } => self.forget(peer).await,
            Command::Help(on) => {
                let text = match on {
                    HelpOn::All => command::help_text(),
                    HelpOn::Section(section) => command::section_text(section),
                    HelpOn::Topic(topic) => command::topic_text(topic),
                };
                self.show(Event::Help { text }).await
            }
            Command::Talk(with) => self.talk(with).await,
            Command::Exit => unreachable!("run handles exit"),
        }
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
        let control = async {
            match inputs.control.recv().await {
                Ok(request) => request,
                // No socket (it could not be made): only the other inputs.
                Err(_) => futures::future::pending().await,
            }
        };
        let control = std::pin::pin!(control);
        match select(select(interrupt, renewal), select(line, control)).await {
            Either::Left((Either::Left(_), _)) => Next::Input(Input::End),
            Either::Left((Either::Right(_), _)) => Next::Renew,
            Either::Right((Either::Left((Ok(input), _)), _)) => Next::Input(input),
            Either::Right((Either::Left((Err(_), _)), _)) => Next::Input(Input::End),
            Either::Right((Either::Right((request, _)), _)) => Next::Control(request),
        }
    }
}

/// Runs `work`; true if a signal came first (`work` is then dropped).
async fn until_interrupted(work: impl std::future::Future<Output = ()>, inputs: &Inputs) -> bool {
    let work = std::pin::pin!(work);
    let interrupt = std::pin::pin!(inputs.interrupts.recv());
    matches!(select(work, interrupt).await, Either::Right(_))
}
