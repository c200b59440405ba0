//! Chat handshakes: any bytes as message 1 to `Responder::hear` and `Responder::accept`, and as
//! message 2 to `Initiator::finish`, in both patterns (IK and IX); any string to
//! `HandshakeMessage` through serde_json.
//!
//! Two fixed identities, alice (requester) and bob (responder), and one fixed request id, the
//! same in every run, so that real messages 1 kept in `seeds/handshake` stay valid: they are
//! checked once at start, with a whole handshake of each pattern made there and then.
//!
//! Checks, for message 1 (as alice's to bob, `claimed` = alice's key):
//! - `accept` gives exactly what `hear` gives (the responder reads message 1 again on `yes`,
//!   and relies on reading twice giving the same result);
//! - what is accepted names `claimed` as its identity: the same message claimed by anyone else
//!   is refused as `WrongIdentity` naming alice; an IX message 1, whose payload travels in the
//!   clear, also carries alice's key in that payload and alice's signed static key;
//! - what is accepted is meant for bob or for nobody in particular, and refused as `NotForUs`
//!   by another name if it names bob;
//! - an IK message 1 is bound to its request id: accepted for one, refused for another.
//!
//! For message 2: `finish` of a fresh initiator (alice to bob, IX and IK) never succeeds on
//! fuzzed bytes; nobody can answer a handshake without the initiator's fresh ephemeral key.
//!
//! For strings: a `HandshakeMessage` is exactly the canonical base64url (no padding) of at
//! most 1,024 bytes, and writes back as read; serde_json reads it from JSON text as it reads
//! the string.
//!
//! Inputs over 1,024 bytes go only to the string checks; over 2,048, nowhere.
#![no_main]

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use p2p_shared::handshake::{
    HandshakeError, HandshakeMessage, Initiator, Pattern, Recipient, Responder, MAX_HANDSHAKE_LEN,
};
use p2p_shared::identity::{Identity, NoiseKey};
use p2p_shared::PeerName;
use uuid::Uuid;

/// The request id of every handshake here; the seeds' envelopes use it too.
const REQUEST: Uuid = Uuid::from_u128(0x0b8e6a0e_7b0c_4a73_9c55_2b1f6f1a9a11);

/// Real messages 1 from alice to bob (made with a scratch program, docs/testing.md), which
/// must be accepted: if this fails, the protocol changed and the seeds are stale.
const SEEDS: [(&str, Pattern, &[u8]); 3] = [
    (
        "ix_by_address_message1",
        Pattern::IX,
        include_bytes!("../seeds/handshake/ix_by_address_message1"),
    ),
    (
        "ix_to_bob_message1",
        Pattern::IX,
        include_bytes!("../seeds/handshake/ix_to_bob_message1"),
    ),
    (
        "ik_to_bob_message1",
        Pattern::IK,
        include_bytes!("../seeds/handshake/ik_to_bob_message1"),
    ),
];

struct Fixed {
    alice: Identity,
    bob: Identity,
    mallory: Identity,
    bob_name: PeerName,
    carol_name: PeerName,
    bob_noise: NoiseKey,
}

static FIXED: OnceLock<Fixed> = OnceLock::new();

/// The identity whose secret is 32 times `byte`. `load_or_create` is the only public way to
/// an identity from given bytes, so it goes through a key file of our own, removed at once.
fn fixed_identity(byte: u8) -> Identity {
    let path = std::env::temp_dir().join(format!(
        "p2p-fuzz-handshake-{}-{byte:02x}.key",
        std::process::id()
    ));
    let _ = fs::remove_file(&path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .expect("a key file in the temporary folder");
    writeln!(file, "{}", format!("{byte:02x}").repeat(32)).expect("the key file is written");
    drop(file);
    let identity = Identity::load_or_create(&path).expect("our key file loads");
    fs::remove_file(&path).expect("our key file is removed");
    identity
}

fn fixed() -> &'static Fixed {
    FIXED.get_or_init(|| {
        let (alice, bob) = (fixed_identity(0xa1), fixed_identity(0xb0));
        let fixed = Fixed {
            bob_noise: bob.noise().public(),
            alice,
            bob,
            mallory: fixed_identity(0x3a),
            bob_name: "bob".parse().unwrap(),
            carol_name: "carol".parse().unwrap(),
        };
        check_real_handshakes(&fixed);
        fixed
    })
}

/// A handshake message of any bytes, through its JSON form.
fn message(bytes: &[u8]) -> HandshakeMessage {
    serde_json::from_value(serde_json::Value::String(base64url(bytes)))
        .expect("at most 1,024 bytes make a handshake message")
}

/// The bytes of a handshake message, through its JSON form.
fn bytes_of(message: &HandshakeMessage) -> Vec<u8> {
    let text = serde_json::to_value(message).unwrap();
    unbase64url(text.as_str().unwrap()).expect("a handshake message writes base64url")
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding, written here rather than taken from the code under test.
fn base64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// The bytes of `s` if it is the one canonical base64url form (no padding) of some bytes.
fn unbase64url(s: &str) -> Option<Vec<u8>> {
    let values: Vec<u32> = s
        .bytes()
        .map(|c| ALPHABET.iter().position(|&a| a == c).map(|v| v as u32))
        .collect::<Option<_>>()?;
    if values.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::new();
    for chunk in values.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &v)| n | v << (18 - 6 * i));
        let len = chunk.len() - 1;
        // Bits past the last whole byte must be zero.
        if len < 3 && n & ((1 << (24 - 8 * len)) - 1) != 0 {
            return None;
        }
        out.extend_from_slice(&n.to_be_bytes()[1..1 + len]);
    }
    Some(out)
}

/// A whole handshake of each pattern: the keys agree, so `finish` can succeed, and the
/// seeds are still real messages 1.
fn check_real_handshakes(f: &Fixed) {
    for to in [
        Recipient::Unknown(Some(f.bob_name)),
        Recipient::Pinned {
            name: f.bob_name,
            noise: &f.bob_noise,
        },
    ] {
        let (initiator, pattern, first) = Initiator::start(&f.alice, REQUEST, to);
        let (bob, second) = Responder::accept(
            &f.bob,
            &f.bob_name,
            REQUEST,
            pattern,
            &first,
            &f.alice.public(),
        )
        .unwrap_or_else(|e| panic!("{pattern:?}: a real message 1 refused: {e}"));
        let alice = initiator
            .finish(&second, &f.bob.public())
            .unwrap_or_else(|e| panic!("{pattern:?}: a real message 2 refused: {e}"));
        assert_eq!(alice.id, bob.id);
        assert_eq!(bob.open(&alice.seal(7, b"hi")), Some((7, b"hi".to_vec())));
    }
    for (name, pattern, seed) in SEEDS {
        let heard = Responder::hear(
            &f.bob,
            &f.bob_name,
            REQUEST,
            pattern,
            &message(seed),
            &f.alice.public(),
        );
        assert!(
            heard.is_ok(),
            "seeds/handshake/{name} is refused ({heard:?}): remake the seeds"
        );
    }
}

fn first_message(f: &Fixed, data: &[u8], msg: &HandshakeMessage, pattern: Pattern) {
    let alice = f.alice.public();
    let heard = Responder::hear(&f.bob, &f.bob_name, REQUEST, pattern, msg, &alice);
    let accepted = Responder::accept(&f.bob, &f.bob_name, REQUEST, pattern, msg, &alice);
    assert_eq!(
        heard.as_ref().err(),
        accepted.as_ref().err(),
        "{pattern:?}: hear and accept disagree"
    );
    let Ok(heard) = heard else { return };
    let (_, second) = accepted.unwrap();
    assert!(bytes_of(&second).len() <= MAX_HANDSHAKE_LEN);

    // It is alice's: claimed by mallory, it names alice.
    let mallory = f.mallory.public();
    assert_eq!(
        Responder::hear(&f.bob, &f.bob_name, REQUEST, pattern, msg, &mallory).err(),
        Some(HandshakeError::WrongIdentity {
            named: alice.fingerprint(),
            expected: mallory.fingerprint(),
        }),
        "{pattern:?}: accepted from alice, but not alice's"
    );
    if pattern == Pattern::IX {
        // `-> e, s`: no key yet, so static key and payload are in the clear.
        assert_eq!(&data[32..64], f.alice.noise().public().as_bytes());
        let payload: serde_json::Value =
            serde_json::from_slice(&data[64..]).expect("an accepted payload is JSON");
        assert_eq!(payload["key"], alice.to_string());
    }

    // Meant for bob or for anyone; carol takes only the latter.
    let for_carol = Responder::hear(&f.bob, &f.carol_name, REQUEST, pattern, msg, &alice);
    match heard.to {
        None => assert_eq!(for_carol, Ok(heard)),
        Some(to) => {
            assert_eq!(to, f.bob_name);
            assert_eq!(for_carol, Err(HandshakeError::NotForUs(to)));
        }
    }

    // Bound to its request (IX's message 1 is not encrypted: its prologue counts from
    // message 2 on, which the initiator checks).
    if pattern == Pattern::IK {
        let other = Uuid::from_u128(REQUEST.as_u128() ^ 1);
        assert_eq!(
            Responder::hear(&f.bob, &f.bob_name, other, pattern, msg, &alice).err(),
            Some(HandshakeError::Malformed),
            "IK: accepted for another request"
        );
    }
}

fn second_message(f: &Fixed, msg: &HandshakeMessage) {
    for to in [
        Recipient::Unknown(Some(f.bob_name)),
        Recipient::Pinned {
            name: f.bob_name,
            noise: &f.bob_noise,
        },
    ] {
        let (initiator, pattern, _) = Initiator::start(&f.alice, REQUEST, to);
        assert!(
            initiator.finish(msg, &f.bob.public()).is_err(),
            "{pattern:?}: made-up bytes finished a fresh handshake"
        );
    }
}

fn strings(data: &[u8]) {
    // The input as the string itself...
    let text = String::from_utf8_lossy(data);
    let read =
        serde_json::from_value::<HandshakeMessage>(serde_json::Value::String(text.to_string()));
    let expected = unbase64url(&text).filter(|b| b.len() <= MAX_HANDSHAKE_LEN);
    match (&read, &expected) {
        (Ok(msg), Some(bytes)) => {
            assert_eq!(&bytes_of(msg), bytes);
            assert_eq!(
                serde_json::to_value(msg).unwrap(),
                serde_json::Value::String(text.to_string()),
                "not written back as read"
            );
        }
        (Err(e), None) => assert!(!e.to_string().is_empty()),
        _ => panic!("{text:?}: read {read:?}, expected {expected:?}"),
    }
    // ...and as JSON text, which must read as the string it holds does.
    if let Ok(s) = serde_json::from_slice::<String>(data) {
        let from_json = serde_json::from_slice::<HandshakeMessage>(data);
        let from_string = serde_json::from_value::<HandshakeMessage>(serde_json::Value::String(s));
        assert_eq!(from_json.ok(), from_string.ok());
    } else {
        assert!(serde_json::from_slice::<HandshakeMessage>(data).is_err());
    }
}

fuzz_target!(
    init: {
        fixed();
    },
    |data: &[u8]| {
        if data.len() > 2 * MAX_HANDSHAKE_LEN {
            return;
        }
        strings(data);
        if data.len() > MAX_HANDSHAKE_LEN {
            return;
        }
        let f = fixed();
        let msg = message(data);
        assert_eq!(bytes_of(&msg), data);
        first_message(f, data, &msg, Pattern::IX);
        first_message(f, data, &msg, Pattern::IK);
        second_message(f, &msg);
    }
);
