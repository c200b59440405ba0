//! One request, one reply, on a fresh connection: both ends of every exchange.
//!
//! The sending side ([`request`]) connects, writes one request frame, reads one reply frame
//! and then waits for the receiver to close. The receiving side ([`serve`]) accepts, reads one
//! request, asks a [`Service`] for the outcome, writes the reply and closes first. Closing
//! first puts the TIME_WAIT state on the receiver's single listening port instead of using up
//! the sender's ephemeral ports (docs/protocol.md has the measurements).
//!
//! Every step has a deadline and every frame a size limit, so a silent, slow or hostile
//! remote costs a bounded amount of time and memory.
//!
//! Two kinds of frames travel: signed envelopes, which this module signs and verifies itself
//! (and checks for freshness, against replays), and sealed frames, whose keys belong to a
//! session (a chat's, or a peer's registry session): the receiving [`Service`] opens and
//! answers those itself, and [`request_in_session`] is the registry session's sending side.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_lock::Semaphore;
use futures::io::AsyncReadExt;

use crate::frame::{read_frame, write_frame, FrameError, MAX_FRAME_LEN};
use crate::identity::{Identity, PublicKey};
use crate::message::{
    new_id, DecodeError, Envelope, ErrorCode, MessageId, Outcome, Reply, Request, Sender,
    SignedEnvelope, SIGNED,
};
use crate::name::PeerName;
use crate::registry_session::{self, PeerSession};
use crate::replay::{Freshness, Stale};
use crate::runtime::{self, TcpListener, TcpStream};
use crate::seal::SEALED;

/// How long a sender waits for the connection to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a sender waits for a whole exchange: connect, request, reply, close.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a receiver waits for the request after accepting a connection.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a receiver spends on one connection in all, whatever its service does.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How many connections a receiver serves at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 256;
/// How many of those may come from one IP address: a flood or a slow client from one host
/// cannot take every slot. Beyond it a connection gets a `busy` refusal at once.
pub const MAX_CONNECTIONS_PER_IP: usize = 64;

/// Who we are on the wire: a name, the key that proves it, and the port we listen on. The IP
/// in [`Sender::addr`] is taken from each connection's local address, which is the address the
/// other side reached us on, so it is right on a LAN without any configuration.
#[derive(Clone)]
pub struct Origin {
    pub name: PeerName,
    pub port: u16,
    pub identity: Arc<Identity>,
}

impl Origin {
    /// Our sender record on a connection whose local IP is `ip`.
    pub fn sender(&self, ip: std::net::IpAddr) -> Sender {
        Sender {
            name: self.name,
            addr: SocketAddr::new(ip, self.port),
            key: self.identity.public(),
        }
    }
}

/// A successful reply: who answered, with which key, and what. The outcome is never
/// [`Outcome::Error`]; that arrives as [`SendError::Refused`].
#[derive(Clone, Debug)]
pub struct Response {
    pub from: Sender,
    /// The key that proved the reply: its signature's, or the one its session was agreed
    /// with. For a signed reply it is `from.key`.
    pub key: PublicKey,
    pub outcome: Outcome,
}

/// Why a request did not get a successful reply.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot reach {addr}: {source}")]
    Unreachable { addr: SocketAddr, source: io::Error },
    #[error("{addr} did not answer in time")]
    Timeout { addr: SocketAddr },
    #[error("the connection to {addr} failed: {source}")]
    Broken {
        addr: SocketAddr,
        source: FrameError,
    },
    #[error("{addr} sent an invalid reply: {reason}")]
    BadReply { addr: SocketAddr, reason: String },
    #[error("{addr} refused: {detail}")]
    Refused {
        addr: SocketAddr,
        code: ErrorCode,
        detail: String,
        /// The key that signed the refusal: whether it is the expected one is for the caller
        /// to say, as for a successful reply.
        key: PublicKey,
    },
}

impl SendError {
    /// The error code the other side answered with, if it answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            SendError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Sends `body` to `to` as message `id`, signed with our key, and waits for the reply, whose
/// signature by the key it names is checked. Whether that key is the one expected is for the
/// caller to say.
pub async fn request(
    to: SocketAddr,
    origin: &Origin,
    id: MessageId,
    body: Request,
) -> Result<Response, SendError> {
    let reply = exchange_with(to, |local_ip| {
        Envelope::new(id, origin.sender(local_ip), body).sign(&origin.identity)
    })
    .await?;
    let (reply, key) = signed_reply(to, &reply)?;
    answer_to(to, id, reply, key)
}

/// Sends `body` to the registry at `to` as message `id`, in our registry `session`, and
/// waits for the reply. The registry answers a request it cannot place in a session with a
/// signed refusal (`unknown_session`, say), which arrives as [`SendError::Refused`] with the
/// key that signed it; a reply in the session proves the key the session was agreed with.
pub async fn request_in_session(
    to: SocketAddr,
    session: &mut PeerSession,
    origin: &Origin,
    id: MessageId,
    body: Request,
) -> Result<Response, SendError> {
    let mut counter = 0;
    let reply = exchange_with(to, |local_ip| {
        let envelope = Envelope::new(id, origin.sender(local_ip), body);
        let (sent, frame) = session.request(&envelope.encode());
        counter = sent;
        frame
    })
    .await?;
    let bad = |reason: String| SendError::BadReply { addr: to, reason };
    let (reply, key) = match reply.first() {
        // Only a refusal comes signed, and it must name this request, or be one a receiver
        // sends before reading anything: a refusal of another request, played back, must not
        // end our session.
        Some(&SIGNED) => match signed_reply(to, &reply)? {
            (reply, key) if refuses(&reply.body, id) => (reply, key),
            _ => return Err(bad("a signed answer that refuses no request of ours".into())),
        },
        _ => {
            let json = session
                .reply(counter, &reply)
                .ok_or_else(|| bad("it is no reply in our registry session".into()))?;
            let reply = Envelope::<Reply>::decode(json).map_err(|e| bad(e.to_string()))?;
            (reply, session.registry())
        }
    };
    answer_to(to, id, reply, key)
}

/// Whether `reply` refuses request `id`: naming it, or before reading it (`busy`, `bad_frame`).
fn refuses(reply: &Reply, id: MessageId) -> bool {
    match (&reply.result, reply.re) {
        (Outcome::Error { .. }, Some(re)) => re == id,
        (Outcome::Error { code, .. }, None) => {
            matches!(code, ErrorCode::Busy | ErrorCode::BadFrame)
        }
        _ => false,
    }
}

/// Parses a signed reply and checks its signature; returns it with the key that signed it.
fn signed_reply(to: SocketAddr, frame: &[u8]) -> Result<(Envelope<Reply>, PublicKey), SendError> {
    let bad = |reason: String| SendError::BadReply { addr: to, reason };
    let reply = SignedEnvelope::<Reply>::decode(frame).map_err(|e| bad(e.to_string()))?;
    if !reply.verify() {
        return Err(bad("its signature does not match its key".into()));
    }
    let key = reply.envelope.from.key;
    Ok((reply.envelope, key))
}

/// What a reply made by `key` says about our request `id`.
fn answer_to(
    to: SocketAddr,
    id: MessageId,
    reply: Envelope<Reply>,
    key: PublicKey,
) -> Result<Response, SendError> {
    match (reply.body.re, reply.body.result) {
        // A receiver that could not read our request cannot name it.
        (re, Outcome::Error { code, detail }) if re == Some(id) || re.is_none() => {
            Err(SendError::Refused {
                addr: to,
                code,
                detail,
                key,
            })
        }
        (Some(re), outcome) if re == id => Ok(Response {
            from: reply.from,
            key,
            outcome,
        }),
        (re, _) => Err(SendError::BadReply {
            addr: to,
            reason: format!("it answers message {re:?}, not {id}"),
        }),
    }
}

/// Sends one frame body to `to` and returns the one that comes back: for frames sealed in a
/// chat session, whose sealing and opening belong to the session's owner.
pub async fn exchange(to: SocketAddr, frame: Vec<u8>) -> Result<Vec<u8>, SendError> {
    exchange_with(to, |_| frame).await
}

/// Connects, writes the frame `make` builds (it gets the connection's local IP), reads the
/// reply frame and waits for the receiver to close, all within [`EXCHANGE_TIMEOUT`].
async fn exchange_with(
    to: SocketAddr,
    make: impl FnOnce(std::net::IpAddr) -> Vec<u8>,
) -> Result<Vec<u8>, SendError> {
    let unreachable = |source| SendError::Unreachable { addr: to, source };
    let broken = |source| SendError::Broken { addr: to, source };
    let exchange = async {
        let mut stream = runtime::timeout(CONNECT_TIMEOUT, runtime::connect(to))
            .await
            .map_err(|_| SendError::Timeout { addr: to })?
            .map_err(unreachable)?;
        // Best effort: one write per direction, but no reason to let Nagle wait either.
        let _ = stream.set_nodelay(true);
        let local_ip = stream.local_addr().map_err(unreachable)?.ip();
        write_frame(&mut stream, &make(local_ip))
            .await
            .map_err(broken)?;
        let reply = read_frame(&mut stream).await.map_err(broken)?;
        // The receiver closes first; waiting for that keeps TIME_WAIT on its side. Anything
        // but the end of the stream here is a protocol violation.
        let mut rest = [0u8; 1];
        if let Ok(n @ 1..) = stream.read(&mut rest).await {
            return Err(SendError::BadReply {
                addr: to,
                reason: format!("{n} unexpected byte(s) after the reply"),
            });
        }
        Ok(reply)
    };
    runtime::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or(Err(SendError::Timeout { addr: to }))
}

/// The receiving side's logic: what to answer to each request.
pub trait Service: Clone + Send + Sync + 'static {
    /// Decides the outcome of one well-formed request from `remote`, whose signature (if
    /// [`Service::needs_signature`] asked for it) was checked.
    fn handle(
        &self,
        request: Envelope<Request>,
        remote: SocketAddr,
    ) -> impl Future<Output = Outcome> + Send;

    /// Whether a request must prove its sender: checking a signature costs a public-key
    /// operation, which requests anyone may make (a ping, a lookup) need not pay.
    fn needs_signature(&self, request: &Request) -> bool {
        let _ = request;
        true
    }

    /// Opens and answers a frame sealed in a session (a chat's, or a registry session's):
    /// returns the sealed reply, or why the frame is refused (it opens in no session here, or
    /// it is a replay).
    fn handle_sealed(
        &self,
        frame: Vec<u8>,
        remote: SocketAddr,
    ) -> impl Future<Output = Result<Vec<u8>, SealedRefusal>> + Send {
        let _ = (frame, remote);
        async { Err(Refusal::UnknownSession.into()) }
    }

    /// Told about each connection refused before it reached [`Service::handle`].
    fn refused(&self, remote: SocketAddr, why: &Refusal) {
        let _ = (remote, why);
    }
}

/// Why a sealed frame is refused, with the id of the request in it when the receiver could
/// read one (a registry session's requests are authenticated, not encrypted). A refusal that
/// names its request cannot be played back as the answer to another.
#[derive(Debug)]
pub struct SealedRefusal {
    pub re: Option<MessageId>,
    pub why: Refusal,
}

impl From<Refusal> for SealedRefusal {
    fn from(why: Refusal) -> Self {
        SealedRefusal { re: None, why }
    }
}

/// Why a receiver refused a connection without handling it.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("no request within {}s", RECEIVE_TIMEOUT.as_secs())]
    Timeout,
    #[error("it claims to listen on {claimed} but connects from {seen}")]
    AddressMismatch {
        claimed: SocketAddr,
        seen: SocketAddr,
    },
    #[error("its signature does not match its key")]
    BadSignature,
    #[error("{0}")]
    Stale(#[from] Stale),
    #[error("it opens in no session here (unknown or ended session, or altered)")]
    UnknownSession,
    #[error("it names another sender than the one its session was agreed with")]
    WrongSender,
    #[error("unknown frame kind")]
    UnknownKind,
    #[error("too many connections from this address at once; try again later")]
    Busy,
}

impl Refusal {
    fn code(&self) -> ErrorCode {
        match self {
            Refusal::Frame(_) | Refusal::Timeout | Refusal::UnknownKind => ErrorCode::BadFrame,
            Refusal::Decode(e) => e.code(),
            Refusal::AddressMismatch { .. } => ErrorCode::AddressMismatch,
            Refusal::BadSignature => ErrorCode::BadSignature,
            Refusal::Stale(Stale::Full) => ErrorCode::Busy,
            Refusal::Stale(_) => ErrorCode::Stale,
            Refusal::UnknownSession => ErrorCode::UnknownSession,
            Refusal::WrongSender => ErrorCode::BadMessage,
            Refusal::Busy => ErrorCode::Busy,
        }
    }
}

/// Accepts connections on `listener`, serving each with `service`, at most
/// [`MAX_CONNECTIONS`] at once, until `shutdown` completes. Then it stops accepting (the
/// listener is closed) and returns once the connections in flight are answered, each within
/// its [`CONNECTION_TIMEOUT`].
pub async fn serve(
    listener: TcpListener,
    origin: Origin,
    service: impl Service,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let accepting = accept_all(listener, origin, service, Arc::clone(&slots));
    futures::future::select(std::pin::pin!(accepting), std::pin::pin!(shutdown)).await;
    // Each connection task holds a slot until it ends: all slots back means all answered.
    for _ in 0..MAX_CONNECTIONS {
        slots.acquire().await.forget();
    }
}

async fn accept_all(
    listener: TcpListener,
    origin: Origin,
    service: impl Service,
    slots: Arc<Semaphore>,
) {
    // Shared by all connection tasks; held only for a lookup and an insert, never across an
    // await, so a plain mutex is the simple and fast choice.
    let freshness = Arc::new(Mutex::new(Freshness::default()));
    let per_ip = Arc::new(Mutex::new(HashMap::<IpAddr, usize>::new()));
    loop {
        // Take a slot before accepting: when all are busy, new connections wait in the
        // kernel's backlog instead of in our memory.
        let slot = slots.acquire_arc().await;
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of file descriptors, or a connection reset before we took it. Pause so
                // a persistent error does not spin a core.
                runtime::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (origin, service, freshness) = (origin.clone(), service.clone(), freshness.clone());
        let share = IpShare::take(&per_ip, remote.ip());
        runtime::spawn(async move {
            let receiver = Receiver {
                origin: &origin,
                service: &service,
                freshness: &freshness,
            };
            let serve = async {
                match share {
                    Some(_share) => receiver.serve(stream, remote).await,
                    None => receiver.refuse_busy(stream, remote).await,
                }
            };
            let _ = runtime::timeout(CONNECTION_TIMEOUT, serve).await;
            drop(slot);
        });
    }
}

/// One connection's place in its IP address's count, given back when dropped.
struct IpShare {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl IpShare {
    /// A place for one more connection from `ip`, if it has fewer than the most allowed.
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<IpShare> {
        let mut map = counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = map.entry(ip).or_default();
        if *count >= MAX_CONNECTIONS_PER_IP {
            return None;
        }
        *count += 1;
        Some(IpShare {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for IpShare {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = map.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// What one connection task needs to answer its request.
struct Receiver<'a, S> {
    origin: &'a Origin,
    service: &'a S,
    freshness: &'a Mutex<Freshness>,
}

impl<S: Service> Receiver<'_, S> {
    async fn serve(&self, mut stream: TcpStream, remote: SocketAddr) {
        let frame = match runtime::timeout(RECEIVE_TIMEOUT, read_frame(&mut stream)).await {
            // Connected and left without a word (a port probe): nothing to answer.
            Ok(Err(FrameError::Closed)) => return,
            Ok(Err(e)) => Err(Refusal::Frame(e)),
            Err(_) => Err(Refusal::Timeout),
            Ok(Ok(frame)) => Ok(frame),
        };
        // A refusal says whether the whole frame was read, which decides how to close, and
        // which request it refuses when that could be read.
        let reply = match frame {
            Ok(frame) if matches!(frame.first(), Some(&SEALED | &registry_session::REQUEST)) => {
                self.service
                    .handle_sealed(frame, remote)
                    .await
                    .map_err(|r| (true, r.why, r.re))
            }
            Ok(frame) if frame.first() == Some(&SIGNED) => match self.admit(&frame, remote) {
                Ok(request) => {
                    let re = request.id;
                    let outcome = self.service.handle(request, remote).await;
                    Ok(self.signed_reply(&stream, Some(re), outcome))
                }
                Err(why) => Err((true, why, None)),
            },
            Ok(_) => Err((true, Refusal::UnknownKind, None)),
            Err(why) => Err((false, why, None)),
        };
        let (reply, clean) = match reply {
            Ok(reply) => (reply, true),
            Err((read_whole_frame, why, re)) => {
                self.service.refused(remote, &why);
                let outcome = Outcome::error(why.code(), why.to_string());
                (self.signed_reply(&stream, re, outcome), read_whole_frame)
            }
        };
        let _ = write_frame(&mut stream, &reply).await;
        close(stream, clean).await;
    }

    /// Answers a connection beyond its address's share with `busy`, without reading it.
    async fn refuse_busy(&self, mut stream: TcpStream, remote: SocketAddr) {
        let why = Refusal::Busy;
        self.service.refused(remote, &why);
        let reply = self.signed_reply(&stream, None, Outcome::error(why.code(), why.to_string()));
        let _ = write_frame(&mut stream, &reply).await;
        close(stream, false).await;
    }

    /// Parses a signed request and decides whether to let it in: a sender address on the
    /// connection's IP and, where the service wants proof, a valid signature on a message not
    /// seen before.
    fn admit(&self, frame: &[u8], remote: SocketAddr) -> Result<Envelope<Request>, Refusal> {
        let signed = SignedEnvelope::<Request>::decode(frame)?;
        let from = &signed.envelope.from;
        // A sender may only name an address on the IP it connects from; otherwise anybody
        // could direct our answers at a third party.
        if from.addr.ip() != remote.ip() {
            return Err(Refusal::AddressMismatch {
                claimed: from.addr,
                seen: remote,
            });
        }
        if self.service.needs_signature(&signed.envelope.body) {
            if !signed.verify() {
                return Err(Refusal::BadSignature);
            }
            let (id, at) = (signed.envelope.id, signed.envelope.at);
            self.freshness
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .admit(id, at, chrono::Utc::now())?;
        }
        Ok(signed.envelope)
    }

    /// Our reply, signed, from the address the sender reached us on.
    fn signed_reply(&self, stream: &TcpStream, re: Option<MessageId>, result: Outcome) -> Vec<u8> {
        let ip = stream
            .local_addr()
            .map(|a| a.ip())
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        let reply = Envelope::new(new_id(), self.origin.sender(ip), Reply { re, result });
        reply.sign(&self.origin.identity)
    }
}

/// Closes our side first. After a refusal the sender's bytes may not all have been read, and
/// closing a socket with unread input sends a reset that can destroy our error reply in
/// flight; so then we read and discard a bounded amount until the sender closes too.
async fn close(mut stream: TcpStream, clean: bool) {
    let _ = stream.shutdown(Shutdown::Write);
    if clean {
        return;
    }
    let mut sink = vec![0u8; 4096];
    let mut budget = MAX_FRAME_LEN;
    let _ = runtime::timeout(Duration::from_secs(1), async {
        while budget > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => budget = budget.saturating_sub(n),
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(re: Option<MessageId>, code: ErrorCode) -> Reply {
        Reply {
            re,
            result: Outcome::error(code, "no"),
        }
    }

    #[test]
    fn a_signed_refusal_of_a_session_request_must_name_it() {
        let id = new_id();
        assert!(refuses(&refusal(Some(id), ErrorCode::UnknownSession), id));
        let other = refusal(Some(new_id()), ErrorCode::UnknownSession);
        assert!(!refuses(&other, id), "another request's refusal");
        let nobodys = refusal(None, ErrorCode::UnknownSession);
        assert!(
            !refuses(&nobodys, id),
            "a refusal of no request, played back"
        );
        for before_reading in [ErrorCode::Busy, ErrorCode::BadFrame] {
            assert!(refuses(&refusal(None, before_reading), id));
        }
        let success = Reply {
            re: Some(id),
            result: Outcome::Ok,
        };
        assert!(
            !refuses(&success, id),
            "a success is never signed in a session"
        );
    }
}
