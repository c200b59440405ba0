//! The commands of the network without a center: `join` reaches a peer by address and swaps
//! known peers with it, `peers` shows the book, `broadcast` sends to everyone, `block` and
//! `unblock` drop an origin, `nearby` lists the peers heard on the LAN, `graph` draws what
//! this peer knows, `forget` ends a chat with what was kept for it and its pin. The state they change is `state/book.rs`, `state/exchange.rs`,
//! `state/flood.rs` and `state/broadcasts.rs`; this is the I/O around them.

use p2p_shared::{runtime, transport};

use crate::command_loop::CommandLoop;
use crate::error::PeerError;
use crate::event::{BookEntry, Event, NearbyEntry};
use crate::flood;
use crate::graph::{self, EdgeKind, Sighting};
use crate::peer_exchange;
use p2p_shared::identity::PublicKey;
use p2p_shared::PeerName;

impl CommandLoop {
    /// `join HOST PORT`: an exchange with the peer there.
    pub(crate) async fn join(&mut self, host: String, port: u16) {
        let addr = match runtime::resolve(&host, port).await {
            Ok(addr) => addr,
            Err(e) => {
                let why = e.to_string();
                return self.error(PeerError::UnknownHost { host, why }).await;
            }
        };
        match peer_exchange::exchange(&self.broker, &self.origin, addr, None).await {
            Ok(event) => self.show(event).await,
            Err(e) => self.error(e).await,
        }
    }

    /// `peers`: the book. A name is verified if a pin vouches for its key, or the registry
    /// we trust lists that name with that key ([`CommandLoop::listed`]).
    pub(crate) async fn known_peers(&mut self) {
        let peers = self.broker.call(|state, cx, _| state.book_entries(cx));
        let mut peers = peers.await.unwrap_or_default();
        let claims = peers.iter_mut().map(|p| {
            let BookEntry {
                name,
                key,
                verified,
                ..
            } = p;
            (&*name, &*key, verified)
        });
        self.verify_by_listing(claims.collect()).await;
        self.show(Event::KnownPeers { peers }).await
    }

    /// `nearby`: the peers heard on the LAN, verified as `peers` verifies the book.
    pub(crate) async fn nearby(&mut self) {
        let peers = self.broker.call(|state, cx, _| state.nearby_entries(cx));
        let mut peers = peers.await.unwrap_or_default();
        let claims = peers.iter_mut().map(|p| {
            let NearbyEntry {
                name,
                key,
                verified,
                ..
            } = p;
            (&*name, &*key, verified)
        });
        self.verify_by_listing(claims.collect()).await;
        self.show(Event::Nearby { peers }).await
    }

    /// Marks verified each claim (a name, a key, whether verified) that the registry we trust
    /// lists under that name with that key; asks the registry only if one is unverified.
    async fn verify_by_listing(&mut self, mut claims: Vec<(&PeerName, &PublicKey, &mut bool)>) {
        if claims.iter().all(|(_, _, verified)| **verified) {
            return;
        }
        let listing = self.listed().await.unwrap_or_default();
        for (name, key, verified) in claims.iter_mut() {
            **verified |= listing.iter().any(|p| p.name == **name && p.key == **key);
        }
    }

    /// `graph`: what the state knows, and the registry's listing (asked now, briefly).
    pub(crate) async fn graph(&mut self, json: bool) {
        let sightings = self.broker.call(|state, _, _| state.graph_sightings());
        let mut sightings = sightings.await.unwrap_or_default();
        let listing = self.listed().await;
        let now = chrono::Utc::now();
        let answered = listing.as_ref().map(|_| now);
        let listed = listing
            .unwrap_or_default()
            .into_iter()
            .map(|peer| Sighting {
                peer,
                kind: EdgeKind::Listed,
                last_seen: None,
                dead: false,
            });
        sightings.extend(listed.filter(|s| s.peer.name != self.origin.name));
        let me = (self.origin.name, self.listening);
        let registry = (self.registry.addr(), answered);
        let graph = graph::build(me, registry, sightings, now);
        self.show(Event::Graph { graph, json }).await
    }

    /// The registry's listing, asked now for at most two seconds (without an answer, none:
    /// pins alone decide what is verified).
    async fn listed(&mut self) -> Option<Vec<p2p_shared::PeerInfo>> {
        let quick = std::time::Duration::from_secs(2);
        match runtime::timeout(quick, self.registry.list()).await {
            Ok(Ok(listing)) => Some(listing.peers),
            _ => None,
        }
    }

    /// `broadcast TEXT`: signed, then sent to at most `flood::FANOUT` known peers.
    pub(crate) async fn broadcast(&mut self, text: String) {
        let forward = self
            .broker
            .call(move |state, cx, _| state.broadcast_sending(text, cx))
            .await;
        let Some(forward) = forward else { return };
        let peers = flood::send(&self.origin, forward).await;
        self.show(Event::BroadcastSent { peers }).await
    }

    pub(crate) async fn block(&mut self, peer: PeerName) {
        let blocked = self
            .broker
            .call(move |state, cx, fx| state.block(peer, cx, fx))
            .await;
        match blocked {
            Some(Ok(keys)) => self.show(Event::Blocked { peer, keys }).await,
            Some(Err(e)) => self.error(e).await,
            None => {}
        }
    }

    pub(crate) async fn unblock(&mut self, peer: PeerName) {
        let unblocked = self
            .broker
            .call(move |state, _, fx| state.unblock(peer, fx))
            .await;
        match unblocked {
            Some(Ok(keys)) => self.show(Event::Unblocked { peer, keys }).await,
            Some(Err(e)) => self.error(e).await,
            None => {}
        }
    }

    /// `forget PEER`: an open chat is ended as `disconnect` ends it (the partner is told),
    /// then the rest goes.
    pub(crate) async fn forget(&mut self, peer: PeerName) {
        let goodbye = self
            .broker
            .call(move |state, _, fx| state.disconnect(&peer, fx));
        let was_open = match goodbye.await.flatten() {
            Some(goodbye) => {
                let _ = transport::exchange(goodbye.from, goodbye.addr, goodbye.frame).await;
                true
            }
            None => false,
        };
        let forgot = self
            .broker
            .call(move |state, cx, fx| state.forget(&peer, cx, fx));
        match forgot.await {
            Some(forgot) if forgot || was_open => self.show(Event::Forgotten { peer }).await,
            _ => self.error(PeerError::NothingToForget { peer }).await,
        }
    }
}
