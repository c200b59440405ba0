//! A pair of chatting programs as the regimes see them: alice and bob with a chat open,
//! either the real p2p-peer pair or the relay floor, behind the same lines.
//!
//! Both pairs take `chat message NAME mN` on stdin, show `NAME: mN` at the other end and
//! `delivered to NAME` at the sender. A [`Pair`] numbers the messages (unique over the whole
//! run, so a line can never be mistaken for an earlier one), types them, reads both programs'
//! lines through [`Pipes`], and keeps count of the `delivered` lines and of any other line
//! (a failure, a retry: the report shows how many), so that a regime only deals with the
//! lines it times.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::pipes::{Line, Pipes, Program, Side};
use crate::plan::Plan;
use crate::programs::{Programs, Registry};

/// How many other lines a pair keeps to show; the rest are only counted.
const KEPT_TROUBLES: usize = 10;

/// A message shown: by whom, its number, when its bytes arrived.
#[derive(Clone, Copy, Debug)]
pub struct Shown {
    pub side: Side,
    pub n: u64,
    pub at: Instant,
}

/// Two programs with a chat open between them.
pub struct Pair {
    /// `p2p-peer` or `relay`, for messages.
    pub label: &'static str,
    pipes: Pipes,
    next: u64,
    sent: [u64; 2],
    delivered: [u64; 2],
    /// What no regime expected (a line that is neither a message shown nor `delivered`, a
    /// message shown twice, `delivered` missing when a round ends): the first few, and how
    /// many.
    pub troubles: Vec<String>,
    pub trouble_count: usize,
}

impl Pair {
    /// Starts p2p-peer alice and bob on free ports with fresh data, using `registry`, and
    /// opens a chat between them as a user would.
    pub fn peers(programs: &Programs, registry: &Registry, plan: &Plan) -> anyhow::Result<Pair> {
        let start = |side: Side| -> anyhow::Result<Program> {
            let name = side.name();
            let data = programs.work.fresh(name)?;
            let args = programs.peer_args(name, 0, registry, &data)?;
            let log = programs.work.fresh("logs")?.join(format!("{name}.log"));
            Program::spawn(
                &format!("p2p-peer {name}"),
                &programs.bins.peer,
                &args,
                &log,
            )
        };
        let mut pipes = Pipes::new(start(Side::Alice)?, start(Side::Bob)?);
        let wait = plan.line_timeout;
        listening_addr(&mut pipes, Side::Alice, wait)?;
        let bob = listening_addr(&mut pipes, Side::Bob, wait)?;
        pipes.type_line(
            Side::Alice,
            &format!("chat request {} {}", bob.ip(), bob.port()),
        )?;
        pipes.wait_for(Side::Bob, "announcing alice's request", wait, |l| {
            l.starts_with("chat request from alice ")
        })?;
        pipes.type_line(Side::Bob, "yes")?;
        pipes.wait_for(Side::Alice, "saying bob accepted", wait, |l| {
            l.starts_with("chat accepted by bob ")
        })?;
        pipes.wait_for(Side::Bob, "saying the chat is open", wait, |l| {
            l.starts_with("accepted chat with alice ")
        })?;
        Ok(Pair::new("p2p-peer", pipes))
    }

    /// Starts the relay floor's alice and bob (this executable's `relay` mode), bare or with
    /// the peer's essentials (`relay_essentials.rs`), and makes each the other's partner.
    pub fn relays(programs: &Programs, plan: &Plan, essentials: bool) -> anyhow::Result<Pair> {
        let this = std::env::current_exe().context("cannot locate the p2p-bench executable")?;
        let kind = if essentials { "essentials" } else { "relay" };
        let start = |side: Side| -> anyhow::Result<Program> {
            let name = side.name();
            let mut args = ["relay", "--name", name].map(str::to_owned).to_vec();
            if essentials {
                let data = programs.work.fresh(&format!("essentials-{name}"))?;
                args.extend(["--essentials".to_owned(), data.display().to_string()]);
            }
            let log = programs
                .work
                .fresh("logs")?
                .join(format!("{kind}-{name}.log"));
            Program::spawn(&format!("{kind} {name}"), &this, &args, &log)
        };
        let mut pipes = Pipes::new(start(Side::Alice)?, start(Side::Bob)?);
        let wait = plan.line_timeout;
        let addrs = [
            listening_addr(&mut pipes, Side::Alice, wait)?,
            listening_addr(&mut pipes, Side::Bob, wait)?,
        ];
        for side in [Side::Alice, Side::Bob] {
            let partner = addrs[side.other() as usize];
            pipes.type_line(side, &format!("partner {partner}"))?;
            let said = format!("partner is {partner}");
            pipes.wait_for(side, "naming its partner", wait, |l| l == said)?;
        }
        Ok(Pair::new(
            if essentials {
                "relay with the essentials"
            } else {
                "relay"
            },
            pipes,
        ))
    }

    fn new(label: &'static str, pipes: Pipes) -> Pair {
        Pair {
            label,
            pipes,
            next: 0,
            sent: [0; 2],
            delivered: [0; 2],
            troubles: Vec::new(),
            trouble_count: 0,
        }
    }

    pub fn pid(&self, side: Side) -> u32 {
        self.pipes.pid(side)
    }

    /// `count` fresh message numbers.
    pub fn numbers(&mut self, count: usize) -> Range<u64> {
        let start = self.next;
        self.next += count as u64;
        start..self.next
    }

    /// Types message `n` at `from`, to the other; returns the instant before the write.
    pub fn send(&mut self, from: Side, n: u64) -> anyhow::Result<Instant> {
        self.send_all(from, n..n + 1)
    }

    /// Types messages `ns` at `from` at once, as a pipe into its stdin would.
    pub fn send_all(&mut self, from: Side, ns: Range<u64>) -> anyhow::Result<Instant> {
        let to = from.other().name();
        let lines: Vec<String> = ns
            .clone()
            .map(|n| format!("chat message {to} m{n}"))
            .collect();
        self.sent[from as usize] += ns.end - ns.start;
        self.pipes.type_lines(from, &lines)
    }

    /// The next message shown by either side before `until`, counting the other lines on
    /// the way; `None` once `until` passes.
    pub fn next_shown(&mut self, until: Instant) -> anyhow::Result<Option<Shown>> {
        while let Some(line) = self.pipes.next_line(until)? {
            if let Some(shown) = self.tally(line) {
                return Ok(Some(shown));
            }
        }
        Ok(None)
    }

    /// Waits, at most `timeout`, for `side` to show message `n`; a message shown meanwhile
    /// is counted as a trouble (it can only be a repeat).
    pub fn wait_shown(&mut self, side: Side, n: u64, timeout: Duration) -> anyhow::Result<Instant> {
        let until = Instant::now() + timeout;
        while let Some(shown) = self.next_shown(until)? {
            if shown.side == side && shown.n == n {
                return Ok(shown.at);
            }
            self.trouble(format!(
                "{} showed m{} while m{n} was awaited at {}",
                shown.side.name(),
                shown.n,
                side.name()
            ));
        }
        Err(self.pipes.failure(
            side,
            &format!("{}: m{n} was not shown within {timeout:?}", self.label),
        ))
    }

    /// Reads lines for `gap` (stamping them as they come), counting any message shown as a
    /// trouble: nothing is awaited at rest.
    pub fn pause(&mut self, gap: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + gap;
        while let Some(shown) = self.next_shown(until)? {
            self.trouble(format!("{} showed m{} at rest", shown.side.name(), shown.n));
        }
        Ok(())
    }

    /// Waits, at most `timeout`, until each side has printed `delivered` for every message
    /// it sent; returns how many are still missing then (none, normally).
    pub fn settle(&mut self, timeout: Duration) -> anyhow::Result<u64> {
        let until = Instant::now() + timeout;
        while self.missing() > 0 {
            // Line by line: each `delivered` may be the last one missing.
            let Some(line) = self.pipes.next_line(until)? else {
                break;
            };
            if let Some(shown) = self.tally(line) {
                self.trouble(format!("{} showed m{} late", shown.side.name(), shown.n));
            }
        }
        let missing = self.missing();
        if missing > 0 {
            self.trouble(format!(
                "{missing} message(s) without `delivered` after {timeout:?}"
            ));
        }
        // Count them once: the next settle starts level.
        self.delivered = self.sent;
        Ok(missing)
    }

    fn missing(&self) -> u64 {
        (0..2)
            .map(|i| self.sent[i].saturating_sub(self.delivered[i]))
            .sum()
    }

    /// A message shown, or `None` for a `delivered` line (counted) or another (kept).
    fn tally(&mut self, line: Line) -> Option<Shown> {
        let from = line.side.other().name();
        let number = line
            .text
            .strip_prefix(from)
            .and_then(|rest| rest.strip_prefix(": m"))
            .and_then(|n| n.parse().ok());
        if let Some(n) = number {
            return Some(Shown {
                side: line.side,
                n,
                at: line.at,
            });
        }
        if line.text.starts_with("delivered to ") {
            self.delivered[line.side as usize] += 1;
        } else {
            self.trouble(format!("{}: {}", line.side.name(), line.text));
        }
        None
    }

    /// Counts a line or an event the regimes did not expect, keeping the first few.
    pub fn trouble(&mut self, what: String) {
        self.trouble_count += 1;
        if self.troubles.len() < KEPT_TROUBLES {
            self.troubles.push(what);
        }
    }
}

/// Waits for `side`'s `listening on ADDR` line and returns ADDR.
fn listening_addr(pipes: &mut Pipes, side: Side, wait: Duration) -> anyhow::Result<SocketAddr> {
    const MARK: &str = "listening on ";
    let line = pipes.wait_for(side, "saying where it listens", wait, |l| l.contains(MARK))?;
    let addr = line.text.split(MARK).nth(1).unwrap_or_default();
    match addr.parse() {
        Ok(addr) => Ok(addr),
        Err(_) => bail!("{:?} names no address", line.text),
    }
}
