//! `p2p-server`: the p2p-chat registry. The program is the library `p2p_server` (see
//! `lib.rs`); this is its command line, its stdout and its signals.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser};
use p2p_server::event::Event;
use p2p_server::log::{Log, LogWriter};
use p2p_server::{Config, EtcdConfig, NameLimits, Store};
use p2p_shared::clock::Clock;
use p2p_shared::duration::parse_timeout;
use p2p_shared::environment::{self, REGISTRY};
use p2p_shared::identity::Identity;
use p2p_shared::private;
use p2p_shared::{runtime, signals, PeerName};

/// The p2p-chat registry: peers register here, list each other and leave.
///
/// Chat traffic never passes through the registry. It prints one line per event on stdout,
/// starting with its address and its key (give the key to peers as --server-key). Ctrl-C or
/// SIGTERM stops it cleanly: requests in flight are answered first.
///
/// `p2p-server release NAME` gives a claimed name back (the registry must be stopped).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Port to listen on (0 picks a free one; the line `listening on ADDR` tells which).
    #[arg(long, default_value_t = 4000)]
    port: u16,

    /// Address to listen on: 0.0.0.0 for every IPv4 interface, 127.0.0.1 for this machine only.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,

    /// Where the registry keeps its key and its name claims [default: the platform's user
    /// data directory, e.g. ~/.local/share/p2p-chat-server].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,

    /// How long a registration lasts unless the peer renews it (peers renew at a third of it,
    /// by themselves); a peer that died drops out of the list after this long. At least 2s.
    #[arg(long, default_value = "60s", value_parser = parse_ttl)]
    ttl: Duration,

    /// The most names registered from one IP address at once, and the most new names it may
    /// claim per hour (several peers behind one NAT share one address).
    #[arg(long, default_value_t = 64)]
    max_names_per_ip: usize,

    /// The most new names one network (a /24, or a /64 for IPv6) may claim per hour: a host
    /// with many addresses of its network shares this budget with them.
    #[arg(long, default_value_t = 256)]
    max_names_per_prefix: usize,

    /// The most names one key may hold claims on.
    #[arg(long, default_value_t = 4)]
    max_names_per_key: usize,

    /// The most registrations held at once (with --store etcd: the most registry sessions
    /// this instance keeps; a peer beyond them registers without one).
    #[arg(long, default_value_t = p2p_server::CAPACITY)]
    max_registrations: usize,

    /// Where claims and registrations live: by default in memory and in claims.db in
    /// --data-dir; etcd://HOST:PORT[,HOST:PORT...] shares them with every registry instance
    /// on that etcd (give each the same registry.key; README, "Several registry instances").
    #[arg(long)]
    store: Option<EtcdConfig>,

    #[command(flatten)]
    limits: p2p_shared::transport::LimitArgs,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Release a claimed name, whoever holds it, in the claims of --data-dir; refused while
    /// a registry runs on them (stop it first).
    Release {
        /// The name to give back.
        name: PeerName,
    },
}

/// How long the log may take to write its last lines when the registry stops.
const LOG_GRACE: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    // Every flag is also P2P_REGISTRY_FLAG (p2p_shared::environment).
    let (command, renamed) = environment::with_variables(Args::command(), REGISTRY, &[]);
    let args = Args::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    for warning in renamed {
        eprintln!("warning: {warning}");
    }
    if let Some(Command::Release { name }) = &args.command {
        return release(&args, name);
    }
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

/// The shortest `--ttl`: peers renew at a third of it, but no more often than every 500 ms
/// (peer/src/registry_commands.rs), so a shorter one lapses between renewals, and the peer
/// drops out of the list and comes back again and again.
const MIN_TTL: Duration = Duration::from_secs(2);

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let ttl = parse_timeout(s).map_err(|e| e.to_string())?;
    match ttl < MIN_TTL {
        true => Err(
            "at least 2s: peers renew a third of the way through, and at most twice a second"
                .into(),
        ),
        false => Ok(ttl),
    }
}

/// `p2p-server release NAME`: one line, and success only if the name was released.
fn release(args: &Args, name: &PeerName) -> ExitCode {
    let released = data_dir(args)
        .map_err(|e| format!("{e:#}"))
        .and_then(|data| {
            p2p_server::release::release(&data.join("claims.db"), name).map_err(|e| e.to_string())
        });
    match released {
        Ok(key) => {
            println!(
                "released {name} (it was claimed by key {})",
                key.fingerprint()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn data_dir(args: &Args) -> anyhow::Result<PathBuf> {
    args.data_dir
        .clone()
        .or_else(|| dirs::data_dir().map(|d| d.join("p2p-chat-server")))
        .context("no data directory: give one with --data-dir")
}

async fn serve(args: Args, log: Log) -> anyhow::Result<()> {
    let data = data_dir(&args)?;
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
    let store = match args.store {
        Some(etcd) => Store::Etcd(etcd),
        None => Store::Embedded(Config::open_claims(Some(&data.join("claims.db")))?),
    };
    let wanted = SocketAddr::new(args.bind, args.port);
    let listener = runtime::listen(wanted)
        .map_err(|e| anyhow::anyhow!(runtime::listen_failure(wanted, &e)))?;
    let config = Config {
        identity,
        store,
        capacity: args.max_registrations,
        ttl: args.ttl,
        names: NameLimits {
            per_address: args.max_names_per_ip,
            per_prefix: args.max_names_per_prefix,
            per_key: args.max_names_per_key,
        },
        limits: args.limits.limits(),
        clock: Clock::System,
    };
    let stop = signals::stop_requests().context("cannot install the signal handler")?;
    p2p_server::run(listener, config, log, async move {
        let _ = stop.recv().await;
    })
    .await
}
