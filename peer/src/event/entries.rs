//! The rows of the listings an [`Event`](super::Event) carries: `status` and its waiting
//! requests, the book (`peers`), `nearby` and `contacts` (their text is
//! `render/listings.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use p2p_shared::identity::PublicKey;
use p2p_shared::{PeerInfo, PeerName};
use serde::Serialize;

use super::json::{fingerprint_of, key_and_fingerprint, millis, peers_with_keys};
use super::PeerKey;
use crate::state::book::Source;

/// One peer of the book, as `peers` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BookEntry {
    pub name: PeerName,
    pub addr: SocketAddr,
    #[serde(serialize_with = "key_and_fingerprint")]
    pub key: PublicKey,
    /// Whether a pin here vouches for the key under that name.
    pub verified: bool,
    pub source: Source,
    pub seen: Option<DateTime<Utc>>,
    pub dead_since: Option<DateTime<Utc>>,
}

/// One peer heard on the LAN, as `nearby` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NearbyEntry {
    pub name: PeerName,
    pub addr: SocketAddr,
    #[serde(serialize_with = "key_and_fingerprint")]
    pub key: PublicKey,
    /// Whether a pin here (or the registry) vouches for the key under that name.
    pub verified: bool,
    /// Whether a reply signed by the key came from `addr` (else the claim is being checked).
    pub reached: bool,
    pub seen: DateTime<Utc>,
}

/// One pinned peer, as `contacts` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Contact {
    pub name: PeerName,
    #[serde(flatten)]
    pub key: PeerKey,
    /// The registry whose namespace the pin is in: it vouched for the key under the name.
    /// `None`: pinned here on first contact, with no registry trusted (`@local`).
    pub registry: Option<PeerKey>,
    pub chat: ChatState,
    /// Messages kept for it until it is back.
    pub queued: usize,
    /// The time of the last line of the chat history with it, sent or received.
    pub last_seen: Option<DateTime<Utc>>,
}

/// Where the chat with a contact stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatState {
    Open,
    Away,
    /// No chat now, but the history has one.
    Ended,
    /// Never chatted (a pin from a request that was never answered, say).
    None,
}

/// What `status` shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    pub name: PeerName,
    pub addr: SocketAddr,
    pub registry: SocketAddr,
    pub registry_reachable: bool,
    /// The key the registry answers with, when it is not the one trusted for it: it is
    /// there, but not taken for the registry. JSON has its fingerprint.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "fingerprint_of"
    )]
    pub registry_other_key: Option<PublicKey>,
    /// Whether `--server-key` says which key the registry has: then only starting again
    /// with another one changes it (`trust registry` refuses), and the text advises that.
    #[serde(skip)]
    pub registry_key_given: bool,
    pub registered: bool,
    #[serde(serialize_with = "peers_with_keys")]
    pub chats: Vec<PeerInfo>,
    /// The chats whose partners are away (stopped answering): kept, and asked again.
    #[serde(serialize_with = "peers_with_keys")]
    pub away: Vec<PeerInfo>,
    /// Requests waiting for our `yes` or `no`.
    pub incoming: Vec<Waiting>,
    /// Our requests waiting for the other side's answer.
    pub outgoing: Vec<Waiting>,
}

/// A chat request and how long it has left.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Waiting {
    pub peer: PeerName,
    pub addr: SocketAddr,
    #[serde(flatten)]
    pub key: PeerKey,
    #[serde(rename = "expires_in_ms", serialize_with = "millis")]
    pub expires_in: Duration,
    /// When an incoming request arrived (the record's timestamp); `None` for our own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
}
