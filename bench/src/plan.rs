//! How much the bench measures: the counts for a real run and for `--quick`.
//!
//! The real counts are what issue 6 asks for (at least 10,000 chat messages, a registry of
//! 100,000 peers), issue 14's network of twelve peers and issue 19's bursts of 1,000 lines. `--quick` runs every measurement
//! with counts that finish in seconds even on a debug build, so CI can check that the bench
//! still works; its figures mean nothing.
//! Every loop is also bounded in time, so a stuck program costs at most its limit.

use std::time::Duration;

/// The counts and limits of one run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Chat messages measured per chat figure, after `warmup_messages` unmeasured ones.
    pub messages: usize,
    pub warmup_messages: usize,
    /// Requests measured per load level and side, after `warmup_requests` unmeasured ones,
    /// in `rounds` rounds that alternate between the floor and the registry.
    pub requests: usize,
    pub warmup_requests: usize,
    pub rounds: usize,
    /// The concurrent clients of each load level.
    pub client_counts: Vec<usize>,
    /// Peers registered for the crowded-registry figures.
    pub registrations: usize,
    /// Arguments every measured registry gets besides its own (`--store etcd://...`).
    pub registry_args: Vec<String>,
    /// Samples per latency figure of the crowded registry (one page, one lookup).
    pub samples: usize,
    /// Whole listings of the crowded registry; the figure is their median.
    pub listings: usize,
    /// Clients claiming new names at once in the claims part, for at most `claim_time` and
    /// `claim_cap` names per condition; `quiet_pings` pings before they start.
    pub claim_clients: usize,
    pub claim_time: Duration,
    pub claim_cap: usize,
    pub quiet_pings: usize,
    /// Process starts per at-rest figure.
    pub starts: usize,
    /// Peers of the network without a registry, and the broadcasts measured on it.
    pub network_peers: usize,
    pub broadcasts: usize,
    /// Issue 19's regimes: rounds of each, alternating between the peers and the relay
    /// floor; messages per round back-to-back and in ping-pong (`regime_messages`) and at
    /// rest (`rest_messages`, each `rest_gap` after the last); messages per burst; messages
    /// back-to-back before the first round, unmeasured.
    pub regime_rounds: usize,
    pub regime_messages: usize,
    pub rest_messages: usize,
    pub rest_gap: Duration,
    pub burst: usize,
    pub regime_warmup: usize,
    /// How long a started process idles before its memory is read.
    pub settle: Duration,
    /// The longest any one measurement loop may run.
    pub limit: Duration,
    /// The longest wait for one line of output.
    pub line_timeout: Duration,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            messages: 10_000,
            warmup_messages: 500,
            requests: 30_000,
            warmup_requests: 2_000,
            rounds: 5,
            client_counts: vec![1, 16, 256],
            registrations: 100_000,
            registry_args: Vec::new(),
            samples: 1_000,
            listings: 5,
            claim_clients: 8,
            claim_time: Duration::from_secs(10),
            claim_cap: 100_000,
            quiet_pings: 500,
            starts: 20,
            network_peers: 12,
            broadcasts: 20,
            regime_rounds: 5,
            regime_messages: 1_000,
            rest_messages: 200,
            rest_gap: Duration::from_millis(5),
            burst: 1_000,
            regime_warmup: 200,
            settle: Duration::from_millis(300),
            limit: Duration::from_secs(120),
            line_timeout: Duration::from_secs(10),
        }
    }

    pub fn quick() -> Plan {
        Plan {
            messages: 100,
            warmup_messages: 10,
            requests: 300,
            warmup_requests: 30,
            rounds: 2,
            client_counts: vec![1, 16, 256],
            registrations: 300,
            registry_args: Vec::new(),
            samples: 20,
            listings: 1,
            claim_clients: 4,
            claim_time: Duration::from_millis(500),
            claim_cap: 200,
            quiet_pings: 10,
            starts: 3,
            network_peers: 4,
            broadcasts: 2,
            regime_rounds: 2,
            regime_messages: 20,
            rest_messages: 5,
            rest_gap: Duration::from_millis(5),
            burst: 50,
            regime_warmup: 10,
            settle: Duration::from_millis(50),
            limit: Duration::from_secs(20),
            line_timeout: Duration::from_secs(10),
        }
    }
}
