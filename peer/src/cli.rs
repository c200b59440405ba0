//! The command line: every flag, its environment variable and its default.
//!
//! README.md lists the same table; `p2p-peer --help` prints it from here. Each flag `--flag`
//! is also `P2P_PEER_FLAG` (`p2p_shared::environment`), bar `--peers`, whose variable
//! `P2P_PEER_PEERS` holds the list itself. [`resolve_servers`] turns `--server`'s value into
//! the addresses of the registry's instances, with errors that name the flag.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser};
use p2p_shared::duration::parse_timeout;
use p2p_shared::environment::{self, PEER};
use p2p_shared::identity::PublicKey;
use p2p_shared::{runtime, PeerName};

use crate::registry_client;

/// A p2p-chat peer: register at a registry, then chat with other peers directly.
///
/// Type `help` once it runs for the commands, `help COMMAND` for one of them. Input may be
/// piped: a script drives the peer exactly like a person typing, and reads one line per event
/// on stdout (or one JSON object per line with --json). Every flag can also be set through
/// the environment variable shown with it.
#[derive(Parser, Debug)]
#[command(version)]
pub struct Args {
    /// This peer's name: 1 to 32 of A-Z a-z 0-9 _ - . (asked on stdin if not given).
    #[arg(long)]
    pub name: Option<PeerName>,

    /// Port to listen on; 0 picks a free one (asked on stdin as "serverport" if not given).
    #[arg(long)]
    pub port: Option<u16>,

    /// Address to listen on, and to send from: 0.0.0.0 for every IPv4 interface (sending from
    /// the one the route picks), 127.0.0.1 for this machine only.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// The registry, as HOST:PORT; or several instances of one registry (one namespace, one
    /// key), as HOST:PORT,HOST:PORT,...: the next is asked when one fails.
    #[arg(long, default_value = "127.0.0.1:4000")]
    pub server: String,

    /// The registry's key (it prints it when it starts). Without it, the key the registry
    /// first answers with is pinned for its address, and a different one later is refused.
    // A key is base64url, so one key in 64 starts with `-`: it is still a value, not a flag.
    #[arg(long, allow_hyphen_values = true)]
    pub server_key: Option<PublicKey>,

    /// How long an incoming chat request waits for yes or no (like 2s, 90s, 5m).
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    pub request_timeout: Duration,

    /// How long to keep retrying a chat message (or a check on a chat partner) that got no
    /// answer, before reporting it failed (like 2s, 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    pub retry_for: Duration,

    /// How often to check that chat partners are still there (like 5s, 15s, 1m).
    #[arg(long, default_value = "15s", value_parser = parse_timeout)]
    pub keepalive: Duration,

    /// Peers to join at start, from a file: one HOST:PORT a line, optionally followed by the
    /// peer's key (then only that key is taken there). Works with no registry at all. The
    /// environment variable P2P_PEER_PEERS gives more, the same way, separated by commas.
    #[arg(long, value_name = "FILE")]
    pub peers: Option<PathBuf>,

    /// How often to check the known peers and swap known peers with one of them (like 5s,
    /// 30s, 1m). A peer that misses 3 checks in a row is marked dead.
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    pub exchange_every: Duration,

    /// Announce this peer on the LAN and find the others there (DNS-SD over mDNS): its name,
    /// key and port go to everyone on the LAN every few minutes. Off unless asked for.
    #[arg(long)]
    pub lan: bool,

    /// Print one JSON object per line instead of text, for scripts and bots (docs/json.md).
    #[arg(long, global = true)]
    pub json: bool,

    /// Ring the terminal bell on a new message (but not one from the current conversation)
    /// or chat request. Only at a terminal: pipes and --json never get a bell. The command
    /// `bell on|off` switches it while the peer runs.
    #[arg(long, value_enum, default_value = "on")]
    pub bell: Switch,

    /// Log what the peer does on stderr (RUST_LOG=... chooses finer levels).
    #[arg(long)]
    pub debug: bool,

    /// Where the peer keeps its files: its key, the keys it pinned, chat and command history
    /// [default: the platform's user data directory, e.g. ~/.local/share/p2p-chat].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    #[command(flatten)]
    pub limits: p2p_shared::transport::LimitArgs,

    #[command(subcommand)]
    pub action: Option<Action>,
}

/// What to do instead of running a peer.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Hand a chat message to the peer already running on the data folder (as --name, or
    /// the only one running there) and print its outcome: exits 0 only if it was delivered
    /// or queued. Never starts a peer.
    Send {
        /// The chat partner.
        peer: PeerName,
        /// The message (several words are joined with spaces).
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
}

/// `on` or `off`, for a flag.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

/// The flag whose variable (`P2P_PEER_PEERS`) is not its value: a list of peers separated
/// by commas, not a file.
const PEERS: &str = "peers";

impl Args {
    /// The flags, from the command line and the environment (exits with the usage if they
    /// are wrong), and the warnings to give about variables of before.
    pub fn from_env() -> (Args, Vec<String>) {
        let (command, warnings) = environment::with_variables(Args::command(), PEER, &[PEERS]);
        let args = Args::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
        (args, warnings)
    }

    /// The list in `P2P_PEER_PEERS` (or in the variable of before) with the variable's name,
    /// and a warning about it.
    pub fn bootstrap_list() -> (Option<(String, String)>, Option<String>) {
        let is_set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        let chosen = environment::choose(PEER, PEERS, is_set);
        let list = std::env::var(&chosen.name).ok();
        (list.map(|list| (chosen.name, list)), chosen.warning)
    }

    /// The data directory, if there is one (a user with no home directory has none).
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.data_dir
            .clone()
            .or_else(|| dirs::data_dir().map(|d| d.join("p2p-chat")))
    }
}

/// Turns `HOST:PORT[,HOST:PORT...]` (the instances of one registry) into addresses.
pub async fn resolve_servers(servers: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let named: Vec<&str> = servers.split(',').map(str::trim).collect();
    if named.len() > registry_client::MAX_INSTANCES {
        anyhow::bail!(
            "--server names {} instances; at most {} are taken",
            named.len(),
            registry_client::MAX_INSTANCES
        );
    }
    let mut resolved = Vec::with_capacity(named.len());
    for server in named {
        resolved.push(resolve_server(server).await?);
    }
    Ok(resolved)
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

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::identity::Identity;

    #[test]
    fn a_server_key_that_starts_with_a_dash_is_a_value() {
        // One key in 64 starts with `-` (base64url); draw until one does.
        let key = std::iter::repeat_with(|| Identity::generate().public())
            .take(10_000)
            .find(|k| k.to_string().starts_with('-'))
            .expect("a key starting with '-' in 10,000 draws");
        let args = Args::try_parse_from(["p2p-peer", "--server-key", &key.to_string()])
            .expect("the key is taken as the value of --server-key");
        assert_eq!(args.server_key, Some(key));
    }
}
