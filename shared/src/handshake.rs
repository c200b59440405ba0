//! Chat handshakes: the Noise Protocol Framework, through `snow`.
//!
//! A chat's keys come from a two-message Noise handshake. Message 1 rides in the requester's
//! `chat_request`; message 2 in the accepter's `chat_answer`, sent only once its user says
//! `yes`. Two patterns, named on the wire:
//!
//! - **IK** when the requester already knows the accepter's Noise static key (pinned from an
//!   earlier chat): message 1's payload is encrypted to it, and only that peer can answer.
//!   (The signed request around it still names the requester in the clear.)
//! - **IX** for first contact: both statics travel in the handshake; the requester's in the
//!   clear (it was in the clear before Noise too, in the signed request).
//!
//! Identities stay Ed25519. Each side's X25519 static key is signed by its identity key, and
//! that signature travels in the handshake payload (as in libp2p's Noise handshake), so a
//! finished handshake proves which identity holds the other end. The prologue binds the
//! protocol version and the request id; message 1's payload names the peer it is meant for,
//! when the requester asked by name. Both sides end with the same handshake hash, from which
//! the chat id comes, and with keys only the two of them have (docs/security.md).
//!
//! The responder keeps message 1 itself while its user decides, and reads it again on `yes`:
//! reading is deterministic, so the pending table holds a few hundred bytes per request
//! instead of a handshake state.

use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};
use snow::{Builder, HandshakeState};

use crate::identity::{Identity, NoiseKey, PublicKey, Signature};
use crate::name::PeerName;
use crate::seal::ChatKeys;
use crate::wire::MessageId;

/// The longest handshake message taken from the network: message 2 of IX with its payload
/// is about 350 bytes.
pub const MAX_HANDSHAKE_LEN: usize = 1024;

/// Bound into every chat handshake: the protocol version and what the handshake is for,
/// then the request id.
const CHAT: &[u8] = b"p2p-chat/5 chat\0";

/// Which Noise pattern a chat handshake follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pattern {
    IK,
    IX,
}

impl Pattern {
    fn params(self) -> snow::params::NoiseParams {
        let name = match self {
            Pattern::IK => "Noise_IK_25519_ChaChaPoly_SHA256",
            Pattern::IX => "Noise_IX_25519_ChaChaPoly_SHA256",
        };
        name.parse().expect("a valid Noise protocol name")
    }
}

/// A handshake message, as it travels in JSON (base64url), at most [`MAX_HANDSHAKE_LEN`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HandshakeMessage(Vec<u8>);

impl std::fmt::Debug for HandshakeMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HandshakeMessage({} bytes)", self.0.len())
    }
}

impl TryFrom<String> for HandshakeMessage {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        const TOO_LONG: &str = "a handshake message of at most 1,024 bytes, in base64url";
        if s.len() > MAX_HANDSHAKE_LEN.div_ceil(3) * 4 {
            return Err(TOO_LONG);
        }
        let bytes = BASE64URL_NOPAD.decode(s.as_bytes()).map_err(|_| TOO_LONG)?;
        if bytes.len() > MAX_HANDSHAKE_LEN {
            return Err(TOO_LONG);
        }
        Ok(HandshakeMessage(bytes))
    }
}

impl From<HandshakeMessage> for String {
    fn from(message: HandshakeMessage) -> String {
        BASE64URL_NOPAD.encode(&message.0)
    }
}

/// What each side says about itself inside the handshake.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    /// The identity that holds the static key of this handshake...
    key: PublicKey,
    /// ...as it proves by signing that static key.
    sig: SignatureText,
    /// Message 1 only: the name the requester asked for, if it asked by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<PeerName>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
struct SignatureText(Signature);

/// A peer's Noise static key with its identity's signature over it, as its registration
/// handshake proved them to the registry. A registry `lookup` answer carries it, so that a
/// requester who asks by name can use IK with a peer it never met; the requester checks the
/// signature against the key the registry binds to the name, so the registry cannot hand out
/// a static key that identity did not sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticProof {
    #[serde(rename = "static")]
    noise: NoiseKey,
    sig: SignatureText,
}

impl StaticProof {
    /// Our own proof.
    pub fn of(me: &Identity) -> StaticProof {
        StaticProof {
            noise: me.noise().public(),
            sig: SignatureText(me.noise().signature()),
        }
    }

    /// The static key, if `identity` signed it.
    pub fn static_of(&self, identity: &PublicKey) -> Option<NoiseKey> {
        self.noise
            .is_signed_by(identity, &self.sig.0)
            .then_some(self.noise)
    }
}

impl TryFrom<String> for SignatureText {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let bytes: [u8; 64] = BASE64URL_NOPAD
            .decode(s.as_bytes())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("not a signature (86 characters of base64url)")?;
        Ok(SignatureText(Signature::from_bytes(&bytes)))
    }
}

impl From<SignatureText> for String {
    fn from(sig: SignatureText) -> String {
        BASE64URL_NOPAD.encode(&sig.0.to_bytes())
    }
}

/// Why a handshake message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("the handshake message does not decrypt or is malformed")]
    Malformed,
    #[error("the handshake's payload is not valid")]
    BadPayload,
    #[error("the handshake names the key {named}, not the key {expected} it came with")]
    WrongIdentity { named: String, expected: String },
    #[error("the handshake's static key is not signed by its identity")]
    UnsignedStatic,
    #[error("the request is meant for {0}")]
    NotForUs(PeerName),
}

/// What the requester knows of the peer it asks.
pub enum Recipient<'a> {
    /// A peer whose Noise static key we have from an earlier chat: IK.
    Pinned { name: PeerName, noise: &'a NoiseKey },
    /// A name without its static key, or an address (`None`): IX.
    Unknown(Option<PeerName>),
}

/// The requester's side, between message 1 and message 2.
pub struct Initiator {
    state: HandshakeState,
}

impl Initiator {
    /// Starts the handshake of chat request `request`: the initiator and message 1.
    pub fn start(
        me: &Identity,
        request: MessageId,
        to: Recipient<'_>,
    ) -> (Initiator, Pattern, HandshakeMessage) {
        let (pattern, remote, name) = match to {
            Recipient::Pinned { name, noise } => (Pattern::IK, Some(noise), Some(name)),
            Recipient::Unknown(name) => (Pattern::IX, None, name),
        };
        let mut state = initiator(me, (CHAT, request), pattern, remote);
        let message = write(&mut state, &payload(me, name));
        (Initiator { state }, pattern, message)
    }

    /// Reads message 2 from the peer whose identity is `expected` (the signed `pending`
    /// reply said who it is): the chat's keys.
    pub fn finish(
        mut self,
        message: &HandshakeMessage,
        expected: &PublicKey,
    ) -> Result<ChatKeys, HandshakeError> {
        let payload = read(&mut self.state, message)?;
        check(&self.state, &payload, expected)?;
        ChatKeys::from_handshake(self.state)
    }
}

/// What message 1 says, once checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Heard {
    /// The name the requester asked for, if it asked by name.
    pub to: Option<PeerName>,
}

/// The responder's side: reads message 1 when it arrives, and again when its user says yes.
pub struct Responder;

impl Responder {
    /// Checks message 1 of chat request `request`, which came signed by `claimed`: it must be
    /// a valid handshake, by that identity, meant for `me_name` if it names anyone.
    pub fn hear(
        me: &Identity,
        me_name: &PeerName,
        request: MessageId,
        pattern: Pattern,
        message: &HandshakeMessage,
        claimed: &PublicKey,
    ) -> Result<Heard, HandshakeError> {
        let (_, heard) = read_first(me, me_name, request, pattern, message, claimed)?;
        Ok(heard)
    }

    /// Accepts: reads message 1 again and answers it. Returns the chat's keys and message 2.
    pub fn accept(
        me: &Identity,
        me_name: &PeerName,
        request: MessageId,
        pattern: Pattern,
        message: &HandshakeMessage,
        claimed: &PublicKey,
    ) -> Result<(ChatKeys, HandshakeMessage), HandshakeError> {
        let (mut state, _) = read_first(me, me_name, request, pattern, message, claimed)?;
        let reply = write(&mut state, &payload(me, None));
        Ok((ChatKeys::from_handshake(state)?, reply))
    }
}

fn read_first(
    me: &Identity,
    me_name: &PeerName,
    request: MessageId,
    pattern: Pattern,
    message: &HandshakeMessage,
    claimed: &PublicKey,
) -> Result<(HandshakeState, Heard), HandshakeError> {
    let mut state = responder(me, (CHAT, request), pattern);
    let payload = read(&mut state, message)?;
    check(&state, &payload, claimed)?;
    match payload.to {
        Some(to) if to != *me_name => Err(HandshakeError::NotForUs(to)),
        to => Ok((state, Heard { to })),
    }
}

/// The initiator of a handshake for `purpose` (what it is for, then the request's id),
/// knowing the responder's static key if `remote` (IK).
fn initiator(
    me: &Identity,
    (purpose, request): (&[u8], MessageId),
    pattern: Pattern,
    remote: Option<&NoiseKey>,
) -> HandshakeState {
    let prologue = [purpose, request.as_bytes()].concat();
    let secret = me.noise().secret();
    let mut builder = Builder::new(pattern.params())
        .local_private_key(&secret[..])
        .and_then(|b| b.prologue(&prologue))
        .expect("a 32-byte key and a prologue");
    if let Some(remote) = remote {
        builder = builder
            .remote_public_key(remote.as_bytes())
            .expect("a 32-byte key");
    }
    builder.build_initiator().expect("a complete builder")
}

/// The responder of a handshake for `purpose`, before it reads message 1.
fn responder(
    me: &Identity,
    (purpose, request): (&[u8], MessageId),
    pattern: Pattern,
) -> HandshakeState {
    let prologue = [purpose, request.as_bytes()].concat();
    let secret = me.noise().secret();
    Builder::new(pattern.params())
        .local_private_key(&secret[..])
        .and_then(|b| b.prologue(&prologue))
        .and_then(|b| b.build_responder())
        .expect("a complete builder")
}

fn payload(me: &Identity, to: Option<PeerName>) -> Vec<u8> {
    let payload = Payload {
        key: me.public(),
        sig: SignatureText(me.noise().signature()),
        to,
    };
    serde_json::to_vec(&payload).expect("a payload serializes")
}

fn write(state: &mut HandshakeState, payload: &[u8]) -> HandshakeMessage {
    let mut buf = vec![0u8; MAX_HANDSHAKE_LEN];
    let len = state
        .write_message(payload, &mut buf)
        .expect("a payload of a few hundred bytes fits a handshake message");
    buf.truncate(len);
    HandshakeMessage(buf)
}

fn read(state: &mut HandshakeState, message: &HandshakeMessage) -> Result<Payload, HandshakeError> {
    let mut buf = vec![0u8; MAX_HANDSHAKE_LEN];
    let len = state
        .read_message(&message.0, &mut buf)
        .map_err(|_| HandshakeError::Malformed)?;
    serde_json::from_slice(&buf[..len]).map_err(|_| HandshakeError::BadPayload)
}

/// The payload's identity must be `expected`, and must have signed the static key the
/// handshake proved, which is returned with that signature.
fn check(
    state: &HandshakeState,
    payload: &Payload,
    expected: &PublicKey,
) -> Result<StaticProof, HandshakeError> {
    if payload.key != *expected {
        return Err(HandshakeError::WrongIdentity {
            named: payload.key.fingerprint(),
            expected: expected.fingerprint(),
        });
    }
    let remote = state
        .get_remote_static()
        .and_then(|s| <[u8; 32]>::try_from(s).ok())
        .ok_or(HandshakeError::Malformed)?;
    let proof = StaticProof {
        noise: NoiseKey::from_bytes(remote),
        sig: payload.sig.clone(),
    };
    match proof.static_of(expected) {
        Some(_) => Ok(proof),
        None => Err(HandshakeError::UnsignedStatic),
    }
}

pub mod registry;

#[cfg(test)]
mod tests;
