//! Long-term identities: an Ed25519 key pair per peer name and one for the registry.
//!
//! A name means a key: the registry binds each name to the key that first claimed it, and
//! peers pin each other's keys on first contact. A [`PublicKey`] travels in every envelope's
//! `from.key` (base64url, 43 characters); people compare [`PublicKey::fingerprint`]s.
//!
//! Keys are made by ed25519-dalek from the operating system's random source; the secret is
//! stored as 32 bytes of hex in a file only its owner can read.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::str::FromStr;

use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A public key, as it travels on the wire and sits in the registry and in `known_peers`.
///
/// Kept as its 32 bytes: the registry holds one per name, and the decompressed form is six
/// times larger. A key that is not a valid curve point simply verifies nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicKey([u8; 32]);

/// A detached Ed25519 signature.
pub type Signature = ed25519_dalek::Signature;

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a public key (43 characters of base64url)")]
    BadPublicKey,
    #[error("{path}: {why}")]
    File { path: String, why: String },
}

impl PublicKey {
    /// A stable way for people to compare keys by hand: the first 16 bytes (128 bits) of the
    /// key's SHA-256, in hex, in groups of four (`3f2a:9c1d:77e0:b4a2:05c8:e1f3:6a2b:d940`).
    /// 128 bits, because an attacker who can make keys until one matches a victim's
    /// fingerprint in the digits people compare needs about 2^128 tries; 64 bits (before
    /// protocol version 5) is within reach of a large computation.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0);
        let hex = HEXLOWER.encode(&digest[..16]);
        hex.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).expect("hex is ASCII"))
            .collect::<Vec<_>>()
            .join(":")
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A fingerprint as a person typed it (any case, with or without the colons), in the
    /// form [`PublicKey::fingerprint`] prints; `None` if it is not 32 hex digits.
    pub fn parse_fingerprint(typed: &str) -> Option<String> {
        let hex: String = typed
            .chars()
            .filter(|c| *c != ':')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let groups: Vec<&str> = (0..8).map(|i| &hex[4 * i..4 * i + 4]).collect();
        Some(groups.join(":"))
    }

    /// Whether `signature` is this key's over `message` (strict verification: no malleable
    /// signatures, no weak keys).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        VerifyingKey::from_bytes(&self.0)
            .is_ok_and(|key| key.verify_strict(message, signature).is_ok())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        key_bytes(s).map(PublicKey).ok_or(KeyError::BadPublicKey)
    }
}

impl TryFrom<String> for PublicKey {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, KeyError> {
        s.parse()
    }
}

impl From<PublicKey> for String {
    fn from(key: PublicKey) -> String {
        key.to_string()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE64URL_NOPAD.encode(&self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

/// A key pair: who we are, and the Noise static key it vouches for.
pub struct Identity {
    signing: SigningKey,
    noise: NoiseIdentity,
}

impl Identity {
    /// A new random identity.
    pub fn generate() -> Identity {
        Identity::from_signing(SigningKey::generate(&mut OsRng))
    }

    fn from_signing(signing: SigningKey) -> Identity {
        let noise = NoiseIdentity::derive(&signing);
        Identity { signing, noise }
    }

    /// Our Noise static key pair and the signature that binds it to this identity.
    pub fn noise(&self) -> &NoiseIdentity {
        &self.noise
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }

    /// Loads the identity kept in `path`, creating it (and its folder, owner-only) on first
    /// use. A key file others can read is refused: it would no longer prove anything.
    pub fn load_or_create(path: &Path) -> Result<Identity, KeyError> {
        let fail = |why: String| KeyError::File {
            path: path.display().to_string(),
            why,
        };
        match fs::read_to_string(path) {
            Ok(text) => {
                let mode = fs::metadata(path)
                    .map_err(|e| fail(e.to_string()))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(fail(format!(
                        "readable by others (mode {:o}); run chmod 600 on it",
                        mode & 0o777
                    )));
                }
                let secret = Zeroizing::new(
                    HEXLOWER
                        .decode(text.trim().as_bytes())
                        .map_err(|_| fail("not a key file (64 hex digits)".into()))?,
                );
                let seed: &[u8; 32] = secret
                    .as_slice()
                    .try_into()
                    .map_err(|_| fail("not a key file (64 hex digits)".into()))?;
                Ok(Identity::from_signing(SigningKey::from_bytes(seed)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Identity::generate();
                if let Some(dir) = path.parent() {
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(|e| fail(format!("cannot create its folder: {e}")))?;
                }
                let secret = Zeroizing::new(HEXLOWER.encode(identity.signing.as_bytes()));
                // create_new: never overwrite a key that appeared meanwhile.
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| fail(e.to_string()))?;
                writeln!(file, "{}", secret.as_str())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| fail(e.to_string()))?;
                Ok(identity)
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }
}

/// An X25519 public key used as a Noise static key (`handshake.rs`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NoiseKey([u8; 32]);

impl NoiseKey {
    pub fn from_bytes(bytes: [u8; 32]) -> NoiseKey {
        NoiseKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `identity` signed this key as its Noise static key.
    pub fn is_signed_by(&self, identity: &PublicKey, signature: &Signature) -> bool {
        identity.verify(&noise_binding(self), signature)
    }
}

impl fmt::Debug for NoiseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoiseKey({})", BASE64URL_NOPAD.encode(&self.0))
    }
}

impl fmt::Display for NoiseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE64URL_NOPAD.encode(&self.0))
    }
}

impl FromStr for NoiseKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        key_bytes(s).map(NoiseKey).ok_or(KeyError::BadPublicKey)
    }
}

impl TryFrom<String> for NoiseKey {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, KeyError> {
        s.parse()
    }
}

impl From<NoiseKey> for String {
    fn from(key: NoiseKey) -> String {
        key.to_string()
    }
}

/// The 32 bytes of a key written in base64url (43 characters), if that is what `s` is.
fn key_bytes(s: &str) -> Option<[u8; 32]> {
    BASE64URL_NOPAD
        .decode(s.as_bytes())
        .ok()
        .and_then(|b| b.try_into().ok())
}

/// What an identity signs to vouch for its Noise static key: a context string, so the
/// signature means nothing else, then the key.
fn noise_binding(key: &NoiseKey) -> Vec<u8> {
    [&b"p2p-chat/5 noise static key\0"[..], &key.0].concat()
}

/// Our Noise static key pair, and our identity's signature over its public half.
///
/// The secret is derived from the identity's secret (HKDF-SHA256, with its own label), so
/// it needs no file of its own and stays the same across runs: a partner who pinned it can
/// use IK next time.
pub struct NoiseIdentity {
    secret: Zeroizing<[u8; 32]>,
    public: NoiseKey,
    signature: Signature,
}

impl NoiseIdentity {
    fn derive(signing: &SigningKey) -> NoiseIdentity {
        let mut secret = Zeroizing::new([0u8; 32]);
        hkdf::Hkdf::<Sha256>::new(None, signing.as_bytes())
            .expand(b"p2p-chat/5 noise static key", &mut secret[..])
            .expect("32 bytes is a valid HKDF output length");
        let public = NoiseKey(
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes(),
        );
        let signature = signing.sign(&noise_binding(&public));
        NoiseIdentity {
            secret,
            public,
            signature,
        }
    }

    pub fn public(&self) -> NoiseKey {
        self.public
    }

    pub fn signature(&self) -> Signature {
        self.signature
    }

    pub(crate) fn secret(&self) -> &Zeroizing<[u8; 32]> {
        &self.secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_right_key_and_message() {
        let (alice, mallory) = (Identity::generate(), Identity::generate());
        let sig = alice.sign(b"hello");
        assert!(alice.public().verify(b"hello", &sig));
        assert!(!alice.public().verify(b"hellO", &sig));
        assert!(!mallory.public().verify(b"hello", &sig));
    }

    #[test]
    fn the_noise_static_key_is_stable_and_signed_by_its_identity_only() {
        let alice = Identity::generate();
        let again = Identity::from_signing(SigningKey::from_bytes(alice.signing.as_bytes()));
        let noise = alice.noise();
        assert_eq!(
            noise.public(),
            again.noise().public(),
            "derived, not random"
        );
        assert!(noise
            .public()
            .is_signed_by(&alice.public(), &noise.signature()));
        let mallory = Identity::generate();
        assert!(!noise
            .public()
            .is_signed_by(&mallory.public(), &noise.signature()));
        assert!(!mallory
            .noise()
            .public()
            .is_signed_by(&alice.public(), &noise.signature()));
    }

    #[test]
    fn public_keys_round_trip_as_text() {
        let key = Identity::generate().public();
        let text = key.to_string();
        assert_eq!(text.len(), 43);
        assert_eq!(text.parse::<PublicKey>().unwrap(), key);
        assert!("not a key".parse::<PublicKey>().is_err());
        assert_eq!(key.fingerprint().len(), 39, "8 groups of 4 hex digits");
        let fingerprint = key.fingerprint();
        let typed = fingerprint.replace(':', "").to_uppercase();
        assert_eq!(
            PublicKey::parse_fingerprint(&typed),
            Some(fingerprint.clone())
        );
        assert_eq!(
            PublicKey::parse_fingerprint(&fingerprint),
            Some(fingerprint.clone())
        );
        assert_eq!(
            PublicKey::parse_fingerprint(&fingerprint[..19]),
            None,
            "64 bits"
        );
        assert_eq!(PublicKey::parse_fingerprint(&"g".repeat(32)), None);
    }

    #[test]
    fn a_key_file_is_created_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("p2p-identity-test-{}", std::process::id()));
        let path = dir.join("keys").join("alice.key");
        let first = Identity::load_or_create(&path).unwrap();
        let again = Identity::load_or_create(&path).unwrap();
        assert_eq!(first.public(), again.public());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            Identity::load_or_create(&path).is_err(),
            "a readable key is refused"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
