//! `p2p-server`: the p2p-chat registry.
//!
//! Peers register their name and listening address here, look each other up, and leave. The
//! registry is a peer of the network itself, speaking the same protocol on the same kind of
//! short-lived connections; it never relays chat traffic. It has a key of its own, which
//! signs every reply, and it keeps which key owns which name in an embedded database, so
//! names survive a restart; addresses are kept in memory.

mod broker;
mod output;
mod pages;
mod registry;
mod service;
mod store;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use p2p_shared::duration::parse_timeout;
use p2p_shared::identity::Identity;
use p2p_shared::runtime;
use p2p_shared::transport::{self, Origin};

use crate::broker::Registrar;
use crate::output::say;
use crate::registry::Registry;
use crate::service::RegistryService;
use crate::store::Claims;

/// The p2p-chat registry: peers register here, list each other and leave.
///
/// Chat traffic never passes through the registry. It prints one line per event on stdout,
/// starting with its address and its key (give the key to peers as --server-key).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Port to listen on (0 picks a free one; the line `listening on ADDR` tells which).
    #[arg(long, env = "P2P_PORT", default_value_t = 4000)]
    port: u16,

    /// Address to listen on: 0.0.0.0 for every IPv4 interface, 127.0.0.1 for this machine only.
    #[arg(long, env = "P2P_BIND", default_value = "0.0.0.0")]
    bind: IpAddr,

    /// Where the registry keeps its key and its name claims [default: the platform's user
    /// data directory, e.g. ~/.local/share/p2p-chat-server].
    #[arg(long, env = "P2P_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// How long a registration lasts unless the peer renews it (peers renew at a third of it,
    /// by themselves); a peer that died drops out of the list after this long.
    #[arg(long, env = "P2P_TTL", default_value = "60s", value_parser = parse_timeout)]
    ttl: Duration,

    /// The most names registered from one IP address at once, and the most new names it may
    /// claim per hour (several peers behind one NAT share one address).
    #[arg(long, env = "P2P_MAX_NAMES_PER_IP", default_value_t = 64)]
    max_names_per_ip: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    runtime::block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let data = args
        .data_dir
        .or_else(|| dirs::data_dir().map(|d| d.join("p2p-chat-server")))
        .context("no data directory: give one with --data-dir")?;
    let identity = Identity::load_or_create(&data.join("registry.key"))?;
    let claims = Claims::open(&data.join("claims.db"))
        .with_context(|| format!("cannot open {}", data.join("claims.db").display()))?;

    let wanted = SocketAddr::new(args.bind, args.port);
    let listener = runtime::listen(wanted).with_context(|| format!("cannot listen on {wanted}"))?;
    let local = listener.local_addr()?;
    say(format_args!("listening on {local}"));
    say(format_args!(
        "registry key {} (fingerprint {})",
        identity.public(),
        identity.public().fingerprint()
    ));

    let origin = Origin {
        name: "registry".parse()?,
        port: local.port(),
        identity: Arc::new(identity),
    };
    let registry = Registry::new(claims, args.ttl, args.max_names_per_ip);
    let service = RegistryService::new(Registrar::start(registry), origin.clone(), args.ttl);
    transport::serve(listener, origin, service).await;
    Ok(())
}
