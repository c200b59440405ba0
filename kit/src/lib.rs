//! The kit the end-to-end tests (`tests/`) and the bench (`bench/`) share: both start the real
//! `p2p-server` and `p2p-peer` and drive them through pipes, exactly as a script would.
//!
//! - [`bins`]: building the two programs, with the profile and into the target folder of the
//!   executable that asks, and finding them there;
//! - [`child`]: one program as a child process: its stdin, its stdout lines stamped with the
//!   instant they were read, its log, a transcript for failure messages, an stdout that can
//!   be left unread on purpose;
//! - [`scratch`]: folders for the programs' data, removed when dropped.
//!
//! Everything here returns errors rather than panicking: the tests turn them into failures
//! with the program's transcript, the bench into an error for the run.

pub mod bins;
pub mod child;
pub mod scratch;

/// What went wrong, as one message: for a program, with what it printed last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error(message)
    }
}

pub use bins::Bins;
pub use child::{Child, Line, Stream};
pub use scratch::Scratch;

/// The variables of this environment that the programs read (README, "Command line"): every
/// `P2P_...` (each program's own, `P2P_PEER_...` and `P2P_REGISTRY_...`, and the names of
/// before, which they still read), and `RUST_LOG`, `RUST_BACKTRACE` and `NO_COLOR`. Cleared
/// for every program started here, so that the environment of whoever runs the tests or the
/// bench cannot change what they start, print or measure; a rule rather than a list, so that
/// a variable added later is cleared too.
pub fn p2p_env() -> Vec<std::ffi::OsString> {
    const OTHERS: [&str; 3] = ["RUST_LOG", "RUST_BACKTRACE", "NO_COLOR"];
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| {
            let name = name.to_string_lossy();
            name.starts_with("P2P_") || OTHERS.contains(&name.as_ref())
        })
        .collect()
}
