//! The receiving side of an exchange: accept, read one request, answer it, close first.
//!
//! [`serve`] runs the listener; each connection is a task of its own, with a slot among
//! [`MAX_CONNECTIONS`] and a share of its address's and its network's budgets
//! (`budgets.rs`), and reads its request against deadlines (`pace.rs`). Signed requests are
//! checked here (address, signature, freshness) before the [`Service`] sees them; sealed
//! frames go to the service as they are, since their keys are its state.

use std::future::Future;
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_lock::Semaphore;
use futures::io::AsyncReadExt;
use serde::de::IgnoredAny;

use super::budgets::{Budgets, Limits};
use super::pace;
use super::refusal::{Refusal, SealedRefusal};
use super::{Origin, CONNECTION_TIMEOUT, MAX_CONNECTIONS};
use crate::replay::{Freshness, Sender};
use crate::runtime::{self, TcpListener, TcpStream};
use crate::wire::frame::Kind;
use crate::wire::request::Request;
use crate::wire::stream::{write_frame, FrameError, MAX_FRAME_LEN};
use crate::wire::{
    new_id, DecodeError, Envelope, ErrorCode, MessageId, Outcome, ReplyBody, RequestDigest,
    SignedEnvelope,
};

pub trait Service: Clone + Send + Sync + 'static {
    /// The signed requests this receiver takes; a request for another kind of receiver is
    /// refused as `unsupported_request` before [`Service::handle`].
    type Request: Request + Send;

    /// Decides the outcome of one well-formed request from `remote`, whose signature (if
    /// [`Service::needs_signature`] asked for it) was checked, that came in at `local` (the
    /// address the sender reached us at).
    fn handle(
        &self,
        request: Envelope<Self::Request>,
        remote: SocketAddr,
        local: SocketAddr,
    ) -> impl Future<Output = Outcome> + Send;

    /// Whether a request must prove its sender: checking a signature costs a public-key
    /// operation, which requests anyone may make (a ping, a lookup) need not pay.
    fn needs_signature(&self, request: &Self::Request) -> bool {
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

/// Accepts connections on `listener`, serving each with `service`, at most
/// [`MAX_CONNECTIONS`] at once and each sender within `limits`, until `shutdown` completes.
/// Then it stops accepting (the listener is closed) and returns once the connections in
/// flight are answered, each within its [`CONNECTION_TIMEOUT`].
pub async fn serve(
    listener: TcpListener,
    origin: Origin,
    service: impl Service,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let accepting = accept_all(listener, origin, service, limits, Arc::clone(&slots));
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
    limits: Limits,
    slots: Arc<Semaphore>,
) {
    // Shared by all connection tasks; held only for a lookup and an insert, never across an
    // await, so a plain mutex is the simple and fast choice.
    let freshness = Arc::new(Mutex::new(Freshness::new(limits.replay)));
    let budgets = Budgets::new(limits);
    // Refusals take no slot, or a sender over its budget could still hold every slot with
    // connections waiting to be refused; they have a small pool of their own, and beyond it
    // a connection is closed unanswered.
    let refusals = Arc::new(Semaphore::new(REFUSALS));
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
        let (held, refusal) = match budgets.take(remote.ip()) {
            Some(share) => (Some((slot, share)), None),
            None => match refusals.try_acquire_arc() {
                Some(refusal) => (None, Some(refusal)),
                None => continue,
            },
        };
        runtime::spawn(async move {
            let receiver = Receiver {
                origin: &origin,
                service: &service,
                freshness: &freshness,
            };
            let serve = async {
                match held {
                    Some(_held) => receiver.serve(stream, remote).await,
                    None => receiver.refuse_busy(stream, remote).await,
                }
            };
            let _ = runtime::timeout(CONNECTION_TIMEOUT, serve).await;
            drop(refusal);
        });
    }
}

/// How many `busy` refusals may be under way at once, outside the slots.
const REFUSALS: usize = 32;

/// A signed request let in: one for this receiver, or a well-formed one for another kind of
/// receiver, to be answered `unsupported_request`.
enum Admitted<R> {
    Ours(Envelope<R>),
    Elsewhere { re: MessageId, why: &'static str },
}

/// What one connection task needs to answer its request.
struct Receiver<'a, S> {
    origin: &'a Origin,
    service: &'a S,
    freshness: &'a Mutex<Freshness>,
}

impl<S: Service> Receiver<'_, S> {
    async fn serve(&self, mut stream: TcpStream, remote: SocketAddr) {
        let frame = match pace::read_request(&mut stream).await {
            // Connected and left without a word (a port probe): nothing to answer.
            Err(Refusal::Frame(FrameError::Closed)) => return,
            other => other,
        };
        // A refusal says whether the whole frame was read, which decides how to close, and
        // which request it refuses when that could be read. A signed reply names the frame it
        // answers by its digest whenever the whole frame was read.
        let digest = frame.as_ref().ok().map(|frame| RequestDigest::of(frame));
        let reply = match frame {
            Ok(frame) => match Kind::of(&frame) {
                Some(Kind::Sealed | Kind::RegistryRequest) => self
                    .service
                    .handle_sealed(frame, remote)
                    .await
                    .map_err(|r| (true, r.why, r.re)),
                Some(Kind::Signed) => match self.admit(&frame, remote) {
                    Ok(Admitted::Ours(request)) => {
                        let (re, at) = (request.id, request.at);
                        let local = stream.local_addr().unwrap_or(remote);
                        let outcome = self.service.handle(request, remote, local).await;
                        // Not handled: its sender may try again under the same id.
                        if let Outcome::Error {
                            code: ErrorCode::Busy,
                            ..
                        } = outcome
                        {
                            self.freshness
                                .lock()
                                .unwrap_or_else(|poisoned| poisoned.into_inner())
                                .forget(&re, at);
                        }
                        Ok(self.signed_reply(&stream, (Some(re), digest), outcome))
                    }
                    Ok(Admitted::Elsewhere { re, why }) => {
                        let outcome = Outcome::error(ErrorCode::UnsupportedRequest, why);
                        Ok(self.signed_reply(&stream, (Some(re), digest), outcome))
                    }
                    Err(why) => Err((true, why, None)),
                },
                // Replies are no requests.
                Some(Kind::SealedAck | Kind::RegistryReply) | None => {
                    Err((true, Refusal::UnknownKind, None))
                }
            },
            Err(why) => Err((false, why, None)),
        };
        let (reply, clean) = match reply {
            Ok(reply) => (reply, true),
            Err((read_whole_frame, why, re)) => {
                self.service.refused(remote, &why);
                let outcome = Outcome::error(why.code(), why.to_string());
                let digest = digest.filter(|_| read_whole_frame);
                (
                    self.signed_reply(&stream, (re, digest), outcome),
                    read_whole_frame,
                )
            }
        };
        let _ = write_frame(&mut stream, &reply).await;
        close(stream, clean).await;
    }

    /// Answers a connection beyond its address's or its network's budget with `busy`, without
    /// reading it.
    async fn refuse_busy(&self, mut stream: TcpStream, remote: SocketAddr) {
        let why = Refusal::Busy;
        self.service.refused(remote, &why);
        let outcome = Outcome::error(why.code(), why.to_string());
        let reply = self.signed_reply(&stream, (None, None), outcome);
        let _ = write_frame(&mut stream, &reply).await;
        close(stream, false).await;
    }

    /// Parses a signed request and decides whether to let it in: a sender address on the
    /// connection's IP and, where the service wants proof, a valid signature on a message not
    /// seen before. A request for another kind of receiver is checked the same way (always
    /// with its signature), so that it is refused for what it is, naming its id.
    fn admit(&self, frame: &[u8], remote: SocketAddr) -> Result<Admitted<S::Request>, Refusal> {
        match SignedEnvelope::<S::Request>::decode_request(frame) {
            Ok(signed) => {
                let proof = self.service.needs_signature(&signed.envelope.body);
                self.check(&signed, remote, proof)?;
                Ok(Admitted::Ours(signed.envelope))
            }
            Err(DecodeError::Elsewhere(why)) => {
                let signed = SignedEnvelope::<IgnoredAny>::decode(frame)?;
                self.check(&signed, remote, true)?;
                let re = signed.envelope.id;
                Ok(Admitted::Elsewhere { re, why })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The checks of [`Receiver::admit`]; the signature and freshness only with `proof`.
    fn check<B>(
        &self,
        signed: &SignedEnvelope<B>,
        remote: SocketAddr,
        proof: bool,
    ) -> Result<(), Refusal> {
        let from = &signed.envelope.from;
        // A sender may only name an address on the IP it connects from; otherwise anybody
        // could direct our answers at a third party.
        if from.addr.ip() != remote.ip() {
            return Err(Refusal::AddressMismatch {
                claimed: from.addr,
                seen: remote,
            });
        }
        if proof {
            if !signed.verify() {
                return Err(Refusal::BadSignature);
            }
            let (id, at) = (signed.envelope.id, signed.envelope.at);
            let sender = Sender {
                key: from.key,
                ip: remote.ip(),
            };
            self.freshness
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .admit(id, at, sender, chrono::Utc::now())?;
        }
        Ok(())
    }

    /// Our reply, signed, from the address the sender reached us on.
    fn signed_reply(
        &self,
        stream: &TcpStream,
        (re, re_digest): (Option<MessageId>, Option<RequestDigest>),
        result: Outcome,
    ) -> Vec<u8> {
        let ip = stream
            .local_addr()
            .map(|a| a.ip())
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        let body = ReplyBody {
            re,
            re_digest,
            result,
        };
        let reply = Envelope::new(new_id(), self.origin.sender(ip), body);
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
