//! `p2p-server`: the p2p-chat registry. The program is the library `p2p_server` (see
//! `lib.rs`); this is its command line, its stdout and its signals.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use p2p_server::event::Event;
use p2p_server::log::{Log, LogWriter};
use p2p_server::Config;
use p2p_shared::clock::Clock;
use p2p_shared::duration::parse_timeout;
use p2p_shared::identity::Identity;
use p2p_shared::private;
use p2p_shared::{runtime, signals};

/// The p2p-chat registry: peers register here, list each other and leave.
///
/// Chat traffic never passes through the registry. It prints one line per event on stdout,
/// starting with its address and its key (give the key to peers as --server-key). Ctrl-C or
/// SIGTERM stops it cleanly: requests in flight are answered first.
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

/// How long the log may take to write its last lines when the registry stops.
const LOG_GRACE: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let args = Args::parse();
    let (log, events) = Log::channel();
    let writer = match LogWriter::start(events, std::io::stdout()) {
        Ok(writer) => writer,
        Err(e) => {
            eprintln!("error: cannot start the log: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime::block_on(serve(args, log));
    writer.finish(LOG_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args, log: Log) -> anyhow::Result<()> {
    let data = args
        .data_dir
        .or_else(|| dirs::data_dir().map(|d| d.join("p2p-chat-server")))
        .context("no data directory: give one with --data-dir")?;
    let identity = Identity::load_or_create(&data.join("registry.key"))?;
    // After the key is loaded (one others could read is refused, not fixed), before the
    // claims are opened: an earlier version left the folder and claims.db open to all.
    let made = private::make_private(&data, &[], |file| file.starts_with("claims.db"))
        .with_context(|| format!("cannot make {} private", data.display()))?;
    for made in made {
        log.event(Event::MadePrivate {
            path: made.path,
            was: made.was,
            now: made.now,
        });
    }
    let claims = Config::open_claims(Some(&data.join("claims.db")))?;
    let wanted = SocketAddr::new(args.bind, args.port);
    let listener = runtime::listen(wanted).with_context(|| format!("cannot listen on {wanted}"))?;
    let config = Config {
        identity,
        claims,
        ttl: args.ttl,
        max_names_per_ip: args.max_names_per_ip,
        clock: Clock::System,
    };
    let stop = signals::stop_requests().context("cannot install the signal handler")?;
    p2p_server::run(listener, config, log, async move {
        let _ = stop.recv().await;
    })
    .await
}
