//! `p2p-peer`: a command-driven peer of the p2p-chat network.
//!
//! It listens on one TCP socket and sends every message on a fresh, short-lived connection.
//! The pieces, each in its own module:
//!
//! - [`input`]: stdin lines (on their own thread) and Ctrl-C, as a stream of inputs;
//! - [`command`]: one line parsed into a [`command::Command`];
//! - [`session`]: runs the user's commands in order;
//! - [`broker`]: the task that owns all chat state;
//! - [`requests`]: chat requests as records with an expiry;
//! - [`inbound`]: what the peer answers to requests from the network;
//! - [`registry`]: the client side of the registry protocol;
//! - [`output`]: every line the peer prints.

mod broker;
mod command;
mod inbound;
mod input;
mod output;
mod registry;
mod requests;
mod session;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use p2p_shared::duration::parse_timeout;
use p2p_shared::transport::{self, Origin};
use p2p_shared::{runtime, PeerName};

use crate::broker::Broker;
use crate::inbound::PeerService;
use crate::output::{show, Notice};
use crate::registry::RegistryClient;
use crate::session::Session;

/// A p2p-chat peer: register at a registry, then chat with other peers directly.
///
/// Type `help` once it runs for the commands. Input may be piped: a script drives the peer
/// exactly like a person typing, and reads one line per event on stdout.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// This peer's name: 1 to 32 of A-Z a-z 0-9 _ - . (asked on stdin if not given).
    #[arg(long, env = "P2P_NAME")]
    name: Option<PeerName>,

    /// Port to listen on; 0 picks a free one (asked on stdin as "serverport" if not given).
    #[arg(long, env = "P2P_PORT")]
    port: Option<u16>,

    /// Address to listen on: 0.0.0.0 for every IPv4 interface, 127.0.0.1 for this machine only.
    #[arg(long, env = "P2P_BIND", default_value = "0.0.0.0")]
    bind: IpAddr,

    /// The registry, as HOST:PORT.
    #[arg(long, env = "P2P_SERVER", default_value = "127.0.0.1:4000")]
    server: String,

    /// How long an incoming chat request waits for yes or no (like 2s, 90s, 5m).
    #[arg(long, env = "P2P_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_timeout)]
    request_timeout: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match runtime::block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
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

    let wanted = SocketAddr::new(args.bind, port);
    let listener = runtime::listen(wanted).with_context(|| format!("cannot listen on {wanted}"))?;
    let local = listener.local_addr()?;
    let origin = Origin {
        name: name.clone(),
        port: local.port(),
    };

    let broker = Broker::start(origin.clone(), args.request_timeout);
    runtime::spawn(transport::serve(
        listener,
        origin.clone(),
        PeerService::new(broker.clone()),
    ));
    show(Notice::Listening { name, addr: local });

    let inputs = input::start()?;
    let registry = RegistryClient::new(server, origin.clone());
    Session::new(origin, broker, registry).run(inputs).await;
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
