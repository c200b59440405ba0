//! Reopening away chats, the state's side of `resume.rs`: which chats to ask again, the
//! requests that ask (recorded as such, so that ending the chat withdraws them and a `no`
//! ends the chat), and the partner's own requests, taken without a `yes` while the chat is
//! still away. Without I/O.

use std::net::SocketAddr;
use std::time::Duration;

use p2p_shared::handshake::Initiator;
use p2p_shared::identity::{NoiseKey, PublicKey};
use p2p_shared::{MessageId, PeerInfo, PeerName};

use super::{Answering, Context, Effect, PeerState};
use crate::error::PeerError;
use crate::event::{Event, Shown};

/// An away chat to try to open again: whom, where it was last seen, and the static key for
/// IK when a chat proved one.
#[derive(Clone, Debug)]
pub struct Resume {
    pub peer: PeerName,
    pub key: PublicKey,
    pub addr: SocketAddr,
    pub noise: Option<NoiseKey>,
}

impl PeerState {
    /// Whether the chat with `peer` is away under `key`: kept, not open.
    pub fn away_with(&self, peer: &PeerName, key: &PublicKey) -> bool {
        self.conversations.is_resumable(peer, key) && !self.chats.contains(peer)
    }

    /// The away chats to try to open again, each at the address the book has for its key
    /// (fresher, from peer exchange) or else where it was last; not those already asked
    /// (one request at a time, or two acceptances would each open a chat).
    pub fn resumable(&self, cx: &Context) -> Vec<Resume> {
        self.conversations
            .away_chats()
            .into_iter()
            .filter(|(peer, ..)| !self.chats.contains(peer))
            .map(|(peer, key, last)| Resume {
                peer,
                key,
                addr: self.book.get(&key).map_or(last, |k| k.record.addr),
                noise: self.pins.noise(cx.namespace, &peer, &key),
            })
            .filter(|r| !self.outgoing.asking(&r.peer, r.addr))
            .collect()
    }

    /// The same for a request that reopens the away chat with `peer` under `key`
    /// (`resume.rs`): made by no command, and ended if that chat ends meanwhile
    /// ([`PeerState::end_away`]). False, and nothing recorded, if the chat is no longer
    /// away with that key (the user ended it, or it opened, since the round began): the
    /// request must not be sent.
    pub fn reopen_sent(
        &mut self,
        id: MessageId,
        (peer, key): (PeerName, PublicKey),
        addr: SocketAddr,
        handshake: Initiator,
    ) -> bool {
        let away = self.away_with(&peer, &key);
        if away {
            self.outgoing.sent(id, addr, handshake, (None, Some(peer)));
        }
        away
    }

    /// The same for a request that reopens an away chat (`resume.rs`): nothing to show
    /// until it opens (or a pin refuses the key).
    pub fn resume_pending(
        &mut self,
        id: MessageId,
        from: PeerInfo,
        expires_in: Duration,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) {
        let mut effects = Vec::new();
        self.pending_reply(id, from, (expires_in, true), cx, &mut effects);
        fx.extend(effects.into_iter().filter(|e| {
            !matches!(
                e,
                Effect::Show(Shown {
                    event: Event::RequestSent { .. },
                    ..
                })
            )
        }));
    }

    /// A request to reopen an away chat found nobody, or was refused: it ends without a
    /// word (the next round tries again).
    pub fn resume_failed(&mut self, id: MessageId) {
        let _ = self.outgoing.failed(id, PeerError::ResumeFailed);
    }

    /// The partner of an away chat asked to reopen it: accepted without a `yes`, if the chat
    /// is still away with the requester's key. If the user ended it meanwhile, the request
    /// is an ordinary one now, shown to be answered; `None` then.
    pub fn auto_answer(
        &mut self,
        peer: PeerName,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> Option<Answering> {
        let request = self.incoming.peek(Some(&peer), cx.now).ok()?;
        if !self.conversations.is_resumable(&peer, &request.key) {
            fx.push(Effect::Show(request.arrived(cx.now).into()));
            return None;
        }
        self.answer(Some(peer), true, None, cx, fx).ok()
    }
}
