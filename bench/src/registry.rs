//! The registry under load, and the registry holding a crowd.
//!
//! **Throughput.** A fresh `p2p-server` per level, and that many concurrent clients, each with
//! a name and a key of its own, sending `register` and `list_peers` alternately (even request
//! numbers register, odd ones list) on a fresh connection each ([`wire::Client`]). The
//! registry so holds exactly one name per client, and a listing returns all of them (a full
//! page of 256 at 256 clients). The first `register` of each client is signed, claims its
//! name, which the registry writes to its database, and opens the client's registry session;
//! that happens in the unmeasured warm-up. Every later request is sealed in the session, and
//! every later `register` only refreshes the address, as a registered peer's requests are.
//!
//! **A crowd.** A fresh `p2p-server` gets [`Plan::registrations`] peers registered by 16
//! clients (each peer a new key claiming a new name), then the bench reads its resident
//! memory and times, through `transport::request` as a peer does (signature checks and all),
//! one `list_peers` page, one `lookup`, a whole listing page by page, and `listpeer` typed at
//! a real peer until it printed the last of them.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use p2p_shared::identity::Identity;
use p2p_shared::transport::{self, Origin};
use p2p_shared::wire::{new_id, PEERS_PAGE_LEN};
use p2p_shared::{runtime, Outcome, PeerName, RegistryRequest};

use crate::load::{self, Throughput};
use crate::plan::Plan;
use crate::programs::{Programs, Registry};
use crate::source;
use crate::stats::{median, Summary};
use crate::wire::Client;

/// The port the load clients claim to listen on. Nothing listens there, and nothing needs
/// to: the registry never contacts a registered address.
const UNUSED_PORT: u16 = 9;

/// How many clients register the crowd.
const CROWD_CLIENTS: usize = 16;

/// The most pages a whole listing may take: the registry holds at most 250,000 peers, which
/// is 977 pages, so more means the listing is not moving forward.
const MAX_PAGES: usize = 1_024;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The largest replies of a load run, as sent on the wire: a `registered` and a page of peers.
/// The bench's second floor sends replies of these sizes.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplyBytes {
    pub registered: usize,
    pub page: usize,
}

/// A registry under load: a fresh `p2p-server`, its clients with their sessions open (after
/// an unmeasured warm-up), and the largest replies they have seen.
pub struct Load {
    registry: Registry,
    clients: Arc<Vec<Mutex<Client>>>,
    largest: Arc<[AtomicUsize; 2]>,
}

impl Load {
    /// Starts a registry and `clients` clients, and warms them up.
    pub fn start(programs: &Programs, clients: usize, plan: &Plan) -> anyhow::Result<Load> {
        let extra: Vec<&str> = plan.registry_args.iter().map(String::as_str).collect();
        let registry = programs.registry(&extra)?;
        let clients_: Vec<Mutex<Client>> = (0..clients)
            .map(|c| {
                Ok(Mutex::new(Client {
                    // A shared store keeps the names of the level before: new ones.
                    origin: origin(&match plan.registry_args.is_empty() {
                        true => format!("load-{c}"),
                        false => format!("load{clients}-{c}"),
                    })?,
                    from: source::for_client(c),
                    session: None,
                }))
            })
            .collect::<anyhow::Result<_>>()?;
        let load = Load {
            registry,
            clients: Arc::new(clients_),
            largest: Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]),
        };
        load.run(plan.warmup_requests, plan)?;
        Ok(load)
    }

    /// One measured run of `requests` requests.
    pub fn run(&self, requests: usize, plan: &Plan) -> anyhow::Result<load::Run> {
        let mix = mix(
            self.registry.addr,
            Arc::clone(&self.clients),
            Arc::clone(&self.largest),
        );
        let pid = self.registry.child.pid();
        load::run(pid, self.clients.len(), requests, plan.limit, mix)
    }

    /// The largest replies seen so far.
    pub fn reply_bytes(&self) -> ReplyBytes {
        let [registered, page] = &*self.largest;
        ReplyBytes {
            registered: registered.load(Ordering::Relaxed),
            page: page.load(Ordering::Relaxed),
        }
    }
}

/// Request `n` of `client`: even numbers register the client's name, odd ones list a page.
/// The largest reply of each kind goes to `largest`.
fn mix(
    addr: SocketAddr,
    clients: Arc<Vec<Mutex<Client>>>,
    largest: Arc<[AtomicUsize; 2]>,
) -> impl Fn(usize, usize) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync + 'static {
    move |client, n| {
        let (clients, largest) = (Arc::clone(&clients), Arc::clone(&largest));
        Box::pin(async move {
            // Each client sends one request at a time, so its lock is never contended.
            let mut client = clients[client].lock().await;
            let bytes = if n % 2 == 0 {
                let register = RegistryRequest::Register {
                    pattern: None,
                    handshake: None,
                };
                client.ask(addr, register, "registered").await?
            } else {
                let list = RegistryRequest::ListPeers { after: None };
                client.ask(addr, list, "peers").await?
            };
            largest[n % 2].fetch_max(bytes, Ordering::Relaxed);
            Ok(())
        })
    }
}

/// The crowded-registry figures.
pub struct Crowd {
    pub registered: usize,
    /// How fast the crowd registered.
    pub registering: Throughput,
    pub rss_kib: u64,
    /// One `list_peers` page (the first).
    pub page: Summary,
    /// One `lookup`.
    pub lookup: Summary,
    /// How many pages make a whole listing.
    pub pages: usize,
    /// A whole listing over the protocol, page by page (median).
    pub listing: Duration,
    /// `listpeer` typed at a peer until it printed the last peer.
    pub typed_listing: Duration,
}

/// Registers the crowd and measures the registry holding it.
pub fn crowd(programs: &Programs, plan: &Plan) -> anyhow::Result<Crowd> {
    // Registering the crowd takes longer than the default registration lifetime (60 s).
    let mut extra = vec!["--ttl", "1h"];
    extra.extend(plan.registry_args.iter().map(String::as_str));
    let registry = programs.registry(&extra)?;
    let addr = registry.addr;
    let total = plan.registrations;
    let pid = registry.child.pid();
    let register = move |_, n| async move {
        // A new peer each time: a signed `register` that claims a name and opens a session.
        let mut peer = Client {
            origin: origin(&crowd_name(n))?,
            from: source::for_client(n),
            session: None,
        };
        let register = RegistryRequest::Register {
            pattern: None,
            handshake: None,
        };
        peer.ask(addr, register, "registered").await.map(drop)
    };
    // Registering took up to a second per thousand on a quiet machine (3,610/s measured)
    // and 1.4 s with other work on it (issue 16: 708,585 in 1,000 s; 986/s in a whole run
    // on 2026-12-03, 100,000 in 101 s of the 120 s then allowed): room for 2.5.
    let limit = plan.limit.max(Duration::from_secs(total as u64 / 400));
    let run = load::run(pid, CROWD_CLIENTS, total, limit, register)?;
    let registering = Throughput::of(vec![run])?;
    if registering.latency.count < total {
        // What the registry said besides its registrations: why it refused, if it did.
        let said = registry.child.transcript().into_iter();
        let said: Vec<String> = said.filter(|l| !l.contains("registered ")).collect();
        bail!(
            "only {} of {total} peers registered within {:?}; the registry's last other lines:\n{}",
            registering.latency.count,
            limit,
            said[said.len().saturating_sub(40)..].join("\n")
        );
    }
    std::thread::sleep(plan.settle);
    let rss_kib = registry.child.rss_kib()?;
    crate::progress(&format!(
        "{total} registered at {:.0}/s; resident memory {rss_kib} KiB",
        registering.per_second
    ));

    let asker = &origin("bench")?;
    let page = sample(plan.samples, |_| async move {
        let (peers, _) = list_page(addr, asker, None).await?;
        ensure!(
            peers == total.min(PEERS_PAGE_LEN),
            "a page of {peers} peers"
        );
        Ok(())
    })?;
    let lookup = sample(plan.samples, |n| {
        // A stride coprime with any crowd size of 10^k spreads the names looked up.
        let name = crowd_name(n.wrapping_mul(7_919) % total);
        async move { lookup(addr, asker, name).await }
    })?;
    let mut listings = Vec::new();
    let mut pages = 0;
    for _ in 0..plan.listings {
        let started = Instant::now();
        let (listed, used) = runtime::block_on(whole_listing(addr, asker, total))?;
        listings.push(started.elapsed());
        ensure!(
            listed == total,
            "a whole listing has {listed} of {total} peers"
        );
        pages = used;
    }
    let typed_listing = typed_listing(programs, &registry, total, plan)?;
    Ok(Crowd {
        registered: total,
        registering,
        rss_kib,
        page,
        lookup,
        pages,
        listing: median(listings).context("no whole listing was made")?,
        typed_listing,
    })
}

/// The name of crowd member `n`; zero-padded so that name order is number order.
fn crowd_name(n: usize) -> String {
    format!("p{n:07}")
}

/// A peer named `name` with a new key.
pub fn origin(name: &str) -> anyhow::Result<Origin> {
    Ok(Origin {
        name: name
            .parse()
            .with_context(|| format!("{name:?} is no peer name"))?,
        ip: Ipv4Addr::UNSPECIFIED.into(),
        port: UNUSED_PORT,
        identity: Arc::new(Identity::generate()),
    })
}

/// One page of the listing after `after`: how many peers it had, and where the next starts.
async fn list_page(
    addr: SocketAddr,
    origin: &Origin,
    after: Option<PeerName>,
) -> anyhow::Result<(usize, Option<PeerName>)> {
    match transport::request(addr, origin, new_id(), RegistryRequest::ListPeers { after })
        .await?
        .outcome
    {
        Outcome::Peers { peers, next } => Ok((peers.len(), next)),
        other => bail!("list_peers was answered with {other:?}"),
    }
}

async fn lookup(addr: SocketAddr, origin: &Origin, name: String) -> anyhow::Result<()> {
    let name: PeerName = name.parse()?;
    match transport::request(addr, origin, new_id(), RegistryRequest::Lookup { name })
        .await?
        .outcome
    {
        Outcome::Peer { peer, .. } if peer.name == name => Ok(()),
        other => bail!("lookup {name} was answered with {other:?}"),
    }
}

/// Lists every peer page by page, as a peer's `listpeer` does; returns peers and pages.
/// At most enough pages for `total` peers and a few more, at least [`MAX_PAGES`].
async fn whole_listing(
    addr: SocketAddr,
    origin: &Origin,
    total: usize,
) -> anyhow::Result<(usize, usize)> {
    let (mut listed, mut pages, mut after) = (0, 0, None);
    for _ in 0..MAX_PAGES.max(total / PEERS_PAGE_LEN + 2) {
        let (peers, next) = list_page(addr, origin, after).await?;
        listed += peers;
        pages += 1;
        match next {
            Some(next) => after = Some(next),
            None => return Ok((listed, pages)),
        }
    }
    bail!("the listing did not end after {pages} pages")
}

/// Times `count` sequential runs of `request(n)`.
fn sample<F, Fut>(count: usize, request: F) -> anyhow::Result<Summary>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut latencies = Vec::with_capacity(count);
    runtime::block_on(async {
        for n in 0..count {
            let sent = Instant::now();
            request(n).await?;
            latencies.push(sent.elapsed());
        }
        anyhow::Ok(())
    })?;
    Summary::of(latencies).context("no sample was taken")
}

/// The most peers a peer's `listpeer` keeps and shows (`peer/src/registry_client.rs`,
/// `MAX_LISTED`): beyond, it says the listing was cut.
const MAX_LISTED: usize = 4096;

/// `listpeer` typed at a real peer, until it printed the last of the `total` peers it shows
/// (at most [`MAX_LISTED`]).
fn typed_listing(
    programs: &Programs,
    registry: &Registry,
    total: usize,
    plan: &Plan,
) -> anyhow::Result<Duration> {
    let (viewer, _) = programs.listening_peer("viewer", registry, &[])?;
    let sent = viewer.send("listpeer")?;
    let header = viewer.expect("starting the listing", plan.limit, |l| {
        l.starts_with("peers: ")
    })?;
    let shown = total.min(MAX_LISTED);
    ensure!(
        header.text == format!("peers: {shown}"),
        "the peer listed {:?}, expected {shown} of {total} peers",
        header.text
    );
    let last = format!("peer {} ", crowd_name(shown - 1));
    let shown = viewer.expect("with the last peer", plan.limit, |l| l.starts_with(&last))?;
    Ok(shown.at - sent)
}
