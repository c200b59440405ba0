//! What the registry reports: one [`Event`] per thing that happened, and its line of text.
//!
//! The registry's stdout is its log, one line per event (README, "Peer output", last
//! paragraph). The events are typed, so the broker and the service say *what* happened and
//! this file alone says how it reads; an in-process test receives the same values on a
//! channel instead of parsing lines.
//!
//! Nothing a client sent is printed as it came: a refusal is logged by its kind (a word the
//! registry chose, `Refusal::kind`), never by its text, which may quote the client's bytes;
//! names are validated on arrival; and any other free text goes through the escaping the
//! peer uses too ([`printable`]), so no line can carry a forged second line or drive a
//! terminal.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use p2p_shared::identity::PublicKey;
use p2p_shared::printable::printable;
use p2p_shared::reachable::Reach;
use p2p_shared::PeerName;

/// One thing the registry reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The registry is up, at this address.
    Listening {
        addr: SocketAddr,
    },
    /// Where other machines reach it: what to give peers as `--server` (the address it
    /// listens on may be `0.0.0.0`).
    Reachable {
        reach: Reach,
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
    /// A connection was refused before it reached the registry's rules; `kind` says why in
    /// a word of the registry's (`Refusal::kind`).
    Refused {
        remote: SocketAddr,
        kind: &'static str,
    },
    /// Refusals over the log's budget in the last window (`refusals.rs`): from one address,
    /// or (`None`) from all the addresses beyond those counted one by one.
    MoreRefusals {
        from: Option<IpAddr>,
        count: u64,
        over: Duration,
        kinds: Vec<&'static str>,
    },
    /// A file or folder of the registry's data others could read, made its owner's only.
    MadePrivate {
        path: PathBuf,
        was: u32,
        now: u32,
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
    /// Where the registry keeps its claims and registrations, when it shares them with other
    /// instances (`--store etcd://...`).
    Store {
        store: String,
    },
    /// The shared store cannot be reached: peers are refused `unavailable` until it is back.
    StoreUnavailable {
        store: String,
        why: String,
    },
    /// The shared store answers again.
    StoreAvailable {
        store: String,
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
            Event::Reachable { reach } => write!(f, "{reach}"),
            Event::Key { key } => {
                write!(f, "registry key {key} (fingerprint {})", key.fingerprint())
            }
            Event::Registered { name, addr, key } => {
                write!(f, "registered {name} {addr} key {}", key.fingerprint())
            }
            Event::Unregistered { name } => write!(f, "unregistered {name}"),
            Event::Released { name } => write!(f, "released {name}"),
            Event::Expired { name } => write!(f, "expired {name} (not renewed in time)"),
            Event::Refused { remote, kind } => write!(f, "refused {remote}: {kind}"),
            Event::MoreRefusals {
                from,
                count,
                over,
                kinds,
            } => {
                let from = match from {
                    Some(ip) => ip.to_string(),
                    None => "other addresses".into(),
                };
                write!(
                    f,
                    "{count} more refusals from {from} in the last {}s (kinds: {})",
                    over.as_secs(),
                    kinds.join(", ")
                )
            }
            Event::MadePrivate { path, was, now } => write!(
                f,
                "made {} private: mode {was:o} -> {now:o}",
                printable(&path.display().to_string())
            ),
            // A store error is the registry's own text, but may quote a path or SQLite's
            // words: escaped like everything else.
            Event::CannotRegister { name, why } => {
                write!(f, "cannot register {name}: {}", printable(why))
            }
            Event::CannotRelease { name, why } => {
                write!(f, "cannot release {name}: {}", printable(why))
            }
            Event::Store { store } => write!(f, "store {}", printable(store)),
            Event::StoreUnavailable { store, why } => write!(
                f,
                "store unavailable: {}: {} (peers are refused until it is back)",
                printable(store),
                printable(why)
            ),
            Event::StoreAvailable { store } => {
                write!(f, "store available again: {}", printable(store))
            }
            Event::Dropped { count } => write!(
                f,
                "{count} log line(s) dropped: stdout was not read in time"
            ),
            Event::Stopped => write!(f, "stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_is_escaped_and_cannot_forge_a_line() {
        let event = Event::CannotRegister {
            name: "bob".parse().unwrap(),
            why: "disk\nregistered root 10.0.0.1:1 key x\u{1b}[2J".into(),
        };
        assert_eq!(
            event.to_string(),
            "cannot register bob: disk\\u{a}registered root 10.0.0.1:1 key x\\u{1b}[2J"
        );
        let event = Event::MadePrivate {
            path: "/data/a\u{202e}b".into(),
            was: 0o644,
            now: 0o600,
        };
        assert_eq!(
            event.to_string(),
            "made /data/a\\u{202e}b private: mode 644 -> 600"
        );
    }
}
