//! Conversations: the chats that outlive a connection, a restart, or a partner that stopped
//! answering, with the messages kept for a partner who is away. Without I/O.
//!
//! A chat is **open** (session keys in `chats.rs`), **away** (its partner stopped answering:
//! no keys, a record here), or **ended** (`disconnect` from either side, or `forget`: no
//! record). Every open or away chat has a record here, on disk (`DATA/conversations-NAME`, one
//! JSON object a line: partner, key, last address, and the outbox), never its session keys:
//! after a restart, every recorded chat is away until a new handshake to the pinned key
//! opens it again, which either side accepts without a `yes` because both keep this record.
//!
//! A message that cannot be delivered now (the partner is away, or stops answering while it
//! is sent) is kept in the partner's outbox under the place it took when typed
//! ([`Conversations::take_place`]), and sent in that order once the chat is open again (one
//! kept only after it failed on its way goes before those typed after it), each under the id
//! it was typed with, marked as sent again: the receiver stores each id once and shows such a
//! message only if its history did not have it, so a message does not show twice. The
//! outbox is bounded: [`MAX_QUEUED`] messages a partner, none older than [`MAX_QUEUE_AGE`];
//! what does not fit, or grows too old, ends with its reason.
//!
//! A conversation is with a key, not a name. When the user trusts a changed key for a name
//! and a chat with it opens, the old conversation is replaced, and what was typed to the old
//! key ends undelivered, with its reason: kept, on its way, or failing late.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use p2p_shared::identity::PublicKey;
use p2p_shared::{MessageId, PeerName};
use serde::{Deserialize, Serialize};

use crate::json_command::CommandId;
use crate::known::FileWrite;

/// The most messages kept for one partner.
pub const MAX_QUEUED: usize = 100;

/// How long a kept message waits for its partner before it expires.
pub const MAX_QUEUE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The most conversations kept: one per partner.
pub const MAX_CONVERSATIONS: usize = 256;

/// A message the user typed: the id it goes under (the same for every try), its text, the
/// command that sent it, whose id its outcome carries however late it comes, and its place
/// among the messages typed to its partner ([`Conversations::take_place`]; `None` if there
/// was no chat). A message kept only after it failed on its way goes before those typed
/// after it and kept first: the outbox is in the order typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Typed {
    pub id: MessageId,
    pub text: String,
    pub cmd: Option<CommandId>,
    pub place: Option<Place>,
    /// A try of it was written whole: the partner may have shown it.
    pub tried: bool,
}

/// Where a typed message belongs: the partner's key when it was typed, and its place among
/// the messages typed to that key. A message goes only to that key: if the user has trusted
/// a changed key for the name since, it was written to someone else, as far as it knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub key: PublicKey,
    pub seq: u64,
}

/// A message kept for a partner who is away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// Its place in the conversation: messages are sent in this order.
    pub seq: u64,
    /// The id it was typed with, kept for every try.
    pub id: MessageId,
    pub text: String,
    pub at: DateTime<Utc>,
    /// The command that sent it. On disk only an id a script gave (the peer's own `cN` mean
    /// nothing in the next run); one unreadable there is dropped, not the message.
    #[serde(
        default,
        skip_serializing_if = "not_given",
        deserialize_with = "readable_or_none"
    )]
    pub cmd: Option<CommandId>,
    /// A try of it was written whole before it was kept, or since: the partner may have
    /// shown it, so if it ends here the user is told "no acknowledgement", not "not
    /// delivered".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tried: bool,
}

fn not_given(cmd: &Option<CommandId>) -> bool {
    !cmd.as_ref().is_some_and(CommandId::is_given)
}

fn readable_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<CommandId>, D::Error> {
    let id = Option::<serde_json::Value>::deserialize(d)?;
    Ok(id.and_then(|id| serde_json::from_value(id).ok()))
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Conversation {
    name: PeerName,
    key: PublicKey,
    /// Where the partner was last.
    addr: SocketAddr,
    /// Whether the chat is away (no session keys). Every conversation read from disk is.
    #[serde(default)]
    away: bool,
    /// The place of the next message typed or kept: places only grow, and a kept message's
    /// is its `seq`.
    next_seq: u64,
    outbox: VecDeque<Queued>,
}

/// What became of a message given to [`Conversations::queue`].
#[derive(Debug, PartialEq, Eq)]
pub enum Queueing {
    Queued,
    /// The partner's outbox is full.
    Full,
    /// No conversation with that partner: no chat to keep it for.
    NoChat,
    /// The conversation is with another key than the one the message was typed to.
    KeyChanged,
}

pub struct Conversations {
    by_name: BTreeMap<PeerName, Conversation>,
    path: PathBuf,
}

impl Conversations {
    /// The conversations kept in the file at `path` (missing: none), all away.
    pub fn load(path: PathBuf) -> anyhow::Result<Conversations> {
        let mut by_name = BTreeMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    let Ok(mut conversation) = serde_json::from_str::<Conversation>(line) else {
                        continue;
                    };
                    conversation.away = true;
                    conversation.outbox.truncate(MAX_QUEUED);
                    if by_name.len() < MAX_CONVERSATIONS {
                        by_name.insert(conversation.name, conversation);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        }
        Ok(Conversations { by_name, path })
    }

    /// None, writing nowhere: for tests.
    #[cfg(test)]
    pub fn empty() -> Conversations {
        Conversations {
            by_name: BTreeMap::new(),
            path: PathBuf::new(),
        }
    }

    /// A chat with `name` (key `key`, at `addr`) is open; the file to write. A conversation
    /// with another key under that name is replaced: what was kept in it, returned, was for
    /// someone else, and ends undelivered.
    pub fn opened(
        &mut self,
        name: PeerName,
        key: PublicKey,
        addr: SocketAddr,
    ) -> (FileWrite, Vec<Queued>) {
        let replaced = match self.by_name.get_mut(&name) {
            Some(c) if c.key == key => {
                c.addr = addr;
                c.away = false;
                Vec::new()
            }
            _ => {
                if self.by_name.len() >= MAX_CONVERSATIONS && !self.by_name.contains_key(&name) {
                    // Full: the oldest away one without messages gives its place, if any.
                    let idle = self
                        .by_name
                        .values()
                        .find(|c| c.away && c.outbox.is_empty())
                        .map(|c| c.name);
                    if let Some(idle) = idle {
                        self.by_name.remove(&idle);
                    }
                }
                let conversation = Conversation {
                    name,
                    key,
                    addr,
                    away: false,
                    next_seq: 0,
                    outbox: VecDeque::new(),
                };
                let replaced = self.by_name.insert(name, conversation);
                replaced.map(|c| c.outbox.into()).unwrap_or_default()
            }
        };
        (self.file(), replaced)
    }

    /// The chat with `name` (still with `key`) lost its partner: away. The file to write,
    /// if that changed anything.
    pub fn away(&mut self, name: &PeerName, key: &PublicKey) -> Option<FileWrite> {
        let c = self.by_name.get_mut(name).filter(|c| c.key == *key)?;
        if c.away {
            return None;
        }
        c.away = true;
        Some(self.file())
    }

    /// The chat with `name` ended: its record goes, and what was kept for it, returned.
    pub fn ended(&mut self, name: &PeerName) -> Option<(Vec<Queued>, FileWrite)> {
        let c = self.by_name.remove(name)?;
        Some((c.outbox.into(), self.file()))
    }

    /// Keeps `message` (typed at `at`) for `name`.
    pub fn queue(
        &mut self,
        name: &PeerName,
        message: Typed,
        at: DateTime<Utc>,
    ) -> (Queueing, Option<FileWrite>) {
        let Some(c) = self.by_name.get_mut(name) else {
            return (Queueing::NoChat, None);
        };
        if message.place.is_some_and(|place| place.key != c.key) {
            return (Queueing::KeyChanged, None);
        }
        let Typed {
            id,
            text,
            cmd,
            place,
            tried,
        } = message;
        if let Some(kept) = c.outbox.iter_mut().find(|q| q.id == id) {
            // Kept already (a retry); this try may have been written, if that one was not.
            if tried && !kept.tried {
                kept.tried = true;
                return (Queueing::Queued, Some(self.file()));
            }
            return (Queueing::Queued, None);
        }
        if c.outbox.len() >= MAX_QUEUED {
            return (Queueing::Full, None);
        }
        let seq = place.map_or(c.next_seq, |place| place.seq);
        c.next_seq = c.next_seq.max(seq + 1);
        // In the order typed: one that was on its way when the chat went away goes before
        // those typed after it, kept meanwhile.
        let before = c.outbox.iter().position(|q| q.seq > seq);
        let kept = Queued {
            seq,
            id,
            text,
            at,
            cmd,
            tried,
        };
        c.outbox.insert(before.unwrap_or(c.outbox.len()), kept);
        (Queueing::Queued, Some(self.file()))
    }

    /// The place of a message typed now to `name`, if there is a chat with it (open or
    /// away). Not written until a message is kept: a place taken by a message that is
    /// delivered, or lost with the process, need not be remembered.
    pub fn take_place(&mut self, name: &PeerName) -> Option<Place> {
        let c = self.by_name.get_mut(name)?;
        let seq = c.next_seq;
        c.next_seq += 1;
        Some(Place { key: c.key, seq })
    }

    /// The first message kept for `name`, to send now, and the key it is for.
    pub fn next_queued(&self, name: &PeerName) -> Option<(Queued, PublicKey)> {
        let c = self.by_name.get(name)?;
        Some((c.outbox.front()?.clone(), c.key))
    }

    /// Whether a try of the message `id` kept for `name` may have shown (see
    /// [`Queued::tried`]): the file to write, if that changed.
    pub fn tried(&mut self, name: &PeerName, id: MessageId, tried: bool) -> Option<FileWrite> {
        let c = self.by_name.get_mut(name)?;
        let q = c
            .outbox
            .iter_mut()
            .find(|q| q.id == id && q.tried != tried)?;
        q.tried = tried;
        Some(self.file())
    }

    /// The message `id` kept for `name` was delivered: the file to write.
    pub fn delivered(&mut self, name: &PeerName, id: MessageId) -> Option<FileWrite> {
        let c = self.by_name.get_mut(name)?;
        let before = c.outbox.len();
        c.outbox.retain(|q| q.id != id);
        (c.outbox.len() != before).then(|| self.file())
    }

    /// Takes out the messages that waited longer than [`MAX_QUEUE_AGE`] at `now`.
    pub fn expire(&mut self, now: DateTime<Utc>) -> (Vec<(PeerName, Queued)>, Option<FileWrite>) {
        let limit = chrono::Duration::from_std(MAX_QUEUE_AGE).expect("a week fits");
        let mut expired = Vec::new();
        for c in self.by_name.values_mut() {
            while c.outbox.front().is_some_and(|q| now - q.at > limit) {
                let q = c.outbox.pop_front().expect("just seen");
                expired.push((c.name, q));
            }
        }
        let write = (!expired.is_empty()).then(|| self.file());
        (expired, write)
    }

    /// The away chats, to try to open again: name, key and last address.
    pub fn away_chats(&self) -> Vec<(PeerName, PublicKey, SocketAddr)> {
        self.by_name
            .values()
            .filter(|c| c.away)
            .map(|c| (c.name, c.key, c.addr))
            .collect()
    }

    /// Whether a chat with `name` under `key` may be opened again without a `yes`.
    pub fn is_resumable(&self, name: &PeerName, key: &PublicKey) -> bool {
        self.by_name.get(name).is_some_and(|c| c.key == *key)
    }

    /// Whether the chat with `name` is away.
    pub fn is_away(&self, name: &PeerName) -> bool {
        self.by_name.get(name).is_some_and(|c| c.away)
    }

    /// How many messages wait for `name`.
    pub fn queued(&self, name: &PeerName) -> usize {
        self.by_name.get(name).map_or(0, |c| c.outbox.len())
    }

    fn file(&self) -> FileWrite {
        let mut contents = String::new();
        for c in self.by_name.values() {
            contents.push_str(&serde_json::to_string(c).expect("a conversation serializes"));
            contents.push('\n');
        }
        FileWrite {
            path: self.path.clone(),
            contents,
        }
    }
}

#[cfg(test)]
mod tests;
