//! How the fields of events are written in JSON where serde's derive alone would not do:
//! a peer's key with its fingerprint, listings of peers, durations in whole milliseconds, and
//! errors with their stable code. `event.rs` names these in its `#[serde(...)]` attributes;
//! docs/json.md documents the shapes they give.

use std::net::SocketAddr;
use std::time::Duration;

use p2p_shared::identity::PublicKey;
use p2p_shared::{PeerInfo, PeerName};
use serde::{Serialize, Serializer};

use crate::error::PeerError;

/// A key in JSON as the key and its fingerprint, so scripts need not compute one: the
/// object `known_peers` has had under `key` from the start.
pub(super) fn key_and_fingerprint<S: Serializer>(
    key: &PublicKey,
    out: S,
) -> Result<S::Ok, S::Error> {
    PeerKey(*key).serialize(out)
}

/// A peer's key as JSON shows it wherever a peer appears: flattened into the event or the
/// entry as `key` (base64url) and `fingerprint` side by side, so that a script has both
/// without computing either (docs/json.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerKey(pub PublicKey);

impl PeerKey {
    pub fn fingerprint(&self) -> String {
        self.0.fingerprint()
    }
}

impl Serialize for PeerKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut both = s.serialize_struct("PeerKey", 2)?;
        both.serialize_field("key", &self.0.to_string())?;
        both.serialize_field("fingerprint", &self.0.fingerprint())?;
        both.end()
    }
}

/// A key that may be absent, as its fingerprint (where the key itself is not needed).
pub(super) fn fingerprint_of<S: Serializer>(
    key: &Option<PublicKey>,
    out: S,
) -> Result<S::Ok, S::Error> {
    match key {
        Some(key) => out.serialize_str(&key.fingerprint()),
        None => out.serialize_none(),
    }
}

/// Peers (of a listing, of the chats) as JSON shows them: `{name, addr, key, fingerprint}`.
pub(super) fn peers_with_keys<S: Serializer>(peers: &[PeerInfo], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Listed<'a> {
        name: &'a PeerName,
        addr: &'a SocketAddr,
        #[serde(flatten)]
        key: PeerKey,
    }
    s.collect_seq(peers.iter().map(|p| Listed {
        name: &p.name,
        addr: &p.addr,
        key: PeerKey(p.key),
    }))
}

/// A duration as whole milliseconds.
pub(super) fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX))
}

impl Serialize for PeerError {
    /// `{"code": "...", "message": "..."}`: what `--json` prints after `"event":"error"`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut error = s.serialize_struct("PeerError", 2)?;
        error.serialize_field("code", self.code())?;
        error.serialize_field("message", &self.to_string())?;
        error.end()
    }
}
