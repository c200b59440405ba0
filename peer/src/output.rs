//! Everything the peer prints, in one place.
//!
//! Each [`Notice`] is one event, printed as one line (a listing: a header line and one line
//! per entry) and flushed at once. The wording is part of the interface: README.md documents
//! every line and scripts match on it, so change it only with the README.
//!
//! Text from the network is hostile: a chat line could carry terminal escape sequences or a
//! newline that forges a second event. Every field that can hold such text (chat text, error
//! details) is therefore displayed through [`printable`], which escapes control and
//! bidirectional-override characters. Names and addresses are validated on arrival.

use std::borrow::Cow;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

use once_cell::sync::Lazy;
use p2p_shared::{PeerInfo, PeerName};

use crate::command::HELP;

/// One thing the user should see.
#[derive(Debug)]
pub enum Notice {
    Listening {
        name: PeerName,
        addr: SocketAddr,
    },
    Registered {
        name: PeerName,
        addr: SocketAddr,
    },
    Peers(Vec<PeerInfo>),
    LeftNetwork,
    RequestSent {
        peer: PeerName,
        addr: SocketAddr,
    },
    RequestAccepted {
        peer: PeerName,
        addr: SocketAddr,
    },
    RequestDeclined {
        peer: PeerName,
    },
    RequestTimedOut {
        peer: PeerName,
    },
    RequestArrived {
        peer: PeerName,
        addr: SocketAddr,
        expires_in: Duration,
    },
    AcceptedChat {
        peer: PeerName,
        addr: SocketAddr,
    },
    DeclinedChat {
        peer: PeerName,
    },
    RequestExpired {
        peer: PeerName,
    },
    Delivered {
        peer: PeerName,
    },
    Message {
        peer: PeerName,
        text: String,
    },
    Connected(Vec<PeerInfo>),
    Disconnected {
        peer: PeerName,
    },
    PeerDisconnected {
        peer: PeerName,
    },
    Help,
    Bye,
    Error(String),
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Listening { name, addr } => write!(f, "{name} listening on {addr}"),
            Notice::Registered { name, addr } => write!(f, "registered as {name} at {addr}"),
            Notice::Peers(peers) => listing(f, "peers", "peer", peers),
            Notice::LeftNetwork => write!(f, "left the network"),
            Notice::RequestSent { peer, addr } => {
                write!(
                    f,
                    "chat request sent to {peer} ({addr}), waiting for an answer"
                )
            }
            Notice::RequestAccepted { peer, addr } => {
                write!(f, "chat accepted by {peer} ({addr})")
            }
            Notice::RequestDeclined { peer } => write!(f, "chat declined by {peer}"),
            Notice::RequestTimedOut { peer } => write!(f, "chat request to {peer} timed out"),
            Notice::RequestArrived {
                peer,
                addr,
                expires_in,
            } => write!(
                f,
                "chat request from {peer} ({addr}): answer yes or no (expires in {}s)",
                expires_in.as_secs_f64().round()
            ),
            Notice::AcceptedChat { peer, addr } => {
                write!(f, "accepted chat with {peer} ({addr})")
            }
            Notice::DeclinedChat { peer } => write!(f, "declined chat request from {peer}"),
            Notice::RequestExpired { peer } => write!(f, "chat request from {peer} expired"),
            Notice::Delivered { peer } => write!(f, "delivered to {peer}"),
            Notice::Message { peer, text } => write!(f, "{peer}: {}", printable(text)),
            Notice::Connected(peers) => listing(f, "connected peers", "connected", peers),
            Notice::Disconnected { peer } => write!(f, "disconnected from {peer}"),
            Notice::PeerDisconnected { peer } => write!(f, "{peer} disconnected"),
            Notice::Help => f.write_str(HELP.trim_end()),
            Notice::Bye => write!(f, "bye"),
            // Errors may quote the other side's words.
            Notice::Error(why) => write!(f, "error: {}", printable(why)),
        }
    }
}

fn listing(f: &mut fmt::Formatter<'_>, header: &str, tag: &str, peers: &[PeerInfo]) -> fmt::Result {
    write!(f, "{header}: {}", peers.len())?;
    for p in peers {
        write!(f, "\n{tag} {} {}", p.name, p.addr)?;
    }
    Ok(())
}

/// Whether a person is typing: then a prompt helps; in a pipe it is noise.
static INTERACTIVE: Lazy<bool> = Lazy::new(|| std::io::stdin().is_terminal());

/// Prints a notice and flushes it.
pub fn show(notice: Notice) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not stop the peer: its chats still need a clean goodbye.
    let _ = writeln!(out, "{notice}");
    let _ = out.flush();
}

/// Shows an error.
pub fn error(why: impl fmt::Display) {
    show(Notice::Error(why.to_string()));
}

/// Prints the prompt, when a person is typing.
pub fn prompt() {
    if *INTERACTIVE {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, ">> ");
        let _ = out.flush();
    }
}

/// `text` with control characters and bidirectional overrides written as `\u{..}` escapes.
pub fn printable(text: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut clean = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            clean.extend(c.escape_unicode());
        } else {
            clean.push(c);
        }
    }
    Cow::Owned(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_cannot_forge_lines_or_drive_the_terminal() {
        assert_eq!(printable("héllo  wörld 你好 🎉"), "héllo  wörld 你好 🎉");
        assert_eq!(printable("hi\nbob: fake"), "hi\\u{a}bob: fake");
        assert_eq!(printable("\u{1b}[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(printable("abc\u{202e}def"), "abc\\u{202e}def");
        let forged = Notice::Message {
            peer: "alice".parse().unwrap(),
            text: "hi\nbob: fake".into(),
        };
        assert_eq!(forged.to_string(), "alice: hi\\u{a}bob: fake");
        assert_eq!(Notice::Error("x\ny".into()).to_string(), "error: x\\u{a}y");
    }

    #[test]
    fn listings_have_a_counted_header() {
        let peers = vec![PeerInfo {
            name: "bob".parse().unwrap(),
            addr: "127.0.0.1:2".parse().unwrap(),
        }];
        assert_eq!(
            Notice::Peers(peers.clone()).to_string(),
            "peers: 1\npeer bob 127.0.0.1:2"
        );
        assert_eq!(
            Notice::Connected(peers).to_string(),
            "connected peers: 1\nconnected bob 127.0.0.1:2"
        );
        assert_eq!(Notice::Connected(vec![]).to_string(), "connected peers: 0");
    }

    #[test]
    fn expiry_is_shown_in_whole_seconds() {
        let n = Notice::RequestArrived {
            peer: "alice".parse().unwrap(),
            addr: "127.0.0.1:1".parse().unwrap(),
            expires_in: Duration::from_secs(60),
        };
        assert_eq!(
            n.to_string(),
            "chat request from alice (127.0.0.1:1): answer yes or no (expires in 60s)"
        );
    }
}
