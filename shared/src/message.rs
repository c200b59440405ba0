//! Everything that travels on the wire: the envelope, the requests and the replies.
//!
//! Every message, in both directions, is an [`Envelope`]: version, id, time, sender, body.
//! Requests carry a [`Request`] body, replies a [`Reply`] body that points back at the request
//! it answers. docs/protocol.md describes the JSON this produces.
//!
//! On the wire an envelope travels either signed by its sender's key ([`Envelope::sign`],
//! [`SignedEnvelope`]: a peer's first registration, chat requests and answers, every reply to
//! them), sealed inside a chat session (`seal.rs`: chat messages, disconnects and their
//! acknowledgements) or authenticated in a registry session (`registry_session.rs`: a
//! registered peer's requests to its registry and their replies).

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::identity::{Identity, PublicKey, Signature};
use crate::name::PeerName;
use crate::seal::EphemeralKey;

/// The version this code speaks. A receiver refuses every other version.
pub const PROTOCOL_VERSION: u16 = 4;

/// The first byte of a frame holding a signed envelope: `'S' | signature (64) | JSON`.
pub const SIGNED: u8 = b'S';

/// What a signature covers besides the JSON, so that it cannot be taken for a signature made
/// for some other purpose with the same key.
const SIGNING_CONTEXT: &[u8] = b"p2p-chat/2 signed envelope\0";

/// The longest chat text, in bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 8 * 1024;

/// The longest human-readable error detail, in bytes.
pub const MAX_DETAIL_LEN: usize = 256;

/// The most peers in one `peers` reply.
pub const PEERS_PAGE_LEN: usize = 256;

/// A random UUID naming one message.
pub type MessageId = Uuid;

/// Who sent a message, with which key, and where it listens for answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub name: PeerName,
    pub addr: SocketAddr,
    pub key: PublicKey,
}

/// The wrapper around every message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<B> {
    pub v: u16,
    pub id: MessageId,
    pub at: DateTime<Utc>,
    pub from: Sender,
    pub body: B,
}

/// What a sender asks of a registry or a peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Registry: bind `from.name` to `from.addr`. With `share`, the peer's half of a key
    /// agreement, it also opens a registry session (`registry_session.rs`).
    Register {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        share: Option<EphemeralKey>,
    },
    /// Registry: remove `from.name`'s address (the name stays bound to its key).
    Unregister,
    /// Registry: give up the name `from.name` for good, so another key may claim it.
    Release,
    /// Registry: one page of registered peers, sorted by name, after `after`.
    ListPeers { after: Option<PeerName> },
    /// Registry: the address of one peer.
    Lookup { name: PeerName },
    /// Anyone: are you there, and who are you?
    Ping,
    /// Peer: may we chat? `share` is the requester's half of the chat's key agreement.
    /// Answered later with a [`Request::ChatAnswer`].
    ChatRequest { share: EphemeralKey },
    /// Peer: the answer to the chat request with id `request`; an acceptance carries the
    /// accepter's half of the key agreement.
    ChatAnswer {
        request: MessageId,
        answer: Answer,
        share: Option<EphemeralKey>,
    },
    /// Peer: one chat line.
    ChatMessage { text: String },
    /// Peer: the chat is over.
    Disconnect,
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

/// The body of every reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "reply")]
pub struct Reply {
    /// The id of the request this answers; `None` when the request could not be read.
    pub re: Option<MessageId>,
    pub result: Outcome,
}

/// A reply whose outcome is JSON already: how the registry sends a page of peers that it
/// encoded once for everyone who lists, until the list changes (server/src/pages.rs). On
/// the wire it is a [`Reply`] like any other.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "reply")]
pub struct EncodedReply<'a> {
    pub re: Option<MessageId>,
    pub result: &'a RawValue,
}

/// What became of a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The address and the key the registry recorded for the name, and for how long: the
    /// registration lapses unless renewed (registered again) within `ttl_ms`. `share` is the
    /// registry's half of the key agreement when the request opened a session.
    Registered {
        addr: SocketAddr,
        key: PublicKey,
        ttl_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        share: Option<EphemeralKey>,
    },
    /// A page of peers; on the wire each is a row, `[name, addr, key]` ([`rows`]).
    Peers {
        #[serde(with = "rows")]
        peers: Vec<PeerInfo>,
        next: Option<PeerName>,
    },
    Peer {
        peer: PeerInfo,
    },
    Pending {
        expires_in_ms: u64,
    },
    Error {
        code: ErrorCode,
        detail: String,
    },
}

impl Outcome {
    /// An error outcome; the detail is cut to [`MAX_DETAIL_LEN`] bytes.
    pub fn error(code: ErrorCode, detail: impl Into<String>) -> Outcome {
        let mut detail = detail.into();
        if detail.len() > MAX_DETAIL_LEN {
            let mut end = MAX_DETAIL_LEN;
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail.truncate(end);
        }
        Outcome::Error { code, detail }
    }
}

/// A registered peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub name: PeerName,
    pub addr: SocketAddr,
    pub key: PublicKey,
}

/// The peers of a page as rows, `[name, addr, key]`, instead of objects.
///
/// Why: a page is a table, and as objects it spelled out the three field names for every
/// peer, a fifth of a 24 KB page of 256 peers. Every byte of a page costs both ends: the
/// registry's tag and the peer's tag check and parse all run over it, and at 256 clients a
/// page is half the registry's replies (docs/benchmarks.md, item 15). A single peer (a
/// `lookup`'s answer) stays an object, where the names cost little and read well.
mod rows {
    use std::fmt;
    use std::net::SocketAddr;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    use super::{PeerInfo, PEERS_PAGE_LEN};
    use crate::identity::PublicKey;
    use crate::name::PeerName;

    pub fn serialize<S: Serializer>(peers: &[PeerInfo], out: S) -> Result<S::Ok, S::Error> {
        out.collect_seq(peers.iter().map(|p| (&p.name, p.addr, &p.key)))
    }

    /// Reads at most [`PEERS_PAGE_LEN`] rows: a page with more is not one the registry sends.
    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Vec<PeerInfo>, D::Error> {
        input.deserialize_seq(Rows)
    }

    struct Rows;

    impl<'de> Visitor<'de> for Rows {
        type Value = Vec<PeerInfo>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "at most {PEERS_PAGE_LEN} rows [name, addr, key]")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut rows: A) -> Result<Self::Value, A::Error> {
            let mut peers = Vec::new();
            while let Some((name, addr, key)) =
                rows.next_element::<(PeerName, SocketAddr, PublicKey)>()?
            {
                if peers.len() == PEERS_PAGE_LEN {
                    return Err(de::Error::invalid_length(PEERS_PAGE_LEN + 1, &self));
                }
                peers.push(PeerInfo { name, addr, key });
            }
            Ok(peers)
        }
    }
}

/// Why a request failed. docs/protocol.md explains each code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadFrame,
    BadMessage,
    UnsupportedVersion,
    AddressMismatch,
    UnsupportedRequest,
    InvalidRequest,
    NameTaken,
    NotRegistered,
    UnknownPeer,
    RegistryFull,
    AlreadyConnected,
    TooManyRequests,
    UnknownRequest,
    Busy,
    BadSignature,
    /// Too old, from the future, or already received.
    Stale,
    /// The sender's key is not the one pinned for its name.
    KeyChanged,
    UnknownSession,
    /// A code from a newer version of the protocol.
    #[serde(other)]
    Unknown,
}

/// Why bytes could not be turned into an envelope.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a valid message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("protocol version {0} is not supported (this program speaks {PROTOCOL_VERSION})")]
    Version(u16),
    #[error("not a signed frame")]
    NotSigned,
}

impl DecodeError {
    /// The error code a receiver answers this with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::Malformed(_) | DecodeError::NotSigned => ErrorCode::BadMessage,
            DecodeError::Version(_) => ErrorCode::UnsupportedVersion,
        }
    }
}

impl<B: Serialize> Envelope<B> {
    /// A message from `from` with the given id, stamped now.
    pub fn new(id: MessageId, from: Sender, body: B) -> Self {
        Envelope {
            v: PROTOCOL_VERSION,
            id,
            at: Utc::now(),
            from,
            body,
        }
    }

    /// The JSON of this envelope.
    pub fn encode(&self) -> Vec<u8> {
        let mut json = Vec::with_capacity(256);
        self.encode_into(&mut json);
        json
    }

    /// Appends the JSON of this envelope to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Serializing these types cannot fail: no maps with non-string keys, no custom
        // serializers that error, and writing to a `Vec` does not fail.
        serde_json::to_writer(out, self).expect("envelopes always serialize")
    }

    /// The frame body for this envelope, signed with `identity` (which must be `from.key`'s).
    pub fn sign(&self, identity: &Identity) -> Vec<u8> {
        let json = self.encode();
        let signature = identity.sign(&signed_bytes(&json));
        let mut frame = Vec::with_capacity(1 + 64 + json.len());
        frame.push(SIGNED);
        frame.extend_from_slice(&signature.to_bytes());
        frame.extend_from_slice(&json);
        frame
    }
}

impl<B: DeserializeOwned> Envelope<B> {
    /// Parses a frame body. Every message is parsed once; only one that does not parse is
    /// looked at again for its version, so that a peer speaking another version gets a clear
    /// `unsupported_version` rather than a complaint about fields.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            v: u16,
        }
        match serde_json::from_slice::<Self>(bytes) {
            Ok(envelope) if envelope.v == PROTOCOL_VERSION => Ok(envelope),
            Ok(envelope) => Err(DecodeError::Version(envelope.v)),
            Err(e) => match serde_json::from_slice::<VersionOnly>(bytes) {
                Ok(VersionOnly { v }) if v != PROTOCOL_VERSION => Err(DecodeError::Version(v)),
                _ => Err(DecodeError::Malformed(e)),
            },
        }
    }
}

/// An envelope read from a signed frame, with its signature not yet checked: checking costs
/// a public-key operation, which a receiver may skip for requests anyone may make.
pub struct SignedEnvelope<B> {
    pub envelope: Envelope<B>,
    signature: Signature,
    json: Vec<u8>,
}

impl<B: Serialize + DeserializeOwned> SignedEnvelope<B> {
    /// Parses a signed frame body.
    pub fn decode(frame: &[u8]) -> Result<Self, DecodeError> {
        if frame.len() < 1 + 64 || frame[0] != SIGNED {
            return Err(DecodeError::NotSigned);
        }
        let signature = Signature::from_bytes(frame[1..65].try_into().expect("64 bytes"));
        let json = frame[65..].to_vec();
        let envelope = Envelope::decode(&json)?;
        Ok(SignedEnvelope {
            envelope,
            signature,
            json,
        })
    }

    /// Whether the envelope was signed by the key it names as its sender's.
    pub fn verify(&self) -> bool {
        self.envelope
            .from
            .key
            .verify(&signed_bytes(&self.json), &self.signature)
    }
}

fn signed_bytes(json: &[u8]) -> Vec<u8> {
    [SIGNING_CONTEXT, json].concat()
}

/// Makes a fresh random message id.
pub fn new_id() -> MessageId {
    Uuid::new_v4()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Sender {
        Sender {
            name: "alice".parse().unwrap(),
            addr: "127.0.0.1:40001".parse().unwrap(),
            key: Identity::generate().public(),
        }
    }

    #[test]
    fn a_request_looks_like_the_protocol_document() {
        let env = Envelope::new(
            new_id(),
            alice(),
            Request::ChatMessage {
                text: "Hello, bob.".into(),
            },
        );
        let json: serde_json::Value = serde_json::from_slice(&env.encode()).unwrap();
        assert_eq!(json["v"], 4);
        assert_eq!(json["from"]["name"], "alice");
        assert_eq!(json["from"]["addr"], "127.0.0.1:40001");
        assert_eq!(json["body"]["type"], "chat_message");
        assert_eq!(json["body"]["text"], "Hello, bob.");
        assert_eq!(Envelope::<Request>::decode(&env.encode()).unwrap(), env);
    }

    #[test]
    fn a_reply_looks_like_the_protocol_document() {
        let re = new_id();
        let env = Envelope::new(
            new_id(),
            alice(),
            Reply {
                re: Some(re),
                result: Outcome::Pending {
                    expires_in_ms: 60_000,
                },
            },
        );
        let json: serde_json::Value = serde_json::from_slice(&env.encode()).unwrap();
        assert_eq!(json["body"]["type"], "reply");
        assert_eq!(json["body"]["re"], re.to_string());
        assert_eq!(json["body"]["result"]["type"], "pending");
        assert_eq!(json["body"]["result"]["expires_in_ms"], 60_000);
        assert_eq!(Envelope::<Reply>::decode(&env.encode()).unwrap(), env);
    }

    #[test]
    fn an_encoded_reply_is_the_same_reply() {
        let result = Outcome::Peers {
            peers: vec![PeerInfo {
                name: "bob".parse().unwrap(),
                addr: "127.0.0.1:40002".parse().unwrap(),
                key: Identity::generate().public(),
            }],
            next: Some("bob".parse().unwrap()),
        };
        let (id, re) = (new_id(), Some(new_id()));
        let from = alice();
        let plain = Envelope::new(id, from.clone(), Reply { re, result });
        let encoded = serde_json::value::to_raw_value(&plain.body.result).unwrap();
        let mut same = Envelope::new(
            id,
            from,
            EncodedReply {
                re,
                result: &encoded,
            },
        );
        same.at = plain.at;
        assert_eq!(same.encode(), plain.encode());
    }

    #[test]
    fn a_page_lists_its_peers_as_rows() {
        let key = Identity::generate().public();
        let bob = PeerInfo {
            name: "bob".parse().unwrap(),
            addr: "127.0.0.1:40002".parse().unwrap(),
            key,
        };
        let page = Outcome::Peers {
            peers: vec![bob.clone()],
            next: Some(bob.name),
        };
        let json = serde_json::to_string(&page).unwrap();
        let k = serde_json::to_string(&key).unwrap();
        assert_eq!(
            json,
            format!(r#"{{"type":"peers","peers":[["bob","127.0.0.1:40002",{k}]],"next":"bob"}}"#)
        );
        assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), page);

        // One peer, a lookup's answer, stays an object.
        let one = serde_json::to_string(&Outcome::Peer { peer: bob.clone() }).unwrap();
        assert_eq!(
            one,
            format!(
                r#"{{"type":"peer","peer":{{"name":"bob","addr":"127.0.0.1:40002","key":{k}}}}}"#
            )
        );

        // A row is exactly name, address and key, each valid; a peer as an object is no row.
        let page_of = |rows: &str| format!(r#"{{"type":"peers","peers":[{rows}],"next":null}}"#);
        let row = format!(r#"["bob","127.0.0.1:1",{k}]"#);
        assert!(serde_json::from_str::<Outcome>(&page_of(&row)).is_ok());
        for bad in [
            r#"["bob","127.0.0.1:1"]"#.to_string(),
            format!(r#"["bob","127.0.0.1:1",{k},1]"#),
            format!(r#"["b b","127.0.0.1:1",{k}]"#),
            format!(r#"["bob","nowhere",{k}]"#),
            r#"["bob","127.0.0.1:1","short"]"#.to_string(),
            format!(r#"{{"name":"bob","addr":"127.0.0.1:1","key":{k}}}"#),
        ] {
            assert!(
                serde_json::from_str::<Outcome>(&page_of(&bad)).is_err(),
                "{bad}"
            );
        }

        // A page holds at most PEERS_PAGE_LEN rows.
        let full = vec![row.as_str(); PEERS_PAGE_LEN].join(",");
        assert!(serde_json::from_str::<Outcome>(&page_of(&full)).is_ok());
        let over = format!("{full},{row}");
        assert!(serde_json::from_str::<Outcome>(&page_of(&over)).is_err());
    }

    #[test]
    fn a_request_is_not_a_reply() {
        let env = Envelope::new(new_id(), alice(), Request::Ping);
        assert!(Envelope::<Reply>::decode(&env.encode()).is_err());
    }

    #[test]
    fn another_version_is_refused_as_such() {
        let mut json: serde_json::Value =
            serde_json::from_slice(&Envelope::new(new_id(), alice(), Request::Ping).encode())
                .unwrap();
        json["v"] = 1.into();
        let err = Envelope::<Request>::decode(json.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnsupportedVersion);
    }

    #[test]
    fn invalid_names_and_garbage_are_malformed() {
        let bad_name = r#"{"v":4,"id":"0b8e6a0e-7b0c-4a73-9c55-2b1f6f1a9a11","at":"2026-11-21T10:00:00Z","from":{"name":"al ice","addr":"127.0.0.1:1"},"body":{"type":"ping"}}"#;
        for bytes in [bad_name.as_bytes(), b"{", b"\xff\xfe", b"[]", b"{\"v\":4}"] {
            let err = Envelope::<Request>::decode(bytes).unwrap_err();
            assert_eq!(err.code(), ErrorCode::BadMessage, "{bytes:?}");
        }
    }

    #[test]
    fn a_signed_envelope_verifies_only_unchanged_and_with_the_senders_key() {
        let identity = Identity::generate();
        let mut from = alice();
        from.key = identity.public();
        let frame = Envelope::new(new_id(), from.clone(), Request::Ping).sign(&identity);
        assert!(SignedEnvelope::<Request>::decode(&frame).unwrap().verify());

        // Any change to the JSON breaks the signature (or the JSON).
        for i in 65..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x01;
            if let Ok(env) = SignedEnvelope::<Request>::decode(&bad) {
                assert!(!env.verify(), "byte {i} changed and still verified");
            }
        }
        // Signed by another key than the one it names.
        let forged = Envelope::new(new_id(), from, Request::Ping).sign(&Identity::generate());
        assert!(!SignedEnvelope::<Request>::decode(&forged).unwrap().verify());
        assert!(SignedEnvelope::<Request>::decode(b"S short").is_err());
    }

    #[test]
    fn unknown_error_codes_still_parse() {
        let outcome: Outcome =
            serde_json::from_str(r#"{"type":"error","code":"from_the_future","detail":""}"#)
                .unwrap();
        assert!(matches!(
            outcome,
            Outcome::Error {
                code: ErrorCode::Unknown,
                ..
            }
        ));
    }

    #[test]
    fn error_details_are_cut_on_a_char_boundary() {
        let Outcome::Error { detail, .. } = Outcome::error(ErrorCode::Busy, "é".repeat(200))
        else {
            unreachable!()
        };
        assert!(detail.len() <= MAX_DETAIL_LEN);
        assert!(detail.chars().all(|c| c == 'é'));
    }
}
