//! What the registry answers to each request.
//!
//! This is the [`Service`] that the shared transport calls for every well-formed request.
//! Requests that change a name (register, unregister, release) must be signed by the key that
//! owns it, and the transport checks that before they get here; reads (list, lookup, ping)
//! are open to anyone and skip that public-key operation. Every reply is signed with the
//! registry's key, so a peer can tell the registry it pinned from an impostor.

use std::net::SocketAddr;
use std::time::Duration;

use p2p_shared::transport::{Refusal, Service};
use p2p_shared::{Envelope, ErrorCode, Outcome, Request};

use crate::broker::Registrar;
use crate::output::say;
use crate::registry::{Registration, Removal};

#[derive(Clone)]
pub struct RegistryService {
    registrar: Registrar,
    /// How long a registration lasts unless renewed; told to every registering peer.
    ttl: Duration,
}

impl RegistryService {
    pub fn new(registrar: Registrar, ttl: Duration) -> Self {
        RegistryService { registrar, ttl }
    }
}

fn store_failed() -> Outcome {
    Outcome::error(
        ErrorCode::Busy,
        "the registry cannot write its store; try again later",
    )
}

impl Service for RegistryService {
    fn needs_signature(&self, request: &Request) -> bool {
        matches!(
            request,
            Request::Register | Request::Unregister | Request::Release
        )
    }

    async fn handle(&self, request: Envelope<Request>, _remote: SocketAddr) -> Outcome {
        let from = request.from;
        let (name, key) = (from.name.clone(), from.key);
        match request.body {
            Request::Register => {
                match self.registrar.register(name.clone(), from.addr, key).await {
                    Ok(Registration::Added | Registration::Refreshed) => Outcome::Registered {
                        addr: from.addr,
                        key,
                        ttl_ms: self.ttl.as_millis().try_into().unwrap_or(u64::MAX),
                    },
                    Ok(Registration::Taken) => Outcome::error(
                        ErrorCode::NameTaken,
                        format!("{name} belongs to another key"),
                    ),
                    Ok(Registration::Full) => Outcome::error(
                        ErrorCode::RegistryFull,
                        "the registry holds as many peers as it can",
                    ),
                    Ok(Registration::TooManyFromHere) => Outcome::error(
                        ErrorCode::RegistryFull,
                        "too many names are registered from this address",
                    ),
                    Ok(Registration::TooManyNewNames) => Outcome::error(
                        ErrorCode::RegistryFull,
                        "too many new names were claimed from this address in the last hour",
                    ),
                    Err(_) => store_failed(),
                }
            }
            Request::Unregister => match self.registrar.unregister(name.clone(), key).await {
                Removal::Done => Outcome::Ok,
                Removal::Unknown => Outcome::error(
                    ErrorCode::NotRegistered,
                    format!("{name} is not registered"),
                ),
                Removal::NotOwner => Outcome::error(
                    ErrorCode::NameTaken,
                    format!("{name} belongs to another key"),
                ),
            },
            Request::Release => match self.registrar.release(name.clone(), key).await {
                Ok(Removal::Done) => Outcome::Ok,
                Ok(Removal::Unknown) => {
                    Outcome::error(ErrorCode::NotRegistered, format!("nobody holds {name}"))
                }
                Ok(Removal::NotOwner) => Outcome::error(
                    ErrorCode::NameTaken,
                    format!("{name} belongs to another key"),
                ),
                Err(_) => store_failed(),
            },
            Request::ListPeers { after } => {
                let (peers, next) = self.registrar.page(after).await;
                Outcome::Peers { peers, next }
            }
            Request::Lookup { name } => match self.registrar.lookup(name.clone()).await {
                Some(peer) => Outcome::Peer { peer },
                None => Outcome::error(ErrorCode::UnknownPeer, format!("{name} is not registered")),
            },
            Request::Ping => Outcome::Ok,
            Request::ChatRequest { .. }
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
