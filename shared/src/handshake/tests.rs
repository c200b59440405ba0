use super::*;
use crate::wire::new_id;

fn name(s: &str) -> PeerName {
    s.parse().unwrap()
}

struct Two {
    alice: Identity,
    bob: Identity,
}

fn two() -> Two {
    Two {
        alice: Identity::generate(),
        bob: Identity::generate(),
    }
}

/// Runs a whole handshake from alice to bob; returns both sides' keys.
fn chat(t: &Two, to: Recipient<'_>) -> (ChatKeys, ChatKeys) {
    let request = new_id();
    let asked_for = match &to {
        Recipient::Pinned { name, .. } => Some(*name),
        Recipient::Unknown(name) => *name,
    };
    let (initiator, pattern, first) = Initiator::start(&t.alice, request, to);
    let heard = Responder::hear(
        &t.bob,
        &name("bob"),
        request,
        pattern,
        &first,
        &t.alice.public(),
    )
    .unwrap();
    assert_eq!(heard.to, asked_for, "bob hears whom alice asked for");
    let (bob, second) = Responder::accept(
        &t.bob,
        &name("bob"),
        request,
        pattern,
        &first,
        &t.alice.public(),
    )
    .unwrap();
    let alice = initiator.finish(&second, &t.bob.public()).unwrap();
    (alice, bob)
}

fn assert_talks(alice: &ChatKeys, bob: &ChatKeys) {
    assert_eq!(alice.id, bob.id, "one chat id on both sides");
    assert_eq!(
        bob.open(&alice.seal(0, b"hi bob")),
        Some((0, b"hi bob".to_vec()))
    );
    assert_eq!(
        alice.open(&bob.seal(0, b"hi alice")),
        Some((0, b"hi alice".to_vec()))
    );
    assert_eq!(
        alice.open_ack(0, &bob.seal_ack(0, b"ok")),
        Some(b"ok".to_vec())
    );
}

#[test]
fn first_contact_by_address_and_by_name_agree_on_keys() {
    let t = two();
    let (alice, bob) = chat(&t, Recipient::Unknown(None));
    assert_talks(&alice, &bob);
    let (alice, bob) = chat(&t, Recipient::Unknown(Some(name("bob"))));
    assert_talks(&alice, &bob);
}

#[test]
fn a_pinned_static_key_gives_ik_and_the_same_guarantees() {
    let t = two();
    let noise = t.bob.noise().public();
    let (alice, bob) = chat(
        &t,
        Recipient::Pinned {
            name: name("bob"),
            noise: &noise,
        },
    );
    assert_talks(&alice, &bob);
}

#[test]
fn ik_to_another_peers_static_key_is_not_readable() {
    let t = two();
    let carol = Identity::generate().noise().public();
    let request = new_id();
    let to = Recipient::Pinned {
        name: name("bob"),
        noise: &carol,
    };
    let (_, pattern, first) = Initiator::start(&t.alice, request, to);
    let heard = Responder::hear(
        &t.bob,
        &name("bob"),
        request,
        pattern,
        &first,
        &t.alice.public(),
    );
    assert_eq!(heard, Err(HandshakeError::Malformed));
}

#[test]
fn message_one_must_be_by_the_key_that_signed_the_request() {
    // Mallory forwards alice's message 1 in a request signed by her own key.
    let t = two();
    let mallory = Identity::generate();
    let request = new_id();
    let (_, pattern, first) = Initiator::start(&t.alice, request, Recipient::Unknown(None));
    let heard = Responder::hear(
        &t.bob,
        &name("bob"),
        request,
        pattern,
        &first,
        &mallory.public(),
    );
    assert!(
        matches!(heard, Err(HandshakeError::WrongIdentity { .. })),
        "{heard:?}"
    );
}

#[test]
fn a_request_meant_for_another_name_is_refused() {
    let t = two();
    let request = new_id();
    let to = Recipient::Unknown(Some(name("carol")));
    let (_, pattern, first) = Initiator::start(&t.alice, request, to);
    let heard = Responder::hear(
        &t.bob,
        &name("bob"),
        request,
        pattern,
        &first,
        &t.alice.public(),
    );
    assert_eq!(heard, Err(HandshakeError::NotForUs(name("carol"))));
}

#[test]
fn the_request_id_is_bound_into_the_handshake() {
    let t = two();
    let (initiator, pattern, first) =
        Initiator::start(&t.alice, new_id(), Recipient::Unknown(None));
    // Bob reads it under another request id: his message 2 does not finish alice's handshake.
    let (_, second) = Responder::accept(
        &t.bob,
        &name("bob"),
        new_id(),
        pattern,
        &first,
        &t.alice.public(),
    )
    .unwrap();
    assert!(initiator.finish(&second, &t.bob.public()).is_err());
}

#[test]
fn message_two_must_come_from_the_peer_that_said_pending() {
    let t = two();
    let mallory = Identity::generate();
    let request = new_id();
    let (initiator, pattern, first) = Initiator::start(&t.alice, request, Recipient::Unknown(None));
    let (_, second) = Responder::accept(
        &mallory,
        &name("bob"),
        request,
        pattern,
        &first,
        &t.alice.public(),
    )
    .unwrap();
    let finished = initiator.finish(&second, &t.bob.public());
    assert!(matches!(
        finished,
        Err(HandshakeError::WrongIdentity { .. })
    ));
}

#[test]
fn message_two_for_another_handshake_is_refused() {
    // Misbinding: bob's answer to mallory's request cannot finish alice's, even when mallory
    // reused alice's request id.
    let t = two();
    let mallory = Identity::generate();
    let request = new_id();
    let (alice, pattern, _) = Initiator::start(&t.alice, request, Recipient::Unknown(None));
    let (_, _, mallorys) = Initiator::start(&mallory, request, Recipient::Unknown(None));
    let (_, second) = Responder::accept(
        &t.bob,
        &name("bob"),
        request,
        pattern,
        &mallorys,
        &mallory.public(),
    )
    .unwrap();
    assert!(alice.finish(&second, &t.bob.public()).is_err());
}

#[test]
fn any_changed_byte_of_either_message_is_refused_without_panic() {
    let t = two();
    let request = new_id();
    for pattern_ik in [false, true] {
        let noise = t.bob.noise().public();
        let to = || match pattern_ik {
            true => Recipient::Pinned {
                name: name("bob"),
                noise: &noise,
            },
            false => Recipient::Unknown(None),
        };
        let (_, pattern, first) = Initiator::start(&t.alice, request, to());
        for i in 0..first.0.len() {
            // IX's message 1 is not authenticated by itself (the signed request around it
            // is): a change that bob cannot see makes the handshake fail at alice's end.
            let (initiator, _, first) = Initiator::start(&t.alice, request, to());
            let mut bad = first.clone();
            bad.0[i] ^= 1;
            let bob = (&t.bob, &name("bob"), request, pattern);
            match Responder::accept(bob.0, bob.1, bob.2, bob.3, &bad, &t.alice.public()) {
                Err(_) => {}
                Ok((_, second)) => assert!(
                    initiator.finish(&second, &t.bob.public()).is_err(),
                    "byte {i} of message 1 ({pattern:?})"
                ),
            }
        }
        // Message 2, each byte changed in turn, to the very initiator that sent the message
        // 1 it answers; unchanged, it finishes (the control).
        let answer = |first: &HandshakeMessage| {
            Responder::accept(
                &t.bob,
                &name("bob"),
                request,
                pattern,
                first,
                &t.alice.public(),
            )
            .unwrap()
            .1
        };
        let (initiator, _, first) = Initiator::start(&t.alice, request, to());
        assert!(initiator.finish(&answer(&first), &t.bob.public()).is_ok());
        let length = answer(&first).0.len();
        for i in 0..length {
            let (initiator, _, first) = Initiator::start(&t.alice, request, to());
            let mut bad = answer(&first);
            bad.0[i] ^= 1;
            assert!(
                initiator.finish(&bad, &t.bob.public()).is_err(),
                "byte {i} of message 2 ({pattern:?})"
            );
        }
    }
}

#[test]
fn handshake_messages_are_bounded_on_the_wire() {
    let long = BASE64URL_NOPAD.encode(&[0u8; MAX_HANDSHAKE_LEN + 1]);
    assert!(HandshakeMessage::try_from(long).is_err());
    let fits = BASE64URL_NOPAD.encode(&[0u8; MAX_HANDSHAKE_LEN]);
    assert!(HandshakeMessage::try_from(fits).is_ok());
    assert!(HandshakeMessage::try_from("not base64!".to_owned()).is_err());
}
