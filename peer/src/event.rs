//! What the user sees: one [`Event`] per thing that happened or command that finished.
//!
//! Events are data; `render.rs` turns them into a line of text (README, "Peer output") or a
//! JSON object (docs/json.md), and the screen thread (`screen.rs`) writes them. Whoever shows
//! an event never knows how it will look. An event a command caused is shown as a [`Shown`],
//! with the id of that command (`json_command.rs`), which JSON carries and text leaves out.
//! The JSON shapes serde's derive cannot give (a key with its fingerprint, listings of peers,
//! milliseconds, errors with their code) are in `event/json.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use p2p_shared::identity::PublicKey;
use p2p_shared::reachable::Reach;
use p2p_shared::{PeerInfo, PeerName};
use serde::Serialize;

use crate::error::PeerError;
use crate::history::Line;
use crate::json_command::CommandId;

mod entries;
mod json;

pub use entries::{BookEntry, ChatState, Contact, NearbyEntry, Status, Waiting};
pub use json::PeerKey;
use json::{millis, peers_with_keys};

/// One thing the user should see.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Listening {
        name: PeerName,
        addr: SocketAddr,
    },
    /// Where other machines reach this peer: the address to give a friend (after
    /// `Listening`, whose address may be `0.0.0.0`).
    Reachable {
        #[serde(flatten)]
        reach: Reach,
    },
    Registered {
        name: PeerName,
        addr: SocketAddr,
    },
    Peers {
        #[serde(serialize_with = "peers_with_keys")]
        peers: Vec<PeerInfo>,
    },
    /// The registry lists more peers than a listing keeps (`registry_client::MAX_LISTED`):
    /// the first `shown` were shown.
    ListingCut {
        shown: usize,
    },
    LeftNetwork,
    /// `join`: the peer at `addr` answered our exchange; `learned` peers were new to us.
    Joined {
        peer: PeerName,
        addr: SocketAddr,
        #[serde(flatten)]
        key: PeerKey,
        learned: usize,
    },
    /// `peers`: the book.
    KnownPeers {
        peers: Vec<BookEntry>,
    },
    /// `nearby`: the peers heard on the LAN.
    Nearby {
        peers: Vec<NearbyEntry>,
    },
    /// A peer announced on the LAN answered with the key it announced.
    NearbyFound {
        peer: PeerName,
        addr: SocketAddr,
        #[serde(flatten)]
        key: PeerKey,
        verified: bool,
    },
    /// A peer heard on the LAN left: it said goodbye, or stopped answering the book's checks.
    NearbyGone {
        peer: PeerName,
        #[serde(flatten)]
        key: PeerKey,
        why: String,
    },
    /// `graph`: the network as this peer knows it; as JSON in text mode too if `json`.
    Graph {
        #[serde(flatten)]
        graph: crate::graph::Graph,
        #[serde(skip)]
        json: bool,
    },
    /// A peer of the book failed its checks (`state/book.rs`), or answers again.
    KnownPeerDead {
        peer: PeerName,
        addr: SocketAddr,
        #[serde(flatten)]
        key: PeerKey,
    },
    KnownPeerBack {
        peer: PeerName,
        addr: SocketAddr,
        #[serde(flatten)]
        key: PeerKey,
    },
    /// A chat's partner stopped answering: the chat is away, messages to it are kept.
    PeerAway {
        peer: PeerName,
        why: String,
    },
    /// An away chat is open again; `queued` messages kept for it go now.
    ChatResumed {
        peer: PeerName,
        addr: SocketAddr,
        #[serde(flatten)]
        key: PeerKey,
        queued: usize,
    },
    /// A message was kept for an away partner: `queued for bob: why`.
    Queued {
        peer: PeerName,
        why: String,
    },
    /// A kept message ended undelivered.
    QueuedDropped {
        peer: PeerName,
        why: String,
    },
    /// A broadcast: `peer` is the name its origin gives itself, verified if a pin here
    /// vouches for the key.
    Broadcast {
        peer: PeerName,
        #[serde(flatten)]
        key: PeerKey,
        verified: bool,
        text: String,
    },
    /// Our broadcast went to `peers` peers (the first hop), each of which acknowledged it.
    BroadcastSent {
        peers: usize,
    },
    Blocked {
        peer: PeerName,
        keys: usize,
    },
    Forgotten {
        peer: PeerName,
    },
    /// `contacts`: every pinned peer.
    Contacts {
        contacts: Vec<Contact>,
    },
    /// `bell on|off`: whether the bell rings now, and whether it can here (a terminal).
    Bell {
        on: bool,
        at_terminal: bool,
    },
    Unblocked {
        peer: PeerName,
        keys: usize,
    },
    /// Our request reached the other side, which asks its user.
    RequestSent {
        peer: PeerName,
        addr: SocketAddr,
        #[serde(flatten)]
        key: PeerKey,
        /// Whether the registry (or a pin here) vouches for the key under that name.
        verified: bool,
    },
    /// How our requests end (`state/outgoing.rs`): accepted, declined, timed out, abandoned
    /// by the other side, settled or replaced here, dropped when we exit.
    RequestAccepted {
        peer: PeerName,
        addr: SocketAddr,
        #[serde(flatten)]
        key: PeerKey,
    },
    RequestDeclined {
        peer: PeerName,
    },
    RequestTimedOut {
        peer: PeerName,
    },
    RequestAbandoned {
        peer: PeerName,
    },
    RequestSettled {
        peer: PeerName,
    },
    RequestReplaced {
        peer: PeerName,
    },
    RequestDropped {
        peer: PeerName,
    },
    /// Someone asks us for a chat.
    RequestArrived {
        peer: PeerName,
        addr: SocketAddr,
        #[serde(rename = "expires_in_ms", serialize_with = "millis")]
        expires_in: Duration,
        #[serde(flatten)]
        key: PeerKey,
        /// Whether the registry (or a pin here) vouches for the key under that name.
        verified: bool,
        /// Unverified because the registry we trust did not answer about it (down, or our
        /// lookups dropped on the way): not the same as a name nobody registered.
        unanswered: bool,
    },
    /// How requests to us end (`state/incoming.rs`): accepted, declined, expired, withdrawn,
    /// left unanswered when we exit.
    AcceptedChat {
        peer: PeerName,
        addr: SocketAddr,
        #[serde(flatten)]
        key: PeerKey,
    },
    DeclinedChat {
        peer: PeerName,
    },
    RequestExpired {
        peer: PeerName,
    },
    RequestWithdrawn {
        peer: PeerName,
        why: Withdrawal,
    },
    RequestUnanswered {
        peer: PeerName,
    },
    Delivered {
        peer: PeerName,
    },
    Message {
        peer: PeerName,
        text: String,
        /// When it arrived.
        at: DateTime<Utc>,
    },
    /// `list connected peer`: the open chats, then the away ones (at the partner's last
    /// address).
    Connected {
        #[serde(serialize_with = "peers_with_keys")]
        peers: Vec<PeerInfo>,
        #[serde(
            skip_serializing_if = "Vec::is_empty",
            serialize_with = "peers_with_keys"
        )]
        away: Vec<PeerInfo>,
    },
    Disconnected {
        peer: PeerName,
    },
    PeerDisconnected {
        peer: PeerName,
    },
    /// The partner of an away chat said no to our request to reopen it: the chat ended.
    ReopenDeclined {
        peer: PeerName,
    },
    Status(Status),
    History {
        peer: PeerName,
        lines: Vec<Line>,
    },
    /// The registry is back, and we are registered there again.
    Reregistered {
        name: PeerName,
        addr: SocketAddr,
    },
    /// A peer presented another key than the one the registry binds its name to: both
    /// keys, as fingerprints (`offered`, `registered`) and whole (`offered_key`, ...).
    Impostor {
        peer: PeerName,
        offered: String,
        registered: String,
        offered_key: PublicKey,
        registered_key: PublicKey,
    },
    /// A peer presented another key than the one pinned for its name.
    KeyChanged {
        peer: PeerName,
        pinned: String,
        offered: String,
        pinned_key: PublicKey,
        offered_key: PublicKey,
    },
    Whoami {
        name: PeerName,
        #[serde(flatten)]
        key: PeerKey,
    },
    Trusted {
        peer: PeerName,
        #[serde(flatten)]
        key: PeerKey,
    },
    RegistryTrusted {
        registry: String,
        #[serde(flatten)]
        key: PeerKey,
    },
    Released {
        name: PeerName,
    },
    Help {
        text: String,
    },
    /// `talk PEER` (or `talk` alone, with no peer): who plain lines go to now.
    Talking {
        peer: Option<PeerName>,
    },
    /// The chat of the conversation ended (either side left it, or it was forgotten), and
    /// with it the conversation: lines are commands again. `untaken`: the line that found it
    /// ended was written for the conversation, so it was neither sent nor run.
    TalkEnded {
        peer: PeerName,
        untaken: bool,
    },
    Bye,
    Error(PeerError),
}

/// An event as the screen shows it: with the id of the command it answers, if a command
/// caused it (at once, or later: a `delivered` carries the id of its `chat message`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Shown {
    #[serde(flatten)]
    pub event: Event,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<CommandId>,
}

impl Event {
    /// This event as the answer to the command `id` (`None`: no command caused it).
    pub fn answering(self, id: Option<CommandId>) -> Shown {
        Shown { event: self, id }
    }
}

impl From<Event> for Shown {
    /// An event no command caused.
    fn from(event: Event) -> Shown {
        Shown { event, id: None }
    }
}

impl From<PeerError> for Shown {
    fn from(error: PeerError) -> Shown {
        Event::Error(error).into()
    }
}

/// Why a request to us was withdrawn before anyone answered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Withdrawal {
    /// A chat with the requester opened another way (our own request to it was accepted).
    Settled,
    /// The requester asked again; the newer request stands instead.
    Replaced,
    /// The requester exited (`chat_withdraw`).
    Left,
}

impl From<PeerError> for Event {
    fn from(error: PeerError) -> Event {
        Event::Error(error)
    }
}
