//! The command parser: `p2p_peer::command::parse` on any line of text.
//!
//! Checks, besides never panicking:
//! - a line with no words is `Ok(None)`, and only such a line;
//! - every command is made of the words of the line: names are the words typed, fixed words
//!   are where they belong, `help` names a topic that starts with the words after it;
//! - `chat message PEER TEXT`: TEXT is a suffix of the line, starts with no blank, and holds
//!   exactly the words after PEER (a longer TEXT than one message takes is sent in parts);
//!   a `broadcast` TEXT is at most `MAX_TEXT_LEN` bytes;
//! - a `chat request HOST PORT` port is a port one can connect to (1-65535, as the error
//!   message says);
//! - a `trust` fingerprint is the 32 hex digits typed, as `whoami` prints them;
//! - blanks before the command change nothing;
//! - an error is one line of printable text (the peer prints it after `error: `).
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2p_peer::command::{parse, Command, HelpOn, Section, Target, TOPICS};
use p2p_shared::wire::MAX_TEXT_LEN;

/// `typed` is 32 hex digits in any case, with colons anywhere, and `fingerprint` is them in
/// lower case, in eight groups of four, as `whoami` prints them.
fn assert_fingerprint(typed: &str, fingerprint: &str) {
    let digits: String = typed.chars().filter(|&c| c != ':').collect();
    assert_eq!(digits.len(), 32, "{typed:?} taken for a fingerprint");
    assert!(digits.bytes().all(|b| b.is_ascii_hexdigit()), "{typed:?}");
    let groups: Vec<&str> = fingerprint.split(':').collect();
    assert_eq!(groups.len(), 8, "{fingerprint:?}");
    assert!(groups.iter().all(|g| g.len() == 4), "{fingerprint:?}");
    assert_eq!(groups.concat(), digits.to_ascii_lowercase());
}

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let line: &str = &line;
    let words: Vec<&str> = line.split_whitespace().collect();
    let result = parse(line);

    let command = match &result {
        Ok(None) => {
            assert!(words.is_empty(), "{line:?} has words but no command");
            return;
        }
        Ok(Some(command)) => command,
        Err(e) => {
            assert!(!words.is_empty(), "{line:?} has no words but an error");
            let text = e.to_string();
            assert!(!text.is_empty());
            assert!(
                !text.chars().any(char::is_control),
                "the error for {line:?} is not one printable line: {text:?}"
            );
            assert_eq!(
                parse(&format!(" \t{line}")).map_err(|e| e.to_string()),
                Err(text)
            );
            return;
        }
    };

    match command {
        Command::Register => assert_eq!(words, ["register"]),
        Command::ListPeers => assert_eq!(words, ["listpeer"]),
        Command::ExitNetwork => assert_eq!(words, ["exit", "network"]),
        Command::Exit => assert_eq!(words, ["exit"]),
        Command::Status => assert_eq!(words, ["status"]),
        Command::Whoami => assert_eq!(words, ["whoami"]),
        Command::ReleaseName => assert_eq!(words, ["release", "name"]),
        Command::KnownPeers => assert_eq!(words, ["peers"]),
        Command::Nearby => assert_eq!(words, ["nearby"]),
        Command::Graph { json: false } => assert_eq!(words, ["graph"]),
        Command::Graph { json: true } => assert_eq!(words, ["graph", "--json"]),
        Command::Broadcast { text } => {
            assert_eq!(words[0], "broadcast");
            assert!(
                !text.is_empty() && line.ends_with(text.as_str()),
                "{line:?}"
            );
            assert!(text.len() <= MAX_TEXT_LEN);
        }
        Command::Block { peer } => assert_eq!(words, ["block", peer.as_str()]),
        Command::Unblock { peer } => assert_eq!(words, ["unblock", peer.as_str()]),
        Command::Forget { peer } => assert_eq!(words, ["forget", peer.as_str()]),
        Command::Join { host, port } => {
            assert_eq!(words[0], "join");
            assert_ne!(*port, 0, "{line:?}");
            match words[1..] {
                [h, p] => assert_eq!((h, p.parse::<u16>()), (host.as_str(), Ok(*port))),
                [hp] => assert!(hp.ends_with(&format!(":{port}")) && hp.contains(host.as_str())),
                _ => panic!("{line:?} has too many words for join"),
            }
        }
        Command::ListConnected => {
            assert_eq!(words[..2], ["list", "connected"]);
            assert!(matches!(words[2..], ["peer"] | ["peers"]));
        }
        Command::Help(HelpOn::All) => assert_eq!(words, ["help"]),
        Command::Help(HelpOn::Section(section)) => {
            assert_eq!(words, ["help", section.word()]);
            assert!(Section::ALL.contains(section));
        }
        Command::Talk(None) => assert_eq!(words, ["talk"]),
        Command::Contacts => assert_eq!(words, ["contacts"]),
        Command::Bell(on) => assert_eq!(words, ["bell", if *on { "on" } else { "off" }]),
        Command::Talk(Some(peer)) => assert_eq!(words, ["talk", peer.as_str()]),
        Command::Help(HelpOn::Topic(topic)) => {
            assert_eq!(words[0], "help");
            assert!(TOPICS.contains(topic));
            let asked = words[1..].join(" ");
            assert!(
                topic.name.starts_with(&asked),
                "{asked:?} gave {:?}",
                topic.name
            );
        }
        Command::History { peer, n } => {
            assert_eq!(words[..2], ["history", peer.as_str()]);
            match words[2..] {
                [] => assert!(*n > 0),
                [count] => {
                    assert_eq!(count.parse::<usize>(), Ok(*n));
                    // MAX_HISTORY in command.rs (private there).
                    assert!((1..=10_000).contains(n), "{line:?} gave {n} lines");
                }
                _ => panic!("{line:?} has too many words for history"),
            }
        }
        Command::Trust { peer, fingerprint } => {
            // `trust PEER FP`, or `trust peer PEER FP` whatever PEER is called.
            let (named, typed) = match words[..] {
                ["trust", "peer", named, typed] => (named, typed),
                ["trust", named, typed] => {
                    assert_ne!(named, "registry", "trust registry is another command");
                    (named, typed)
                }
                _ => panic!("{line:?} has the wrong words for trust"),
            };
            assert_eq!(named, peer.as_str());
            assert_fingerprint(typed, fingerprint);
        }
        Command::TrustRegistry { fingerprint } => {
            assert_eq!(words[..2], ["trust", "registry"]);
            assert_eq!(words.len(), 3);
            assert_fingerprint(words[2], fingerprint);
        }
        Command::Disconnect { peer } => assert_eq!(words, ["disconnect", peer.as_str()]),
        Command::Answer { accept, from } => {
            assert_eq!(words[0], if *accept { "yes" } else { "no" });
            assert_eq!(words.get(1).copied(), from.as_ref().map(|n| n.as_str()));
            assert!(words.len() <= 2);
        }
        Command::ChatRequest(Target::Name(name)) => {
            assert_eq!(words, ["chat", "request", name.as_str()])
        }
        Command::ChatRequest(Target::Addr { host, port }) => {
            assert_eq!(words[..2], ["chat", "request"]);
            match words[2..] {
                [h, p] => assert_eq!((h, p.parse::<u16>()), (host.as_str(), Ok(*port))),
                // HOST:PORT as one word ([V6]:PORT too).
                [hp] => assert!(hp.ends_with(&format!(":{port}")) && hp.contains(host.as_str())),
                _ => panic!("{line:?} has too many words for chat request"),
            }
            // Port 0 parsed until the fuzzers' finding 2 in docs/testing.md.
            assert_ne!(*port, 0, "{line:?}: port 0 is no port to connect to");
        }
        Command::ChatMessage { peer, text } => {
            assert_eq!(words[..3], ["chat", "message", peer.as_str()]);
            assert!(
                line.ends_with(text.as_str()),
                "{text:?} is not the end of {line:?}"
            );
            assert!(!text.is_empty());
            assert_eq!(text.trim_start(), text);
            assert_eq!(text.split_whitespace().collect::<Vec<_>>(), words[3..]);
        }
    }
    assert_eq!(
        parse(&format!(" \t{line}")).ok(),
        Some(Some(command.clone()))
    );
});
