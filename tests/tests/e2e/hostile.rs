//! Hostile and malformed input on the wire, sent raw to the registry and to a peer.
//!
//! Each bad request must get an error reply, signed by the receiver, with the code
//! docs/protocol.md gives ("every request gets a reply"). Where the sender stops mid-frame or
//! leaves unread bytes behind, a closed connection is accepted instead (a close with unread
//! input may reset the connection and lose the reply). Afterwards the program is still running,
//! answers a valid `ping` with `ok`, and still does its normal job.
//!
//! "Valid" here means protocol version 2: a signed envelope (`'S' | signature | JSON`) whose
//! signature is by its `from.key`, sent within the freshness window with a new id. Garbage
//! stays garbage: bytes with no kind, unknown kinds, and signed frames with bad insides.

use std::net::{SocketAddr, TcpStream};

use p2p_e2e::{
    assert_ping_ok, assert_refused, frame, json, outcome, raw_exchange, sign_json, signer_of,
    stray_handshake, Peer, PublicKey, RawPeer, Refusal, Server, Signer, Value,
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

/// A validly signed frame of `json` as it is (a fresh key signs it).
fn signed(json: &[u8]) -> Vec<u8> {
    Signer::tester().frame_json(json)
}

/// A whole valid, signed `body` request from a fresh `tester` with one envelope field changed
/// (`Value::Null` removes it), signed after the change.
fn with_field(body: Value, path: &[&str], value: Value) -> Vec<u8> {
    let tester = Signer::tester();
    let mut envelope = tester.envelope(body);
    let (last, parents) = path.split_last().expect("a field");
    let mut object = &mut envelope;
    for key in parents {
        object = &mut object[*key];
    }
    match value {
        Value::Null => {
            object.as_object_mut().unwrap().remove(*last);
        }
        value => object[*last] = value,
    }
    tester.frame(&envelope)
}

fn ping_with(path: &[&str], value: Value) -> Vec<u8> {
    with_field(json!({ "type": "ping" }), path, value)
}

/// A `register`: a request both the registry and a peer check the signature and the
/// freshness of (a peer refuses it afterwards as not its business).
fn register_with(path: &[&str], value: Value) -> Vec<u8> {
    with_field(json!({ "type": "register" }), path, value)
}

/// An RFC 3339 time `seconds` from now.
fn time_from_now(seconds: i64) -> Value {
    let at = chrono::Utc::now() + chrono::Duration::seconds(seconds);
    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// A valid signed `register` whose signature is then replaced by `signature`.
fn register_with_signature(signature: [u8; 64]) -> Vec<u8> {
    let tester = Signer::tester();
    let json = serde_json::to_vec(&tester.envelope(json!({ "type": "register" }))).unwrap();
    let mut body = sign_json(tester.identity(), &json);
    body[1..65].copy_from_slice(&signature);
    frame(&body)
}

/// A `register` signed by one key but naming another as `from.key`.
fn register_signed_by_another_key() -> Vec<u8> {
    let (named, other) = (Signer::tester(), Signer::tester());
    other.frame(&named.envelope(json!({ "type": "register" })))
}

/// A valid signed `register` whose JSON is changed after signing (still valid JSON: the
/// sender's name is another one).
fn register_changed_after_signing() -> Vec<u8> {
    let tester = Signer::new("tester", "127.0.0.1:1");
    let json = serde_json::to_vec(&tester.envelope(json!({ "type": "register" }))).unwrap();
    let mut body = sign_json(tester.identity(), &json);
    let text = String::from_utf8(body[65..].to_vec()).unwrap();
    assert!(text.contains("\"tester\""));
    body.truncate(65);
    body.extend_from_slice(text.replace("\"tester\"", "\"hacker\"").as_bytes());
    frame(&body)
}

/// The frame of a valid signed ping whose JSON is padded with spaces (still valid JSON, and
/// signed as padded) so that the frame body is `len` bytes long.
fn ping_padded_to(tester: &Signer, len: usize) -> (Value, Vec<u8>) {
    let envelope = tester.envelope(json!({ "type": "ping" }));
    let mut json = serde_json::to_vec(&envelope).unwrap();
    json.resize(len - 65, b' ');
    (envelope, tester.frame_json(&json))
}

/// `E | 16 random bytes of session id | counter 0 | 48 random bytes`.
fn sealed_in_no_session() -> Vec<u8> {
    let mut body = vec![b'E'];
    body.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    body.extend_from_slice(&0u64.to_be_bytes());
    for _ in 0..3 {
        body.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    frame(&body)
}

/// `R | alice | counter 1 | a valid envelope from alice | 16 bytes of no tag`: a request in a
/// registry session that nobody opened.
fn in_no_registry_session() -> Vec<u8> {
    let tester = Signer::tester();
    let envelope = p2p_e2e::envelope(
        "alice",
        "127.0.0.1:40001",
        &tester.key(),
        json!({ "type": "ping" }),
    );
    let mut body = b"R\x05alice".to_vec();
    body.extend_from_slice(&1u64.to_be_bytes());
    body.extend_from_slice(&serde_json::to_vec(&envelope).unwrap());
    body.extend_from_slice(&[0; 16]);
    frame(&body)
}

/// Sends the case's bytes to `addr` and checks what came back: an error signed by `key`.
fn send_case(addr: SocketAddr, key: &PublicKey, case: &Case, who: &str) {
    let reply = raw_exchange(addr, &case.bytes, case.shutdown);
    let refusal = assert_refused(&reply, case.code, who);
    eprintln!("{who}: {refusal:?}");
    match refusal {
        Refusal::Closed => assert!(
            case.may_close,
            "{who} closed the connection without the error reply ({:?})",
            case.code
        ),
        Refusal::Error { signer, .. } => {
            assert_eq!(signer, *key, "{who} signs its refusal with its own key")
        }
    }
}

fn against_server(case: Case) {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    alice.register();

    send_case(server.addr(), &server.key(), &case, "registry");
    // The registry logs each refused connection (README).
    server.expect_prefix("refused 127.0.0.1:");

    assert!(server.is_running(), "the registry must still run");
    assert_ping_ok(server.addr(), Some(&server.key()));
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);
    let bob = Peer::start("bob", server.addr());
    bob.register();
    assert_eq!(alice.listpeer(), vec![alice.peer_line(), bob.peer_line()]);
}

fn against_peer(case: Case) {
    let bob = Peer::start_offline("bob");

    send_case(bob.addr(), &bob.key(), &case, "peer");

    assert!(bob.is_running(), "the peer must still run");
    assert_ping_ok(bob.addr(), Some(&bob.key()));
    assert_eq!(
        bob.unread_lines(),
        Vec::<String>::new(),
        "bob shows nothing"
    );
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
    // Frames that are not frames.
    truncated_frame: {
        // The length says 100; 10 bytes come, then the sender stops writing.
        let mut bytes = 100u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(br#"S{"v":6,"i"#);
        error_or_close(bytes, "bad_frame")
    };
    // Only a length, nothing after it: the receiver must refuse before reading on.
    oversized_length: answered(0x7fff_ffffu32.to_be_bytes().to_vec(), Some("bad_frame"));
    one_byte_over_the_limit: answered(65_537u32.to_be_bytes().to_vec(), Some("bad_frame"));
    // A valid signed ping padded to one byte over the limit: refused, never answered `ok`.
    one_byte_over_the_limit_with_a_body: error_or_close(
        ping_padded_to(&Signer::tester(), 65_537).1,
        "bad_frame"
    );
    empty_frame: answered(0u32.to_be_bytes().to_vec(), Some("bad_frame"));
    // "GET " read as a length is far too large; the rest stays unread.
    http_request: error_or_close(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
        "bad_frame"
    );

    // Bodies of no known kind (the first byte must be S, E or R).
    version_1_json_without_a_kind_byte: answered(
        frame(br#"{"v":1,"id":"0b8e6a0e-7b0c-4a73-9c55-2b1f6f1a9a11"}"#),
        Some("bad_frame")
    );
    binary_garbage: answered(
        frame(&[0xff, 0xfe, 0x00, 0x01, 0x80, 0xc3, 0x28, 0x9f, 0x00, 0x7b, 0xa0, 0xa1]),
        Some("bad_frame")
    );
    // An acknowledgement, or a registry session's reply, is only ever a reply.
    an_acknowledgement_as_a_request: answered(frame(&[b'A'; 80]), Some("bad_frame"));
    a_registry_session_reply_as_a_request: answered(frame(&[b'r'; 80]), Some("bad_frame"));

    // Signed frames whose inside is not a valid envelope.
    signed_frame_shorter_than_a_signature: answered(frame(b"S0123456789"), Some("bad_message"));
    signed_binary_garbage: answered(
        signed(&[0xff, 0xfe, 0x00, 0x01, 0x80, 0xc3, 0x28, 0x9f, 0x00, 0x7b, 0xa0, 0xa1]),
        Some("bad_message")
    );
    malformed_json: answered(signed(br#"{"v":6,"id":"#), Some("bad_message"));
    json_that_is_not_an_envelope: answered(signed(br#"{"hello":"world"}"#), Some("bad_message"));
    json_array: answered(signed(b"[1,2,3]"), Some("bad_message"));
    version_1: answered(ping_with(&["v"], json!(1)), Some("unsupported_version"));
    version_2: answered(ping_with(&["v"], json!(2)), Some("unsupported_version"));
    version_3: answered(ping_with(&["v"], json!(3)), Some("unsupported_version"));
    version_4: answered(ping_with(&["v"], json!(4)), Some("unsupported_version"));
    version_5: answered(ping_with(&["v"], json!(5)), Some("unsupported_version"));
    version_7: answered(ping_with(&["v"], json!(7)), Some("unsupported_version"));
    envelope_without_body: answered(ping_with(&["body"], Value::Null), Some("bad_message"));
    envelope_with_a_bad_id: answered(ping_with(&["id"], json!(42)), Some("bad_message"));
    // A version-1 sender: no key.
    sender_without_a_key: answered(ping_with(&["from", "key"], Value::Null), Some("bad_message"));
    sender_key_that_is_no_key: answered(
        ping_with(&["from", "key"], json!("not a key")),
        Some("bad_message")
    );
    invalid_sender_name: answered(
        ping_with(&["from", "name"], json!("bad name!")),
        Some("bad_message")
    );
    sender_address_on_another_ip: answered(
        ping_with(&["from", "addr"], json!("127.0.0.2:1")),
        Some("address_mismatch")
    );
    unknown_request_type: answered(
        with_field(json!({ "type": "ping" }), &["body", "type"], json!("teleport")),
        Some("bad_message")
    );

    // Requests that must prove their sender and be fresh.
    zeroed_signature: answered(register_with_signature([0; 64]), Some("bad_signature"));
    signature_by_another_key: answered(register_signed_by_another_key(), Some("bad_signature"));
    changed_after_signing: answered(register_changed_after_signing(), Some("bad_signature"));
    sent_ten_minutes_ago: answered(register_with(&["at"], time_from_now(-600)), Some("stale"));
    sent_from_ten_minutes_ahead: answered(register_with(&["at"], time_from_now(600)), Some("stale"));

    // Sealed frames that open in no session here.
    sealed_frame_in_no_session: answered(sealed_in_no_session(), Some("unknown_session"));
    sealed_frame_shorter_than_its_header: answered(frame(b"E0123"), Some("unknown_session"));

    // Registry session requests in no session here: a name nobody registered, a header cut
    // short, a name that is no name.
    registry_session_request_in_no_session: answered(in_no_registry_session(), Some("unknown_session"));
    registry_session_request_shorter_than_its_header: answered(
        frame(b"R\x05ali"),
        Some("unknown_session")
    );
    registry_session_request_with_an_invalid_name: answered(
        frame(&[&b"R\x03a b\x00\x00\x00\x00\x00\x00\x00\x01{}"[..], &[0u8; 16]].concat()),
        Some("unknown_session")
    );
}

#[test]
fn a_silent_connection_does_not_block_the_registry() {
    let server = Server::start();
    let _silent = TcpStream::connect(server.addr()).unwrap();
    assert_ping_ok(server.addr(), Some(&server.key()));
    let alice = Peer::start("alice", server.addr());
    alice.register();
}

#[test]
fn a_silent_connection_does_not_block_a_peer() {
    let bob = Peer::start_offline("bob");
    let _silent = TcpStream::connect(bob.addr()).unwrap();
    assert_ping_ok(bob.addr(), Some(&bob.key()));
    let alice = Peer::start_offline("alice");
    alice.chat_with(&bob);
}

#[test]
fn the_registry_refuses_chat_requests() {
    let server = Server::start();
    let reply = Signer::tester().request(
        server.addr(),
        json!({ "type": "chat_request", "pattern": "IX", "handshake": stray_handshake() }),
    );
    assert_eq!(outcome(&reply), "unsupported_request", "{reply}");
    assert_eq!(signer_of(&reply), server.key(), "{reply}");
}

/// A registry session frame whose body is JSON in the clear, `{"body":{"type":"chat_request"}}`
/// (finding 3 of docs/testing.md's fuzzing, when session frames were only authenticated):
/// since protocol version 5 session frames are sealed, and it opens in no session.
#[test]
fn a_registry_session_frame_in_the_clear_opens_in_no_session() {
    let server = Server::start();
    let mut body = b"R\x05alice".to_vec();
    body.extend_from_slice(&1u64.to_be_bytes());
    body.extend_from_slice(br#"{"body":{"type":"chat_request"}}"#);
    body.extend_from_slice(&[0; 16]);
    let reply = raw_exchange(server.addr(), &frame(&body), false);
    assert_refused(&reply, Some("unknown_session"), "registry");
    assert_ping_ok(server.addr(), Some(&server.key()));
}

#[test]
fn a_stranger_cannot_send_messages_or_disconnect() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);

    let mallory = Signer::new("mallory", "127.0.0.1:1");
    for body in [
        json!({ "type": "chat_message", "text": "I am not alice" }),
        json!({ "type": "disconnect" }),
    ] {
        // As herself, and in alice's name with her own key: chat messages and disconnects
        // only travel sealed in a chat session, never as signed requests.
        let reply = mallory.request(bob.addr(), body.clone());
        assert_eq!(outcome(&reply), "unsupported_request", "{reply}");
        let as_alice = p2p_e2e::envelope("alice", alice.addr(), &mallory.key(), body.clone());
        let reply = mallory.send(bob.addr(), &as_alice);
        assert_eq!(outcome(&reply), "unsupported_request", "{reply}");
        // In alice's name with alice's key, which mallory cannot sign for.
        let forged = p2p_e2e::envelope("alice", alice.addr(), &alice.key(), body);
        let refusal = assert_refused(
            &raw_exchange(bob.addr(), &mallory.frame(&forged), false),
            Some("bad_signature"),
            "bob",
        );
        assert_ne!(refusal, Refusal::Closed);
    }
    let unread = bob.unread_lines();
    assert_eq!(unread, Vec::<String>::new(), "nothing is shown: {unread:?}");
    assert_eq!(bob.connected(), vec![alice.connected_line()]);
    alice.say(&bob, "still connected");
}

#[test]
fn a_forged_answer_opens_no_chat() {
    let alice = Peer::start_offline("alice");
    let mallory = Signer::new("mallory", "127.0.0.1:1");
    let reply = mallory.request(
        alice.addr(),
        json!({
            "type": "chat_answer",
            "request": "0b8e6a0e-7b0c-4a73-9c55-2b1f6f1a9a11",
            "answer": "accepted",
            "pattern": "IX", "handshake": stray_handshake(),
        }),
    );
    assert_eq!(outcome(&reply), "unknown_request", "{reply}");
    assert_eq!(alice.unread_lines(), Vec::<String>::new());
    assert_eq!(alice.connected(), Vec::<String>::new());
}

#[test]
fn an_empty_chat_message_is_an_invalid_request() {
    let raw = RawPeer::start("alice");
    let bob = Peer::start_offline("bob");
    let mut chat = raw.chat_with(&bob);

    let ack = chat.message("");
    assert_eq!(outcome(&ack), "invalid_request", "{ack}");
    assert_eq!(bob.unread_lines(), Vec::<String>::new(), "nothing shown");

    let ack = chat.message("a real one");
    assert_eq!(outcome(&ack), "ok", "{ack}");
    bob.expect_exact("alice: a real one");
}

#[test]
fn sealed_requests_a_chat_does_not_carry_are_refused_inside_the_session() {
    let raw = RawPeer::start("alice");
    let bob = Peer::start_offline("bob");
    let mut chat = raw.chat_with(&bob);

    // One byte over the longest text (8,192 bytes), which the command line never sends.
    let ack = chat.message(&"x".repeat(8 * 1024 + 1));
    assert_eq!(outcome(&ack), "invalid_request", "{ack}");
    // A registry request, a chat request and plain garbage, sealed with the right keys.
    let ack = chat.send(json!({ "type": "register" }));
    assert_eq!(outcome(&ack), "unsupported_request", "{ack}");
    let ack = chat
        .send(json!({ "type": "chat_request", "pattern": "IX", "handshake": stray_handshake() }));
    assert_eq!(outcome(&ack), "unsupported_request", "{ack}");
    let (counter, sealed) = chat.seal_json(b"\xff not JSON");
    let ack = chat.exchange(counter, &sealed);
    assert_eq!(outcome(&ack), "bad_message", "{ack}");
    assert_eq!(bob.unread_lines(), Vec::<String>::new(), "nothing shown");

    // The longest text is fine, and the chat goes on.
    let longest = "é".repeat(4096);
    assert_eq!(outcome(&chat.message(&longest)), "ok");
    bob.expect_exact(&format!("alice: {longest}"));
    assert_eq!(
        bob.connected(),
        vec![format!(
            "connected alice {} key {}",
            raw.addr(),
            raw.fingerprint()
        )]
    );
}

fn assert_largest_frame_accepted(addr: SocketAddr, key: &PublicKey) {
    let tester = Signer::tester();
    let (ping, bytes) = ping_padded_to(&tester, 65_536);
    let reply = p2p_e2e::request(addr, &bytes, &ping);
    assert_eq!(outcome(&reply), "ok", "{reply}");
    assert_eq!(signer_of(&reply), *key, "{reply}");
}

#[test]
fn a_frame_of_exactly_64_kib_is_accepted_by_the_registry() {
    let server = Server::start();
    assert_largest_frame_accepted(server.addr(), &server.key());
}

#[test]
fn a_frame_of_exactly_64_kib_is_accepted_by_a_peer() {
    let bob = Peer::start_offline("bob");
    assert_largest_frame_accepted(bob.addr(), &bob.key());
}

#[test]
fn a_flood_of_chat_requests_from_strangers_leaves_room_for_known_peers() {
    let server = Server::start();
    let bob = Peer::start("bob", server.addr());
    bob.register();
    let alice = Peer::start("alice", server.addr());
    alice.register();
    // 40 strangers, four keys on each of ten addresses 127.1.0.1 to 127.1.0.10.
    let flooders: Vec<Signer> = (0..40)
        .map(|i| Signer::new(&format!("r{i:02}"), format!("127.1.0.{}:1", 1 + i / 4)))
        .collect();
    let codes: Vec<String> = flooders
        .iter()
        .map(|r| outcome(&r.send(bob.addr(), &r.chat_request().0)))
        .collect();
    // At most 24 pending from peers nobody vouches for (docs/protocol.md); the rest are
    // refused, not queued.
    let mut expected = vec!["pending".to_owned(); 24];
    expected.extend(vec!["too_many_requests".to_owned(); 16]);
    assert_eq!(codes, expected);
    for (i, r) in flooders[..24].iter().enumerate() {
        let addr = format!("127.1.0.{}:1", 1 + i / 4).parse().unwrap();
        bob.expect_request_vouched(r.name(), addr, &r.key().fingerprint(), false);
    }
    assert_eq!(bob.unread_lines(), Vec::<String>::new());

    // alice, whom the registry vouches for, still gets through.
    alice.send("chat request bob");
    alice.expect_request_sent_vouched(&bob, true);
    bob.expect_request_vouched("alice", alice.addr(), &alice.fingerprint(), true);
    bob.send("yes alice");
    alice.expect("chat accepted by bob");
}

#[test]
fn one_address_holds_only_a_few_pending_requests() {
    let bob = Peer::start_offline("bob");
    let codes: Vec<String> = (0..6)
        .map(|i| {
            let r = Signer::new(&format!("r{i}"), "127.1.1.1:1");
            outcome(&r.send(bob.addr(), &r.chat_request().0))
        })
        .collect();
    let mut expected = vec!["pending".to_owned(); 4];
    expected.extend(vec!["too_many_requests".to_owned(); 2]);
    assert_eq!(codes, expected);
}

#[test]
fn a_request_refused_by_the_pending_bounds_costs_no_registry_lookup() {
    // The registry is played by the test, and alice trusts its key: every chat request she
    // could take is looked up there first. It answers five lookups, `unknown_peer`, and
    // notes each name asked.
    let registry = RawPeer::start("registry");
    let alice = Peer::builder("alice")
        .server(registry.addr())
        .server_key(&registry.key())
        .start();
    let (asked_tx, asked) = std::sync::mpsc::channel();
    let answering = std::thread::spawn(move || {
        for _ in 0..5 {
            let lookup = registry.receive();
            let body = &lookup.envelope["body"];
            assert_eq!(body["type"], "lookup", "{body}");
            let _ = asked_tx.send(body["name"].as_str().unwrap_or("?").to_owned());
            let unknown = json!({ "type": "error", "code": "unknown_peer", "detail": "no" });
            lookup.reply(registry.signer(), unknown);
        }
    });
    // Four requests from one address fill its share; the fifth is refused, and then one from
    // another address is taken.
    let mut codes: Vec<String> = (0..5)
        .map(|i| {
            let r = Signer::new(&format!("r{i}"), "127.1.2.1:1");
            outcome(&r.send(alice.addr(), &r.chat_request().0))
        })
        .collect();
    let other = Signer::new("other", "127.1.2.2:1");
    codes.push(outcome(&other.send(alice.addr(), &other.chat_request().0)));
    let mut expected = vec!["pending"; 4];
    expected.extend(["too_many_requests", "pending"]);
    assert_eq!(codes, expected);
    // The registry was asked about the five requests alice could take, in order: never
    // about the one refused by the bounds.
    let names: Vec<String> = (0..5)
        .map(|_| {
            asked
                .recv_timeout(p2p_e2e::EXPECT_TIMEOUT)
                .expect("a lookup")
        })
        .collect();
    assert_eq!(names, ["r0", "r1", "r2", "r3", "other"]);
    answering.join().expect("the registry answered");
}
