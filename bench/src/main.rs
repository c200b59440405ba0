//! `p2p-bench`: measures p2p-chat against the floor of a bare async-std program (issue 6).
//!
//! `cargo run --release -p p2p-bench` builds the release `p2p-server` and `p2p-peer`, runs
//! them as processes on loopback, measures them and a bare async-std program (the floor) in
//! the same run, prints a table of figures with their ratio to the floor and their targets,
//! and rewrites the generated part of docs/benchmarks.md. The pieces:
//!
//! - [`plan`]: the counts of a real run and of `--quick`;
//! - [`programs`]: starting the programs, with the kit the tests share (`p2p_kit`: building
//!   them, driving them through pipes, their data folders);
//! - [`floor`]: the bare async-std server and client; [`relay`] (with [`reorder`]): the floor
//!   of issue 19's regimes, a bare relay pair, and with [`relay_essentials`] the same relay
//!   sealing and storing each message, as the peer must;
//! - [`chat`], [`registry`], [`claims`], [`rest`], [`broadcast`], [`regimes`]: the
//!   measurements; [`load`], [`wire`] and [`stats`] their tools;
//! - [`figures`] (targets), [`report`] (tables, the document) and [`machine`].
//!
//! Progress goes to stderr; stdout gets the table only.

mod broadcast;
mod chat;
mod claims;
mod cpu;
mod figures;
mod floor;
mod load;
mod machine;
mod plan;
mod programs;
mod regimes;
mod registry;
mod relay;
mod relay_essentials;
mod reorder;
mod report;
mod rest;
mod source;
mod stats;
mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use p2p_shared::identity::Identity;
use p2p_shared::transport::{self, Origin};
use p2p_shared::wire::new_id;
use p2p_shared::{runtime, RegistryRequest};

use crate::figures::{Figures, Level};
use crate::load::Throughput;
use crate::machine::Machine;
use crate::plan::Plan;
use crate::programs::{Programs, Registry};
use crate::stats::Summary;
use p2p_kit::Bins;
use p2p_kit::Scratch;

/// The one command README.md gives.
const COMMAND: &str = "cargo run --release -p p2p-bench";

/// Benchmarks p2p-chat's real binaries on loopback against a bare async-std floor.
///
/// Prints a table of figures and rewrites the generated part of docs/benchmarks.md.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Tiny counts that finish in seconds (for CI): the figures mean nothing, so the document
    /// is not rewritten.
    #[arg(long)]
    quick: bool,

    /// Measure the p2p-server and p2p-peer in DIR instead of building them next to p2p-bench.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,

    /// Measure only these parts (repeatable); the document is rewritten only by a whole run.
    #[arg(long, value_enum, value_name = "PART")]
    only: Vec<Part>,

    /// Registrations of the crowd part instead of the plan's (by hand, issue 16: a million).
    #[arg(long, value_name = "N")]
    registrations: Option<usize>,

    /// Requests per load level instead of the plan's (by hand: a slower store).
    #[arg(long, value_name = "N")]
    requests: Option<usize>,

    /// The measured registries keep their claims and registrations in this store
    /// (`etcd://HOST:PORT`, issue 16) instead of the embedded one.
    #[arg(long, value_name = "URL")]
    store: Option<String>,

    /// One more argument for every measured registry (repeat it for more), by hand: e.g.
    /// `--registry-arg=--replay-ids=400000` for a crowd of a million.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    registry_arg: Vec<String>,

    /// The document to rewrite.
    #[arg(long, value_name = "FILE", default_value_os_t = default_docs())]
    docs: PathBuf,

    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// The floor server process the bench starts itself (not for people).
    #[command(hide = true)]
    Floor {
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Registrations' worth of bare data to hold.
        #[arg(long, default_value_t = 0)]
        hold: usize,
    },
    /// One side of the relay floor of the regimes (not for people).
    #[command(hide = true)]
    Relay {
        /// The name its messages are shown under.
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Also seal every message and answer, and store every message in a database in
        /// DIR before answering it or reporting it delivered (`relay_essentials.rs`).
        #[arg(long, value_name = "DIR")]
        essentials: Option<PathBuf>,
    },
}

/// The parts of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    /// Chat message latency.
    Chat,
    /// Registry throughput at each number of clients.
    Load,
    /// The registry holding a crowd of peers.
    Crowd,
    /// Pings while new names are claimed, with 20 ms injected into every fsync (issue 12;
    /// the rows under strace need strace).
    Claims,
    /// A peer at rest.
    Rest,
    /// Connections and time per broadcast on a network of twelve peers with no registry
    /// (issue 14).
    Broadcast,
    /// A chat message back-to-back, at rest, in a burst and in ping-pong, next to a bare
    /// relay pair (issue 19).
    Regimes,
    /// System calls per message of a burst, under strace (issue 19; needs strace).
    Syscalls,
}

/// docs/benchmarks.md of the workspace this bench was built in.
fn default_docs() -> PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).join("docs/benchmarks.md")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.mode {
        Some(Mode::Floor { port, hold }) => return floor::serve_main(port, hold),
        Some(Mode::Relay {
            name,
            port,
            essentials,
        }) => return relay::serve_main(name, port, essentials),
        None => {}
    }
    let load_before = machine::load_average();
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(registrations) = args.registrations {
        plan.registrations = registrations;
    }
    if let Some(store) = &args.store {
        plan.registry_args = vec!["--store".into(), store.clone()];
    }
    if let Some(requests) = args.requests {
        plan.requests = requests;
    }
    plan.registry_args.extend(args.registry_arg.iter().cloned());
    let custom = args.registrations.is_some()
        || args.store.is_some()
        || args.requests.is_some()
        || !args.registry_arg.is_empty();
    let programs = Programs {
        bins: match args.bin_dir.as_deref() {
            Some(dir) => Bins::in_dir(dir)?,
            None => Bins::of_this_build()?.clone(),
        },
        work: Scratch::new("bench")?,
    };
    let figures = measure(&programs, &plan, &args.only)?;
    let rows = figures.rows();
    print!("{}", report::text_table(&rows));
    let busy = format!(
        "{load_before} at the start, {} at the end",
        machine::load_average()
    );
    progress(&format!("load average {busy}"));
    let missing: Vec<String> = [
        figures.claims.as_ref().and_then(|c| c.missing.clone()),
        match &figures.syscalls {
            Some(Err(why)) => Some(format!("system calls per message: {why}")),
            _ => None,
        },
    ]
    .into_iter()
    .flatten()
    .collect();
    for missing in &missing {
        progress(missing);
    }
    if args.quick || !args.only.is_empty() || custom {
        progress("not rewriting the document: this was not a whole run");
        return Ok(());
    }
    let mut generated = generated(&rows, &plan, programs.bins.profile.as_deref(), &busy);
    for missing in missing {
        generated.push_str(&format!("\nNot measured: {missing}.\n"));
    }
    report::write_docs(&args.docs, &generated)?;
    progress(&format!("wrote {}", args.docs.display()));
    Ok(())
}

/// Measures the parts in `only` (all when empty), each next to its floor.
fn measure(programs: &Programs, plan: &Plan, only: &[Part]) -> anyhow::Result<Figures> {
    let wanted = |part| only.is_empty() || only.contains(&part);
    let (floor, floor_addr) = floor::start_listening(0)?;
    progress("the floor exchange, one at a time");
    let floor_exchange = floor_exchange(floor_addr, plan)?;
    // The peers of the chat, at-rest and regimes figures need a registry to be started with.
    let with_peers = [Part::Chat, Part::Rest, Part::Regimes, Part::Syscalls];
    let registry = with_peers
        .into_iter()
        .any(wanted)
        .then(|| programs.registry(&[]))
        .transpose()?;

    let chat = match (&registry, wanted(Part::Chat)) {
        (Some(registry), true) => {
            progress("chat messages between two peers");
            Some(chat::measure(programs, registry, plan)?)
        }
        _ => None,
    };
    let mut load = Vec::new();
    if wanted(Part::Load) {
        for &clients in &plan.client_counts {
            load.push(load_level(
                (floor.pid(), floor_addr),
                programs,
                clients,
                plan,
            )?);
        }
    }
    let crowd = wanted(Part::Crowd)
        .then(|| {
            progress(&format!("a registry of {} peers", plan.registrations));
            let floor_rss = floor_holding(plan.registrations, plan)?;
            anyhow::Ok((registry::crowd(programs, plan)?, floor_rss))
        })
        .transpose()?;
    let claims = wanted(Part::Claims)
        .then(|| claims::measure(programs, plan))
        .transpose()?;
    let rest = match (&registry, wanted(Part::Rest)) {
        (Some(registry), true) => {
            progress("a peer at rest, and the floor at rest");
            Some(at_rest(programs, registry, plan)?)
        }
        _ => None,
    };
    let flood = wanted(Part::Broadcast)
        .then(|| {
            progress(&format!(
                "{} broadcasts on a network of {} peers with no registry",
                plan.broadcasts, plan.network_peers
            ));
            broadcast::measure(programs, plan)
        })
        .transpose()?;
    let regimes = match (&registry, wanted(Part::Regimes)) {
        (Some(registry), true) => {
            progress("issue 19's regimes: back-to-back, at rest, burst, ping-pong");
            Some(regimes::measure(programs, registry, plan)?)
        }
        _ => None,
    };
    let syscalls = match (&registry, wanted(Part::Syscalls)) {
        (Some(registry), true) => {
            progress("system calls per message of a burst, under strace");
            Some(regimes::syscalls::measure(programs, registry, plan)?)
        }
        _ => None,
    };
    Ok(Figures {
        floor_exchange,
        chat,
        load,
        crowd,
        claims,
        rest,
        flood,
        regimes,
        syscalls,
    })
}

fn progress(what: &str) {
    eprintln!("p2p-bench: {what}");
}

/// The floor exchange done one at a time, like chat messages.
fn floor_exchange(addr: SocketAddr, plan: &Plan) -> anyhow::Result<Summary> {
    let total = plan.warmup_messages + plan.messages;
    let mut latencies = Vec::with_capacity(plan.messages);
    runtime::block_on(async {
        for n in 0..total {
            let started = std::time::Instant::now();
            floor::exchange(Ipv4Addr::LOCALHOST, addr).await?;
            if n >= plan.warmup_messages {
                latencies.push(started.elapsed());
            }
        }
        anyhow::Ok(())
    })?;
    Summary::of(latencies).context("no floor exchange was measured")
}

/// One load level: the floor, the registry and the floor with the registry's reply sizes,
/// each warmed up, then measured in [`Plan::rounds`] alternating rounds (floor, registry,
/// sized floor, and again), so that a machine that slows down or speeds up meanwhile moves
/// all three alike. Each figure adds up its rounds.
fn load_level(
    (pid, addr): (u32, SocketAddr),
    programs: &Programs,
    clients: usize,
    plan: &Plan,
) -> anyhow::Result<Level> {
    progress(&format!("load with {clients} clients: warming up"));
    let plain = move |client, _| floor::exchange(source::for_client(client), addr);
    load::run(pid, clients, plan.warmup_requests, plan.limit, plain)?;
    let registry = registry::Load::start(programs, clients, plan)?;
    let per_round = plan.requests.div_ceil(plan.rounds.max(1));
    let (mut floor_runs, mut registry_runs, mut sized_runs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=plan.rounds {
        progress(&format!(
            "load with {clients} clients: round {round} of {}: the floor, the registry, the floor with its replies' sizes",
            plan.rounds
        ));
        floor_runs.push(load::run(pid, clients, per_round, plan.limit, plain)?);
        registry_runs.push(registry.run(per_round, plan)?);
        // A register's reply, then a page, as the registry's mix: requests alternate.
        let bytes = registry.reply_bytes();
        let sized = move |client, n: usize| {
            let len = [bytes.registered, bytes.page][n % 2];
            floor::exchange_sized(source::for_client(client), addr, len)
        };
        sized_runs.push(load::run(pid, clients, per_round, plan.limit, sized)?);
    }
    Ok(Level {
        clients,
        floor: Throughput::of(floor_runs)?,
        registry: Throughput::of(registry_runs)?,
        sized_floor: Throughput::of(sized_runs)?,
        reply_bytes: registry.reply_bytes(),
    })
}

/// The resident memory of the floor process holding `names` registrations' worth of data.
fn floor_holding(names: usize, plan: &Plan) -> anyhow::Result<u64> {
    let (holder, _) = floor::start_listening(names)?;
    std::thread::sleep(plan.settle);
    Ok(holder.rss_kib()?)
}

/// A peer at rest, then the floor at rest. The peer starts with the same data each time
/// (its key made by an unmeasured first start), as it does for a user after the first day.
fn at_rest(
    programs: &Programs,
    registry: &Registry,
    plan: &Plan,
) -> anyhow::Result<(rest::AtRest, rest::AtRest)> {
    let data = programs.work.fresh("resting")?;
    let start = |port| programs.peer("resting", port, registry, &data, &[]);
    let first = start(0)?;
    first.listening_addr(std::time::Duration::from_secs(10))?;
    drop(first);
    let asker = Origin {
        name: "bench".parse()?,
        ip: Ipv4Addr::UNSPECIFIED.into(),
        port: 9,
        identity: Arc::new(Identity::generate()),
    };
    let peer = rest::measure(plan, start, |addr| {
        let ping = transport::request(addr, &asker, new_id(), RegistryRequest::Ping);
        runtime::block_on(ping).is_ok()
    })?;
    let floor = rest::measure(
        plan,
        |port| floor::start(port, 0),
        |addr| runtime::block_on(floor::exchange(Ipv4Addr::LOCALHOST, addr)).is_ok(),
    )?;
    Ok((peer, floor))
}

/// The generated part of docs/benchmarks.md.
fn generated(rows: &[report::Row], plan: &Plan, profile: Option<&str>, load: &str) -> String {
    let extra: Vec<String> = std::env::args().skip(1).collect();
    let command = match extra.is_empty() {
        true => COMMAND.to_owned(),
        false => format!("{COMMAND} -- {}", extra.join(" ")),
    };
    let build = profile.map_or("binaries from --bin-dir".to_owned(), |p| {
        format!("{p} build")
    });
    format!(
        "Measured {date} with `{command}` ({build}).\n\n\
         Machine: {machine}; load average {load}.\n\n\
         Counts: {messages} chat messages per chat figure, after {warm} unmeasured; \
         {requests} requests per load level and side, in {rounds} alternating rounds, after \
         {warm_requests} unmeasured; a registry of {crowd} peers, {samples} samples per page or lookup figure, the median of \
         {listings} whole listings; claims: {quiet} pings alone, then {claimants} clients claiming \
         new names for {claim_time} s (at most {claim_cap}) with a ping 1 ms after each answer, in \
         each condition; {starts} starts of each program at rest; {broadcasts} broadcasts on a \
         network of {network} peers with no registry; regimes: {regime_rounds} rounds of \
         {regime_messages} messages back-to-back and in ping-pong, {rest_messages} at rest \
         ({gap} ms apart) and a burst of {burst}, after {regime_warmup} unmeasured.\n\n\
         {table}\n",
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine = Machine::this().describe(),
        messages = report::thousands(plan.messages as u64),
        warm = plan.warmup_messages,
        requests = report::thousands(plan.requests as u64),
        warm_requests = report::thousands(plan.warmup_requests as u64),
        rounds = plan.rounds,
        crowd = report::thousands(plan.registrations as u64),
        samples = report::thousands(plan.samples as u64),
        listings = plan.listings,
        quiet = plan.quiet_pings,
        claimants = plan.claim_clients,
        claim_time = plan.claim_time.as_secs_f64(),
        claim_cap = report::thousands(plan.claim_cap as u64),
        starts = plan.starts,
        broadcasts = plan.broadcasts,
        network = plan.network_peers,
        regime_rounds = plan.regime_rounds,
        regime_messages = report::thousands(plan.regime_messages as u64),
        rest_messages = plan.rest_messages,
        gap = plan.rest_gap.as_millis(),
        burst = report::thousands(plan.burst as u64),
        regime_warmup = plan.regime_warmup,
        table = report::markdown_table(rows),
    )
}
