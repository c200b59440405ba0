//! What a sealed frame that arrived becomes ([`FromChat`]): an acknowledgement at once, or a
//! chat message to show ([`Showing`]), store ([`Storing`]) and acknowledge (its sealed `ok`,
//! [`PeerState::seal_ok`]), now or when its turn comes ([`Held`]). The broker carries these
//! out (`broker.rs`), and the connection that brought the message stores it and answers
//! (`inbound.rs`).

use p2p_shared::{MessageId, Outcome, PeerName};

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
/// sealed `ok` once the message has shown, or nothing (dropped) if it never does.
pub type Waiter = futures::channel::oneshot::Sender<(Box<Storing>, Vec<u8>)>;

/// A chat message held for its turn, its sealed `ok`, and its connection.
pub struct Held {
    pub message: Box<ChatMessage>,
    pub ok: Vec<u8>,
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
/// the place kept for a message shown only if new, if it was), then answers `ok`. If it
/// cannot be stored: `ok` all the same for a message that has shown (the receiver's user is
/// told), a signed `busy` for one that waited for the store to show (its sender retries).
pub struct Storing {
    pub record: Record,
    /// What its acknowledgement answers.
    pub ack: AckTo,
    /// Set by the broker for [`Showing::IfNew`]: the place kept, and what fills it.
    pub then: Option<(Slot, Shown)>,
}

/// The frame a chat message's acknowledgement answers. The broker seals its `ok`
/// ([`PeerState::seal_ok`]) in the turn that opened the frame, under that chat's keys: after
/// the message shows, so that sealing never delays the line.
#[derive(Debug, Clone, Copy)]
pub struct AckTo {
    pub peer: PeerName,
    /// The counter of the frame it answers: acknowledgements are sealed under it.
    pub counter: u64,
    pub re: MessageId,
}

impl PeerState {
    /// The sealed `ok` of a chat message that [`PeerState::open_sealed`] gave in this same
    /// turn, its chat still open. Its other answer, `busy` (a store that failed before the
    /// message showed, a later try that took its place), is rare, and goes signed
    /// (`Refusal::NotNow`): every message costs one seal.
    pub fn seal_ok(&self, to: AckTo) -> Vec<u8> {
        let AckTo { peer, counter, re } = to;
        let chats = &self.chats;
        let sealed = chats.seal_ack(&self.origin, &peer, counter, Some(re), Outcome::Ok);
        sealed.expect("the chat is open in the turn that opened its frame")
    }
}
