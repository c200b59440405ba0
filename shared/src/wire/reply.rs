//! Replies: the body every receiver answers with, what it says became of the request
//! ([`Outcome`]), and the error codes (docs/protocol.md, "Replies" and "Error codes").

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::handshake::{HandshakeMessage, StaticProof};
use crate::identity::PublicKey;
use crate::name::PeerName;
use crate::record::PeerRecord;
use crate::wire::envelope::{MessageId, PeerInfo};

/// The longest human-readable error detail, in bytes.
pub const MAX_DETAIL_LEN: usize = 256;

/// The most peers in one `peers` reply.
pub const PEERS_PAGE_LEN: usize = 256;

/// The body of every reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "reply")]
pub struct ReplyBody {
    /// The id of the request this answers; `None` when the request could not be read.
    pub re: Option<MessageId>,
    /// In a signed reply: the digest of the very frame it answers, whenever the whole frame
    /// was read. The id alone travels in the clear, so anyone who sees a request go by could
    /// get the receiver to sign an answer to another request under that id and hand it to
    /// the sender; the digest names bytes only the sender sent. (Sealed acknowledgements and
    /// registry session replies are bound to their request by their keys and counter.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re_digest: Option<RequestDigest>,
    pub result: Outcome,
}

impl ReplyBody {
    /// A reply bound to its request by other means than a digest (keys and a counter).
    pub fn new(re: Option<MessageId>, result: Outcome) -> ReplyBody {
        ReplyBody {
            re,
            re_digest: None,
            result,
        }
    }
}

/// The first 16 bytes of the SHA-256 of a request frame's body, as a signed reply names it
/// (base64url, 22 characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestDigest([u8; 16]);

impl RequestDigest {
    pub fn of(frame: &[u8]) -> RequestDigest {
        use sha2::{Digest, Sha256};
        let hash = Sha256::digest(frame);
        RequestDigest(hash[..16].try_into().expect("16 of 32 bytes"))
    }
}

impl TryFrom<String> for RequestDigest {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        data_encoding::BASE64URL_NOPAD
            .decode(s.as_bytes())
            .ok()
            .and_then(|b| b.try_into().ok())
            .map(RequestDigest)
            .ok_or("not a request digest (22 characters of base64url)")
    }
}

impl From<RequestDigest> for String {
    fn from(digest: RequestDigest) -> String {
        data_encoding::BASE64URL_NOPAD.encode(&digest.0)
    }
}

/// A reply whose outcome is JSON already: how the registry sends a page of peers that it
/// encoded once for everyone who lists, until the list changes (server/src/pages.rs). On
/// the wire it is a [`ReplyBody`] like any other.
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
    /// registration lapses unless renewed (registered again) within `ttl_ms`. `handshake` is
    /// message 2 of the registry session's handshake when the request opened a session.
    Registered {
        addr: SocketAddr,
        key: PublicKey,
        ttl_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handshake: Option<HandshakeMessage>,
    },
    /// A page of peers; on the wire each is a row, `[name, addr, key]` ([`rows`]).
    Peers {
        #[serde(with = "rows")]
        peers: Vec<PeerInfo>,
        next: Option<PeerName>,
    },
    /// A `lookup`'s answer for a peer online. `noise` is its Noise static key and its
    /// identity's signature over it, as its registration proved them, when the registry has
    /// them: with it, a chat request by name can use IK.
    Peer {
        peer: PeerInfo,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        noise: Option<Box<StaticProof>>,
    },
    /// A `lookup`'s answer for a name that is claimed but not registered now: which key it
    /// means while its owner is offline.
    Claimed {
        name: PeerName,
        key: PublicKey,
    },
    Pending {
        expires_in_ms: u64,
    },
    /// An `exchange`'s answer: the receiver's own record and a page of those it knows.
    Records {
        #[serde(with = "crate::record::records")]
        records: Vec<PeerRecord>,
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

    use super::PEERS_PAGE_LEN;
    use crate::identity::PublicKey;
    use crate::name::PeerName;
    use crate::wire::envelope::PeerInfo;

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
    /// The registry cannot reach the store it shares with its other instances: try again
    /// later, or another instance.
    Unavailable,
    /// A code from a newer version of the protocol.
    #[serde(other)]
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::wire::envelope::{new_id, tests::alice, Envelope};

    #[test]
    fn a_reply_looks_like_the_protocol_document() {
        let re = new_id();
        let env = Envelope::new(
            new_id(),
            alice(),
            ReplyBody {
                re: Some(re),
                re_digest: Some(RequestDigest::of(b"the request frame")),
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
        assert_eq!(Envelope::<ReplyBody>::decode(&env.encode()).unwrap(), env);
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
        let plain = Envelope::new(id, from.clone(), ReplyBody::new(re, result));
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

        // One peer, a lookup's answer, stays an object; its static proof, when the registry
        // has one, is beside it.
        let one = Outcome::Peer {
            peer: bob.clone(),
            noise: None,
        };
        assert_eq!(
            serde_json::to_string(&one).unwrap(),
            format!(
                r#"{{"type":"peer","peer":{{"name":"bob","addr":"127.0.0.1:40002","key":{k}}}}}"#
            )
        );
        let identity = crate::identity::Identity::generate();
        let proved = Outcome::Peer {
            peer: bob.clone(),
            noise: Some(Box::new(StaticProof::of(&identity))),
        };
        let json = serde_json::to_string(&proved).unwrap();
        let noise = serde_json::to_string(&identity.noise().public()).unwrap();
        assert!(
            json.contains(&format!(r#""noise":{{"static":{noise},"sig":""#)),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), proved);

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
