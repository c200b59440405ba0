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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use p2p_shared::identity::PublicKey;
use p2p_shared::transport::{self, Origin, SendError};
use p2p_shared::wire::new_id;
use p2p_shared::{runtime, ErrorCode, Outcome, PeerName, RegistryRequest};

use crate::state::Vouch;

/// How long a chat request waits for the registry's word: the requester waits for our reply
/// meanwhile (10 s at most), and a registry that does not answer in time vouches for nothing.
const VOUCH_TIMEOUT: Duration = Duration::from_secs(2);

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
    registry: SocketAddr,
    trusted: TrustedRegistry,
    origin: Origin,
}

impl Voucher {
    pub fn new(registry: SocketAddr, trusted: TrustedRegistry, origin: Origin) -> Voucher {
        Voucher {
            registry,
            trusted,
            origin,
        }
    }

    /// What the registry says of `name` and `key`.
    pub async fn vouch(&self, name: PeerName, key: PublicKey) -> Vouch {
        let Some(trusted) = self.trusted.get() else {
            return Vouch::Unavailable;
        };
        let lookup = RegistryRequest::Lookup { name };
        let asked = transport::request(self.registry, &self.origin, new_id(), lookup);
        match runtime::timeout(VOUCH_TIMEOUT, asked).await {
            Ok(Ok(reply)) if reply.key == trusted => match reply.outcome {
                Outcome::Peer { peer } if peer.name == name && peer.key == key => Vouch::Registered,
                Outcome::Peer { peer } if peer.name == name => Vouch::Impostor {
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
                _ => Vouch::Unavailable,
            },
            Ok(Err(SendError::Refused {
                code: ErrorCode::UnknownPeer,
                key: signer,
                ..
            })) if signer == trusted => Vouch::Unregistered,
            _ => Vouch::Unavailable,
        }
    }
}
