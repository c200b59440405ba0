//! What the terminal offers while a line is typed: Tab completion and hints.
//!
//! Completion knows where a command expects a peer name (and which names: only pending
//! requesters after `yes` and `no`, never our own name), the fingerprint `trust` wants (the
//! one the peer offered when its key changed), the words `help` takes, and the command names
//! themselves, after a `/` in a conversation too. Hints show, dimmed after the cursor, the
//! arguments a command still needs.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::{Context, Helper, Validator};

use crate::command::{Section, TOPICS};
use crate::input::MAX_LINE_LEN;
use crate::names::Names;

/// Lines longer than this get no hint: no command's words are that long, and working out a
/// hint on every key of a huge paste would make typing slower the longer the line grows.
const HINTED_LINE: usize = 256;

/// rustyline's helper: completion and hints.
#[derive(Helper, Validator)]
pub struct Assistant {
    pub names: Names,
    /// Whether a conversation is on (`talk PEER`): then a line is a message unless it starts
    /// with `/`, and a message gets no hints and completes peer names only.
    pub talking: Arc<AtomicBool>,
}

impl Assistant {
    fn talking(&self) -> bool {
        self.talking.load(Ordering::Relaxed)
    }
}

impl Completer for Assistant {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let line = &line[..pos];
        if self.talking() && !line.starts_with('/') {
            let start = line.rfind(char::is_whitespace).map_or(0, |i| i + 1);
            return Ok((start, self.names.starting_with(&line[start..])));
        }
        Ok(completions(line, &self.names))
    }
}

impl Hinter for Assistant {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, _: &Context<'_>) -> Option<String> {
        if pos != line.len() {
            return None;
        }
        if line.len() > MAX_LINE_LEN {
            // Keys are being dropped (`keys.rs`): say so where the user looks.
            return Some(format!(
                "  <- the line is longer than {MAX_LINE_LEN} bytes: what follows is not taken \
                 (Enter refuses it, Ctrl-C clears it)"
            ));
        }
        if line.len() > HINTED_LINE {
            return None;
        }
        match line.strip_prefix('/') {
            Some(command) => hint(command),
            None if self.talking() => None,
            None => hint(line),
        }
    }
}

impl Highlighter for Assistant {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            Cow::Borrowed(hint)
        } else {
            Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
        }
    }
}

/// Where the word being completed starts, and its candidates.
fn completions(line: &str, names: &Names) -> (usize, Vec<String>) {
    // In a conversation commands start with `/`: complete what follows it.
    if let Some(command) = line.strip_prefix('/') {
        let (start, candidates) = completions(command, names);
        return (start + 1, candidates);
    }
    let start = line.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let before: Vec<&str> = line[..start].split_whitespace().collect();
    let word = &line[start..];
    let words = |candidates: Vec<String>| -> Vec<String> {
        candidates
            .into_iter()
            .filter(|c| c.starts_with(word))
            .map(|c| c + " ")
            .collect()
    };
    let candidates = match before.as_slice() {
        ["yes" | "no"] => words(names.requesters_starting_with(word)),
        ["trust"] => {
            let mut all = names.starting_with(word);
            all.extend(["peer".to_string(), "registry".to_string()]);
            words(all)
        }
        ["trust", "registry"] => Vec::new(),
        ["trust", "peer"] => words(names.starting_with(word)),
        ["trust", "peer", peer] | ["trust", peer] => {
            words(names.offered_fingerprint(peer).into_iter().collect())
        }
        ["chat", "message" | "request"]
        | ["disconnect" | "history" | "talk" | "block" | "unblock" | "forget"] => {
            words(names.starting_with(word))
        }
        ["help", ..] => {
            let typed = line["help".len()..].trim_start();
            let offset = line.len() - typed.len();
            let topics = TOPICS.iter().map(|t| t.name);
            let sections = Section::ALL.into_iter().map(Section::word);
            let mut all: Vec<&str> = topics
                .chain(sections)
                .filter(|n| n.starts_with(typed))
                .collect();
            all.sort_unstable();
            all.dedup();
            return (offset, all.into_iter().map(|n| format!("{n} ")).collect());
        }
        // The first words of a command of several ("chat ", "list ").
        _ => return commands(line),
    };
    (start, candidates)
}

/// The commands that complete what is typed from the start of the line.
fn commands(line: &str) -> (usize, Vec<String>) {
    let typed = line.trim_start();
    let offset = line.len() - typed.len();
    let commands = TOPICS
        .iter()
        .filter(|t| t.name.starts_with(typed) && t.name != typed.trim_end())
        .map(|t| format!("{} ", t.name))
        .collect();
    (offset, commands)
}

/// What to show after the cursor: the rest of the command's name and the arguments it still
/// needs, e.g. `chat m` -> `essage PEER TEXT`.
fn hint(line: &str) -> Option<String> {
    let typed: Vec<&str> = line.split_whitespace().collect();
    let (done, partial) = match (line.ends_with(char::is_whitespace), typed.split_last()) {
        (_, None) => return None,
        (true, _) => (typed.as_slice(), None),
        (false, Some((last, done))) => (done, Some(*last)),
    };
    // A complete one-word command ("exit") is not a prefix of a longer one ("exit network").
    if done.is_empty() && TOPICS.iter().any(|t| Some(t.name) == partial) && partial != Some("chat")
    {
        let topic = TOPICS.iter().find(|t| Some(t.name) == partial)?;
        let args: Vec<&str> = topic
            .usage
            .split(" | ")
            .next()?
            .split(' ')
            .skip(1)
            .collect();
        return (!args.is_empty()).then(|| format!(" {}", args.join(" ")));
    }
    let is_arg = |w: &str| w.starts_with('[') || w.chars().all(|c| c.is_ascii_uppercase());
    TOPICS
        .iter()
        .flat_map(|t| t.usage.split(" | "))
        .find_map(|usage| {
            let words: Vec<&str> = usage.split(' ').collect();
            if done.len() >= words.len()
                || !done.iter().zip(&words).all(|(t, u)| is_arg(u) || t == u)
            {
                return None;
            }
            let (next, rest) = (words[done.len()], &words[done.len() + 1..]);
            let rest = rest.iter().map(|w| format!(" {w}")).collect::<String>();
            match partial {
                None => Some(format!("{next}{rest}")),
                Some(p) if !is_arg(next) && next.starts_with(p) => {
                    Some(format!("{}{rest}", &next[p.len()..]))
                }
                Some(_) if is_arg(next) && !rest.is_empty() => Some(rest),
                Some(_) => None,
            }
        })
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::{Event, PeerKey};

    fn names() -> Names {
        crate::names::sample()
    }

    fn completed(line: &str, names: &Names) -> Vec<String> {
        completions(line, names).1
    }

    #[test]
    fn completes_peer_names_where_a_command_expects_one_but_never_our_own() {
        let names = names();
        assert_eq!(
            completions("disconnect b", &names),
            (11, vec!["bea ".into(), "bob ".into()])
        );
        assert_eq!(
            completions("chat message c", &names),
            (13, vec!["carol ".into()])
        );
        for command in [
            "history",
            "talk",
            "block",
            "forget",
            "chat request",
            "trust peer",
        ] {
            assert_eq!(completed(&format!("{command} c"), &names), vec!["carol "]);
        }
        // alice is registered too, but she is us.
        assert!(completed("chat message a", &names).is_empty());
        assert!(completed("history a", &names).is_empty());
    }

    #[test]
    fn yes_and_no_complete_only_pending_requesters() {
        let names = names();
        assert!(completed("yes ", &names).is_empty());
        names.note(&Event::RequestArrived {
            peer: "dave".parse().unwrap(),
            addr: "127.0.0.1:2".parse().unwrap(),
            expires_in: Duration::from_secs(60),
            key: PeerKey(p2p_shared::identity::Identity::generate().public()),
            verified: true,
            unanswered: false,
        });
        assert_eq!(completed("yes ", &names), vec!["dave "]);
        assert_eq!(completed("no d", &names), vec!["dave "]);
    }

    #[test]
    fn trust_completes_a_name_then_the_fingerprint_that_name_offered() {
        let names = names();
        assert_eq!(completed("trust c", &names), vec!["carol "]);
        assert_eq!(completed("trust r", &names), vec!["registry "]);
        let offered = "3f2a:9c1d:77e0:b4a2:05c8:e1f3:6a2b:d940";
        names.note(&Event::KeyChanged {
            peer: "bob".parse().unwrap(),
            pinned: "old".into(),
            offered: offered.into(),
            pinned_key: p2p_shared::identity::Identity::generate().public(),
            offered_key: p2p_shared::identity::Identity::generate().public(),
        });
        assert_eq!(completed("trust bob ", &names), vec![format!("{offered} ")]);
        assert_eq!(
            completed("trust peer bob 3f", &names),
            vec![format!("{offered} ")]
        );
        assert!(completed("trust carol ", &names).is_empty());
        assert!(completed("trust bob 00", &names).is_empty());
    }

    #[test]
    fn completes_commands_from_the_start_of_the_line_or_after_a_slash() {
        let names = names();
        assert_eq!(
            completions("li", &names),
            (0, vec!["listpeer ".into(), "list connected peer ".into()])
        );
        assert_eq!(
            completions("chat ", &names),
            (0, vec!["chat request ".into(), "chat message ".into()])
        );
        assert_eq!(completions("/ta", &names), (1, vec!["talk ".into()]));
        assert_eq!(
            completions("/disconnect c", &names),
            (12, vec!["carol ".into()])
        );
        assert!(completed("zz", &names).is_empty());
    }

    #[test]
    fn help_completes_commands_and_sections() {
        let names = names();
        assert_eq!(
            completions("help ch", &names),
            (
                5,
                vec![
                    "chat ".into(),
                    "chat message ".into(),
                    "chat request ".into()
                ]
            )
        );
        assert_eq!(completed("help net", &names), vec!["network "]);
    }

    #[test]
    fn hints_show_what_a_command_still_needs() {
        assert_eq!(hint("chat m").as_deref(), Some("essage PEER TEXT"));
        assert_eq!(hint("chat message ").as_deref(), Some("PEER TEXT"));
        assert_eq!(hint("chat message bob").as_deref(), Some(" TEXT"));
        assert_eq!(hint("disconnect").as_deref(), Some(" PEER"));
        assert_eq!(hint("exit"), None);
        assert_eq!(hint("chat message bob hello there"), None);
        assert_eq!(hint(""), None);
        assert_eq!(hint("frobnicate "), None);
    }
}
