//! How many refusal lines the registry's log shows: a few per address, then a summary.
//!
//! Anybody can make the registry refuse a connection, as fast as they can open one: one
//! address made 31.8 MB of refusal lines in 25 s, enough to fill a disk or to bury the lines
//! that matter. So refusals are counted in windows of [`WINDOW`]: in each, an address gets at
//! most [`PER_ADDRESS`] lines and all addresses together at most [`LINES`]; whatever is over
//! is counted, and when the window ends each address that went over gets one line,
//! `N more refusals from ADDR in the last 10s (kinds: ...)`.
//!
//! The memory stays bounded under a flood from many addresses: at most [`ADDRESSES`]
//! addresses are counted one by one in a window, and refusals from any other address go into
//! one shared count (`... from other addresses ...`). So a window writes at most
//! `LINES + ADDRESSES + 1` lines, whatever the flood.
//!
//! The rules take the time as a parameter (a test passes its own instants); the [`Log`]
//! (`log.rs`) reads its clock and calls them. They are plain counters, so deciding costs the
//! event loop no more than a hash lookup, and nothing here waits.
//!
//! [`Log`]: crate::log::Log

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::event::Event;

/// How long a window of counting lasts.
pub const WINDOW: Duration = Duration::from_secs(10);

/// The most refusal lines one address gets in a window.
pub const PER_ADDRESS: u32 = 5;

/// The most refusal lines all addresses together get in a window.
pub const LINES: u32 = 50;

/// The most addresses counted one by one in a window; the others share one count.
pub const ADDRESSES: usize = 64;

/// Refusals not shown: how many, and of which kinds (a handful of words chosen by
/// `Refusal::kind`, so the list stays short).
#[derive(Debug, Default)]
struct Tally {
    count: u64,
    kinds: Vec<&'static str>,
}

impl Tally {
    fn add(&mut self, kind: &'static str) {
        self.count += 1;
        if !self.kinds.contains(&kind) {
            self.kinds.push(kind);
        }
    }
}

/// One address's part of the window.
#[derive(Debug, Default)]
struct Address {
    shown: u32,
    more: Tally,
}

/// The refusals counted in the current window.
#[derive(Debug, Default)]
pub struct Refusals {
    /// When the current window began; `None` between windows (nothing refused since).
    since: Option<Instant>,
    addresses: HashMap<IpAddr, Address>,
    /// Refusals from addresses beyond the [`ADDRESSES`] counted one by one.
    others: Tally,
    /// Lines shown in this window, all addresses together.
    shown: u32,
}

impl Refusals {
    /// What to log for a refusal of `kind` from `remote` at `now`: the summaries of a window
    /// that has ended, then the refusal's own line if it is within the budgets.
    pub fn refused(&mut self, remote: SocketAddr, kind: &'static str, now: Instant) -> Vec<Event> {
        let mut events = self.tick(now);
        self.since.get_or_insert(now);
        let ip = remote.ip();
        let room = self.addresses.len() < ADDRESSES;
        let address = match self.addresses.get_mut(&ip) {
            Some(address) => address,
            None if room => self.addresses.entry(ip).or_default(),
            None => {
                self.others.add(kind);
                return events;
            }
        };
        if address.shown < PER_ADDRESS && self.shown < LINES {
            address.shown += 1;
            self.shown += 1;
            events.push(Event::Refused { remote, kind });
        } else {
            address.more.add(kind);
        }
        events
    }

    /// The summaries of the window, if it has ended by `now` (then the next refusal begins a
    /// new one); nothing otherwise. Called on every refusal and, so that the last window of
    /// a flood is summed up too, every second by the broker's ticker.
    pub fn tick(&mut self, now: Instant) -> Vec<Event> {
        match self.since {
            Some(since) if now.saturating_duration_since(since) >= WINDOW => {}
            _ => return Vec::new(),
        }
        let mut summaries: Vec<Event> = self
            .addresses
            .drain()
            .filter(|(_, address)| address.more.count > 0)
            .map(|(ip, address)| summary(Some(ip), address.more))
            .collect();
        // In address order: the same flood reads the same way each time.
        summaries.sort_by_key(|event| match event {
            Event::MoreRefusals { from, .. } => *from,
            _ => None,
        });
        let others = std::mem::take(&mut self.others);
        if others.count > 0 {
            summaries.push(summary(None, others));
        }
        self.since = None;
        self.shown = 0;
        summaries
    }
}

fn summary(from: Option<IpAddr>, tally: Tally) -> Event {
    Event::MoreRefusals {
        from,
        count: tally.count,
        over: WINDOW,
        kinds: tally.kinds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn lines(events: &[Event]) -> Vec<String> {
        events.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn one_address_gets_a_few_lines_then_one_summary_per_window() {
        let mut refusals = Refusals::default();
        let start = Instant::now();
        let mut shown = Vec::new();
        for i in 0..10_000u32 {
            let port = 1000 + (i % 50_000) as u16;
            let kind = if i % 2 == 0 {
                "malformed"
            } else {
                "bad_signature"
            };
            let at = start + Duration::from_micros(u64::from(i));
            shown.extend(refusals.refused(addr(&format!("127.1.0.1:{port}")), kind, at));
        }
        assert_eq!(
            lines(&shown),
            [
                "refused 127.1.0.1:1000: malformed",
                "refused 127.1.0.1:1001: bad_signature",
                "refused 127.1.0.1:1002: malformed",
                "refused 127.1.0.1:1003: bad_signature",
                "refused 127.1.0.1:1004: malformed",
            ]
        );
        // Nothing more until the window ends; then the summary, once.
        assert!(refusals
            .tick(start + WINDOW - Duration::from_millis(1))
            .is_empty());
        assert_eq!(
            lines(&refusals.tick(start + WINDOW)),
            ["9995 more refusals from 127.1.0.1 in the last 10s (kinds: bad_signature, malformed)"]
        );
        assert!(refusals.tick(start + WINDOW * 5).is_empty());
        // A new window: a few lines again.
        let later = start + WINDOW * 6;
        assert_eq!(
            lines(&refusals.refused(addr("127.1.0.1:9"), "busy", later)),
            ["refused 127.1.0.1:9: busy"]
        );
    }

    #[test]
    fn a_refusal_after_the_window_brings_its_summary_first() {
        let mut refusals = Refusals::default();
        let start = Instant::now();
        for _ in 0..PER_ADDRESS + 2 {
            refusals.refused(addr("10.0.0.1:1"), "malformed", start);
        }
        let events = refusals.refused(addr("10.0.0.1:2"), "timeout", start + WINDOW);
        assert_eq!(
            lines(&events),
            [
                "2 more refusals from 10.0.0.1 in the last 10s (kinds: malformed)",
                "refused 10.0.0.1:2: timeout",
            ]
        );
    }

    #[test]
    fn a_flood_from_many_addresses_stays_within_bounds_in_lines_and_memory() {
        let mut refusals = Refusals::default();
        let start = Instant::now();
        let mut shown = 0;
        for i in 0..100_000u32 {
            let [_, a, b, c] = i.to_be_bytes();
            let remote = SocketAddr::new(IpAddr::from([127, a, b, c]), 4000);
            shown += refusals.refused(remote, "malformed", start).len();
            assert!(refusals.addresses.len() <= ADDRESSES);
        }
        assert_eq!(shown, LINES as usize);
        let summaries = refusals.tick(start + WINDOW);
        // Each address counted one by one but not shown (one refusal each), then everyone
        // else in one line.
        assert_eq!(summaries.len(), ADDRESSES - LINES as usize + 1);
        let last = summaries.last().unwrap().to_string();
        let others = 100_000 - ADDRESSES as u64;
        assert_eq!(
            last,
            format!(
                "{others} more refusals from other addresses in the last 10s (kinds: malformed)"
            )
        );
        let counted: u64 = summaries
            .iter()
            .map(|event| match event {
                Event::MoreRefusals { count, .. } => *count,
                _ => 0,
            })
            .sum();
        assert_eq!(counted + shown as u64, 100_000);
    }
}
