//! One request, one reply, on a fresh connection: both ends of every exchange.
//!
//! The sending side ([`request`], in `client.rs`) connects, writes one request frame, reads one reply frame
//! and then waits for the receiver to close. The receiving side ([`serve`], in `server.rs`) accepts, reads one
//! request, asks a [`Service`] for the outcome, writes the reply and closes first. Closing
//! first puts the TIME_WAIT state on the receiver's single listening port instead of using up
//! the sender's ephemeral ports (docs/protocol.md has the measurements).
//!
//! Every step has a deadline and every frame a size limit, so a silent, slow or hostile
//! remote costs a bounded amount of time and memory.
//!
//! Two kinds of frames travel: signed envelopes, which this module signs and verifies itself
//! (and checks for freshness, against replays), and sealed frames, whose keys belong to a
//! chat or a peer's registry session: the receiving [`Service`] opens and answers those
//! itself, and [`request_in_session`] is the registry session's sending side.

mod budgets;
mod client;
#[cfg(feature = "cli")]
mod limit_args;
mod pace;
mod refusal;
mod server;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::identity::{Identity, PublicKey};
use crate::name::PeerName;
use crate::wire::stream::FrameError;
use crate::wire::{ErrorCode, Outcome, PeerInfo};

pub use budgets::Limits;
pub use client::{exchange, request, request_in_session, request_with};
#[cfg(feature = "cli")]
pub use limit_args::LimitArgs;
pub use pace::{body_deadline, FIRST_BYTES, MIN_RATE};
pub use refusal::{Refusal, SealedRefusal};
pub use server::{serve, Service};

/// How long a sender waits for the connection to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a sender waits for a whole exchange: connect, request, reply, close.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a receiver spends on one connection in all, whatever its service does.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How many connections a receiver serves at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// Who we are on the wire: a name, the key that proves it, and where we listen. The IP in
/// [`Sender::addr`] is taken from each connection's local address, which is the address the
/// other side reached us on, so it is right on a LAN without any configuration.
#[derive(Clone)]
pub struct Origin {
    pub name: PeerName,
    /// The IP we listen on, as `--bind` gave it; unspecified (`0.0.0.0`) for every interface.
    pub ip: IpAddr,
    pub port: u16,
    pub identity: Arc<Identity>,
}

impl Origin {
    /// The local IP our connections leave from: the one we listen on, if that is one address.
    /// Otherwise a host with several addresses would send from whichever its route to the
    /// other side picks, and our signed requests would name an address we do not listen on.
    pub fn source(&self) -> Option<IpAddr> {
        (!self.ip.is_unspecified()).then_some(self.ip)
    }

    /// Our sender record on a connection whose local IP is `ip`.
    pub fn sender(&self, ip: std::net::IpAddr) -> PeerInfo {
        PeerInfo {
            name: self.name,
            addr: SocketAddr::new(ip, self.port),
            key: self.identity.public(),
        }
    }
}

/// A successful reply: who answered, with which key, and what. The outcome is never
/// [`Outcome::Error`]; that arrives as [`SendError::Refused`].
#[derive(Clone, Debug)]
pub struct Reply {
    pub from: PeerInfo,
    /// The key that proved the reply: its signature's, or the one its session was agreed
    /// with. For a signed reply it is `from.key`.
    pub key: PublicKey,
    pub outcome: Outcome,
}

/// Why a request did not get a successful reply.
///
/// `written` says whether the whole request frame was written before the exchange failed:
/// if so the receiver may have read it and acted on it (shown a chat message, say), though
/// its answer never came; if not, it cannot have, since a receiver reads nothing of a frame
/// that is not whole. See [`SendError::after_writing`].
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection (refused, no route): nothing was written.
    #[error("cannot reach {addr}: {source}")]
    Unreachable { addr: SocketAddr, source: io::Error },
    #[error("{addr} did not answer in time")]
    Timeout { addr: SocketAddr, written: bool },
    #[error("the connection to {addr} failed: {source}")]
    Broken {
        addr: SocketAddr,
        source: FrameError,
        written: bool,
    },
    #[error("{addr} sent an invalid reply: {reason}")]
    BadReply { addr: SocketAddr, reason: String },
    #[error("{addr} refused: {detail}")]
    Refused {
        addr: SocketAddr,
        code: ErrorCode,
        detail: String,
        /// The key that signed the refusal: whether it is the expected one is for the caller
        /// to say, as for a successful reply.
        key: PublicKey,
    },
}

impl SendError {
    /// Whether the exchange failed after the whole request was written, so that the receiver
    /// may have taken it: no reply in time, the connection broke while waiting for one, a
    /// reply that is not valid, a refusal. Before that (no connection, a connection that
    /// timed out or broke while the request was still being written) it cannot have.
    pub fn after_writing(&self) -> bool {
        match self {
            SendError::Unreachable { .. } => false,
            SendError::Timeout { written, .. } | SendError::Broken { written, .. } => *written,
            SendError::BadReply { .. } | SendError::Refused { .. } => true,
        }
    }

    /// The error code the other side answered with, if it answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            SendError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}
