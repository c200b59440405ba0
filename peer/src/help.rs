//! The documentation of every command: what `help`, `help SECTION` and `help COMMAND` print,
//! and what the terminal's hints and completion know (`terminal/assist.rs`). Apart from the
//! parser (`command.rs`), which only looks a topic up by name for `help COMMAND`.
//!
//! Everything printed fits 80 columns: `help` shows one short line per command, grouped by
//! section, and `help COMMAND` wraps its explanation.

/// The width of a terminal nobody resized: no help line is longer.
pub const WIDTH: usize = 80;

/// One command's documentation: what `help COMMAND` prints, and what the terminal's hints
/// and completion know about it.
#[derive(Debug, PartialEq, Eq)]
pub struct Topic {
    /// The command's fixed words, as typed.
    pub name: &'static str,
    /// The command with its arguments in capitals; alternatives separated by ` | `.
    pub usage: &'static str,
    pub section: Section,
    /// What `help` says of it, on the rest of its line.
    pub summary: &'static str,
    /// What `help COMMAND` says of it.
    pub about: &'static str,
    pub example: &'static str,
}

/// The groups `help` lists commands in; `help chat` shows one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Chat,
    Registry,
    Network,
    Peer,
}

impl Section {
    /// In the order `help` shows them.
    pub const ALL: [Section; 4] = [
        Section::Chat,
        Section::Registry,
        Section::Network,
        Section::Peer,
    ];

    /// The word that names it in `help SECTION`.
    pub fn word(self) -> &'static str {
        match self {
            Section::Chat => "chat",
            Section::Registry => "registry",
            Section::Network => "network",
            Section::Peer => "peer",
        }
    }

    fn heading(self) -> &'static str {
        match self {
            Section::Chat => "chatting",
            Section::Registry => "the registry",
            Section::Network => "the network without a registry",
            Section::Peer => "this peer",
        }
    }
}

/// Every command, in the order `help` lists them.
pub const TOPICS: &[Topic] = &[
    Topic {
        name: "register",
        section: Section::Registry,
        summary: "register this peer's name and address",
        usage: "register",
        about: "register this peer's name and listening address at the registry",
        example: "register",
    },
    Topic {
        name: "listpeer",
        section: Section::Registry,
        summary: "list the peers registered at the registry",
        usage: "listpeer",
        about: "list every peer registered at the registry, with its address",
        example: "listpeer",
    },
    Topic {
        name: "exit network",
        section: Section::Registry,
        summary: "leave the registry; chats stay open",
        usage: "exit network",
        about: "leave the registry; open chats stay open",
        example: "exit network",
    },
    Topic {
        name: "release name",
        section: Section::Registry,
        summary: "give up this peer's name for good",
        usage: "release name",
        about: "give up this peer's name at the registry for good, so another key may take it",
        example: "release name",
    },
    Topic {
        name: "chat request",
        section: Section::Chat,
        summary: "ask a peer for a chat (by address or name)",
        usage: "chat request HOST PORT | chat request HOST:PORT | chat request NAME",
        about: "ask a peer for a chat, by address or by its registered name; \
                its user answers yes or no",
        example: "chat request 192.168.1.20 40002   or   chat request bob",
    },
    Topic {
        name: "yes",
        section: Section::Chat,
        summary: "accept a pending chat request",
        usage: "yes [NAME]",
        about: "accept the pending chat request (name the requester when several wait)",
        example: "yes   or   yes carol",
    },
    Topic {
        name: "no",
        section: Section::Chat,
        summary: "decline a pending chat request",
        usage: "no [NAME]",
        about: "decline the pending chat request (name the requester when several wait)",
        example: "no   or   no carol",
    },
    Topic {
        name: "chat message",
        section: Section::Chat,
        summary: "send TEXT to a peer you chat with",
        usage: "chat message PEER TEXT",
        about: "send TEXT, the rest of the line as typed, to a peer you are chatting with",
        example: "chat message bob See you at 10, in room 2.14",
    },
    Topic {
        name: "talk",
        section: Section::Chat,
        summary: "make plain lines messages to PEER (/talk stops)",
        usage: "talk PEER | talk",
        about: "make PEER the current conversation: every plain line is a message to it, \
                and commands start with / (/yes, /status, /talk to stop, //text for a \
                message that starts with /); the prompt shows PEER. talk alone stops, and so \
                does the end of the chat with PEER. It needs a chat with PEER, open or away",
        example: "talk bob   or   /talk",
    },
    Topic {
        name: "list connected peer",
        section: Section::Chat,
        summary: "list the peers you chat with",
        usage: "list connected peer",
        about: "list the peers you are chatting with",
        example: "list connected peer",
    },
    Topic {
        name: "disconnect",
        section: Section::Chat,
        summary: "end the chat with a peer",
        usage: "disconnect PEER",
        about: "end the chat with a peer; it is told",
        example: "disconnect bob",
    },
    Topic {
        name: "history",
        section: Section::Chat,
        summary: "the last N lines of a chat (default 20)",
        usage: "history PEER [N]",
        about: "show the last N lines (default 20) of the chat with PEER, kept across runs",
        example: "history bob 50",
    },
    Topic {
        name: "forget",
        section: Section::Chat,
        summary: "end the chat with NAME and forget its key",
        usage: "forget NAME",
        about: "end the chat with NAME (open or away), drop the messages kept for it and the \
                key pinned for it: the next contact is a first one",
        example: "forget bob",
    },
    Topic {
        name: "contacts",
        section: Section::Chat,
        summary: "pinned peers: chat, kept messages, last seen",
        usage: "contacts",
        about: "list every peer whose key is pinned here: its fingerprint, whether a \
                registry vouched for it or it was pinned on first contact, whether its \
                chat is open, away or ended, how many messages are kept for it, and when \
                the last line with it was written",
        example: "contacts",
    },
    Topic {
        name: "bell",
        section: Section::Peer,
        summary: "whether new messages and requests ring the bell",
        usage: "bell on | bell off",
        about: "switch the terminal bell on or off (--bell sets it at start, on by \
                default): a new message or chat request rings it, except a message from \
                the peer of the current conversation (talk PEER); pipes never ring",
        example: "bell off",
    },
    Topic {
        name: "join",
        section: Section::Network,
        summary: "exchange known peers with the peer there",
        usage: "join HOST PORT | join HOST:PORT",
        about: "reach the peer at that address and exchange known peers with it: works \
                with no registry at all",
        example: "join 192.168.1.20 40002   or   join 192.168.1.20:40002",
    },
    Topic {
        name: "peers",
        section: Section::Network,
        summary: "the peers this peer knows of, and how",
        usage: "peers",
        about: "list the peers this peer knows of (its book, kept across runs): how each \
                was learned and when it was last seen",
        example: "peers",
    },
    Topic {
        name: "nearby",
        section: Section::Network,
        summary: "the peers heard on the LAN (with --lan)",
        usage: "nearby",
        about: "list the peers that announced themselves on the LAN (--lan turns this on): \
                a name is a claim, (unverified) until a pin or the registry vouches for its \
                key; chat request NAME reaches them with no registry",
        example: "nearby",
    },
    Topic {
        name: "graph",
        section: Section::Network,
        summary: "the network as this peer knows it (DOT or JSON)",
        usage: "graph [--json]",
        about: "print this peer, its registry, chat partners, the peers the registry lists, \
                the book and the LAN as Graphviz DOT (for dot -Tsvg), or JSON with --json; \
                each edge says how the peer is known and when it was last seen",
        example: "graph",
    },
    Topic {
        name: "broadcast",
        section: Section::Network,
        summary: "send TEXT to every peer that can be reached",
        usage: "broadcast TEXT",
        about: "send TEXT to every peer of the network that can be reached, directly or \
                through others; each shows it once",
        example: "broadcast The lab closes at 18:00 today",
    },
    Topic {
        name: "block",
        section: Section::Network,
        summary: "drop broadcasts and requests from NAME",
        usage: "block NAME",
        about: "drop broadcasts and chat requests from the keys NAME means here (pinned, \
                in the book, or a chat partner's), from now on and across runs",
        example: "block mallory",
    },
    Topic {
        name: "unblock",
        section: Section::Network,
        summary: "undo block NAME",
        usage: "unblock NAME",
        about: "undo block NAME",
        example: "unblock mallory",
    },
    Topic {
        name: "status",
        section: Section::Peer,
        summary: "name, address, registry, chats, requests",
        usage: "status",
        about: "show this peer's name and address, the registry, chats and pending requests",
        example: "status",
    },
    Topic {
        name: "whoami",
        section: Section::Peer,
        summary: "this peer's name and key fingerprint",
        usage: "whoami",
        about: "show this peer's name and key fingerprint (others see the same fingerprint)",
        example: "whoami",
    },
    Topic {
        name: "trust",
        section: Section::Peer,
        summary: "accept a changed key with this fingerprint",
        usage: "trust PEER FINGERPRINT | trust peer PEER FINGERPRINT | trust registry FINGERPRINT",
        about: "accept the new key a peer (or the registry) presented, only if it has the \
                fingerprint you checked with its owner; trust peer PEER always means a peer, \
                even one called registry",
        example: "trust bob 3f2a:9c1d:77e0:b4a2:05c8:e1f3:6a2b:d940   or   \
                  trust peer registry 3f2a:9c1d:77e0:b4a2:05c8:e1f3:6a2b:d940",
    },
    Topic {
        name: "help",
        section: Section::Peer,
        summary: "list the commands, or explain one or a section",
        usage: "help [COMMAND]",
        about: "list the commands, or explain one",
        example: "help chat message",
    },
    Topic {
        name: "exit",
        section: Section::Peer,
        summary: "end every chat, leave the registry and quit",
        usage: "exit",
        about: "end every chat, leave the registry and quit (so do Ctrl-C and end of input)",
        example: "exit",
    },
];

/// The width of the usage column in `help`.
const USAGE_COLUMN: usize = 30;

/// The text of `help`: every command on one line, by section.
pub fn help_text() -> String {
    let mut text =
        String::from("commands (help COMMAND explains one, help SECTION lists one section):");
    for section in Section::ALL {
        text.push('\n');
        text.push_str(&section_text(section));
    }
    text
}

/// The text of `help SECTION`: the section's commands, one line each.
pub fn section_text(section: Section) -> String {
    let mut text = format!("{} (help {}):", section.heading(), section.word());
    for t in TOPICS.iter().filter(|t| t.section == section) {
        let usage = t.usage.split(" | ").next().unwrap_or(t.usage);
        text.push_str(&format!("\n  {usage:<USAGE_COLUMN$}{}", t.summary));
    }
    text
}

/// The text of `help COMMAND`, wrapped to [`WIDTH`].
pub fn topic_text(topic: &Topic) -> String {
    let usages: Vec<&str> = topic.usage.split(" | ").collect();
    let mut text = format!("usage: {}", usages.join("\n       "));
    for line in textwrap::wrap(
        topic.about,
        textwrap::Options::new(WIDTH)
            .initial_indent("    ")
            .subsequent_indent("    "),
    ) {
        text.push('\n');
        text.push_str(&line);
    }
    let examples: Vec<&str> = topic.example.split("   or   ").collect();
    text.push_str(&format!("\nexample: {}", examples.join("\n         ")));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widest(text: &str) -> usize {
        text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
    }

    #[test]
    fn all_help_fits_80_columns() {
        assert!(widest(&help_text()) <= WIDTH, "{}", help_text());
        for t in TOPICS {
            assert!(widest(&topic_text(t)) <= WIDTH, "{}", topic_text(t));
        }
    }

    #[test]
    fn every_command_is_in_exactly_one_listed_section() {
        let all = help_text();
        for t in TOPICS {
            let first = t.usage.split(" | ").next().unwrap();
            assert!(all.contains(first), "{} is listed", t.name);
            assert!(section_text(t.section).contains(first));
        }
    }

    #[test]
    fn help_chat_lists_the_chat_commands() {
        let chat = section_text(Section::Chat);
        for command in [
            "chat request",
            "chat message",
            "yes",
            "no",
            "talk",
            "disconnect",
        ] {
            assert!(
                chat.contains(&format!("\n  {command} ")),
                "{command} in {chat}"
            );
        }
        assert!(!chat.contains("register"));
    }
}
