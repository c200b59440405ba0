//! The command-line flags of [`Limits`], the same on both programs (the registry and the peer
//! each flatten [`LimitArgs`] into their own flags); each program gives them environment
//! variables of its own, like its other flags (`environment.rs`).

use super::budgets::Limits;
use crate::replay::Quotas;

/// What each sender may hold of this program: connections at once and remembered ids of
/// signed requests, per address and per network (/24, or /64 for IPv6).
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// The most connections handled at once from one IP address; more are answered busy.
    #[arg(long, default_value_t = Limits::default().connections_per_address)]
    pub max_conns_per_ip: usize,

    /// The most connections handled at once from one network (a /24, or a /64 for IPv6), of
    /// the 256 handled at once in all.
    #[arg(long, default_value_t = Limits::default().connections_per_prefix)]
    pub max_conns_per_prefix: usize,

    /// The most ids of signed requests remembered (against replays) for one IP address; more
    /// requests from it are answered busy until its ids lapse (about 2 minutes).
    #[arg(long, default_value_t = Quotas::default().per_address)]
    pub replay_ids_per_ip: usize,

    /// The same for one network (a /24, or a /64 for IPv6).
    #[arg(long, default_value_t = Quotas::default().per_prefix)]
    pub replay_ids_per_prefix: usize,

    /// The most ids remembered from everyone together (about 75 bytes each at worst).
    #[arg(long, default_value_t = Quotas::default().total)]
    pub replay_ids: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            connections_per_address: self.max_conns_per_ip,
            connections_per_prefix: self.max_conns_per_prefix,
            replay: Quotas {
                per_address: self.replay_ids_per_ip,
                per_prefix: self.replay_ids_per_prefix,
                total: self.replay_ids,
                ..Quotas::default()
            },
        }
    }
}
