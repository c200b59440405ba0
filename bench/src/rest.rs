//! A program at rest: how soon after spawn it answers a connection, and its resident memory.
//!
//! The program is started on a loopback port chosen beforehand, and the bench tries an
//! exchange with it every [`POLL`] from the moment of spawn: refused connections cost a few
//! microseconds, and the first answered exchange marks the program as accepting connections
//! (listening is not enough: the accept loop must run and answer). Then the program idles for
//! [`Plan::settle`] and its `VmRSS` is read. Each start is a fresh process.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;

use crate::plan::Plan;
use crate::stats::median;
use p2p_kit::child::free_port;
use p2p_kit::Child;

/// How often a starting program is tried.
const POLL: Duration = Duration::from_micros(200);
/// How long a program may take to answer at all.
const START_LIMIT: Duration = Duration::from_secs(5);

/// A program at rest, over several starts.
pub struct AtRest {
    pub starts: usize,
    /// Spawn until the first answered exchange: the median and the slowest start.
    pub accept_median: Duration,
    pub accept_max: Duration,
    /// Resident memory after settling (median over starts).
    pub rss_kib: u64,
}

/// Starts a program `plan.starts` times with `start(port)` and measures each start;
/// `answers(addr)` tries one exchange and says whether it was answered.
pub fn measure(
    plan: &Plan,
    mut start: impl FnMut(u16) -> anyhow::Result<Child>,
    answers: impl Fn(SocketAddr) -> bool,
) -> anyhow::Result<AtRest> {
    let mut accepts = Vec::with_capacity(plan.starts);
    let mut rss = Vec::with_capacity(plan.starts);
    for _ in 0..plan.starts {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = start(port)?;
        loop {
            if answers(addr) {
                accepts.push(child.spawned_at().elapsed());
                break;
            }
            if child.spawned_at().elapsed() > START_LIMIT {
                bail!("a program started on {addr} did not answer within {START_LIMIT:?}");
            }
            std::thread::sleep(POLL);
        }
        std::thread::sleep(plan.settle);
        rss.push(child.rss_kib()?);
    }
    let (Some(accept_median), Some(&accept_max), Some(rss_kib)) =
        (median(accepts.clone()), accepts.iter().max(), median(rss))
    else {
        bail!("no start was measured");
    };
    Ok(AtRest {
        starts: accepts.len(),
        accept_median,
        accept_max,
        rss_kib,
    })
}
