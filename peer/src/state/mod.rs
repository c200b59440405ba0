//! The peer's state, without I/O: chats, chat requests both ways, pinned keys.
//!
//! Every change is a plain function of the state, its input and a [`Context`] (the time, and
//! whether the screen has room for what the network causes), and it returns what must happen
//! outside as [`Effect`]s: show an event, rewrite a pin file, tell another peer. The broker
//! (`broker.rs`) is the thin actor that owns the one [`PeerState`], calls these functions in
//! one order and performs their effects; unit tests call them directly, with a clock of
//! their own and no runtime or network.
//!
//! The request/accept workflow lives in [`outgoing`] and [`incoming`]: records whose every
//! end is a variant of an end type, mapped to exactly one event.

mod arrived;
pub mod book;
mod broadcasts;
pub mod chats;
mod commands;
pub mod conversations;
mod exchange;
pub mod flood;
pub mod incoming;
pub mod nearby;
mod network;
pub mod order;
mod outbox;
pub mod outgoing;
pub mod pins;
mod queries;
mod reopen;
pub mod sealed;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use p2p_shared::handshake::HandshakeMessage;
use p2p_shared::identity::PublicKey;
use p2p_shared::seal::ChatKeys;
use p2p_shared::transport::Origin;
use p2p_shared::{Answer, ErrorCode, MessageId, Outcome, PeerInfo, PeerName, PeerRequest};

use crate::error::PeerError;
use crate::event::{Event, Shown, Waiting};
use crate::json_command::CommandId;
use crate::known::FileWrite;
use crate::state::pins::Namespace;
pub use arrived::{AckTo, ChatMessage, FromChat, Held, Showing, Storing};
use book::Book;
pub use broadcasts::Forward;
use chats::Chats;
use conversations::Conversations;
use flood::Flood;
use incoming::{IncomingRequests, PendingRequest};
use nearby::Nearby;
pub use outbox::Typing;
use outgoing::{OutgoingRequests, Withdraw};
use pins::Pins;
pub use reopen::Resume;
use sealed::Sealed;

/// What the state may know of the world when it handles an input.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub now: Instant,
    /// The same moment on the wall clock, for what the user reads (when a request arrived).
    pub utc: DateTime<Utc>,
    /// Whether the screen takes one more event caused by the network (`screen.rs`).
    pub screen_room: bool,
    /// Whose word names are taken on now: the registry trusted at this moment, if any
    /// (`pins.rs`).
    pub namespace: Namespace,
}

/// What the registry says of a name and the key that came with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vouch {
    /// The registry binds the name to this key.
    Registered,
    /// The registry binds the name to another key: whoever sent this is not that peer.
    Impostor { registered: PublicKey },
    /// The registry knows no such name.
    Unregistered,
    /// No registry to ask: none whose key we trust yet.
    NoRegistry,
    /// The registry we trust did not answer (in time): maybe it is down, maybe someone on
    /// the path drops our lookups. Shown as such, so the user can tell it from a stranger.
    Unanswered,
}

impl Vouch {
    /// Whether the registry vouches for the key.
    pub fn is_registered(&self) -> bool {
        matches!(self, Vouch::Registered)
    }
}

/// What must happen outside the state.
#[derive(Debug)]
pub enum Effect {
    /// Show an event, with the id of the command it answers if a command caused it.
    Show(Shown),
    /// Rewrite a pin file.
    Write(FileWrite),
    /// Tell a requester how its request ended, without waiting for its reply.
    Tell { to: SocketAddr, body: PeerRequest },
    /// The open chats changed (Tab completes their names).
    ChatsChanged,
    /// A chat with messages kept for its partner is open: send them (`resume.rs`).
    Flush(PeerName),
    /// A request from a partner of an away chat: accept it without a `yes` (`resume.rs`).
    AutoAccept(PeerName),
    /// A chat message held for its turn (`order.rs`) shows now, in the order of these
    /// effects: show it, and hand what to store to its connection (store it anyway if the
    /// connection is gone: it has shown).
    Release(Held),
}

/// What the state keeps on disk, read at start.
pub struct Kept {
    pub pins: Pins,
    pub book: Book,
    pub flood: Flood,
    pub conversations: Conversations,
}

/// A request the user answered, whose answer is on its way to the requester. Its end comes
/// with [`PeerState::answer_sent`], once the answer is delivered or not.
#[must_use = "an answered request ends only through PeerState::answer_sent"]
pub struct Answering {
    pub request: PendingRequest,
    pub answer: Answer,
    /// The user said yes, but it could not be kept: the answer is `declined`.
    pub yes_refused: bool,
    /// Message 2 of the chat's handshake, when the answer is `accepted`.
    pub handshake: Option<HandshakeMessage>,
    /// The `yes` or `no` that answered (none when a reopening request is taken without one).
    pub cmd: Option<CommandId>,
}

/// Whom to tell that we leave.
#[derive(Default)]
pub struct Leaving {
    /// A sealed `disconnect` for each open chat.
    pub goodbyes: Vec<Sealed>,
    /// Requests nobody answered: their senders are waiting.
    pub unanswered: Vec<PendingRequest>,
    /// Our requests: their receivers may be asking their users.
    pub withdraw: Vec<Withdraw>,
}

/// The requests and chats at one moment, for `status`.
pub struct Snapshot {
    /// The away chats: their partners stopped answering (at their last addresses).
    pub away: Vec<PeerInfo>,
    pub chats: Vec<PeerInfo>,
    pub incoming: Vec<Waiting>,
    pub outgoing: Vec<Waiting>,
}

pub struct PeerState {
    origin: Origin,
    pins: Pins,
    book: Book,
    flood: Flood,
    conversations: Conversations,
    /// The peers heard on the LAN (`--lan`), not kept across runs.
    nearby: Nearby,
    /// The last request we accepted that reopened an away chat (`answer_sent`).
    reopening: Option<MessageId>,
    chats: Chats,
    incoming: IncomingRequests,
    outgoing: OutgoingRequests,
}

impl PeerState {
    /// The state of a peer that is `origin`, whose incoming requests wait `request_timeout`.
    pub fn new(origin: Origin, request_timeout: Duration, kept: Kept) -> PeerState {
        let Kept {
            pins,
            book,
            flood,
            conversations,
        } = kept;
        PeerState {
            origin,
            book,
            flood,
            conversations,
            nearby: Nearby::default(),
            reopening: None,
            pins,
            chats: Chats::default(),
            incoming: IncomingRequests::new(request_timeout),
            outgoing: OutgoingRequests::default(),
        }
    }

    /// When the next request expires or times out, or the next held chat message is given
    /// its turn, if any waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.incoming.next_expiry(),
            self.outgoing.next_deadline(),
            self.chats.next_hold_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Ends the requests whose time is up: ours time out; the requesters of those to us are
    /// told they expired. Chat messages held for a turn that does not come show.
    pub fn expire(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let released = self.chats.expire_holds(now);
        fx.extend(released.into_iter().map(Effect::Release));
        for (request, end) in self.incoming.expire(now) {
            fx.push(Effect::Show(end.event().into()));
            if let Some(answer) = end.owed() {
                fx.push(tell(&request, answer));
            }
        }
        for ended in self.outgoing.expire(now) {
            fx.push(Effect::Show(ended.shown()));
        }
    }

    /// Opens a chat. Requests between us and `peer` in either direction are settled by it:
    /// none of them will get (or needs) another answer.
    fn open_chat(
        &mut self,
        peer: PeerName,
        addr: SocketAddr,
        key: PublicKey,
        keys: ChatKeys,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) {
        if let Some(end) = self.incoming.settle(&peer) {
            fx.push(Effect::Show(end.event().into()));
        }
        for ended in self.outgoing.settle(&peer) {
            fx.push(Effect::Show(ended.shown()));
        }
        // The static key this chat's handshake proved for the pinned key: IK next time.
        let proved = keys.remote_static();
        if let Some(write) = self.pins.record_noise(cx.namespace, &peer, &key, proved) {
            fx.push(Effect::Write(write));
        }
        let (write, replaced) = self.conversations.opened(peer, key, addr);
        fx.push(Effect::Write(write));
        for queued in replaced {
            let queued = (queued.cmd, queued.tried);
            fx.push(Effect::Show(kept_ended(peer, queued, key_changed(&peer))));
        }
        let held = self.chats.open(peer, addr, key, keys);
        fx.extend(held.into_iter().map(Effect::Release));
        fx.push(Effect::ChatsChanged);
        if self.conversations.queued(&peer) > 0 {
            fx.push(Effect::Flush(peer));
        }
    }

    /// Ends the chat with `peer`, open or away: what was kept for it ends undelivered, each
    /// message answering the command that sent it, and our requests that would reopen it
    /// are withdrawn (an acceptance of one must not open the chat the user ended).
    fn close_chat(&mut self, peer: &PeerName, fx: &mut Vec<Effect>) {
        for withdraw in self.outgoing.stop_reopening(peer) {
            let body = PeerRequest::ChatWithdraw {
                request: withdraw.request,
            };
            fx.push(Effect::Tell {
                to: withdraw.addr,
                body,
            });
        }
        if let Some(held) = self.chats.close(peer) {
            fx.extend(held.into_iter().map(Effect::Release));
            fx.push(Effect::ChatsChanged);
        }
        if let Some((dropped, write)) = self.conversations.ended(peer) {
            fx.push(Effect::Write(write));
            for queued in dropped {
                let why = "the chat ended".to_string();
                let queued = (queued.cmd, queued.tried);
                fx.push(Effect::Show(kept_ended(*peer, queued, why)));
            }
        }
    }
}

/// The outcome of a message kept for `peer` (`queued`: its command, and whether a try of it
/// was written whole) that ends here for reason `why`: not delivered; or, once tried, no
/// acknowledgement (it may have shown), as for a message that ends on its way.
pub fn kept_ended(peer: PeerName, queued: (Option<CommandId>, bool), why: String) -> Shown {
    let (cmd, tried) = queued;
    let event = match tried {
        true => Event::from(PeerError::NoAcknowledgementEnded { peer, why }),
        false => Event::QueuedDropped { peer, why },
    };
    event.answering(cmd)
}

/// Why a message typed to `peer` under one key does not go to the key trusted since.
pub fn key_changed(peer: &PeerName) -> String {
    format!("it was typed to the key {peer} had before; {peer}'s key has changed since")
}

/// The `chat_answer` that tells a requester its request ended without a `yes` or `no`.
pub fn unanswered(request: &PendingRequest, answer: Answer) -> PeerRequest {
    PeerRequest::ChatAnswer {
        request: request.id,
        answer,
        handshake: None,
    }
}

fn tell(request: &PendingRequest, answer: Answer) -> Effect {
    Effect::Tell {
        to: request.addr,
        body: unanswered(request, answer),
    }
}

fn already_connected(from: &PeerInfo) -> Outcome {
    Outcome::error(
        ErrorCode::AlreadyConnected,
        format!("already in a chat with {}", from.name),
    )
}

/// The screen is full: the sender may try again once the user has read what waits.
fn screen_full() -> Outcome {
    Outcome::error(
        ErrorCode::Busy,
        "this peer's screen is full (its user is not reading); try again in a moment",
    )
}

#[cfg(test)]
mod tests;
