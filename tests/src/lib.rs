//! Harness for the p2p-chat end-to-end tests.
//!
//! The tests in `tests/tests/e2e/` start the real `p2p-server` and `p2p-peer` binaries on
//! loopback ports chosen at run time, type commands into the peers' stdin and read the lines
//! they print, exactly as a script would (stdin is not a terminal, so there are no prompts).
//! They run as one test executable, so that its tests run side by side.
//!
//! - [`proc`]: one program, through the kit the bench shares (`p2p_kit`: building the
//!   programs with the test's profile into its target folder, driving them through pipes,
//!   data folders); an expectation that fails shows what the program printed last.
//! - [`programs`]: [`Server`] and [`Peer`], and the steps a test takes with them;
//!   [`json_peer`]: [`JsonPeer`], a peer driven with `--json` as a bot drives it.
//! - [`netns`]: [`TestLan`], network namespaces on a bridge for the `--lan` tests (mDNS
//!   never leaves them);
//! - [`wire`]: the wire protocol spoken directly, for hostile bytes: [`Signer`] makes signed
//!   envelopes with a key of its own (or forges them in someone else's name), [`request`]
//!   and [`assert_refused`] read the signed replies.
//! - [`raw_peer`]: [`RawPeer`] runs a whole chat handshake and sends sealed frames of its
//!   choice; [`proxy`]: [`Proxy`] sits between two programs and records every byte.
//!
//! - [`etcd`]: [`Etcd`], a real etcd on loopback, for the registry's shared store.
//!
//! Nothing here sleeps to synchronise: stdout and stderr are read by background threads
//! into channels, and every wait is for the line the test expects, with a deadline.

pub mod etcd;
pub mod json_peer;
pub mod netns;
pub mod proc;
pub mod programs;
pub mod proxy;
pub mod raw_peer;
pub mod wire;

pub use etcd::Etcd;
pub use json_peer::JsonPeer;
pub use netns::TestLan;
pub use p2p_shared::identity::{Identity, PublicKey};
pub use proc::{binary, DataDir, Proc, Stream, EXPECT_TIMEOUT};
pub use programs::*;
pub use proxy::*;
pub use raw_peer::*;
pub use serde_json::{json, Value};
pub use wire::*;
