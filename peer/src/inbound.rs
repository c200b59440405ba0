//! The network side of the peer: what it answers to each incoming request.
//!
//! The shared transport reads, bounds and validates each request; this [`Service`] hands the
//! valid ones to the broker, which owns the state they change, and reports refused
//! connections as warnings in the log on stderr (stdout belongs to the user's events).

use std::net::SocketAddr;

use p2p_shared::transport::{Refusal, Service};
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
    async fn handle(&self, request: Envelope<Request>, _remote: SocketAddr) -> Outcome {
        self.broker.inbound(request).await
    }

    fn refused(&self, remote: SocketAddr, why: &Refusal) {
        tracing::warn!("refused {remote}: {}", printable(&why.to_string()));
    }
}
