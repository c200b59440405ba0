//! Two programs driven through pipes by one single-threaded loop, with no reader threads
//! (issue 19's harness).
//!
//! The kit's `Child` reads each program's stdout on a thread of its own; a line's stamp is
//! then taken on that thread, and every line is one more wake-up and hand-off in the bench
//! process, on the same two cores as the programs. Here both programs' stdin and stdout pipes
//! are non-blocking, and one loop on the bench's thread waits in `poll(2)` for either stdout
//! to have bytes (or either stdin to have room for what is still to be typed). The instant
//! `poll` returns is the stamp of every line read in that turn: the moment the bytes arrived,
//! as near as a process can see it. What is typed is written as far as the pipe takes it
//! and the rest when `poll` says there is room, so a burst of a thousand lines never blocks
//! the loop while the programs' output waits.
//!
//! Each program's stderr (its log) goes to a file in the bench's scratch folder, read only
//! for a failure message. Every wait has a deadline; a program whose stdout ends (it exited)
//! fails the wait at once, with its last lines. Dropping a [`Program`] kills that one
//! process by its PID and reaps it.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// How many of a program's last stdout lines a failure message shows.
const RECENT: usize = 30;
/// How many of its last log lines.
const LOG_TAIL: usize = 20;
/// A stdout line longer than this is cut into pieces of this size.
const MAX_LINE: usize = 1 << 20;

/// Which of the two programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The sender of the regimes.
    Alice = 0,
    /// The receiver.
    Bob = 1,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Alice => Side::Bob,
            Side::Bob => Side::Alice,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Alice => "alice",
            Side::Bob => "bob",
        }
    }
}

/// One stdout line and the instant the loop saw its bytes arrive.
#[derive(Clone, Debug)]
pub struct Line {
    pub side: Side,
    pub text: String,
    pub at: Instant,
}

/// A program with non-blocking pipes.
pub struct Program {
    label: String,
    process: std::process::Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// Bytes of stdout after the last newline.
    partial: Vec<u8>,
    /// Typed bytes the pipe has not taken yet, from `written` on.
    unwritten: Vec<u8>,
    written: usize,
    recent: VecDeque<String>,
    log: PathBuf,
    ended: bool,
}

impl Program {
    /// Starts `program args...` with stdin and stdout piped (non-blocking on our side),
    /// stderr into the file `log`, and the programs' environment variables cleared.
    pub fn spawn(
        label: &str,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> anyhow::Result<Program> {
        let stderr = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for var in p2p_kit::p2p_env() {
            command.env_remove(var);
        }
        let mut process = command
            .spawn()
            .with_context(|| format!("{label}: cannot start {}", program.display()))?;
        let (Some(stdin), Some(stdout)) = (process.stdin.take(), process.stdout.take()) else {
            let _ = process.kill();
            let _ = process.wait();
            anyhow::bail!("{label}: its stdin and stdout were not piped");
        };
        let program = Program {
            label: label.to_owned(),
            process,
            stdin,
            stdout,
            partial: Vec::new(),
            unwritten: Vec::new(),
            written: 0,
            recent: VecDeque::new(),
            log: log.to_owned(),
            ended: false,
        };
        rustix::io::ioctl_fionbio(&program.stdin, true)?;
        rustix::io::ioctl_fionbio(&program.stdout, true)?;
        Ok(program)
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    fn pending(&self) -> bool {
        self.written < self.unwritten.len()
    }

    /// Writes what the pipe takes now.
    fn flush(&mut self) -> anyhow::Result<()> {
        while self.pending() {
            match self.stdin.write(&self.unwritten[self.written..]) {
                Ok(0) => return Err(self.failure("its stdin takes nothing")),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failure(&format!("cannot write to its stdin: {e}"))),
            }
        }
        self.unwritten.clear();
        self.written = 0;
        Ok(())
    }

    /// Reads what stdout holds now into whole lines stamped `at`.
    fn read(&mut self, side: Side, at: Instant, lines: &mut VecDeque<Line>) -> anyhow::Result<()> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match self.stdout.read(&mut buf) {
                Ok(0) => {
                    self.ended = true;
                    return Ok(());
                }
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.failure(&format!("cannot read its stdout: {e}"))),
            }
            let mut start = 0;
            while let Some(end) = self.partial[start..].iter().position(|&b| b == b'\n') {
                self.take_line(side, at, start..start + end, lines);
                start += end + 1;
            }
            self.partial.drain(..start);
            if self.partial.len() >= MAX_LINE {
                self.take_line(side, at, 0..self.partial.len(), lines);
                self.partial.clear();
            }
        }
    }

    fn take_line(
        &mut self,
        side: Side,
        at: Instant,
        range: std::ops::Range<usize>,
        lines: &mut VecDeque<Line>,
    ) {
        let text = String::from_utf8_lossy(&self.partial[range]).into_owned();
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(text.clone());
        lines.push_back(Line { side, text, at });
    }

    /// An error naming this program, with its state, last stdout lines and last log lines.
    pub fn failure(&mut self, what: &str) -> anyhow::Error {
        let state = match self.process.try_wait() {
            Ok(Some(status)) => format!("exited, {status}"),
            Ok(None) => "still running".to_owned(),
            Err(_) => "state unknown".to_owned(),
        };
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let log: Vec<&str> = log.lines().collect();
        let tail = &log[log.len().saturating_sub(LOG_TAIL)..];
        let indent = |l: &str| format!("    {l}\n");
        anyhow!(
            "{} (pid {}, {state}): {what}\n--- its last lines ---\n{}--- its last log lines ---\n{}---",
            self.label,
            self.pid(),
            self.recent.iter().map(|l| indent(l)).collect::<String>(),
            tail.iter().map(|l| indent(l)).collect::<String>(),
        )
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        // Our own child, by its PID; harmless if it already exited.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The loop over two programs: what is typed to each, and the lines of both, in the order
/// they were read.
pub struct Pipes {
    programs: [Program; 2],
    lines: VecDeque<Line>,
}

impl Pipes {
    pub fn new(alice: Program, bob: Program) -> Pipes {
        Pipes {
            programs: [alice, bob],
            lines: VecDeque::new(),
        }
    }

    pub fn pid(&self, side: Side) -> u32 {
        self.programs[side as usize].pid()
    }

    /// Types `lines` (each with a newline) to `side`'s stdin: as much as the pipe takes now,
    /// the rest as it makes room. Returns the instant just before the first write.
    pub fn type_lines<S: AsRef<str>>(
        &mut self,
        side: Side,
        lines: &[S],
    ) -> anyhow::Result<Instant> {
        let program = &mut self.programs[side as usize];
        for line in lines {
            program
                .unwritten
                .extend_from_slice(line.as_ref().as_bytes());
            program.unwritten.push(b'\n');
        }
        let at = Instant::now();
        program.flush()?;
        Ok(at)
    }

    pub fn type_line(&mut self, side: Side, line: &str) -> anyhow::Result<Instant> {
        self.type_lines(side, &[line])
    }

    /// The next line of either program, read before `until`; `None` once `until` passes.
    /// A program whose stdout ended is an error.
    pub fn next_line(&mut self, until: Instant) -> anyhow::Result<Option<Line>> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return Ok(Some(line));
            }
            for program in &mut self.programs {
                if program.ended {
                    return Err(program.failure("its stdout ended"));
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.turn(left)?;
        }
    }

    /// Reads lines until one of `side`'s satisfies `matches`, skipping `side`'s others and
    /// keeping the other program's for later, for at most `timeout`. `what` names the line
    /// in the error.
    pub fn wait_for(
        &mut self,
        side: Side,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Line> {
        let until = Instant::now() + timeout;
        let mut kept = Vec::new();
        let found = loop {
            match self.next_line(until) {
                Ok(Some(line)) if line.side != side => kept.push(line),
                Ok(Some(line)) if matches(&line.text) => break Ok(line),
                Ok(Some(_)) => {}
                Ok(None) => {
                    break Err(self.failure(side, &format!("no line {what} within {timeout:?}")))
                }
                Err(e) => break Err(e),
            }
        };
        for line in kept.into_iter().rev() {
            self.lines.push_front(line);
        }
        found
    }

    pub fn failure(&mut self, side: Side, what: &str) -> anyhow::Error {
        self.programs[side as usize].failure(what)
    }

    /// One turn of the loop: waits at most `left` in `poll` for stdout bytes or stdin room,
    /// then reads and writes what is ready.
    fn turn(&mut self, left: Duration) -> anyhow::Result<()> {
        let timeout = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        let wants_room = [self.programs[0].pending(), self.programs[1].pending()];
        let ([readable, writable], at) = {
            let [alice, bob] = &self.programs;
            let mut fds = vec![
                PollFd::new(&alice.stdout, PollFlags::IN),
                PollFd::new(&bob.stdout, PollFlags::IN),
            ];
            for (program, wants) in [alice, bob].into_iter().zip(wants_room) {
                if wants {
                    fds.push(PollFd::new(&program.stdin, PollFlags::OUT));
                }
            }
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => return Ok(()),
                Err(e) => return Err(anyhow!("poll: {e}")),
            }
            // The stamp of every line read in this turn.
            let at = Instant::now();
            let ready = |fd: &PollFd<'_>| !fd.revents().is_empty();
            let readable = [ready(&fds[0]), ready(&fds[1])];
            let mut writable = [false; 2];
            let mut next = 2;
            for (side, wants) in wants_room.into_iter().enumerate() {
                if wants {
                    writable[side] = ready(&fds[next]);
                    next += 1;
                }
            }
            ([readable, writable], at)
        };
        for (i, side) in [Side::Alice, Side::Bob].into_iter().enumerate() {
            if readable[i] {
                self.programs[i].read(side, at, &mut self.lines)?;
            }
            if writable[i] {
                self.programs[i].flush()?;
            }
        }
        Ok(())
    }
}
