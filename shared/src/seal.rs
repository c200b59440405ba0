//! Sealing with symmetric keys: a chat's frames, and a registry session's.
//!
//! A chat's keys come from its Noise handshake (`handshake.rs`). Each chat message is then
//! one sealed frame: `'E' | chat id (16) | counter (8, big endian) | Noise transport
//! message`, sealed with snow's stateless transport under the sender's direction key with
//! the counter as nonce. Its acknowledgement travels the other way, under the other
//! direction's key, with the nonce `2^63 + counter` (`'A' | ...`). The header is not
//! associated data: the chat id selects the keys and the counter is the nonce, so a header
//! changed on the way makes the frame fail to open. No public-key operation per message.
//!
//! A registry session keeps only the two keys of its handshake's split, and its frames are
//! sealed with them here ([`seal_in_place`]) as Noise seals a transport message, with the
//! frame's header as associated data (`registry_session.rs`). docs/security.md describes
//! both message by message.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use snow::{HandshakeState, StatelessTransportState};

use crate::handshake::{HandshakeError, Initiator, Recipient, Responder};
use crate::identity::{Identity, NoiseKey};
use crate::name::PeerName;
use crate::wire::frame::{self, ChatId, Kind, SEALED_HEADER_LEN, TAG_LEN};
use crate::wire::new_id;

/// Acknowledgements are sealed in the upper half of the nonces of the direction they travel
/// in, messages in the lower half. Each nonce is used once per key: a message's counter only
/// grows, and each counter received is acknowledged once.
const ACK_NONCES: u64 = 1 << 63;

/// A chat's keys, from one side's point of view: the transport keys of its Noise handshake
/// (`handshake.rs`), used statelessly: each frame carries its counter, which is the nonce.
pub struct ChatKeys {
    pub id: ChatId,
    transport: StatelessTransportState,
    /// The other side's Noise static key, which its identity signed in the handshake.
    remote_static: NoiseKey,
}

impl ChatKeys {
    /// The keys of a finished handshake; the chat id is the start of its handshake hash,
    /// which both sides share.
    pub(crate) fn from_handshake(state: HandshakeState) -> Result<ChatKeys, HandshakeError> {
        let id: ChatId = state.get_handshake_hash()[..16]
            .try_into()
            .expect("a SHA-256 handshake hash is 32 bytes");
        let remote_static = state
            .get_remote_static()
            .and_then(|s| <[u8; 32]>::try_from(s).ok())
            .map(NoiseKey::from_bytes)
            .ok_or(HandshakeError::Malformed)?;
        let transport = state
            .into_stateless_transport_mode()
            .map_err(|_| HandshakeError::Malformed)?;
        Ok(ChatKeys {
            id,
            transport,
            remote_static,
        })
    }

    /// The other side's Noise static key: a requester that keeps it can use IK next time.
    pub fn remote_static(&self) -> NoiseKey {
        self.remote_static
    }

    /// Both ends of one new chat between two fresh identities, agreed in this process: for
    /// tests, fuzzing and measurements, which need a chat without two programs.
    #[doc(hidden)]
    pub fn pair() -> (ChatKeys, ChatKeys) {
        let (alice, bob) = (Identity::generate(), Identity::generate());
        let bob_name: PeerName = "bob".parse().expect("a valid name");
        let request = new_id();
        let (initiator, pattern, first) =
            Initiator::start(&alice, request, Recipient::Unknown(None));
        let (bob_keys, second) =
            Responder::accept(&bob, &bob_name, request, pattern, &first, &alice.public())
                .expect("a fresh handshake");
        let alice_keys = initiator
            .finish(&second, &bob.public())
            .expect("a fresh handshake");
        (alice_keys, bob_keys)
    }

    /// Seals message number `counter` (each counter once per chat).
    pub fn seal(&self, counter: u64, plaintext: &[u8]) -> Vec<u8> {
        self.seal_frame(Kind::Sealed, counter, counter, plaintext)
    }

    /// Opens a sealed frame from the other side; returns its counter and plaintext. The
    /// caller still has to check the counter against its replay window.
    pub fn open(&self, frame: &[u8]) -> Option<(u64, Vec<u8>)> {
        let counter = self.counter_of(Kind::Sealed, frame)?;
        Some((counter, self.open_frame(counter, frame)?))
    }

    /// Seals the acknowledgement of the other side's message `counter`.
    pub fn seal_ack(&self, counter: u64, plaintext: &[u8]) -> Vec<u8> {
        self.seal_frame(Kind::SealedAck, counter, counter | ACK_NONCES, plaintext)
    }

    /// Opens the acknowledgement of our message `counter`.
    pub fn open_ack(&self, counter: u64, frame: &[u8]) -> Option<Vec<u8>> {
        match self.counter_of(Kind::SealedAck, frame)? {
            c if c == counter => self.open_frame(counter | ACK_NONCES, frame),
            _ => None,
        }
    }

    fn seal_frame(&self, kind: Kind, counter: u64, nonce: u64, plaintext: &[u8]) -> Vec<u8> {
        let mut frame = frame::sealed_header(kind, &self.id, counter, plaintext.len() + TAG_LEN);
        let header_len = frame.len();
        frame.resize(header_len + plaintext.len() + TAG_LEN, 0);
        self.transport
            .write_message(nonce, plaintext, &mut frame[header_len..])
            .expect("a chat frame is far below Noise's 65,535-byte limit");
        frame
    }

    /// The counter of a frame of this chat, if it is one and the counter is a message's.
    /// The last one below [`ACK_NONCES`] is no message's either: its acknowledgement's nonce
    /// would be 2^64 - 1, which Noise reserves (snow refuses to use it).
    fn counter_of(&self, kind: Kind, frame: &[u8]) -> Option<u64> {
        match frame::parse_sealed(kind, frame)? {
            (id, counter) if id == self.id && counter < ACK_NONCES - 1 => Some(counter),
            _ => None,
        }
    }

    fn open_frame(&self, nonce: u64, frame: &[u8]) -> Option<Vec<u8>> {
        let sealed = &frame[SEALED_HEADER_LEN..];
        if sealed.len() < TAG_LEN {
            return None;
        }
        let mut plaintext = vec![0u8; sealed.len()];
        let len = self
            .transport
            .read_message(nonce, sealed, &mut plaintext)
            .ok()?;
        plaintext.truncate(len);
        Some(plaintext)
    }
}

/// The chat id of a sealed frame, to find its keys.
pub fn chat_of(frame: &[u8]) -> Option<ChatId> {
    frame::parse_sealed(Kind::Sealed, frame).map(|(chat, _)| chat)
}

/// Seals the bytes of `frame` after its first `header_len` (the header) in place, as Noise
/// seals a transport message: ChaCha20-Poly1305 under `key`, with the nonce Noise makes of
/// `counter` (four zero bytes, then the counter little-endian); the header is the associated
/// data. Appends the tag. For registry sessions (`registry_session.rs`).
pub(crate) fn seal_in_place(frame: &mut Vec<u8>, header_len: usize, key: &[u8; 32], counter: u64) {
    let (header, body) = frame.split_at_mut(header_len);
    let tag = cipher(key)
        .seal_in_place_separate_tag(noise_nonce(counter), Aad::from(&*header), body)
        .expect("ChaCha20-Poly1305 does not fail for frame-sized input");
    frame.extend_from_slice(tag.as_ref());
}

/// Opens what [`seal_in_place`] sealed: the plaintext after the header, if the frame is
/// authentic under `key` and `counter`.
pub(crate) fn open_sealed(
    frame: &[u8],
    header_len: usize,
    key: &[u8; 32],
    counter: u64,
) -> Option<Vec<u8>> {
    if frame.len() < header_len + TAG_LEN {
        return None;
    }
    let (header, sealed) = frame.split_at(header_len);
    let mut plaintext = sealed.to_vec();
    let len = cipher(key)
        .open_in_place(noise_nonce(counter), Aad::from(header), &mut plaintext)
        .ok()?
        .len();
    plaintext.truncate(len);
    Some(plaintext)
}

/// ChaCha20-Poly1305 under `key`, from *ring*: its assembly runs a message of a few hundred
/// bytes in a quarter of the time of RustCrypto's `chacha20poly1305` 0.10, whose AVX2 code,
/// chosen at run time, does not inline its vector helpers (docs/decisions.md). Used for
/// registry sessions, whose keys `registry_session.rs` wipes when dropped; the copy *ring*
/// makes for each message is not wiped. (A chat's keys live in snow's transport state, which
/// drops them without wiping.)
fn cipher(key: &[u8; 32]) -> LessSafeKey {
    let key =
        UnboundKey::new(&CHACHA20_POLY1305, key).expect("a ChaCha20-Poly1305 key is 32 bytes");
    LessSafeKey::new(key)
}

/// Noise's ChaCha20-Poly1305 nonce for `counter`: four zero bytes, then the counter in
/// little-endian order. Unique per key, because each key's counters only grow.
fn noise_nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> (ChatKeys, ChatKeys) {
        ChatKeys::pair()
    }

    #[test]
    fn both_sides_agree_and_each_direction_opens_only_its_own_frames() {
        let (alice, bob) = chat();
        assert_eq!(alice.id, bob.id);
        let frame = alice.seal(7, b"hello bob");
        assert_eq!(bob.open(&frame), Some((7, b"hello bob".to_vec())));
        assert_eq!(alice.open(&frame), None, "not a frame for alice");
        let ack = bob.seal_ack(7, b"ok");
        assert_eq!(alice.open_ack(7, &ack), Some(b"ok".to_vec()));
        assert_eq!(alice.open_ack(8, &ack), None, "an ack for another message");
        assert_eq!(bob.open(&ack), None);
    }

    #[test]
    fn tampering_anywhere_is_detected() {
        let (alice, bob) = chat();
        let frame = alice.seal(1, b"pay 10 euros");
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x01;
            assert_eq!(bob.open(&bad), None, "byte {i} flipped");
        }
        assert_eq!(bob.open(&frame[..frame.len() - 1]), None);
    }

    #[test]
    fn other_chats_cannot_open_each_others_frames() {
        let (alice, _) = chat();
        let (_, carol) = chat();
        assert_eq!(carol.open(&alice.seal(1, b"secret")), None);
    }

    #[test]
    fn registry_frames_are_sealed_as_noise_seals_a_transport_message() {
        // snow's own ChaCha20-Poly1305 (RustCrypto's, its default resolver): an independent
        // implementation of Noise's ENCRYPT(k, n, ad, plaintext).
        use snow::params::CipherChoice;
        use snow::resolvers::{CryptoResolver, DefaultResolver};
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let counter = 0x0102_0304_0506_0708;
        let mut frame = b"header".to_vec();
        frame.extend_from_slice(b"a registry reply");
        seal_in_place(&mut frame, 6, &key, counter);
        let mut noise = DefaultResolver
            .resolve_cipher(&CipherChoice::ChaChaPoly)
            .unwrap();
        noise.set(&key);
        let mut expected = [0u8; 16 + TAG_LEN];
        noise.encrypt(counter, b"header", b"a registry reply", &mut expected);
        assert_eq!(&frame[..6], b"header");
        assert_eq!(&frame[6..], &expected[..]);
        let opened = open_sealed(&frame, 6, &key, counter);
        assert_eq!(opened.as_deref(), Some(&b"a registry reply"[..]));
        assert_eq!(open_sealed(&frame, 6, &key, counter + 1), None);
        let mut header_changed = frame.clone();
        header_changed[0] ^= 1;
        assert_eq!(open_sealed(&header_changed, 6, &key, counter), None);
        for short in [&b""[..], &frame[..6 + TAG_LEN - 1]] {
            assert_eq!(open_sealed(short, 6, &key, counter), None);
        }
    }

    #[test]
    fn an_acknowledgement_never_opens_as_a_message_nor_the_reverse() {
        let (alice, bob) = chat();
        let message = bob.seal(3, b"hi");
        let ack = bob.seal_ack(3, b"ok");
        assert_eq!(alice.open_ack(3, &message), None);
        let mut as_message = ack.clone();
        as_message[0] = message[0];
        assert_eq!(
            alice.open(&as_message),
            None,
            "an ack relabelled as a message"
        );
        let mut high = alice.seal(1, b"x");
        high[17] |= 0x80;
        assert_eq!(
            bob.open(&high),
            None,
            "a counter in the acknowledgements' half"
        );
        // The partner's last counter below that half: its acknowledgement would need the
        // nonce Noise reserves. It opens nowhere, so nothing ever seals that acknowledgement.
        let last = alice.seal(ACK_NONCES - 1, b"x");
        assert_eq!(bob.open(&last), None);
        assert!(bob.open(&alice.seal(ACK_NONCES - 2, b"x")).is_some());
        let ack = bob.seal_ack(ACK_NONCES - 2, b"ok");
        assert_eq!(alice.open_ack(ACK_NONCES - 2, &ack), Some(b"ok".to_vec()));
    }

    #[test]
    fn the_plaintext_is_not_in_the_frame() {
        let (alice, _) = chat();
        let frame = alice.seal(1, b"the quick brown fox");
        assert!(!frame.windows(5).any(|w| w == b"quick"));
    }
}
