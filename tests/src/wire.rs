//! The wire protocol spoken directly, for the tests that send hostile bytes: frames, signed
//! envelopes made with a key of the test's own (or forged in someone else's name), and the
//! signed replies read back and checked.

use std::fmt::Display;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use p2p_shared::handshake::{Initiator, Recipient};
use p2p_shared::identity::{Identity, PublicKey};
use p2p_shared::PROTOCOL_VERSION;
use serde_json::{json, Value};

/// How long [`raw_exchange`] waits for the other side to close. The receiving side gives up on
/// reading a request within 2 s of the accept for its header and 5 s more for its body
/// (docs/protocol.md), so this leaves it room to do so.
pub const RAW_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// What an Ed25519 signature on an envelope covers besides the JSON (docs/protocol.md).
pub const SIGNING_CONTEXT: &[u8] = b"p2p-chat/2 signed envelope\0";

/// A loopback address nobody listens on (a port the kernel just handed out and took back).
pub fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
    listener.local_addr().expect("local_addr")
}

/// Connects to `addr`, writes `bytes`, shuts the write half down if `shutdown_write`, and
/// returns everything that arrived until the other side closed (a reset also counts as the
/// end) or [`RAW_READ_TIMEOUT`] passed.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8], shutdown_write: bool) -> Vec<u8> {
    raw_exchange_from(None, addr, bytes, shutdown_write)
}

/// The same, from the loopback address `from` (an attacker on 127.1.x.y, say) if given.
pub fn raw_exchange_from(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    bytes: &[u8],
    shutdown_write: bool,
) -> Vec<u8> {
    let mut stream = connect_from(from, addr);
    stream
        .set_read_timeout(Some(RAW_READ_TIMEOUT))
        .expect("set_read_timeout");
    // A write error means the other side already closed; what it sent is still read below.
    if stream.write_all(bytes).is_ok() && shutdown_write {
        let _ = stream.shutdown(Shutdown::Write);
    }
    read_to_close(&mut stream)
}

/// A connection to `addr`, from the local address `from` if given.
#[track_caller]
pub fn connect_from(from: Option<std::net::IpAddr>, addr: SocketAddr) -> TcpStream {
    let connect = || match from {
        None => TcpStream::connect_timeout(&addr, Duration::from_secs(5)),
        Some(ip) => try_connect_from(ip, addr),
    };
    connect().unwrap_or_else(|e| panic!("cannot connect to {addr} from {from:?}: {e}"))
}

/// A TCP connection to `to` from the loopback address `from`, or why not.
///
/// The tests close first, so each connection leaves its port on `from` in TIME_WAIT for a
/// minute (a flood makes thousands), and a plain bind to port 0 never picks such a port: a
/// second run within the minute ran out of ports. With IP_BIND_ADDRESS_NO_PORT the port is
/// picked at connect time and need only be unique for the whole 4-tuple; each run's programs
/// listen on new ports, so the last run's TIME_WAIT ports are free again.
pub fn try_connect_from(from: std::net::IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        None,
    )?;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket, and a pointer to an int of the length given.
    let set = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(std::io::Error::last_os_error());
    }
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// Everything `stream` delivers until it closes, is reset, or its read timeout passes.
pub(crate) fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break, // reset, or nothing more within the timeout
        }
    }
    received
}

/// A frame: `body.len()` as a big-endian u32, then `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("body too long for a frame");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// The body of exactly one frame (u32 BE length, then that many bytes).
pub fn frame_body(bytes: &[u8]) -> Result<&[u8], String> {
    let Some((head, body)) = bytes.split_first_chunk::<4>() else {
        return Err(format!("{} bytes, less than a length prefix", bytes.len()));
    };
    let len = u32::from_be_bytes(*head) as usize;
    if body.len() != len {
        return Err(format!(
            "length prefix says {len} bytes but {} followed",
            body.len()
        ));
    }
    Ok(body)
}

/// A fresh message id, as JSON.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The current time as an envelope's `at`.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A version-2 envelope from `name` at `addr` with key `key`, a fresh id, stamped now.
pub fn envelope(name: &str, addr: impl Display, key: &PublicKey, body: Value) -> Value {
    json!({
        "v": PROTOCOL_VERSION,
        "id": new_id(),
        "at": now(),
        "from": { "name": name, "addr": addr.to_string(), "key": key.to_string() },
        "body": body,
    })
}

/// Message 1 of a chat handshake by a throwaway identity for a request nobody sends: for
/// requests and answers refused before their handshake counts, or meant to fail it.
pub fn stray_handshake() -> Value {
    let (_, _, message) = Initiator::start(
        &Identity::generate(),
        p2p_shared::wire::new_id(),
        Recipient::Unknown(None),
    );
    json!(message)
}

/// A signed frame body: `'S' | Ed25519 signature by identity over CONTEXT ++ json | json`.
pub fn sign_json(identity: &Identity, json: &[u8]) -> Vec<u8> {
    let signature = identity.sign(&[SIGNING_CONTEXT, json].concat());
    let mut body = vec![b'S'];
    body.extend_from_slice(&signature.to_bytes());
    body.extend_from_slice(json);
    body
}

/// Someone on the wire who is not one of the binaries: a name, an address it claims, and a
/// key of its own, with which it signs whatever envelope it is given (its own, or one in
/// somebody else's name).
pub struct Signer {
    name: String,
    addr: String,
    identity: Identity,
}

impl Signer {
    /// `name` at `addr`, with a new random key.
    pub fn new(name: &str, addr: impl Display) -> Signer {
        Signer {
            name: name.to_owned(),
            addr: addr.to_string(),
            identity: Identity::generate(),
        }
    }

    /// `tester` at `127.0.0.1:1` (nobody listens there; only the IP is checked).
    pub fn tester() -> Signer {
        Signer::new("tester", "127.0.0.1:1")
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key(&self) -> PublicKey {
        self.identity.public()
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A `chat_request` from this signer, its handshake bound to the envelope's id, and the
    /// handshake's initiator, to finish it with the answer.
    pub fn chat_request(&self) -> (Value, Initiator) {
        let mut request = self.envelope(json!({}));
        let id = request["id"]
            .as_str()
            .expect("an id")
            .parse()
            .expect("a UUID");
        let (initiator, pattern, handshake) =
            Initiator::start(&self.identity, id, Recipient::Unknown(None));
        request["body"] =
            json!({ "type": "chat_request", "pattern": pattern, "handshake": handshake });
        (request, initiator)
    }

    /// Registers this signer's name and address at `registry` with a signed `register` that
    /// opens a registry session by IX, as a peer's first registration does; returns the
    /// verified reply. The session itself is not finished: the registry now has this
    /// signer's static key and its signature over it, which is all a `lookup` needs.
    #[track_caller]
    pub fn register(&self, registry: SocketAddr) -> Value {
        let mut request = self.envelope(json!({}));
        let id = request["id"]
            .as_str()
            .expect("an id")
            .parse()
            .expect("a UUID");
        let (_, pattern, handshake) =
            p2p_shared::handshake::registry::RegistryInitiator::start(&self.identity, id, None);
        request["body"] = json!({ "type": "register", "pattern": pattern, "handshake": handshake });
        self.send(registry, &request)
    }

    /// An envelope from this signer (its name, address and key) with `body`.
    pub fn envelope(&self, body: Value) -> Value {
        envelope(&self.name, &self.addr, &self.key(), body)
    }

    /// The whole frame (length prefix included) of `envelope`, signed with this signer's key
    /// whatever the envelope's `from` says.
    pub fn frame(&self, envelope: &Value) -> Vec<u8> {
        self.frame_json(&serde_json::to_vec(envelope).expect("serialize"))
    }

    /// The same for JSON bytes given as they are (malformed ones included).
    pub fn frame_json(&self, json: &[u8]) -> Vec<u8> {
        frame(&sign_json(&self.identity, json))
    }

    /// Signs and sends `envelope` to `addr`; returns the verified reply (see [`request`]).
    #[track_caller]
    pub fn send(&self, addr: SocketAddr, envelope: &Value) -> Value {
        // From the IP this signer claims, so that a signer on 127.1.x.y is one.
        let ip = self.addr.parse::<SocketAddr>().ok().map(|a| a.ip());
        let localhost = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let from = ip.filter(|ip| ip.is_loopback() && *ip != localhost);
        let raw = raw_exchange_from(from, addr, &self.frame(envelope), false);
        checked_reply(addr, &raw, envelope)
    }

    /// Sends a request with `body` from this signer to `addr`; returns the verified reply.
    #[track_caller]
    pub fn request(&self, addr: SocketAddr, body: Value) -> Value {
        self.send(addr, &self.envelope(body))
    }
}

/// Parses one signed reply frame and checks its signature against the key it names: the
/// reply envelope, or why it is not one.
pub fn decode_reply(bytes: &[u8]) -> Result<Value, String> {
    let body = frame_body(bytes)?;
    if body.len() < 65 || body[0] != b'S' {
        return Err(format!(
            "not a signed frame (kind {:?}, {} bytes)",
            body.first().map(|&b| b as char),
            body.len()
        ));
    }
    let signature: [u8; 64] = body[1..65].try_into().expect("64 bytes");
    let signature = p2p_shared::identity::Signature::from_bytes(&signature);
    let json = &body[65..];
    let envelope: Value = serde_json::from_slice(json).map_err(|e| {
        format!(
            "body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(json)
        )
    })?;
    let key: PublicKey = envelope["from"]["key"]
        .as_str()
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| format!("no valid from.key in {envelope}"))?;
    if !key.verify(&[SIGNING_CONTEXT, json].concat(), &signature) {
        return Err(format!("the signature is not by from.key: {envelope}"));
    }
    if envelope["v"] != PROTOCOL_VERSION {
        return Err(format!(
            "reply version is not {PROTOCOL_VERSION}: {envelope}"
        ));
    }
    if envelope["body"]["type"] != "reply" {
        return Err(format!("not a reply: {envelope}"));
    }
    Ok(envelope)
}

/// The key that signed a reply envelope (already verified by [`decode_reply`]).
pub fn signer_of(reply: &Value) -> PublicKey {
    reply["from"]["key"]
        .as_str()
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("no from.key in {reply}"))
}

/// Sends the frame `bytes` carrying `envelope` to `addr` and returns the reply envelope, after
/// checking that it is one validly signed reply frame naming the request's id.
#[track_caller]
pub fn request(addr: SocketAddr, bytes: &[u8], envelope: &Value) -> Value {
    checked_reply(addr, &raw_exchange(addr, bytes, false), envelope)
}

#[track_caller]
fn checked_reply(addr: SocketAddr, raw: &[u8], envelope: &Value) -> Value {
    let reply = decode_reply(raw)
        .unwrap_or_else(|e| panic!("no valid reply from {addr} to {envelope}: {e} (raw: {raw:?})"));
    assert_eq!(
        reply["body"]["re"], envelope["id"],
        "the reply must name the request's id: {reply}"
    );
    reply
}

/// The `result` of a reply: `"ok"`, `"pending"`, ... or the error code for an error.
pub fn outcome(reply: &Value) -> String {
    let result = &reply["body"]["result"];
    match result["type"].as_str() {
        Some("error") => result["code"].as_str().unwrap_or("?").to_owned(),
        other => other.unwrap_or("?").to_owned(),
    }
}

/// Sends a `ping` (signed by a fresh key) and asserts the reply is `ok`, signed by `key`
/// when given.
#[track_caller]
pub fn assert_ping_ok(addr: SocketAddr, key: Option<&PublicKey>) {
    let reply = Signer::tester().request(addr, json!({ "type": "ping" }));
    assert_eq!(outcome(&reply), "ok", "ping to {addr} must get ok: {reply}");
    if let Some(key) = key {
        assert_eq!(signer_of(&reply), *key, "ping reply signer: {reply}");
    }
}

/// What a receiver did with a bad request: it replied with an error, or it just closed.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An error reply frame with this code, signed by this key.
    Error { code: String, signer: PublicKey },
    /// The connection closed (or was reset) with nothing sent back.
    Closed,
}

/// Interprets what came back for a bad request: nothing (closed), or exactly one validly
/// signed error reply frame whose code, when `expected_code` is given, is that one. Panics
/// otherwise.
#[track_caller]
pub fn assert_refused(reply: &[u8], expected_code: Option<&str>, what: &str) -> Refusal {
    if reply.is_empty() {
        return Refusal::Closed;
    }
    let envelope = decode_reply(reply)
        .unwrap_or_else(|e| panic!("{what}: the reply is not one valid signed reply: {e}"));
    let result = &envelope["body"]["result"];
    assert_eq!(result["type"], "error", "{what}: not an error: {envelope}");
    let code = result["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: error without a code: {envelope}"));
    if let Some(expected) = expected_code {
        assert_eq!(code, expected, "{what}: error code: {envelope}");
    }
    Refusal::Error {
        code: code.to_owned(),
        signer: signer_of(&envelope),
    }
}

/// Sends `bytes` to `addr` and asserts that the answer is an error reply with `code`, signed
/// by `signer`.
#[track_caller]
pub fn assert_refused_with(addr: SocketAddr, bytes: &[u8], code: &str, signer: &PublicKey) {
    let reply = raw_exchange(addr, bytes, false);
    let refusal = assert_refused(&reply, Some(code), &format!("{addr}"));
    assert_eq!(
        refusal,
        Refusal::Error {
            code: code.to_owned(),
            signer: *signer
        },
        "{addr} must answer {code}, signed with its own key"
    );
}
