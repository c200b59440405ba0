//! The commands of peer exchange: `join` reaches a peer by address and swaps known peers
//! with it, `peers` shows the book. The state they change is `state/book.rs` and
//! `state/exchange.rs`; this is the I/O around them.

use p2p_shared::runtime;

use crate::command_loop::CommandLoop;
use crate::error::PeerError;
use crate::event::Event;
use crate::peer_exchange;

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

    /// `peers`: the book.
    pub(crate) async fn known_peers(&mut self) {
        let peers = self
            .broker
            .call(|state, cx, _| state.book_entries(cx))
            .await;
        self.show(Event::KnownPeers {
            peers: peers.unwrap_or_default(),
        })
        .await
    }
}
