//! A recording TCP proxy: it sits between two programs on loopback and records every byte,
//! and can hold back, intercept or answer frames itself.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::proc::EXPECT_TIMEOUT;
use crate::raw_peer::Acceptor;
use crate::wire::*;

/// The most connections a [`Proxy`] takes; it stops accepting after that.
pub const PROXY_MAX_CONNECTIONS: usize = 256;

/// What one connection through a [`Proxy`] carried.
#[derive(Clone, Debug, Default)]
pub struct Capture {
    /// The bytes the connecting side sent (towards the target): one whole frame, length
    /// prefix included, and anything after it.
    pub sent: Vec<u8>,
    /// The bytes that came back (from the target).
    pub received: Vec<u8>,
    /// False when the proxy intercepted the frame: it never reached the target.
    pub forwarded: bool,
}

impl Capture {
    /// The kind byte of the frame sent (`b'S'`, `b'E'`, ...), if a frame was sent.
    pub fn kind(&self) -> Option<u8> {
        self.sent.get(4).copied()
    }

    /// For a signed frame, its envelope JSON (unchecked).
    pub fn signed_envelope(&self) -> Option<Value> {
        match self.kind() {
            Some(b'S') => serde_json::from_slice(self.sent.get(4 + 65..)?).ok(),
            _ => None,
        }
    }

    /// For a signed frame, its `body.type`.
    pub fn request_type(&self) -> Option<String> {
        Some(self.signed_envelope()?["body"]["type"].as_str()?.to_owned())
    }
}

/// What the proxy answers, in the target's place, to a sealed chat frame it keeps: the bytes
/// to send back, made from the frame.
type Answer = Box<dyn FnOnce(&[u8]) -> Vec<u8> + Send>;

/// Which sealed chat frame the proxy answers: the next one for which this is true.
type Which = Box<dyn Fn(&[u8]) -> bool + Send>;

struct ProxyState {
    target: SocketAddr,
    captures: Mutex<Vec<Capture>>,
    /// Notified on every change to `captures` and to `holding`.
    changed: Condvar,
    intercepting: AtomicBool,
    holding: AtomicBool,
    /// The answer to the next sealed chat frame it picks, if the proxy is to answer it
    /// itself.
    answering: Mutex<Option<(Which, Answer)>>,
}

impl ProxyState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Capture>> {
        self.captures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, connection: usize, change: impl FnOnce(&mut Capture)) {
        change(&mut self.lock()[connection]);
        self.changed.notify_all();
    }

    /// Waits while signed frames are held, at most [`RAW_READ_TIMEOUT`].
    fn wait_while_holding(&self) {
        let deadline = Instant::now() + RAW_READ_TIMEOUT;
        let mut captures = self.lock();
        while self.holding.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            captures = self
                .changed
                .wait_timeout(captures, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

/// A TCP proxy on loopback in front of `target`: every connection to it is forwarded to
/// `target`, and every byte in both directions is recorded before it is passed on (so
/// whatever an end has received is already in the capture). While it intercepts
/// ([`Proxy::intercept_sealed`]), a connection whose frame is a sealed chat frame is kept and
/// closed instead of forwarded, as by an attacker who holds a message back; the next sealed
/// chat frame after [`Proxy::answer_next_sealed`] is kept and answered by the proxy, as by an
/// attacker who hands the sender a reply of its choosing; while it holds
/// ([`Proxy::hold_signed`]), a connection whose frame is a signed request waits, unanswered,
/// until the hold ends, as by an attacker who delays a message.
///
/// Threads: one accepting (ended on drop), one or two per connection, each ended by the
/// connection's close or by [`RAW_READ_TIMEOUT`] of silence; at most
/// [`PROXY_MAX_CONNECTIONS`] connections.
pub struct Proxy {
    state: Arc<ProxyState>,
    acceptor: Acceptor,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let state = Arc::new(ProxyState {
            target,
            captures: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            intercepting: AtomicBool::new(false),
            holding: AtomicBool::new(false),
            answering: Mutex::new(None),
        });
        let shared = Arc::clone(&state);
        let acceptor = Acceptor::start(move |client| {
            let connection = {
                let mut captures = shared.lock();
                captures.push(Capture::default());
                captures.len() - 1
            };
            let state = Arc::clone(&shared);
            thread::spawn(move || relay(state, connection, client));
            connection + 1 < PROXY_MAX_CONNECTIONS
        });
        Proxy { state, acceptor }
    }

    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// While `on`, sealed chat frames (`E`) are kept and their connections closed unanswered;
    /// everything else is still forwarded.
    pub fn intercept_sealed(&self, on: bool) {
        self.state.intercepting.store(on, Ordering::SeqCst);
    }

    /// The next sealed chat frame (`E`) is kept from the target and answered with what
    /// `answer` makes of it (length prefix included); the frames after it go through again.
    pub fn answer_next_sealed(&self, answer: impl FnOnce(&[u8]) -> Vec<u8> + Send + 'static) {
        self.answer_next_sealed_where(|_| true, answer);
    }

    /// The same for the next sealed chat frame (length prefix included) that `which` picks;
    /// the others go through meanwhile.
    pub fn answer_next_sealed_where(
        &self,
        which: impl Fn(&[u8]) -> bool + Send + 'static,
        answer: impl FnOnce(&[u8]) -> Vec<u8> + Send + 'static,
    ) {
        *self
            .state
            .answering
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((Box::new(which), Box::new(answer)));
    }

    /// While `on`, signed frames wait (unanswered, at most [`RAW_READ_TIMEOUT`]) before
    /// they are forwarded; turning it off lets the waiting ones through.
    pub fn hold_signed(&self, on: bool) {
        let _captures = self.state.lock();
        self.state.holding.store(on, Ordering::SeqCst);
        self.state.changed.notify_all();
    }

    /// What every connection so far carried, in the order they were accepted.
    pub fn captures(&self) -> Vec<Capture> {
        self.state.lock().clone()
    }

    /// Waits (at most [`EXPECT_TIMEOUT`]) until some connection's capture satisfies `ready`,
    /// and returns it.
    #[track_caller]
    pub fn wait_for(&self, what: &str, ready: impl Fn(&Capture) -> bool) -> Capture {
        let deadline = Instant::now() + EXPECT_TIMEOUT;
        let mut captures = self.state.lock();
        loop {
            if let Some(found) = captures.iter().find(|c| ready(c)) {
                return found.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("the proxy saw no {what} within the deadline: {captures:?}");
            }
            captures = self
                .state
                .changed
                .wait_timeout(captures, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// The captures of the connections whose frame had kind `kind`.
    pub fn captures_of_kind(&self, kind: u8) -> Vec<Capture> {
        self.captures()
            .into_iter()
            .filter(|c| c.kind() == Some(kind))
            .collect()
    }

    /// The captures of signed requests of type `request_type` (`chat_request`, ...).
    pub fn requests_of_type(&self, request_type: &str) -> Vec<Capture> {
        self.captures()
            .into_iter()
            .filter(|c| c.request_type().as_deref() == Some(request_type))
            .collect()
    }

    /// Every byte seen, both ways, all connections.
    pub fn all_bytes(&self) -> Vec<u8> {
        self.captures()
            .into_iter()
            .flat_map(|c| [c.sent, c.received])
            .flatten()
            .collect()
    }
}

/// Reads the client's frame, then forwards it (or keeps it) and pumps the rest both ways.
fn relay(state: Arc<ProxyState>, connection: usize, mut client: TcpStream) {
    let _ = client.set_read_timeout(Some(RAW_READ_TIMEOUT));
    let mut frame = vec![0u8; 4];
    if client.read_exact(&mut frame).is_ok() {
        let len =
            (u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize).min(64 * 1024);
        frame.resize(4 + len, 0);
        if client.read_exact(&mut frame[4..]).is_err() {
            frame.truncate(4);
        }
    } else {
        frame.clear();
    }
    let sealed = frame.get(4).copied() == Some(b'E');
    let answer = match sealed {
        true => {
            let mut answering = state
                .answering
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match &*answering {
                Some((which, _)) if which(&frame) => answering.take().map(|(_, answer)| answer),
                _ => None,
            }
        }
        false => None,
    };
    if let Some(answer) = answer {
        let reply = answer(&frame);
        state.update(connection, |c| {
            c.sent.extend_from_slice(&frame);
            c.received.extend_from_slice(&reply);
            c.forwarded = false;
        });
        let _ = client.write_all(&reply);
        let _ = client.shutdown(Shutdown::Write);
        // The sender closes after reading the reply; wait for that, boundedly, as a receiver.
        let _ = read_to_close(&mut client);
        return;
    }
    let intercept = state.intercepting.load(Ordering::SeqCst) && sealed;
    state.update(connection, |c| {
        c.sent.extend_from_slice(&frame);
        c.forwarded = !intercept;
    });
    if intercept {
        return; // dropping the client closes it with nothing said
    }
    if frame.get(4).copied() == Some(b'S') {
        state.wait_while_holding();
    }
    let Ok(mut server) = TcpStream::connect_timeout(&state.target, Duration::from_secs(5)) else {
        return;
    };
    if server.write_all(&frame).is_err() {
        return;
    }
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = Arc::clone(&state);
    thread::spawn(move || {
        pump(client2, server2, |bytes| {
            up.update(connection, |c| c.sent.extend_from_slice(bytes))
        })
    });
    pump(server, client, |bytes| {
        state.update(connection, |c| c.received.extend_from_slice(bytes))
    });
}

/// Copies `from` to `to`, recording each chunk first, until `from` ends; then passes the end on.
fn pump(mut from: TcpStream, mut to: TcpStream, record: impl Fn(&[u8])) {
    let _ = from.set_read_timeout(Some(RAW_READ_TIMEOUT));
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                record(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
