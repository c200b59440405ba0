//! The current conversation (`talk PEER`), and how one input becomes the commands it holds.
//!
//! At the prompt a person types commands. In a conversation, as in irssi or weechat, plain
//! lines are messages to the partner and commands start with `/`, so that a message saying
//! "no" or "exit" is a message. A paste may hold several lines: pasted at an empty prompt
//! they are several commands, each run in turn; after `chat message PEER ` (or in a
//! conversation) they are one message of several lines.
//!
//! A JSON command is exactly one command ([`Talk::command`]): its text comes from a script,
//! which may have put outside text into it (`broadcast {text}`), so a line break in it never
//! starts another command. One may appear only inside a message's text, where a paste may
//! put one too.
//!
//! This is pure: it turns what was typed into commands and says what the prompt shows; the
//! command loop runs them.

use p2p_shared::PeerName;

use crate::command::{self, Command, ParseError};
use crate::error::PeerError;

/// A line's command: nothing (a blank line), a command, or why it is not one.
pub type Parsed = Result<Option<Command>, ParseError>;

/// The prompt outside a conversation.
pub const PROMPT: &str = ">> ";

/// Who plain lines go to, if anyone.
#[derive(Debug, Default)]
pub struct Talk {
    with: Option<PeerName>,
}

impl Talk {
    pub fn set(&mut self, with: Option<PeerName>) {
        self.with = with;
    }

    /// Who plain lines go to, if anyone.
    pub fn with(&self) -> Option<PeerName> {
        self.with
    }

    /// What the prompt shows: the partner's name in a conversation.
    pub fn prompt(&self) -> String {
        match self.with {
            Some(peer) => format!("{peer}> "),
            None => PROMPT.to_string(),
        }
    }

    /// The commands `text` holds, in order. `pasted_at_start` says it is a paste that began
    /// at an empty prompt (only a terminal can tell).
    pub fn commands(&self, text: &str, pasted_at_start: bool) -> Vec<Parsed> {
        match self.with {
            Some(peer) => conversation(peer, text),
            None if !text.contains('\n') => vec![parse(text)],
            None if pasted_at_start => text.lines().map(parse).collect(),
            None => match parse(text) {
                // `chat message bob ` and then a paste: one message of several lines.
                whole @ Ok(Some(Command::ChatMessage { .. } | Command::Broadcast { .. })) => {
                    vec![whole]
                }
                _ => text.lines().map(parse).collect(),
            },
        }
    }

    /// The one command a JSON command's `text` is: read as a typed line is (in a
    /// conversation, a message unless it starts with `/`), but never taken as several. A
    /// line break outside the text of a message refuses it whole.
    pub fn command(&self, text: &str) -> Result<Option<Command>, PeerError> {
        match self.with {
            Some(peer) => match text.trim_start().strip_prefix('/') {
                // `//text` says a message that starts with a slash.
                Some(rest) if rest.starts_with('/') => Ok(message(peer, rest)),
                Some(command) => one_command(command),
                None => Ok(message(peer, text)),
            },
            None => one_command(text),
        }
    }
}

/// `line` as exactly one command: a line break is refused anywhere but in the text of a
/// command that takes one (`command::text_start`), however the rest parses.
fn one_command(line: &str) -> Result<Option<Command>, PeerError> {
    let breaks = |s: &str| s.contains(['\n', '\r']);
    let parsed = match parse(line) {
        Ok(parsed) => parsed,
        Err(_) if breaks(line) => return Err(PeerError::LineBreakInCommand),
        Err(e) => return Err(PeerError::Usage(e)),
    };
    let words = match &parsed {
        Some(command) => command::text_start(line, command).unwrap_or(line.len()),
        None => line.len(),
    };
    // The blanks between the words and the text are the text's: a script's text may start
    // with a line break, which `chat message` drops as a paste's.
    match breaks(line[..words].trim_end()) {
        true => Err(PeerError::LineBreakInCommand),
        false => Ok(parsed),
    }
}

/// In a conversation with `peer`: the whole text is one message, unless it starts with `/`,
/// when each of its lines is taken on its own.
fn conversation(peer: PeerName, text: &str) -> Vec<Parsed> {
    if text.trim_start().starts_with('/') {
        text.lines()
            .map(|line| conversation_line(peer, line))
            .collect()
    } else {
        vec![Ok(message(peer, text))]
    }
}

fn conversation_line(peer: PeerName, line: &str) -> Parsed {
    let trimmed = line.trim_start();
    match trimmed.strip_prefix('/') {
        // `//text` says a message that starts with a slash.
        Some(rest) if rest.starts_with('/') => Ok(message(peer, rest)),
        Some(command) => parse(command),
        None => Ok(message(peer, line)),
    }
}

/// A message of `text` as typed, without the line breaks a paste ends (or starts) with;
/// nothing for a blank text.
fn message(peer: PeerName, text: &str) -> Option<Command> {
    let text = text.trim_matches(['\n', '\r']);
    (!text.trim().is_empty()).then(|| Command::ChatMessage {
        peer,
        text: text.to_string(),
    })
}

fn parse(line: &str) -> Parsed {
    match command::parse(line)? {
        Some(Command::ChatMessage { peer, text }) => Ok(message(peer, &text)),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    fn message(peer: &str, text: &str) -> Parsed {
        Ok(Some(Command::ChatMessage {
            peer: name(peer),
            text: text.into(),
        }))
    }

    fn talking(peer: &str) -> Talk {
        let mut talk = Talk::default();
        talk.set(Some(name(peer)));
        talk
    }

    #[test]
    fn outside_a_conversation_a_line_is_a_command() {
        let talk = Talk::default();
        assert_eq!(
            talk.commands("whoami", false),
            vec![Ok(Some(Command::Whoami))]
        );
        assert_eq!(talk.commands("   ", false), vec![Ok(None)]);
        assert_eq!(talk.prompt(), ">> ");
    }

    #[test]
    fn a_paste_at_an_empty_prompt_is_one_command_per_line() {
        let talk = Talk::default();
        let got = talk.commands("whoami\nchat message bob hi\nstatus\n", true);
        assert_eq!(
            got,
            vec![
                Ok(Some(Command::Whoami)),
                message("bob", "hi"),
                Ok(Some(Command::Status))
            ]
        );
    }

    #[test]
    fn a_paste_after_chat_message_is_one_message_of_several_lines() {
        let talk = Talk::default();
        assert_eq!(
            talk.commands("chat message bob first\nsecond\nthird\n", false),
            vec![message("bob", "first\nsecond\nthird")]
        );
        // Typed `chat message bob`, then pasted lines that start with a line break.
        assert_eq!(
            talk.commands("chat message bob\nfirst\nsecond", false),
            vec![message("bob", "first\nsecond")]
        );
        // Other commands with a paste after them are taken line by line.
        assert_eq!(
            talk.commands("whoami\nstatus", false),
            vec![Ok(Some(Command::Whoami)), Ok(Some(Command::Status))]
        );
    }

    #[test]
    fn in_a_conversation_plain_lines_are_messages_and_commands_start_with_a_slash() {
        let talk = talking("bob");
        assert_eq!(talk.prompt(), "bob> ");
        assert_eq!(talk.commands("exit", false), vec![message("bob", "exit")]);
        assert_eq!(talk.commands("no", false), vec![message("bob", "no")]);
        assert_eq!(
            talk.commands("  hi  there ", false),
            vec![message("bob", "  hi  there ")]
        );
        assert_eq!(
            talk.commands("/status", false),
            vec![Ok(Some(Command::Status))]
        );
        assert_eq!(
            talk.commands("/talk", false),
            vec![Ok(Some(Command::Talk(None)))]
        );
        assert_eq!(
            talk.commands("//etc/hosts", false),
            vec![message("bob", "/etc/hosts")]
        );
        assert_eq!(talk.commands("", false), vec![Ok(None)]);
        assert!(talk.commands("/frobnicate", false)[0].is_err());
    }

    #[test]
    fn in_a_conversation_a_paste_is_one_message_unless_it_starts_with_a_command() {
        let talk = talking("bob");
        assert_eq!(
            talk.commands("one\ntwo\nthree\n", true),
            vec![message("bob", "one\ntwo\nthree")]
        );
        assert_eq!(
            talk.commands("/whoami\nhello", true),
            vec![Ok(Some(Command::Whoami)), message("bob", "hello")]
        );
    }
    #[test]
    fn a_json_command_with_a_line_break_is_refused_not_run_as_two() {
        let talk = Talk::default();
        for text in [
            "whoami\nstatus",
            "whoami\nexit",
            "whoami\r\nexit",
            "status\rexit",
            "\nexit",
            "chat\nmessage bob hi",
            "chat message\nbob hi",
            "talk bob\nexit",
            "whoami\nchat message bob hi",
        ] {
            assert_eq!(
                talk.command(text),
                Err(PeerError::LineBreakInCommand),
                "{text:?}"
            );
        }
        // The same text typed (or pasted) is several commands: only JSON is held to one.
        assert_eq!(talk.commands("whoami\nexit", false).len(), 2);
        assert_eq!(talk.command("whoami"), Ok(Some(Command::Whoami)));
        assert_eq!(talk.command("exit  "), Ok(Some(Command::Exit)));
    }

    #[test]
    fn a_json_command_may_break_lines_in_the_text_of_a_message() {
        let talk = Talk::default();
        let one = |text: &str| talk.command(text).map(Ok);
        assert_eq!(one("chat message bob a\nb"), Ok(message("bob", "a\nb")));
        assert_eq!(
            one("chat message bob first\r\nexit\n"),
            Ok(message("bob", "first\r\nexit"))
        );
        // A script's text that starts with a line break: still the text.
        assert_eq!(one("chat message bob \nexit"), Ok(message("bob", "exit")));
        assert_eq!(
            talk.command("broadcast two\nlines"),
            Ok(Some(Command::Broadcast {
                text: "two\nlines".into()
            }))
        );
    }

    #[test]
    fn in_a_conversation_a_json_command_is_one_message_or_one_command() {
        let talk = talking("bob");
        let one = |text: &str| talk.command(text).map(Ok);
        assert_eq!(one("exit"), Ok(message("bob", "exit")));
        assert_eq!(one("hi\n/exit"), Ok(message("bob", "hi\n/exit")));
        assert_eq!(one("//x\ny"), Ok(message("bob", "/x\ny")));
        assert_eq!(talk.command("/whoami"), Ok(Some(Command::Whoami)));
        assert_eq!(
            talk.command("/whoami\n/exit"),
            Err(PeerError::LineBreakInCommand)
        );
        assert_eq!(
            one("/chat message carol a\nb"),
            Ok(message("carol", "a\nb"))
        );
    }
}
