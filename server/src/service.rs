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
//!   reply, and neither side does any public-key operation. Everything but two requests: a
//!   `register` with a new key share (a session is opened by a signed exchange only) and
//!   `release` (giving a name up for good takes the name's own key).
//!
//! A `lookup` of a peer online carries its static proof, which its registration's handshake
//! gave (`store.rs` keeps the proofs on disk).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use chrono::Utc;

use p2p_shared::handshake::{registry, HandshakeError, HandshakeMessage, Pattern, StaticProof};
use p2p_shared::identity::PublicKey;
use p2p_shared::registry_session::RegistrySession;
use p2p_shared::replay::check_skew;
use p2p_shared::transport::{Origin, Refusal, SealedRefusal, Service};
use p2p_shared::wire::frame::RegistryRequestHeader as Header;
use p2p_shared::wire::{new_id, EncodedReply};
use p2p_shared::{Envelope, ErrorCode, MessageId, Outcome, RegistryRequest, ReplyBody};

use crate::backend::Backend;
use crate::log::Log;
use crate::registry::{Lookup, Registration, Removal};
use crate::store::StoreError;

#[derive(Clone)]
pub struct RegistryService {
    /// Where the claims and registrations are (`backend.rs`).
    backend: Backend,
    /// Who the registry is: its key goes into every session's agreement.
    origin: Origin,
    /// How long a registration lasts unless renewed; told to every registering peer.
    ttl: Duration,
    log: Log,
}

impl RegistryService {
    pub fn new(backend: Backend, origin: Origin, ttl: Duration, log: Log) -> Self {
        RegistryService {
            backend,
            origin,
            ttl,
            log,
        }
    }

    /// A new registry session with the peer whose signed `register` (message `register`, by
    /// `peer`) carried message 1 of a handshake: message 2 for the reply, the session, and
    /// the peer's static proof for `lookup`s.
    fn open_session(
        &self,
        register: MessageId,
        peer: &PublicKey,
        (pattern, first): (Pattern, &HandshakeMessage),
    ) -> Result<(HandshakeMessage, RegistrySession, StaticProof), HandshakeError> {
        let me = &self.origin.identity;
        let responded = registry::respond(me, register, pattern, first, peer)?;
        let session = RegistrySession::new(responded.keys);
        Ok((responded.reply, session, responded.proof))
    }
}

/// About how long an envelope is around its outcome (id, sender, time, the reply's id), and
/// a small outcome with it: room to encode a reply without growing its buffer.
const ENVELOPE_LEN: usize = 512;

/// The refusal for a request the store could not answer: `unavailable` when it cannot be
/// reached at all (another instance of the registry may be able to), `busy` otherwise.
fn store_failed(e: &StoreError) -> Outcome {
    match e.is_unavailable() {
        true => Outcome::error(
            ErrorCode::Unavailable,
            "the registry cannot reach its store; try again later or another instance",
        ),
        false => Outcome::error(
            ErrorCode::Busy,
            "the registry cannot write its store; try again later",
        ),
    }
}

impl Service for RegistryService {
    type Request = RegistryRequest;

    fn needs_signature(&self, request: &RegistryRequest) -> bool {
        matches!(
            request,
            RegistryRequest::Register { .. }
                | RegistryRequest::Unregister
                | RegistryRequest::Release
        )
    }

    async fn handle_sealed(
        &self,
        frame: Vec<u8>,
        remote: SocketAddr,
    ) -> Result<Vec<u8>, SealedRefusal> {
        let header = Header::parse(&frame).ok_or(Refusal::UnknownSession)?;
        let name = header.name;
        // A request that opens in no session is refused naming no id (it is sealed), and
        // its signed refusal names its frame by digest all the same.
        let (key, json, replier) = self
            .backend
            .accept(header, frame)
            .await
            .ok_or(Refusal::UnknownSession)?;
        let request = Envelope::<RegistryRequest>::decode_request(&json).map_err(Refusal::from)?;
        let refuse = |why| SealedRefusal {
            re: Some(request.id),
            why,
        };
        // The session speaks for one name and key, and the address and time rules of signed
        // requests hold here too: the counter refuses a replay, the time a request held back
        // on the way and delivered long after.
        if request.from.name != name || request.from.key != key {
            return Err(refuse(Refusal::WrongSender));
        }
        if request.from.addr.ip() != remote.ip() {
            return Err(refuse(Refusal::AddressMismatch {
                claimed: request.from.addr,
                seen: remote,
            }));
        }
        check_skew(request.at, Utc::now()).map_err(|stale| refuse(stale.into()))?;
        let re = Some(request.id);
        let from = self.origin.sender(Ipv4Addr::UNSPECIFIED.into());
        let result = match request.body {
            // Listing is most of a registered peer's traffic, and its page is the same for
            // everyone until the list changes: the broker keeps it encoded, and it is copied
            // once, straight into the reply frame (a page is up to 64 KB).
            RegistryRequest::ListPeers { after } => {
                let page = match self.backend.encoded_page(after).await {
                    Ok(page) => page,
                    Err(e) => {
                        let reply = ReplyBody::new(re, store_failed(&e));
                        let reply = Envelope::new(new_id(), from, reply);
                        return Ok(replier.reply_with(ENVELOPE_LEN, |f| reply.encode_into(f)));
                    }
                };
                let result = &page;
                let reply = Envelope::new(new_id(), from, EncodedReply { re, result });
                let envelope_len = page.get().len() + ENVELOPE_LEN;
                return Ok(replier.reply_with(envelope_len, |frame| reply.encode_into(frame)));
            }
            // A session is agreed by one signed exchange and opens no other: a new session's
            // shares must be signed too. Giving a name up for good must be signed as well: a
            // session key leaked from memory must not cost its owner the name.
            RegistryRequest::Register {
                handshake: Some(_), ..
            }
            | RegistryRequest::Release => Outcome::error(
                ErrorCode::InvalidRequest,
                "this request must be signed, not sent in a registry session",
            ),
            _ => self.handle(request, remote, remote).await,
        };
        let reply = Envelope::new(new_id(), from, ReplyBody::new(re, result));
        Ok(replier.reply_with(ENVELOPE_LEN, |frame| reply.encode_into(frame)))
    }

    async fn handle(
        &self,
        request: Envelope<RegistryRequest>,
        _remote: SocketAddr,
        _local: SocketAddr,
    ) -> Outcome {
        let from = request.from;
        let (name, key) = (from.name, from.key);
        match request.body {
            RegistryRequest::Register { pattern, handshake } => {
                let (handshake, session, proof) = match (pattern, handshake) {
                    (None, None) => (None, None, None),
                    (Some(pattern), Some(first)) => {
                        match self.open_session(request.id, &key, (pattern, &first)) {
                            Ok((second, session, proof)) => {
                                (Some(second), Some(session), Some(proof))
                            }
                            Err(why) => {
                                let why = format!("no registry session: {why}");
                                return Outcome::error(ErrorCode::InvalidRequest, why);
                            }
                        }
                    }
                    _ => {
                        return Outcome::error(
                            ErrorCode::InvalidRequest,
                            "a registry session needs both a pattern and a handshake",
                        )
                    }
                };
                match self.backend.register(name, from.addr, key, session).await {
                    Ok(Registration::Added | Registration::Refreshed) => {
                        if let Some(proof) = proof {
                            self.backend.remember(key, proof);
                        }
                        Outcome::Registered {
                            addr: from.addr,
                            key,
                            ttl_ms: self.ttl.as_millis().try_into().unwrap_or(u64::MAX),
                            handshake,
                        }
                    }
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
                        "too many new names were claimed from this address or its network in the \
                         last hour",
                    ),
                    Ok(Registration::TooManyForKey) => Outcome::error(
                        ErrorCode::RegistryFull,
                        "this key holds as many names as one key may; release one first",
                    ),
                    Err(e) => store_failed(&e),
                }
            }
            RegistryRequest::Unregister => match self.backend.unregister(name, key).await {
                Ok(Removal::Done) => Outcome::Ok,
                Ok(Removal::Unknown) => Outcome::error(
                    ErrorCode::NotRegistered,
                    format!("{name} is not registered"),
                ),
                Ok(Removal::NotOwner) => Outcome::error(
                    ErrorCode::NameTaken,
                    format!("{name} belongs to another key"),
                ),
                Err(e) => store_failed(&e),
            },
            RegistryRequest::Release => match self.backend.release(name, key).await {
                Ok(Removal::Done) => Outcome::Ok,
                Ok(Removal::Unknown) => {
                    Outcome::error(ErrorCode::NotRegistered, format!("nobody holds {name}"))
                }
                Ok(Removal::NotOwner) => Outcome::error(
                    ErrorCode::NameTaken,
                    format!("{name} belongs to another key"),
                ),
                Err(e) => store_failed(&e),
            },
            RegistryRequest::ListPeers { after } => match self.backend.page(after).await {
                Ok((peers, next)) => Outcome::Peers { peers, next },
                Err(e) => store_failed(&e),
            },
            RegistryRequest::Lookup { name } => match self.backend.lookup(name).await {
                Ok(Lookup::Online(peer)) => {
                    let noise = self.backend.static_of(peer.key).await.map(Box::new);
                    Outcome::Peer { peer, noise }
                }
                Ok(Lookup::Offline(key)) => Outcome::Claimed { name, key },
                Ok(Lookup::Unknown) => {
                    Outcome::error(ErrorCode::UnknownPeer, format!("{name} is not registered"))
                }
                Err(e) => store_failed(&e),
            },
            RegistryRequest::Ping => Outcome::Ok,
        }
    }

    fn refused(&self, remote: SocketAddr, why: &Refusal) {
        // The kind, not the text: the text may quote the sender's bytes.
        self.log.refused(remote, why.kind());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Duration as Span};
    use p2p_shared::identity::Identity;
    use p2p_shared::registry_session::{self, PeerSession};
    use p2p_shared::{runtime, PeerInfo, PeerName};

    use super::*;
    use crate::claims::Claims;
    use crate::registry::Registry;
    use crate::store::{ClaimStore, StoreThread};

    const TTL: Duration = Duration::from_secs(60);

    /// A registry with alice registered in a session, and alice's side of it.
    struct Fixture {
        service: RegistryService,
        alice: PeerSession,
        key: PublicKey,
    }

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    fn alice_addr() -> SocketAddr {
        "127.0.0.1:40001".parse().unwrap()
    }

    async fn fixture() -> Fixture {
        let limits = crate::registry::NameLimits {
            per_address: 8,
            per_prefix: 1_000,
            per_key: 1_000,
        };
        let capacity = crate::registry::CAPACITY;
        let now = std::time::Instant::now();
        let registry = Registry::new(Claims::default(), TTL, limits, capacity, now);
        let (written_tx, written) = async_channel::unbounded();
        let store = StoreThread::start(ClaimStore::in_memory().unwrap(), written_tx).unwrap();
        let log = Log::channel().0;
        let clock = p2p_shared::clock::Clock::System;
        let statics = store.statics();
        let (registrar, _) =
            crate::broker::Registrar::start(registry, store, written, log.clone(), clock);
        let origin = Origin {
            name: name("registry"),
            ip: Ipv4Addr::UNSPECIFIED.into(),
            port: 4000,
            identity: Arc::new(Identity::generate()),
        };
        let backend = Backend::Embedded {
            registrar: registrar.clone(),
            statics,
        };
        let service = RegistryService::new(backend, origin, TTL, log);
        let key = Identity::generate().public();
        let (alice, session) = registry_session::pair(name("alice"));
        let added = registrar.register(name("alice"), alice_addr(), key, Some(session));
        assert_eq!(added.await.unwrap(), Registration::Added);
        Fixture {
            service,
            alice,
            key,
        }
    }

    impl Fixture {
        fn sender(&self, name_: &str, addr: SocketAddr) -> PeerInfo {
            PeerInfo {
                name: name(name_),
                addr,
                key: self.key,
            }
        }

        /// Sends `body` in alice's session as `from`, sent `at`: the outcome, or the refusal
        /// and whether it named the request.
        async fn ask(
            &mut self,
            from: PeerInfo,
            at: DateTime<Utc>,
            body: RegistryRequest,
        ) -> Result<Outcome, (Refusal, bool)> {
            let mut request = Envelope::new(new_id(), from, body);
            request.at = at;
            let (counter, frame) = self.alice.request(&request.encode());
            let remote = "127.0.0.1:50000".parse().unwrap();
            match self.service.handle_sealed(frame, remote).await {
                Ok(reply) => {
                    let json = self
                        .alice
                        .reply(counter, &reply)
                        .expect("a reply in the session");
                    let reply = Envelope::<ReplyBody>::decode(&json).unwrap();
                    assert_eq!(reply.body.re, Some(request.id));
                    Ok(reply.body.result)
                }
                Err(refused) => Err((refused.why, refused.re == Some(request.id))),
            }
        }

        async fn ask_now(&mut self, body: RegistryRequest) -> Result<Outcome, (Refusal, bool)> {
            let alice = self.sender("alice", alice_addr());
            self.ask(alice, Utc::now(), body).await
        }
    }

    fn code(outcome: Result<Outcome, (Refusal, bool)>) -> Option<ErrorCode> {
        match outcome {
            Ok(Outcome::Error { code, .. }) => Some(code),
            _ => None,
        }
    }

    #[test]
    fn a_request_in_a_session_is_answered_in_it() {
        runtime::block_on(async {
            let mut f = fixture().await;
            let listed = f.ask_now(RegistryRequest::ListPeers { after: None }).await;
            assert!(
                matches!(&listed, Ok(Outcome::Peers { peers, .. }) if peers.len() == 1),
                "{listed:?}"
            );
            let renew = RegistryRequest::Register {
                pattern: None,
                handshake: None,
            };
            let renewed = f.ask_now(renew).await;
            assert!(matches!(
                renewed,
                Ok(Outcome::Registered {
                    handshake: None,
                    ..
                })
            ));
        });
    }

    #[test]
    fn a_session_speaks_only_for_its_own_name_and_key() {
        runtime::block_on(async {
            let mut f = fixture().await;
            let as_bob = f.sender("bob", alice_addr());
            let refused = f.ask(as_bob, Utc::now(), RegistryRequest::Unregister).await;
            assert!(matches!(refused, Err((Refusal::WrongSender, true))));
            let mut other_key = f.sender("alice", alice_addr());
            other_key.key = Identity::generate().public();
            let refused = f
                .ask(other_key, Utc::now(), RegistryRequest::Unregister)
                .await;
            assert!(matches!(refused, Err((Refusal::WrongSender, true))));
            // Another host, and a request held back ten minutes, are refused too.
            let elsewhere = f.sender("alice", "127.0.0.2:40001".parse().unwrap());
            let refused = f
                .ask(elsewhere, Utc::now(), RegistryRequest::Unregister)
                .await;
            assert!(matches!(
                refused,
                Err((Refusal::AddressMismatch { .. }, true))
            ));
            let late = Utc::now() - Span::minutes(10);
            let alice = f.sender("alice", alice_addr());
            let refused = f.ask(alice, late, RegistryRequest::Unregister).await;
            assert!(matches!(refused, Err((Refusal::Stale(_), true))));
            // None of them did anything.
            assert!(f
                .ask_now(RegistryRequest::Lookup {
                    name: name("alice")
                })
                .await
                .is_ok());
        });
    }

    #[test]
    fn new_handshakes_and_releases_must_be_signed() {
        runtime::block_on(async {
            let mut f = fixture().await;
            let me = p2p_shared::identity::Identity::generate();
            let (_, pattern, first) = registry::RegistryInitiator::start(&me, new_id(), None);
            let rekey = RegistryRequest::Register {
                pattern: Some(pattern),
                handshake: Some(first),
            };
            let rekey = f.ask_now(rekey).await;
            assert_eq!(code(rekey), Some(ErrorCode::InvalidRequest));
            let release = f.ask_now(RegistryRequest::Release).await;
            assert_eq!(code(release), Some(ErrorCode::InvalidRequest));
            // The session and the registration are as they were.
            let listed = f.ask_now(RegistryRequest::ListPeers { after: None }).await;
            assert!(matches!(&listed, Ok(Outcome::Peers { peers, .. }) if peers.len() == 1));
        });
    }
}
