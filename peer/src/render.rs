//! How an [`Event`] looks: a line of text, painted for a terminal, or a JSON object.
//!
//! - Plain text (the default): one line per event (a listing: a counted header line, then
//!   one line per entry). This wording is an interface: README.md documents every line and
//!   scripts match on it, so change it only together with the README.
//! - Painted, for a person at a terminal: the plain text with colours (unless `NO_COLOR` is
//!   set) and, at an interactive prompt, a local timestamp on chat lines.
//! - JSON (`--json`): one object per line, `{"event": "...", ...}` (docs/json.md).
//!
//! Text from the network is hostile: a chat line could carry terminal escape sequences or a
//! newline that forges a second event. Every field that can hold such text (chat text, error
//! messages) is displayed through [`printable`] (shared with the registry's log), which
//! escapes control, bidirectional and invisible characters. Names and addresses are validated
//! on arrival. In JSON, serde_json escapes control characters itself, and [`json_line`]
//! escapes the three line breaks it leaves raw.

use std::fmt;

use anstyle::{AnsiColor, Style};
use chrono::Local;
use p2p_shared::printable::printable;

use crate::event::{Event, Shown, Withdrawal};
use listings::{book, contact_list, listing, nearby};

mod listings;

/// How events are rendered; chosen once, at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendering {
    Json,
    /// `interactive`: a person at a terminal, who gets timestamps on chat lines and a
    /// message of several lines as indented lines (escaped everywhere else).
    Text {
        color: bool,
        interactive: bool,
    },
}

impl Rendering {
    /// The text (or JSON) of `shown`, without a line ending. Only JSON carries the id of the
    /// command it answers: a person sees which command an answer follows.
    pub fn render(self, shown: &Shown) -> String {
        match self {
            Rendering::Json => json_line(shown),
            Rendering::Text { color, interactive } => paint(&shown.event, color, interactive),
        }
    }
}

/// `event` as one line of JSON. serde_json escapes control characters but leaves U+2028,
/// U+2029 and U+0085 raw, as JSON allows; JavaScript before ES2019 does not allow the first
/// two in a string, and some line readers (Python's `splitlines()`, JavaScript's line
/// terminators) break a line on them, so a chat text could split one event into two. They
/// can only occur inside strings, so escaping them in the finished text is exact.
fn json_line(shown: &Shown) -> String {
    // Serializing these plain data types cannot fail.
    let json = serde_json::to_string(shown).expect("events always serialize");
    if !json.contains(['\u{2028}', '\u{2029}', '\u{85}']) {
        return json;
    }
    json.replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
        .replace('\u{85}', "\\u0085")
}

fn secs(d: &std::time::Duration) -> u64 {
    d.as_secs_f64().round() as u64
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Listening { name, addr } => write!(f, "{name} listening on {addr}"),
            Event::Reachable { reach } => write!(f, "{reach}"),
            Event::Registered { name, addr } => write!(f, "registered as {name} at {addr}"),
            Event::Peers { peers } => listing(f, "peers", "peer", peers),
            Event::ListingCut { shown } => write!(
                f,
                "the registry lists more peers; showing the first {shown} (the most a listing keeps)"
            ),
            Event::LeftNetwork => write!(f, "left the network"),
            Event::RequestSent {
                peer,
                addr,
                verified,
                ..
            } => write!(
                f,
                "chat request sent to {peer}{} ({addr}), waiting for an answer",
                unverified(*verified)
            ),
            Event::RequestAccepted { peer, addr, .. } => {
                write!(f, "chat accepted by {peer} ({addr})")
            }
            Event::RequestDeclined { peer } => write!(f, "chat declined by {peer}"),
            Event::RequestTimedOut { peer } => write!(f, "chat request to {peer} timed out"),
            Event::RequestAbandoned { peer } => write!(
                f,
                "chat request to {peer} ended: {peer} left without answering"
            ),
            Event::RequestSettled { peer } => write!(
                f,
                "chat request to {peer} settled: a chat with {peer} is open"
            ),
            Event::RequestReplaced { peer } => {
                write!(f, "chat request to {peer} replaced by a newer one")
            }
            Event::RequestDropped { peer } => {
                write!(f, "chat request to {peer} dropped: exiting")
            }
            Event::RequestArrived {
                peer,
                addr,
                expires_in,
                key,
                verified,
                unanswered,
            } => write!(
                f,
                "chat request from {peer}{} ({addr}): answer yes or no (expires in {}s), \
                 key {}",
                match unanswered {
                    true => " (unverified: the registry did not answer)",
                    false => unverified(*verified),
                },
                secs(expires_in),
                key.fingerprint()
            ),
            Event::AcceptedChat { peer, addr, .. } => {
                write!(f, "accepted chat with {peer} ({addr})")
            }
            Event::DeclinedChat { peer } => write!(f, "declined chat request from {peer}"),
            Event::RequestExpired { peer } => write!(f, "chat request from {peer} expired"),
            Event::RequestWithdrawn {
                peer,
                why: Withdrawal::Settled,
            } => write!(
                f,
                "chat request from {peer} settled: a chat with {peer} is open"
            ),
            Event::RequestWithdrawn {
                peer,
                why: Withdrawal::Replaced,
            } => write!(f, "chat request from {peer} replaced by a newer one"),
            Event::RequestWithdrawn {
                peer,
                why: Withdrawal::Left,
            } => write!(f, "chat request from {peer} withdrawn: {peer} left"),
            Event::RequestUnanswered { peer } => {
                write!(f, "chat request from {peer} left unanswered: exiting")
            }
            Event::Delivered { peer } => write!(f, "delivered to {peer}"),
            Event::Message { peer, text, .. } => write!(f, "{peer}: {}", printable(text)),
            Event::Connected { peers, away } => {
                write!(f, "connected peers: {}", peers.len() + away.len())?;
                for (p, mark) in peers.iter().map(|p| (p, "")).chain(away.iter().map(|p| (p, " (away)"))) {
                    let fingerprint = p.key.fingerprint();
                    write!(f, "\nconnected {} {} key {fingerprint}{mark}", p.name, p.addr)?;
                }
                Ok(())
            }
            Event::Joined {
                peer,
                addr,
                learned,
                ..
            } => write!(
                f,
                "joined {peer} at {addr}: {learned} new {}",
                if *learned == 1 { "peer" } else { "peers" }
            ),
            Event::KnownPeers { peers } => book(f, peers),
            Event::Nearby { peers } => nearby(f, peers),
            Event::Graph { graph, json: false } => f.write_str(&graph.dot()),
            Event::Graph { graph, json: true } => {
                let json = serde_json::to_string(graph).map_err(|_| fmt::Error)?;
                f.write_str(&json)
            }
            Event::NearbyFound {
                peer,
                addr,
                key,
                verified,
            } => write!(
                f,
                "found {peer}{} on the LAN at {addr} key {}",
                unverified(*verified),
                key.fingerprint()
            ),
            Event::NearbyGone { peer, why, .. } => {
                write!(f, "{peer} left the LAN ({})", printable(why))
            }
            Event::PeerAway { peer, why } => write!(
                f,
                "{peer} is away ({}); messages to {peer} are kept until {peer} is back",
                printable(why)
            ),
            Event::ChatResumed {
                peer, addr, queued, ..
            } => match queued {
                0 => write!(f, "{peer} is back ({addr}); chat resumed"),
                n => write!(f, "{peer} is back ({addr}); chat resumed, sending {n} kept"),
            },
            Event::Queued { peer, why } => write!(f, "queued for {peer}: {}", printable(why)),
            Event::QueuedDropped { peer, why } => {
                write!(f, "not delivered to {peer}: {}", printable(why))
            }
            Event::Broadcast {
                peer,
                key,
                verified,
                text,
            } => match verified {
                true => write!(f, "[broadcast] {peer}: {}", printable(text)),
                false => write!(
                    f,
                    "[broadcast] {peer} (unverified {}): {}",
                    key.fingerprint(),
                    printable(text)
                ),
            },
            Event::BroadcastSent { peers } => write!(
                f,
                "broadcast sent to {peers} {}",
                if *peers == 1 { "peer" } else { "peers" }
            ),
            Event::Blocked { peer, keys } => write!(
                f,
                "blocked {peer} ({keys} {}): its broadcasts and chat requests are dropped",
                if *keys == 1 { "key" } else { "keys" }
            ),
            Event::Unblocked { peer, .. } => write!(f, "unblocked {peer}"),
            Event::Contacts { contacts } => contact_list(f, contacts),
            Event::Bell { on, at_terminal } => match (on, at_terminal) {
                (true, true) => f.write_str("bell on: new messages and chat requests ring"),
                (true, false) => f.write_str("bell on, but it rings only at a terminal"),
                (false, _) => f.write_str("bell off"),
            },
            Event::Forgotten { peer } => {
                write!(f, "forgot {peer}: no chat, no kept messages, no pinned key")
            }
            Event::KnownPeerDead { peer, addr, .. } => {
                write!(f, "known peer {peer} at {addr} does not answer: marked dead")
            }
            Event::KnownPeerBack { peer, addr, .. } => {
                write!(f, "known peer {peer} at {addr} answers again")
            }
            Event::Disconnected { peer } => write!(f, "disconnected from {peer}"),
            Event::PeerDisconnected { peer } => write!(f, "{peer} disconnected"),
            Event::ReopenDeclined { peer } => {
                write!(f, "{peer} declined to reopen the chat: it has ended")
            }
            Event::Status(status) => status.fmt(f),
            Event::History { peer, lines } => {
                write!(f, "history with {peer}: {}", lines.len())?;
                for line in lines {
                    let at = line.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    write!(f, "\n{at} {}: {}", line.sender, printable(&line.text))?;
                }
                Ok(())
            }
            Event::Reregistered { name, addr } => {
                write!(f, "registered again as {name} at {addr}")
            }
            Event::Impostor {
                peer,
                offered,
                registered,
                ..
            } => write!(
                f,
                "WARNING: a peer calling itself {peer} presented key {offered}, but the \
                 registry binds {peer} to key {registered}. Someone is impersonating {peer}; \
                 refused."
            ),
            Event::KeyChanged {
                peer,
                pinned,
                offered,
                ..
            } => write!(
                f,
                "WARNING: {peer} presented key {offered}, but the key known for {peer} is \
                 {pinned}. Someone may be impersonating {peer}; refused. If {peer} really has \
                 a new key, check its fingerprint with {peer} and type: {}",
                crate::command::trust_command(peer, offered)
            ),
            Event::Whoami { name, key } => {
                write!(f, "{name} key {} ({})", key.fingerprint(), key.0)
            }
            Event::Trusted { peer, key } => {
                let fingerprint = key.fingerprint();
                write!(f, "trusting key {fingerprint} for {peer} from now on")
            }
            Event::RegistryTrusted { registry, key } => write!(
                f,
                "trusting key {} for the registry {registry} from now on",
                key.fingerprint()
            ),
            Event::Released { name } => write!(f, "released the name {name}"),
            Event::Help { text } => f.write_str(text.trim_end()),
            Event::Talking { peer: Some(peer) } => write!(
                f,
                "talking to {peer}: lines are messages to {peer}, commands start with / (/talk \
                 stops)"
            ),
            Event::Talking { peer: None } => write!(f, "no conversation: lines are commands"),
            Event::TalkEnded { peer, untaken } => {
                write!(f, "no chat with {peer} now: the conversation ended, lines are commands")?;
                match untaken {
                    true => write!(f, " (the last line was neither sent nor run)"),
                    false => Ok(()),
                }
            }
            Event::Bye => write!(f, "bye"),
            // Errors may quote the other side's words.
            Event::Error(error) => write!(f, "error: {}", printable(&error.to_string())),
        }
    }
}

/// The plain text, with colours where wanted; at a terminal, timestamps on chat lines and a
/// message's lines under one another.
fn paint(event: &Event, color: bool, interactive: bool) -> String {
    let paint = |style: Style, text: &str| match color {
        true => format!("{style}{text}{style:#}"),
        false => text.to_string(),
    };
    let name = Style::new().bold().fg_color(Some(AnsiColor::Cyan.into()));
    match event {
        Event::Message { peer, text, at } => {
            if !interactive {
                return format!("{}: {}", paint(name, peer.as_str()), printable(text));
            }
            let local = at.with_timezone(&Local).format("%H:%M:%S").to_string();
            let stamp = paint(Style::new().dimmed(), &format!("[{local}]"));
            // Each line of the message is made printable on its own, and the lines after the
            // first are indented under the first: no line of a message can pass for a line
            // of its own (another sender's, say).
            let indent = " ".repeat("[] ".len() + local.len() + peer.as_str().len() + ": ".len());
            let lines: Vec<_> = text.split('\n').map(printable).collect();
            format!(
                "{stamp} {}: {}",
                paint(name, peer.as_str()),
                lines.join(&format!("\n{indent}"))
            )
        }
        Event::Error(_) | Event::KeyChanged { .. } => paint(
            Style::new().fg_color(Some(AnsiColor::Red.into())),
            &event.to_string(),
        ),
        Event::RequestArrived { .. } => paint(
            Style::new().bold().fg_color(Some(AnsiColor::Yellow.into())),
            &event.to_string(),
        ),
        Event::RequestAccepted { .. } | Event::AcceptedChat { .. } => paint(
            Style::new().fg_color(Some(AnsiColor::Green.into())),
            &event.to_string(),
        ),
        _ => event.to_string(),
    }
}

/// What follows a name that neither the registry nor a pin vouches for.
fn unverified(verified: bool) -> &'static str {
    if verified {
        ""
    } else {
        " (unverified)"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;
    use p2p_shared::PeerName;

    use p2p_shared::PeerInfo;

    use super::*;
    use crate::error::PeerError;
    use crate::event::{PeerKey, Status};

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    const PLAIN: Rendering = Rendering::Text {
        color: false,
        interactive: false,
    };

    impl Rendering {
        /// `event` rendered as one no command caused.
        fn of(self, event: &Event) -> String {
            self.render(&event.clone().into())
        }
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
        let forged = Event::Message {
            peer: name("alice"),
            text: "hi\nbob: fake".into(),
            at: Utc::now(),
        };
        assert_eq!(PLAIN.of(&forged), "alice: hi\\u{a}bob: fake");
        // At a terminal a message's second line is indented under its first: not a line of
        // its own.
        let painted = Rendering::Text {
            color: true,
            interactive: true,
        }
        .of(&forged);
        let lines: Vec<&str> = painted.split('\n').collect();
        assert_eq!(lines.len(), 2, "{painted:?}");
        assert_eq!(
            lines[1],
            format!("{}bob: fake", " ".repeat("[12:00:00] alice: ".len()))
        );
        let escaped = Rendering::Text {
            color: true,
            interactive: true,
        }
        .of(&Event::Message {
            peer: name("alice"),
            text: "a\rb\u{1b}[2J".into(),
            at: Utc::now(),
        });
        assert!(escaped.ends_with("a\\u{d}b\\u{1b}[2J"), "{escaped:?}");
        let error = Event::Error(PeerError::History { why: "x\ny".into() });
        assert_eq!(PLAIN.of(&error), "error: x\\u{a}y");
    }

    #[test]
    fn a_key_warning_ends_with_the_command_that_trusts_that_peer() {
        let key = p2p_shared::identity::Identity::generate().public();
        let warning = |peer: &str| Event::KeyChanged {
            peer: name(peer),
            pinned: "OLD".into(),
            offered: "NEW".into(),
            pinned_key: key,
            offered_key: key,
        };
        assert!(PLAIN.of(&warning("bob")).ends_with("type: trust bob NEW"));
        // `trust registry NEW` would be the registry's command.
        let registry = PLAIN.of(&warning("registry"));
        assert!(
            registry.ends_with("type: trust peer registry NEW"),
            "{registry}"
        );
    }

    #[test]
    fn status_advises_for_a_registry_with_another_key_what_will_be_taken() {
        let other = p2p_shared::identity::Identity::generate().public();
        let status = |given: bool| {
            Event::Status(Status {
                name: name("alice"),
                addr: "127.0.0.1:2".parse().unwrap(),
                registry: "127.0.0.1:4000".parse().unwrap(),
                registry_reachable: false,
                registry_other_key: Some(other),
                registry_key_given: given,
                registered: false,
                chats: vec![],
                away: vec![],
                incoming: vec![],
                outgoing: vec![],
            })
        };
        let fp = other.fingerprint();
        let pinned = PLAIN.of(&status(false));
        assert!(
            pinned.contains(&format!(
                "answers with another key, {fp}, not the one trusted for it: refused. If its \
                 operator confirms that key, type: trust registry {fp}\n"
            )),
            "{pinned}"
        );
        // `trust registry` refuses to replace a --server-key: the advice is to start again.
        let given = PLAIN.of(&status(true));
        assert!(
            given.contains(&format!(
                "answers with another key, {fp}, not the --server-key given for it: refused. If \
                 its operator confirms that key, start again with --server-key {other}\n"
            )),
            "{given}"
        );
        assert!(!given.contains("trust registry"), "{given}");
        // JSON has the fingerprint, as before.
        let json: serde_json::Value =
            serde_json::from_str(&Rendering::Json.of(&status(true))).unwrap();
        assert_eq!(json["registry_other_key"], fp.as_str(), "{json}");
        assert!(json.get("registry_key_given").is_none(), "{json}");
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
            PLAIN.of(&Event::Peers {
                peers: peers.clone()
            }),
            format!("peers: 1\npeer bob 127.0.0.1:2 key {fp}")
        );
        assert_eq!(
            PLAIN.of(&Event::Connected {
                peers: peers.clone(),
                away: vec![]
            }),
            format!("connected peers: 1\nconnected bob 127.0.0.1:2 key {fp}")
        );
        // In JSON each peer has its key and its fingerprint.
        let bob = serde_json::json!([{"name": "bob", "addr": "127.0.0.1:2",
                                       "key": key.to_string(), "fingerprint": fp}]);
        let json = |event: &Event| -> serde_json::Value {
            serde_json::from_str(&Rendering::Json.of(event)).unwrap()
        };
        let listed = json(&Event::Peers {
            peers: peers.clone(),
        });
        assert_eq!(listed["peers"], bob);
        let connected = json(&Event::Connected {
            peers: vec![],
            away: peers.clone(),
        });
        assert_eq!(
            (&connected["peers"], &connected["away"]),
            (&serde_json::json!([]), &bob)
        );
        assert_eq!(
            PLAIN.of(&Event::Connected {
                peers: vec![],
                away: vec![]
            }),
            "connected peers: 0"
        );
    }

    #[test]
    fn expiry_is_shown_in_whole_seconds_and_json_in_milliseconds() {
        let key = p2p_shared::identity::Identity::generate().public();
        let fp = key.fingerprint();
        let event = Event::RequestArrived {
            peer: name("alice"),
            addr: "127.0.0.1:1".parse().unwrap(),
            expires_in: Duration::from_secs(60),
            key: PeerKey(key),
            verified: true,
            unanswered: false,
        };
        assert_eq!(
            PLAIN.of(&event),
            format!(
                "chat request from alice (127.0.0.1:1): answer yes or no (expires in 60s), \
                 key {fp}"
            )
        );
        let json: serde_json::Value = serde_json::from_str(&Rendering::Json.of(&event)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"event": "request_arrived", "peer": "alice",
                               "addr": "127.0.0.1:1", "expires_in_ms": 60000,
                               "key": key.to_string(), "fingerprint": fp, "verified": true,
                               "unanswered": false})
        );
    }

    #[test]
    fn json_is_one_line_with_an_event_tag_and_errors_carry_their_code() {
        let event = Event::Message {
            peer: name("alice"),
            text: "two\nlines \u{1b}".into(),
            at: "2026-11-21T10:00:00Z".parse().unwrap(),
        };
        let line = Rendering::Json.of(&event);
        assert!(!line.contains('\n'));
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["event"], "message");
        assert_eq!(json["text"], "two\nlines \u{1b}");
        assert_eq!(json["at"], "2026-11-21T10:00:00Z");
        let bye: serde_json::Value = serde_json::to_value(Event::Bye).unwrap();
        assert_eq!(bye, serde_json::json!({"event": "bye"}));
        let error = Event::Error(PeerError::NotInChat { peer: name("bob") });
        assert_eq!(
            serde_json::to_value(error).unwrap(),
            serde_json::json!({"event": "error", "code": "not_in_chat",
                               "message": "not in a chat with bob"})
        );
    }

    #[test]
    fn json_carries_the_id_of_the_command_an_event_answers_and_text_does_not() {
        let delivered = || Event::Delivered { peer: name("bob") };
        let id = crate::json_command::CommandId::given("job 7").unwrap();
        let answer = delivered().answering(Some(id));
        let json: serde_json::Value =
            serde_json::from_str(&Rendering::Json.render(&answer)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"event": "delivered", "peer": "bob", "id": "job 7"})
        );
        let unasked: serde_json::Value =
            serde_json::from_str(&Rendering::Json.of(&delivered())).unwrap();
        assert_eq!(
            unasked,
            serde_json::json!({"event": "delivered", "peer": "bob"})
        );
        assert_eq!(PLAIN.render(&answer), PLAIN.of(&delivered()));
        // Every kind of event takes an id: those with no fields, and the newtype variants.
        for event in [Event::Bye, Event::Error(PeerError::NonePending)] {
            let id = crate::json_command::CommandId::chosen(3);
            let json: serde_json::Value =
                serde_json::from_str(&Rendering::Json.render(&event.answering(Some(id)))).unwrap();
            assert_eq!(json["id"], "c3", "{json}");
        }
    }

    #[test]
    fn json_escapes_the_line_breaks_serde_json_leaves_raw() {
        let event = Event::Message {
            peer: name("alice"),
            text: "a\u{2028}b\u{2029}c\u{85}d\u{202e}e".into(),
            at: "2026-11-21T10:00:00Z".parse().unwrap(),
        };
        let line = Rendering::Json.of(&event);
        assert!(
            !line.contains(['\u{2028}', '\u{2029}', '\u{85}']),
            "{line:?}"
        );
        assert!(
            line.contains("\"text\":\"a\\u2028b\\u2029c\\u0085d\u{202e}e\""),
            "{line:?}"
        );
        // Still the same text once parsed.
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["text"], "a\u{2028}b\u{2029}c\u{85}d\u{202e}e");
    }

    #[test]
    fn bidi_and_invisible_characters_are_shown_escaped_in_text() {
        let event = Event::Message {
            peer: name("alice"),
            text: "pay\u{202e}cod.exe\u{200b}\u{feff}\u{2066}x\u{2069}".into(),
            at: Utc::now(),
        };
        assert_eq!(
            PLAIN.of(&event),
            "alice: pay\\u{202e}cod.exe\\u{200b}\\u{feff}\\u{2066}x\\u{2069}"
        );
    }

    #[test]
    fn without_colour_painting_changes_nothing_but_the_timestamp() {
        let event = Event::Error(PeerError::NonePending);
        assert_eq!(PLAIN.of(&event), "error: no pending chat request");
    }
}
