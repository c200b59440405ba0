//! The frame table: what a frame body's first byte says it holds, and where each part of it
//! sits (docs/protocol.md, "Frames").
//!
//! | first byte | layout | used for |
//! | --- | --- | --- |
//! | `S` | `'S' \| signature (64) \| envelope JSON` | signed requests and replies, refusals |
//! | `E` | `'E' \| chat id (16) \| counter (8) \| ciphertext and tag` | a message in a chat |
//! | `A` | the same layout, under the acknowledgement key | the reply to an `E` frame |
//! | `R` | `'R' \| name length (1) \| name \| counter (8) \| JSON \| tag (16)` | a request in a registry session |
//! | `r` | `'r' \| counter (8) \| JSON \| tag (16)` | the reply to an `R` frame |
//!
//! Every program reads a frame's kind with [`Kind::of`] and its parts with the functions
//! here; the keys that seal and check them live in `seal.rs` and `registry_session.rs`. The
//! parts are only cut out here: nothing read from them is trusted until its signature or
//! tag is checked.

use crate::name::PeerName;

/// What a frame body holds, by its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A signed envelope.
    Signed,
    /// A message sealed in a chat.
    Sealed,
    /// The sealed acknowledgement of a [`Kind::Sealed`] frame.
    SealedAck,
    /// A request in a registry session.
    RegistryRequest,
    /// The reply to a [`Kind::RegistryRequest`].
    RegistryReply,
}

impl Kind {
    /// The kind of the frame `body`; `None` for an empty body or an unknown first byte.
    pub fn of(body: &[u8]) -> Option<Kind> {
        match body.first()? {
            b'S' => Some(Kind::Signed),
            b'E' => Some(Kind::Sealed),
            b'A' => Some(Kind::SealedAck),
            b'R' => Some(Kind::RegistryRequest),
            b'r' => Some(Kind::RegistryReply),
            _ => None,
        }
    }

    /// The first byte of a frame of this kind.
    pub fn byte(self) -> u8 {
        match self {
            Kind::Signed => b'S',
            Kind::Sealed => b'E',
            Kind::SealedAck => b'A',
            Kind::RegistryRequest => b'R',
            Kind::RegistryReply => b'r',
        }
    }
}

/// The length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// The length of a ChaCha20-Poly1305 tag.
pub const TAG_LEN: usize = 16;

/// Names one chat in every sealed frame.
pub type ChatId = [u8; 16];

/// Kind, chat id and counter: the header of `E` and `A` frames, their associated data.
pub const SEALED_HEADER_LEN: usize = 1 + 16 + 8;

/// An `S` frame: the signature and the JSON it covers.
pub fn signed(signature: &[u8; SIGNATURE_LEN], json: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(1 + SIGNATURE_LEN + json.len());
    frame.push(Kind::Signed.byte());
    frame.extend_from_slice(signature);
    frame.extend_from_slice(json);
    frame
}

/// The signature and the JSON of an `S` frame.
pub fn parse_signed(frame: &[u8]) -> Option<(&[u8; SIGNATURE_LEN], &[u8])> {
    match frame {
        [b'S', rest @ ..] if rest.len() >= SIGNATURE_LEN => {
            let (signature, json) = rest.split_at(SIGNATURE_LEN);
            Some((signature.try_into().ok()?, json))
        }
        _ => None,
    }
}

/// The header of an `E` or `A` frame, with room for `body_len` more bytes.
pub fn sealed_header(kind: Kind, chat: &ChatId, counter: u64, body_len: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(SEALED_HEADER_LEN + body_len);
    frame.push(kind.byte());
    frame.extend_from_slice(chat);
    frame.extend_from_slice(&counter.to_be_bytes());
    frame
}

/// The chat id and the counter of a frame of `kind` (`E` or `A`).
pub fn parse_sealed(kind: Kind, frame: &[u8]) -> Option<(ChatId, u64)> {
    if Kind::of(frame)? != kind {
        return None;
    }
    let chat = frame.get(1..17)?.try_into().ok()?;
    let counter = u64::from_be_bytes(frame.get(17..SEALED_HEADER_LEN)?.try_into().ok()?);
    Some((chat, counter))
}

/// What the registry reads in an `R` frame's header, before it has the keys to check it.
#[derive(Debug, PartialEq, Eq)]
pub struct RegistryRequestHeader {
    pub name: PeerName,
    pub counter: u64,
    /// Where the JSON starts.
    len: usize,
}

impl RegistryRequestHeader {
    /// The header of an `R` frame carrying `json_len` bytes of JSON, for `name`'s request
    /// number `counter`; the JSON and the tag follow.
    pub fn build(name: &PeerName, counter: u64, json_len: usize) -> Vec<u8> {
        let name = name.as_str().as_bytes();
        let mut frame = Vec::with_capacity(2 + name.len() + 8 + json_len + TAG_LEN);
        frame.push(Kind::RegistryRequest.byte());
        frame.push(u8::try_from(name.len()).expect("names are at most 32 bytes"));
        frame.extend_from_slice(name);
        frame.extend_from_slice(&counter.to_be_bytes());
        frame
    }

    /// Parses the header of an `R` frame; `None` if it is not one.
    pub fn parse(frame: &[u8]) -> Option<RegistryRequestHeader> {
        let [b'R', len, rest @ ..] = frame else {
            return None;
        };
        let len = usize::from(*len);
        let name = std::str::from_utf8(rest.get(..len)?).ok()?.parse().ok()?;
        let counter = u64::from_be_bytes(rest.get(len..len + 8)?.try_into().ok()?);
        Some(RegistryRequestHeader {
            name,
            counter,
            len: 2 + len + 8,
        })
    }

    /// How long the header is: the sealed JSON follows it.
    pub fn header_len(&self) -> usize {
        self.len
    }
}

/// How long an `r` frame's header is: its kind and counter.
pub const REGISTRY_REPLY_HEADER_LEN: usize = 9;

/// The header of an `r` frame answering request `counter`, with room for `json_len` bytes of
/// JSON and the tag.
pub fn registry_reply_header(counter: u64, json_len: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(9 + json_len + TAG_LEN);
    frame.push(Kind::RegistryReply.byte());
    frame.extend_from_slice(&counter.to_be_bytes());
    frame
}

/// The counter of an `r` frame, and its sealed JSON (between the header and the tag).
pub fn parse_registry_reply(frame: &[u8]) -> Option<(u64, &[u8])> {
    match frame {
        [b'r', rest @ ..] if rest.len() >= 8 + TAG_LEN => {
            let counter = u64::from_be_bytes(rest[..8].try_into().ok()?);
            Some((counter, &rest[8..rest.len() - TAG_LEN]))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_its_first_byte_and_nothing_else_is_a_kind() {
        for kind in [
            Kind::Signed,
            Kind::Sealed,
            Kind::SealedAck,
            Kind::RegistryRequest,
            Kind::RegistryReply,
        ] {
            assert_eq!(Kind::of(&[kind.byte(), 0]), Some(kind));
        }
        assert_eq!(Kind::of(b""), None);
        assert_eq!(Kind::of(b"X"), None);
        assert_eq!(Kind::of(b"{"), None);
    }

    #[test]
    fn parts_are_where_the_table_says() {
        let signature = [7u8; SIGNATURE_LEN];
        let frame = signed(&signature, b"{}");
        assert_eq!(parse_signed(&frame), Some((&signature, &b"{}"[..])));
        assert_eq!(parse_signed(&frame[..SIGNATURE_LEN]), None);

        let chat = [9u8; 16];
        let mut frame = sealed_header(Kind::Sealed, &chat, 258, 0);
        assert_eq!(frame.len(), SEALED_HEADER_LEN);
        frame.extend_from_slice(b"ciphertext");
        assert_eq!(parse_sealed(Kind::Sealed, &frame), Some((chat, 258)));
        assert_eq!(parse_sealed(Kind::SealedAck, &frame), None);
        assert_eq!(parse_sealed(Kind::Sealed, &frame[..24]), None);

        let alice: PeerName = "alice".parse().unwrap();
        let mut frame = RegistryRequestHeader::build(&alice, 3, 2);
        frame.extend_from_slice(b"{}");
        frame.extend_from_slice(&[0; TAG_LEN]);
        let header = RegistryRequestHeader::parse(&frame).unwrap();
        assert_eq!((header.name, header.counter), (alice, 3));
        assert_eq!(
            header.header_len(),
            2 + 5 + 8,
            "kind, length, name, counter"
        );

        let mut frame = registry_reply_header(3, 2);
        assert_eq!(frame.len(), REGISTRY_REPLY_HEADER_LEN);
        frame.extend_from_slice(b"{}");
        frame.extend_from_slice(&[0; TAG_LEN]);
        assert_eq!(parse_registry_reply(&frame), Some((3, &b"{}"[..])));
        assert_eq!(parse_registry_reply(&frame[..TAG_LEN]), None);
    }

    #[test]
    fn headers_that_are_not_registry_requests_do_not_parse() {
        for frame in [
            &b""[..],
            b"R",
            b"R\x05ali",
            b"R\x05alice\x00\x00",
            b"R\x05al ce\x00\x00\x00\x00\x00\x00\x00\x01",
            b"E\x05alice\x00\x00\x00\x00\x00\x00\x00\x01",
            b"R\xffalice\x00\x00\x00\x00\x00\x00\x00\x01",
        ] {
            assert_eq!(RegistryRequestHeader::parse(frame), None, "{frame:?}");
        }
    }
}
