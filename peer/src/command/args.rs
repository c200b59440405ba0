//! How each argument of a command is read: a name, a port, `HOST:PORT`, a fingerprint, the
//! rest of the line; each refusal says what was typed and shows the command's usage.
//!
//! Separate from [`super::parse`], which knows the commands and their words: this knows
//! only what one argument may be.

use std::fmt;

use p2p_shared::wire::MAX_TEXT_LEN;
use p2p_shared::PeerName;

use super::{ParseError, TRUST};

/// The refusal of an argument: what is wrong, then the usage of the command.
pub(super) fn usage(what: impl fmt::Display, usage: &str) -> ParseError {
    ParseError {
        message: format!("{what}; usage: {usage}"),
        unknown_command: false,
    }
}

pub(super) fn fingerprint_arg(typed: &str) -> Result<String, ParseError> {
    p2p_shared::identity::PublicKey::parse_fingerprint(typed).ok_or_else(|| {
        usage(
            format!("{typed:?} is not a key fingerprint (32 hex digits, as whoami prints them)"),
            TRUST,
        )
    })
}

/// `HOST:PORT` (or `[V6]:PORT`) as one word.
pub(super) fn split_host_port(word: &str, usage_of: &str) -> Result<(String, u16), ParseError> {
    match word.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => {
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            Ok((host, port_arg(port, usage_of)?))
        }
        _ => Err(usage(format!("{word:?} has no :PORT"), usage_of)),
    }
}

pub(super) fn port_arg(word: &str, usage_of: &str) -> Result<u16, ParseError> {
    word.parse::<std::num::NonZeroU16>()
        .map(|port| port.get())
        .map_err(|_| usage(format!("{word:?} is not a port number (1-65535)"), usage_of))
}

pub(super) fn name_arg(word: &str, usage_of: &str) -> Result<PeerName, ParseError> {
    word.parse()
        .map_err(|e| usage(format!("{word:?} is not a valid name: {e}"), usage_of))
}

/// A broadcast goes to the whole network once, so it is not split like a chat message: a
/// longer one is refused, with its size.
pub(super) fn broadcast_text(text: &str) -> Result<String, ParseError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(ParseError {
            message: format!(
                "a broadcast has at most {MAX_TEXT_LEN} bytes, this one has {}",
                text.len()
            ),
            unknown_command: false,
        });
    }
    Ok(text.to_string())
}

/// The line after its first `n` words and the blanks that follow them: the rest of the line
/// exactly as typed, inner spaces included.
pub(super) fn rest_after(line: &str, n: usize) -> &str {
    let mut rest = line;
    for _ in 0..n {
        rest = rest.trim_start();
        rest = &rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..];
    }
    rest.trim_start()
}
