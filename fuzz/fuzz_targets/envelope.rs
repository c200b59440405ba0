//! Message parsing: `Envelope::decode_request` for each kind of request (registry, peer,
//! sealed) and `Envelope::<ReplyBody>::decode` on any frame body.
//!
//! Checks: no panic; whatever decodes has the current version, validated names and text that fits
//! the protocol's types; and it survives the trip back: encoding it and decoding that gives the
//! same envelope (what one program sends, the other reads unchanged).
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2p_shared::wire::DecodeError;
use p2p_shared::{
    Envelope, PeerRequest, RegistryRequest, ReplyBody, SealedRequest, PROTOCOL_VERSION,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn check<B: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    data: &[u8],
    decode: fn(&[u8]) -> Result<Envelope<B>, DecodeError>,
) {
    match decode(data) {
        Ok(env) => {
            assert_eq!(env.v, PROTOCOL_VERSION);
            let name = env.from.name.as_str();
            assert!(name.parse::<p2p_shared::PeerName>().is_ok(), "{name:?}");
            let again = Envelope::<B>::decode(&env.encode())
                .unwrap_or_else(|e| panic!("{env:?} encodes to something it cannot read: {e}"));
            assert_eq!(again, env, "changed on the way back");
        }
        Err(e) => {
            // Every refusal maps to an error code a receiver can send.
            let _ = e.code();
            if let DecodeError::Version(v) = e {
                assert_ne!(v, PROTOCOL_VERSION);
            }
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check::<RegistryRequest>(data, Envelope::decode_request);
    check::<PeerRequest>(data, Envelope::decode_request);
    check::<SealedRequest>(data, Envelope::decode_request);
    check::<ReplyBody>(data, Envelope::decode);
});
