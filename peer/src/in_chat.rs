//! Sending one sealed frame in a chat and reading its answer: what a chat message, a kept
//! message (`resume.rs`) and a liveness check (`liveness.rs`) each do, once.
//!
//! The state seals the frame (the chat's keys and counters are its own) and reads the answer,
//! a sealed acknowledgement or a refusal the partner signed for this very frame
//! (`state/chats.rs`); this sends it on a fresh connection in between.

use std::net::SocketAddr;

use p2p_shared::identity::PublicKey;
use p2p_shared::transport::{self, SendError};
use p2p_shared::wire::frame::ChatId;
use p2p_shared::{MessageId, Outcome, PeerName, SealedRequest};

use crate::broker::Broker;
use crate::state::sealed::{Acked, Sealed};
use crate::state::PeerState;

/// What became of one sealed frame sent to a chat partner.
pub enum Sent {
    /// No chat with that peer is open.
    NoChat,
    /// The partner answered: what it said, or `None` if the answer is no valid one from it
    /// (it does not open with the chat's keys, nor is it signed by the partner for this
    /// frame).
    Answered(Option<Outcome>, Route),
    /// The chat the frame was sealed in ended while it was on its way (and may have opened
    /// again since, under new keys): the answer, whatever it was, is not the current chat's.
    ChatEnded,
    /// The connection failed.
    Failed(SendError, Route),
}

/// Where a frame went: the partner's address, and the chat it was sealed in, so that a
/// verdict on the partner (away) is passed on that chat only, never on one opened since.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub addr: SocketAddr,
    pub chat: ChatId,
}

/// What is sent in a chat this way.
pub enum Body {
    /// A chat message with this text, in its place in the chat's order (`state/order.rs`);
    /// `again` if it was sent before (a retry, or a kept message), so that the receiver asks
    /// its history before showing it; only in a chat with `to`, the key it was typed to.
    Message {
        text: String,
        again: bool,
        to: Option<PublicKey>,
    },
    /// A liveness check.
    Keepalive,
}

/// Seals `body` as message `id` in the chat with `peer`, sends it and reads the answer.
pub async fn send(broker: &Broker, peer: PeerName, id: MessageId, body: Body) -> Sent {
    let sealed = broker.call(move |state, _, _| match body {
        Body::Message { text, again, to } => state.seal_message(&peer, id, text, again, to),
        Body::Keepalive => state.seal(&peer, id, SealedRequest::Keepalive),
    });
    send_sealed(broker, peer, sealed.await.flatten()).await
}

/// Sends `sealed`, a frame the state sealed in the chat with `peer` (`None`: it had no chat
/// open), and reads the answer.
pub async fn send_sealed(broker: &Broker, peer: PeerName, sealed: Option<Sealed>) -> Sent {
    let Some(sealed) = sealed else {
        return Sent::NoChat;
    };
    let sent = sealed.sent();
    let route = Route {
        addr: sealed.addr,
        chat: sent.chat,
    };
    match transport::exchange(sealed.from, route.addr, sealed.frame).await {
        Ok(reply) => {
            let read = move |state: &mut PeerState, _: &_, _: &mut _| {
                state.acknowledged(&peer, sent, &reply)
            };
            match broker.call(read).await {
                Some(Acked::Answer(outcome)) => Sent::Answered(Some(outcome), route),
                Some(Acked::ChatEnded) => Sent::ChatEnded,
                Some(Acked::Invalid) | None => Sent::Answered(None, route),
            }
        }
        Err(e) => Sent::Failed(e, route),
    }
}
