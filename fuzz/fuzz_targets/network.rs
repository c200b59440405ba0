//! The messages of the network without a center (issue 14): any bytes to serde_json as a
//! `PeerRecord` and as a `Broadcast`, and as a frame body to
//! `Envelope::<PeerRequest>::decode_request` and `Envelope::<ReplyBody>::decode`, where
//! `exchange`, `broadcast` and the `records` reply carry them; then `check(now)` of every
//! record and broadcast that decodes, at times around its own.
//!
//! Two fixed identities, alice and bob (secrets 32 times `a1` and `b0`, as in the `handshake`
//! target), signed the seeds in `seeds/network`. The target checks at start that those seeds
//! still pass, so a protocol change that invalidates them stops it at once: make them again
//! then (docs/testing.md).
//!
//! Checks, besides never panicking:
//! - every record and broadcast that decodes writes back to JSON that decodes equal, and so
//!   does every `exchange`, `broadcast` and `records` envelope;
//! - `check(now)` gives exactly what a model of the rules gives (i128 arithmetic, so no
//!   saturation to get wrong): a broadcast's text over 8 KB is `TooLong` whatever the time;
//!   then too far in the future, then too old; then it passes exactly when the record or
//!   broadcast is what alice or bob signs for those fields (Ed25519 signing is deterministic
//!   and verification strict, and the fuzzer holds no other key that could sign);
//! - the same fields signed by alice pass, and with any one field changed (each in turn,
//!   the signature included) they fail as `BadSignature`;
//! - a page holds at most 64 records: no decoded `exchange` or `records` holds more, and one
//!   that decodes, filled to 65 records, no longer decodes.
#![no_main]

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use p2p_shared::broadcast::{
    Broadcast, BroadcastError, MAX_BROADCAST_AGE_SECS, MAX_BROADCAST_SKEW_SECS,
};
use p2p_shared::identity::{Identity, PublicKey};
use p2p_shared::record::{
    PeerRecord, RecordError, MAX_RECORDS, MAX_RECORD_AGE_SECS, MAX_RECORD_SKEW_SECS,
};
use p2p_shared::wire::{DecodeError, MAX_TEXT_LEN};
use p2p_shared::{Envelope, Outcome, PeerName, PeerRequest, ReplyBody};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The time the seeds were signed at (`at` in `seeds/network`), 2026-11-30.
const SEEDED_AT: i64 = 1_796_000_000;

struct Fixed {
    alice: Identity,
    bob: Identity,
    /// A name and a key to change a record's or a broadcast's into.
    mallory_name: PeerName,
    mallory_name_2: PeerName,
}

static FIXED: OnceLock<Fixed> = OnceLock::new();

/// The identity whose secret is 32 times `byte`. `load_or_create` is the only public way to
/// an identity from given bytes, so it goes through a key file of our own, removed at once.
fn fixed_identity(byte: u8) -> Identity {
    let path = std::env::temp_dir().join(format!(
        "p2p-fuzz-network-{}-{byte:02x}.key",
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
        let fixed = Fixed {
            alice: fixed_identity(0xa1),
            bob: fixed_identity(0xb0),
            mallory_name: "mallory".parse().unwrap(),
            mallory_name_2: "mallorz".parse().unwrap(),
        };
        check_seeds(&fixed);
        fixed
    })
}

/// The seeds signed by alice and bob still pass, and the pages at the limit and over it
/// still decode and fail as they did when they were made.
fn check_seeds(fixed: &Fixed) {
    let record = |bytes: &[u8]| serde_json::from_slice::<PeerRecord>(bytes).unwrap();
    let broadcast = |bytes: &[u8]| serde_json::from_slice::<Broadcast>(bytes).unwrap();
    let alice = record(include_bytes!("../seeds/network/record_alice"));
    let bob = record(include_bytes!("../seeds/network/record_bob_v6"));
    assert_eq!(alice.key, fixed.alice.public(), "seeds: alice's key");
    assert_eq!(bob.key, fixed.bob.public(), "seeds: bob's key");
    for r in [&alice, &bob] {
        assert_eq!(r.check(SEEDED_AT), Ok(()), "seeds: a stale record: {r:?}");
    }
    for b in [
        broadcast(include_bytes!("../seeds/network/broadcast_alice")),
        broadcast(include_bytes!("../seeds/network/broadcast_longest")),
    ] {
        assert_eq!(b.check(SEEDED_AT), Ok(()), "seeds: a stale broadcast");
    }
    let too_long = broadcast(include_bytes!("../seeds/network/broadcast_too_long"));
    assert_eq!(too_long.check(SEEDED_AT), Err(BroadcastError::TooLong));
    let full =
        Envelope::<PeerRequest>::decode_request(include_bytes!("../seeds/network/req_exchange_64"))
            .expect("seeds: a page of 64 records decodes");
    match full.body {
        PeerRequest::Exchange { records } => assert_eq!(records.len(), MAX_RECORDS),
        other => panic!("seeds: req_exchange_64 is {other:?}"),
    }
    let over =
        Envelope::<PeerRequest>::decode_request(include_bytes!("../seeds/network/req_exchange_65"));
    assert!(
        matches!(over, Err(DecodeError::Malformed(_))),
        "seeds: a page of 65 records"
    );
}

/// alice or bob, if `key` is theirs.
fn signer<'a>(fixed: &'a Fixed, key: &PublicKey) -> Option<&'a Identity> {
    [&fixed.alice, &fixed.bob]
        .into_iter()
        .find(|id| id.public() == *key)
}

/// `value` written as JSON reads back as itself.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let json = serde_json::to_string(value).expect("records and broadcasts serialize");
    let back: T = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{value:?} writes {json:?}, which does not read back: {e}"));
    assert_eq!(&back, value, "changed on the way back through {json:?}");
}

/// Whether a time `at` is too far in the future or too old at `now`, in the model: the
/// future first, as `check` tests it.
fn age_model(at: i64, now: i64, skew: i64, age: i64) -> Option<bool> {
    let (at, now) = (i128::from(at), i128::from(now));
    if at > now + i128::from(skew) {
        Some(true)
    } else if at < now - i128::from(age) {
        Some(false)
    } else {
        None
    }
}

/// The times a record or broadcast signed at `at` is checked at: its own, the edges of its
/// window and one past each, the seeds' time, and the ends of the clock.
fn times(at: i64, skew: i64, age: i64) -> [i64; 8] {
    [
        at,
        at.saturating_add(age),
        at.saturating_add(age).saturating_add(1),
        at.saturating_sub(skew),
        at.saturating_sub(skew).saturating_sub(1),
        SEEDED_AT,
        i64::MIN,
        i64::MAX,
    ]
}

/// `value` with its signature (the `sig` field of its JSON, 86 characters of base64url)
/// changed in one character, where and how the input says. Not the last character: only
/// two of its bits are the signature's, and base64url refuses the others set.
fn with_bad_signature<T: Serialize + DeserializeOwned>(value: &T, data: &[u8]) -> T {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut json = serde_json::to_value(value).expect("serializes");
    let mut sig = json["sig"]
        .as_str()
        .expect("a sig field")
        .as_bytes()
        .to_vec();
    let seed = data
        .iter()
        .fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(b as usize));
    let i = seed % (sig.len() - 1);
    let was = ALPHABET
        .iter()
        .position(|&c| c == sig[i])
        .expect("base64url");
    sig[i] = ALPHABET[(was + 1 + (seed >> 8) % 63) % 64];
    json["sig"] = String::from_utf8(sig).expect("ASCII").into();
    serde_json::from_value(json).expect("still 64 bytes of base64url")
}

/// Another valid name than `name`.
fn other_name(fixed: &Fixed, name: &PeerName) -> PeerName {
    match *name == fixed.mallory_name {
        true => fixed.mallory_name_2,
        false => fixed.mallory_name,
    }
}

/// Another key than `key`, among alice's and bob's.
fn other_key(fixed: &Fixed, key: &PublicKey) -> PublicKey {
    match *key == fixed.alice.public() {
        true => fixed.bob.public(),
        false => fixed.alice.public(),
    }
}

/// A record that decoded. `deep`: also sign its fields and change each (one record of a
/// page is enough: each check costs a signature or a verification).
fn check_record(fixed: &Fixed, record: &PeerRecord, data: &[u8], deep: bool) {
    round_trip(record);
    let (name, addr, key, at) = (record.name, record.addr, record.key, record.at);
    let signed =
        signer(fixed, &key).is_some_and(|id| PeerRecord::sign(id, name, addr, at) == *record);
    let model = |now| match age_model(at, now, MAX_RECORD_SKEW_SECS, MAX_RECORD_AGE_SECS) {
        Some(true) => Err(RecordError::FromTheFuture),
        Some(false) => Err(RecordError::TooOld),
        None if signed => Ok(()),
        None => Err(RecordError::BadSignature),
    };
    let nows = times(at, MAX_RECORD_SKEW_SECS, MAX_RECORD_AGE_SECS);
    let nows = if deep { &nows[..] } else { &nows[..1] };
    for &now in nows {
        assert_eq!(record.check(now), model(now), "{record:?} at {now}");
    }
    if !deep {
        return;
    }
    let good = PeerRecord::sign(&fixed.alice, name, addr, at);
    assert_eq!(good.check(at), Ok(()), "alice's own {good:?}");
    round_trip(&good);
    let mut changed = [good.clone(), good.clone(), good.clone(), good.clone()];
    changed[0].name = other_name(fixed, &name);
    changed[1].addr.set_port(addr.port() ^ 1);
    changed[2].key = other_key(fixed, &good.key);
    changed[3].at ^= 1;
    for bad in changed.iter().chain([&with_bad_signature(&good, data)]) {
        assert_ne!(bad, &good);
        assert_eq!(bad.check(bad.at), Err(RecordError::BadSignature), "{bad:?}");
    }
}

/// A broadcast that decoded; as [`check_record`], always deep.
fn check_broadcast(fixed: &Fixed, message: &Broadcast, data: &[u8]) {
    round_trip(message);
    let (id, name, key, at) = (message.id, message.name, message.key, message.at);
    let fits = message.text.len() <= MAX_TEXT_LEN;
    let signed = fits
        && signer(fixed, &key).is_some_and(|signer| {
            Broadcast::sign(signer, name, id, at, message.text.clone()) == *message
        });
    let model = |now| {
        if !fits {
            return Err(BroadcastError::TooLong);
        }
        match age_model(at, now, MAX_BROADCAST_SKEW_SECS, MAX_BROADCAST_AGE_SECS) {
            Some(true) => Err(BroadcastError::FromTheFuture),
            Some(false) => Err(BroadcastError::TooOld),
            None if signed => Ok(()),
            None => Err(BroadcastError::BadSignature),
        }
    };
    for now in times(at, MAX_BROADCAST_SKEW_SECS, MAX_BROADCAST_AGE_SECS) {
        let checked = message.check(now);
        assert!(checked.is_err() || fits, "text over 8 KB passed");
        assert_eq!(checked, model(now), "{message:?} at {now}");
    }

    // Alice's broadcast of the same fields, its text cut to fit (at a character boundary).
    let mut text = message.text.clone();
    while text.len() > MAX_TEXT_LEN {
        text.pop();
    }
    let good = Broadcast::sign(&fixed.alice, name, id, at, text.clone());
    assert_eq!(good.check(at), Ok(()), "alice's own {good:?}");
    round_trip(&good);
    let mut changed = [
        good.clone(),
        good.clone(),
        good.clone(),
        good.clone(),
        good.clone(),
    ];
    changed[0].id = uuid::Uuid::from_u128(id.as_u128() ^ 1);
    changed[1].name = other_name(fixed, &name);
    changed[2].key = other_key(fixed, &good.key);
    changed[3].at ^= 1;
    match changed[4].text.pop() {
        Some(_) => {}
        None => changed[4].text.push('x'),
    }
    for bad in changed.iter().chain([&with_bad_signature(&good, data)]) {
        assert_ne!(bad, &good);
        assert_eq!(
            bad.check(bad.at),
            Err(BroadcastError::BadSignature),
            "{bad:?}"
        );
    }
    // Alice's own text one byte over the limit is refused for its length, signed or not.
    if text.len() == MAX_TEXT_LEN {
        let mut over = text;
        over.push('x');
        let long = Broadcast::sign(&fixed.alice, name, id, at, over);
        assert_eq!(long.check(at), Err(BroadcastError::TooLong));
    }
}

/// A page of records that decoded in `env`: at most 64, each checked (the first deeply);
/// the envelope reads back as itself, and the same page filled to 65 records does not read.
fn check_page<B>(
    fixed: &Fixed,
    env: &Envelope<B>,
    records: &[PeerRecord],
    data: &[u8],
    decode: fn(&[u8]) -> Result<Envelope<B>, DecodeError>,
    with_records: impl Fn(Vec<PeerRecord>) -> B,
) where
    B: Serialize + DeserializeOwned + PartialEq + Clone + std::fmt::Debug,
{
    assert!(records.len() <= MAX_RECORDS, "a page of {}", records.len());
    let again = decode(&env.encode()).unwrap_or_else(|e| panic!("{env:?} does not read back: {e}"));
    assert_eq!(&again, env, "changed on the way back");
    for (i, record) in records.iter().enumerate() {
        check_record(fixed, record, data, i == 0);
    }
    if records.is_empty() {
        return;
    }
    let over: Vec<PeerRecord> = records
        .iter()
        .cycle()
        .take(MAX_RECORDS + 1)
        .cloned()
        .collect();
    let over = Envelope {
        body: with_records(over),
        ..env.clone()
    };
    assert!(
        matches!(decode(&over.encode()), Err(DecodeError::Malformed(_))),
        "a page of {} records was read",
        MAX_RECORDS + 1
    );
}

fuzz_target!(|data: &[u8]| {
    let fixed = fixed();
    if let Ok(record) = serde_json::from_slice::<PeerRecord>(data) {
        check_record(fixed, &record, data, true);
    }
    if let Ok(message) = serde_json::from_slice::<Broadcast>(data) {
        check_broadcast(fixed, &message, data);
    }
    if let Ok(env) = Envelope::<PeerRequest>::decode_request(data) {
        match &env.body {
            PeerRequest::Exchange { records } => {
                check_page(
                    fixed,
                    &env,
                    records,
                    data,
                    Envelope::decode_request,
                    |records| PeerRequest::Exchange { records },
                );
            }
            PeerRequest::Broadcast { message, .. } => {
                let again = Envelope::<PeerRequest>::decode_request(&env.encode())
                    .unwrap_or_else(|e| panic!("{env:?} does not read back: {e}"));
                assert_eq!(again, env, "changed on the way back");
                check_broadcast(fixed, message, data);
            }
            // The `envelope` target checks the others.
            _ => {}
        }
    }
    if let Ok(env) = Envelope::<ReplyBody>::decode(data) {
        if let Outcome::Records { records } = &env.body.result {
            let records = records.clone();
            let reply = env.body.clone();
            check_page(
                fixed,
                &env,
                &records,
                data,
                Envelope::decode,
                move |records| ReplyBody {
                    result: Outcome::Records { records },
                    ..reply.clone()
                },
            );
        }
    }
});
