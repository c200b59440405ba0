//! The p2p-chat protocol crate, shared by `p2p-server` and `p2p-peer`.
//!
//! Read it bottom-up, like the protocol itself:
//!
//! - [`name`]: what a valid peer name is.
//! - [`wire`]: everything that travels: frames, the envelope, requests and replies.
//! - [`identity`], [`seal`], [`registry_session`], [`replay`]: who signed a message, chats
//!   and registry sessions sealed with keys agreed once, and refusing what was seen before.
//! - [`transport`]: one request and one reply per fresh connection, with timeouts, for both
//!   the sending and the receiving side.
//! - [`runtime`]: the only module that names the async runtime; [`signals`]: Ctrl-C, SIGTERM
//!   and SIGHUP, to stop cleanly.
//! - [`printable`]: text from the network escaped for a terminal or a log, the same way by
//!   both programs.
//! - [`private`]: a data folder and its files readable by their owner only.
//! - [`record`]: a peer's signed record of its name, address and key, for peer exchange;
//!   [`broadcast`]: a public message signed by its origin, passed on by every peer.
//! - [`environment`] (feature `cli`): the programs' environment variables, one prefix each;
//!   [`reachable`] (feature `cli`): the addresses to give to others, shown at start;
//!   [`duration`]: parsing of durations given on the command line (`2s`, `5m`);
//!   [`clock`]: the time, the system's or one a test moves; [`prefix`]: the network an
//!   address is counted in, for budgets.
//!
//! The wire format is written down in `docs/protocol.md`; this crate is its reference
//! implementation, and the two change together.

pub mod broadcast;
pub mod clock;
pub mod duration;
#[cfg(feature = "cli")]
pub mod environment;
pub mod handshake;
pub mod identity;
pub mod name;
pub mod prefix;
pub mod printable;
pub mod private;
#[cfg(feature = "cli")]
pub mod reachable;
pub mod record;
pub mod registry_session;
pub mod replay;
pub mod runtime;
pub mod seal;
pub mod signals;
pub mod transport;
pub mod wire;

pub use name::PeerName;
pub use wire::{
    Answer, Envelope, ErrorCode, MessageId, Outcome, PeerInfo, PeerRequest, RegistryRequest,
    ReplyBody, SealedRequest, PROTOCOL_VERSION,
};
