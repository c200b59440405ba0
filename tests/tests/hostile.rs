//! Hostile and malformed input on the wire, sent raw to the registry and to a peer.
//!
//! Each bad request must get an error reply with the code docs/protocol.md gives ("every
//! request gets a reply"). Where the sender stops mid-frame or leaves unread bytes behind, a
//! closed connection is accepted instead (a close with unread input may reset the connection
//! and lose the reply). Afterwards the program is still running, answers a valid `ping` with
//! `ok`, and still does its normal job.

use std::net::TcpStream;

use p2p_e2e::{
    assert_ping_ok, assert_refused, encode, envelope, envelope_from, frame, json, raw_exchange,
    request, Peer, Refusal, Server, Value,
};

/// Bytes to send, whether to shut the write half down after them, the error code expected
/// (`None`: any code), and whether closing without a reply is acceptable.
struct Case {
    bytes: Vec<u8>,
    shutdown: bool,
    code: Option<&'static str>,
    may_close: bool,
}

/// A request the receiver reads whole and must answer with an error.
fn answered(bytes: Vec<u8>, code: Option<&'static str>) -> Case {
    Case {
        bytes,
        shutdown: false,
        code,
        may_close: false,
    }
}

/// Bytes after which the sender stops writing; an error reply or a close are both fine.
fn error_or_close(bytes: Vec<u8>, code: &'static str) -> Case {
    Case {
        bytes,
        shutdown: true,
        code: Some(code),
        may_close: true,
    }
}

/// A whole valid request envelope with one field changed.
fn ping_with(field: &str, value: Value) -> Vec<u8> {
    let mut envelope = envelope(json!({ "type": "ping" }));
    envelope[field] = value;
    encode(&envelope)
}

/// The frame of `envelope` with its body padded with spaces (still valid JSON) to `len` bytes.
fn padded(envelope: &Value, len: usize) -> Vec<u8> {
    let mut body = serde_json::to_vec(envelope).unwrap();
    body.resize(len, b' ');
    frame(&body)
}

/// A valid `ping` whose frame body is `len` bytes long.
fn ping_padded_to(len: usize) -> Vec<u8> {
    padded(&envelope(json!({ "type": "ping" })), len)
}

/// Sends the case's bytes to `addr` and checks what came back.
fn send_case(addr: std::net::SocketAddr, case: &Case, who: &str) {
    let reply = raw_exchange(addr, &case.bytes, case.shutdown);
    let refusal = assert_refused(&reply, case.code, who);
    eprintln!("{who}: {refusal:?}");
    if !case.may_close {
        assert_ne!(
            refusal,
            Refusal::Closed,
            "{who} closed the connection without the error reply ({:?})",
            case.code
        );
    }
}

fn against_server(case: Case) {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    alice.register();

    send_case(server.addr(), &case, "registry");
    // The registry logs each refused connection (README).
    server.expect_prefix("refused 127.0.0.1:");

    assert!(server.is_running(), "the registry must still run");
    assert_ping_ok(server.addr());
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);
    let bob = Peer::start("bob", server.addr());
    bob.register();
    assert_eq!(alice.listpeer(), vec![alice.peer_line(), bob.peer_line()]);
}

fn against_peer(case: Case) {
    let bob = Peer::start_offline("bob");

    send_case(bob.addr(), &case, "peer");

    assert!(bob.is_running(), "the peer must still run");
    assert_ping_ok(bob.addr());
    assert_eq!(bob.connected(), Vec::<String>::new());
    let alice = Peer::start_offline("alice");
    alice.chat_with(&bob);
    alice.say(&bob, "all good");
}

/// One module per case, with a test against the registry and one against a peer.
macro_rules! hostile {
    ($($name:ident: $case:expr;)*) => {
        $(
            mod $name {
                use super::*;

                #[test]
                fn server() {
                    against_server($case)
                }

                #[test]
                fn peer() {
                    against_peer($case)
                }
            }
        )*
    };
}

hostile! {
    malformed_json: answered(frame(br#"{"v":1,"id":"#), Some("bad_message"));
    truncated_frame: {
        // The length says 100; 10 bytes come, then the sender stops writing.
        let mut bytes = 100u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(br#"{"v":1,"id"#);
        error_or_close(bytes, "bad_frame")
    };
    // Only a length, nothing after it: the receiver must refuse before reading on.
    oversized_length: answered(0x7fff_ffffu32.to_be_bytes().to_vec(), Some("bad_frame"));
    one_byte_over_the_limit: answered(65_537u32.to_be_bytes().to_vec(), Some("bad_frame"));
    // A valid ping padded to one byte over the limit: refused, never answered `ok`.
    one_byte_over_the_limit_with_a_body: error_or_close(ping_padded_to(65_537), "bad_frame");
    empty_frame: answered(0u32.to_be_bytes().to_vec(), Some("bad_frame"));
    // "GET " read as a length is far too large; the rest stays unread.
    http_request: error_or_close(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
        "bad_frame"
    );
    binary_garbage: answered(
        frame(&[0xff, 0xfe, 0x00, 0x01, 0x80, 0xc3, 0x28, 0x9f, 0x00, 0x7b, 0xa0, 0xa1]),
        Some("bad_message")
    );
    wrong_version: answered(ping_with("v", json!(2)), Some("unsupported_version"));
    json_that_is_not_an_envelope: answered(frame(br#"{"hello":"world"}"#), Some("bad_message"));
    json_array: answered(frame(b"[1,2,3]"), Some("bad_message"));
    envelope_without_body: answered(ping_with("body", Value::Null), Some("bad_message"));
    envelope_with_a_bad_id: answered(ping_with("id", json!(42)), Some("bad_message"));
    invalid_sender_name: answered(
        encode(&envelope_from("bad name!", "127.0.0.1:1", json!({ "type": "ping" }))),
        Some("bad_message")
    );
    sender_address_on_another_ip: answered(
        encode(&envelope_from("tester", "127.0.0.2:1", json!({ "type": "ping" }))),
        Some("address_mismatch")
    );
    unknown_request_type: answered(encode(&envelope(json!({ "type": "teleport" }))), None);
}

#[test]
fn a_silent_connection_does_not_block_the_registry() {
    let server = Server::start();
    let _silent = TcpStream::connect(server.addr()).unwrap();
    assert_ping_ok(server.addr());
    let alice = Peer::start("alice", server.addr());
    alice.register();
}

#[test]
fn a_silent_connection_does_not_block_a_peer() {
    let bob = Peer::start_offline("bob");
    let _silent = TcpStream::connect(bob.addr()).unwrap();
    assert_ping_ok(bob.addr());
    let alice = Peer::start_offline("alice");
    alice.chat_with(&bob);
}

#[test]
fn the_registry_refuses_chat_requests() {
    let server = Server::start();
    let reply = request(server.addr(), &envelope(json!({ "type": "chat_request" })));
    assert_eq!(reply["body"]["result"]["type"], "error", "{reply}");
    assert_eq!(
        reply["body"]["result"]["code"], "unsupported_request",
        "{reply}"
    );
}

#[test]
fn a_stranger_cannot_send_messages_or_disconnect() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);

    for body in [
        json!({ "type": "chat_message", "text": "I am not alice" }),
        json!({ "type": "disconnect" }),
    ] {
        let reply = request(bob.addr(), &envelope_from("mallory", "127.0.0.1:1", body));
        assert_eq!(reply["body"]["result"]["code"], "not_connected", "{reply}");
    }
    let unread = bob.unread_lines();
    assert!(
        !unread.iter().any(|l| l.contains("mallory")),
        "nothing from mallory is shown: {unread:?}"
    );
    assert_eq!(bob.connected(), vec![alice.connected_line()]);
    alice.say(&bob, "still connected");
}

#[test]
fn a_forged_answer_opens_no_chat() {
    let alice = Peer::start_offline("alice");
    let answer = json!({
        "type": "chat_answer",
        "request": "0b8e6a0e-7b0c-4a73-9c55-2b1f6f1a9a11",
        "answer": "accepted",
    });
    let reply = request(
        alice.addr(),
        &envelope_from("mallory", "127.0.0.1:1", answer),
    );
    assert_eq!(
        reply["body"]["result"]["code"], "unknown_request",
        "{reply}"
    );
    assert_eq!(alice.connected(), Vec::<String>::new());
}

#[test]
fn an_empty_chat_message_is_an_invalid_request() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    let empty = envelope_from(
        "alice",
        &alice.addr().to_string(),
        json!({ "type": "chat_message", "text": "" }),
    );
    let reply = request(bob.addr(), &empty);
    assert_eq!(
        reply["body"]["result"]["code"], "invalid_request",
        "{reply}"
    );
    alice.say(&bob, "a real one");
}

fn assert_largest_frame_accepted(addr: std::net::SocketAddr) {
    let ping = envelope(json!({ "type": "ping" }));
    let reply = raw_exchange(addr, &padded(&ping, 65_536), false);
    let reply = p2p_e2e::decode_frame(&reply).expect("a reply frame");
    assert_eq!(reply["body"]["re"], ping["id"], "{reply}");
    assert_eq!(reply["body"]["result"]["type"], "ok", "{reply}");
}

#[test]
fn a_frame_of_exactly_64_kib_is_accepted_by_the_registry() {
    let server = Server::start();
    assert_largest_frame_accepted(server.addr());
}

#[test]
fn a_frame_of_exactly_64_kib_is_accepted_by_a_peer() {
    let bob = Peer::start_offline("bob");
    assert_largest_frame_accepted(bob.addr());
}

#[test]
fn a_flood_of_chat_requests_is_bounded() {
    let bob = Peer::start_offline("bob");
    let mut codes = Vec::new();
    for i in 0..40 {
        let flood = envelope_from(
            &format!("r{i:02}"),
            "127.0.0.1:1",
            json!({ "type": "chat_request" }),
        );
        let reply = request(bob.addr(), &flood);
        let result = &reply["body"]["result"];
        codes.push(match result["type"].as_str() {
            Some("error") => result["code"].as_str().unwrap_or("?").to_owned(),
            other => other.unwrap_or("?").to_owned(),
        });
    }
    // At most 32 pending (docs/protocol.md); the rest are refused, not queued.
    let mut expected = vec!["pending".to_owned(); 32];
    expected.extend(vec!["too_many_requests".to_owned(); 8]);
    assert_eq!(codes, expected);

    // bob was asked 32 times, and still answers.
    for i in 0..32 {
        bob.expect_prefix(&format!("chat request from r{i:02} (127.0.0.1:1)"));
    }
    assert_eq!(bob.connected(), Vec::<String>::new());
}
