//! Names mean what the registry says: before a chat request from NAME is shown as NAME, the
//! registry is asked which key it binds NAME to.
//!
//! A stranger can sign a request with its own key and call itself "bob". Its signature proves
//! only its key; the name is a claim. The registry binds each name to the first key that
//! claimed it, so a request whose key is not the one bound to its name is an impostor's, and
//! a name the registry does not know is shown as unverified, with its fingerprint. Only a
//! registry whose key we already trust counts: the one given with `--server-key`, or the one
//! pinned for `--server` on an earlier successful reply ([`TrustedRegistry`], which the
//! registry client keeps up to date).
//!
//! The connection task of the request asks, before the broker sees the request, so the state
//! stays without I/O: it gets the [`Vouch`] as an input.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use p2p_shared::identity::PublicKey;
use p2p_shared::transport::{self, Origin, Reply, SendError};
use p2p_shared::wire::new_id;
use p2p_shared::{runtime, ErrorCode, Outcome, PeerName, RegistryRequest};

use crate::state::Vouch;

/// How long a chat request waits for the registry's word: the requester waits for our reply
/// meanwhile (10 s at most), and a registry that does not answer in time vouches for nothing.
const VOUCH_TIMEOUT: Duration = Duration::from_secs(2);
/// After a lookup timed out, requests are not held for the registry for this long: a
/// silent registry must not make every request (and a connection slot) wait 2 s.
const QUIET_AFTER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most lookups under way at once; beyond, a request is shown unchecked at once.
const MAX_LOOKUPS: usize = 8;

/// The registry key the peer trusts, shared by the registry client (which learns it) and the
/// connection tasks (which ask that registry about requesters).
#[derive(Clone, Default)]
pub struct TrustedRegistry(Arc<Mutex<Option<PublicKey>>>);

impl TrustedRegistry {
    pub fn new(key: Option<PublicKey>) -> TrustedRegistry {
        TrustedRegistry(Arc::new(Mutex::new(key)))
    }

    pub fn set(&self, key: PublicKey) {
        *self.0.lock().expect("no panic while holding it") = Some(key);
    }

    pub fn get(&self) -> Option<PublicKey> {
        *self.0.lock().expect("no panic while holding it")
    }
}

/// Asks the registry about requesters.
#[derive(Clone)]
pub struct Voucher {
    /// The registry's instances (`--server a,b,c`): asked in turn until one answers.
    registry: Arc<[SocketAddr]>,
    trusted: TrustedRegistry,
    origin: Origin,
    /// Until when lookups are skipped, after one timed out.
    quiet_until: Arc<Mutex<Option<Instant>>>,
    in_flight: Arc<AtomicUsize>,
}

impl Voucher {
    pub fn new(registry: Vec<SocketAddr>, trusted: TrustedRegistry, origin: Origin) -> Voucher {
        Voucher {
            registry: registry.into(),
            trusted,
            origin,
            quiet_until: Arc::default(),
            in_flight: Arc::default(),
        }
    }

    /// What the registry says of `name` and `key`.
    pub async fn vouch(&self, name: PeerName, key: PublicKey) -> Vouch {
        let Some(trusted) = self.trusted.get() else {
            return Vouch::NoRegistry;
        };
        let quiet = *self.quiet_until.lock().expect("no panic while holding it");
        if quiet.is_some_and(|until| Instant::now() < until) {
            return Vouch::Unanswered;
        }
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_LOOKUPS {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Vouch::Unanswered;
        }
        let vouch = self.ask(trusted, name, key).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        vouch
    }

    /// The first answer of an instance that answered (a reply, or a refusal other than
    /// `unavailable`), within [`VOUCH_TIMEOUT`] for all of them.
    async fn first_answer(&self, name: PeerName) -> Result<Reply, SendError> {
        let mut last = None;
        for &instance in self.registry.iter() {
            let lookup = RegistryRequest::Lookup { name };
            match transport::request(instance, &self.origin, new_id(), lookup).await {
                Err(SendError::Refused {
                    code: ErrorCode::Unavailable,
                    ..
                }) => {}
                Err(e) if !e.after_writing() || matches!(e, SendError::Timeout { .. }) => {
                    last = Some(e);
                }
                answered => return answered,
            }
        }
        Err(last.unwrap_or_else(|| SendError::Timeout {
            addr: self.registry[0],
            written: false,
        }))
    }

    async fn ask(&self, trusted: PublicKey, name: PeerName, key: PublicKey) -> Vouch {
        let answered = runtime::timeout(VOUCH_TIMEOUT, self.first_answer(name)).await;
        if answered.is_err() {
            let until = Instant::now() + QUIET_AFTER_TIMEOUT;
            *self.quiet_until.lock().expect("no panic while holding it") = Some(until);
        }
        match answered {
            Ok(Ok(reply)) if reply.key == trusted => match reply.outcome {
                Outcome::Peer { peer, .. } if peer.name == name && peer.key == key => {
                    Vouch::Registered
                }
                Outcome::Peer { peer, .. } if peer.name == name => Vouch::Impostor {
                    registered: peer.key,
                },
                // Its owner is offline; the name still means that key.
                Outcome::Claimed {
                    name: claimed,
                    key: owner,
                } if claimed == name => match owner == key {
                    true => Vouch::Registered,
                    false => Vouch::Impostor { registered: owner },
                },
                _ => Vouch::Unanswered,
            },
            Ok(Err(SendError::Refused {
                code: ErrorCode::UnknownPeer,
                key: signer,
                ..
            })) if signer == trusted => Vouch::Unregistered,
            _ => Vouch::Unanswered,
        }
    }
}
