//! The peer's side of the registry protocol: register, leave, release, list, look up.
//!
//! Each call is one request on a fresh connection. The first registration is signed with our
//! key and opens a registry session (`p2p_shared::registry_session`); every later request but
//! `release` (always signed) goes in that session, with no public-key operation on either
//! side, until the registry no longer knows the session (it restarted, or our registration
//! lapsed), when we go back to signing and register anew.
//!
//! `--server` may name several instances of one registry (`a,b,c`: one namespace shared
//! through a store such as etcd, and one key). Requests go to one instance; on a timeout, no
//! connection, a refusal of the `unavailable` or `busy` kind or a reply under another key,
//! the next instance is tried, each at most once per request. A registry session is agreed
//! with one instance, so moving on ends it and the next registration opens one there.
//!
//! Every reply must come from the registry's key: the one given with `--server-key`, or else
//! the one pinned for the `--server` the user gave (as typed, not as resolved: a registry
//! met at a new address is not trusted silently) on the first successful reply, in
//! `known_registries-NAME`, like SSH's `known_hosts`, written by the disk thread. A refusal never
//! pins a key. A signed reply proves its key by its signature, one in the session by the
//! session, which was agreed with that key. A reply with another key is refused, so an
//! impostor cannot answer for the registry. Replies of the wrong kind are errors, and paging
//! is bounded, so a broken or hostile registry cannot keep the peer listing forever. The key
//! trusted is shared with the connection tasks ([`TrustedRegistry`]), which ask the registry
//! about requesters (`vouch.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use p2p_shared::handshake::registry::RegistryInitiator;
use p2p_shared::identity::{NoiseKey, PublicKey};
use p2p_shared::registry_session::PeerSession;
use p2p_shared::transport::{self, Origin, Reply, SendError};
use p2p_shared::wire::new_id;
use p2p_shared::{runtime, ErrorCode, MessageId, Outcome, PeerInfo, PeerName, RegistryRequest};

use crate::disk::Disk;
use crate::known::{KnownKeys, Pin};
use crate::vouch::TrustedRegistry;

mod failover;
mod listing;

pub use listing::{Listing, MAX_LISTED};

/// What a registry `lookup` found.
pub enum Found {
    /// Registered now; with its Noise static key when the registry had its identity's
    /// signature over one (checked here, so the registry cannot make one up).
    Online(PeerInfo, Option<NoiseKey>),
    /// Claimed by this key, not registered now.
    Offline(PublicKey),
}

impl Found {
    /// The key the name means.
    pub fn key(&self) -> PublicKey {
        match self {
            Found::Online(peer, _) => peer.key,
            Found::Offline(key) => *key,
        }
    }
}

/// The most instances `--server` may name.
pub const MAX_INSTANCES: usize = 16;

pub struct RegistryClient {
    /// The instances of the registry (`--server a,b,c`), at least one.
    instances: Vec<SocketAddr>,
    /// The one asked now.
    current: usize,
    /// `--server` as the user gave it: what the registry's key is pinned under.
    label: String,
    origin: Origin,
    /// `--server-key`: when given, the only key accepted.
    fixed: Option<PublicKey>,
    known: KnownKeys<String>,
    disk: Disk,
    /// Our registry session, from the last registration that opened one.
    session: Option<PeerSession>,

    trusted: TrustedRegistry,
}

impl RegistryClient {
    /// The client of the registry the user named `label` (`--server`), whose instances are
    /// at `instances` (at least one).
    pub fn new(
        (label, instances): (String, Vec<SocketAddr>),
        origin: Origin,
        fixed: Option<PublicKey>,
        mut known: KnownKeys<String>,
        disk: Disk,
    ) -> Self {
        // Before protocol version 5 pins were kept under the resolved address: carry such a
        // pin over to the name the user gives, once.
        let resolved = instances
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        if let (None, Some(old)) = (known.get(&label), known.get(&resolved)) {
            disk.write(known.pin(&label, old));
        }
        let trusted = TrustedRegistry::new(fixed.or_else(|| known.get(&label)));
        RegistryClient {
            instances,
            current: 0,
            label,
            origin,
            fixed,
            known,
            disk,
            session: None,

            trusted,
        }
    }

    /// The registry key we trust, shared with whoever asks the registry about requesters.
    pub fn trusted(&self) -> TrustedRegistry {
        self.trusted.clone()
    }

    /// Whether `--server-key` was given: it alone says which key the registry has.
    pub fn key_given(&self) -> bool {
        self.fixed.is_some()
    }

    /// The instance asked now.
    pub fn addr(&self) -> SocketAddr {
        self.instances[self.current]
    }

    /// How error messages name the registry.
    pub fn describe(&self) -> String {
        format!("the registry at {}", self.addr())
    }

    async fn register_here(&mut self) -> Result<(SocketAddr, Duration), SendError> {
        let renewed = match self
            .in_session(RegistryRequest::Register {
                pattern: None,
                handshake: None,
            })
            .await
        {
            Some(outcome) => outcome?,
            None => self.register_signed().await?,
        };
        match renewed {
            Outcome::Registered { addr, ttl_ms, .. } => Ok((addr, Duration::from_millis(ttl_ms))),
            other => Err(self.unexpected(other)),
        }
    }

    /// Registers with a signed request that opens a new registry session: message 1 of a
    /// Noise handshake, IK to the registry's static key if a session proved it before.
    async fn register_signed(&mut self) -> Result<Outcome, SendError> {
        let id = new_id();
        let pinned = self.known.noise(&self.label);
        let me = &self.origin.identity;
        let (initiator, pattern, first) = RegistryInitiator::start(me, id, pinned.as_ref());
        let body = RegistryRequest::Register {
            pattern: Some(pattern),
            handshake: Some(first),
        };
        let reply = self.signed(id, body).await?;
        if let Outcome::Registered {
            handshake: Some(second),
            ..
        } = &reply.outcome
        {
            // Without a session (a handshake that does not finish) every request is signed:
            // slower, as safe.
            self.session = match initiator.finish(second, &reply.key) {
                Ok((keys, static_key)) => {
                    if let Some(write) = self.known.pin_noise(&self.label, static_key) {
                        self.disk.write(write);
                    }
                    Some(PeerSession::new(self.origin.name, reply.key, keys))
                }
                Err(why) => {
                    tracing::warn!("no registry session: {why}");
                    None
                }
            };
        }
        Ok(reply.outcome)
    }

    pub async fn unregister(&mut self) -> Result<(), SendError> {
        self.expect_ok(RegistryRequest::Unregister).await?;
        // The registry ends the session with the registration.
        self.session = None;
        Ok(())
    }

    /// Gives up our name for good. Always signed: the registry takes no release in a session.
    pub async fn release(&mut self) -> Result<(), SendError> {
        match self
            .signed(new_id(), RegistryRequest::Release)
            .await?
            .outcome
        {
            Outcome::Ok => {
                // The registry ends the session with the registration.
                self.session = None;
                Ok(())
            }
            other => Err(self.unexpected(other)),
        }
    }

    /// Whether the registry answers, within a short time (for `status`).
    pub async fn ping(&mut self) -> Result<(), SendError> {
        let quick = std::time::Duration::from_secs(2);
        match runtime::timeout(quick, self.expect_ok(RegistryRequest::Ping)).await {
            Ok(result) => result,
            // Whether the ping was written is not known here: said to be, the cautious
            // answer (a ping changes nothing either way).
            Err(_) => Err(SendError::Timeout {
                addr: self.addr(),
                written: true,
            }),
        }
    }

    /// The key the registry answers with now, if it answers within a short time and it is
    /// not the key trusted for it (`--server-key` or the pin): what `status` reports, since
    /// such a registry is there but not trusted, which is not the same as unreachable.
    pub async fn other_key(&self) -> Option<PublicKey> {
        let trusted = self.fixed.or_else(|| self.known.get(&self.label))?;
        let quick = std::time::Duration::from_secs(2);
        let asked = transport::request(self.addr(), &self.origin, new_id(), RegistryRequest::Ping);
        let key = match runtime::timeout(quick, asked).await {
            Ok(Ok(reply)) => reply.key,
            Ok(Err(SendError::Refused { key, .. })) => key,
            _ => return None,
        };
        (key != trusted).then_some(key)
    }

    /// `trust registry FINGERPRINT`: asks the registry who it is and pins its key under
    /// `--server` if it has that fingerprint, replacing the key pinned before. Returns how
    /// the registry is named and the key now trusted.
    pub async fn trust(&mut self, fingerprint: &str) -> Result<(String, PublicKey), String> {
        if self.fixed.is_some() {
            return Err("--server-key was given: it alone says which key the registry has".into());
        }
        let asked = transport::request(self.addr(), &self.origin, new_id(), RegistryRequest::Ping);
        let key = match asked.await {
            Ok(reply) => reply.key,
            Err(e) => return Err(format!("cannot ask {} for its key: {e}", self.label)),
        };
        if key.fingerprint() != fingerprint {
            return Err(format!(
                "the registry {} signs with key {}, not {fingerprint}: not trusted",
                self.label,
                key.fingerprint()
            ));
        }
        self.disk.write(self.known.pin(&self.label, key));
        self.trusted.set(key);
        // A session agreed with another key is not this registry's.
        self.session = None;
        Ok((self.label.clone(), key))
    }

    /// Where `name` is now, or, while its owner is offline, which key it means.
    pub async fn lookup(&mut self, name: &PeerName) -> Result<Found, SendError> {
        match self.ask(RegistryRequest::Lookup { name: *name }).await? {
            Outcome::Peer { peer, noise } if peer.name == *name => {
                let noise = noise.and_then(|proof| proof.static_of(&peer.key));
                Ok(Found::Online(peer, noise))
            }
            Outcome::Claimed { name: claimed, key } if claimed == *name => Ok(Found::Offline(key)),
            other => Err(self.unexpected(other)),
        }
    }

    async fn expect_ok(&mut self, body: RegistryRequest) -> Result<(), SendError> {
        match self.ask(body).await? {
            Outcome::Ok => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    async fn ask_here(&mut self, body: RegistryRequest) -> Result<Outcome, SendError> {
        match self.in_session(body.clone()).await {
            Some(outcome) => outcome,
            None => Ok(self.signed(new_id(), body).await?.outcome),
        }
    }

    /// One request in our session; `None` if we have none, or the registry no longer
    /// knows it (which ends it here too).
    async fn in_session(&mut self, body: RegistryRequest) -> Option<Result<Outcome, SendError>> {
        let registering = matches!(body, RegistryRequest::Register { .. });
        let session = self.session.as_mut()?;
        let sent = transport::request_in_session(
            self.instances[self.current],
            session,
            &self.origin,
            new_id(),
            body,
        )
        .await;
        match self.checked(sent) {
            // The registry forgot the session: it restarted, and forgot our registration with
            // it. Registered again at once (not at the next renewal), so that what we ask next
            // (a listing, say) already counts us.
            Err(SendError::Refused {
                code: ErrorCode::UnknownSession,
                ..
            }) => {
                self.session = None;
                if !registering {
                    if let Err(e) = self.register_signed().await {
                        tracing::warn!("could not register again: {e}");
                    }
                }
                None
            }
            result => Some(result.map(|reply| reply.outcome)),
        }
    }

    /// One signed request.
    async fn signed(&mut self, id: MessageId, body: RegistryRequest) -> Result<Reply, SendError> {
        let sent = transport::request(self.addr(), &self.origin, id, body);
        self.checked(sent.await)
    }

    /// A reply, success or refusal, counts only if it carries the registry's key.
    fn checked(&mut self, result: Result<Reply, SendError>) -> Result<Reply, SendError> {
        match result {
            Ok(reply) => {
                self.check_key(reply.key, true)?;
                Ok(reply)
            }
            Err(refused @ SendError::Refused { key, .. }) => {
                // Anyone can make a refusal look like the registry's at a first contact: it
                // is checked against a key we have, and pins none.
                self.check_key(key, false)?;
                Err(refused)
            }
            Err(e) => Err(e),
        }
    }

    fn check_key(&mut self, key: PublicKey, may_pin: bool) -> Result<(), SendError> {
        let addr = self.addr();
        let refuse = |reason: String| SendError::BadReply { addr, reason };
        if let Some(fixed) = self.fixed {
            return match key == fixed {
                true => Ok(()),
                false => Err(refuse(format!(
                    "it signs with key {}, not with the --server-key {}: an impostor? refused",
                    key.fingerprint(),
                    fixed.fingerprint()
                ))),
            };
        }
        match self.known.check(&self.label, &key) {
            Pin::Known => Ok(()),
            Pin::New if may_pin => {
                self.disk.write(self.known.pin(&self.label, key));
                self.trusted.set(key);
                Ok(())
            }
            Pin::New => Ok(()),
            Pin::Changed { pinned } => Err(refuse(format!(
                "it signs with key {}, but the registry known as {} has key {}: an impostor? \
                 refused. If the registry really has a new key, check its fingerprint with its \
                 operator and type: trust registry {}",
                key.fingerprint(),
                self.label,
                pinned.fingerprint(),
                key.fingerprint()
            ))),
        }
    }

    fn unexpected(&self, outcome: Outcome) -> SendError {
        SendError::BadReply {
            addr: self.addr(),
            reason: format!("unexpected answer {outcome:?}"),
        }
    }
}
