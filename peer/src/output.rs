//! Everything the peer prints, in one place.
//!
//! Each [`Notice`] is one event or one command result. It is printed in one of three ways:
//!
//! - plain text (the default): one line per event (a listing: a counted header line, then one
//!   line per entry). This wording is an interface: README.md documents every line, scripts
//!   match on it, so change it only together with the README;
//! - JSON (`--json`): one object per line, `{"event": "...", ...}`, described in docs/json.md;
//! - painted, for a person at a terminal: the plain text with colours (unless `NO_COLOR` is
//!   set) and, at an interactive prompt, a local timestamp on chat lines.
//!
//! While rustyline owns the terminal, lines go through its external printer, which prints
//! them above the prompt and redraws the half-typed line; otherwise straight to stdout,
//! flushed per line. The external printer can block (it hands each line to the editor thread
//! through a one-slot channel, and the editor serves keystrokes first), so it runs on a
//! printing thread of its own: the network and the session never wait on the terminal.
//!
//! Text from the network is hostile: a chat line could carry terminal escape sequences or a
//! newline that forges a second event. Every field that can hold such text (chat text, error
//! messages) is displayed through [`printable`], which escapes control and
//! bidirectional-override characters. Names and addresses are validated on arrival. JSON
//! needs no such care: serde_json escapes control characters itself.

use std::borrow::Cow;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::mpsc::{self, SyncSender};
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use chrono::{DateTime, Local, Utc};
use once_cell::sync::OnceCell;
use p2p_shared::identity::PublicKey;
use p2p_shared::transport::SendError;
use p2p_shared::{PeerInfo, PeerName};
use rustyline::ExternalPrinter;
use serde::{Serialize, Serializer};

/// One thing the user should see.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Notice {
    Listening {
        name: PeerName,
        addr: SocketAddr,
    },
    Registered {
        name: PeerName,
        addr: SocketAddr,
    },
    Peers {
        peers: Vec<PeerInfo>,
    },
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
    RequestAbandoned {
        peer: PeerName,
    },
    RequestArrived {
        peer: PeerName,
        addr: SocketAddr,
        #[serde(rename = "expires_in_ms", serialize_with = "millis")]
        expires_in: Duration,
        fingerprint: String,
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
        /// When it arrived.
        at: DateTime<Utc>,
    },
    Connected {
        peers: Vec<PeerInfo>,
    },
    Disconnected {
        peer: PeerName,
    },
    PeerDisconnected {
        peer: PeerName,
    },
    Status(Status),
    History {
        peer: PeerName,
        lines: Vec<crate::history::Line>,
    },
    /// A chat partner stopped answering; the chat is closed.
    PeerGone {
        peer: PeerName,
        why: String,
    },
    /// The registry is back, and we are registered there again.
    Reregistered {
        name: PeerName,
        addr: SocketAddr,
    },
    /// A peer presented another key than the one pinned for its name.
    KeyChanged {
        peer: PeerName,
        pinned: String,
        offered: String,
    },
    Whoami {
        name: PeerName,
        key: PublicKey,
    },
    Trusted {
        peer: PeerName,
        fingerprint: String,
    },
    Released {
        name: PeerName,
    },
    Help {
        text: String,
    },
    Bye,
    Error {
        message: String,
    },
}

/// What `status` shows.
#[derive(Debug, Serialize)]
pub struct Status {
    pub name: PeerName,
    pub addr: SocketAddr,
    pub registry: SocketAddr,
    pub registry_reachable: bool,
    pub registered: bool,
    pub chats: Vec<PeerInfo>,
    /// Requests waiting for our `yes` or `no`.
    pub incoming: Vec<Waiting>,
    /// Our requests waiting for the other side's answer.
    pub outgoing: Vec<Waiting>,
}

/// A chat request and how long it has left.
#[derive(Debug, Serialize)]
pub struct Waiting {
    pub peer: PeerName,
    pub addr: SocketAddr,
    #[serde(rename = "expires_in_ms", serialize_with = "millis")]
    pub expires_in: Duration,
    /// When an incoming request arrived (the record's timestamp); `None` for our own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX))
}

fn secs(d: &Duration) -> u64 {
    d.as_secs_f64().round() as u64
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Listening { name, addr } => write!(f, "{name} listening on {addr}"),
            Notice::Registered { name, addr } => write!(f, "registered as {name} at {addr}"),
            Notice::Peers { peers } => listing(f, "peers", "peer", peers),
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
            Notice::RequestAbandoned { peer } => {
                write!(
                    f,
                    "chat request to {peer} ended: {peer} left without answering"
                )
            }
            Notice::RequestArrived {
                peer,
                addr,
                expires_in,
                fingerprint,
            } => write!(
                f,
                "chat request from {peer} ({addr}): answer yes or no (expires in {}s), key {fingerprint}",
                secs(expires_in)
            ),
            Notice::AcceptedChat { peer, addr } => {
                write!(f, "accepted chat with {peer} ({addr})")
            }
            Notice::DeclinedChat { peer } => write!(f, "declined chat request from {peer}"),
            Notice::RequestExpired { peer } => write!(f, "chat request from {peer} expired"),
            Notice::Delivered { peer } => write!(f, "delivered to {peer}"),
            Notice::Message { peer, text, .. } => write!(f, "{peer}: {}", printable(text)),
            Notice::Connected { peers } => listing(f, "connected peers", "connected", peers),
            Notice::Disconnected { peer } => write!(f, "disconnected from {peer}"),
            Notice::PeerDisconnected { peer } => write!(f, "{peer} disconnected"),
            Notice::Status(status) => status.fmt(f),
            Notice::History { peer, lines } => {
                write!(f, "history with {peer}: {}", lines.len())?;
                for line in lines {
                    let at = line.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    write!(f, "\n{at} {}: {}", line.sender, printable(&line.text))?;
                }
                Ok(())
            }
            Notice::PeerGone { peer, why } => {
                write!(f, "{peer} is gone ({}); chat closed", printable(why))
            }
            Notice::Reregistered { name, addr } => {
                write!(f, "registered again as {name} at {addr}")
            }
            Notice::KeyChanged {
                peer,
                pinned,
                offered,
            } => write!(
                f,
                "WARNING: {peer} presented key {offered}, but the key known for {peer} is \
                 {pinned}. Someone may be impersonating {peer}; refused. If {peer} really has \
                 a new key, check its fingerprint with {peer} and type: trust {peer}"
            ),
            Notice::Whoami { name, key } => {
                write!(f, "{name} key {} ({key})", key.fingerprint())
            }
            Notice::Trusted { peer, fingerprint } => {
                write!(f, "trusting key {fingerprint} for {peer} from now on")
            }
            Notice::Released { name } => write!(f, "released the name {name}"),
            Notice::Help { text } => f.write_str(text.trim_end()),
            Notice::Bye => write!(f, "bye"),
            // Errors may quote the other side's words.
            Notice::Error { message } => write!(f, "error: {}", printable(message)),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "status: {} listening on {}", self.name, self.addr)?;
        let reach = match (self.registry_reachable, self.registered) {
            (false, _) => "unreachable",
            (true, true) => "reachable, registered",
            (true, false) => "reachable, not registered",
        };
        writeln!(f, "registry {}: {reach}", self.registry)?;
        listing(f, "chats", "chat", &self.chats)?;
        write!(f, "\nincoming requests: {}", self.incoming.len())?;
        for w in &self.incoming {
            let left = secs(&w.expires_in);
            write!(f, "\nrequest from {} {} expires in {left}s", w.peer, w.addr)?;
            if let Some(at) = w.received_at {
                write!(
                    f,
                    " (received {})",
                    at.with_timezone(&Local).format("%H:%M:%S")
                )?;
            }
        }
        write!(f, "\noutgoing requests: {}", self.outgoing.len())?;
        for w in &self.outgoing {
            let left = secs(&w.expires_in);
            write!(f, "\nrequest to {} {} gives up in {left}s", w.peer, w.addr)?;
        }
        Ok(())
    }
}

fn listing(f: &mut fmt::Formatter<'_>, header: &str, tag: &str, peers: &[PeerInfo]) -> fmt::Result {
    write!(f, "{header}: {}", peers.len())?;
    for p in peers {
        write!(
            f,
            "\n{tag} {} {} key {}",
            p.name,
            p.addr,
            p.key.fingerprint()
        )?;
    }
    Ok(())
}

/// One line saying why a request to `whom` failed.
pub fn failure(e: &SendError, whom: &str) -> String {
    match e {
        SendError::Unreachable { source, .. } => {
            // Plain OS errors read best as their kind ("connection refused").
            let why = match source.get_ref() {
                Some(_) => source.to_string(),
                None => source.kind().to_string(),
            };
            format!("cannot reach {whom}: {why}")
        }
        SendError::Timeout { .. } => format!("{whom} did not answer in time"),
        SendError::Broken { source, .. } => format!("the connection to {whom} failed: {source}"),
        SendError::BadReply { reason, .. } => format!("{whom} sent an invalid reply: {reason}"),
        SendError::Refused { detail, .. } => format!("{whom} refused: {detail}"),
    }
}

/// How notices are rendered; fixed at start-up.
#[derive(Clone, Copy, Debug, Default)]
struct Rendering {
    json: bool,
    color: bool,
    timestamps: bool,
}

static RENDERING: OnceCell<Rendering> = OnceCell::new();
static PRINTER: OnceCell<SyncSender<ToPrint>> = OnceCell::new();

/// Lines waiting for the printing thread at most; beyond, `show` waits.
const PRINT_QUEUE: usize = 1024;

enum ToPrint {
    Line(String),
    /// Answered once every line before it is out.
    Flush(SyncSender<()>),
}

/// Chooses the rendering once, at start-up: JSON if asked; otherwise colours when stdout is a
/// terminal and `NO_COLOR` is unset, and timestamps on chat lines at an interactive prompt.
pub fn init(json: bool, interactive: bool) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let _ = RENDERING.set(Rendering {
        json,
        color: !json && !no_color && std::io::stdout().is_terminal(),
        timestamps: !json && interactive,
    });
}

/// From now on, print through rustyline's external printer (above the prompt), on a thread
/// of its own.
pub fn use_printer(mut printer: impl ExternalPrinter + Send + 'static) -> std::io::Result<()> {
    let (tx, rx) = mpsc::sync_channel(PRINT_QUEUE);
    std::thread::Builder::new()
        .name("printer".into())
        .spawn(move || {
            for item in rx {
                match item {
                    ToPrint::Line(text) => {
                        if printer.print(format!("{text}\n")).is_err() {
                            // The prompt is gone (input ended): plain stdout from here on.
                            to_stdout(&text);
                        }
                    }
                    ToPrint::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        })?;
    let _ = PRINTER.set(tx);
    Ok(())
}

/// Waits (briefly) until every notice shown so far is printed; call before exiting.
pub fn flush() {
    if let Some(printer) = PRINTER.get() {
        let (done, printed) = mpsc::sync_channel(1);
        if printer.send(ToPrint::Flush(done)).is_ok() {
            let _ = printed.recv_timeout(Duration::from_secs(1));
        }
    }
}

/// Prints a notice.
pub fn show(notice: Notice) {
    let rendering = RENDERING.get().copied().unwrap_or_default();
    let text = if rendering.json {
        // Serializing these plain data types cannot fail.
        serde_json::to_string(&notice).expect("notices always serialize")
    } else {
        paint(&notice, rendering)
    };
    match PRINTER.get() {
        Some(printer) => {
            let _ = printer.send(ToPrint::Line(text));
        }
        None => to_stdout(&text),
    }
}

fn to_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not stop the peer: its chats still need a clean goodbye.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Shows an error.
pub fn error(why: impl fmt::Display) {
    show(Notice::Error {
        message: why.to_string(),
    });
}

/// The plain text, with colours and timestamps where the rendering wants them.
fn paint(notice: &Notice, rendering: Rendering) -> String {
    let paint = |style: Style, text: &str| {
        if rendering.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    };
    let name = Style::new().bold().fg_color(Some(AnsiColor::Cyan.into()));
    match notice {
        Notice::Message { peer, text, at } => {
            let stamp = if rendering.timestamps {
                let local = at.with_timezone(&Local).format("%H:%M:%S");
                format!("{} ", paint(Style::new().dimmed(), &format!("[{local}]")))
            } else {
                String::new()
            };
            format!("{stamp}{}: {}", paint(name, peer.as_str()), printable(text))
        }
        Notice::Error { .. } | Notice::KeyChanged { .. } => paint(
            Style::new().fg_color(Some(AnsiColor::Red.into())),
            &notice.to_string(),
        ),
        Notice::RequestArrived { .. } => paint(
            Style::new().bold().fg_color(Some(AnsiColor::Yellow.into())),
            &notice.to_string(),
        ),
        Notice::RequestAccepted { .. } | Notice::AcceptedChat { .. } => paint(
            Style::new().fg_color(Some(AnsiColor::Green.into())),
            &notice.to_string(),
        ),
        _ => notice.to_string(),
    }
}

/// `text` with control characters, Unicode line and paragraph separators (which many tools
/// split lines on) and bidirectional overrides written as `\u{..}` escapes.
pub fn printable(text: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
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

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    #[test]
    fn hostile_text_cannot_forge_lines_or_drive_the_terminal() {
        assert_eq!(printable("héllo  wörld 你好 🎉"), "héllo  wörld 你好 🎉");
        assert_eq!(printable("\u{1b}[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(printable("abc\u{202e}def"), "abc\\u{202e}def");
        // Python's splitlines() and others split on these: no forged second line either.
        assert_eq!(
            printable("hi\u{2028}alice disconnected"),
            "hi\\u{2028}alice disconnected"
        );
        assert_eq!(printable("a\u{2029}b\u{85}c"), "a\\u{2029}b\\u{85}c");
        let forged = Notice::Message {
            peer: name("alice"),
            text: "hi\nbob: fake".into(),
            at: Utc::now(),
        };
        assert_eq!(forged.to_string(), "alice: hi\\u{a}bob: fake");
        let painted = paint(
            &forged,
            Rendering {
                json: false,
                color: true,
                timestamps: true,
            },
        );
        assert!(!painted.contains('\n'), "{painted:?}");
        let error = Notice::Error {
            message: "x\ny".into(),
        };
        assert_eq!(error.to_string(), "error: x\\u{a}y");
    }

    #[test]
    fn listings_have_a_counted_header() {
        let key = p2p_shared::identity::Identity::generate().public();
        let peers = vec![PeerInfo {
            name: name("bob"),
            addr: "127.0.0.1:2".parse().unwrap(),
            key,
        }];
        let fp = key.fingerprint();
        assert_eq!(
            Notice::Peers {
                peers: peers.clone()
            }
            .to_string(),
            format!("peers: 1\npeer bob 127.0.0.1:2 key {fp}")
        );
        assert_eq!(
            Notice::Connected { peers }.to_string(),
            format!("connected peers: 1\nconnected bob 127.0.0.1:2 key {fp}")
        );
        assert_eq!(
            Notice::Connected { peers: vec![] }.to_string(),
            "connected peers: 0"
        );
    }

    #[test]
    fn expiry_is_shown_in_whole_seconds_and_json_in_milliseconds() {
        let n = Notice::RequestArrived {
            peer: name("alice"),
            addr: "127.0.0.1:1".parse().unwrap(),
            expires_in: Duration::from_secs(60),
            fingerprint: "3f2a:9c1d:77e0:b4a2".into(),
        };
        assert_eq!(
            n.to_string(),
            "chat request from alice (127.0.0.1:1): answer yes or no (expires in 60s), \
             key 3f2a:9c1d:77e0:b4a2"
        );
        let json: serde_json::Value = serde_json::to_value(&n).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"event": "request_arrived", "peer": "alice",
                               "addr": "127.0.0.1:1", "expires_in_ms": 60000,
                               "fingerprint": "3f2a:9c1d:77e0:b4a2"})
        );
    }

    #[test]
    fn json_is_one_line_with_an_event_tag() {
        let n = Notice::Message {
            peer: name("alice"),
            text: "two\nlines \u{1b}".into(),
            at: "2026-11-21T10:00:00Z".parse().unwrap(),
        };
        let line = serde_json::to_string(&n).unwrap();
        assert!(!line.contains('\n'));
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["event"], "message");
        assert_eq!(json["text"], "two\nlines \u{1b}");
        assert_eq!(json["at"], "2026-11-21T10:00:00Z");
        let bye: serde_json::Value = serde_json::to_value(Notice::Bye).unwrap();
        assert_eq!(bye, serde_json::json!({"event": "bye"}));
    }

    #[test]
    fn without_colour_painting_changes_nothing_but_the_timestamp() {
        let n = Notice::Error {
            message: "no".into(),
        };
        assert_eq!(paint(&n, Rendering::default()), "error: no");
    }
}
