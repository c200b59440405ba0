//! The chat lifecycle's state functions: a message as it is typed (kept for a partner who is
//! away, or given its place to be sent), a message kept, and the kept messages sent once the
//! chat is open again (see `conversations.rs` for the lifecycle itself, `reopen.rs` for
//! which away chats to ask again).

use p2p_shared::identity::PublicKey;
use p2p_shared::wire::frame::ChatId;
use p2p_shared::{MessageId, PeerName};

use super::conversations::{Place, Queued, Queueing, Typed};
use super::{kept_ended, key_changed, Context, Effect, PeerState};
use crate::error::PeerError;
use crate::event::Event;

/// What becomes of a message as it is typed ([`PeerState::message_typed`]).
pub struct Typing {
    /// Kept for the partner, who is away, rather than sent.
    pub keep: bool,
    /// Its place among the messages typed to the partner
    /// ([`Typed::place`]).
    pub place: Option<Place>,
}

impl PeerState {
    /// Message `id` to `peer` was typed: it takes its place among the messages typed to
    /// `peer`, and is kept if the chat is away; otherwise it also takes its place in the
    /// chat's order now, as typed, whenever it is sealed.
    pub fn message_typed(&mut self, peer: &PeerName, id: MessageId) -> Typing {
        let place = self.conversations.take_place(peer);
        let keep = self.keeps_for(peer);
        if !keep {
            let _ = self.chats.place_of(peer, id);
        }
        Typing { keep, place }
    }

    /// Keeps `message` for `peer`: `queued for bob: why`, answering the command that sent
    /// it, as its later outcome will. Its chat was away when this was decided; if one is open
    /// again by now (opened in a broker turn since, or a chat that ended under a message on
    /// its way, reopened), the message goes at once in it, with no verdict on that chat. A
    /// chat that ended for good keeps nothing: the message ends, as a kept one would
    /// ([`kept_ended`]: "no acknowledgement" if a try of it was written whole).
    pub fn queue_message(
        &mut self,
        peer: PeerName,
        message: Typed,
        why: String,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> Result<(), PeerError> {
        let (cmd, tried) = (message.cmd.clone(), message.tried);
        match self.conversations.queue(&peer, message, cx.utc) {
            (Queueing::Queued, write) => {
                fx.extend(write.map(Effect::Write));
                fx.push(Effect::Show(Event::Queued { peer, why }.answering(cmd)));
                if self.chats.contains(&peer) {
                    fx.push(Effect::Flush(peer));
                }
                Ok(())
            }
            (Queueing::KeyChanged, _) => {
                let why = key_changed(&peer);
                fx.push(Effect::Show(kept_ended(peer, (cmd, tried), why)));
                Ok(())
            }
            (Queueing::Full, _) => Err(PeerError::OutboxFull { peer }),
            // The chat ended for good since the message was typed: it ends too.
            (Queueing::NoChat, _) => {
                let why = "the chat ended".to_string();
                fx.push(Effect::Show(kept_ended(peer, (cmd, tried), why)));
                Ok(())
            }
        }
    }

    /// Whether messages to `peer` are kept now rather than sent: its chat is away.
    pub fn keeps_for(&self, peer: &PeerName) -> bool {
        !self.chats.contains(peer) && self.conversations.is_away(peer)
    }

    /// `message` could not reach `peer` in chat `chat` (nobody answered, or it no longer
    /// knows the chat): that chat is away (`away` says why), and the message kept (`queued`
    /// says why). Both answer the command that sent it. If another chat has opened since,
    /// it stays open, and the message goes at once in it.
    pub fn message_failed(
        &mut self,
        peer: PeerName,
        message: Typed,
        chat: ChatId,
        (away, queued): (String, String),
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> Result<(), PeerError> {
        if self.away_if(&peer, chat, fx) {
            let away = Event::PeerAway { peer, why: away };
            fx.push(Effect::Show(away.answering(message.cmd.clone())));
        }
        self.queue_message(peer, message, queued, cx, fx)
    }

    /// The next message kept for `peer`, if its chat is open, and the key it is for.
    pub fn outbox_next(&self, peer: &PeerName) -> Option<(Queued, PublicKey)> {
        if !self.chats.contains(peer) {
            return None;
        }
        self.conversations.next_queued(peer)
    }

    /// Whether kept message `id` may have shown at `peer`: set as a try of it leaves (its
    /// chat may end while it is on its way), cleared if that try proves it did not and no
    /// earlier one may have.
    pub fn outbox_tried(
        &mut self,
        peer: &PeerName,
        id: MessageId,
        tried: bool,
        fx: &mut Vec<Effect>,
    ) {
        fx.extend(self.conversations.tried(peer, id, tried).map(Effect::Write));
    }

    /// Kept message `id` reached `peer`.
    pub fn outbox_delivered(&mut self, peer: &PeerName, id: MessageId, fx: &mut Vec<Effect>) {
        fx.extend(self.conversations.delivered(peer, id).map(Effect::Write));
    }

    /// Kept messages that waited too long end now, each with its reason.
    pub fn expire_outbox(&mut self, cx: &Context, fx: &mut Vec<Effect>) {
        let (expired, write) = self.conversations.expire(cx.utc);
        fx.extend(write.map(Effect::Write));
        for (peer, queued) in expired {
            let (why, queued) = ("it waited longer than a week", (queued.cmd, queued.tried));
            fx.push(Effect::Show(kept_ended(peer, queued, why.into())));
        }
    }
}
