//! Issue 19's regimes: a chat message back-to-back, at rest, in a burst and in ping-pong,
//! each next to the relay floor measured the same way in the same run.
//!
//! Three pairs run side by side for the whole part: the real p2p-peer alice and bob, with a
//! chat open through a registry as a user opens it, the relay floor's alice and bob
//! (`relay.rs`), and the relay floor with the peer's essentials (`relay_essentials.rs`:
//! sealed JSON, each message stored before it is answered). All are driven by the same
//! single-threaded loop over their pipes ([`pipes`]), typed the same lines and timed on the
//! same lines ([`pair`]). Each regime ([`workloads`]) runs [`Plan::regime_rounds`] rounds,
//! and in each round every pair, in an order that changes from round to round
//! ([`round_order`]), so that a machine that slows down or speeds up meanwhile moves them
//! alike. All are warmed up first. A latency figure is
//! the p50 (and p99) over all the samples of all its rounds; a burst figure the median of
//! its rounds. [`syscalls`] counts system calls per message under strace, as a part of its
//! own; [`rows`] holds the report's rows and issue 19's targets.

mod pair;
mod pipes;
pub mod rows;
mod switches;
pub mod syscalls;
mod workloads;

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::plan::Plan;
use crate::programs::{Programs, Registry};
use crate::stats::{median, Summary};
use pair::Pair;
use workloads::BurstRun;

/// One latency regime of one pair.
pub struct Latencies {
    /// All samples of all rounds.
    pub all: Summary,
    /// The p50 of each round, in order.
    pub rounds: Vec<Duration>,
}

/// One pair's bursts.
pub struct Bursts {
    pub runs: Vec<BurstRun>,
}

impl Bursts {
    /// The median rate of the rounds, in messages per second.
    pub fn per_second(&self) -> f64 {
        let mut rates: Vec<f64> = self.runs.iter().map(BurstRun::per_second).collect();
        rates.sort_by(f64::total_cmp);
        rates
            .get(rates.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(0.0)
    }

    /// The median time of a burst.
    pub fn took(&self) -> Duration {
        median(self.runs.iter().map(|r| r.took).collect()).unwrap_or_default()
    }

    /// Messages not shown once in order, over all bursts.
    pub fn faults(&self) -> usize {
        self.runs.iter().map(|r| r.faults).sum()
    }

    /// Messages without `delivered`, over all bursts.
    pub fn undelivered(&self) -> u64 {
        self.runs.iter().map(|r| r.undelivered).sum()
    }

    /// Wake-ups per message of alice (0) or bob (1), over all bursts.
    pub fn wakeups_per_message(&self, side: usize) -> f64 {
        let wakeups: u64 = self.runs.iter().map(|r| r.wakeups[side]).sum();
        let messages: usize = self.runs.iter().map(|r| r.messages).sum();
        wakeups as f64 / messages.max(1) as f64
    }
}

/// Everything one pair did.
pub struct Measured {
    pub back_to_back: Latencies,
    pub at_rest: Latencies,
    pub ping_pong: Latencies,
    pub bursts: Bursts,
    /// What no regime expected (other lines, repeats, `delivered` missing at the end of a
    /// round), and the first few of them.
    pub troubles: usize,
    pub first_troubles: Vec<String>,
}

/// The peers and their floors.
pub struct Regimes {
    pub peer: Measured,
    /// The bare relay: issue 19's floor.
    pub floor: Measured,
    /// The relay doing the peer's essentials.
    pub essentials: Measured,
    pub rounds: usize,
}

/// The samples of one pair, round by round.
#[derive(Default)]
struct Samples {
    back_to_back: Vec<Vec<Duration>>,
    at_rest: Vec<Vec<Duration>>,
    ping_pong: Vec<Vec<Duration>>,
    bursts: Vec<BurstRun>,
}

/// The regimes, in the order they run.
#[derive(Clone, Copy, Debug)]
enum Regime {
    BackToBack,
    AtRest,
    Burst,
    PingPong,
}

impl Regime {
    const ALL: [Regime; 4] = [
        Regime::BackToBack,
        Regime::AtRest,
        Regime::Burst,
        Regime::PingPong,
    ];

    fn label(self) -> &'static str {
        match self {
            Regime::BackToBack => "back-to-back",
            Regime::AtRest => "at rest",
            Regime::Burst => "burst",
            Regime::PingPong => "ping-pong",
        }
    }
}

/// Runs every regime on the p2p-peer pair (using `registry`) and on both relay floors.
pub fn measure(programs: &Programs, registry: &Registry, plan: &Plan) -> anyhow::Result<Regimes> {
    let mut pairs = [
        Pair::peers(programs, registry, plan)?,
        Pair::relays(programs, plan, false)?,
        Pair::relays(programs, plan, true)?,
    ];
    let mut samples: [Samples; 3] = Default::default();
    for pair in &mut pairs {
        let stop = Instant::now() + plan.limit;
        workloads::back_to_back(pair, plan.regime_warmup, plan.line_timeout, stop)?;
    }
    for regime in Regime::ALL {
        for round in 0..plan.regime_rounds {
            for i in round_order(round, pairs.len()) {
                one_round(regime, &mut pairs[i], &mut samples[i], plan)?;
            }
            crate::progress(&round_progress(regime, round, plan, &samples));
        }
    }
    let [peer, floor, essentials] = pairs;
    let [peer_samples, floor_samples, essentials_samples] = samples;
    let regimes = Regimes {
        peer: measured(peer, peer_samples)?,
        floor: measured(floor, floor_samples)?,
        essentials: measured(essentials, essentials_samples)?,
        rounds: plan.regime_rounds,
    };
    regimes.tell_rounds();
    Ok(regimes)
}

impl Regimes {
    /// Says on stderr the p50 of every round of every latency regime, and the first lines
    /// of each pair that no regime expected.
    fn tell_rounds(&self) {
        let list = |l: &Latencies| {
            let us: Vec<String> = l.rounds.iter().map(|d| d.as_micros().to_string()).collect();
            format!("{} µs", us.join(", "))
        };
        for (label, of) in [
            (
                "back-to-back",
                (|m| &m.back_to_back) as fn(&Measured) -> &Latencies,
            ),
            ("at rest", |m| &m.at_rest),
            ("ping-pong", |m| &m.ping_pong),
        ] {
            crate::progress(&format!(
                "regimes, {label}, p50 of each round: p2p-peer {}; relay floor {}; with the \
                 essentials {}",
                list(of(&self.peer)),
                list(of(&self.floor)),
                list(of(&self.essentials))
            ));
        }
        for (label, measured) in [
            ("p2p-peer", &self.peer),
            ("relay floor", &self.floor),
            ("relay with the essentials", &self.essentials),
        ] {
            for line in &measured.first_troubles {
                crate::progress(&format!("regimes, {label}: unexpected: {line}"));
            }
        }
    }
}

/// The order of the pairs in round `round`: rotated every other round and reversed in
/// between, so that over the rounds each pair runs first, last and after each other pair.
fn round_order(round: usize, pairs: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pairs).map(|k| (round / 2 + k) % pairs).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

fn one_round(
    regime: Regime,
    pair: &mut Pair,
    samples: &mut Samples,
    plan: &Plan,
) -> anyhow::Result<()> {
    let (wait, stop) = (plan.line_timeout, Instant::now() + plan.limit);
    let label = pair.label;
    let what = || format!("{label}: {}", regime.label());
    match regime {
        Regime::BackToBack => samples.back_to_back.push(
            workloads::back_to_back(pair, plan.regime_messages, wait, stop).with_context(what)?,
        ),
        Regime::AtRest => samples.at_rest.push(
            workloads::at_rest(pair, plan.rest_messages, plan.rest_gap, wait, stop)
                .with_context(what)?,
        ),
        Regime::Burst => samples
            .bursts
            .push(workloads::burst(pair, plan.burst, wait).with_context(what)?),
        Regime::PingPong => samples
            .ping_pong
            .push(workloads::ping_pong(pair, plan.regime_messages, wait, stop).with_context(what)?),
    }
    Ok(())
}

/// What the last round of `regime` gave each pair, for the progress lines.
fn round_progress(regime: Regime, round: usize, plan: &Plan, samples: &[Samples; 3]) -> String {
    let show = |s: &Samples| -> String {
        let p50 = |rounds: &Vec<Vec<Duration>>| {
            rounds
                .last()
                .and_then(|r| median(r.clone()))
                .map_or("-".to_owned(), |d| format!("{} µs", d.as_micros()))
        };
        match regime {
            Regime::BackToBack => p50(&s.back_to_back),
            Regime::AtRest => p50(&s.at_rest),
            Regime::PingPong => p50(&s.ping_pong),
            Regime::Burst => s.bursts.last().map_or("-".to_owned(), |b| {
                format!("{:.0} msg/s, {} faults", b.per_second(), b.faults)
            }),
        }
    };
    format!(
        "regimes, {}, round {} of {}: p2p-peer {}, relay floor {}, with the essentials {}",
        regime.label(),
        round + 1,
        plan.regime_rounds,
        show(&samples[0]),
        show(&samples[1]),
        show(&samples[2])
    )
}

fn measured(pair: Pair, samples: Samples) -> anyhow::Result<Measured> {
    let latencies = |rounds: Vec<Vec<Duration>>, what: &str| -> anyhow::Result<Latencies> {
        let per_round = rounds.iter().filter_map(|r| median(r.clone())).collect();
        let all = Summary::of(rounds.into_iter().flatten().collect())
            .with_context(|| format!("{}: no {what} sample was measured", pair.label))?;
        Ok(Latencies {
            all,
            rounds: per_round,
        })
    };
    Ok(Measured {
        back_to_back: latencies(samples.back_to_back, "back-to-back")?,
        at_rest: latencies(samples.at_rest, "at-rest")?,
        ping_pong: latencies(samples.ping_pong, "ping-pong")?,
        bursts: Bursts {
            runs: samples.bursts,
        },
        troubles: pair.trouble_count,
        first_troubles: pair.troubles.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_rounds_of_three_pairs_run_them_in_every_order() {
        let orders: std::collections::HashSet<Vec<usize>> =
            (0..6).map(|round| round_order(round, 3)).collect();
        assert_eq!(orders.len(), 6, "{orders:?}");
    }

    #[test]
    fn two_pairs_alternate() {
        let firsts: Vec<usize> = (0..4).map(|round| round_order(round, 2)[0]).collect();
        assert_eq!(firsts, [0, 1, 1, 0]);
    }
}
