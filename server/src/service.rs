//! What the registry answers to each request.
//!
//! This is the [`Service`] that the shared transport calls for every well-formed request.
//! Requests come two ways:
//!
//! - Signed. Requests that change a name (register, unregister, release) must be signed by
//!   the key that owns it, and the transport checks that before they get here; reads (list,
//!   lookup, ping) are open to anyone and skip that public-key operation. The transport signs
//!   every reply with the registry's key, so a peer can tell the registry it pinned from an
//!   impostor. A signed `register` with a key share also opens a registry session.
//! - In a registry session (`handle_sealed`): the session's key proves the sender and the
//!   reply, and neither side does any public-key operation.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use p2p_shared::identity::PublicKey;
use p2p_shared::message::{new_id, EncodedReply};
use p2p_shared::registry_session::{Header, RegistrySession, Transcript};
use p2p_shared::seal::{EphemeralKey, KeyShare};
use p2p_shared::transport::{Origin, Refusal, Service};
use p2p_shared::{Envelope, ErrorCode, MessageId, Outcome, Reply, Request};

use crate::broker::Registrar;
use crate::output::say;
use crate::registry::{Registration, Removal};

#[derive(Clone)]
pub struct RegistryService {
    registrar: Registrar,
    /// Who the registry is: its key goes into every session's agreement.
    origin: Origin,
    /// How long a registration lasts unless renewed; told to every registering peer.
    ttl: Duration,
}

impl RegistryService {
    pub fn new(registrar: Registrar, origin: Origin, ttl: Duration) -> Self {
        RegistryService {
            registrar,
            origin,
            ttl,
        }
    }

    /// Our half of a new registry session with the peer whose `register` (message
    /// `register`) carried `share`: the registry's share for the reply, and the session.
    fn open_session(
        &self,
        register: MessageId,
        peer: &PublicKey,
        share: &EphemeralKey,
    ) -> Option<(EphemeralKey, RegistrySession)> {
        let ours = KeyShare::new();
        let public = ours.public();
        let registry = self.origin.identity.public();
        let transcript = Transcript {
            register,
            peer,
            registry: &registry,
            peer_share: share,
            registry_share: &public,
        };
        let session = RegistrySession::agree(ours, &transcript).ok()?;
        Some((public, session))
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
            Request::Register { .. } | Request::Unregister | Request::Release
        )
    }

    async fn handle_sealed(&self, frame: Vec<u8>, remote: SocketAddr) -> Result<Vec<u8>, Refusal> {
        let header = Header::parse(&frame).ok_or(Refusal::UnknownSession)?;
        let name = header.name.clone();
        let (frame, json, key, replier) = self
            .registrar
            .accept(header, frame)
            .await
            .ok_or(Refusal::UnknownSession)?;
        let request = Envelope::<Request>::decode(&frame[json])?;
        // The session speaks for one name and key, and the address rule of signed requests
        // holds here too.
        if request.from.name != name || request.from.key != key {
            return Err(Refusal::WrongSender);
        }
        if request.from.addr.ip() != remote.ip() {
            return Err(Refusal::AddressMismatch {
                claimed: request.from.addr,
                seen: remote,
            });
        }
        let re = Some(request.id);
        let from = self.origin.sender(Ipv4Addr::UNSPECIFIED.into());
        let reply = match request.body {
            // Listing is most of a registered peer's traffic, and its page is the same for
            // everyone until the list changes: the broker keeps it encoded.
            Request::ListPeers { after } => {
                let page = self.registrar.encoded_page(after).await;
                let result = &page;
                Envelope::new(new_id(), from, EncodedReply { re, result }).encode()
            }
            _ => {
                let result = self.handle(request, remote).await;
                Envelope::new(new_id(), from, Reply { re, result }).encode()
            }
        };
        Ok(replier.reply(&reply))
    }

    async fn handle(&self, request: Envelope<Request>, _remote: SocketAddr) -> Outcome {
        let from = request.from;
        let (name, key) = (from.name.clone(), from.key);
        match request.body {
            Request::Register { share } => {
                let (share, session) = match share {
                    None => (None, None),
                    Some(theirs) => match self.open_session(request.id, &key, &theirs) {
                        Some((ours, session)) => (Some(ours), Some(session)),
                        None => {
                            return Outcome::error(
                                ErrorCode::InvalidRequest,
                                "the key share is unusable",
                            )
                        }
                    },
                };
                match self
                    .registrar
                    .register(name.clone(), from.addr, key, session)
                    .await
                {
                    Ok(Registration::Added | Registration::Refreshed) => Outcome::Registered {
                        addr: from.addr,
                        key,
                        ttl_ms: self.ttl.as_millis().try_into().unwrap_or(u64::MAX),
                        share,
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
