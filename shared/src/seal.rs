//! Chat keys: agreed once per chat, then symmetric encryption for every message.
//!
//! When alice asks bob for a chat, her signed `chat_request` carries a fresh X25519 key
//! (`eph`); bob's signed `accepted` answer carries his. Each side computes the X25519 shared
//! secret and runs HKDF-SHA256 over it, salted with the request id and bound to both
//! long-term keys and both ephemeral keys, to get a chat id and four ChaCha20-Poly1305
//! keys: one per direction for messages and one per direction for their acknowledgements.
//! The signatures make the exchange authenticated (a signed Diffie-Hellman, as in SIGMA and
//! TLS 1.3); the ephemeral keys, dropped after use, give forward secrecy.
//!
//! Each chat message is then one sealed frame: `'E' | chat id (16) | counter (8, big
//! endian) | ciphertext and tag`, the first 25 bytes being the associated data and the
//! counter the nonce. Its acknowledgement is sealed under the reverse acknowledgement key
//! with the same counter (`'A' | ...`). No public-key operation per message. docs/security.md
//! describes the construction message by message.

use data_encoding::BASE64URL_NOPAD;
use hkdf::Hkdf;
use rand_core::OsRng;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::identity::{Identity, PublicKey};
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

/// Which end of the chat we are: the one who sent the request, or the one who accepted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Requester,
    Accepter,
}

/// A chat's keys, from one side's point of view.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ChatKeys {
    #[zeroize(skip)]
    pub id: ChatId,
    send: [u8; 32],
    receive: [u8; 32],
    send_ack: [u8; 32],
    receive_ack: [u8; 32],
}

/// The other side's key share was unusable (a low-order point gives no shared secret).
#[derive(Debug, thiserror::Error)]
#[error("the other side's key share is unusable")]
pub struct WeakShare;

/// What both sides know about a chat's key agreement.
pub struct Transcript<'a> {
    pub request: MessageId,
    pub requester: &'a PublicKey,
    pub accepter: &'a PublicKey,
    pub requester_share: &'a EphemeralKey,
    pub accepter_share: &'a EphemeralKey,
}

impl ChatKeys {
    /// Completes a key agreement with `ours` and the other side's share.
    pub fn agree(role: Role, ours: KeyShare, t: &Transcript<'_>) -> Result<ChatKeys, WeakShare> {
        let theirs = match role {
            Role::Requester => t.accepter_share,
            Role::Accepter => t.requester_share,
        };
        let mut okm = [0u8; 16 + 4 * 32];
        ours.derive(
            theirs,
            t.request,
            b"p2p-chat/2 chat session",
            &[
                t.requester.as_bytes(),
                t.accepter.as_bytes(),
                &t.requester_share.0,
                &t.accepter_share.0,
            ],
            &mut okm,
        )?;
        let key = |i: usize| -> [u8; 32] {
            okm[16 + 32 * i..16 + 32 * (i + 1)]
                .try_into()
                .expect("32 bytes")
        };
        // In derivation order: messages the requester sends, messages the accepter sends,
        // acknowledgements the requester sends (of the accepter's messages), and the
        // accepter's acknowledgements (of the requester's messages).
        let (requester_msgs, accepter_msgs, requester_acks, accepter_acks) =
            (key(0), key(1), key(2), key(3));
        let id: ChatId = okm[..16].try_into().expect("16 bytes");
        okm.zeroize();
        Ok(match role {
            Role::Requester => ChatKeys {
                id,
                send: requester_msgs,
                receive: accepter_msgs,
                send_ack: requester_acks,
                receive_ack: accepter_acks,
            },
            Role::Accepter => ChatKeys {
                id,
                send: accepter_msgs,
                receive: requester_msgs,
                send_ack: accepter_acks,
                receive_ack: requester_acks,
            },
        })
    }

    /// Both ends of one new chat between two fresh identities, agreed in this process: for
    /// tests, fuzzing and measurements, which need a chat without two programs.
    #[doc(hidden)]
    pub fn pair() -> (ChatKeys, ChatKeys) {
        let (alice, bob) = (Identity::generate().public(), Identity::generate().public());
        let (a, b) = (KeyShare::new(), KeyShare::new());
        let (ea, eb) = (a.public(), b.public());
        let t = Transcript {
            request: new_id(),
            requester: &alice,
            accepter: &bob,
            requester_share: &ea,
            accepter_share: &eb,
        };
        let agree = |role, share| ChatKeys::agree(role, share, &t).expect("fresh shares");
        (agree(Role::Requester, a), agree(Role::Accepter, b))
    }

    /// Seals message number `counter` (each counter once per chat).
    pub fn seal(&self, counter: u64, plaintext: &[u8]) -> Vec<u8> {
        seal(Kind::Sealed, &self.send, &self.id, counter, plaintext)
    }

    /// Opens a sealed frame from the other side; returns its counter and plaintext. The
    /// caller still has to check the counter against its replay window.
    pub fn open(&self, frame: &[u8]) -> Option<(u64, Vec<u8>)> {
        open(Kind::Sealed, &self.receive, &self.id, frame)
    }

    /// Seals the acknowledgement of the other side's message `counter`.
    pub fn seal_ack(&self, counter: u64, plaintext: &[u8]) -> Vec<u8> {
        seal(
            Kind::SealedAck,
            &self.send_ack,
            &self.id,
            counter,
            plaintext,
        )
    }

    /// Opens the acknowledgement of our message `counter`.
    pub fn open_ack(&self, counter: u64, frame: &[u8]) -> Option<Vec<u8>> {
        match open(Kind::SealedAck, &self.receive_ack, &self.id, frame)? {
            (c, plaintext) if c == counter => Some(plaintext),
            _ => None,
        }
    }
}

/// The chat id of a sealed frame, to find its keys.
pub fn chat_of(frame: &[u8]) -> Option<ChatId> {
    frame::parse_sealed(Kind::Sealed, frame).map(|(chat, _)| chat)
}

fn seal(kind: Kind, key: &[u8; 32], chat: &ChatId, counter: u64, plaintext: &[u8]) -> Vec<u8> {
    let header = frame::sealed_header(kind, chat, counter, plaintext.len() + TAG_LEN);
    seal_after(header, key, counter, plaintext)
}

fn open(kind: Kind, key: &[u8; 32], chat: &ChatId, frame: &[u8]) -> Option<(u64, Vec<u8>)> {
    match frame::parse_sealed(kind, frame)? {
        (id, counter) if id == *chat => {
            Some((counter, open_after(SEALED_HEADER_LEN, key, counter, frame)?))
        }
        _ => None,
    }
}

/// Appends `plaintext`, encrypted with `key` and nonce `counter`, and its tag to `header`,
/// which the tag authenticates too.
fn seal_after(mut header: Vec<u8>, key: &[u8; 32], counter: u64, plaintext: &[u8]) -> Vec<u8> {
    let header_len = header.len();
    header.extend_from_slice(plaintext);
    let (aad, in_out) = header.split_at_mut(header_len);
    let tag = cipher(key)
        .seal_in_place_separate_tag(nonce(counter), Aad::from(&*aad), in_out)
        .expect("ChaCha20-Poly1305 encryption does not fail for frame-sized input");
    header.extend_from_slice(tag.as_ref());
    header
}

/// Opens what [`seal_after`] made: the first `header_len` bytes of `frame` are the header.
fn open_after(header_len: usize, key: &[u8; 32], counter: u64, frame: &[u8]) -> Option<Vec<u8>> {
    if frame.len() < header_len + TAG_LEN {
        return None;
    }
    let (header, sealed) = frame.split_at(header_len);
    let mut in_out = sealed.to_vec();
    let plaintext_len = cipher(key)
        .open_in_place(nonce(counter), Aad::from(header), &mut in_out)
        .ok()?
        .len();
    in_out.truncate(plaintext_len);
    Some(in_out)
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
/// chosen at run time, does not inline its vector helpers (docs/decisions.md). The keys live
/// in [`ChatKeys`], which wipes them when dropped; the copy *ring* makes for each message
/// is not wiped (nor was RustCrypto's, without its `zeroize` feature).
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
    fn frames_are_standard_chacha20_poly1305() {
        // Computed with RustCrypto's `chacha20poly1305` 0.10, which sealed these frames until
        // *ring* took over: an independent implementation, and proof that frames did not change.
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let counter = 0x0102_0304_0506_0708;
        let sealed = seal_after(b"header".to_vec(), &key, counter, b"hello bob");
        let expected = "8783c994caaccaf372939038032d9c46b30e89e85dabfbf6b4";
        assert_eq!(&sealed[..6], b"header");
        assert_eq!(hex(&sealed[6..]), expected);
        assert_eq!(
            open_after(6, &key, counter, &sealed).as_deref(),
            Some(&b"hello bob"[..])
        );
        let tagged = authenticate(b"a registry reply".to_vec(), &key, counter);
        assert_eq!(hex(&tagged[16..]), "5f44fb54386021b3877b683b2e76fe95");
        assert_eq!(
            authenticated(&tagged, &key, counter),
            Some(&b"a registry reply"[..])
        );
        assert_eq!(authenticated(&tagged, &key, counter + 1), None);
        for short in [&b""[..], &b"0123456789abcde"[..], &tagged[..16]] {
            assert_eq!(authenticated(short, &key, counter), None, "{short:?}");
            assert_eq!(open_after(6, &key, counter, short), None);
        }
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
