//! What the registry answers to each request.
//!
//! This is the [`Service`] that the shared transport calls for every well-formed request.
//! Bookkeeping goes to the broker; the one piece of network I/O the registry does itself is
//! the liveness probe that decides whether a name held by another address is really taken.

use std::net::SocketAddr;
use std::time::Duration;

use p2p_shared::message::new_id;
use p2p_shared::transport::{self, Origin, Refusal, Service};
use p2p_shared::{runtime, Envelope, ErrorCode, Outcome, PeerInfo, PeerName, Request, Sender};

use crate::broker::Registrar;
use crate::output::say;
use crate::registry::Claim;

/// How long the registry waits for the current holder of a name to answer its ping. Short:
/// a registering peer is waiting on this.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RegistryService {
    registrar: Registrar,
    origin: Origin,
}

impl RegistryService {
    pub fn new(registrar: Registrar, origin: Origin) -> Self {
        RegistryService { registrar, origin }
    }

    async fn register(&self, from: Sender) -> Outcome {
        let Sender { name, addr } = from;
        let claim = match self.registrar.claim(name.clone(), addr).await {
            Claim::HeldAt(holder) if !self.answers_as(&name, holder).await => {
                self.registrar.replace(name.clone(), holder, addr).await
            }
            claim => claim,
        };
        match claim {
            Claim::Added | Claim::Refreshed => Outcome::Registered { addr },
            Claim::HeldAt(holder) => Outcome::error(
                ErrorCode::NameTaken,
                format!("{name} is registered by a live peer at {holder}"),
            ),
            Claim::Full => Outcome::error(
                ErrorCode::RegistryFull,
                "the registry holds as many peers as it can",
            ),
        }
    }

    /// Whether a peer listening at `addr` answers a ping with the name `name`.
    async fn answers_as(&self, name: &PeerName, addr: SocketAddr) -> bool {
        let ping = transport::request(addr, &self.origin, new_id(), Request::Ping);
        matches!(
            runtime::timeout(PROBE_TIMEOUT, ping).await,
            Ok(Ok(response)) if response.from.name == *name
        )
    }
}

impl Service for RegistryService {
    async fn handle(&self, request: Envelope<Request>, _remote: SocketAddr) -> Outcome {
        let from = request.from;
        match request.body {
            Request::Register => self.register(from).await,
            Request::Unregister => {
                if self.registrar.release(from.name.clone(), from.addr).await {
                    Outcome::Ok
                } else {
                    Outcome::error(
                        ErrorCode::NotRegistered,
                        format!("{} is not registered at {}", from.name, from.addr),
                    )
                }
            }
            Request::ListPeers { after } => {
                let (peers, next) = self.registrar.page(after).await;
                Outcome::Peers { peers, next }
            }
            Request::Lookup { name } => match self.registrar.lookup(name.clone()).await {
                Some(addr) => Outcome::Peer {
                    peer: PeerInfo { name, addr },
                },
                None => Outcome::error(ErrorCode::UnknownPeer, format!("{name} is not registered")),
            },
            Request::Ping => Outcome::Ok,
            Request::ChatRequest
            | Request::ChatAnswer { .. }
            | Request::ChatMessage { .. }
            | Request::Disconnect => Outcome::error(
                ErrorCode::UnsupportedRequest,
                "this is the registry: chat traffic goes to peers directly",
            ),
        }
    }

    fn refused(&self, remote: SocketAddr, why: &Refusal) {
        say(format_args!("refused {remote}: {why}"));
    }
}
