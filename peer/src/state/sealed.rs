//! Our sealed frames in a chat, and what a reply to one says.
//!
//! The state seals a frame in the chat open with a partner (`chats.rs`); a task sends it
//! and brings the reply back (`in_chat.rs`), which the state reads only in the chat the frame
//! was sealed in: a chat can end, and open again under new keys, while a frame is on its way,
//! and a reply about the old chat must not move the new one.

use std::net::{IpAddr, SocketAddr};

use p2p_shared::wire::frame::ChatId;
use p2p_shared::wire::RequestDigest;
use p2p_shared::Outcome;

/// A chat frame ready to send: where, the bytes, and the counter its acknowledgement names.
pub struct Sealed {
    /// The local IP to send it from ([`p2p_shared::transport::Origin::source`]).
    pub from: Option<IpAddr>,
    pub addr: SocketAddr,
    pub frame: Vec<u8>,
    /// The chat it was sealed in: a reply is read only while that chat is the one open.
    pub chat: ChatId,
    pub counter: u64,
}

impl Sealed {
    /// What a reply to this frame must answer.
    pub fn sent(&self) -> SentFrame {
        SentFrame {
            chat: self.chat,
            counter: self.counter,
            digest: RequestDigest::of(&self.frame),
        }
    }
}

/// One of our sealed frames, as its reply must answer it: sealed in this chat, under this
/// counter, with these bytes (a refusal the partner signs names them by their digest).
#[derive(Clone, Copy, Debug)]
pub struct SentFrame {
    pub chat: ChatId,
    pub counter: u64,
    pub digest: RequestDigest,
}

/// What a reply to one of our sealed frames says
/// ([`Chats::acknowledged`](super::chats::Chats::acknowledged)).
#[derive(Debug, PartialEq)]
pub enum Acked {
    /// The partner's answer: its sealed acknowledgement, or a refusal it signed for this
    /// very frame.
    Answer(Outcome),
    /// No valid answer from the partner.
    Invalid,
    /// The chat the frame was sealed in has ended since, maybe reopened under new keys: the
    /// reply, whatever it says, is about a chat that is gone, and must not end the new one.
    ChatEnded,
}
