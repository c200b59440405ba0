//! Broadcasts: a public message to the whole network, signed once by its origin and passed
//! on unchanged from peer to peer (docs/protocol.md, "Broadcast").
//!
//! The origin signs the id, the time, its name and the text; whoever passes it on only adds
//! to the hop count, which travels outside the signature (as in libp2p's floodsub, where
//! the message is the origin's and the path is not). A receiver checks the signature and the
//! age, drops repeats by (origin key, id) and passes on what is new (`peer/src/state/flood.rs`
//! decides, `peer/src/flood.rs` sends).

use serde::{Deserialize, Serialize};

use crate::identity::{Identity, PublicKey};
use crate::name::PeerName;
use crate::record::SignatureText;
use crate::wire::{MessageId, MAX_TEXT_LEN};

/// How old a broadcast may be and still be shown or passed on. Receivers remember what they
/// saw for longer than this (`peer/src/state/flood.rs`), so a repeat is never new again.
pub const MAX_BROADCAST_AGE_SECS: i64 = 600;

/// How far in the future a broadcast's time may be.
pub const MAX_BROADCAST_SKEW_SECS: i64 = 60;

/// The most hops a broadcast travels: a network of a few hundred peers, each passing it to a
/// few others, is covered well within it.
pub const MAX_HOPS: u8 = 8;

const CONTEXT: &[u8] = b"p2p-chat/5 broadcast\0";

/// A broadcast as its origin signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broadcast {
    pub id: MessageId,
    /// The origin's name: a claim, like any name a stranger gives.
    pub name: PeerName,
    pub key: PublicKey,
    /// When it was signed, in seconds since the Unix epoch.
    pub at: i64,
    pub text: String,
    sig: SignatureText,
}

/// Why a broadcast is not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastError {
    #[error("the broadcast is not signed by its key")]
    BadSignature,
    #[error("the broadcast is too old to pass on")]
    TooOld,
    #[error("the broadcast is dated in the future")]
    FromTheFuture,
    #[error("the broadcast's text is longer than a chat message may be")]
    TooLong,
}

impl Broadcast {
    /// `me`'s broadcast of `text` as `name`, signed at `at` (Unix seconds).
    pub fn sign(me: &Identity, name: PeerName, id: MessageId, at: i64, text: String) -> Broadcast {
        let key = me.public();
        let sig = SignatureText(me.sign(&signed_bytes(&id, &name, &key, at, &text)));
        Broadcast {
            id,
            name,
            key,
            at,
            text,
            sig,
        }
    }

    /// Checks the length, the age at `now` (Unix seconds) and the signature.
    pub fn check(&self, now: i64) -> Result<(), BroadcastError> {
        if self.text.len() > MAX_TEXT_LEN {
            return Err(BroadcastError::TooLong);
        }
        if self.at > now.saturating_add(MAX_BROADCAST_SKEW_SECS) {
            return Err(BroadcastError::FromTheFuture);
        }
        if self.at < now.saturating_sub(MAX_BROADCAST_AGE_SECS) {
            return Err(BroadcastError::TooOld);
        }
        let signed = signed_bytes(&self.id, &self.name, &self.key, self.at, &self.text);
        match self.key.verify(&signed, &self.sig.0) {
            true => Ok(()),
            false => Err(BroadcastError::BadSignature),
        }
    }
}

fn signed_bytes(id: &MessageId, name: &PeerName, key: &PublicKey, at: i64, text: &str) -> Vec<u8> {
    let name = name.as_str().as_bytes();
    let mut bytes = Vec::with_capacity(CONTEXT.len() + 16 + 1 + name.len() + 32 + 8 + text.len());
    bytes.extend_from_slice(CONTEXT);
    bytes.extend_from_slice(id.as_bytes());
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(&at.to_be_bytes());
    // Last, so its length needs no prefix.
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::new_id;

    const NOW: i64 = 1_796_000_000;

    #[test]
    fn a_broadcast_is_taken_as_signed_and_within_its_age() {
        let alice = Identity::generate();
        let b = Broadcast::sign(
            &alice,
            "alice".parse().unwrap(),
            new_id(),
            NOW,
            "hi all".into(),
        );
        assert_eq!(b.check(NOW), Ok(()));
        assert_eq!(
            b.check(NOW + MAX_BROADCAST_AGE_SECS + 1),
            Err(BroadcastError::TooOld)
        );
        assert_eq!(
            b.check(NOW - MAX_BROADCAST_SKEW_SECS - 1),
            Err(BroadcastError::FromTheFuture)
        );
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<Broadcast>(&json).unwrap(), b);
        let changed = [
            Broadcast {
                text: "hi all!".into(),
                ..b.clone()
            },
            Broadcast {
                name: "mallory".parse().unwrap(),
                ..b.clone()
            },
            Broadcast {
                id: new_id(),
                ..b.clone()
            },
            Broadcast {
                at: NOW - 1,
                ..b.clone()
            },
            Broadcast {
                key: Identity::generate().public(),
                ..b.clone()
            },
        ];
        for changed in changed {
            assert_eq!(
                changed.check(NOW),
                Err(BroadcastError::BadSignature),
                "{changed:?}"
            );
        }
        let long = Broadcast::sign(&alice, b.name, new_id(), NOW, "x".repeat(MAX_TEXT_LEN + 1));
        assert_eq!(long.check(NOW), Err(BroadcastError::TooLong));
    }
}
