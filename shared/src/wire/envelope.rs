//! The envelope around every message, and how it is signed.
//!
//! Every message, in both directions, is an [`Envelope`]: version, id, time, sender, body.
//! Requests carry a request body (`request.rs`), replies a [`ReplyBody`] that points back
//! at the request it answers (`reply.rs`). docs/protocol.md, "Envelope", describes the JSON
//! this produces.
//!
//! On the wire an envelope travels either signed by its sender's key ([`Envelope::sign`],
//! [`SignedEnvelope`], an `S` frame), sealed inside a chat (`seal.rs`, `E` and `A` frames)
//! or authenticated in a registry session (`registry_session.rs`, `R` and `r` frames).
//!
//! [`ReplyBody`]: crate::wire::ReplyBody

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::identity::{Identity, PublicKey, Signature};
use crate::name::PeerName;
use crate::wire::frame;
use crate::wire::request::{self, Request};

/// The version this code speaks. A receiver refuses every other version.
pub const PROTOCOL_VERSION: u16 = 6;

/// What a signature covers besides the JSON, so that it cannot be taken for a signature made
/// for some other purpose with the same key.
const SIGNING_CONTEXT: &[u8] = b"p2p-chat/2 signed envelope\0";

/// A random UUID naming one message.
pub type MessageId = Uuid;

/// Makes a fresh random message id.
pub fn new_id() -> MessageId {
    Uuid::new_v4()
}

/// A peer: its name, the address it listens on and its key. The sender of every envelope,
/// and every entry of the registry's listings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
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
    pub from: PeerInfo,
    pub body: B,
}

/// Why bytes could not be turned into an envelope.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a valid message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error(
        "protocol version {0} is not supported (this program speaks {PROTOCOL_VERSION}): both \
         sides need a p2p-chat of the same protocol version; upgrade the older one"
    )]
    Version(u16),
    #[error("not a signed frame")]
    NotSigned,
    /// A well-formed request for another kind of receiver.
    #[error("{0}")]
    Elsewhere(&'static str),
}

impl DecodeError {
    /// The error code a receiver answers this with.
    pub fn code(&self) -> crate::wire::ErrorCode {
        use crate::wire::ErrorCode;
        match self {
            DecodeError::Malformed(_) | DecodeError::NotSigned => ErrorCode::BadMessage,
            DecodeError::Version(_) => ErrorCode::UnsupportedVersion,
            DecodeError::Elsewhere(_) => ErrorCode::UnsupportedRequest,
        }
    }
}

impl<B: Serialize> Envelope<B> {
    /// A message from `from` with the given id, stamped now.
    pub fn new(id: MessageId, from: PeerInfo, body: B) -> Self {
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
        frame::signed(&signature.to_bytes(), &json)
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

impl<B: Request> Envelope<B> {
    /// Parses a request: as [`Envelope::decode`], and a request that is a complete envelope
    /// of this version but has a `type` another kind of receiver takes is
    /// [`DecodeError::Elsewhere`]. Anything less than a complete envelope stays malformed, so
    /// that `unsupported_request` always means "well-formed, wrong receiver".
    pub fn decode_request(bytes: &[u8]) -> Result<Self, DecodeError> {
        /// Any request body: only its type is read.
        #[derive(Deserialize)]
        struct AnyRequest {
            #[serde(rename = "type")]
            kind: String,
        }
        match Self::decode(bytes) {
            Err(DecodeError::Malformed(e)) => match Envelope::<AnyRequest>::decode(bytes) {
                Ok(any) if request::is_elsewhere::<B>(&any.body.kind) => {
                    Err(DecodeError::Elsewhere(B::ELSEWHERE))
                }
                _ => Err(DecodeError::Malformed(e)),
            },
            other => other,
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

impl<B: DeserializeOwned> SignedEnvelope<B> {
    /// Parses a signed frame body.
    pub fn decode(frame: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_with(frame, Envelope::decode)
    }

    fn decode_with(
        frame: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<Envelope<B>, DecodeError>,
    ) -> Result<Self, DecodeError> {
        let (signature, json) = frame::parse_signed(frame).ok_or(DecodeError::NotSigned)?;
        let envelope = decode(json)?;
        Ok(SignedEnvelope {
            envelope,
            signature: Signature::from_bytes(signature),
            json: json.to_vec(),
        })
    }
}

impl<B> SignedEnvelope<B> {
    /// Whether the envelope was signed by the key it names as its sender's.
    pub fn verify(&self) -> bool {
        self.envelope
            .from
            .key
            .verify(&signed_bytes(&self.json), &self.signature)
    }
}

impl<B: Request> SignedEnvelope<B> {
    /// Parses a signed request (see [`Envelope::decode_request`]).
    pub fn decode_request(frame: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_with(frame, Envelope::decode_request)
    }
}

fn signed_bytes(json: &[u8]) -> Vec<u8> {
    [SIGNING_CONTEXT, json].concat()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::{PeerRequest, RegistryRequest, ReplyBody, SealedRequest};

    pub(crate) fn alice() -> PeerInfo {
        PeerInfo {
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
            SealedRequest::ChatMessage {
                text: "Hello, bob.".into(),
                seq: 1,
                again: false,
            },
        );
        let json: serde_json::Value = serde_json::from_slice(&env.encode()).unwrap();
        assert_eq!(json["v"], 6);
        assert_eq!(json["from"]["name"], "alice");
        assert_eq!(json["from"]["addr"], "127.0.0.1:40001");
        assert_eq!(json["body"]["type"], "chat_message");
        assert_eq!(json["body"]["text"], "Hello, bob.");
        assert_eq!(
            Envelope::<SealedRequest>::decode(&env.encode()).unwrap(),
            env
        );
    }

    #[test]
    fn only_a_message_sent_again_says_so() {
        let message = |again| SealedRequest::ChatMessage {
            text: "hi".into(),
            seq: 2,
            again,
        };
        let body = |again| -> serde_json::Value {
            let env = Envelope::new(new_id(), alice(), message(again));
            serde_json::from_slice::<serde_json::Value>(&env.encode()).unwrap()["body"].clone()
        };
        assert_eq!(body(false).get("again"), None);
        assert_eq!(body(true)["again"], true);
        let first = br#"{"type":"chat_message","text":"hi","seq":2}"#;
        assert_eq!(
            serde_json::from_slice::<SealedRequest>(first).unwrap(),
            message(false)
        );
    }

    #[test]
    fn a_request_is_not_a_reply() {
        let env = Envelope::new(new_id(), alice(), PeerRequest::Ping);
        assert!(Envelope::<ReplyBody>::decode(&env.encode()).is_err());
    }

    #[test]
    fn a_request_for_another_receiver_is_unsupported_not_malformed() {
        let chat = Envelope::new(new_id(), alice(), SealedRequest::Disconnect).encode();
        let err = Envelope::<RegistryRequest>::decode_request(&chat).unwrap_err();
        assert_eq!(err.code(), crate::wire::ErrorCode::UnsupportedRequest);
        let register = Envelope::new(new_id(), alice(), RegistryRequest::Unregister).encode();
        let err = Envelope::<PeerRequest>::decode_request(&register).unwrap_err();
        assert_eq!(err.code(), crate::wire::ErrorCode::UnsupportedRequest);
        let err = Envelope::<SealedRequest>::decode_request(&register).unwrap_err();
        assert_eq!(err.code(), crate::wire::ErrorCode::UnsupportedRequest);
        // An unknown type, or a known one with bad fields, is malformed.
        let mut bad: serde_json::Value = serde_json::from_slice(&register).unwrap();
        bad["body"]["type"] = "frobnicate".into();
        let err = Envelope::<PeerRequest>::decode_request(bad.to_string().as_bytes());
        assert_eq!(err.unwrap_err().code(), crate::wire::ErrorCode::BadMessage);
        bad["body"] = serde_json::json!({"type": "chat_request", "share": 1});
        let err = Envelope::<PeerRequest>::decode_request(bad.to_string().as_bytes());
        assert_eq!(err.unwrap_err().code(), crate::wire::ErrorCode::BadMessage);
    }

    #[test]
    fn another_version_is_refused_as_such() {
        let mut json: serde_json::Value =
            serde_json::from_slice(&Envelope::new(new_id(), alice(), PeerRequest::Ping).encode())
                .unwrap();
        json["v"] = 1.into();
        let err = Envelope::<PeerRequest>::decode(json.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.code(), crate::wire::ErrorCode::UnsupportedVersion);
    }

    #[test]
    fn only_a_complete_envelope_is_a_request_for_another_receiver() {
        let body_only = br#"{"body":{"type":"chat_request"}}"#;
        let bad_sender = r#"{"v":6,"id":"0b8e6a0e-7b0c-4a73-9c55-2b1f6f1a9a11","at":"2026-11-21T10:00:00Z","from":{"name":"al ice","addr":"127.0.0.1:1"},"body":{"type":"chat_message","text":"hi"}}"#;
        for bytes in [&body_only[..], bad_sender.as_bytes()] {
            let err = Envelope::<RegistryRequest>::decode_request(bytes).unwrap_err();
            assert_eq!(err.code(), crate::wire::ErrorCode::BadMessage, "{bytes:?}");
        }
    }

    #[test]
    fn invalid_names_and_garbage_are_malformed() {
        let bad_name = r#"{"v":6,"id":"0b8e6a0e-7b0c-4a73-9c55-2b1f6f1a9a11","at":"2026-11-21T10:00:00Z","from":{"name":"al ice","addr":"127.0.0.1:1"},"body":{"type":"ping"}}"#;
        for bytes in [bad_name.as_bytes(), b"{", b"\xff\xfe", b"[]", b"{\"v\":6}"] {
            let err = Envelope::<PeerRequest>::decode_request(bytes).unwrap_err();
            assert_eq!(err.code(), crate::wire::ErrorCode::BadMessage, "{bytes:?}");
        }
    }

    #[test]
    fn a_signed_envelope_verifies_only_unchanged_and_with_the_senders_key() {
        let identity = Identity::generate();
        let mut from = alice();
        from.key = identity.public();
        let frame = Envelope::new(new_id(), from.clone(), PeerRequest::Ping).sign(&identity);
        assert!(SignedEnvelope::<PeerRequest>::decode(&frame)
            .unwrap()
            .verify());

        // Any change to the JSON breaks the signature (or the JSON).
        for i in 65..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x01;
            if let Ok(env) = SignedEnvelope::<PeerRequest>::decode(&bad) {
                assert!(!env.verify(), "byte {i} changed and still verified");
            }
        }
        // Signed by another key than the one it names.
        let forged = Envelope::new(new_id(), from, PeerRequest::Ping).sign(&Identity::generate());
        assert!(!SignedEnvelope::<PeerRequest>::decode(&forged)
            .unwrap()
            .verify());
        assert!(SignedEnvelope::<PeerRequest>::decode(b"S short").is_err());
    }
}
