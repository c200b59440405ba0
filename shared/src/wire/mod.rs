//! The wire protocol, in the order docs/protocol.md tells it:
//!
//! - [`stream`]: how one frame is cut out of a TCP byte stream (a length prefix, a hard size
//!   limit);
//! - [`frame`]: the frame table, what a frame's first byte says it holds and where its parts
//!   are;
//! - [`envelope`]: the envelope around every message, its sender ([`PeerInfo`]) and its
//!   signature;
//! - [`request`]: the requests, typed by who receives them;
//! - [`reply`]: the reply every request gets, its [`Outcome`] and the error codes.
//!
//! This module and docs/protocol.md change together; the version is [`PROTOCOL_VERSION`].

pub mod envelope;
pub mod frame;
pub mod reply;
pub mod request;
pub mod stream;

pub use envelope::{
    new_id, DecodeError, Envelope, MessageId, PeerInfo, SignedEnvelope, PROTOCOL_VERSION,
};
pub use reply::{
    EncodedReply, ErrorCode, Outcome, ReplyBody, RequestDigest, MAX_DETAIL_LEN, PEERS_PAGE_LEN,
};
pub use request::{Answer, PeerRequest, RegistryRequest, Request, SealedRequest, MAX_TEXT_LEN};
