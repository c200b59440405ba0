//! Sending broadcasts: ours to the peers we know, and others' on to theirs.
//!
//! Which broadcasts are new, and whom they may go to, is the state's word
//! (`state/flood.rs`, `state/broadcasts.rs`); this picks at most [`FANOUT`] of those peers at
//! random, sends to them at once, each on its fresh connection, and counts the
//! acknowledgements. Passing on never waits for the peer that passed it to us: its
//! acknowledgement went back first.

use std::net::SocketAddr;

use futures::future::join_all;
use p2p_shared::transport::{self, Origin};
use p2p_shared::wire::new_id;
use p2p_shared::{Outcome, PeerRequest};
use rand_core::{OsRng, RngCore};

use crate::state::Forward;

/// The most peers one peer sends one broadcast to. With eight, a broadcast reaches a few
/// hundred peers in three hops, and costs each at most eight connections.
pub const FANOUT: usize = 8;

/// Sends `forward` to at most [`FANOUT`] of its peers, picked at random: how many took it.
pub async fn send(origin: &Origin, forward: Forward) -> usize {
    let Forward { message, hops, to } = forward;
    let picked = pick(to, FANOUT);
    let sends = picked.into_iter().map(|addr| {
        let body = PeerRequest::Broadcast {
            message: message.clone(),
            hops,
        };
        transport::request(addr, origin, new_id(), body)
    });
    join_all(sends)
        .await
        .into_iter()
        .filter(|sent| matches!(sent, Ok(reply) if reply.outcome == Outcome::Ok))
        .count()
}

/// At most `n` of `all`, at random (a partial Fisher-Yates shuffle).
fn pick(mut all: Vec<SocketAddr>, n: usize) -> Vec<SocketAddr> {
    let n = n.min(all.len());
    for i in 0..n {
        let j = i + (OsRng.next_u32() as usize % (all.len() - i));
        all.swap(i, j);
    }
    all.truncate(n);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pick_is_a_subset_of_distinct_peers() {
        let all: Vec<SocketAddr> = (1..=20)
            .map(|p| format!("127.0.0.1:{p}").parse().unwrap())
            .collect();
        let picked = pick(all.clone(), FANOUT);
        assert_eq!(picked.len(), FANOUT);
        let mut distinct = picked.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), FANOUT);
        assert!(picked.iter().all(|p| all.contains(p)));
        assert_eq!(pick(all[..3].to_vec(), FANOUT).len(), 3);
    }
}
