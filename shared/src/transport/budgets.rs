//! What one sender may hold of a receiver: connections at once, per address and per network
//! prefix, and the receiver's [`Limits`] that gather them with the replay quotas.
//!
//! Slots are few (256) and held for as long as a connection lasts, so a sender that opens
//! many connections and feeds them slowly could hold them all. Deadlines bound how long one
//! connection holds a slot (`pace.rs`); these budgets bound how many one host holds: at most
//! [`Limits::connections_per_address`] from one address and
//! [`Limits::connections_per_prefix`] from its /24 (IPv4) or /64 (IPv6), which is what one
//! host can easily take addresses from. Beyond, the connection is answered `busy` at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::prefix::Prefix;
use crate::replay::Quotas;

/// What a receiver allows each sender. The defaults are sized for a lab of a hundred users
/// behind one /24: each connection lasts milliseconds, so even all of them together rarely
/// hold more than a few slots, while one host needs many addresses in many prefixes to hold
/// most of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections at once from one IP address (`--max-conns-per-ip`).
    pub connections_per_address: usize,
    /// Connections at once from one /24 or /64 (`--max-conns-per-prefix`): half the slots,
    /// so one network's flood leaves the other half to everyone else.
    pub connections_per_prefix: usize,
    /// Remembered ids of signed messages, per sender (`replay.rs`).
    pub replay: Quotas,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_per_address: 16,
            connections_per_prefix: super::MAX_CONNECTIONS / 2,
            replay: Quotas::default(),
        }
    }
}

/// The connections held at once, per address and per prefix.
pub(super) struct Budgets {
    limits: Limits,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    by_address: HashMap<IpAddr, usize>,
    by_prefix: HashMap<Prefix, usize>,
}

impl Budgets {
    pub fn new(limits: Limits) -> Arc<Budgets> {
        Arc::new(Budgets {
            limits,
            counts: Mutex::default(),
        })
    }

    /// A place for one more connection from `ip`, if its address and its prefix are both
    /// within their budgets.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Share> {
        let prefix = Prefix::of(ip);
        // Held for two lookups, never across an await.
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let here = counts.by_address.get(&ip).copied().unwrap_or(0);
        let around = counts.by_prefix.get(&prefix).copied().unwrap_or(0);
        if here >= self.limits.connections_per_address
            || around >= self.limits.connections_per_prefix
        {
            return None;
        }
        *counts.by_address.entry(ip).or_default() += 1;
        *counts.by_prefix.entry(prefix).or_default() += 1;
        Some(Share {
            budgets: Arc::clone(self),
            ip,
        })
    }
}

/// One connection's place in its address's and its prefix's budgets, given back when dropped.
pub(super) struct Share {
    budgets: Arc<Budgets>,
    ip: IpAddr,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut counts = self
            .budgets
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let counts = &mut *counts;
        release(&mut counts.by_address, self.ip);
        release(&mut counts.by_prefix, Prefix::of(self.ip));
    }
}

/// Takes one off `key`'s count, dropping it at zero: the maps hold only who is connected.
fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    if let Some(count) = map.get_mut(&key) {
        *count -= 1;
        if *count == 0 {
            map.remove(&key);
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
    fn an_address_and_its_prefix_each_hold_at_most_their_budget() {
        let budgets = Budgets::new(Limits {
            connections_per_address: 2,
            connections_per_prefix: 3,
            ..Limits::default()
        });
        let a = [budgets.take(ip("10.1.0.1")), budgets.take(ip("10.1.0.1"))];
        assert!(a.iter().all(Option::is_some));
        assert!(
            budgets.take(ip("10.1.0.1")).is_none(),
            "the address is full"
        );
        let b = budgets.take(ip("10.1.0.2"));
        assert!(b.is_some(), "its neighbour still has room in the prefix");
        assert!(budgets.take(ip("10.1.0.3")).is_none(), "the prefix is full");
        assert!(
            budgets.take(ip("10.0.0.1")).is_some(),
            "another prefix is not"
        );
        // Dropping a share gives its place back, to the address and the prefix.
        drop(b);
        assert!(budgets.take(ip("10.1.0.3")).is_some());
        drop(a);
        let counts = budgets.counts.lock().unwrap();
        assert!(counts.by_address.is_empty() && counts.by_prefix.is_empty());
    }
}
