//! Symmetric keys: a chat's transport keys, and the key shares of registry sessions.
//!
//! A chat's keys come from its Noise handshake (`handshake.rs`). Each chat message is then
//! one sealed frame: `'E' | chat id (16) | counter (8, big endian) | Noise transport
//! message`, sealed with snow's stateless transport under the sender's direction key with
//! the counter as nonce. Its acknowledgement travels the other way, under the other
//! direction's key, with the nonce `2^63 + counter` (`'A' | ...`). The header is not
//! associated data: the chat id selects the keys and the counter is the nonce, so a header
//! changed on the way makes the frame fail to open. No public-key operation per message.
//!
//! Registry sessions (`registry_session.rs`) still agree keys from [`KeyShare`]s with HKDF
//! and authenticate frames with [`authenticate`]. docs/security.md describes both message by
//! message.

use data_encoding::BASE64URL_NOPAD;
use hkdf::Hkdf;
use rand_core::OsRng;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use snow::{HandshakeState, StatelessTransportState};
use x25519_dalek::StaticSecret;

use crate::handshake::{HandshakeError, Initiator, Recipient, Responder};
use crate::identity::{Identity, NoiseKey};
use crate::name::PeerName;
use crate::wire::frame::{self, ChatId, Kind, SEALED_HEADER_LEN, TAG_LEN};
use crate::wire::{new_id, MessageId};

/// A public X25519 key for one chat's key agreement, as it travels in JSON (base64url).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EphemeralKey(pub(crate) [u8; 32]);

impl TryFrom<String> for EphemeralKey {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        BASE64URL_NOPAD
            .decode(s.as_bytes())
            .ok()
            .and_then(|b| b.try_into().ok())
            .map(EphemeralKey)
            .ok_or("not an X25519 key (43 characters of base64url)")
    }
}

impl From<EphemeralKey> for String {
    fn from(key: EphemeralKey) -> String {
        BASE64URL_NOPAD.encode(&key.0)
    }
}

/// Our half of a key agreement: the secret stays here until the other half arrives.
pub struct KeyShare {
    secret: StaticSecret,
    public: EphemeralKey,
}

impl KeyShare {
    pub fn new() -> KeyShare {
        let secret = StaticSecret::random_from_rng(OsRng);
        let public = EphemeralKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        KeyShare { secret, public }
    }

    pub fn public(&self) -> EphemeralKey {
        self.public
    }

    /// Completes the X25519 agreement with `theirs` and fills `okm` with HKDF-SHA256 output
    /// salted with the id of the message that opened the exchange and bound to `label` and
    /// every public part of the exchange (long-term keys and shares), in a fixed order.
    pub(crate) fn derive(
        self,
        theirs: &EphemeralKey,
        salt: MessageId,
        label: &[u8],
        parts: &[&[u8]],
        okm: &mut [u8],
    ) -> Result<(), WeakShare> {
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(theirs.0));
        if !shared.was_contributory() {
            return Err(WeakShare);
        }
        let mut info = label.to_vec();
        for part in parts {
            info.extend_from_slice(part);
        }
        Hkdf::<Sha256>::new(Some(salt.as_bytes()), shared.as_bytes())
            .expand(&info, okm)
            .expect("a valid HKDF output length");
        Ok(())
    }
}

impl Default for KeyShare {
    fn default() -> Self {
        KeyShare::new()
    }
}

/// The other side's key share was unusable (a low-order point gives no shared secret).
#[derive(Debug, thiserror::Error)]
#[error("the other side's key share is unusable")]
pub struct WeakShare;

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

/// Appends the tag that authenticates all of `frame` without encrypting any of it:
/// ChaCha20-Poly1305 with nothing to encrypt and the frame as associated data, which is
/// Poly1305 under a one-time key drawn from `key` and nonce `counter`. For registry sessions,
/// whose contents anyone may read from the registry anyway (`registry_session.rs`).
pub(crate) fn authenticate(mut frame: Vec<u8>, key: &[u8; 32], counter: u64) -> Vec<u8> {
    let tag = cipher(key)
        .seal_in_place_separate_tag(nonce(counter), Aad::from(&frame[..]), &mut [])
        .expect("ChaCha20-Poly1305 does not fail for frame-sized input");
    frame.extend_from_slice(tag.as_ref());
    frame
}

/// The frame without its tag, if the tag authenticates it under `key` and `counter`.
pub(crate) fn authenticated<'f>(frame: &'f [u8], key: &[u8; 32], counter: u64) -> Option<&'f [u8]> {
    let (data, tag) = frame.split_at(frame.len().checked_sub(TAG_LEN)?);
    // Nothing was encrypted, so the "ciphertext" to open is the tag alone.
    let mut in_out: [u8; TAG_LEN] = tag.try_into().ok()?;
    cipher(key)
        .open_in_place(nonce(counter), Aad::from(data), &mut in_out)
        .ok()?;
    Some(data)
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

/// The nonce of message `counter`: unique per key, because each key's counters only grow.
fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
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
    fn registry_tags_are_standard_chacha20_poly1305() {
        // Computed with RustCrypto's `chacha20poly1305` 0.10: an independent implementation.
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let counter = 0x0102_0304_0506_0708;
        let tagged = authenticate(b"a registry reply".to_vec(), &key, counter);
        assert_eq!(hex(&tagged[16..]), "5f44fb54386021b3877b683b2e76fe95");
        assert_eq!(
            authenticated(&tagged, &key, counter),
            Some(&b"a registry reply"[..])
        );
        assert_eq!(authenticated(&tagged, &key, counter + 1), None);
        for short in [&b""[..], &b"0123456789abcde"[..], &tagged[..16]] {
            assert_eq!(authenticated(short, &key, counter), None, "{short:?}");
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

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_plaintext_is_not_in_the_frame() {
        let (alice, _) = chat();
        let frame = alice.seal(1, b"the quick brown fox");
        assert!(!frame.windows(5).any(|w| w == b"quick"));
    }
}
