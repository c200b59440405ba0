//! Message parsing: `Envelope::decode_request` for each kind of request (registry, peer,
//! sealed) and `Envelope::<ReplyBody>::decode` on any frame body.
//!
//! Checks: no panic; whatever decodes has the current version, validated names and text that fits
//! the protocol's types, and survives the trip back: encoding it and decoding that gives the same
//! envelope (what one program sends, the other reads unchanged); and a request refused as another
//! receiver's (`unsupported_request`) is a complete envelope of the current version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2p_shared::wire::DecodeError;
use p2p_shared::{
    Envelope, PeerRequest, RegistryRequest, ReplyBody, SealedRequest, PROTOCOL_VERSION,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Any request body with a `type`. (Not `serde_json::Value`: serde_json skips the fields nobody
/// reads without checking that their strings are UTF-8, and so do the request decoders.)
#[derive(serde::Deserialize)]
struct AnyRequest {
    #[serde(rename = "type")]
    _kind: String,
}

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
            match &e {
                DecodeError::Version(v) => assert_ne!(*v, PROTOCOL_VERSION),
                DecodeError::Elsewhere(_) => assert!(
                    Envelope::<AnyRequest>::decode(data).is_ok(),
                    "refused as another receiver's, but not a complete envelope"
                ),
                _ => {}
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
