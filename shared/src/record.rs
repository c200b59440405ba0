//! Peer records: a peer's own signed word on its name, address and key, and when it said so.
//!
//! Without a registry, peers learn of each other from each other (peer exchange,
//! docs/protocol.md, "Peer exchange"). What one peer tells another about a third must not be
//! its to make up: so each peer signs its own record, and records travel unchanged. A receiver
//! checks the signature and the age, and keeps the newest record per key. The signature proves
//! that the key's owner was at that address at that time, nothing more: the name stays a claim
//! until the registry or a pin vouches for the key (docs/security.md), and the address a hint
//! until a reply signed by that key comes from it.

use std::fmt;
use std::net::SocketAddr;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::{Identity, PublicKey, Signature};
use crate::name::PeerName;

/// The most records in one exchange, each way: a page, so that an exchange is bounded (about
/// 15 KB of JSON) whatever the sender knows.
pub const MAX_RECORDS: usize = 64;

/// How old a record may be and still be taken or passed on: a peer signs its record afresh
/// for each exchange, so a live peer's record is never older than the time between two of
/// its exchanges with anyone; a record older than this is of a peer that has not been heard
/// of for a day.
pub const MAX_RECORD_AGE_SECS: i64 = 24 * 3600;

/// How far in the future a record's time may be: clocks differ a little, not by minutes.
pub const MAX_RECORD_SKEW_SECS: i64 = 60;

/// What an identity signs in its record: a context string, so the signature means nothing
/// else, then each field at a fixed place or with its length.
const CONTEXT: &[u8] = b"p2p-chat/5 peer record\0";

/// A peer's signed record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerRecord {
    pub name: PeerName,
    pub addr: SocketAddr,
    pub key: PublicKey,
    /// When it was signed, in seconds since the Unix epoch.
    pub at: i64,
    sig: SignatureText,
}

/// Why a record is not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the record is not signed by its key")]
    BadSignature,
    #[error("the record is more than a day old")]
    TooOld,
    #[error("the record is dated in the future")]
    FromTheFuture,
}

impl PeerRecord {
    /// `me`'s record: `name` at `addr`, signed now (`at`, Unix seconds).
    pub fn sign(me: &Identity, name: PeerName, addr: SocketAddr, at: i64) -> PeerRecord {
        let key = me.public();
        let sig = me.sign(&signed_bytes(&name, &addr, &key, at));
        PeerRecord {
            name,
            addr,
            key,
            at,
            sig: SignatureText(sig),
        }
    }

    /// Checks the age at `now` (Unix seconds), then the signature.
    pub fn check(&self, now: i64) -> Result<(), RecordError> {
        self.check_age(now)?;
        let signed = signed_bytes(&self.name, &self.addr, &self.key, self.at);
        match self.key.verify(&signed, &self.sig.0) {
            true => Ok(()),
            false => Err(RecordError::BadSignature),
        }
    }
}

impl PeerRecord {
    /// Whether the record is young enough at `now` (Unix seconds) to be taken or passed on.
    pub fn check_age(&self, now: i64) -> Result<(), RecordError> {
        if self.at > now.saturating_add(MAX_RECORD_SKEW_SECS) {
            return Err(RecordError::FromTheFuture);
        }
        if self.at < now.saturating_sub(MAX_RECORD_AGE_SECS) {
            return Err(RecordError::TooOld);
        }
        Ok(())
    }
}

fn signed_bytes(name: &PeerName, addr: &SocketAddr, key: &PublicKey, at: i64) -> Vec<u8> {
    let (name, addr) = (name.as_str().as_bytes(), addr.to_string());
    let mut bytes = Vec::with_capacity(CONTEXT.len() + 2 + name.len() + addr.len() + 40);
    bytes.extend_from_slice(CONTEXT);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.push(addr.len() as u8);
    bytes.extend_from_slice(addr.as_bytes());
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(&at.to_be_bytes());
    bytes
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SignatureText(pub(crate) Signature);

impl Serialize for SignatureText {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        out.serialize_str(&data_encoding::BASE64URL_NOPAD.encode(&self.0.to_bytes()))
    }
}

impl<'de> Deserialize<'de> for SignatureText {
    fn deserialize<D: Deserializer<'de>>(input: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(input)?;
        let bytes: [u8; 64] = data_encoding::BASE64URL_NOPAD
            .decode(text.as_bytes())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| de::Error::custom("not a signature (86 characters of base64url)"))?;
        Ok(SignatureText(Signature::from_bytes(&bytes)))
    }
}

/// At most [`MAX_RECORDS`] records, as a field: `#[serde(with = "records")]`. A list with more
/// is not one a peer sends, and is refused. (Inside a request or a reply, whose `type` tag
/// makes serde buffer the whole body first, the frame limit of 64 KiB is what bounds the
/// reading; the count is checked after.)
pub mod records {
    use super::*;

    pub fn serialize<S: Serializer>(records: &[PeerRecord], out: S) -> Result<S::Ok, S::Error> {
        out.collect_seq(records)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Vec<PeerRecord>, D::Error> {
        input.deserialize_seq(Records)
    }

    struct Records;

    impl<'de> Visitor<'de> for Records {
        type Value = Vec<PeerRecord>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "at most {MAX_RECORDS} peer records")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut records = Vec::new();
            while let Some(record) = seq.next_element::<PeerRecord>()? {
                if records.len() == MAX_RECORDS {
                    return Err(de::Error::invalid_length(MAX_RECORDS + 1, &self));
                }
                records.push(record);
            }
            Ok(records)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000;

    fn bob() -> (Identity, PeerRecord) {
        let bob = Identity::generate();
        let addr = "127.0.0.1:40002".parse().unwrap();
        let record = PeerRecord::sign(&bob, "bob".parse().unwrap(), addr, NOW);
        (bob, record)
    }

    #[test]
    fn a_record_is_taken_as_signed_within_its_age() {
        let (_, record) = bob();
        assert_eq!(record.check(NOW), Ok(()));
        assert_eq!(record.check(NOW + MAX_RECORD_AGE_SECS), Ok(()));
        assert_eq!(
            record.check(NOW + MAX_RECORD_AGE_SECS + 1),
            Err(RecordError::TooOld)
        );
        assert_eq!(
            record.check(NOW - MAX_RECORD_SKEW_SECS - 1),
            Err(RecordError::FromTheFuture)
        );
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<PeerRecord>(&json).unwrap(), record);
    }

    #[test]
    fn every_field_is_signed() {
        let (_, record) = bob();
        let mallory = Identity::generate().public();
        let changed = [
            PeerRecord {
                name: "mallory".parse().unwrap(),
                ..record.clone()
            },
            PeerRecord {
                addr: "127.0.0.1:40003".parse().unwrap(),
                ..record.clone()
            },
            PeerRecord {
                key: mallory,
                ..record.clone()
            },
            PeerRecord {
                at: NOW - 1,
                ..record.clone()
            },
        ];
        for changed in changed {
            assert_eq!(
                changed.check(NOW),
                Err(RecordError::BadSignature),
                "{changed:?}"
            );
        }
    }

    #[test]
    fn a_list_holds_at_most_a_page() {
        #[derive(Serialize, Deserialize)]
        struct Page {
            #[serde(with = "records")]
            records: Vec<PeerRecord>,
        }
        let (_, record) = bob();
        let page = |n| Page {
            records: vec![record.clone(); n],
        };
        let full = serde_json::to_string(&page(MAX_RECORDS)).unwrap();
        assert_eq!(
            serde_json::from_str::<Page>(&full).unwrap().records.len(),
            MAX_RECORDS
        );
        let over = serde_json::to_string(&page(MAX_RECORDS + 1)).unwrap();
        assert!(serde_json::from_str::<Page>(&over).is_err());
    }
}
