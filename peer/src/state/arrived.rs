//! What a sealed frame that arrived becomes ([`FromChat`]): an acknowledgement at once, or a
//! chat message to show ([`Showing`]), store ([`Storing`]) and acknowledge ([`Acks`]), now
//! or when its turn comes ([`Held`]). The broker carries these out (`broker.rs`), and the
//! connection that brought the message stores it and answers (`inbound.rs`).

use p2p_shared::{ErrorCode, MessageId, Outcome, PeerName};

use super::PeerState;
use crate::disk::Record;
use crate::event::{Event, Shown};
use crate::screen::Slot;

/// A sealed frame, opened.
pub enum FromChat {
    /// Answer with this acknowledgement now.
    Ack(Vec<u8>),
    /// A chat message whose turn came: show it now (unless it showed before: a retry), then
    /// store it and acknowledge it.
    Message(Box<ChatMessage>),
    /// A chat message from `peer` that came before its turn (`order.rs`): hold it with
    /// [`PeerState::hold`], its connection waiting.
    Early {
        peer: PeerName,
        seq: u64,
        message: Box<ChatMessage>,
    },
}

/// Where the connection of a held chat message waits: it is handed what to store and its
/// acknowledgements once the message has shown, or nothing (dropped) if it never does.
pub type Waiter = futures::channel::oneshot::Sender<(Box<Storing>, Acks)>;

/// A chat message held for its turn, its acknowledgements, and its connection.
pub struct Held {
    pub message: Box<ChatMessage>,
    pub acks: Acks,
    pub waiter: Waiter,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("id", &self.message.storing.record.id)
            .finish_non_exhaustive()
    }
}

/// A chat message that arrived: what shows when its turn comes ([`Showing`]), and what its
/// connection stores ([`Storing`]).
pub struct ChatMessage {
    pub showing: Showing,
    pub storing: Storing,
}

/// Whether a chat message shows when its turn comes, and when.
#[derive(Debug)]
pub enum Showing {
    /// A first try: it shows at once, while it is stored.
    Now(Event),
    /// Sent again (the wire's `again`) and not among the ids shown lately: it may have shown
    /// long ago or before a restart, so it shows once stored, only if the history did not
    /// have it. Its place in line is kept meanwhile ([`Storing::then`]).
    IfNew(Event),
    /// Shown before: only stored.
    Not,
}

impl Showing {
    /// How a message that arrived shows, before its id is looked at: a first try at once, one
    /// sent again (`again`) if the history lacks it.
    pub fn arrived(event: Event, again: bool) -> Showing {
        match again {
            true => Showing::IfNew(event),
            false => Showing::Now(event),
        }
    }
}

/// What the connection of a received chat message does: stores `record` (then fills `then`,
/// the place kept for a message shown only if new, if it was), then answers as its [`Acks`]
/// say.
pub struct Storing {
    pub record: Record,
    /// What its acknowledgement answers.
    pub ack: AckTo,
    /// Set by the broker for [`Showing::IfNew`]: the place kept, and what fills it.
    pub then: Option<(Slot, Shown)>,
}

/// The frame a chat message's acknowledgement answers. The broker seals its [`Acks`]
/// ([`PeerState::seal_acks`]) in the turn that opened the frame, under that chat's keys:
/// after the message shows, so that sealing never delays the line.
#[derive(Debug, Clone, Copy)]
pub struct AckTo {
    pub peer: PeerName,
    /// The counter of the frame it answers: acknowledgements are sealed under it.
    pub counter: u64,
    pub re: MessageId,
}

/// A chat message's acknowledgements once its store is done, sealed: only what its
/// [`Showing`] can need, since sealing is work on the path of every message.
pub enum Acks {
    /// It shows whether or not it is stored (a first try, or shown before): `ok` either way,
    /// and a failed store is told to the receiver's user.
    Ok(Vec<u8>),
    /// It shows only once stored ([`Showing::IfNew`]): `ok` if it was; `busy` if the store
    /// failed, and it has not shown: its sender tries again.
    OkOrBusy { ok: Vec<u8>, busy: Vec<u8> },
}

impl PeerState {
    /// The acknowledgements of a chat message that [`PeerState::open_sealed`] gave in this
    /// same turn, its chat still open; `once_stored` if it shows only once stored
    /// ([`Showing::IfNew`]).
    pub fn seal_acks(&self, to: AckTo, once_stored: bool) -> Acks {
        let ok = self.seal_ack(to, Outcome::Ok);
        match once_stored {
            true => Acks::OkOrBusy {
                ok,
                busy: self.seal_busy(to),
            },
            false => Acks::Ok(ok),
        }
    }

    /// `busy` for a chat message, as [`PeerState::seal_acks`]: the receiver cannot take it
    /// now (its store failed before it could show, or a later try took its place).
    pub fn seal_busy(&self, to: AckTo) -> Vec<u8> {
        let busy = Outcome::error(ErrorCode::Busy, "the receiver cannot take the message now");
        self.seal_ack(to, busy)
    }

    fn seal_ack(&self, to: AckTo, outcome: Outcome) -> Vec<u8> {
        let AckTo { peer, counter, re } = to;
        let chats = &self.chats;
        let sealed = chats.seal_ack(&self.origin, &peer, counter, Some(re), outcome);
        sealed.expect("the chat is open in the turn that opened its frame")
    }
}
