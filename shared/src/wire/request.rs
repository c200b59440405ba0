//! Requests, typed by who receives them: the registry ([`RegistryRequest`]), a peer, signed
//! ([`PeerRequest`]), or a peer inside a chat, sealed ([`SealedRequest`]).
//!
//! On the wire each is the `body` of an envelope, told apart by its `type`
//! (docs/protocol.md, "Requests to the registry" and "Requests to a peer"). A receiver decodes
//! only its own kind; a well-formed request meant for another kind of receiver is refused as
//! `unsupported_request` with [`Request::ELSEWHERE`], not as a malformed message.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::broadcast::Broadcast;
use crate::handshake::{HandshakeMessage, Pattern};
use crate::name::PeerName;
use crate::record::{records, PeerRecord};
use crate::wire::envelope::MessageId;

/// The longest chat text, in bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 8 * 1024;

/// A request body for one kind of receiver.
pub trait Request: Serialize + DeserializeOwned {
    /// The `type`s of these requests.
    const TYPES: &'static [&'static str];
    /// What a receiver of these says to a request meant for another kind of receiver.
    const ELSEWHERE: &'static str;
}

/// What a peer asks of the registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RegistryRequest {
    /// Bind `from.name` to `from.addr`. With `pattern` and `handshake`, message 1 of a Noise
    /// handshake, it also opens a registry session (`registry_session.rs`).
    Register {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<Pattern>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handshake: Option<HandshakeMessage>,
    },
    /// Remove `from.name`'s address (the name stays bound to its key).
    Unregister,
    /// Give up the name `from.name` for good, so another key may claim it.
    Release,
    /// One page of registered peers, sorted by name, after `after`.
    ListPeers { after: Option<PeerName> },
    /// The address of one peer.
    Lookup { name: PeerName },
    /// Are you there, and who are you?
    Ping,
}

impl Request for RegistryRequest {
    const TYPES: &'static [&'static str] = &[
        "register",
        "unregister",
        "release",
        "list_peers",
        "lookup",
        "ping",
    ];
    const ELSEWHERE: &'static str =
        "this is the registry: chat requests and messages go to peers directly";
}

/// What a peer asks of another peer, signed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PeerRequest {
    /// Are you there, and who are you?
    Ping,
    /// May we chat? `handshake` is message 1 of the chat's Noise handshake, in `pattern`.
    /// Answered later with a [`PeerRequest::ChatAnswer`].
    ChatRequest {
        pattern: Pattern,
        handshake: HandshakeMessage,
    },
    /// The answer to the chat request with id `request`; an acceptance carries message 2 of
    /// the handshake.
    ChatAnswer {
        request: MessageId,
        answer: Answer,
        handshake: Option<HandshakeMessage>,
    },
    /// The requester withdraws its chat request with id `request`, still unanswered: it
    /// exits. Signed by the requester's key, which must be the request's: nobody else can
    /// withdraw it. Answered `ok`, or `unknown_request` when no such request from the sender
    /// waits (answered, expired, never made).
    ChatWithdraw { request: MessageId },
    /// Peer exchange: the sender's own record and a page of the records it knows. Answered
    /// with the receiver's own record and a page of its own ([`crate::Outcome::Records`]).
    Exchange {
        #[serde(with = "records")]
        records: Vec<PeerRecord>,
    },
    /// A broadcast, as its origin signed it, and how many peers passed it on so far (not
    /// signed: each adds one). Answered `ok` once taken, new or not.
    Broadcast { message: Broadcast, hops: u8 },
}

impl Request for PeerRequest {
    const TYPES: &'static [&'static str] = &[
        "ping",
        "chat_request",
        "chat_answer",
        "chat_withdraw",
        "exchange",
        "broadcast",
    ];
    const ELSEWHERE: &'static str =
        "this is a peer: registry requests go to the registry, chat messages travel sealed";
}

/// What a peer sends inside a chat, sealed with the chat's keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SealedRequest {
    /// One chat line, and its place in the order its sender typed the chat's lines: 1 for the
    /// first in this chat, then one more for each. Several may be in flight at once, on
    /// connections of their own, so the receiver shows them by `seq`, not as they arrive. A
    /// retry keeps the line's `seq` (and its envelope id) in a new frame with a new counter:
    /// the counter cannot give the order.
    ChatMessage {
        text: String,
        seq: u64,
        /// Sent before (a retry, or a message kept while the chat was away), so it may have
        /// shown already, maybe before the receiver restarted: the receiver shows it only if
        /// its history does not have it. Absent on a first try, which shows at once.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        again: bool,
    },
    /// The chat is over.
    Disconnect,
    /// Are you there, in this chat? Only the partner that holds the chat's keys can answer:
    /// a new process at the same address cannot keep a dead chat alive.
    Keepalive,
}

impl Request for SealedRequest {
    const TYPES: &'static [&'static str] = &["chat_message", "disconnect", "keepalive"];
    const ELSEWHERE: &'static str = "only chat messages and disconnects travel sealed in a chat";
}

/// Whether `kind` is the `type` of a request some receiver other than `B`'s takes.
pub(crate) fn is_elsewhere<B: Request>(kind: &str) -> bool {
    let all = [
        RegistryRequest::TYPES,
        PeerRequest::TYPES,
        SealedRequest::TYPES,
    ];
    !B::TYPES.contains(&kind) && all.iter().any(|types| types.contains(&kind))
}

/// How a chat request ended on the side that received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Accepted,
    Declined,
    /// Nobody answered before the request's expiry.
    Expired,
    /// The peer left (exited) without answering.
    Left,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{Initiator, Recipient};
    use crate::identity::Identity;
    use crate::wire::new_id;

    fn type_of(request: &impl Serialize) -> String {
        serde_json::to_value(request).unwrap()["type"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn each_receiver_lists_the_types_it_takes() {
        let (_, pattern, handshake) =
            Initiator::start(&Identity::generate(), new_id(), Recipient::Unknown(None));
        let name: PeerName = "bob".parse().unwrap();
        let registry = [
            RegistryRequest::Register {
                pattern: None,
                handshake: None,
            },
            RegistryRequest::Unregister,
            RegistryRequest::Release,
            RegistryRequest::ListPeers { after: None },
            RegistryRequest::Lookup { name },
            RegistryRequest::Ping,
        ];
        let types: Vec<String> = registry.iter().map(type_of).collect();
        assert_eq!(types, RegistryRequest::TYPES);
        let peer = [
            PeerRequest::Ping,
            PeerRequest::ChatRequest { pattern, handshake },
            PeerRequest::ChatAnswer {
                request: new_id(),
                answer: Answer::Declined,
                handshake: None,
            },
            PeerRequest::ChatWithdraw { request: new_id() },
            PeerRequest::Exchange { records: vec![] },
            PeerRequest::Broadcast {
                message: crate::broadcast::Broadcast::sign(
                    &Identity::generate(),
                    name,
                    new_id(),
                    0,
                    "hi".into(),
                ),
                hops: 0,
            },
        ];
        let types: Vec<String> = peer.iter().map(type_of).collect();
        assert_eq!(types, PeerRequest::TYPES);
        let sealed = [
            SealedRequest::ChatMessage {
                text: "hi".into(),
                seq: 1,
                again: false,
            },
            SealedRequest::Disconnect,
            SealedRequest::Keepalive,
        ];
        let types: Vec<String> = sealed.iter().map(type_of).collect();
        assert_eq!(types, SealedRequest::TYPES);
    }

    #[test]
    fn a_type_is_elsewhere_only_if_another_receiver_takes_it() {
        assert!(is_elsewhere::<RegistryRequest>("chat_request"));
        assert!(is_elsewhere::<PeerRequest>("register"));
        assert!(is_elsewhere::<SealedRequest>("ping"));
        assert!(
            !is_elsewhere::<PeerRequest>("ping"),
            "a peer takes pings too"
        );
        assert!(!is_elsewhere::<PeerRequest>("frobnicate"));
    }
}
