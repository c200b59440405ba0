//! Peer exchange over the network, and the task that keeps the book alive.
//!
//! One exchange is one signed `exchange` request: our record, signed for the address the
//! connection leaves from (the one the other side reaches us at), and a page of the book,
//! against the other side's record and a page of its book (docs/protocol.md, "Peer
//! exchange"). `join`, the bootstrap list (`--peers`, `P2P_PEER_PEERS`) and the keeper's
//! rounds all use [`exchange`].
//!
//! The keeper, at each `--exchange-every` interval: checks the peers of the book that are
//! due (a ping; the reply must be signed by the key of the record), at most
//! [`CHECKS_PER_ROUND`] at once, then exchanges with one live peer picked at random. What
//! one peer learns thus reaches the others within a few rounds, and when peers die the book
//! fills again from the survivors. The state decides; this task only talks.

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;
use p2p_shared::identity::PublicKey;
use p2p_shared::record::PeerRecord;
use p2p_shared::transport::{self, Origin};
use p2p_shared::wire::new_id;
use p2p_shared::{runtime, Outcome, PeerRequest};
use rand_core::{OsRng, RngCore};

use crate::broker::Broker;
use crate::error::{Failure, PeerError};
use crate::event::{Event, PeerKey};
use crate::resume;
use crate::screen::Screen;

/// The most checks in flight in one round: a big book is checked over several rounds.
pub const CHECKS_PER_ROUND: usize = 16;

/// One exchange with the peer at `addr` (whose key must be `expected`, if given): who it is
/// and how many peers were new to us.
pub async fn exchange(
    broker: &Broker,
    origin: &Origin,
    addr: SocketAddr,
    expected: Option<PublicKey>,
) -> Result<Event, PeerError> {
    let page = broker
        .call(|state, cx, _| state.exchange_page(None, cx))
        .await;
    let page = page.unwrap_or_default();
    let me = origin.clone();
    let body = move |ip| {
        let now = chrono::Utc::now().timestamp();
        let record = PeerRecord::sign(&me.identity, me.name, SocketAddr::new(ip, me.port), now);
        let records = std::iter::once(record).chain(page).collect();
        PeerRequest::Exchange { records }
    };
    let whom = addr.to_string();
    let failed = |code, text| PeerError::JoinFailed(Failure { code, text });
    let reply = transport::request_with(addr, origin, new_id(), body)
        .await
        .map_err(|e| PeerError::JoinFailed(Failure::of(&e, &whom)))?;
    if expected.is_some_and(|key| key != reply.key) {
        let text = format!(
            "{addr} answered with key {}, not the one given",
            reply.key.fingerprint()
        );
        return Err(failed("bad_reply", text));
    }
    let Outcome::Records { records } = reply.outcome else {
        return Err(failed(
            "bad_reply",
            format!("{addr} did not answer with records"),
        ));
    };
    let (peer, key) = (reply.from.name, reply.key);
    let learned = broker
        .call(move |state, cx, fx| state.exchange_answered(addr, &key, records, cx, fx))
        .await
        .unwrap_or_default();
    Ok(Event::Joined {
        peer,
        addr,
        key: PeerKey(key),
        learned,
    })
}

/// Starts the keeper, after joining each of `bootstrap` (address, and key if given). It runs
/// as long as the broker does.
pub fn start(
    broker: Broker,
    screen: Screen,
    origin: Origin,
    bootstrap: Vec<(SocketAddr, Option<PublicKey>)>,
    (every, resume): (Duration, async_channel::Sender<resume::Job>),
) {
    runtime::spawn(async move {
        for (addr, key) in bootstrap {
            match exchange(&broker, &origin, addr, key).await {
                Ok(joined) => screen.push_state(joined),
                Err(e) => screen.push_state(Event::Error(e)),
            }
        }
        loop {
            runtime::sleep(every).await;
            let Some(due) = broker
                .call(move |state, cx, _| state.due_checks(every, cx))
                .await
            else {
                break;
            };
            for batch in due.chunks(CHECKS_PER_ROUND) {
                let checks = batch.iter().map(|&(key, addr)| check(&origin, key, addr));
                for (key, addr, answered) in join_all(checks).await {
                    broker
                        .call(move |state, cx, fx| match answered {
                            true => state.reached(&key, addr, cx, fx),
                            false => state.unreached(&key, cx, fx),
                        })
                        .await;
                }
            }
            // Away chats are asked again at the same pace (`resume.rs`).
            let _ = resume.try_send(resume::Job::Round);
            let live = broker.call(|state, _, _| state.live_peers()).await;
            let live = live.unwrap_or_default();
            let pick = (!live.is_empty()).then(|| live[OsRng.next_u32() as usize % live.len()]);
            if let Some((key, addr)) = pick {
                // A failure shows in the next round's check, not as a line of its own.
                let _ = exchange(&broker, &origin, addr, Some(key)).await;
            }
        }
    });
}

/// A ping to `key` at `addr`: answered by that key, or not.
async fn check(origin: &Origin, key: PublicKey, addr: SocketAddr) -> (PublicKey, SocketAddr, bool) {
    let reply = transport::request(addr, origin, new_id(), PeerRequest::Ping).await;
    let answered = matches!(reply, Ok(reply) if reply.key == key);
    (key, addr, answered)
}

/// The bootstrap list: `HOST:PORT [KEY]` per line (or, from `P2P_PEER_PEERS`, per comma); blank
/// lines and lines starting with `#` are skipped. Hosts are resolved at start.
pub async fn parse_bootstrap(
    text: &str,
    sep: char,
) -> anyhow::Result<Vec<(SocketAddr, Option<PublicKey>)>> {
    let mut peers = Vec::new();
    for entry in text.split(sep).map(str::trim) {
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let mut words = entry.split_whitespace();
        let hostport = words.next().expect("not empty");
        let key = match words.next() {
            Some(key) => Some(
                key.parse()
                    .map_err(|_| anyhow::anyhow!("{key:?} is not a key"))?,
            ),
            None => None,
        };
        let (host, port) = hostport
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(|c| c == '[' || c == ']'), p.parse().ok()?)))
            .ok_or_else(|| anyhow::anyhow!("{hostport:?} is not HOST:PORT"))?;
        let addr = runtime::resolve(host, port)
            .await
            .map_err(|e| anyhow::anyhow!("cannot find {host}: {e}"))?;
        peers.push((addr, key));
    }
    Ok(peers)
}
