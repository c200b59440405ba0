//! Signed envelopes: `SignedEnvelope::decode` then `.verify()` on any frame body, for
//! requests and replies.
//!
//! Checks: no panic; nothing the fuzzer makes up verifies (it has no key); a decoded frame
//! holds exactly the envelope its JSON decodes to; and for every envelope that decodes, the
//! same envelope signed with a key of ours (named in `from.key`) decodes to itself and
//! verifies, while the same frame with any one byte changed (chosen by the input) does not.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use p2p_shared::identity::Identity;
use p2p_shared::wire::SignedEnvelope;
use p2p_shared::{Envelope, PeerRequest, RegistryRequest, ReplyBody};
use serde::de::DeserializeOwned;
use serde::Serialize;

static IDENTITY: OnceLock<Identity> = OnceLock::new();

fn check<B: Serialize + DeserializeOwned + PartialEq + Clone + std::fmt::Debug>(data: &[u8]) {
    let Ok(signed) = SignedEnvelope::<B>::decode(data) else {
        return;
    };
    assert_eq!(data[0], b'S');
    let plain = Envelope::<B>::decode(&data[65..]).expect("decoded as signed, not as plain");
    assert_eq!(plain, signed.envelope);
    assert!(!signed.verify(), "a made-up frame verified: {data:?}");

    // Sign what decoded with our key and read it back.
    let identity = IDENTITY.get_or_init(Identity::generate);
    let mut envelope = signed.envelope.clone();
    envelope.from.key = identity.public();
    let frame = envelope.sign(identity);
    let back = SignedEnvelope::<B>::decode(&frame).expect("our own frame decodes");
    assert!(back.verify(), "our own frame does not verify");
    assert_eq!(back.envelope, envelope);

    // One changed byte, where and how the input says.
    let seed = data
        .iter()
        .fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(b as usize));
    let mut bad = frame.clone();
    let i = seed % bad.len();
    bad[i] ^= (seed >> 8) as u8 | 1;
    if let Ok(tampered) = SignedEnvelope::<B>::decode(&bad) {
        assert!(
            !tampered.verify(),
            "byte {i} changed and the frame still verifies"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check::<RegistryRequest>(data);
    check::<PeerRequest>(data);
    check::<ReplyBody>(data);
});
