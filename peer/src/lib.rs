//! The p2p-chat peer as a library: everything `p2p-peer` does, so that the binary is one call
//! and the fuzz targets can reach the command parser.
//!
//! `p2p-peer` is a command-driven peer of the p2p-chat network.
//!
//! It listens on one TCP socket and sends every message on a fresh, short-lived connection.
//! The pieces, each in its own module:
//!
//! - [`cli`]: the flags;
//! - [`input`]: stdin lines (on their own thread) and Ctrl-C, for pipes and scripts;
//! - [`terminal`]: rustyline, for a person at a terminal;
//! - [`command`]: one line parsed into a [`command::Command`], and the help texts;
//! - [`session`]: runs the user's commands in order;
//! - [`broker`]: the task that owns all chat state;
//! - [`requests`]: chat requests as records with an expiry;
//! - [`inbound`]: what the peer answers to requests from the network;
//! - [`registry`]: the client side of the registry protocol;
//! - [`known`]: the keys pinned for other peers and for registries;
//! - [`history`]: chat history, in an embedded database;
//! - [`liveness`] and [`retry`]: noticing partners that are gone, retrying what may pass;
//! - [`names`]: the peer names Tab completes;
//! - [`output`]: every line the peer prints, as text or JSON.

mod broker;
mod cli;
pub mod command;
mod history;
mod inbound;
mod input;
mod known;
mod liveness;
mod names;
mod output;
mod registry;
mod requests;
mod retry;
mod session;
mod terminal;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use p2p_shared::identity::Identity;
use p2p_shared::runtime;
use p2p_shared::transport::{self, Origin};

use crate::broker::Broker;
use crate::cli::Args;
use crate::history::History;
use crate::inbound::PeerService;
use crate::input::Inputs;
use crate::known::KnownKeys;
use crate::names::Names;
use crate::output::{show, Notice};
use crate::registry::RegistryClient;
use crate::session::Session;

/// Runs the peer with the process's arguments; what `main` does.
pub fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.debug);
    match runtime::block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr only, so stdout stays exactly the documented events. `--debug` shows
/// this program's debug events; RUST_LOG, when set, chooses freely; otherwise warnings only.
fn init_logging(debug: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = if debug {
        EnvFilter::new("p2p_peer=debug,p2p_shared=debug")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"))
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(args: Args) -> anyhow::Result<()> {
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    output::init(args.json, interactive);

    // The original asked for these two on start-up; so do we, when they are not flags.
    let port = match args.port {
        Some(port) => port,
        None => input::ask("serverport: ")?
            .parse()
            .context("serverport must be a port number (0-65535)")?,
    };
    let name = match args.name {
        Some(name) => name,
        None => input::ask("Your name: ")?.parse().context("invalid name")?,
    };
    let server = resolve_server(&args.server).await?;
    let data = args
        .data_dir()
        .context("no data directory for the peer's key: give one with --data-dir")?;
    let identity = Identity::load_or_create(&data.join("keys").join(format!("{name}.key")))?;

    let wanted = SocketAddr::new(args.bind, port);
    let listener = runtime::listen(wanted).with_context(|| format!("cannot listen on {wanted}"))?;
    let local = listener.local_addr()?;
    let origin = Origin {
        name,
        port: local.port(),
        identity: Arc::new(identity),
    };

    let names = Names::default();
    let known_peers = KnownKeys::load(data.join("known_peers"))?;
    let history_path = data.join(format!("history-{name}.db"));
    let history = History::open(&history_path)
        .with_context(|| format!("cannot open {}", history_path.display()))?;
    let broker = Broker::start(
        origin.clone(),
        args.request_timeout,
        names.clone(),
        known_peers,
        history,
    );
    liveness::start(
        broker.clone(),
        origin.clone(),
        args.keepalive,
        args.retry_for,
    );
    runtime::spawn(transport::serve(
        listener,
        origin.clone(),
        PeerService::new(broker.clone()),
        futures::future::pending(),
    ));
    show(Notice::Listening { name, addr: local });

    let (lines, done) = if interactive {
        let history = Some(data.join(format!("history-{name}")));
        let (lines, done) = terminal::start(names.clone(), history)?;
        (lines, Some(done))
    } else {
        (input::plain_lines()?, None)
    };
    let inputs = Inputs {
        lines,
        interrupts: input::interrupts()?,
        done,
    };
    let known_registries = KnownKeys::load(data.join("known_registries"))?;
    let registry = RegistryClient::new(server, origin.clone(), args.server_key, known_registries);
    Session::new(origin, local, broker, registry, names, args.retry_for)
        .run(inputs)
        .await;
    output::flush();
    Ok(())
}

/// Turns `HOST:PORT` into an address, with an error that names the flag.
async fn resolve_server(server: &str) -> anyhow::Result<SocketAddr> {
    let (host, port) = server
        .rsplit_once(':')
        .with_context(|| format!("--server {server:?} must be HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("--server {server:?}: {port:?} is not a port number"))?;
    runtime::resolve(host.trim_start_matches('[').trim_end_matches(']'), port)
        .await
        .with_context(|| format!("--server {server:?}: cannot find {host}"))
}
