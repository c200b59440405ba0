//! Where commands come from: stdin, read on its own thread, and Ctrl-C.
//!
//! This is the plain mode, for pipes and scripts (`terminal.rs` is the interactive one).
//! Reading stdin blocks, so a dedicated thread reads it line by line and hands each line to
//! the command loop over a bounded channel: a huge piped file waits in the pipe, not in memory.
//! Lines are bounded too ([`MAX_LINE_LEN`]); a longer one is dropped with an error instead of
//! growing a buffer without limit. Ctrl-C (and SIGTERM, SIGHUP) arrives on a channel of its
//! own (`p2p_shared::signals`) so it is never stuck behind queued lines; a second one quits
//! at once.

use std::io::{self, BufRead, IsTerminal, Write};

use anyhow::Context;

use crate::error::PeerError;

/// The longest input line, in bytes.
pub const MAX_LINE_LEN: usize = 16 * 1024;

/// One thing from the user.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    Line(String),
    /// A terminal paste that began at an empty prompt, possibly of several lines (only the
    /// interactive terminal can tell a paste from typing).
    Pasted(String),
    /// A line that could not be taken, and why.
    Unreadable(PeerError),
    /// End of input.
    End,
}

/// The command loop's sources of input.
pub struct Inputs {
    pub lines: async_channel::Receiver<Input>,
    pub interrupts: async_channel::Receiver<()>,
    /// Told the prompt to show when a line's commands have finished, if the source waits
    /// for that before reading the next line (the interactive prompt does; a pipe reads
    /// ahead).
    pub done: Option<async_channel::Sender<String>>,
    /// Messages from scripts, through the control socket (`control.rs`).
    pub control: async_channel::Receiver<crate::control::Request>,
}

/// Starts the thread that reads stdin line by line (the plain mode, for pipes).
pub fn plain_lines() -> anyhow::Result<async_channel::Receiver<Input>> {
    let (tx, lines) = async_channel::bounded(16);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut stdin = io::stdin().lock();
            loop {
                let input = read_line(&mut stdin, MAX_LINE_LEN).unwrap_or(Input::End);
                let end = input == Input::End;
                if tx.send_blocking(input).is_err() || end {
                    break;
                }
            }
        })
        .context("cannot start the stdin reader")?;
    Ok(lines)
}

/// Asks a start-up question (`serverport: `) and returns the answer. The question is shown
/// only to a person at a terminal; a script just supplies the line.
pub fn ask(question: &str) -> anyhow::Result<String> {
    if io::stdin().is_terminal() {
        let mut out = io::stdout().lock();
        let _ = write!(out, "{question}");
        let _ = out.flush();
    }
    match read_line(&mut io::stdin().lock(), MAX_LINE_LEN)? {
        Input::Line(line) | Input::Pasted(line) => Ok(line.trim().to_string()),
        Input::Unreadable(why) => anyhow::bail!("{why}"),
        Input::End => anyhow::bail!("input ended before the answer to {:?}", question.trim()),
    }
}

/// Asks `question` until the answer is one `parse` takes. At a terminal a wrong answer is
/// said (on stderr) and the question asked again, as a person would expect; a script's
/// wrong answer ends the program with that error (asking again would take its next line).
pub fn ask_until<T>(
    question: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> anyhow::Result<T> {
    loop {
        let answer = ask(question)?;
        match parse(&answer) {
            Ok(value) => return Ok(value),
            Err(why) if io::stdin().is_terminal() => eprintln!("error: {why}; try again"),
            Err(why) => anyhow::bail!(why),
        }
    }
}

/// Reads one line of at most `max` bytes, without its line ending. Longer lines are consumed
/// to their end and reported, never buffered whole.
pub fn read_line(reader: &mut impl BufRead, max: usize) -> io::Result<Input> {
    let mut line = Vec::new();
    let mut too_long = false;
    let mut saw_anything = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            if !saw_anything {
                return Ok(Input::End);
            }
            break;
        }
        saw_anything = true;
        let (part, used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        if !too_long && line.len() + part.len() <= max {
            line.extend_from_slice(part);
        } else {
            too_long = true;
            line.clear();
        }
        reader.consume(used);
        if done {
            break;
        }
    }
    if too_long {
        return Ok(Input::Unreadable(PeerError::LineTooLong { max }));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(match String::from_utf8(line) {
        Ok(line) => Input::Line(line),
        Err(_) => Input::Unreadable(PeerError::NotUtf8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(bytes: &[u8], max: usize) -> Vec<Input> {
        // A tiny buffer makes lines arrive in pieces, as from a slow pipe.
        let mut reader = io::BufReader::with_capacity(3, bytes);
        let mut out = Vec::new();
        loop {
            let input = read_line(&mut reader, max).unwrap();
            let end = input == Input::End;
            out.push(input);
            if end {
                return out;
            }
        }
    }

    #[test]
    fn splits_lines_and_strips_endings() {
        assert_eq!(
            lines(b"register\r\nchat message bob hi  there\nlast", 100),
            vec![
                Input::Line("register".into()),
                Input::Line("chat message bob hi  there".into()),
                Input::Line("last".into()),
                Input::End
            ]
        );
    }

    #[test]
    fn overlong_and_invalid_lines_are_reported_and_skipped() {
        let got = lines(b"0123456789\nok\n\xff\xfe\nafter\n", 5);
        assert_eq!(got[0], Input::Unreadable(PeerError::LineTooLong { max: 5 }));
        assert_eq!(got[1], Input::Line("ok".into()));
        assert_eq!(got[2], Input::Unreadable(PeerError::NotUtf8));
        assert_eq!(got[3], Input::Line("after".into()));
        assert_eq!(got[4], Input::End);
    }

    #[test]
    fn empty_lines_are_lines() {
        assert_eq!(
            lines(b"\n\n", 5),
            vec![
                Input::Line(String::new()),
                Input::Line(String::new()),
                Input::End
            ]
        );
    }
}
