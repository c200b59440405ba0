//! Registry sessions: one signed key agreement when a peer registers, then requests and
//! replies authenticated with symmetric keys for as long as the registration lasts.
//!
//! Why: with a signature on every request and every reply, public-key cryptography was two
//! thirds of the registry's work (a signature check costs 47 µs, a signature 18 µs, more
//! for a page of peers; docs/benchmarks.md). A peer talks to its registry every few seconds
//! for as long as it runs, so it pays for one agreement, as a chat does.
//!
//! A peer's signed `register` carries a fresh X25519 share; the registry's signed
//! `registered` reply carries its own. Both sides derive two ChaCha20-Poly1305 keys from
//! the shared secret with HKDF-SHA256, salted with the `register` request's id and bound to
//! both long-term keys and both shares (the construction of a chat's keys, `seal.rs`): one
//! key for the peer's requests, one for the registry's replies.
//!
//! Frames in a session are authenticated, not encrypted: what they carry is what anyone may
//! ask the registry for (the list of names, addresses and keys), and signed requests and
//! replies travel in the clear too. Leaving out the encryption halves what a page of 256
//! peers costs both ends. Each frame ends with a 16-byte tag, ChaCha20-Poly1305 with nothing
//! to encrypt and the rest of the frame as associated data (`seal::authenticate`):
//!
//! - request: `'R' | name length (1) | name | counter (8, big endian) | JSON | tag`
//! - reply: `'r' | counter (8) | JSON | tag`, under the reply key, with the counter of the
//!   request it answers, so it counts as the answer to that request and no other.
//!
//! The counter is the nonce. The name tells the registry which registration holds the
//! session's keys, so it needs no other index. Counters only grow: the registry accepts a
//! request only if its counter is above the last one it accepted in the session (a peer sends
//! its registry requests one at a time), which costs 8 bytes per registration where a chat's
//! reordering window costs 136. docs/protocol.md and docs/security.md describe the session
//! message by message.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::identity::{Identity, PublicKey};
use crate::name::PeerName;
use crate::seal::{authenticate, authenticated, EphemeralKey, KeyShare, WeakShare};
use crate::wire::frame::{self, RegistryRequestHeader as Header};
use crate::wire::{new_id, MessageId};

const LABEL: &[u8] = b"p2p-chat/3 registry session";

/// What both sides know about a registry session's key agreement.
pub struct Transcript<'a> {
    /// The id of the signed `register` that carried the peer's share.
    pub register: MessageId,
    pub peer: &'a PublicKey,
    pub registry: &'a PublicKey,
    pub peer_share: &'a EphemeralKey,
    pub registry_share: &'a EphemeralKey,
}

impl Transcript<'_> {
    fn derive(&self, ours: KeyShare, theirs: &EphemeralKey) -> Result<[[u8; 32]; 2], WeakShare> {
        let mut okm = [0u8; 64];
        ours.derive(
            theirs,
            self.register,
            LABEL,
            &[
                self.peer.as_bytes(),
                self.registry.as_bytes(),
                &self.peer_share.0,
                &self.registry_share.0,
            ],
            &mut okm,
        )?;
        let keys = [
            okm[..32].try_into().expect("32 bytes"),
            okm[32..].try_into().expect("32 bytes"),
        ];
        okm.zeroize();
        Ok(keys)
    }
}

/// The peer's side of a session: authenticates requests, checks the replies.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct PeerSession {
    #[zeroize(skip)]
    name: PeerName,
    #[zeroize(skip)]
    registry: PublicKey,
    request: [u8; 32],
    reply: [u8; 32],
    /// The counter of the last request sealed.
    counter: u64,
}

/// Both sides of one new session of the peer `name` with a registry, fresh identities and
/// shares, agreed in this process: for tests, fuzzing and measurements.
#[doc(hidden)]
pub fn pair(name: PeerName) -> (PeerSession, RegistrySession) {
    let (peer, registry) = (Identity::generate().public(), Identity::generate().public());
    let (ours, theirs) = (KeyShare::new(), KeyShare::new());
    let (peer_share, registry_share) = (ours.public(), theirs.public());
    let t = Transcript {
        register: new_id(),
        peer: &peer,
        registry: &registry,
        peer_share: &peer_share,
        registry_share: &registry_share,
    };
    (
        PeerSession::agree(name, ours, &t).expect("fresh shares"),
        RegistrySession::agree(theirs, &t).expect("fresh shares"),
    )
}

impl PeerSession {
    /// Completes the agreement of the peer `name` with `ours` and the registry's share.
    pub fn agree(
        name: PeerName,
        ours: KeyShare,
        t: &Transcript<'_>,
    ) -> Result<PeerSession, WeakShare> {
        let [request, reply] = t.derive(ours, t.registry_share)?;
        Ok(PeerSession {
            name,
            registry: *t.registry,
            request,
            reply,
            counter: 0,
        })
    }

    /// The registry's key, which the session's replies prove.
    pub fn registry(&self) -> PublicKey {
        self.registry
    }

    /// The frame of our next request, carrying `json`, and its counter, which the reply must
    /// carry.
    pub fn request(&mut self, json: &[u8]) -> (u64, Vec<u8>) {
        self.counter += 1;
        let mut frame = Header::build(&self.name, self.counter, json.len());
        frame.extend_from_slice(json);
        (
            self.counter,
            authenticate(frame, &self.request, self.counter),
        )
    }

    /// The JSON of the reply to request `counter`, if `frame` is that reply.
    pub fn reply<'f>(&self, counter: u64, frame: &'f [u8]) -> Option<&'f [u8]> {
        match frame::parse_registry_reply(frame)? {
            (c, json) if c == counter => {
                authenticated(frame, &self.reply, counter)?;
                Some(json)
            }
            _ => None,
        }
    }
}

/// The registry's side of a session, kept with the registration: 72 bytes.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RegistrySession {
    request: [u8; 32],
    reply: [u8; 32],
    /// The counter of the last request accepted.
    last: u64,
}

/// The registry's way to answer one request it accepted: the reply key and that request's
/// counter. A page of peers is the biggest reply, so the connection task builds it, not the
/// task that owns the registrations.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Replier {
    reply: [u8; 32],
    counter: u64,
}

impl Replier {
    /// The reply frame carrying `json`.
    pub fn reply(&self, json: &[u8]) -> Vec<u8> {
        self.reply_with(json.len(), |frame| frame.extend_from_slice(json))
    }

    /// The reply frame carrying the JSON that `encode` appends to the frame it is given, about
    /// `json_len` bytes: a reply encoded straight into its frame, not into a buffer of its
    /// own and then copied (a page of peers is up to 64 KB).
    pub fn reply_with(&self, json_len: usize, encode: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut frame = frame::registry_reply_header(self.counter, json_len);
        encode(&mut frame);
        authenticate(frame, &self.reply, self.counter)
    }
}

impl RegistrySession {
    /// Completes the agreement with `ours` and the peer's share.
    pub fn agree(ours: KeyShare, t: &Transcript<'_>) -> Result<RegistrySession, WeakShare> {
        let [request, reply] = t.derive(ours, t.peer_share)?;
        Ok(RegistrySession {
            request,
            reply,
            last: 0,
        })
    }

    /// Checks the request whose header is `header`, and accepts its counter if it is above
    /// every counter accepted before; returns the means to reply. `None` if it is not
    /// authentic (another session's, or altered) or is a replay; a frame that is not
    /// authentic changes nothing.
    pub fn accept(&mut self, header: &Header, frame: &[u8]) -> Option<Replier> {
        authenticated(frame, &self.request, header.counter)?;
        if header.counter <= self.last || header.json(frame).is_none() {
            return None;
        }
        self.last = header.counter;
        Some(Replier {
            reply: self.reply,
            counter: header.counter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> (PeerSession, RegistrySession) {
        pair("alice".parse().unwrap())
    }

    /// The request's JSON and the replier, if the registry accepts `frame`.
    fn accept(registry: &mut RegistrySession, frame: &[u8]) -> Option<(Vec<u8>, Replier)> {
        let header = Header::parse(frame)?;
        let replier = registry.accept(&header, frame)?;
        Some((header.json(frame)?.to_vec(), replier))
    }

    #[test]
    fn a_request_counts_once_and_its_reply_answers_only_it() {
        let (mut peer, mut registry) = session();
        let (counter, frame) = peer.request(b"list");
        let header = Header::parse(&frame).unwrap();
        assert_eq!(header.name.as_str(), "alice");
        assert_eq!(header.counter, counter);
        let (json, replier) = accept(&mut registry, &frame).unwrap();
        assert_eq!(json, b"list");
        assert!(accept(&mut registry, &frame).is_none(), "a replay");
        let reply = replier.reply(b"peers");
        assert_eq!(peer.reply(counter, &reply), Some(&b"peers"[..]));
        assert_eq!(peer.reply(counter + 1, &reply), None, "another request's");
        let mut altered = reply.clone();
        altered[10] ^= 0x01;
        assert_eq!(peer.reply(counter, &altered), None, "altered");
    }

    #[test]
    fn counters_only_grow_and_a_forgery_moves_nothing() {
        let (mut peer, mut registry) = session();
        let (_, first) = peer.request(b"one");
        let (_, second) = peer.request(b"two");
        // A forged frame with a huge counter must not lock the session.
        let mut forged = second.clone();
        forged[2 + 5..2 + 5 + 8].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(accept(&mut registry, &forged).is_none());
        assert!(accept(&mut registry, &second).is_some());
        assert!(
            accept(&mut registry, &first).is_none(),
            "older than the last"
        );
    }

    #[test]
    fn tampering_anywhere_is_detected() {
        let (mut peer, mut registry) = session();
        let (_, frame) = peer.request(b"register");
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x01;
            assert!(accept(&mut registry, &bad).is_none(), "byte {i} flipped");
        }
        assert!(accept(&mut registry, &frame[..frame.len() - 1]).is_none());
        assert!(accept(&mut registry, &frame).is_some());
    }

    #[test]
    fn another_session_opens_nothing() {
        let (mut alice, _) = session();
        let (_, mut other) = session();
        assert!(accept(&mut other, &alice.request(b"x").1).is_none());
    }
}
