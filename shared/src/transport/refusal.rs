//! Why a receiver refuses a request: the [`Refusal`]s, the error code each is answered with,
//! and the one word each is logged as.
//!
//! Apart from `server.rs`, which does the refusing, because a log line and a reply are made
//! of these: a refusal's text may quote the sender's bytes, so the log takes its kind instead
//! (`Refusal::kind`), and the reply its code.

use std::net::SocketAddr;
use std::time::Duration;

use super::pace::FIRST_BYTES;
use crate::replay::Stale;
use crate::wire::stream::FrameError;
use crate::wire::{DecodeError, ErrorCode, MessageId};

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
    #[error("no frame header within {}s", FIRST_BYTES.as_secs())]
    NoHeader,
    #[error("a frame of {len} bytes did not arrive within {}s of its header", deadline.as_secs())]
    SlowBody { len: usize, deadline: Duration },
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
    /// A frame that opens with the keys of a chat that ended here, not seen before: its
    /// partner sealed it before it heard of the end (a goodbye and a check that crossed).
    /// Answered as [`Refusal::UnknownSession`] is; only the receiver's log tells them apart.
    #[error("its chat has ended here")]
    Ended,
    #[error("it names another sender than the one its session was agreed with")]
    WrongSender,
    #[error("unknown frame kind")]
    UnknownKind,
    #[error("too many connections from this address or its network at once; try again later")]
    Busy,
    /// A chat message the receiver opened but cannot take now: it could not store one that
    /// shows only once stored, or a later try of it took its place while it waited for its
    /// turn. Its sender tries again (`busy`). Signed, so rare paths cost a signature and every
    /// message only its one sealed `ok`.
    #[error("the receiver cannot take the message now; try again")]
    NotNow,
}

impl Refusal {
    /// What kind of refusal this is, in a word chosen here. A log line says this and not the
    /// refusal's text: that quotes the sender's bytes (serde_json's errors quote an unknown
    /// field or variant), and a sender must not be able to write the receiver's log.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Frame(FrameError::Closed) => "no_frame",
            Refusal::Frame(FrameError::Empty) => "empty_frame",
            Refusal::Frame(FrameError::TooLarge(_)) => "frame_too_large",
            Refusal::Frame(FrameError::Truncated) => "truncated_frame",
            Refusal::Frame(FrameError::Io(_)) => "read_failed",
            Refusal::Decode(DecodeError::Malformed(_)) => "malformed",
            Refusal::Decode(DecodeError::NotSigned) => "not_signed",
            Refusal::Decode(DecodeError::Version(_)) => "unsupported_version",
            Refusal::Decode(DecodeError::Elsewhere(_)) => "unsupported_request",
            Refusal::NoHeader => "no_header_in_time",
            Refusal::SlowBody { .. } => "slow_body",
            Refusal::AddressMismatch { .. } => "address_mismatch",
            Refusal::BadSignature => "bad_signature",
            Refusal::Stale(Stale::Skewed) => "skewed",
            Refusal::Stale(Stale::Replayed) => "replayed",
            Refusal::Stale(Stale::Full) => "replay_cache_full",
            Refusal::UnknownSession => "unknown_session",
            Refusal::Ended => "ended_session",
            Refusal::WrongSender => "wrong_sender",
            Refusal::UnknownKind => "unknown_frame_kind",
            Refusal::Busy => "busy",
            Refusal::NotNow => "not_now",
        }
    }

    pub(super) fn code(&self) -> ErrorCode {
        match self {
            Refusal::Frame(_)
            | Refusal::NoHeader
            | Refusal::SlowBody { .. }
            | Refusal::UnknownKind => ErrorCode::BadFrame,
            Refusal::Decode(e) => e.code(),
            Refusal::AddressMismatch { .. } => ErrorCode::AddressMismatch,
            Refusal::BadSignature => ErrorCode::BadSignature,
            Refusal::Stale(Stale::Full) => ErrorCode::Busy,
            Refusal::Stale(_) => ErrorCode::Stale,
            Refusal::UnknownSession | Refusal::Ended => ErrorCode::UnknownSession,
            Refusal::WrongSender => ErrorCode::BadMessage,
            Refusal::Busy | Refusal::NotNow => ErrorCode::Busy,
        }
    }
}
