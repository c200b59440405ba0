//! Registry session frames: `Header::parse` and `RegistrySession::accept` on any bytes, the
//! peer's `reply` on any bytes, and round trips.
//!
//! One registry session (peer `alice`) is agreed once, as a peer and its registry do, and both
//! sides carry on from input to input. Checks: no panic on any input; nothing the fuzzer makes up
//! is accepted or taken for a reply (it has no key), dressed up with alice's name or not; a request
//! built from the input is accepted once, with exactly its JSON, and never again; with any one byte
//! changed or cut short it is refused and moves nothing; its reply is taken only for its own
//! counter.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use p2p_shared::registry_session::{self, PeerSession, RegistrySession};
use p2p_shared::wire::frame::RegistryRequestHeader as Header;

/// One session, agreed once. Both sides keep their state from input to input: the peer's
/// counter grows with each request, and the registry must keep up with it.
static SESSION: Mutex<Option<(PeerSession, RegistrySession)>> = Mutex::new(None);

fn agree() -> (PeerSession, RegistrySession) {
    registry_session::pair("alice".parse().unwrap())
}

fn accepts(registry: &mut RegistrySession, frame: &[u8]) -> Option<Vec<u8>> {
    let header = Header::parse(frame)?;
    Some(registry.accept(&header, frame)?.0)
}

fuzz_target!(|data: &[u8]| {
    let mut session = SESSION.lock().unwrap_or_else(|p| p.into_inner());
    let (peer, registry) = session.get_or_insert_with(agree);

    // Made-up frames, as they come and dressed as alice's requests and replies.
    let mut dressed = b"R\x05alice".to_vec();
    dressed.extend_from_slice(data);
    let mut reply = b"r".to_vec();
    reply.extend_from_slice(data);
    for frame in [data, &dressed[..], &reply[..]] {
        assert_eq!(accepts(registry, frame), None, "a made-up request");
        for counter in [0, 1, u64::MAX] {
            assert_eq!(peer.reply(counter, frame), None, "a made-up reply");
        }
    }

    // A real request with the input as its JSON: accepted once, exactly.
    let (counter, frame) = peer.request(data);
    for at in [0, frame.len() / 2, frame.len() - 1] {
        let mut altered = frame.clone();
        altered[at] ^= 0x01;
        assert_eq!(accepts(registry, &altered), None, "byte {at} changed");
    }
    assert_eq!(accepts(registry, &frame[..frame.len() - 1]), None);
    let header = Header::parse(&frame).expect("our own request parses");
    assert_eq!(header.counter, counter);
    let (json, replier) = registry.accept(&header, &frame).expect("accepted");
    assert_eq!(json, data, "exactly its JSON");
    assert_eq!(accepts(registry, &frame), None, "accepted twice");

    // Its reply, with the input as JSON, counts for this request only.
    let answer = replier.reply(data);
    assert_eq!(peer.reply(counter, &answer).as_deref(), Some(data));
    assert_eq!(peer.reply(counter + 1, &answer), None);
});
