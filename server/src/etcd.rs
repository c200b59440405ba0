//! The etcd store: registry instances that share one namespace (`--store etcd://...`).
//!
//! Every claim and registration lives in etcd (`kv.rs`), so any instance answers for every
//! name, and etcd's consensus, not code here, keeps an acknowledged claim through the loss of
//! one of its machines. What an instance keeps to itself is in `local.rs`.
//!
//! etcd is reached through its JSON gateway by blocking HTTP (`http.rs`) on a few threads of
//! their own: the registry's event loop only hands a job to their bounded queue and awaits
//! the answer on a oneshot channel, as it does with the claims thread of the embedded store.
//! A full queue is answered `busy`. A request etcd cannot take (unreachable, no leader) is
//! answered `unavailable`; the log says when the store goes away and when it is back, once
//! each, and nothing else is needed to recover: the next request tries again.

mod http;
mod kv;
mod local;
mod register;
mod rules;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use p2p_shared::handshake::StaticProof;
use p2p_shared::identity::PublicKey;
use p2p_shared::registry_session::RegistrySession;
use p2p_shared::wire::frame::RegistryRequestHeader as Header;
use p2p_shared::wire::PEERS_PAGE_LEN;
use p2p_shared::{PeerInfo, PeerName};

use crate::broker::Accepted;
use crate::event::Event;
use crate::log::Log;
use crate::registry::{Lookup, NameLimits, Registration, Removal};
use crate::store::{StoreError, QUEUE};
use kv::Kv;
use local::Local;

/// How many requests to etcd may be under way at once: each thread waits on one round
/// trip, so a few keep a slow store from holding everybody's answer behind one.
const THREADS: usize = 4;

/// `--store etcd://HOST:PORT[,HOST:PORT...]`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
}

impl std::str::FromStr for EtcdConfig {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix("etcd://")
            .ok_or_else(|| format!("{s:?}: a store is etcd://HOST:PORT[,HOST:PORT...]"))?;
        let endpoints: Vec<String> = rest.split(',').map(str::to_owned).collect();
        for endpoint in &endpoints {
            let port = endpoint
                .rsplit_once(':')
                .map(|(_, port)| port.parse::<u16>());
            if !matches!(port, Some(Ok(_))) {
                return Err(format!("{endpoint:?} must be HOST:PORT"));
            }
        }
        Ok(EtcdConfig { endpoints })
    }
}

impl std::fmt::Display for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "etcd://{}", self.endpoints.join(","))
    }
}

type Job = Box<dyn FnOnce(&mut Kv) + Send>;

/// A handle to the etcd threads; cheap to clone, one per connection task.
#[derive(Clone)]
pub struct Etcd {
    jobs: async_channel::Sender<Job>,
    local: Arc<Mutex<Local>>,
    ttl: Duration,
    limits: NameLimits,
    health: Arc<Health>,
}

/// Whether the store answered last time, to log only its changes.
struct Health {
    up: AtomicBool,
    store: String,
    log: Log,
}

impl Health {
    fn saw<T>(&self, result: &Result<T, StoreError>) {
        let up = !matches!(result, Err(e) if e.is_unavailable());
        if self.up.swap(up, Ordering::Relaxed) != up {
            let store = self.store.clone();
            match result {
                Err(e) => self.log.event(Event::StoreUnavailable {
                    store,
                    why: e.to_string(),
                }),
                Ok(_) => self.log.event(Event::StoreAvailable { store }),
            }
        }
    }
}

impl Etcd {
    /// Starts the threads that talk to `config`'s etcd; registrations last `ttl`, at most
    /// `capacity` are remembered here, new claims within `limits`.
    pub fn start(
        config: &EtcdConfig,
        ttl: Duration,
        capacity: usize,
        limits: NameLimits,
        log: Log,
    ) -> std::io::Result<Etcd> {
        let (jobs, queue) = async_channel::bounded::<Job>(QUEUE);
        let health = Arc::new(Health {
            up: AtomicBool::new(true),
            store: config.to_string(),
            log,
        });
        for n in 0..THREADS {
            let (queue, mut kv) = (queue.clone(), Kv::new(config.endpoints.clone()));
            std::thread::Builder::new()
                .name(format!("etcd-{n}"))
                .spawn(move || {
                    while let Ok(job) = queue.recv_blocking() {
                        job(&mut kv);
                    }
                })?;
        }
        Ok(Etcd {
            jobs,
            local: Arc::new(Mutex::new(Local::new(capacity))),
            ttl,
            limits,
            health,
        })
    }

    fn local(local: &Mutex<Local>) -> MutexGuard<'_, Local> {
        // A thread that panicked while holding it left maps, not broken invariants.
        local
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on an etcd thread and awaits its answer.
    async fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Kv) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (done, answer) = oneshot::channel();
        let health = Arc::clone(&self.health);
        let job: Job = Box::new(move |kv| {
            let result = f(kv);
            health.saw(&result);
            let _ = done.send(result);
        });
        self.jobs
            .try_send(job)
            .map_err(|_| StoreError::overloaded())?;
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::failed("the etcd threads stopped")))
    }

    pub async fn register(
        &self,
        name: PeerName,
        addr: std::net::SocketAddr,
        key: PublicKey,
        session: Option<RegistrySession>,
    ) -> Result<Registration, StoreError> {
        let (local, ttl, health) = (Arc::clone(&self.local), self.ttl, self.health.clone());
        let limits = self.limits;
        self.ask(move |kv| {
            let now = Instant::now();
            let lease = Self::local(&local).lease(&name, key, addr, now);
            if let Some(lease) = lease {
                if kv.renew(&name, lease)? {
                    Self::local(&local).renewed(&name, session, now + ttl);
                    return Ok(Registration::Refreshed);
                }
            }
            // Whole seconds, rounded up: etcd's leases count in seconds.
            let secs = ttl.as_millis().div_ceil(1000).max(1) as u64;
            let lease = match kv.register(&name, (addr, key), &limits, secs, now)? {
                Ok(lease) => lease,
                Err(refused) => return Ok(refused),
            };
            Self::local(&local).registered(name, (key, addr), lease, session, ttl, now);
            health.log.event(Event::Registered { name, addr, key });
            Ok(Registration::Added)
        })
        .await
    }

    pub fn accept(&self, header: Header, frame: Vec<u8>) -> Option<Accepted> {
        Self::local(&self.local).accept(&header, &frame, Instant::now())
    }

    pub async fn unregister(&self, name: PeerName, key: PublicKey) -> Result<Removal, StoreError> {
        let (local, health) = (Arc::clone(&self.local), self.health.clone());
        self.ask(move |kv| {
            let removal = kv.unregister(&name, &key)?;
            if removal == Removal::Done {
                Self::local(&local).forget(&name);
                health.log.event(Event::Unregistered { name });
            }
            Ok(removal)
        })
        .await
    }

    pub async fn release(&self, name: PeerName, key: PublicKey) -> Result<Removal, StoreError> {
        let (local, health) = (Arc::clone(&self.local), self.health.clone());
        self.ask(move |kv| {
            let removal = kv.release(&name, &key)?;
            if removal == Removal::Done {
                Self::local(&local).forget(&name);
                health.log.event(Event::Released { name });
            }
            Ok(removal)
        })
        .await
    }

    pub async fn lookup(&self, name: PeerName) -> Result<Lookup, StoreError> {
        self.ask(move |kv| {
            Ok(match kv.lookup(&name)? {
                (Some(peer), _) => Lookup::Online(peer),
                (None, Some(owner)) => Lookup::Offline(owner),
                (None, None) => Lookup::Unknown,
            })
        })
        .await
    }

    pub async fn page(
        &self,
        after: Option<PeerName>,
    ) -> Result<(Vec<PeerInfo>, Option<PeerName>), StoreError> {
        self.ask(move |kv| {
            let (peers, more) = kv.page(after.as_ref(), PEERS_PAGE_LEN)?;
            let next = match more {
                true => peers.last().map(|p| p.name),
                false => None,
            };
            Ok((peers, next))
        })
        .await
    }

    /// Remembers `key`'s static proof, without waiting: dropped if the queue is full (the
    /// peer proves it again next session).
    pub fn remember(&self, key: PublicKey, proof: StaticProof) {
        let job: Job = Box::new(move |kv| {
            let _ = kv.put_static(&key, &proof);
        });
        let _ = self.jobs.try_send(job);
    }

    pub async fn static_of(&self, key: PublicKey) -> Option<StaticProof> {
        self.ask(move |kv| kv.static_of(&key)).await.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_etcd_and_one_or_more_host_ports() {
        let config: EtcdConfig = "etcd://127.0.0.1:2379,etcd-b:2379".parse().unwrap();
        assert_eq!(config.endpoints, ["127.0.0.1:2379", "etcd-b:2379"]);
        assert_eq!(config.to_string(), "etcd://127.0.0.1:2379,etcd-b:2379");
        for bad in [
            "127.0.0.1:2379",
            "etcd://",
            "etcd://host",
            "etcd://a:1,",
            "redis://a:1",
        ] {
            assert!(bad.parse::<EtcdConfig>().is_err(), "{bad:?}");
        }
    }
}
