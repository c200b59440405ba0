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

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_lock::Semaphore;
use futures::io::AsyncReadExt;

use crate::frame::{read_frame, write_frame, FrameError, MAX_FRAME_LEN};
use crate::message::{
    new_id, DecodeError, Envelope, ErrorCode, MessageId, Outcome, Reply, Request, Sender,
};
use crate::name::PeerName;
use crate::runtime::{self, TcpListener, TcpStream};

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

/// Who we are on the wire: a name and the port we listen on. The IP in [`Sender::addr`] is
/// taken from each connection's local address, which is the address the other side reached
/// us on, so it is right on a LAN without any configuration.
#[derive(Clone, Debug)]
pub struct Origin {
    pub name: PeerName,
    pub port: u16,
}

impl Origin {
    fn on(&self, stream: &TcpStream) -> io::Result<Sender> {
        Ok(Sender {
            name: self.name.clone(),
            addr: SocketAddr::new(stream.local_addr()?.ip(), self.port),
        })
    }
}

/// A successful reply: who answered, and what. The outcome is never [`Outcome::Error`]; that
/// arrives as [`SendError::Refused`].
#[derive(Clone, Debug)]
pub struct Response {
    pub from: Sender,
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

/// Sends `body` to `to` as message `id` and waits for the reply.
pub async fn request(
    to: SocketAddr,
    origin: &Origin,
    id: MessageId,
    body: Request,
) -> Result<Response, SendError> {
    runtime::timeout(EXCHANGE_TIMEOUT, exchange(to, origin, id, body))
        .await
        .unwrap_or(Err(SendError::Timeout { addr: to }))
}

async fn exchange(
    to: SocketAddr,
    origin: &Origin,
    id: MessageId,
    body: Request,
) -> Result<Response, SendError> {
    let unreachable = |source| SendError::Unreachable { addr: to, source };
    let broken = |source| SendError::Broken { addr: to, source };
    let bad = |reason: String| SendError::BadReply { addr: to, reason };

    let mut stream = runtime::timeout(CONNECT_TIMEOUT, runtime::connect(to))
        .await
        .map_err(|_| SendError::Timeout { addr: to })?
        .map_err(unreachable)?;
    // Best effort: one write per direction, but no reason to let Nagle wait either.
    let _ = stream.set_nodelay(true);
    let from = origin.on(&stream).map_err(unreachable)?;

    let envelope = Envelope::new(id, from, body);
    write_frame(&mut stream, &envelope.encode())
        .await
        .map_err(broken)?;
    let bytes = read_frame(&mut stream).await.map_err(broken)?;
    let reply = Envelope::<Reply>::decode(&bytes).map_err(|e| bad(e.to_string()))?;

    // The receiver closes first; waiting for that keeps TIME_WAIT on its side. Anything but
    // the end of the stream here is a protocol violation, but the reply already counts.
    let mut rest = [0u8; 1];
    if let Ok(n @ 1..) = stream.read(&mut rest).await {
        return Err(bad(format!("{n} unexpected byte(s) after the reply")));
    }

    match (reply.body.re, reply.body.result) {
        // A receiver that could not read our request cannot name it.
        (re, Outcome::Error { code, detail }) if re == Some(id) || re.is_none() => {
            Err(SendError::Refused {
                addr: to,
                code,
                detail,
            })
        }
        (Some(re), outcome) if re == id => Ok(Response {
            from: reply.from,
            outcome,
        }),
        (re, _) => Err(bad(format!("it answers message {re:?}, not {id}"))),
    }
}

/// The receiving side's logic: what to answer to each request.
pub trait Service: Clone + Send + Sync + 'static {
    /// Decides the outcome of one well-formed request from `remote`.
    fn handle(
        &self,
        request: Envelope<Request>,
        remote: SocketAddr,
    ) -> impl Future<Output = Outcome> + Send;

    /// Told about each connection refused before it reached [`Service::handle`].
    fn refused(&self, remote: SocketAddr, why: &Refusal) {
        let _ = (remote, why);
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
}

impl Refusal {
    fn code(&self) -> ErrorCode {
        match self {
            Refusal::Frame(_) | Refusal::Timeout => ErrorCode::BadFrame,
            Refusal::Decode(e) => e.code(),
            Refusal::AddressMismatch { .. } => ErrorCode::AddressMismatch,
        }
    }
}

/// Accepts connections on `listener` forever, serving each with `service`, at most
/// [`MAX_CONNECTIONS`] at once.
pub async fn serve(listener: TcpListener, origin: Origin, service: impl Service) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
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
        let (origin, service) = (origin.clone(), service.clone());
        runtime::spawn(async move {
            let _ = runtime::timeout(
                CONNECTION_TIMEOUT,
                serve_connection(stream, remote, &origin, &service),
            )
            .await;
            drop(slot);
        });
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    remote: SocketAddr,
    origin: &Origin,
    service: &impl Service,
) {
    let received = match runtime::timeout(RECEIVE_TIMEOUT, read_frame(&mut stream)).await {
        // Connected and left without a word (a port probe): nothing to answer.
        Ok(Err(FrameError::Closed)) => return,
        Ok(Err(e)) => Err(Refusal::Frame(e)),
        Err(_) => Err(Refusal::Timeout),
        Ok(Ok(bytes)) => Envelope::<Request>::decode(&bytes)
            .map_err(Refusal::Decode)
            .and_then(|envelope| check_sender(envelope, remote)),
    };
    let (re, outcome) = match received {
        Ok(envelope) => (Some(envelope.id), service.handle(envelope, remote).await),
        Err(why) => {
            service.refused(remote, &why);
            (None, Outcome::error(why.code(), why.to_string()))
        }
    };
    let clean = re.is_some();
    if let Ok(from) = origin.on(&stream) {
        let reply = Envelope::new(
            new_id(),
            from,
            Reply {
                re,
                result: outcome,
            },
        );
        let _ = write_frame(&mut stream, &reply.encode()).await;
    }
    close(stream, clean).await;
}

/// A sender may only name an address on the IP it connects from; otherwise anybody could
/// direct our answers at a third party.
fn check_sender(
    envelope: Envelope<Request>,
    remote: SocketAddr,
) -> Result<Envelope<Request>, Refusal> {
    if envelope.from.addr.ip() == remote.ip() {
        Ok(envelope)
    } else {
        Err(Refusal::AddressMismatch {
            claimed: envelope.from.addr,
            seen: remote,
        })
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
