//! The network side of the peer: what it answers to each incoming request.
//!
//! The shared transport reads, bounds and validates each request and checks its signature;
//! this [`Service`] hands the valid ones, and the sealed chat frames, to the broker, which
//! owns the state (and the keys) they need, and reports refused connections as warnings in
//! the log on stderr (stdout belongs to the user's events).

use std::net::SocketAddr;

use p2p_shared::transport::{Refusal, SealedRefusal, Service};
use p2p_shared::{Envelope, Outcome, Request};

use crate::broker::Broker;
use crate::output::printable;

#[derive(Clone)]
pub struct PeerService {
    broker: Broker,
}

impl PeerService {
    pub fn new(broker: Broker) -> Self {
        PeerService { broker }
    }
}

impl Service for PeerService {
    /// A ping only asks "who are you?", and the signed reply answers it; everything else a
    /// peer receives must prove its sender.
    fn needs_signature(&self, request: &Request) -> bool {
        !matches!(request, Request::Ping)
    }

    async fn handle(&self, request: Envelope<Request>, _remote: SocketAddr) -> Outcome {
        self.broker.inbound(request).await
    }

    async fn handle_sealed(
        &self,
        frame: Vec<u8>,
        _remote: SocketAddr,
    ) -> Result<Vec<u8>, SealedRefusal> {
        Ok(self.broker.sealed(frame).await?)
    }

    fn refused(&self, remote: SocketAddr, why: &Refusal) {
        tracing::warn!("refused {remote}: {}", printable(&why.to_string()));
    }
}
