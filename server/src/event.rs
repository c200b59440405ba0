//! What the registry reports: one [`Event`] per thing that happened, and its line of text.
//!
//! The registry's stdout is its log, one line per event (README, "Peer output", last
//! paragraph). The events are typed, so the broker and the service say *what* happened and
//! this file alone says how it reads; an in-process test receives the same values on a
//! channel instead of parsing lines.

use std::fmt;
use std::net::SocketAddr;

use p2p_shared::identity::PublicKey;
use p2p_shared::PeerName;

/// One thing the registry reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The registry is up, at this address.
    Listening {
        addr: SocketAddr,
    },
    /// The registry's own key, which peers may be given as `--server-key`.
    Key {
        key: PublicKey,
    },
    /// A name was added or moved to an address.
    Registered {
        name: PeerName,
        addr: SocketAddr,
        key: PublicKey,
    },
    Unregistered {
        name: PeerName,
    },
    Released {
        name: PeerName,
    },
    /// A registration lapsed: not renewed in time.
    Expired {
        name: PeerName,
    },
    /// A connection was refused before it reached the registry's rules.
    Refused {
        remote: SocketAddr,
        why: String,
    },
    /// A new name's claim could not be written, so its registration was undone.
    CannotRegister {
        name: PeerName,
        why: String,
    },
    /// A release could not be written; the name stays claimed.
    CannotRelease {
        name: PeerName,
        why: String,
    },
    /// Lines the log could not write in time (stdout was not read) and dropped.
    Dropped {
        count: u64,
    },
    /// The registry stopped: it answered what was in flight and accepts nothing more.
    Stopped,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Listening { addr } => write!(f, "listening on {addr}"),
            Event::Key { key } => {
                write!(f, "registry key {key} (fingerprint {})", key.fingerprint())
            }
            Event::Registered { name, addr, key } => {
                write!(f, "registered {name} {addr} key {}", key.fingerprint())
            }
            Event::Unregistered { name } => write!(f, "unregistered {name}"),
            Event::Released { name } => write!(f, "released {name}"),
            Event::Expired { name } => write!(f, "expired {name} (not renewed in time)"),
            Event::Refused { remote, why } => write!(f, "refused {remote}: {why}"),
            Event::CannotRegister { name, why } => write!(f, "cannot register {name}: {why}"),
            Event::CannotRelease { name, why } => write!(f, "cannot release {name}: {why}"),
            Event::Dropped { count } => write!(
                f,
                "{count} log line(s) dropped: stdout was not read in time"
            ),
            Event::Stopped => write!(f, "stopped"),
        }
    }
}
