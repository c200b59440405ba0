//! The four regimes of issue 19, each one round on a [`Pair`]: the same code times the
//! p2p-peer pair and the relay floor.
//!
//! - **back-to-back**: alice is typed `chat message bob mN` the moment bob shows `alice:
//!   mN-1`, without waiting for alice's `delivered`; each sample is the write until bob's line.
//! - **at rest**: the same sample, but each message is typed [`Plan::rest_gap`] after the last
//!   one was shown and delivered, the pair idle meanwhile (the loop keeps reading).
//! - **burst**: a thousand lines typed at alice at once (as fast as the pipe takes them);
//!   the figure is the time from the first write until bob shows the last, and the check
//!   that bob showed each exactly once, in the typed order, and alice said `delivered` for
//!   each. The programs' wake-ups (voluntary context switches of all their threads) are
//!   counted over the burst.
//! - **ping-pong**: alice sends mN; when bob shows it, bob sends mN back; when alice shows
//!   it, alice sends the next. Each sample is one round trip, alice's write to alice's line.
//!
//! Each round ends with the pair settled (every `delivered` printed), so that no tail of one
//! round runs into the next pair's round. A round stops early at `stop` (the plan's limit).

use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::pair::Pair;
use super::pipes::Side;
use super::switches;

/// One burst.
#[derive(Clone, Copy, Debug)]
pub struct BurstRun {
    pub messages: usize,
    /// The first write until bob showed the last message.
    pub took: Duration,
    /// Messages bob did not show exactly once in their place (`faults`).
    pub faults: usize,
    /// Messages alice did not say `delivered` for.
    pub undelivered: u64,
    /// Voluntary context switches of alice's and bob's threads over the burst.
    pub wakeups: [u64; 2],
}

impl BurstRun {
    pub fn per_second(&self) -> f64 {
        self.messages as f64 / self.took.as_secs_f64().max(1e-9)
    }
}

/// `count` messages back to back; the samples, typed → shown.
pub fn back_to_back(
    pair: &mut Pair,
    count: usize,
    wait: Duration,
    stop: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let samples = sampled(pair, count, stop, |pair, n| {
        let typed = pair.send(Side::Alice, n)?;
        Ok(pair.wait_shown(Side::Bob, n, wait)? - typed)
    })?;
    pair.settle(wait)?;
    Ok(samples)
}

/// `count` messages, each `gap` after the last was shown and delivered.
pub fn at_rest(
    pair: &mut Pair,
    count: usize,
    gap: Duration,
    wait: Duration,
    stop: Instant,
) -> anyhow::Result<Vec<Duration>> {
    sampled(pair, count, stop, |pair, n| {
        pair.pause(gap)?;
        let typed = pair.send(Side::Alice, n)?;
        let sample = pair.wait_shown(Side::Bob, n, wait)? - typed;
        pair.settle(wait)?;
        Ok(sample)
    })
}

/// `count` round trips, alice → bob → alice.
pub fn ping_pong(
    pair: &mut Pair,
    count: usize,
    wait: Duration,
    stop: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let samples = sampled(pair, count, stop, |pair, n| {
        let typed = pair.send(Side::Alice, n)?;
        pair.wait_shown(Side::Bob, n, wait)?;
        pair.send(Side::Bob, n)?;
        Ok(pair.wait_shown(Side::Alice, n, wait)? - typed)
    })?;
    pair.settle(wait)?;
    Ok(samples)
}

/// One sample per message number, from `one`, for `count` numbers or until `stop`.
fn sampled(
    pair: &mut Pair,
    count: usize,
    stop: Instant,
    mut one: impl FnMut(&mut Pair, u64) -> anyhow::Result<Duration>,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(count);
    for n in pair.numbers(count) {
        if Instant::now() > stop {
            break;
        }
        samples.push(one(pair, n)?);
    }
    Ok(samples)
}

/// `count` messages typed at once. `wait` bounds the wait for each next line, so a message
/// that never shows costs one `wait` and is reported, not a hang.
pub fn burst(pair: &mut Pair, count: usize, wait: Duration) -> anyhow::Result<BurstRun> {
    let numbers = pair.numbers(count);
    let pids = [pair.pid(Side::Alice), pair.pid(Side::Bob)];
    let before = [switches::voluntary(pids[0])?, switches::voluntary(pids[1])?];
    let typed = pair.send_all(Side::Alice, numbers.clone())?;
    let mut shown = Vec::with_capacity(count);
    let mut last = None;
    while shown.len() < count {
        let Some(line) = pair.next_shown(Instant::now() + wait)? else {
            break;
        };
        match line.side {
            Side::Bob => {
                shown.push(line.n);
                last = Some(line.at);
            }
            Side::Alice => pair.trouble(format!("alice showed m{} in a burst", line.n)),
        }
    }
    let Some(last) = last else {
        bail!(
            "{}: bob showed none of a burst of {count} within {wait:?}",
            pair.label
        );
    };
    let undelivered = pair.settle(wait)?;
    let after = [switches::voluntary(pids[0])?, switches::voluntary(pids[1])?];
    Ok(BurstRun {
        messages: count,
        took: last - typed,
        faults: faults(&shown, numbers),
        undelivered,
        wakeups: [0, 1].map(|i| after[i].saturating_sub(before[i])),
    })
}

/// How many of the `expected` messages were not shown exactly once in their place: each
/// place holding another number, and each message short or extra.
fn faults(shown: &[u64], expected: Range<u64>) -> usize {
    let misplaced = shown
        .iter()
        .zip(expected.clone())
        .filter(|(shown, expected)| **shown != *expected)
        .count();
    misplaced + shown.len().abs_diff(expected.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_shown_in_order_has_no_faults() {
        assert_eq!(faults(&[5, 6, 7], 5..8), 0);
    }

    #[test]
    fn swapped_missing_and_repeated_messages_are_faults() {
        assert_eq!(faults(&[5, 7, 6], 5..8), 2, "two out of place");
        assert_eq!(faults(&[5, 6], 5..8), 1, "one missing");
        assert_eq!(
            faults(&[5, 5, 6], 5..8),
            2,
            "a repeat pushes the rest out of place"
        );
        assert_eq!(faults(&[], 5..8), 3);
    }
}
