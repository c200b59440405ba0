//! What the state tells the rest of the peer without changing anything: the chats open and
//! away (for `list connected peer`, the liveness checks, Tab completion) and the chats and
//! requests at one moment (for `status`). The changes are in `commands.rs` and
//! `network.rs`.

use std::net::SocketAddr;
use std::time::Instant;

use p2p_shared::wire::frame::ChatId;
use p2p_shared::{PeerInfo, PeerName};

use super::book::Source;
use super::{Namespace, PeerState, Snapshot};
use crate::event::{ChatState, Contact, PeerKey, Waiting};
use crate::graph::{EdgeKind, Sighting};

impl PeerState {
    /// The open chats, sorted by name.
    pub fn chats(&self) -> Vec<PeerInfo> {
        self.chats.list()
    }

    /// The open chats and the id of each, sorted by name.
    pub fn chats_by_id(&self) -> Vec<(PeerInfo, ChatId)> {
        self.chats.list_by_id()
    }

    /// Whether there is a chat with `name`, open or away (whose messages are kept): one a
    /// conversation (`talk`) can go on in.
    pub fn has_chat_with(&self, name: &PeerName) -> bool {
        self.chats.contains(name) || self.conversations.is_away(name)
    }

    /// Whether a chat is open with `name`, or with a partner at `addr`.
    pub fn chat_open_with(&self, name: Option<PeerName>, addr: SocketAddr) -> bool {
        let chats = self.chats.list();
        chats.iter().any(|c| Some(c.name) == name || c.addr == addr)
    }

    /// The away chats, sorted by name, with their partners' last addresses.
    pub fn away_chats(&self) -> Vec<PeerInfo> {
        let away = self.conversations.away_chats().into_iter();
        away.map(|(name, key, addr)| PeerInfo { name, addr, key })
            .filter(|p| !self.chats.contains(&p.name))
            .collect()
    }

    pub fn chat_names(&self) -> impl Iterator<Item = &PeerName> {
        self.chats.names()
    }

    /// Every pinned peer, with its chat here and the messages kept for it, for `contacts`
    /// (the disk thread adds when each was last seen, and which chats ended).
    pub fn contacts(&self) -> Vec<Contact> {
        let mut contacts: Vec<Contact> = self
            .pins
            .all()
            .into_iter()
            .map(|(namespace, name, key)| {
                let chat = if self.chats.key(&name) == Some(key) {
                    ChatState::Open
                } else if self.conversations.is_away(&name)
                    && self.conversations.is_resumable(&name, &key)
                {
                    ChatState::Away
                } else {
                    ChatState::None
                };
                let queued = match self.conversations.is_resumable(&name, &key) {
                    true => self.conversations.queued(&name),
                    false => 0,
                };
                let registry = match namespace {
                    Namespace::Registry(registry) => Some(PeerKey(registry)),
                    Namespace::Local => None,
                };
                Contact {
                    name,
                    key: PeerKey(key),
                    registry,
                    chat,
                    queued,
                    last_seen: None,
                }
            })
            .collect();
        contacts.sort_by_key(|c| (c.name, c.registry.is_some()));
        contacts
    }

    /// The chats and requests at `now`, for `status`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let incoming = self
            .incoming
            .iter()
            .map(|r| Waiting {
                peer: r.from,
                addr: r.addr,
                key: PeerKey(r.key),
                expires_in: r.expires_at.saturating_duration_since(now),
                received_at: Some(r.received_at),
            })
            .collect();
        let outgoing = self
            .outgoing
            .awaiting()
            .map(|(peer, addr, key, deadline)| Waiting {
                peer: *peer,
                addr,
                key: PeerKey(key),
                expires_in: deadline.saturating_duration_since(now),
                received_at: None,
            })
            .collect();
        Snapshot {
            chats: self.chats.list(),
            away: self.away_chats(),
            incoming,
            outgoing,
        }
    }
}

impl PeerState {
    /// Every way this peer knows of another, for `graph`: open chats, the book, the LAN.
    pub fn graph_sightings(&self) -> Vec<Sighting> {
        let chats = self.chats.list().into_iter().map(|peer| Sighting {
            peer,
            kind: EdgeKind::Chat,
            last_seen: None,
            dead: false,
        });
        let book = self.book.list().into_iter().map(|k| Sighting {
            peer: PeerInfo {
                name: k.record.name,
                addr: k.record.addr,
                key: k.record.key,
            },
            kind: match k.source {
                Source::Direct => EdgeKind::Direct,
                Source::Exchange => EdgeKind::Exchange,
            },
            last_seen: k.seen,
            dead: k.is_dead(),
        });
        let lan = self.nearby.list().into_iter().map(|h| Sighting {
            peer: PeerInfo {
                name: h.name,
                addr: h.addr,
                key: h.key,
            },
            kind: EdgeKind::Lan,
            last_seen: Some(h.seen),
            dead: false,
        });
        chats.chain(book).chain(lan).collect()
    }
}
