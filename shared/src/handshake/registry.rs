//! Registry sessions opened by a Noise handshake: the peer's signed `register` carries
//! message 1, the registry's signed `registered` carries message 2, in one round trip.
//!
//! **IK** when the peer has the registry's Noise static key (pinned from an earlier session),
//! **IX** on first contact, as for a chat (`handshake.rs`), with its own prologue so that no
//! handshake message can be moved between a chat and a registration. Each side's payload
//! carries its identity and that identity's signature over its static key; the registry's
//! must be the key the peer pins for the registry, the peer's the key that signed `register`.
//!
//! The session keeps only the two keys of the handshake's split (`SessionKeys`): a registry
//! holds one session per registration, and snow's transport state is several hundred bytes
//! where these are 64 (docs/decisions.md). `registry_session.rs` seals frames with them as
//! Noise transport messages are sealed: ChaCha20-Poly1305, the frame's counter the nonce.

use snow::HandshakeState;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{
    check, initiator, read, responder, write, HandshakeError, HandshakeMessage, Pattern, Payload,
    StaticProof,
};
use crate::identity::{Identity, NoiseKey, PublicKey};
use crate::wire::MessageId;

/// Bound into every registration handshake, before the `register` request's id.
const REGISTRY: &[u8] = b"p2p-chat/5 registry\0";

/// The two keys of a registry session: one for the peer's requests, one for the replies.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    pub request: [u8; 32],
    pub reply: [u8; 32],
}

impl SessionKeys {
    /// The split of a finished handshake: the initiator (the peer) sends with the first key.
    fn split(state: &mut HandshakeState) -> SessionKeys {
        let (request, reply) = state.dangerously_get_raw_split();
        SessionKeys { request, reply }
    }
}

/// The peer's side, between its `register` and the registry's `registered`.
pub struct RegistryInitiator {
    state: HandshakeState,
}

impl RegistryInitiator {
    /// Starts the handshake of the `register` request `register`, with IK if the registry's
    /// static key is known.
    pub fn start(
        me: &Identity,
        register: MessageId,
        registry: Option<&NoiseKey>,
    ) -> (RegistryInitiator, Pattern, HandshakeMessage) {
        let pattern = match registry {
            Some(_) => Pattern::IK,
            None => Pattern::IX,
        };
        let mut state = initiator(me, (REGISTRY, register), pattern, registry);
        let message = write(&mut state, &super::payload(me, None));
        (RegistryInitiator { state }, pattern, message)
    }

    /// Reads message 2 from the registry whose identity is `expected` (the key of its signed
    /// reply, which the peer checked against its pin): the session's keys, and the
    /// registry's static key, to pin for IK next time.
    pub fn finish(
        mut self,
        message: &HandshakeMessage,
        expected: &PublicKey,
    ) -> Result<(SessionKeys, NoiseKey), HandshakeError> {
        let payload: Payload = read(&mut self.state, message)?;
        let registry = check(&self.state, &payload, expected)?;
        Ok((SessionKeys::split(&mut self.state), registry.noise))
    }
}

/// What the registry takes from a registration's handshake.
pub struct Responded {
    pub keys: SessionKeys,
    /// Message 2, for the `registered` reply.
    pub reply: HandshakeMessage,
    /// The peer's static key and its identity's signature over it, for `lookup` answers.
    pub proof: StaticProof,
}

/// The registry's side: reads message 1 of the `register` request `register`, which came
/// signed by `claimed`, and answers it.
pub fn respond(
    me: &Identity,
    register: MessageId,
    pattern: Pattern,
    message: &HandshakeMessage,
    claimed: &PublicKey,
) -> Result<Responded, HandshakeError> {
    let mut state = responder(me, (REGISTRY, register), pattern);
    let payload: Payload = read(&mut state, message)?;
    let proof = check(&state, &payload, claimed)?;
    if payload.to.is_some() {
        return Err(HandshakeError::BadPayload);
    }
    let reply = write(&mut state, &super::payload(me, None));
    Ok(Responded {
        keys: SessionKeys::split(&mut state),
        reply,
        proof,
    })
}

/// Both ends of one registry session between fresh identities, agreed in this process: for
/// tests, fuzzing and measurements.
#[doc(hidden)]
pub fn pair() -> (SessionKeys, SessionKeys) {
    let (peer, registry) = (Identity::generate(), Identity::generate());
    let register = crate::wire::new_id();
    let (initiator, pattern, first) = RegistryInitiator::start(&peer, register, None);
    let theirs =
        respond(&registry, register, pattern, &first, &peer.public()).expect("a fresh handshake");
    let (ours, _) = initiator
        .finish(&theirs.reply, &registry.public())
        .expect("a fresh handshake");
    (ours, theirs.keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{Initiator, Recipient, Responder};
    use crate::wire::new_id;

    #[test]
    fn both_ends_split_the_same_keys_with_ix_and_ik() {
        let (peer, registry) = (Identity::generate(), Identity::generate());
        for pinned in [None, Some(registry.noise().public())] {
            let register = new_id();
            let (initiator, pattern, first) =
                RegistryInitiator::start(&peer, register, pinned.as_ref());
            let theirs = respond(&registry, register, pattern, &first, &peer.public()).unwrap();
            let (ours, static_key) = initiator.finish(&theirs.reply, &registry.public()).unwrap();
            assert_eq!(static_key, registry.noise().public());
            let keys = theirs.keys;
            assert_eq!((ours.request, ours.reply), (keys.request, keys.reply));
            assert_ne!(ours.request, ours.reply);
            // What the registry learnt of the peer is what a `lookup` hands on: the peer's
            // static key, which only the peer's identity vouches for.
            assert_eq!(theirs.proof, StaticProof::of(&peer));
            assert_eq!(
                theirs.proof.static_of(&peer.public()),
                Some(peer.noise().public())
            );
            assert_eq!(theirs.proof.static_of(&registry.public()), None);
        }
    }

    #[test]
    fn a_registration_is_by_the_key_that_signed_it_and_answered_by_the_registry_pinned() {
        let (peer, registry, mallory) = (
            Identity::generate(),
            Identity::generate(),
            Identity::generate(),
        );
        let register = new_id();
        let (initiator, pattern, first) = RegistryInitiator::start(&peer, register, None);
        let by_another = respond(&registry, register, pattern, &first, &mallory.public());
        assert!(matches!(
            by_another,
            Err(HandshakeError::WrongIdentity { .. })
        ));
        // A registry that is not the one pinned cannot finish it.
        let answered = respond(&mallory, register, pattern, &first, &peer.public()).unwrap();
        let finished = initiator.finish(&answered.reply, &registry.public());
        assert!(matches!(
            finished,
            Err(HandshakeError::WrongIdentity { .. })
        ));
    }

    #[test]
    fn a_chat_handshake_is_no_registration_and_the_reverse() {
        let (peer, registry) = (Identity::generate(), Identity::generate());
        let id = new_id();
        let (_, pattern, chat) = Initiator::start(&peer, id, Recipient::Unknown(None));
        let (initiator, _, _) = RegistryInitiator::start(&peer, id, None);
        let answered = respond(&registry, id, pattern, &chat, &peer.public()).unwrap();
        // IX's message 1 carries no key yet; the prologues differ, so message 2 fails.
        assert!(initiator
            .finish(&answered.reply, &registry.public())
            .is_err());
        let (_, pattern, registration) = RegistryInitiator::start(&peer, id, None);
        let bob = "bob".parse().unwrap();
        let accepted =
            Responder::accept(&registry, &bob, id, pattern, &registration, &peer.public());
        let (chat_initiator, _, _) = Initiator::start(&peer, id, Recipient::Unknown(None));
        if let Ok((_, second)) = accepted {
            assert!(chat_initiator.finish(&second, &registry.public()).is_err());
        }
    }
}
