//! How many new names one address and one network may claim per hour.
//!
//! Claims last until released (a name is a promise), so without a budget one host could
//! register, leave and repeat until no name is left for anyone. An address may claim
//! `--max-names-per-ip` new names per hour, and its network (/24 for IPv4, /64 for IPv6)
//! `--max-names-per-prefix`: a host that takes many addresses of its own network shares one
//! budget with them. (Claims held per key are bounded in `claims.rs`.)

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use p2p_shared::prefix::Prefix;

/// The span over which new names are counted.
pub const CLAIM_WINDOW: Duration = Duration::from_secs(60 * 60);

pub struct ClaimBudget {
    per_address: usize,
    per_prefix: usize,
    /// When each address, and each network, claimed its new names in the last window.
    by_address: HashMap<IpAddr, VecDeque<Instant>>,
    by_prefix: HashMap<Prefix, VecDeque<Instant>>,
}

impl ClaimBudget {
    pub fn new(per_address: usize, per_prefix: usize) -> ClaimBudget {
        ClaimBudget {
            per_address,
            per_prefix,
            by_address: HashMap::new(),
            by_prefix: HashMap::new(),
        }
    }

    /// Counts one new claim from `ip` at `now`, if its address and its network are both
    /// within their budgets; false (and nothing counted) otherwise.
    pub fn take(&mut self, ip: IpAddr, now: Instant) -> bool {
        let prefix = Prefix::of(ip);
        let here = recent(&mut self.by_address, ip, now);
        let around = recent(&mut self.by_prefix, prefix, now);
        if here >= self.per_address || around >= self.per_prefix {
            return false;
        }
        self.by_address.entry(ip).or_default().push_back(now);
        self.by_prefix.entry(prefix).or_default().push_back(now);
        true
    }

    /// Takes back a claim counted at `at` for `ip`: the disk refused it, so it is no claim.
    pub fn give_back(&mut self, ip: IpAddr, at: Instant) {
        untake(&mut self.by_address, ip, at);
        untake(&mut self.by_prefix, Prefix::of(ip), at);
    }

    /// Forgets the counts of addresses and networks that claimed nothing in the window.
    pub fn sweep(&mut self, now: Instant) {
        let live = |times: &mut VecDeque<Instant>| {
            times
                .back()
                .is_some_and(|&t| now.duration_since(t) < CLAIM_WINDOW)
        };
        self.by_address.retain(|_, times| live(times));
        self.by_prefix.retain(|_, times| live(times));
    }
}

/// How many claims `who` made in the window before `now`, dropping older ones.
fn recent<K: Hash + Eq>(map: &mut HashMap<K, VecDeque<Instant>>, who: K, now: Instant) -> usize {
    let Some(times) = map.get_mut(&who) else {
        return 0;
    };
    while times
        .front()
        .is_some_and(|&t| now.duration_since(t) >= CLAIM_WINDOW)
    {
        times.pop_front();
    }
    times.len()
}

fn untake<K: Hash + Eq>(map: &mut HashMap<K, VecDeque<Instant>>, who: K, at: Instant) {
    if let Some(times) = map.get_mut(&who) {
        if let Some(i) = times.iter().rposition(|&t| t == at) {
            times.remove(i);
        }
    }
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
        // A claim the disk refused is given back; an hour later all is forgotten.
        budget.give_back(ip("10.1.0.1"), now);
        assert!(budget.take(ip("10.1.0.9"), now));
        let later = now + CLAIM_WINDOW;
        budget.sweep(later);
        assert!(budget.by_address.is_empty() && budget.by_prefix.is_empty());
        assert!(budget.take(ip("10.1.0.200"), later));
    }
}
