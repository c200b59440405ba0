//! The documentation of every command: what `help` and `help COMMAND` print, and what the
//! terminal's hints and completion know (`terminal.rs`). Apart from the parser
//! (`command.rs`), which only looks a topic up by name for `help COMMAND`.

/// One command's documentation: what `help COMMAND` prints, and what the terminal's hints
/// and completion know about it.
#[derive(Debug, PartialEq, Eq)]
pub struct Topic {
    /// The command's fixed words, as typed.
    pub name: &'static str,
    /// The command with its arguments in capitals.
    pub usage: &'static str,
    pub about: &'static str,
    pub example: &'static str,
}

/// Every command, in the order `help` lists them.
pub const TOPICS: &[Topic] = &[
    Topic {
        name: "register",
        usage: "register",
        about: "register this peer's name and listening address at the registry",
        example: "register",
    },
    Topic {
        name: "listpeer",
        usage: "listpeer",
        about: "list every peer registered at the registry, with its address",
        example: "listpeer",
    },
    Topic {
        name: "exit network",
        usage: "exit network",
        about: "leave the registry; open chats stay open",
        example: "exit network",
    },
    Topic {
        name: "join",
        usage: "join HOST PORT | join HOST:PORT",
        about: "reach the peer at that address and exchange known peers with it: works \
                with no registry at all",
        example: "join 192.168.1.20 40002   or   join 192.168.1.20:40002",
    },
    Topic {
        name: "peers",
        usage: "peers",
        about: "list the peers this peer knows of (its book, kept across runs): how each \
                was learned and when it was last seen",
        example: "peers",
    },
    Topic {
        name: "broadcast",
        usage: "broadcast TEXT",
        about: "send TEXT to every peer of the network that can be reached, directly or \
                through others; each shows it once",
        example: "broadcast The lab closes at 18:00 today",
    },
    Topic {
        name: "block",
        usage: "block NAME",
        about: "drop broadcasts and chat requests from the keys NAME means here (pinned, \
                in the book, or a chat partner's), from now on and across runs",
        example: "block mallory",
    },
    Topic {
        name: "unblock",
        usage: "unblock NAME",
        about: "undo block NAME",
        example: "unblock mallory",
    },
    Topic {
        name: "forget",
        usage: "forget NAME",
        about: "end the chat with NAME (open or away), drop the messages kept for it and the \
                key pinned for it: the next contact is a first one",
        example: "forget bob",
    },
    Topic {
        name: "chat request",
        usage: "chat request HOST PORT | chat request HOST:PORT | chat request NAME",
        about: "ask a peer for a chat, by address or by its registered name; \
                its user answers yes or no",
        example: "chat request 192.168.1.20 40002   or   chat request bob",
    },
    Topic {
        name: "yes",
        usage: "yes [NAME]",
        about: "accept the pending chat request (name the requester when several wait)",
        example: "yes   or   yes carol",
    },
    Topic {
        name: "no",
        usage: "no [NAME]",
        about: "decline the pending chat request (name the requester when several wait)",
        example: "no   or   no carol",
    },
    Topic {
        name: "chat message",
        usage: "chat message PEER TEXT",
        about: "send TEXT, the rest of the line as typed, to a peer you are chatting with",
        example: "chat message bob See you at 10, in room 2.14",
    },
    Topic {
        name: "list connected peer",
        usage: "list connected peer",
        about: "list the peers you are chatting with",
        example: "list connected peer",
    },
    Topic {
        name: "disconnect",
        usage: "disconnect PEER",
        about: "end the chat with a peer; it is told",
        example: "disconnect bob",
    },
    Topic {
        name: "history",
        usage: "history PEER [N]",
        about: "show the last N lines (default 20) of the chat with PEER, kept across runs",
        example: "history bob 50",
    },
    Topic {
        name: "status",
        usage: "status",
        about: "show this peer's name and address, the registry, chats and pending requests",
        example: "status",
    },
    Topic {
        name: "whoami",
        usage: "whoami",
        about: "show this peer's name and key fingerprint (others see the same fingerprint)",
        example: "whoami",
    },
    Topic {
        name: "trust",
        usage: "trust PEER FINGERPRINT | trust peer PEER FINGERPRINT | trust registry FINGERPRINT",
        about: "accept the new key a peer (or the registry) presented, only if it has the \
                fingerprint you checked with its owner; trust peer PEER always means a peer, \
                even one called registry",
        example: "trust bob 3f2a:9c1d:77e0:b4a2:05c8:e1f3:6a2b:d940   or   \
                  trust peer registry 3f2a:9c1d:77e0:b4a2:05c8:e1f3:6a2b:d940",
    },
    Topic {
        name: "release name",
        usage: "release name",
        about: "give up this peer's name at the registry for good, so another key may take it",
        example: "release name",
    },
    Topic {
        name: "help",
        usage: "help [COMMAND]",
        about: "list the commands, or explain one",
        example: "help chat message",
    },
    Topic {
        name: "exit",
        usage: "exit",
        about: "end every chat, leave the registry and quit (so do Ctrl-C and end of input)",
        example: "exit",
    },
];

/// The text of `help`: every command on one line.
pub fn help_text() -> String {
    let mut text = String::from("commands:");
    for t in TOPICS {
        text.push_str(&format!("\n    {:<44}{}", t.usage, t.about));
    }
    text.push_str("\ntype help COMMAND for an example");
    text
}

/// The text of `help COMMAND`.
pub fn topic_text(topic: &Topic) -> String {
    format!(
        "usage: {}\n    {}\nexample: {}",
        topic.usage, topic.about, topic.example
    )
}
