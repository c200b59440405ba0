//! A peer played by the test itself: it listens, runs a whole chat handshake with a real
//! peer, and sends sealed frames of its choice.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use p2p_shared::identity::PublicKey;
use p2p_shared::seal::ChatKeys;
use serde_json::{json, Value};

use crate::proc::EXPECT_TIMEOUT;
use crate::programs::Peer;
use crate::wire::*;

/// How long the accepting thread of an [`Acceptor`] waits in one `accept` before it looks
/// whether it should stop.
const ACCEPT_POLL: Duration = Duration::from_millis(100);

/// A listening socket whose connections a background thread accepts and hands over, so that
/// waiting for one has a deadline. The thread ends soon after the socket's owner is dropped:
/// each `accept` waits at most [`ACCEPT_POLL`] (a receive timeout on the listening socket),
/// so no wake-up connection is needed, which could itself fail on a loaded machine.
pub(crate) struct Acceptor {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    /// Listens on a fresh loopback port; each accepted connection goes to `on_accept`, which
    /// returns false to stop accepting.
    pub(crate) fn start(mut on_accept: impl FnMut(TcpStream) -> bool + Send + 'static) -> Acceptor {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
        let addr = listener.local_addr().expect("local_addr");
        socket2::SockRef::from(&listener)
            .set_read_timeout(Some(ACCEPT_POLL))
            .expect("a receive timeout on the listening socket");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        // Accepted sockets inherit the listener's timeout: their users set
                        // their own.
                        let _ = stream.set_read_timeout(None);
                        if !on_accept(stream) {
                            break;
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    // Out of descriptors, say: do not spin while it lasts.
                    Err(_) => thread::park_timeout(ACCEPT_POLL),
                }
            }
        });
        Acceptor {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A peer played by the test: it listens on loopback, signs with a key of its own, and can run
/// the chat handshake with a real [`Peer`] to get the chat's session keys, and then seal any
/// envelope it likes. Everything on the wire is built here from docs/protocol.md, with the
/// shared crate's primitives (keys, signatures, key agreement, sealing). It answers signed
/// `ping`s and, once a chat is open, the sealed `keepalive`s a real peer checks its partners
/// with, by itself. A chat message the real peer sends it in that chat is read and never
/// acknowledged: the connection is held until the sender gives up
/// ([`RawPeer::expect_unacknowledged`]). Every other request waits for [`RawPeer::receive`].
pub struct RawPeer {
    /// The keys of the chat [`RawPeer::chat_with`] opened, shared with the accepting thread.
    chat: Arc<OnceLock<Arc<ChatKeys>>>,
    signer: Arc<Signer>,
    addr: SocketAddr,
    incoming: Receiver<Result<Incoming, String>>,
    /// Whether pings are answered `busy` instead of `ok` ([`RawPeer::answer_pings_busy`]).
    busy: Arc<AtomicBool>,
    /// One message per ping answered, `true` if it was answered `busy`.
    pings: Mutex<Receiver<bool>>,
    /// The text of each chat message read in the chat and left unacknowledged.
    held: Mutex<Receiver<String>>,
    _acceptor: Acceptor,
}

/// One incoming connection to a [`RawPeer`] and the signed request it carried.
pub struct Incoming {
    stream: TcpStream,
    /// The request envelope (its signature already checked against its `from.key`).
    pub envelope: Value,
    /// The digest of the request's frame, which a signed reply names.
    digest: p2p_shared::wire::RequestDigest,
}

impl Incoming {
    /// Reads one signed request from `stream` and checks its signature.
    fn read(mut stream: TcpStream) -> Result<Incoming, String> {
        stream
            .set_read_timeout(Some(RAW_READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut head = [0u8; 4];
        stream
            .read_exact(&mut head)
            .map_err(|e| format!("no frame header: {e}"))?;
        let len = u32::from_be_bytes(head) as usize;
        if len > 64 * 1024 {
            return Err(format!("a frame of {len} bytes"));
        }
        let mut body = vec![0u8; len];
        stream
            .read_exact(&mut body)
            .map_err(|e| format!("truncated frame: {e}"))?;
        if body.len() <= 65 || body[0] != b'S' {
            return Err("not a signed frame".into());
        }
        let signature: [u8; 64] = body[1..65].try_into().expect("64 bytes");
        let signature = p2p_shared::identity::Signature::from_bytes(&signature);
        let json = &body[65..];
        let envelope: Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
        let key: PublicKey = envelope["from"]["key"]
            .as_str()
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| format!("no from.key in {envelope}"))?;
        if !key.verify(&[SIGNING_CONTEXT, json].concat(), &signature) {
            return Err(format!("the signature is not by its from.key: {envelope}"));
        }
        let digest = p2p_shared::wire::RequestDigest::of(&body);
        Ok(Incoming {
            stream,
            envelope,
            digest,
        })
    }

    /// Answers with a reply whose `result` is `result`, signed by `signer`, and closes first
    /// as a receiver does.
    pub fn reply(mut self, signer: &Signer, result: Value) {
        let reply = signer.envelope(json!({
            "type": "reply",
            "re": self.envelope["id"],
            "re_digest": self.digest,
            "result": result,
        }));
        let _ = self.stream.write_all(&signer.frame(&reply));
        let _ = self.stream.shutdown(Shutdown::Write);
        // The sender closes after our close; wait for that, boundedly.
        let _ = read_to_close(&mut self.stream);
    }
}

impl RawPeer {
    /// A raw peer called `name`, listening on a fresh loopback port, with a new key.
    pub fn start(name: &str) -> RawPeer {
        let (tx, incoming) = mpsc::channel();
        let (ping_tx, pings) = mpsc::channel();
        let (held_tx, held) = mpsc::channel();
        let busy = Arc::new(AtomicBool::new(false));
        let answer_busy = Arc::clone(&busy);
        // The address is known only once listening; the signer (which claims it) is shared
        // with the connection threads through this slot.
        let slot: Arc<OnceLock<Arc<Signer>>> = Arc::new(OnceLock::new());
        let shared = Arc::clone(&slot);
        // The keys of the chat `chat_with` opens, to answer the peer's sealed keepalives.
        let chat: Arc<OnceLock<Arc<ChatKeys>>> = Arc::new(OnceLock::new());
        let chat_keys = Arc::clone(&chat);
        let acceptor = Acceptor::start(move |stream| {
            let (tx, slot) = (tx.clone(), Arc::clone(&shared));
            let (ping_tx, busy) = (ping_tx.clone(), answer_busy.load(Ordering::SeqCst));
            let held_tx = held_tx.clone();
            let keys = chat_keys.get().cloned();
            thread::spawn(move || {
                let mut stream = stream;
                // A sealed keepalive in our chat is answered here, as a signed ping is; a
                // chat message is read and held unanswered.
                if let (Some(keys), Some(signer)) = (&keys, slot.get()) {
                    match in_chat(&mut stream, keys, signer, busy) {
                        Some(InChat::Keepalive) => {
                            let _ = ping_tx.send(busy);
                            return;
                        }
                        Some(InChat::Held(text)) => {
                            let _ = held_tx.send(text);
                            // Until the sender gives up and closes (its exchange's deadline).
                            let _ = read_to_close(&mut stream);
                            return;
                        }
                        None => {}
                    }
                }
                let request = Incoming::read(stream);
                match (request, slot.get()) {
                    (Ok(ping), Some(signer)) if ping.envelope["body"]["type"] == "ping" => {
                        let result = match busy {
                            true => json!({ "type": "error", "code": "busy", "detail": "busy" }),
                            false => json!({ "type": "ok" }),
                        };
                        ping.reply(signer, result);
                        let _ = ping_tx.send(busy);
                    }
                    (request, _) => {
                        let _ = tx.send(request);
                    }
                }
            });
            true
        });
        let signer = Arc::new(Signer::new(name, acceptor.addr));
        let _ = slot.set(Arc::clone(&signer));
        RawPeer {
            chat,
            signer,
            addr: acceptor.addr,
            incoming,
            busy,
            pings: Mutex::new(pings),
            held: Mutex::new(held),
            _acceptor: acceptor,
        }
    }

    /// Waits (at most [`EXPECT_TIMEOUT`]) for a chat message the real peer sent in our chat,
    /// which was read whole and is left without an acknowledgement; returns its text.
    #[track_caller]
    pub fn expect_unacknowledged(&self) -> String {
        let held = self.held.lock().unwrap();
        held.recv_timeout(EXPECT_TIMEOUT)
            .unwrap_or_else(|_| panic!("{}: no chat message within the deadline", self.name()))
    }

    /// From now on, pings are answered `busy` (signed by this peer), as by a peer whose
    /// slots are taken.
    pub fn answer_pings_busy(&self) {
        self.busy.store(true, Ordering::SeqCst);
    }

    /// Waits (at most [`EXPECT_TIMEOUT`] each) until `n` more pings were answered `busy`.
    #[track_caller]
    pub fn expect_busy_pings(&self, n: usize) {
        let pings = self.pings.lock().unwrap();
        let mut seen = 0;
        while seen < n {
            match pings.recv_timeout(EXPECT_TIMEOUT) {
                Ok(true) => seen += 1,
                Ok(false) => {}
                Err(_) => panic!("{}: {seen} of {n} pings answered busy", self.name()),
            }
        }
    }

    pub fn name(&self) -> &str {
        self.signer.name()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn key(&self) -> PublicKey {
        self.signer.key()
    }

    pub fn fingerprint(&self) -> String {
        self.key().fingerprint()
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Waits (at most [`EXPECT_TIMEOUT`]) for the next request that is not a ping.
    #[track_caller]
    pub fn receive(&self) -> Incoming {
        match self.incoming.recv_timeout(EXPECT_TIMEOUT) {
            Ok(Ok(incoming)) => incoming,
            Ok(Err(why)) => panic!("{}: a bad incoming request: {why}", self.name()),
            Err(_) => panic!("{}: no request within the deadline", self.name()),
        }
    }

    /// The chat handshake with `peer`, by address: a signed `chat_request`, `peer`'s user
    /// says `yes NAME`, its signed `chat_answer` arrives here and is acknowledged, and both
    /// sides derive the session keys. Returns the open chat.
    #[track_caller]
    pub fn chat_with(&self, peer: &Peer) -> RawChat {
        let (request, initiator) = self.signer.chat_request();
        let reply = self.signer.send(peer.addr(), &request);
        assert_eq!(outcome(&reply), "pending", "{reply}");
        assert_eq!(signer_of(&reply), peer.key(), "{reply}");
        peer.expect_request(self.name(), self.addr, &self.fingerprint());
        peer.send(&format!("yes {}", self.name()));

        let answer = self.receive();
        let body = answer.envelope["body"].clone();
        let from = answer.envelope["from"].clone();
        answer.reply(&self.signer, json!({ "type": "ok" }));
        peer.expect_exact(&format!(
            "accepted chat with {} ({})",
            self.name(),
            self.addr
        ));
        assert_eq!(body["type"], "chat_answer", "{body}");
        assert_eq!(body["request"], request["id"], "{body}");
        assert_eq!(body["answer"], "accepted", "{body}");
        assert_eq!(from["key"], peer.key().to_string(), "{from}");

        let second = serde_json::from_value(body["handshake"].clone()).expect("message 2");
        let keys = Arc::new(
            initiator
                .finish(&second, &peer.key())
                .expect("the peer's message 2 finishes the handshake"),
        );
        let _ = self.chat.set(Arc::clone(&keys));
        let me = self.key();
        RawChat {
            keys,
            to: peer.addr(),
            next: 0,
            seq: 0,
            name: self.name().to_owned(),
            port: self.addr.port(),
            key: me,
        }
    }
}

/// A chat a [`RawPeer`] opened with a real peer: it seals envelopes with the session's keys.
pub struct RawChat {
    keys: Arc<ChatKeys>,
    to: SocketAddr,
    next: u64,
    /// The `seq` of our last chat message: each one gets the next.
    seq: u64,
    name: String,
    port: u16,
    key: PublicKey,
}

impl RawChat {
    /// Seals an envelope with `body` as our next message; returns its counter and the whole
    /// frame (length prefix included).
    pub fn seal(&mut self, body: Value) -> (u64, Vec<u8>) {
        let envelope = envelope(
            &self.name,
            format!("0.0.0.0:{}", self.port),
            &self.key,
            body,
        );
        self.seal_json(&serde_json::to_vec(&envelope).expect("serialize"))
    }

    /// Seals any bytes as our next message.
    pub fn seal_json(&mut self, plaintext: &[u8]) -> (u64, Vec<u8>) {
        let counter = self.next;
        self.next += 1;
        (counter, frame(&self.keys.seal(counter, plaintext)))
    }

    /// Sends a sealed frame (made by [`RawChat::seal`]) with `counter` to the peer and opens
    /// its sealed acknowledgement: the reply envelope. Panics if the answer is anything else.
    #[track_caller]
    pub fn exchange(&self, counter: u64, frame: &[u8]) -> Value {
        let raw = raw_exchange(self.to, frame, false);
        let body = frame_body(&raw).unwrap_or_else(|e| panic!("{}: {e}", self.to));
        let plaintext = self.keys.open_ack(counter, body).unwrap_or_else(|| {
            panic!(
                "the answer to sealed message {counter} is no acknowledgement: {:?}",
                decode_reply(&raw)
            )
        });
        serde_json::from_slice(&plaintext).expect("a JSON reply envelope")
    }

    /// Seals `body` and sends it: the opened acknowledgement.
    #[track_caller]
    pub fn send(&mut self, body: Value) -> Value {
        let (counter, frame) = self.seal(body);
        self.exchange(counter, &frame)
    }

    /// Sends a chat message, the next in the chat's order: the opened acknowledgement.
    #[track_caller]
    pub fn message(&mut self, text: &str) -> Value {
        self.seq += 1;
        let seq = self.seq;
        self.send(json!({ "type": "chat_message", "text": text, "seq": seq }))
    }
}

/// What a frame sealed in the raw peer's chat carried.
enum InChat {
    /// A `keepalive`, answered.
    Keepalive,
    /// A chat message with this text, read and not answered.
    Held(String),
}

/// If `stream` carries a sealed `keepalive` in the chat with `keys`, answers it (`busy` or
/// `ok`, as a peer whose slots are taken or not); if it carries a chat message, reads it and
/// answers nothing. `None` otherwise, with nothing read from a frame that is not sealed (its
/// start is peeked, not taken).
fn in_chat(stream: &mut TcpStream, keys: &ChatKeys, signer: &Signer, busy: bool) -> Option<InChat> {
    let mut head = [0u8; 5];
    stream.set_read_timeout(Some(RAW_READ_TIMEOUT)).ok()?;
    let peeked = stream.peek(&mut head).ok()?;
    if peeked < 5 || head[4] != b'E' {
        return None;
    }
    let len = u32::from_be_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    if len > 64 * 1024 {
        return None;
    }
    let mut received = vec![0u8; 4 + len];
    stream.read_exact(&mut received).ok()?;
    let (counter, plaintext) = keys.open(&received[4..])?;
    let envelope: Value = serde_json::from_slice(&plaintext).ok()?;
    if envelope["body"]["type"] == "chat_message" {
        let text = envelope["body"]["text"].as_str().unwrap_or_default();
        return Some(InChat::Held(text.to_owned()));
    }
    if envelope["body"]["type"] != "keepalive" {
        return None;
    }
    let result = match busy {
        true => json!({ "type": "error", "code": "busy", "detail": "busy" }),
        false => json!({ "type": "ok" }),
    };
    let reply = signer.envelope(json!({ "type": "reply", "re": envelope["id"], "result": result }));
    let sealed = keys.seal_ack(counter, &serde_json::to_vec(&reply).expect("serialize"));
    let _ = stream.write_all(&frame(&sealed));
    let _ = stream.shutdown(Shutdown::Write);
    let _ = read_to_close(stream);
    Some(InChat::Keepalive)
}
