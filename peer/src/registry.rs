//! The peer's side of the registry protocol: register, leave, list, look up.
//!
//! Each call is one request on a fresh connection. Replies of the wrong kind are errors, and
//! paging is bounded, so a broken or hostile registry cannot keep the peer listing forever.

use std::net::SocketAddr;

use p2p_shared::message::new_id;
use p2p_shared::transport::{self, Origin, SendError};
use p2p_shared::{Outcome, PeerInfo, PeerName, Request};

/// The most pages `listpeer` fetches (256 peers each).
const MAX_PAGES: usize = 1024;

pub struct RegistryClient {
    addr: SocketAddr,
    origin: Origin,
}

impl RegistryClient {
    pub fn new(addr: SocketAddr, origin: Origin) -> Self {
        RegistryClient { addr, origin }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the registry answers, within a short time (for `status`).
    pub async fn ping(&self) -> Result<(), SendError> {
        let quick = std::time::Duration::from_secs(2);
        match p2p_shared::runtime::timeout(quick, self.ask(Request::Ping)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SendError::Timeout { addr: self.addr }),
        }
    }

    /// How error messages name the registry.
    pub fn describe(&self) -> String {
        format!("the registry at {}", self.addr)
    }

    /// Registers us; returns the address the registry recorded.
    pub async fn register(&self) -> Result<SocketAddr, SendError> {
        match self.ask(Request::Register).await? {
            Outcome::Registered { addr } => Ok(addr),
            other => Err(self.unexpected(other)),
        }
    }

    pub async fn unregister(&self) -> Result<(), SendError> {
        match self.ask(Request::Unregister).await? {
            Outcome::Ok => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    pub async fn lookup(&self, name: &PeerName) -> Result<PeerInfo, SendError> {
        match self.ask(Request::Lookup { name: name.clone() }).await? {
            Outcome::Peer { peer } if peer.name == *name => Ok(peer),
            other => Err(self.unexpected(other)),
        }
    }

    /// Every registered peer, sorted by name, fetched page by page.
    pub async fn list(&self) -> Result<Vec<PeerInfo>, SendError> {
        let mut all: Vec<PeerInfo> = Vec::new();
        let mut after: Option<PeerName> = None;
        for _ in 0..MAX_PAGES {
            let (peers, next) = match self
                .ask(Request::ListPeers {
                    after: after.clone(),
                })
                .await?
            {
                Outcome::Peers { peers, next } => (peers, next),
                other => return Err(self.unexpected(other)),
            };
            all.extend(peers);
            // Pages must move forward, or a broken registry could loop us forever.
            match next {
                Some(next) if after.as_ref().is_none_or(|a| next > *a) => after = Some(next),
                _ => break,
            }
        }
        Ok(all)
    }

    async fn ask(&self, body: Request) -> Result<Outcome, SendError> {
        Ok(transport::request(self.addr, &self.origin, new_id(), body)
            .await?
            .outcome)
    }

    fn unexpected(&self, outcome: Outcome) -> SendError {
        SendError::BadReply {
            addr: self.addr,
            reason: format!("unexpected answer {outcome:?}"),
        }
    }
}
