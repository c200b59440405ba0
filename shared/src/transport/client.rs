//! The sending side of an exchange: connect, write one request frame, read one reply frame,
//! see the receiver close; and what the reply says, checked.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use futures::io::AsyncReadExt;

use super::{Origin, Reply, SendError, CONNECT_TIMEOUT, EXCHANGE_TIMEOUT};
use crate::identity::PublicKey;
use crate::registry_session::PeerSession;
use crate::runtime;
use crate::wire::frame::Kind;
use crate::wire::stream::{read_frame, write_frame};
use crate::wire::{
    Envelope, ErrorCode, MessageId, Outcome, RegistryRequest, ReplyBody, RequestDigest,
    SignedEnvelope,
};
/// Sends `body` to `to` as message `id`, signed with our key, and waits for the reply, whose
/// signature by the key it names is checked. Whether that key is the one expected is for the
/// caller to say.
pub async fn request<B: serde::Serialize>(
    to: SocketAddr,
    origin: &Origin,
    id: MessageId,
    body: B,
) -> Result<Reply, SendError> {
    request_with(to, origin, id, |_| body).await
}

/// [`request`], with a body made once the connection is up, from the IP it leaves from: the
/// address the receiver sees us at, which a peer puts in its own record (`record.rs`).
pub async fn request_with<B: serde::Serialize>(
    to: SocketAddr,
    origin: &Origin,
    id: MessageId,
    body: impl FnOnce(std::net::IpAddr) -> B,
) -> Result<Reply, SendError> {
    let mut sent = None;
    let reply = exchange_with(origin.source(), to, |stream| {
        let local_ip = local_ip(origin, stream)?;
        let envelope = Envelope::new(id, origin.sender(local_ip), body(local_ip));
        let frame = envelope.sign(&origin.identity);
        sent = Some(RequestDigest::of(&frame));
        Ok(frame)
    })
    .await?;
    let (reply, key) = signed_reply(to, &reply)?;
    answer_to(to, (id, sent), reply, key)
}

/// The IP a connection of ours leaves from: the one we listen on, if that is one address (the
/// connection was bound to it), or else the one the route picked.
fn local_ip(origin: &Origin, stream: &runtime::Connection) -> std::io::Result<IpAddr> {
    match origin.source() {
        Some(ip) => Ok(ip),
        None => Ok(stream.get_ref().local_addr()?.ip()),
    }
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
    body: RegistryRequest,
) -> Result<Reply, SendError> {
    let (mut counter, mut sent) = (0, None);
    let reply = exchange_with(origin.source(), to, |stream| {
        let local_ip = local_ip(origin, stream)?;
        let envelope = Envelope::new(id, origin.sender(local_ip), body);
        let (number, frame) = session.request(&envelope.encode());
        (counter, sent) = (number, Some(RequestDigest::of(&frame)));
        Ok(frame)
    })
    .await?;
    let bad = |reason: String| SendError::BadReply { addr: to, reason };
    let (reply, key) = match Kind::of(&reply) {
        // Only a refusal comes signed, and it must name this request, or be one a receiver
        // sends before reading anything: a refusal of another request, played back, must not
        // end our session.
        Some(Kind::Signed) => match signed_reply(to, &reply)? {
            (reply, key) if refuses(&reply.body, id) => {
                return answer_to(to, (id, sent), reply, key)
            }
            _ => return Err(bad("a signed answer that refuses no request of ours".into())),
        },
        _ => {
            let json = session
                .reply(counter, &reply)
                .ok_or_else(|| bad("it is no reply in our registry session".into()))?;
            let reply = Envelope::<ReplyBody>::decode(&json).map_err(|e| bad(e.to_string()))?;
            (reply, session.registry())
        }
    };
    // The session's keys and counter bind this reply to the request: no digest.
    answer_to(to, (id, None), reply, key)
}

/// Whether `reply` may be a refusal of request `id`: an error naming it, or naming no id
/// (a request in a session is sealed: a receiver that cannot open it cannot read its id). Its
/// digest must then name our frame ([`answer_to`]).
fn refuses(reply: &ReplyBody, id: MessageId) -> bool {
    match (&reply.result, reply.re) {
        (Outcome::Error { .. }, Some(re)) => re == id,
        (Outcome::Error { .. }, None) => true,
        _ => false,
    }
}

/// Parses a signed reply and checks its signature; returns it with the key that signed it.
fn signed_reply(
    to: SocketAddr,
    frame: &[u8],
) -> Result<(Envelope<ReplyBody>, PublicKey), SendError> {
    let bad = |reason: String| SendError::BadReply { addr: to, reason };
    let reply = SignedEnvelope::<ReplyBody>::decode(frame).map_err(|e| bad(e.to_string()))?;
    if !reply.verify() {
        return Err(bad("its signature does not match its key".into()));
    }
    let key = reply.envelope.from.key;
    Ok((reply.envelope, key))
}

/// What a reply made by `key` says about our request `id`, whose frame had the digest `sent`
/// (`None` when the reply is bound to it otherwise). A signed reply must name that frame,
/// or, a refusal of a frame not read whole, none.
fn answer_to(
    to: SocketAddr,
    (id, sent): (MessageId, Option<RequestDigest>),
    reply: Envelope<ReplyBody>,
    key: PublicKey,
) -> Result<Reply, SendError> {
    if let Some(sent) = sent {
        let named = reply.body.re_digest;
        let ours = match (reply.body.re, named, &reply.body.result) {
            (Some(_), _, _) => named == Some(sent),
            (None, Some(named), _) => named == sent,
            // Only a refusal sent before the frame was read whole names nothing.
            (None, None, Outcome::Error { code, .. }) => {
                matches!(code, ErrorCode::Busy | ErrorCode::BadFrame)
            }
            (None, None, _) => false,
        };
        if !ours {
            return Err(SendError::BadReply {
                addr: to,
                reason: "it answers another request (its digest is not our request's)".into(),
            });
        }
    }
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
        (Some(re), outcome) if re == id => Ok(Reply {
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

/// Sends one frame body to `to`, from the local IP `from` if given ([`Origin::source`]), and
/// returns the one that comes back: for frames sealed in a chat session, whose sealing and
/// opening belong to the session's owner.
pub async fn exchange(
    from: Option<IpAddr>,
    to: SocketAddr,
    frame: Vec<u8>,
) -> Result<Vec<u8>, SendError> {
    exchange_with(from, to, |_| Ok(frame)).await
}

/// Connects (from `from`, if given), writes the frame `make` builds from the connection (a
/// signed request names the local IP it leaves from; a sealed frame is made before, and asks
/// for nothing: one system call fewer on a chat message's path), reads the reply frame and
/// waits for the receiver to close, all within [`EXCHANGE_TIMEOUT`]. A failure says whether
/// the frame was written whole first ([`SendError::after_writing`]).
async fn exchange_with(
    from: Option<IpAddr>,
    to: SocketAddr,
    make: impl FnOnce(&runtime::Connection) -> std::io::Result<Vec<u8>>,
) -> Result<Vec<u8>, SendError> {
    let unreachable = |source| SendError::Unreachable { addr: to, source };
    // Set once the frame is written whole: read after a timeout, which drops the exchange.
    let written = AtomicBool::new(false);
    let exchange = async {
        let mut stream = runtime::timeout(CONNECT_TIMEOUT, runtime::connect(from, to))
            .await
            .map_err(|_| SendError::Timeout {
                addr: to,
                written: false,
            })?
            .map_err(unreachable)?;
        // Best effort: one write per direction, but no reason to let Nagle wait either.
        let _ = stream.get_ref().set_nodelay(true);
        let frame = make(&stream).map_err(unreachable)?;
        let broken = |written| {
            move |source| SendError::Broken {
                addr: to,
                source,
                written,
            }
        };
        write_frame(&mut stream, &frame)
            .await
            .map_err(broken(false))?;
        written.store(true, Ordering::Relaxed);
        let reply = read_frame(&mut stream).await.map_err(broken(true))?;
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
    let done = runtime::timeout(EXCHANGE_TIMEOUT, exchange).await;
    done.unwrap_or_else(|_| {
        Err(SendError::Timeout {
            addr: to,
            written: written.load(Ordering::Relaxed),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::new_id;
    use std::net::Ipv4Addr;

    fn refusal(re: Option<MessageId>, code: ErrorCode) -> ReplyBody {
        ReplyBody::new(re, Outcome::error(code, "no"))
    }

    #[test]
    fn a_signed_refusal_of_a_session_request_must_name_it() {
        let id = new_id();
        assert!(refuses(&refusal(Some(id), ErrorCode::UnknownSession), id));
        let other = refusal(Some(new_id()), ErrorCode::UnknownSession);
        assert!(!refuses(&other, id), "another request's refusal");
        // A refusal naming no id may be ours (a sealed request's id cannot be read): its
        // digest decides, in answer_to.
        assert!(refuses(&refusal(None, ErrorCode::UnknownSession), id));
        for before_reading in [ErrorCode::Busy, ErrorCode::BadFrame] {
            assert!(refuses(&refusal(None, before_reading), id));
        }
        let success = ReplyBody::new(Some(id), Outcome::Ok);
        assert!(
            !refuses(&success, id),
            "a success is never signed in a session"
        );
    }

    fn signed(
        re: Option<MessageId>,
        re_digest: Option<RequestDigest>,
        result: Outcome,
    ) -> Envelope<ReplyBody> {
        let from = crate::wire::PeerInfo {
            name: "bob".parse().expect("a valid name"),
            addr: "127.0.0.1:2".parse().expect("an address"),
            key: crate::identity::Identity::generate().public(),
        };
        let body = ReplyBody {
            re,
            re_digest,
            result,
        };
        Envelope::new(new_id(), from, body)
    }

    #[test]
    fn a_signed_reply_counts_only_for_the_frame_it_names() {
        let (to, id) = ("127.0.0.1:2".parse().unwrap(), new_id());
        let (ours, theirs) = (
            RequestDigest::of(b"our frame"),
            RequestDigest::of(b"theirs"),
        );
        let key = crate::identity::Identity::generate().public();
        let answer =
            |re, digest, result| answer_to(to, (id, Some(ours)), signed(re, digest, result), key);
        assert!(answer(Some(id), Some(ours), Outcome::Ok).is_ok());
        // Another request under our id (an attacker's, made with the id it saw go by).
        let taken = Outcome::error(ErrorCode::NameTaken, "taken");
        let swapped = answer(Some(id), Some(theirs), taken.clone());
        assert!(
            matches!(swapped, Err(SendError::BadReply { .. })),
            "{swapped:?}"
        );
        assert!(matches!(
            answer(Some(id), None, taken),
            Err(SendError::BadReply { .. })
        ));
        // A refusal of a frame the receiver could not read whole names none.
        let busy = Outcome::error(ErrorCode::Busy, "busy");
        assert!(matches!(
            answer(None, None, busy.clone()),
            Err(SendError::Refused { .. })
        ));
        let not_ours = answer(None, Some(theirs), busy);
        assert!(matches!(not_ours, Err(SendError::BadReply { .. })));
        // Any other refusal naming nothing is one the receiver never sends that way.
        let unnamed = answer(None, None, Outcome::error(ErrorCode::NameTaken, "taken"));
        assert!(matches!(unnamed, Err(SendError::BadReply { .. })));
    }

    /// Whether a failed exchange may have been read by the receiver: not when nobody
    /// listens, but yes when the frame was written whole and the answer never came.
    #[test]
    fn a_failure_says_whether_the_frame_was_written_first() {
        use std::io::Read;
        let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = nobody.local_addr().unwrap();
        drop(nobody);
        for from in [None, Some(Ipv4Addr::new(127, 0, 0, 9).into())] {
            let failed = runtime::block_on(exchange(from, dead, b"Sframe".to_vec())).unwrap_err();
            assert!(
                matches!(failed, SendError::Unreachable { .. }),
                "{failed:?}"
            );
            assert!(!failed.after_writing());
        }

        // A receiver that reads the whole frame, then closes without a word.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut frame = [0u8; 4 + 6];
            stream.read_exact(&mut frame).unwrap();
            frame
        });
        let failed = runtime::block_on(exchange(None, addr, b"Sframe".to_vec())).unwrap_err();
        assert_eq!(&reader.join().unwrap()[4..], b"Sframe", "read whole");
        assert!(
            matches!(failed, SendError::Broken { written: true, .. }),
            "{failed:?}"
        );
        assert!(failed.after_writing());
    }

    /// A program that listens on one address of a host with several sends from it too: on
    /// loopback the route to 127.0.0.1 would otherwise pick 127.0.0.1 as the source.
    #[test]
    fn a_connection_leaves_from_the_address_given() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let (mut stream, from) = listener.accept().unwrap();
            let mut frame = [0u8; 4 + 6];
            stream.read_exact(&mut frame).unwrap();
            from.ip()
        });
        let here = Ipv4Addr::new(127, 0, 0, 9);
        let sent = runtime::block_on(exchange(Some(here.into()), addr, b"Sframe".to_vec()));
        assert!(sent.is_err(), "the reader closes without a reply");
        assert_eq!(reader.join().unwrap(), here);
    }
}
