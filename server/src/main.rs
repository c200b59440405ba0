//! `p2p-server`: the p2p-chat registry.
//!
//! Peers register their name and listening address here, look each other up, and leave. The
//! registry is a peer of the network itself, speaking the same protocol on the same kind of
//! short-lived connections; it never relays chat traffic. State is kept in memory.

mod broker;
mod output;
mod registry;
mod service;

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use clap::Parser;
use p2p_shared::runtime;
use p2p_shared::transport::{self, Origin};

use crate::broker::Registrar;
use crate::output::say;
use crate::service::RegistryService;

/// The p2p-chat registry: peers register here, list each other and leave.
///
/// Chat traffic never passes through the registry. It prints one line per event on stdout.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Port to listen on (0 picks a free one; the line `listening on ADDR` tells which).
    #[arg(long, env = "P2P_PORT", default_value_t = 4000)]
    port: u16,

    /// Address to listen on: 0.0.0.0 for every IPv4 interface, 127.0.0.1 for this machine only.
    #[arg(long, env = "P2P_BIND", default_value = "0.0.0.0")]
    bind: IpAddr,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    runtime::block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let wanted = SocketAddr::new(args.bind, args.port);
    let listener = runtime::listen(wanted).with_context(|| format!("cannot listen on {wanted}"))?;
    let local = listener.local_addr()?;
    say(format_args!("listening on {local}"));

    let origin = Origin {
        name: "registry".parse()?,
        port: local.port(),
    };
    let service = RegistryService::new(Registrar::start(), origin.clone());
    transport::serve(listener, origin, service).await;
    Ok(())
}
