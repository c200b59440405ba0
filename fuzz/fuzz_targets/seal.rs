//! Sealed chat frames: `ChatKeys::open` and `open_ack` on any bytes, and sealing round
//! trips.
//!
//! One chat session (alice requester, bob accepter) is agreed once, as the peers do. Checks:
//! no panic on any input; nothing the fuzzer makes up opens (it has no key); a frame sealed
//! from the input (counter and text from the input) opens on the other side to exactly that
//! counter and text, and nowhere else; with any one byte changed, or cut short, it opens
//! nowhere; an acknowledgement opens only for its own counter. Counters from 2^63 - 1 on
//! are refused (from 2^63 they are the acknowledgements' nonces, and the acknowledgement of
//! 2^63 - 1 would need the nonce Noise reserves, `seal.rs`): no frame with one opens, as a
//! message or as an acknowledgement, not even one sealed with the chat's own keys.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use p2p_shared::seal::{chat_of, ChatKeys};
use p2p_shared::wire::frame::SEALED_HEADER_LEN as HEADER_LEN;

/// The first acknowledgement nonce, and the first counter no message has (`ACK_NONCES` and
/// `COUNTERS` in `seal.rs`, private there).
const ACK_NONCES: u64 = 1 << 63;
const COUNTERS: u64 = ACK_NONCES - 1;

struct Chat {
    alice: ChatKeys,
    bob: ChatKeys,
}

static CHAT: OnceLock<Chat> = OnceLock::new();

fn chat() -> &'static Chat {
    CHAT.get_or_init(|| {
        let (alice, bob) = ChatKeys::pair();
        Chat { alice, bob }
    })
}

fuzz_target!(|data: &[u8]| {
    let Chat { alice, bob } = chat();
    let counter = u64::from_be_bytes(data.get(..8).map_or([0; 8], |b| b.try_into().unwrap()));

    // Arbitrary bytes, and arbitrary bytes dressed as this session's frames.
    let _ = chat_of(data);
    let mut dressed = data.to_vec();
    if dressed.len() >= 17 {
        dressed[1..17].copy_from_slice(&alice.id);
    }
    for frame in [data, &dressed[..]] {
        for kind in [b'E', b'A'] {
            let mut f = frame.to_vec();
            if let Some(first) = f.first_mut() {
                *first = kind;
            }
            assert_eq!(bob.open(&f), None, "a made-up frame opened");
            assert_eq!(alice.open(&f), None, "a made-up frame opened");
            assert_eq!(alice.open_ack(counter, &f), None, "a made-up ack opened");
            assert_eq!(bob.open_ack(counter, &f), None, "a made-up ack opened");
        }
    }

    // Counters a sender never reaches, 2^63 - 1 to 2^64 - 2 (2^64 - 1 is no nonce at all):
    // sealed with the chat's own keys, they open nowhere, as messages or as acknowledgements.
    let text = data.get(8..).unwrap_or(&[]);
    let high = COUNTERS + counter % (u64::MAX - COUNTERS);
    assert_eq!(
        bob.open(&alice.seal(high, text)),
        None,
        "counter {high} opened"
    );
    if high >= ACK_NONCES {
        let ack = bob.seal_ack(high, text);
        assert_eq!(alice.open_ack(high, &ack), None, "ack of {high} opened");
    }
    let counter = counter % COUNTERS;

    // Round trips with the input as text.
    let frame = alice.seal(counter, text);
    assert_eq!(frame.len(), HEADER_LEN + text.len() + 16);
    assert_eq!(chat_of(&frame), Some(alice.id));
    assert_eq!(bob.open(&frame), Some((counter, text.to_vec())));
    assert_eq!(alice.open(&frame), None, "opened by its own sender");
    assert_eq!(
        bob.open_ack(counter, &frame),
        None,
        "a message taken for an ack"
    );
    let ack = bob.seal_ack(counter, text);
    assert_eq!(alice.open_ack(counter, &ack), Some(text.to_vec()));
    assert_eq!(alice.open_ack(counter.wrapping_add(1), &ack), None);
    assert_eq!(alice.open(&ack), None, "an ack taken for a message");
    assert_eq!(bob.open(&ack), None, "an ack taken for a message");

    let i = (counter as usize) % frame.len();
    let mut bad = frame.clone();
    bad[i] ^= (counter >> 32) as u8 | 1;
    assert_eq!(bob.open(&bad), None, "byte {i} changed and it still opened");
    let cut = (counter >> 16) as usize % frame.len();
    assert_eq!(
        bob.open(&frame[..cut]),
        None,
        "cut to {cut} bytes and it still opened"
    );
});
