//! The store interface: where the registry keeps its claims and registrations, as the
//! service sees it.
//!
//! Two backends answer the same questions:
//!
//! - [`Backend::Embedded`], the default: registrations in memory and claims in SQLite, owned
//!   by the broker task (`broker.rs`), written by the claims thread (`store.rs`); nothing to
//!   install or start;
//! - [`Backend::Etcd`]: everything in etcd, shared by every instance on it (`etcd.rs`).
//!
//! An enum rather than a trait object: two backends, known at build time, and async methods
//! without boxing. Each arm only forwards; the rules stay with each backend.

use std::net::SocketAddr;

use p2p_shared::handshake::StaticProof;
use p2p_shared::identity::PublicKey;
use p2p_shared::registry_session::RegistrySession;
use p2p_shared::wire::frame::RegistryRequestHeader as Header;
use p2p_shared::{Outcome, PeerInfo, PeerName};

use crate::broker::{Accepted, Registrar};
use crate::etcd::Etcd;
use crate::pages::EncodedPage;
use crate::registry::{Lookup, Registration, Removal};
use crate::store::{Statics, StoreError};

#[derive(Clone)]
pub enum Backend {
    Embedded {
        registrar: Registrar,
        statics: Statics,
    },
    Etcd(Etcd),
}

impl Backend {
    pub async fn register(
        &self,
        name: PeerName,
        addr: SocketAddr,
        key: PublicKey,
        session: Option<RegistrySession>,
    ) -> Result<Registration, StoreError> {
        match self {
            Backend::Embedded { registrar, .. } => {
                registrar.register(name, addr, key, session).await
            }
            Backend::Etcd(etcd) => etcd.register(name, addr, key, session).await,
        }
    }

    pub async fn accept(&self, header: Header, frame: Vec<u8>) -> Option<Accepted> {
        match self {
            Backend::Embedded { registrar, .. } => registrar.accept(header, frame).await,
            Backend::Etcd(etcd) => etcd.accept(header, frame),
        }
    }

    pub async fn unregister(&self, name: PeerName, key: PublicKey) -> Result<Removal, StoreError> {
        match self {
            Backend::Embedded { registrar, .. } => Ok(registrar.unregister(name, key).await),
            Backend::Etcd(etcd) => etcd.unregister(name, key).await,
        }
    }

    pub async fn release(&self, name: PeerName, key: PublicKey) -> Result<Removal, StoreError> {
        match self {
            Backend::Embedded { registrar, .. } => registrar.release(name, key).await,
            Backend::Etcd(etcd) => etcd.release(name, key).await,
        }
    }

    pub async fn lookup(&self, name: PeerName) -> Result<Lookup, StoreError> {
        match self {
            Backend::Embedded { registrar, .. } => Ok(registrar.lookup(name).await),
            Backend::Etcd(etcd) => etcd.lookup(name).await,
        }
    }

    pub async fn page(
        &self,
        after: Option<PeerName>,
    ) -> Result<(Vec<PeerInfo>, Option<PeerName>), StoreError> {
        match self {
            Backend::Embedded { registrar, .. } => Ok(registrar.page(after).await),
            Backend::Etcd(etcd) => etcd.page(after).await,
        }
    }

    /// The page as the JSON of its outcome. The embedded backend keeps it encoded until its
    /// list changes; etcd's list changes through other instances too, so it is encoded each
    /// time.
    pub async fn encoded_page(&self, after: Option<PeerName>) -> Result<EncodedPage, StoreError> {
        match self {
            Backend::Embedded { registrar, .. } => Ok(registrar.encoded_page(after).await),
            Backend::Etcd(etcd) => {
                let (peers, next) = etcd.page(after).await?;
                let encoded = serde_json::value::to_raw_value(&Outcome::Peers { peers, next })
                    .expect("pages always serialize");
                Ok(encoded.into())
            }
        }
    }

    /// Remembers `key`'s static proof, without waiting.
    pub fn remember(&self, key: PublicKey, proof: StaticProof) {
        match self {
            Backend::Embedded { statics, .. } => statics.remember(key, proof),
            Backend::Etcd(etcd) => etcd.remember(key, proof),
        }
    }

    pub async fn static_of(&self, key: PublicKey) -> Option<StaticProof> {
        match self {
            Backend::Embedded { statics, .. } => statics.of(key).await,
            Backend::Etcd(etcd) => etcd.static_of(key).await,
        }
    }
}
