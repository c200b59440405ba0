//! System calls per message, by kind, on each side of a burst (issue 19): what a message
//! costs in kernel crossings, and in `futex` calls, the hand-offs between threads.
//!
//! For each pair (the p2p-peer pair, then the relay floor), started fresh and warmed up,
//! `strace -c -f -p PID` is attached to alice and to bob once the chat is open, which
//! counts every system call of every thread of each from then on; then one burst
//! ([`Plan::burst`] messages typed at alice at once, as in the regimes) runs until every
//! `delivered` is printed, and strace is told to detach (SIGINT), writing its table. Each
//! count divided by the messages is the figure. The programs run much slower under strace,
//! so no time is taken here; the counts are what the same work costs. The window also holds
//! whatever the programs do on their own meanwhile (a registration renewal, a keepalive):
//! a handful of calls against thousands.
//!
//! Without strace, or where it cannot attach (no ptrace), this part is skipped and the
//! report says why.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use p2p_kit::Child;

use super::pair::Pair;
use super::pipes::Side;
use super::workloads;
use crate::plan::Plan;
use crate::programs::{Programs, Registry};

/// How long strace may take to attach, or to detach and write its table.
const STRACE_WAIT: Duration = Duration::from_secs(10);

/// One program's system calls over a burst, by kind, most frequent first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calls {
    pub by_kind: Vec<(String, u64)>,
}

impl Calls {
    pub fn total(&self) -> u64 {
        self.by_kind.iter().map(|(_, n)| n).sum()
    }

    pub fn of(&self, kind: &str) -> u64 {
        self.by_kind
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, n)| *n)
    }
}

/// Alice's and bob's calls over one burst of `messages`.
pub struct Traced {
    pub messages: usize,
    pub sides: [Calls; 2],
}

/// The peers' and the floor's.
pub struct Syscalls {
    pub peer: Traced,
    pub floor: Traced,
}

/// Counts both pairs' system calls over a burst; `Ok(Err(why))` when strace cannot be used
/// here.
pub fn measure(
    programs: &Programs,
    registry: &Registry,
    plan: &Plan,
) -> anyhow::Result<Result<Syscalls, String>> {
    let peer = Pair::peers(programs, registry, plan)?;
    let peer = match traced_burst(peer, programs, plan)? {
        Ok(traced) => traced,
        Err(why) => return Ok(Err(why)),
    };
    let floor = Pair::relays(programs, plan, false)?;
    let floor = match traced_burst(floor, programs, plan)? {
        Ok(traced) => traced,
        Err(why) => return Ok(Err(why)),
    };
    Ok(Ok(Syscalls { peer, floor }))
}

fn traced_burst(
    mut pair: Pair,
    programs: &Programs,
    plan: &Plan,
) -> anyhow::Result<Result<Traced, String>> {
    let stop = std::time::Instant::now() + plan.limit;
    workloads::back_to_back(&mut pair, plan.regime_warmup, plan.line_timeout, stop)?;
    let dir = programs.work.fresh("strace")?;
    let mut tracers = Vec::new();
    for side in [Side::Alice, Side::Bob] {
        let table = dir.join(format!("{}-{}.txt", pair.label, side.name()));
        match attach(pair.pid(side), &table) {
            Ok(strace) => tracers.push((strace, table)),
            Err(why) => return Ok(Err(why)),
        }
    }
    let run = workloads::burst(&mut pair, plan.burst, plan.line_timeout)?;
    let mut sides = [Calls::default(), Calls::default()];
    for (side, (strace, table)) in sides.iter_mut().zip(&tracers) {
        *side = detach(strace, table)?;
    }
    Ok(Ok(Traced {
        messages: run.messages,
        sides,
    }))
}

/// Attaches strace to every thread of `pid`, its table to go to `table`; returns once it is
/// attached, or why it cannot be.
fn attach(pid: u32, table: &Path) -> Result<Child, String> {
    let args = [
        "-c".to_owned(),
        "-f".to_owned(),
        "-o".to_owned(),
        table.display().to_string(),
        "-p".to_owned(),
        pid.to_string(),
    ];
    let strace = Child::spawn("strace", &PathBuf::from("strace"), &args).map_err(|e| {
        format!("strace cannot be started ({e}); install it (e.g. `apt-get install strace`)")
    })?;
    // "Process PID attached" (with "with N threads" for several).
    match strace.expect_log("saying it attached", STRACE_WAIT, |l| {
        l.contains("attached")
    }) {
        Ok(_) => Ok(strace),
        Err(e) => Err(format!(
            "strace cannot attach here (ptrace not allowed?): {e}"
        )),
    }
}

/// Tells strace to detach (as Ctrl-C does) and reads the table it writes then.
fn detach(strace: &Child, table: &Path) -> anyhow::Result<Calls> {
    strace.signal(libc::SIGINT)?;
    strace.wait_exit(STRACE_WAIT)?;
    let text = std::fs::read_to_string(table)
        .with_context(|| format!("strace wrote no table to {}", table.display()))?;
    Ok(parse_table(&text))
}

/// The rows of `strace -c`'s table: `% time, seconds, usecs/call, calls, [errors], syscall`,
/// most calls first; the total row is left out (the sum is [`Calls::total`]).
fn parse_table(text: &str) -> Calls {
    let mut by_kind: Vec<(String, u64)> = text
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            let (Some(first), Some(kind)) = (cells.first(), cells.last()) else {
                return None;
            };
            first.parse::<f64>().ok()?;
            if cells.len() < 5 || *kind == "total" {
                return None;
            }
            Some(((*kind).to_owned(), cells[3].parse().ok()?))
        })
        .collect();
    by_kind.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Calls { by_kind }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_tables_are_read_with_and_without_errors() {
        let table = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 79.79    0.000383          14        27           clock_nanosleep
  8.96    0.000043           7        60         2 futex
  0.62    0.000003           1         2         2 readlink
------ ----------- ----------- --------- --------- ----------------
100.00    0.000480           5        89         4 total
";
        let calls = parse_table(table);
        assert_eq!(
            calls.by_kind,
            vec![
                ("futex".to_owned(), 60),
                ("clock_nanosleep".to_owned(), 27),
                ("readlink".to_owned(), 2),
            ]
        );
        assert_eq!(calls.total(), 89);
        assert_eq!(calls.of("futex"), 60);
        assert_eq!(calls.of("write"), 0);
    }

    #[test]
    fn an_empty_table_has_no_calls() {
        assert_eq!(parse_table("").total(), 0);
    }
}
