//! What a broadcast costs on a network of twelve peers with no registry (issue 14): the
//! connections it takes, and how long until every peer has shown it.
//!
//! Twelve `p2p-peer` processes ([`Plan::network_peers`]), no registry, each started knowing
//! only the one before (`--peers FILE`) and checking its book and swapping records every
//! second (`--exchange-every 1s`), as in the end-to-end test of the same network
//! (`tests/tests/e2e/network.rs`). Once every book lists all the others as not dead (`peers`,
//! polled), [`Plan::broadcasts`] broadcasts are typed one after the other, each at another
//! origin in turn. For each:
//!
//! - **copies**: the `broadcast` requests the peers received, each on a connection of its own
//!   (docs/protocol.md, "Broadcast"; `peer/src/flood.rs` sends each copy once, without
//!   retrying). The peers run with `--debug` and log every copy they take in, new or
//!   repeated, with the broadcast's id (`peer/src/inbound.rs`); the bench counts those lines
//!   by id, so a copy still under way when the next broadcast starts counts for its own.
//!   **Repeats** are the copies a peer had already seen: the copies less the peers that
//!   showed the broadcast (a peer shows one only when it is new).
//! - **the bound**: a peer passes a broadcast on once, when it is new, to at most
//!   [`FANOUT`] peers, never back to where it came from nor to the origin, and the origin
//!   sends it to at most [`FANOUT`]: with twelve peers, at most 12 × 8 = 96 copies.
//! - **latency**: from typing `broadcast TEXT` at the origin to the last of the others
//!   printing `[broadcast] ...: TEXT` (stdout lines are stamped when read, `p2p_kit::Child`).
//!
//! Connections the peers refused (`refused ...` warnings in their logs) are counted for the
//! whole run, exchanges included. A peer drops log lines only when its log is not read in
//! time (`peer/src/lib.rs`); a dropped line could be an uncounted copy, so the run fails if a
//! peer says it dropped any.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::plan::Plan;
use crate::programs::Programs;
use crate::stats::Summary;
use p2p_kit::Child;

/// How often the peers check their books and swap records: short, so that the network forms
/// in seconds, as in the end-to-end test.
const EXCHANGE_EVERY: &str = "1s";

/// The most peers one peer sends one broadcast to (`peer/src/flood.rs`).
pub const FANOUT: usize = 8;

/// Origins are taken this many places apart, so that a run of twelve broadcasts starts at
/// each peer once (5 shares no factor with 12, nor with the 4 peers of `--quick`).
const ORIGIN_STRIDE: usize = 5;

/// How long the bench waits after the last peer showed a broadcast before it counts that
/// broadcast's copies: passing on takes milliseconds. A copy later still counts, by its id,
/// when the next broadcast's copies are counted.
const COPIES_SETTLE: Duration = Duration::from_millis(500);

/// How often the books are looked at while the network forms: nothing says that a book is
/// complete, so the bench asks.
const POLL: Duration = Duration::from_millis(200);

/// The log line a peer writes for each copy it takes in (`peer/src/inbound.rs`).
const COPY_MARK: &str = "broadcast received";

/// The broadcast figures.
pub struct Flood {
    pub peers: usize,
    /// From starting the first peer until every book listed all the others.
    pub formed: Duration,
    pub broadcasts: Vec<OneBroadcast>,
    /// Connections refused by any peer over the whole run (`busy`, a bad frame, ...).
    pub refused: usize,
}

/// One broadcast.
pub struct OneBroadcast {
    /// The index of the peer it was typed at.
    pub origin: usize,
    /// The peers that acknowledged the origin's copies, as it printed them.
    pub first_hop: usize,
    /// The copies all the peers received.
    pub copies: usize,
    /// The most copies one peer received.
    pub most_at_one_peer: usize,
    /// The highest hop count a copy carried.
    pub highest_hops: u8,
    /// The peers other than the origin that showed it: all of them, or the run fails.
    pub shown: usize,
    /// Typed until the last of them showed it.
    pub last_shown: Duration,
}

impl OneBroadcast {
    /// The copies that reached a peer that had seen the broadcast already.
    pub fn repeats(&self) -> usize {
        self.copies.saturating_sub(self.shown)
    }
}

impl Flood {
    /// The most copies one broadcast can take: the origin sends to at most [`FANOUT`] of the
    /// others, and each other peer, once, to at most [`FANOUT`] of the others bar the origin
    /// and the peer it came from (at least one of them: they may be the same).
    pub fn bound(&self) -> usize {
        let n = self.peers;
        FANOUT.min(n - 1) + (n - 1) * FANOUT.min(n - 2)
    }

    pub fn latency(&self) -> Option<Summary> {
        Summary::of(self.broadcasts.iter().map(|b| b.last_shown).collect())
    }
}

/// Starts the network, waits until it has formed, and measures [`Plan::broadcasts`]
/// broadcasts; the peers are killed (by their PIDs) when it returns.
pub fn measure(programs: &Programs, plan: &Plan) -> anyhow::Result<Flood> {
    let n = plan.network_peers;
    anyhow::ensure!(
        n >= 3,
        "a network of {n} peers is too small to pass anything on"
    );
    let started = Instant::now();
    let peers = start_chain(programs, n)?;
    await_books(&peers, plan)?;
    let formed = started.elapsed();
    crate::progress(&format!(
        "broadcast: {n} peers know each other after {formed:.1?}"
    ));

    let mut logs = Logs::default();
    let mut broadcasts = Vec::new();
    let stop = Instant::now() + plan.limit;
    for k in 0..plan.broadcasts {
        if Instant::now() > stop {
            break;
        }
        let origin = (k * ORIGIN_STRIDE) % n;
        let (first_hop, shown, last_shown) = send_and_await(&peers, origin, k, plan)?;
        std::thread::sleep(COPIES_SETTLE);
        let new = logs.take(&peers)?;
        let [id] = new.as_slice() else {
            bail!(
                "broadcast {k}: the peers logged {} new broadcast ids, not one: are they built \
                 with the debug line in peer/src/inbound.rs?",
                new.len()
            );
        };
        broadcasts.push((id.clone(), origin, first_hop, shown, last_shown));
    }
    // Copies still under way count for their own broadcast.
    std::thread::sleep(COPIES_SETTLE);
    let new = logs.take(&peers)?;
    if !new.is_empty() {
        bail!("copies of {} broadcasts nobody typed", new.len());
    }
    if logs.dropped > 0 {
        bail!("a peer dropped log lines: some copies may not have been counted");
    }
    let broadcasts = broadcasts
        .into_iter()
        .map(|(id, origin, first_hop, shown, last_shown)| {
            let at = &logs.copies[&id];
            OneBroadcast {
                origin,
                first_hop,
                copies: at.per_peer.iter().sum(),
                most_at_one_peer: at.per_peer.iter().copied().max().unwrap_or(0),
                highest_hops: at.highest_hops,
                shown,
                last_shown,
            }
        })
        .collect::<Vec<OneBroadcast>>();
    // Each broadcast on its own line, for the hand-written part of docs/benchmarks.md.
    for (k, b) in broadcasts.iter().enumerate() {
        crate::progress(&format!(
            "broadcast {k} from p{}: first hop {}, copies {} ({} repeats, at most {} at one \
             peer, hops up to {}), shown by {}, last after {:.1?}",
            b.origin,
            b.first_hop,
            b.copies,
            b.repeats(),
            b.most_at_one_peer,
            b.highest_hops,
            b.shown,
            b.last_shown
        ));
    }
    Ok(Flood {
        peers: n,
        formed,
        broadcasts,
        refused: logs.refused,
    })
}

/// Starts `n` peers, each with a bootstrap list naming only the one started before it.
fn start_chain(programs: &Programs, n: usize) -> anyhow::Result<Vec<Child>> {
    let lists = programs.work.fresh("bootstrap")?;
    let mut peers = Vec::with_capacity(n);
    let mut before: Option<SocketAddr> = None;
    for i in 0..n {
        let name = format!("p{i}");
        let mut extra = vec![
            "--exchange-every".to_owned(),
            EXCHANGE_EVERY.to_owned(),
            "--debug".to_owned(),
        ];
        if let Some(addr) = before {
            let file = lists.join(&name);
            std::fs::write(&file, format!("{addr}\n"))
                .with_context(|| format!("cannot write {}", file.display()))?;
            let file = file
                .to_str()
                .context("the scratch folder's path is not UTF-8")?;
            extra.extend(["--peers".to_owned(), file.to_owned()]);
        }
        let (peer, addr) = programs.peer_without_registry(&name, &extra)?;
        peers.push(peer);
        before = Some(addr);
    }
    Ok(peers)
}

/// Waits, at most [`Plan::limit`], until every peer's book lists every other as not dead.
fn await_books(peers: &[Child], plan: &Plan) -> anyhow::Result<()> {
    let stop = Instant::now() + plan.limit;
    let mut complete = vec![false; peers.len()];
    loop {
        for (i, peer) in peers.iter().enumerate() {
            if complete[i] {
                continue;
            }
            let book = book(peer, plan.line_timeout)?;
            complete[i] = (0..peers.len()).filter(|&j| j != i).all(|j| {
                let known = format!("known p{j} ");
                book.iter()
                    .any(|l| l.starts_with(&known) && !l.contains("dead since"))
            });
        }
        if complete.iter().all(|&c| c) {
            return Ok(());
        }
        if Instant::now() > stop {
            let waiting: Vec<String> = (complete.iter().enumerate())
                .filter(|(_, &c)| !c)
                .map(|(i, _)| format!("p{i}"))
                .collect();
            bail!(
                "the books of {} were not complete within {:?}",
                waiting.join(", "),
                plan.limit
            );
        }
        std::thread::sleep(POLL);
    }
}

/// The lines of `peers`' answer: `known peers: N`, then N lines.
fn book(peer: &Child, wait: Duration) -> anyhow::Result<Vec<String>> {
    const HEADER: &str = "known peers: ";
    peer.send("peers")?;
    let header = peer.expect("with its book", wait, |l| l.starts_with(HEADER))?;
    let count: usize = header.text[HEADER.len()..]
        .parse()
        .with_context(|| format!("{}: {:?} is no count", peer.label(), header.text))?;
    (0..count)
        .map(|_| {
            let line = peer.expect("listing a peer it knows", wait, |l| l.starts_with("known "))?;
            Ok(line.text)
        })
        .collect()
}

/// Types broadcast number `k` at `peers[origin]` and waits until every other peer has shown
/// it: the peers that acknowledged the origin's copies, how many showed it, and the time from
/// typing to the last of them.
fn send_and_await(
    peers: &[Child],
    origin: usize,
    k: usize,
    plan: &Plan,
) -> anyhow::Result<(usize, usize, Duration)> {
    const SENT: &str = "broadcast sent to ";
    let wait = plan.line_timeout;
    let text = format!("bench broadcast {k}");
    let ending = format!(": {text}");
    let typed = peers[origin].send(&format!("broadcast {text}"))?;
    let sent = peers[origin].expect("saying how many peers took its broadcast", wait, |l| {
        l.starts_with(SENT)
    })?;
    let first_hop: usize = sent.text[SENT.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("{:?} names no count", sent.text))?;
    let mut last = typed;
    let mut shown = 0;
    for (i, peer) in peers.iter().enumerate() {
        if i == origin {
            continue;
        }
        // An earlier broadcast shown again would be a repeat that got through.
        let again = Cell::new(0);
        let line = peer.expect("showing the broadcast", wait, |l| {
            let ours = l.starts_with("[broadcast] ") && l.ends_with(&ending);
            if l.starts_with("[broadcast] ") && !ours {
                again.set(again.get() + 1);
            }
            ours
        })?;
        if again.get() > 0 {
            bail!("{} showed an earlier broadcast twice", peer.label());
        }
        last = last.max(line.at);
        shown += 1;
    }
    Ok((first_hop, shown, last - typed))
}

/// The copies the peers logged, by broadcast id, and the refusals and drops among their log
/// lines.
#[derive(Default)]
struct Logs {
    copies: HashMap<String, Copies>,
    refused: usize,
    dropped: usize,
}

/// The copies of one broadcast.
struct Copies {
    per_peer: Vec<usize>,
    highest_hops: u8,
}

impl Logs {
    /// Reads the log lines every peer wrote since the last call; returns the broadcast ids
    /// seen for the first time, in the order they came.
    fn take(&mut self, peers: &[Child]) -> anyhow::Result<Vec<String>> {
        let mut new = Vec::new();
        for (i, peer) in peers.iter().enumerate() {
            if let Some(status) = peer.try_wait() {
                bail!("{} exited ({status}) during the run", peer.label());
            }
            for line in peer.take_log() {
                let text = line.text.as_str();
                if text.contains(" WARN ") && text.contains("refused ") {
                    self.refused += 1;
                }
                if text.contains("log line(s) dropped") {
                    self.dropped += 1;
                }
                let Some((id, hops)) = copy_of(text) else {
                    continue;
                };
                let copies = self.copies.entry(id.to_owned()).or_insert_with(|| {
                    new.push(id.to_owned());
                    Copies {
                        per_peer: vec![0; peers.len()],
                        highest_hops: 0,
                    }
                });
                copies.per_peer[i] += 1;
                copies.highest_hops = copies.highest_hops.max(hops);
            }
        }
        Ok(new)
    }
}

/// The broadcast id and hop count of a copy's log line: `... broadcast received from=p3
/// id=ID hops=1`.
fn copy_of(line: &str) -> Option<(&str, u8)> {
    let (_, fields) = line.split_once(COPY_MARK)?;
    let field = |key: &str| {
        fields
            .split_whitespace()
            .find_map(|word| word.strip_prefix(key))
    };
    Some((field("id=")?, field("hops=")?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_read_from_its_log_line() {
        let line = "2026-12-02T14:00:00.123456Z DEBUG p2p_peer::inbound: broadcast received \
                    from=p3 id=0b8e6a0e-7b0c-4a73-9c55-2b1f6f1a9a11 hops=1";
        assert_eq!(
            copy_of(line),
            Some(("0b8e6a0e-7b0c-4a73-9c55-2b1f6f1a9a11", 1))
        );
        assert_eq!(copy_of("DEBUG p2p_peer::command_loop: running"), None);
    }

    #[test]
    fn the_bound_is_twelve_times_the_fanout_for_twelve_peers() {
        let flood = |peers| Flood {
            peers,
            formed: Duration::ZERO,
            broadcasts: Vec::new(),
            refused: 0,
        };
        assert_eq!(flood(12).bound(), 96);
        // Four peers: the origin reaches the three others, each passes it on to two.
        assert_eq!(flood(4).bound(), 3 + 3 * 2);
    }
}
