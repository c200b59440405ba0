//! How many new names one address and one network may claim per hour.
//!
//! Claims last until released (a name is a promise), so without a budget one host could
//! register, leave and repeat until no name is left for anyone. An address may claim
//! `--max-names-per-ip` new names per hour, and its network (/24 for IPv4, /64 for IPv6)
//! `--max-names-per-prefix`: a host that takes many addresses of its own network shares one
//! budget with them. (Claims held per key are bounded in `claims.rs`.)

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use p2p_shared::prefix::Prefix;

/// The span over which new names are counted, in [`STEPS`] steps: a claim counts for the
/// step it was made in and the eleven after it, 55 to 60 minutes.
pub const CLAIM_WINDOW: Duration = Duration::from_secs(60 * 60);
const STEPS: usize = 12;
const STEP: Duration = Duration::from_secs(CLAIM_WINDOW.as_secs() / STEPS as u64);

pub struct ClaimBudget {
    per_address: usize,
    per_prefix: usize,
    /// When the steps are counted from (the first claim).
    origin: Option<Instant>,
    /// How many new names each address, and each network, claimed in the last steps.
    by_address: HashMap<IpAddr, Steps>,
    by_prefix: HashMap<Prefix, Steps>,
}

/// Claims counted per step of the window: 32 bytes however many claims were made. (A time
/// kept per claim took 16 bytes each, 3 MB for each of the two maps in a registry of
/// 100,000: docs/benchmarks.md.)
#[derive(Default)]
struct Steps {
    /// The step `counts` ends with.
    newest: u64,
    counts: [u16; STEPS],
}

impl Steps {
    /// Moves the window to end with `step`, dropping the steps that leave it.
    fn advance(&mut self, step: u64) {
        if step <= self.newest {
            return;
        }
        for gone in (self.newest + 1..=step).take(STEPS) {
            self.counts[(gone % STEPS as u64) as usize] = 0;
        }
        self.newest = step;
    }

    fn total(&self) -> usize {
        self.counts.iter().map(|&c| c as usize).sum()
    }

    fn add(&mut self, step: u64) {
        self.advance(step);
        let count = &mut self.counts[(step % STEPS as u64) as usize];
        *count = count.saturating_add(1);
    }

    /// Takes back one claim of `step`, if that step is still in the window.
    fn remove(&mut self, step: u64) {
        if step <= self.newest && self.newest - step < STEPS as u64 {
            let count = &mut self.counts[(step % STEPS as u64) as usize];
            *count = count.saturating_sub(1);
        }
    }
}

impl ClaimBudget {
    pub fn new(per_address: usize, per_prefix: usize) -> ClaimBudget {
        ClaimBudget {
            per_address,
            per_prefix,
            origin: None,
            by_address: HashMap::new(),
            by_prefix: HashMap::new(),
        }
    }

    fn step(&mut self, at: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(at);
        at.saturating_duration_since(origin).as_secs() / STEP.as_secs()
    }

    /// Counts one new claim from `ip` at `now`, if its address and its network are both
    /// within their budgets; false (and nothing counted) otherwise.
    pub fn take(&mut self, ip: IpAddr, now: Instant) -> bool {
        let (prefix, step) = (Prefix::of(ip), self.step(now));
        let here = recent(&mut self.by_address, ip, step);
        let around = recent(&mut self.by_prefix, prefix, step);
        if here >= self.per_address || around >= self.per_prefix {
            return false;
        }
        self.by_address.entry(ip).or_default().add(step);
        self.by_prefix.entry(prefix).or_default().add(step);
        true
    }

    /// Takes back a claim counted at `at` for `ip`: the disk refused it, so it is no claim.
    pub fn give_back(&mut self, ip: IpAddr, at: Instant) {
        let step = self.step(at);
        if let Some(steps) = self.by_address.get_mut(&ip) {
            steps.remove(step);
        }
        if let Some(steps) = self.by_prefix.get_mut(&Prefix::of(ip)) {
            steps.remove(step);
        }
    }

    /// Forgets the counts of addresses and networks that claimed nothing in the window.
    pub fn sweep(&mut self, now: Instant) {
        let step = self.step(now);
        let live = |steps: &mut Steps| {
            steps.advance(step);
            steps.total() > 0
        };
        self.by_address.retain(|_, steps| live(steps));
        self.by_prefix.retain(|_, steps| live(steps));
    }
}

/// How many claims `who` made in the window that ends with `step`.
fn recent<K: Hash + Eq>(map: &mut HashMap<K, Steps>, who: K, step: u64) -> usize {
    map.get_mut(&who).map_or(0, |steps| {
        steps.advance(step);
        steps.total()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn many_addresses_of_one_network_share_its_budget_for_an_hour() {
        let mut budget = ClaimBudget::new(3, 10);
        let now = Instant::now();
        // 60 addresses of one /24 (the squatting of issue 13) get 10 names between them.
        let granted = (1..=60)
            .flat_map(|host| (0..3).map(move |_| host))
            .filter(|host| budget.take(ip(&format!("10.1.0.{host}")), now))
            .count();
        assert_eq!(granted, 10);
        assert!(!budget.take(ip("10.1.0.200"), now));
        assert!(
            budget.take(ip("10.0.0.1"), now),
            "another network has its own"
        );
        // One address still gets no more than its own budget.
        assert!(budget.take(ip("10.0.0.1"), now) && budget.take(ip("10.0.0.1"), now));
        assert!(!budget.take(ip("10.0.0.1"), now));
        // A claim the disk refused is given back; an hour later all is forgotten, and 55
        // minutes later still counted at the least.
        let almost = now + CLAIM_WINDOW - STEP - Duration::from_secs(1);
        assert!(
            !budget.take(ip("10.1.0.200"), almost),
            "still within the hour"
        );
        budget.give_back(ip("10.1.0.1"), now);
        assert!(budget.take(ip("10.1.0.9"), now));
        let later = now + CLAIM_WINDOW;
        budget.sweep(later);
        assert!(budget.by_address.is_empty() && budget.by_prefix.is_empty());
        assert!(budget.take(ip("10.1.0.200"), later));
    }
}
