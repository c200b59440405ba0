//! What the cryptography costs, per operation, on this machine.
//!
//! Run with `cargo run --release -p p2p-shared --example crypto_cost [ITERATIONS]`. It times
//! the operations the protocol performs, through the same code the programs use:
//!
//! - per chat message: sealing a 200-byte message and opening it, its acknowledgement too;
//! - per chat (at request/accept): each side's part of the Noise handshake;
//! - per signed request or reply: one signature and one verification;
//! - per request in a registry session: its tag and check, and the reply's (a small one, and
//!   a page of 256 peers), and the session's set-up at registration.
//!
//! The figures are the mean over ITERATIONS (default 20,000) after a warm-up; docs/security.md
//! quotes them.

use std::hint::black_box;
use std::time::Instant;

use p2p_shared::handshake::{Initiator, Recipient, Responder};
use p2p_shared::identity::Identity;
use p2p_shared::seal::ChatKeys;
use p2p_shared::wire::new_id;
use p2p_shared::{Envelope, PeerInfo, RegistryRequest};

fn time(label: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let each = start.elapsed() / iterations;
    println!("{label:<58} {:>9.2} µs", each.as_secs_f64() * 1e6);
}

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    println!("mean of {iterations} iterations, release build\n");

    let (alice, bob) = ChatKeys::pair();
    let message = vec![b'x'; 200];
    let mut counter = 0u64;
    time("chat message: seal 200 bytes + open", iterations, || {
        counter += 1;
        let frame = alice.seal(counter, &message);
        black_box(bob.open(&frame));
    });
    time("acknowledgement: seal + open", iterations, || {
        counter += 1;
        let ack = bob.seal_ack(counter, b"{\"re\":null,\"result\":{\"type\":\"ok\"}}");
        black_box(alice.open_ack(counter, &ack));
    });

    // One chat's Noise handshake (IX, first contact), each side's work separately.
    let (requester, accepter) = (Identity::generate(), Identity::generate());
    let accepter_name: p2p_shared::PeerName = "bob".parse().expect("valid name");
    let request = new_id();
    let start = || Initiator::start(&requester, request, Recipient::Unknown(None));
    let (_, pattern, first) = start();
    let accept = || {
        Responder::accept(
            &accepter,
            &accepter_name,
            request,
            pattern,
            &first,
            &requester.public(),
        )
        .expect("a valid handshake")
    };
    let (_, second) = accept();
    time(
        "chat handshake, requester: message 1 + read message 2",
        iterations / 10,
        || {
            let (initiator, _, _) = start();
            black_box(initiator.finish(&second, &accepter.public()).ok());
        },
    );
    time(
        "chat handshake, accepter: check message 1 + yes (message 2)",
        iterations / 10,
        || {
            let heard = Responder::hear(
                &accepter,
                &accepter_name,
                request,
                pattern,
                &first,
                &requester.public(),
            );
            black_box(heard.ok());
            black_box(accept());
        },
    );

    let identity = Identity::generate();
    let from = PeerInfo {
        name: "alice".parse().expect("valid name"),
        addr: "127.0.0.1:40001".parse().expect("valid address"),
        key: identity.public(),
    };
    let envelope = Envelope::new(
        new_id(),
        from,
        RegistryRequest::Register {
            pattern: None,
            handshake: None,
        },
    );
    time(
        "signed request: sign (registry operation, chat request)",
        iterations / 4,
        || {
            black_box(envelope.sign(&identity));
        },
    );
    let frame = envelope.sign(&identity);
    time("signed request: verify", iterations / 4, || {
        let signed = p2p_shared::wire::SignedEnvelope::<RegistryRequest>::decode(&frame)
            .expect("a valid frame");
        black_box(signed.verify());
    });

    registry_session(iterations, &envelope);
}

/// A registry session's costs: set-up once per registration (a Noise handshake, both
/// sides, with fresh identities), then sealing and opening each frame.
fn registry_session(iterations: u32, request: &Envelope<RegistryRequest>) {
    use p2p_shared::registry_session;
    use p2p_shared::wire::frame::RegistryRequestHeader as Header;
    let agree = || registry_session::pair("alice".parse().expect("valid name"));
    time(
        "registry session set-up: handshake (IX) + identities, both sides",
        iterations / 10,
        || {
            black_box(agree());
        },
    );
    let (mut peer, mut registry) = agree();
    let json = request.encode();
    // A page of 256 peers, as the registry sends at 256 registrations: about 19 KB of JSON.
    let page = vec![b'x'; 19 * 1024];
    for (label, reply) in [
        (
            "registry session: small request + reply, seal + open",
            &json,
        ),
        (
            "registry session: small request + 19 KB page, seal + open",
            &page,
        ),
    ] {
        time(label, iterations, || {
            let (counter, frame) = peer.request(&json);
            let header = Header::parse(&frame).expect("a request");
            let (_, replier) = registry.accept(&header, &frame).expect("accepted");
            black_box(peer.reply(counter, &replier.reply(reply)));
        });
    }
}
