//! `p2p-server`, the p2p-chat registry, as a library: [`run`] serves a registry on a
//! listener until told to stop, so that the binary is a thin `main` and tests can run a
//! registry in-process.
//!
//! Peers register their name and listening address here, look each other up, and leave. The
//! registry is a peer of the network itself, speaking the same protocol on the same kind of
//! short-lived connections; it never relays chat traffic. It has a key of its own, which
//! signs every reply, and it keeps which key owns which name in an embedded database, so
//! names survive a restart; addresses are kept in memory.
//!
//! The pieces, each in its own module:
//!
//! - [`service`]: what the registry answers to each request (the transport calls it);
//! - [`broker`]: the task that owns the registry's state, the only one that changes it;
//! - [`registry`], [`claims`] and [`deadlines`]: the rules, without I/O; [`pages`]: encoded
//!   listings;
//! - [`backend`]: the store interface the service asks, with two backends: the embedded
//!   default (the broker, its registry in memory and [`store`], the claims on disk written by
//!   a thread of their own) and [`etcd`], a store shared by several instances;
//!   [`release`]: the operator's `p2p-server release NAME`, on the embedded database while
//!   no registry runs;
//! - [`event`] and [`log`]: what the registry reports, written by a thread of its own;
//!   [`refusals`]: how many refusal lines it writes.

mod backend;
mod broker;
mod claim_budget;
mod claims;
mod deadlines;
pub mod etcd;
pub mod event;
pub mod log;
mod pages;
mod refusals;
mod registry;
pub mod release;
mod service;
mod store;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use p2p_shared::clock::Clock;
use p2p_shared::identity::Identity;
use p2p_shared::reachable;
use p2p_shared::runtime::TcpListener;
use p2p_shared::transport::{self, Limits, Origin};

use crate::backend::Backend;
use crate::broker::Registrar;
use crate::claims::Claims;
pub use crate::etcd::EtcdConfig;
use crate::event::Event;
use crate::log::Log;
use crate::registry::Registry;
pub use crate::registry::{NameLimits, CAPACITY};
use crate::service::RegistryService;
use crate::store::{ClaimStore, StoreThread};

/// What a registry is made of, besides its listener.
pub struct Config {
    /// The registry's key pair: every reply is signed with it.
    pub identity: Identity,
    /// Where claims and registrations are kept.
    pub store: Store,
    /// The most registrations held at once (`--max-registrations`).
    pub capacity: usize,
    /// How long a registration lasts unless the peer renews it.
    pub ttl: Duration,
    /// How many names one address, network and key may have.
    pub names: NameLimits,
    /// What each sender may hold of the registry: connections, remembered ids.
    pub limits: Limits,
    /// Where the registry reads the time: the system's clock, or a test's.
    pub clock: Clock,
}

/// Where a registry keeps its claims and registrations.
pub enum Store {
    /// The claims in this database (see [`Config::open_claims`]), registrations in memory.
    Embedded(ClaimStore),
    /// Everything in etcd, shared with the other instances on it.
    Etcd(EtcdConfig),
}

impl Config {
    /// Opens (or creates) the claims database at `path`; `None`: claims in memory only, gone
    /// when the registry stops (for tests).
    pub fn open_claims(path: Option<&PathBuf>) -> anyhow::Result<ClaimStore> {
        let store = match path {
            Some(path) => {
                ClaimStore::open(path).with_context(|| format!("cannot open {}", path.display()))?
            }
            None => ClaimStore::in_memory()?,
        };
        Ok(store)
    }
}

/// Serves a registry on `listener`, reporting to `log`, until `shutdown` completes. Then it
/// stops accepting connections, answers those in flight, and returns once every write to the
/// claims that someone waits for is done.
pub async fn run(
    listener: TcpListener,
    config: Config,
    log: Log,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let Config {
        identity,
        store,
        capacity,
        ttl,
        names,
        limits,
        clock,
    } = config;
    let local = listener.local_addr()?;
    let log = log.with_clock(clock.clone());
    let (backend, broker) = match store {
        Store::Embedded(claims) => {
            let loaded = claims.claims().context("cannot read the name claims")?;
            let (written_tx, written) = async_channel::unbounded();
            let store = StoreThread::start(claims, written_tx).context("cannot start the store")?;
            let claims = Claims::loaded(loaded);
            let registry = Registry::new(claims, ttl, names, capacity, clock.now());
            let statics = store.statics();
            let (registrar, broker) =
                Registrar::start(registry, store, written, log.clone(), clock);
            (Backend::Embedded { registrar, statics }, Some(broker))
        }
        Store::Etcd(config) => {
            log.event(Event::Store {
                store: config.to_string(),
            });
            let etcd = etcd::Etcd::start(&config, ttl, capacity, names, log.clone())
                .context("cannot start the etcd threads")?;
            (Backend::Etcd(etcd), None)
        }
    };
    log.event(Event::Listening { addr: local });
    log.event(Event::Reachable {
        reach: reachable::reach(local),
    });
    log.event(Event::Key {
        key: identity.public(),
    });

    let origin = Origin {
        name: "registry".parse()?,
        ip: local.ip(),
        port: local.port(),
        identity: Arc::new(identity),
    };
    let service = RegistryService::new(backend, origin.clone(), ttl, log.clone());
    transport::serve(listener, origin, service, limits, shutdown).await;
    // Every handle to the broker is gone with the service: it ends once it has given the
    // answers that wait for the store. etcd's answers are etcd's: nothing waits here.
    if let Some(broker) = broker {
        broker.await;
    }
    log.event(Event::Stopped);
    Ok(())
}
