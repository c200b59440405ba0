//! Registry sessions: one Noise handshake when a peer registers, then requests and replies
//! sealed with the handshake's two keys for as long as the registration lasts.
//!
//! Why: with a signature on every request and every reply, public-key cryptography was two
//! thirds of the registry's work (a signature check costs 47 µs, a signature 18 µs, more
//! for a page of peers; docs/benchmarks.md). A peer talks to its registry every few seconds
//! for as long as it runs, so it pays for one handshake, as a chat does.
//!
//! A peer's signed `register` carries message 1 of the handshake (`handshake/registry.rs`);
//! the registry's signed `registered` reply carries message 2. Both sides keep the two keys
//! of the split: one for the peer's requests, one for the registry's replies. Each frame is
//! sealed as Noise seals a transport message (ChaCha20-Poly1305, the counter the nonce), with
//! its header as associated data (`seal::seal_in_place`):
//!
//! - request: `'R' | name length (1) | name | counter (8, big endian) | sealed JSON | tag`
//! - reply: `'r' | counter (8) | sealed JSON | tag`, under the reply key, with the counter of
//!   the request it answers, so it counts as the answer to that request and no other.
//!
//! The name tells the registry which registration holds the session's keys, so it needs no
//! other index. Counters only grow: the registry accepts a request only if its counter is
//! above the last one it accepted in the session (a peer sends its registry requests one at
//! a time), which costs 8 bytes per registration where a chat's reordering window costs 136.
//! docs/protocol.md and docs/security.md describe the session message by message.

use std::num::NonZeroU64;

use crate::handshake::registry::SessionKeys;
use crate::identity::PublicKey;
use crate::name::PeerName;
use crate::seal::{open_sealed, seal_in_place};
use crate::wire::frame::{self, RegistryRequestHeader as Header};

/// The peer's side of a session: seals requests, opens the replies.
pub struct PeerSession {
    name: PeerName,
    registry: PublicKey,
    keys: SessionKeys,
    /// The counter of the last request sealed.
    counter: u64,
}

/// Both sides of one new session of the peer `name` with a registry, fresh identities,
/// agreed in this process: for tests, fuzzing and measurements.
#[doc(hidden)]
pub fn pair(name: PeerName) -> (PeerSession, RegistrySession) {
    let registry = crate::identity::Identity::generate().public();
    let (ours, theirs) = crate::handshake::registry::pair();
    (
        PeerSession::new(name, registry, ours),
        RegistrySession::new(theirs),
    )
}

impl PeerSession {
    /// The session of the peer `name` with the registry whose key is `registry`.
    pub fn new(name: PeerName, registry: PublicKey, keys: SessionKeys) -> PeerSession {
        PeerSession {
            name,
            registry,
            keys,
            counter: 0,
        }
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
        let header_len = frame.len();
        frame.extend_from_slice(json);
        seal_in_place(&mut frame, header_len, &self.keys.request, self.counter);
        (self.counter, frame)
    }

    /// The JSON of the reply to request `counter`, if `frame` is that reply.
    pub fn reply(&self, counter: u64, frame: &[u8]) -> Option<Vec<u8>> {
        match frame::parse_registry_reply(frame)? {
            (c, _) if c == counter => open_sealed(
                frame,
                frame::REGISTRY_REPLY_HEADER_LEN,
                &self.keys.reply,
                counter,
            ),
            _ => None,
        }
    }
}

/// The registry's side of a session, kept with the registration: 72 bytes, and 72 as the
/// registration's `Option<RegistrySession>` too, because `next` is never zero and so the
/// option needs no flag of its own (8 bytes, which in the registry's B-tree, its nodes about
/// half full, cost nearly twice that per registration: docs/benchmarks.md, item 17).
pub struct RegistrySession {
    keys: SessionKeys,
    /// The lowest counter the next request may carry: one above the last accepted.
    next: NonZeroU64,
}

/// The registry's way to answer one request it accepted: the reply key and that request's
/// counter. A page of peers is the biggest reply, so the connection task builds it, not the
/// task that owns the registrations.
pub struct Replier {
    reply: zeroize::Zeroizing<[u8; 32]>,
    counter: u64,
}

impl Replier {
    /// The reply frame carrying `json`.
    pub fn reply(&self, json: &[u8]) -> Vec<u8> {
        self.reply_with(json.len(), |frame| frame.extend_from_slice(json))
    }

    /// The reply frame carrying the JSON that `encode` appends to the frame it is given, about
    /// `json_len` bytes: a reply encoded straight into its frame, not into a buffer of its
    /// own and then copied (a page of peers is up to 64 KB), and sealed where it lies.
    pub fn reply_with(&self, json_len: usize, encode: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut frame = frame::registry_reply_header(self.counter, json_len);
        encode(&mut frame);
        seal_in_place(
            &mut frame,
            frame::REGISTRY_REPLY_HEADER_LEN,
            &self.reply,
            self.counter,
        );
        frame
    }
}

impl RegistrySession {
    pub fn new(keys: SessionKeys) -> RegistrySession {
        RegistrySession {
            keys,
            next: NonZeroU64::MIN,
        }
    }

    /// Opens the request whose header is `header`, and accepts its counter if it is above
    /// every counter accepted before; returns its JSON and the means to reply. `None` if it
    /// is not authentic (another session's, or altered) or is a replay; a frame that is not
    /// authentic changes nothing. The last counter, `u64::MAX`, is never accepted: Noise
    /// reserves it as a nonce, no peer gets there (one request at a time), and nothing could
    /// come after it.
    pub fn accept(&mut self, header: &Header, frame: &[u8]) -> Option<(Vec<u8>, Replier)> {
        let after = header.counter.checked_add(1).and_then(NonZeroU64::new)?;
        let json = open_sealed(
            frame,
            header.header_len(),
            &self.keys.request,
            header.counter,
        )?;
        if header.counter < self.next.get() {
            return None;
        }
        self.next = after;
        let replier = Replier {
            reply: zeroize::Zeroizing::new(self.keys.reply),
            counter: header.counter,
        };
        Some((json, replier))
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
        registry.accept(&header, frame)
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
        assert_eq!(peer.reply(counter, &reply), Some(b"peers".to_vec()));
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
    fn the_last_counter_is_refused_even_when_authentic() {
        let (mut peer, mut registry) = session();
        peer.counter = u64::MAX - 2;
        let (_, before_last) = peer.request(b"one");
        let (counter, last) = peer.request(b"two");
        assert_eq!(counter, u64::MAX);
        assert!(accept(&mut registry, &before_last).is_some());
        assert!(accept(&mut registry, &last).is_none(), "nothing after it");
        assert!(
            accept(&mut registry, &before_last).is_none(),
            "still a replay"
        );
    }

    /// A registration holds an `Option<RegistrySession>`: the option must cost nothing.
    #[test]
    fn a_session_kept_as_an_option_costs_no_more_than_the_session() {
        use std::mem::size_of;
        assert_eq!(size_of::<RegistrySession>(), 72);
        assert_eq!(size_of::<Option<RegistrySession>>(), 72);
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
    fn another_session_opens_nothing_and_nothing_is_in_the_clear() {
        let (mut alice, _) = session();
        let (_, mut other) = session();
        let (_, frame) = alice.request(b"the quick brown fox");
        assert!(accept(&mut other, &frame).is_none());
        assert!(!frame.windows(5).any(|w| w == b"quick"), "encrypted");
    }
}
