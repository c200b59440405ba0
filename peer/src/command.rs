//! The commands a user (or a script) types, parsed from one line of input.
//!
//! Parsing is separate from doing: [`parse`] turns a line into a [`Command`] or a
//! [`ParseError`] that says what is wrong and shows the usage, and touches nothing else.
//! This module knows the commands and their words; `args` reads each argument.

use std::fmt;

use p2p_shared::PeerName;

pub use crate::help::{help_text, section_text, topic_text, Section, Topic, TOPICS};

mod args;

use args::{
    broadcast_text, fingerprint_arg, name_arg, port_arg, rest_after, split_host_port, usage,
};

/// What `help` explains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelpOn {
    All,
    Section(Section),
    Topic(&'static Topic),
}

/// One command, ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Register,
    ListPeers,
    ExitNetwork,
    ChatRequest(Target),
    /// `yes` or `no`, optionally naming the requester.
    Answer {
        accept: bool,
        from: Option<PeerName>,
    },
    ChatMessage {
        peer: PeerName,
        text: String,
    },
    ListConnected,
    Disconnect {
        peer: PeerName,
    },
    Status,
    /// Every pinned peer: how it is vouched for, its chat, kept messages, last seen.
    Contacts,
    /// `bell on|off`: whether new messages and requests ring the terminal bell.
    Bell(bool),
    /// The last `n` lines of the chat with `peer`.
    History {
        peer: PeerName,
        n: usize,
    },
    Whoami,
    /// Pin the new key a peer presented, if its fingerprint is the one given (`trust PEER FP`,
    /// or `trust peer PEER FP` for any name, `registry` included).
    Trust {
        peer: PeerName,
        fingerprint: String,
    },
    /// Pin the registry's new key, if its fingerprint is the one given.
    TrustRegistry {
        fingerprint: String,
    },
    /// Give up our name at the registry for good.
    ReleaseName,
    /// Reach the peer at an address and exchange known peers with it.
    Join {
        host: String,
        port: u16,
    },
    /// The book: the peers this peer knows of.
    KnownPeers,
    /// The peers heard on the LAN (`--lan`).
    Nearby,
    /// The network as this peer knows it: DOT, or JSON.
    Graph {
        json: bool,
    },
    /// A public message to the whole network.
    Broadcast {
        text: String,
    },
    /// Drop broadcasts and chat requests from the keys a name means here.
    Block {
        peer: PeerName,
    },
    Unblock {
        peer: PeerName,
    },
    /// End the chat with a peer, drop what was kept for it and its pinned key.
    Forget {
        peer: PeerName,
    },
    /// `help`, `help SECTION` or `help COMMAND`.
    Help(HelpOn),
    /// `talk PEER`: plain lines become messages to PEER; `talk` alone stops.
    Talk(Option<PeerName>),
    Exit,
}

/// Whom a chat request goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Addr { host: String, port: u16 },
    Name(PeerName),
}

/// What is wrong with a line, with the usage of the command it looked like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    message: String,
    /// The line names no command at all.
    unknown_command: bool,
}

impl ParseError {
    /// Whether the line names no command at all (rather than a command used wrongly).
    pub fn is_unknown_command(&self) -> bool {
        self.unknown_command
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Parses one line. An empty line is `Ok(None)`.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let command = match words.as_slice() {
        [] => return Ok(None),
        ["register"] => Command::Register,
        ["listpeer"] => Command::ListPeers,
        ["exit"] => Command::Exit,
        ["exit", "network"] => Command::ExitNetwork,
        ["help"] => Command::Help(HelpOn::All),
        ["help", topic @ ..] => Command::Help(find_topic(&topic.join(" "))?),
        ["talk"] => Command::Talk(None),
        ["talk", peer] => Command::Talk(Some(name_arg(peer, TALK)?)),
        ["talk", ..] => return Err(usage("talk takes one peer name, or none to stop", TALK)),
        ["status"] => Command::Status,
        ["contacts"] => Command::Contacts,
        ["bell", "on"] => Command::Bell(true),
        ["bell", "off"] => Command::Bell(false),
        ["whoami"] => Command::Whoami,
        ["history", peer] => Command::History {
            peer: name_arg(peer, HISTORY)?,
            n: DEFAULT_HISTORY,
        },
        ["history", peer, n] => Command::History {
            peer: name_arg(peer, HISTORY)?,
            n: match n.parse() {
                Ok(n @ 1..=MAX_HISTORY) => n,
                _ => {
                    return Err(usage(
                        format!("{n:?} is not a number of lines from 1 to {MAX_HISTORY}"),
                        HISTORY,
                    ))
                }
            },
        },
        // `trust registry FP` is the registry's: a peer called registry is trusted by the
        // longer form, which means a peer whatever the name.
        ["trust", "peer", peer, fingerprint] => Command::Trust {
            peer: name_arg(peer, TRUST)?,
            fingerprint: fingerprint_arg(fingerprint)?,
        },
        ["trust", "registry", fingerprint] => Command::TrustRegistry {
            fingerprint: fingerprint_arg(fingerprint)?,
        },
        ["trust", peer, fingerprint] => Command::Trust {
            peer: name_arg(peer, TRUST)?,
            fingerprint: fingerprint_arg(fingerprint)?,
        },
        ["release", "name"] => Command::ReleaseName,
        ["peers"] => Command::KnownPeers,
        ["nearby"] => Command::Nearby,
        ["graph"] => Command::Graph { json: false },
        ["graph", "--json"] => Command::Graph { json: true },
        ["broadcast", _, ..] => Command::Broadcast {
            text: broadcast_text(rest_after(line, 1))?,
        },
        ["block", peer] => Command::Block {
            peer: name_arg(peer, "block NAME")?,
        },
        ["unblock", peer] => Command::Unblock {
            peer: name_arg(peer, "unblock NAME")?,
        },
        ["forget", peer] => Command::Forget {
            peer: name_arg(peer, "forget NAME")?,
        },
        ["join", host, port] => Command::Join {
            host: host.to_string(),
            port: port_arg(port, JOIN)?,
        },
        ["join", host_port] => {
            let (host, port) = split_host_port(host_port, JOIN)?;
            Command::Join { host, port }
        }
        ["list", "connected", "peer" | "peers"] => Command::ListConnected,
        ["chat", "request", host_port] if host_port.contains(':') => {
            let (host, port) = split_host_port(host_port, CHAT_REQUEST)?;
            Command::ChatRequest(Target::Addr { host, port })
        }
        ["chat", "request", name] => {
            Command::ChatRequest(Target::Name(name_arg(name, CHAT_REQUEST)?))
        }
        ["chat", "request", host, port] => Command::ChatRequest(Target::Addr {
            host: host.to_string(),
            port: port_arg(port, CHAT_REQUEST)?,
        }),
        ["chat", "message", peer, _, ..] => Command::ChatMessage {
            peer: name_arg(peer, CHAT_MESSAGE)?,
            // A long message is sent as several (`split.rs`): only the line limit bounds it.
            text: rest_after(line, 3).to_string(),
        },
        ["disconnect", peer] => Command::Disconnect {
            peer: name_arg(peer, DISCONNECT)?,
        },
        [answer @ ("yes" | "no")] => Command::Answer {
            accept: *answer == "yes",
            from: None,
        },
        [answer @ ("yes" | "no"), name] => Command::Answer {
            accept: *answer == "yes",
            from: Some(name_arg(name, ANSWER)?),
        },
        // Known commands with the wrong arguments.
        ["register", ..] => return Err(usage("register takes no arguments", "register")),
        ["listpeer", ..] => return Err(usage("listpeer takes no arguments", "listpeer")),
        ["exit", ..] => return Err(usage("exit takes no arguments", "exit | exit network")),
        ["status", ..] => return Err(usage("status takes no arguments", "status")),
        ["contacts", ..] => return Err(usage("contacts takes no arguments", "contacts")),
        ["bell", ..] => return Err(usage("bell takes on or off", "bell on | bell off")),
        ["whoami", ..] => return Err(usage("whoami takes no arguments", "whoami")),
        ["history", ..] => return Err(usage("history needs a peer name", HISTORY)),
        ["trust", ..] => {
            return Err(usage(
                "trust needs a peer name (or registry) and the fingerprint you checked with \
                 its owner",
                TRUST,
            ))
        }
        ["release", ..] => return Err(usage("did you mean release name?", "release name")),
        ["peers", ..] => return Err(usage("peers takes no arguments", "peers")),
        ["nearby", ..] => return Err(usage("nearby takes no arguments", "nearby")),
        ["graph", ..] => return Err(usage("graph takes only --json", "graph [--json]")),
        ["broadcast"] => return Err(usage("broadcast needs a text", "broadcast TEXT")),
        ["block", ..] => return Err(usage("block needs one peer name", "block NAME")),
        ["unblock", ..] => return Err(usage("unblock needs one peer name", "unblock NAME")),
        ["forget", ..] => return Err(usage("forget needs one peer name", "forget NAME")),
        ["join", ..] => return Err(usage("join needs a host and a port", JOIN)),
        ["list", ..] => {
            return Err(usage(
                "did you mean list connected peer?",
                "list connected peer",
            ))
        }
        ["chat", "request", ..] => {
            return Err(usage(
                "chat request needs a host and a port, or a name",
                CHAT_REQUEST,
            ))
        }
        ["chat", "message", ..] => {
            return Err(usage("chat message needs a peer and a text", CHAT_MESSAGE))
        }
        ["chat", ..] => {
            return Err(usage(
                "chat needs request or message",
                "chat request HOST PORT | chat request NAME | chat message PEER TEXT",
            ))
        }
        ["disconnect", ..] => return Err(usage("disconnect needs one peer name", DISCONNECT)),
        ["yes" | "no", ..] => return Err(usage("answer with at most one name", ANSWER)),
        [other, ..] => {
            let hint = match closest_command(other) {
                Some(name) => format!("did you mean {name}? "),
                None => String::new(),
            };
            return Err(ParseError {
                message: format!(
                    "unknown command {other:?}; {hint}type help for the list of commands"
                ),
                unknown_command: true,
            });
        }
    };
    Ok(Some(command))
}

/// Where the free text of `line` starts, if `command` (parsed from `line`) has one: the text
/// of `chat message` and `broadcast`, the one argument taken as typed, line breaks included.
/// Everything before it is the command's words, read as [`parse`] reads them.
pub fn text_start(line: &str, command: &Command) -> Option<usize> {
    let words = match command {
        Command::ChatMessage { .. } => 3,
        Command::Broadcast { .. } => 1,
        _ => return None,
    };
    Some(line.len() - rest_after(line, words).len())
}

const CHAT_REQUEST: &str = "chat request HOST PORT | chat request NAME";
const JOIN: &str = "join HOST PORT | join HOST:PORT";
const CHAT_MESSAGE: &str = "chat message PEER TEXT";
const DISCONNECT: &str = "disconnect PEER";
const HISTORY: &str = "history PEER [N]";
const TALK: &str = "talk PEER | talk";
const DEFAULT_HISTORY: usize = 20;
const MAX_HISTORY: usize = 10_000;
const ANSWER: &str = "yes [NAME] | no [NAME]";

/// The command whose first word is nearest to `typed` (a transposition, a missing or extra
/// letter or two), if one is near enough to be what was meant.
fn closest_command(typed: &str) -> Option<&'static str> {
    let typed = typed.to_lowercase();
    TOPICS
        .iter()
        .map(|t| t.name)
        .filter_map(|name| {
            let first = name.split(' ').next().unwrap_or(name);
            let distance = strsim::damerau_levenshtein(&typed, first);
            (distance <= 2 && distance < first.len()).then_some((distance, name))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

fn find_topic(name: &str) -> Result<HelpOn, ParseError> {
    let topic = |found: Option<&'static Topic>| found.map(HelpOn::Topic);
    topic(TOPICS.iter().find(|t| t.name == name))
        // "help chat" means the chat commands, not whatever merely starts with "chat".
        .or_else(|| {
            Section::ALL
                .into_iter()
                .find(|s| s.word() == name)
                .map(HelpOn::Section)
        })
        .or_else(|| {
            let words = format!("{name} ");
            topic(TOPICS.iter().find(|t| t.name.starts_with(&words)))
        })
        .or_else(|| topic(TOPICS.iter().find(|t| t.name.starts_with(name))))
        .ok_or_else(|| ParseError {
            message: format!("no command {name:?}; type help for the list of commands"),
            unknown_command: false,
        })
}

const TRUST: &str =
    "trust PEER FINGERPRINT | trust peer PEER FINGERPRINT | trust registry FINGERPRINT";

/// The command that pins the key with `fingerprint` for `peer`, as a warning tells the user
/// to type it: the longer form for a peer called registry, whose short form means the
/// registry.
pub fn trust_command(peer: &PeerName, fingerprint: &str) -> String {
    match peer.as_str() {
        "registry" => format!("trust peer {peer} {fingerprint}"),
        _ => format!("trust {peer} {fingerprint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::wire::MAX_TEXT_LEN;

    fn ok(line: &str) -> Command {
        parse(line).unwrap().unwrap()
    }
    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    #[test]
    fn a_near_miss_gets_a_did_you_mean_and_nonsense_does_not() {
        let error = |line: &str| parse(line).unwrap_err().to_string();
        for (typo, meant) in [
            ("regster", "register"),
            ("lsitpeer", "listpeer"),
            ("brodcast", "broadcast"),
            ("dissconnect", "disconnect"),
            ("Status", "status"),
        ] {
            let said = error(typo);
            assert!(
                said.contains(&format!("did you mean {meant}")),
                "{typo}: {said}"
            );
            assert!(parse(typo).unwrap_err().is_unknown_command());
        }
        assert!(
            !error("xyzzy").contains("did you mean"),
            "{}",
            error("xyzzy")
        );
        assert!(
            !error("a").contains("did you mean"),
            "one letter is no near miss"
        );
    }

    #[test]
    fn an_address_is_one_word_or_two() {
        let addr = |host: &str, port| {
            Command::ChatRequest(Target::Addr {
                host: host.into(),
                port,
            })
        };
        assert_eq!(ok("chat request 127.0.0.1:4000"), addr("127.0.0.1", 4000));
        assert_eq!(ok("chat request 127.0.0.1 4000"), addr("127.0.0.1", 4000));
        assert_eq!(ok("chat request [::1]:4000"), addr("::1", 4000));
        assert!(parse("chat request 127.0.0.1:0").is_err());
        assert!(parse("chat request :4000").is_err());
        assert_eq!(
            ok("chat request bob"),
            Command::ChatRequest(Target::Name(name("bob")))
        );
    }

    #[test]
    fn the_original_commands() {
        assert_eq!(ok("register"), Command::Register);
        assert_eq!(ok("listpeer"), Command::ListPeers);
        assert_eq!(ok("nearby"), Command::Nearby);
        assert_eq!(ok("graph --json"), Command::Graph { json: true });
        assert_eq!(ok("exit network"), Command::ExitNetwork);
        assert_eq!(ok("  exit  "), Command::Exit);
        assert_eq!(ok("help"), Command::Help(HelpOn::All));
        assert_eq!(ok("status"), Command::Status);
        assert_eq!(ok("list connected peer"), Command::ListConnected);
        assert_eq!(
            ok("disconnect bob"),
            Command::Disconnect { peer: name("bob") }
        );
        assert_eq!(
            ok("chat request localhost 4000"),
            Command::ChatRequest(Target::Addr {
                host: "localhost".into(),
                port: 4000
            })
        );
        assert_eq!(
            ok("chat request bob"),
            Command::ChatRequest(Target::Name(name("bob")))
        );
        assert_eq!(
            ok("yes"),
            Command::Answer {
                accept: true,
                from: None
            }
        );
        assert_eq!(
            ok("no carol"),
            Command::Answer {
                accept: false,
                from: Some(name("carol"))
            }
        );
        assert_eq!(parse("   "), Ok(None));
    }

    #[test]
    fn message_text_is_the_rest_of_the_line_as_typed() {
        assert_eq!(
            ok("chat message  bob   héllo  wörld 你好 🎉"),
            Command::ChatMessage {
                peer: name("bob"),
                text: "héllo  wörld 你好 🎉".into()
            }
        );
        assert_eq!(
            ok("chat message bob chat message bob"),
            Command::ChatMessage {
                peer: name("bob"),
                text: "chat message bob".into()
            }
        );
    }

    #[test]
    fn mistakes_say_what_is_wrong_and_show_the_usage() {
        for (line, expect) in [
            ("chat message bob", "usage: chat message PEER TEXT"),
            ("chat request", "usage: chat request HOST PORT"),
            ("chat request host port", "\"port\" is not a port number"),
            ("chat request a b c", "usage: chat request"),
            ("chat", "usage: chat request"),
            ("disconnect", "usage: disconnect PEER"),
            ("disconnect b\u{1b}", "is not a valid name"),
            ("yes a b", "usage: yes [NAME]"),
            ("register now", "usage: register"),
            ("exit now", "usage: exit | exit network"),
            ("frobnicate", "unknown command \"frobnicate\""),
        ] {
            let err = parse(line).unwrap_err().to_string();
            assert!(err.contains(expect), "{line:?} gave {err:?}");
        }
    }

    #[test]
    fn help_explains_one_command_with_an_example_or_lists_a_section() {
        let Command::Help(HelpOn::Topic(topic)) = ok("help chat message") else {
            panic!("not a help topic")
        };
        assert_eq!(topic.usage, "chat message PEER TEXT");
        assert!(topic_text(topic).contains("example: chat message bob"));
        let Command::Help(HelpOn::Topic(topic)) = ok("help list") else {
            panic!("a prefix names a topic")
        };
        assert_eq!(topic.name, "list connected peer");
        assert_eq!(
            ok("help chat"),
            Command::Help(HelpOn::Section(Section::Chat))
        );
        assert_eq!(
            ok("help network"),
            Command::Help(HelpOn::Section(Section::Network))
        );
        assert!(parse("help frobnicate")
            .unwrap_err()
            .to_string()
            .contains("no command"));
        for t in TOPICS {
            assert_eq!(
                parse(&format!("help {}", t.name)),
                Ok(Some(Command::Help(HelpOn::Topic(t))))
            );
        }
    }

    #[test]
    fn long_messages_are_taken_whole_and_long_broadcasts_refused_with_their_size() {
        let text = "x".repeat(MAX_TEXT_LEN * 3);
        assert_eq!(
            ok(&format!("chat message bob {text}")),
            Command::ChatMessage {
                peer: name("bob"),
                text: text.clone()
            }
        );
        let err = parse(&format!("broadcast {}", &text[..MAX_TEXT_LEN + 1])).unwrap_err();
        assert!(err.to_string().contains("this one has 8193"), "{err}");
        assert!(parse(&format!("broadcast {}", &text[..MAX_TEXT_LEN])).is_ok());
    }

    #[test]
    fn talk_names_a_peer_or_stops() {
        assert_eq!(ok("talk bob"), Command::Talk(Some(name("bob"))));
        assert_eq!(ok("talk"), Command::Talk(None));
        assert!(parse("talk bob carol")
            .unwrap_err()
            .to_string()
            .contains("usage: talk"));
    }

    #[test]
    fn a_peer_called_registry_is_trusted_with_the_longer_form() {
        let fp = "3f2a:9c1d:77e0:b4a2:05c8:e1f3:6a2b:d940";
        let parsed = |line: &str| ok(&line.replace("FP", fp));
        let trust = |peer: &str| Command::Trust {
            peer: name(peer),
            fingerprint: fp.into(),
        };
        let registry = Command::TrustRegistry {
            fingerprint: fp.into(),
        };
        assert_eq!(parsed("trust registry FP"), registry);
        assert_eq!(parsed("trust peer registry FP"), trust("registry"));
        assert_eq!(parsed("trust bob FP"), trust("bob"));
        assert_eq!(parsed("trust peer bob FP"), trust("bob"));
        // A peer called peer, either way.
        assert_eq!(parsed("trust peer FP"), trust("peer"));
        assert_eq!(parsed("trust peer peer FP"), trust("peer"));
        // The command a warning tells the user to type parses as trusting that peer.
        for who in ["registry", "bob", "peer"] {
            assert_eq!(parsed(&trust_command(&name(who), "FP")), trust(who));
        }
        for line in [
            "trust peer registry",
            "trust peer registry x FP",
            "trust peer FP FP",
        ] {
            let err = parse(&line.replace("FP", fp)).unwrap_err().to_string();
            assert!(
                err.contains("usage: trust PEER FINGERPRINT"),
                "{line:?}: {err}"
            );
        }
    }

    /// Found by the `command` fuzz target (docs/testing.md, finding 2): port 0 parses,
    /// although the error message promises 1-65535 and nothing listens on port 0.
    #[test]
    fn port_zero_is_refused_like_any_other_bad_port() {
        for line in ["chat request h 0", "chat request 127.0.0.1 000"] {
            let err = parse(line).unwrap_err().to_string();
            assert!(
                err.contains("is not a port number (1-65535)"),
                "{line:?}: {err}"
            );
        }
    }
}
