//! The p2p-chat peer as a library: everything `p2p-peer` does, so that the binary is one call
//! and the fuzz targets can reach the command parser.
//!
//! `p2p-peer` is a command-driven peer of the p2p-chat network. It listens on one TCP socket
//! and sends every message on a fresh, short-lived connection. docs/architecture.md shows its
//! threads, tasks and channels, and the path of one chat message. The pieces, each in its own
//! module:
//!
//! - [`cli`]: the flags, and the registry's addresses from `--server`;
//! - [`input`]: stdin lines (on their own thread) and Ctrl-C, for pipes and scripts;
//!   [`terminal`]: rustyline, for a person at a terminal;
//! - [`command`]: one line parsed into a [`command::Command`], and the help texts;
//!   [`talk`]: the current conversation, and how a line or a paste becomes commands;
//!   [`split`]: a long message cut into several; [`json_command`]: with `--json`, a line
//!   that is a JSON command with an id, and the ids that tie every event to the command it
//!   answers;
//! - [`control`]: the socket in the data folder `p2p-peer send` hands messages through;
//! - [`command_loop`], [`chat_commands`], [`message_commands`], [`exchange_commands`],
//!   [`registry_commands`] and [`own_commands`]: the user's commands, run one at a time;
//! - [`state`]: the chats and their lifecycle, chat requests, pins, the book of known peers
//!   and the broadcasts seen, without I/O; [`broker`]: the task that owns that state and
//!   performs its effects;
//! - [`inbound`]: what the peer answers to requests from the network;
//! - [`registry_client`]: the client side of the registry protocol;
//! - [`graph`]: `graph`, the network as this peer knows it (DOT or JSON);
//! - [`lan`]: with `--lan`, announcing this peer on the LAN and hearing the others (mDNS,
//!   a thread of its own);
//! - [`peer_exchange`]: joining, the bootstrap list and the keeper's rounds; [`flood`]:
//!   sending broadcasts on; [`resume`]: reopening away chats and sending what was kept;
//! - [`liveness`] and [`retry`]: noticing partners that are away, retrying what may pass;
//! - [`bell`]: which events ring the terminal bell, and whether it is on;
//! - [`event`], [`error`] and [`render`]: what the user sees, typed (with the id of the
//!   command it answers), and how it looks; [`screen`]: the thread that writes it; [`log`]:
//!   the log, on stderr or above the prompt;
//! - [`disk`]: the thread that owns the files: [`history`] (SQLite) and [`known`] (pins);
//!   [`files`]: which files of the data folder are this peer's (each name has its own);
//! - [`names`]: the peer names (and pending requesters, offered fingerprints) Tab completes.

mod bell;
mod broker;
mod chat_commands;
mod cli;
pub mod command;
mod command_loop;
mod control;
mod disk;
mod error;
mod event;
mod exchange_commands;
mod files;
mod flood;
mod graph;
mod help;
mod history;
mod in_chat;
mod in_flight;
mod inbound;
mod input;
pub mod json_command;
mod known;
mod lan;
mod liveness;
mod log;
mod message_commands;
mod names;
mod own_commands;
mod peer_exchange;
mod registry_client;
mod registry_commands;
mod render;
mod resume;
mod retry;
mod screen;
mod split;
mod state;
mod talk;
mod terminal;
mod vouch;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use p2p_shared::identity::Identity;
use p2p_shared::printable::printable;
use p2p_shared::private;
use p2p_shared::reachable;
use p2p_shared::transport::{self, Origin};
use p2p_shared::{runtime, signals};

use crate::bell::Bell;
use crate::broker::Broker;
use crate::cli::{Args, Switch};
use crate::command_loop::{CommandLoop, Parts};
use crate::disk::Disk;
use crate::event::Event;
use crate::files::Files;
use crate::history::History;
use crate::inbound::PeerService;
use crate::input::Inputs;
use crate::known::KnownKeys;
use crate::log::Log;
use crate::names::Names;
use crate::registry_client::RegistryClient;
use crate::render::Rendering;
use crate::resume::Resumer;
use crate::screen::{Screen, Sink, Stdout};
use crate::state::book::Book;
use crate::state::conversations::Conversations;
use crate::state::flood::Flood;
use crate::state::pins::{Namespace, Pins};
use crate::state::{Kept, PeerState};
use crate::vouch::Voucher;

/// How long the screen may take to write its last lines when the peer exits: a reader may
/// never take them, and the peer must still exit.
const SCREEN_GRACE: Duration = Duration::from_secs(1);

/// Runs the peer with the process's arguments; what `main` does.
pub fn main() -> ExitCode {
    let (args, renamed) = Args::from_env();
    // Kept to the end: dropping it writes what the log still holds.
    let log = log::init(args.debug);
    for warning in renamed {
        tracing::warn!("{warning}");
    }
    if let Some(cli::Action::Send { peer, text }) = &args.action {
        let Some(data) = args.data_dir() else {
            eprintln!("error: no data directory: give one with --data-dir");
            return ExitCode::FAILURE;
        };
        return control::send(&data, args.name, args.json, *peer, &text.join(" "));
    }
    match runtime::block_on(run(args, &log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, log: &Log) -> anyhow::Result<()> {
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();

    // The original asked for these two on start-up; so do we, when they are not flags.
    let port = match args.port {
        Some(port) => port,
        None => input::ask_until("serverport: ", |answer| {
            let not_a_port =
                || format!("serverport must be a port number (0-65535), not {answer:?}");
            answer.parse().map_err(|_| not_a_port())
        })?,
    };
    let name = match args.name {
        Some(name) => name,
        None => input::ask_until("Your name: ", |answer| {
            answer
                .parse::<p2p_shared::PeerName>()
                .map_err(|e| format!("invalid name {answer:?}: {e}"))
        })?,
    };
    let servers = cli::resolve_servers(&args.server).await?;
    let data = args
        .data_dir()
        .context("no data directory for the peer's key: give one with --data-dir")?;
    let files = Files::of(&data, name);
    let identity = Identity::load_or_create(&files.key)?;
    // After the key is loaded, which refuses a key others could read rather than fix it; and
    // before anything else is opened, so that nothing is read or written while still open.
    let made = private::make_private(&data, &["keys"], files::is_peer_file)
        .with_context(|| format!("cannot make {} private", data.display()))?;
    for made in made {
        let path = made.path.display().to_string();
        tracing::warn!(
            "made {} private: mode {:o} -> {:o}",
            printable(&path),
            made.was,
            made.now
        );
    }

    let wanted = SocketAddr::new(args.bind, port);
    let listener = runtime::listen(wanted)
        .map_err(|e| anyhow::anyhow!(runtime::listen_failure(wanted, &e)))?;
    let local = listener.local_addr()?;
    let origin = Origin {
        name,
        ip: local.ip(),
        port: local.port(),
        identity: Arc::new(identity),
    };

    let history = History::open(&files.history)
        .with_context(|| format!("cannot open {}", files.history.display()))?;
    // Once the history is held, so that no other peer of this name runs.
    for said in files.carry_over()? {
        tracing::warn!("{}", printable(&said));
    }
    let disk = Disk::start(history).context("cannot start the disk thread")?;
    let known_registries = KnownKeys::load(files.known_registries.clone())?;
    let registry = RegistryClient::new(
        (args.server.clone(), servers.clone()),
        origin.clone(),
        args.server_key,
        known_registries,
        disk.clone(),
    );
    let trusted = registry.trusted();
    let namespace = Namespace::of(trusted.get());
    let (pins, carried) = Pins::new(KnownKeys::load(files.known_peers.clone())?, namespace);
    if let Some(carried) = carried {
        disk.write(carried);
    }

    // The terminal first, when there is one: the screen prints above its prompt.
    let names = Names::new(name);
    // `_type_ahead` lives to the end of the session: dropping it gives the terminal its mode
    // back.
    let (lines, done, sink, _type_ahead): (_, _, Box<dyn Sink>, _) = if interactive {
        let history = Some(files.lines.clone());
        let terminal = terminal::start(names.clone(), history)?;
        (
            terminal.lines,
            Some(terminal.done),
            Box::new(terminal.printer),
            terminal.type_ahead,
        )
    } else {
        (
            input::plain_lines()?,
            None,
            Box::new(Stdout::default()),
            None,
        )
    };
    // Only a person at a terminal hears a bell; a script's output never holds one.
    let bell = Bell::new(args.bell == Switch::On);
    let rings = interactive && !args.json;
    let screen_bell = rings.then(|| bell.clone());
    let screen = Screen::start(rendering(args.json, interactive), sink, screen_bell)
        .context("cannot start the screen thread")?;
    if interactive && std::io::stderr().is_terminal() {
        log.above_prompt(&screen);
    }

    let kept = Kept {
        pins,
        book: Book::load(files.book, origin.identity.public())?,
        flood: Flood::load(files.blocked)?,
        conversations: Conversations::load(files.conversations)?,
    };
    let state = PeerState::new(origin.clone(), args.request_timeout, kept);
    let (resume_tx, resume_jobs) = async_channel::bounded(resume::QUEUE);
    let broker = Broker::start(
        state,
        screen.clone(),
        disk.clone(),
        names.clone(),
        (origin.clone(), trusted.clone()),
        resume_tx.clone(),
    );
    Resumer {
        broker: broker.clone(),
        origin: origin.clone(),
        screen: screen.clone(),
        disk: disk.clone(),
        retry_for: args.retry_for,
    }
    .start(resume_jobs);
    liveness::start(
        broker.clone(),
        screen.clone(),
        args.keepalive,
        args.retry_for,
    );
    let mut bootstrap = Vec::new();
    if let Some(file) = &args.peers {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        bootstrap.extend(peer_exchange::parse_bootstrap(&text, '\n').await?);
    }
    let (list, renamed) = Args::bootstrap_list();
    if let Some(warning) = renamed {
        tracing::warn!("{warning}");
    }
    if let Some((variable, list)) = list {
        bootstrap.extend(
            peer_exchange::parse_bootstrap(&list, ',')
                .await
                .context(variable)?,
        );
    }
    peer_exchange::start(
        broker.clone(),
        screen.clone(),
        origin.clone(),
        bootstrap,
        (args.exchange_every, resume_tx),
    );
    // After the book's keeper: what the LAN finds is checked with exchanges.
    let lan = match args.lan {
        true => Some(lan::start(broker.clone(), origin.clone())?),
        false => None,
    };
    log.count_drops();
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let voucher = Voucher::new(servers, trusted, origin.clone());
    let service = PeerService::new(broker.clone(), disk.clone(), voucher, origin.clone());
    let serving = runtime::spawn(transport::serve(
        listener,
        origin.clone(),
        service,
        args.limits.limits(),
        async move {
            let _ = stopped.recv().await;
        },
    ));
    screen.push(Event::Listening { name, addr: local });
    screen.push(Event::Reachable {
        reach: reachable::reach(local),
    });

    // Scripts' messages (`p2p-peer send`): once everything a command needs is running.
    let (control_tx, control) = async_channel::bounded(control::QUEUE);
    // Held to the end: dropping it removes the socket.
    let _control = match control::listen(control::socket_path(&data, name), control_tx) {
        Ok(listening) => Some(listening),
        Err(e) => {
            tracing::warn!("no control socket, so p2p-peer send cannot reach this peer: {e}");
            None
        }
    };
    let inputs = Inputs {
        control,
        lines,
        interrupts: signals::stop_requests().context("cannot install the Ctrl-C handler")?,
        done,
    };
    let parts = Parts {
        origin,
        listening: local,
        broker,
        screen: screen.clone(),
        disk,
        registry,
        names,
        retry_for: args.retry_for,
        json: args.json,
        bell: (bell, rings),
    };
    CommandLoop::new(parts).run(inputs).await;
    // The goodbye first: the others drop us from `nearby` at once.
    if let Some(lan) = lan {
        lan.stop();
    }
    // Stop accepting, and answer what is in flight.
    drop(stop);
    serving.await;
    screen.flush(SCREEN_GRACE);
    Ok(())
}

/// How events look: JSON if asked; otherwise colours when stdout is a terminal and
/// `NO_COLOR` is unset, and timestamps (and messages of several lines as lines) at an
/// interactive prompt.
fn rendering(json: bool, interactive: bool) -> Rendering {
    if json {
        return Rendering::Json;
    }
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Rendering::Text {
        color: !no_color && std::io::stdout().is_terminal(),
        interactive,
    }
}
