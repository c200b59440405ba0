//! `--lan`: DNS-SD over mDNS, so that peers on one LAN find each other with no registry and
//! no address typed (docs/protocol.md, "LAN discovery").
//!
//! The `mdns-sd` crate runs its own thread (sockets, caches, re-announcements, goodbyes); it
//! needs no async runtime. This module announces this peer as an instance of [`SERVICE`]
//! with its name and key in the TXT record, browses for the others, and turns what the
//! daemon reports into [`Discovery`] messages on a bounded channel, from a thread of its own
//! that does nothing else (so the event loop never waits on mDNS). One task takes them: it
//! asks the state (`state/nearby.rs`) what to do, checks a new claim with a peer exchange
//! that expects the announced key, and tells the state how the check went. On exit the
//! announcement is withdrawn (an mDNS goodbye) before the daemon stops.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use mdns_sd::{IfKind, ResolvedService, ServiceDaemon, ServiceEvent, ServiceInfo};
use p2p_shared::identity::PublicKey;
use p2p_shared::runtime;
use p2p_shared::transport::Origin;
use p2p_shared::PeerName;

use crate::broker::Broker;
use crate::peer_exchange;
use crate::state::nearby::{Announcement, MAX_ADDRS, MAX_INSTANCE};

/// The DNS-SD service type of p2p-chat peers.
pub const SERVICE: &str = "_p2pchat._tcp.local.";

/// The version of the TXT record this peer writes and reads (`v=1`); an announcement of
/// another version is ignored.
pub const TXT_VERSION: &str = "1";

/// What the discovery thread may queue for the task before it waits: announcements are few,
/// and the daemon holds what it learned meanwhile.
const QUEUE: usize = 64;

/// How long the goodbye and the daemon's shutdown may take when the peer exits.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// What the discovery thread passes on.
#[derive(Debug)]
enum Discovery {
    Announced(Announcement),
    Withdrawn(String),
}

/// The running discovery: dropped or [`Lan::stop`]ped, it withdraws the announcement.
pub struct Lan {
    daemon: ServiceDaemon,
    instance: String,
}

/// Announces `origin` on the LAN, and starts the thread and the task that take what the
/// others announce.
pub fn start(broker: Broker, origin: Origin) -> anyhow::Result<Lan> {
    let daemon = ServiceDaemon::new().context("cannot start mDNS")?;
    // The peer listens on IPv4 (`--bind`): IPv6 records would only be tried and fail.
    daemon
        .disable_interface(IfKind::IPv6)
        .context("cannot start mDNS")?;
    let key = origin.identity.public();
    let short: String = key.fingerprint().replace(':', "").chars().take(8).collect();
    // The name alone could be taken by another peer of that name: the key's fingerprint
    // keeps instance and host names apart.
    let instance = format!("{}-{short}", origin.name);
    let host = format!("p2p-{short}.local.");
    let properties = [
        ("v", TXT_VERSION.to_string()),
        ("name", origin.name.to_string()),
        ("key", key.to_string()),
    ];
    let info = ServiceInfo::new(SERVICE, &instance, &host, "", origin.port, &properties[..])
        .context("cannot make the mDNS announcement")?
        .enable_addr_auto();
    let fullname = info.get_fullname().to_string();
    daemon.register(info).context("cannot announce on mDNS")?;
    let events = daemon.browse(SERVICE).context("cannot browse mDNS")?;
    let (tx, rx) = async_channel::bounded(QUEUE);
    std::thread::Builder::new()
        .name("lan".into())
        .spawn(move || {
            // Ends when the daemon stops (its channel closes) or the task is gone.
            while let Ok(event) = events.recv() {
                let discovery = match event {
                    ServiceEvent::ServiceResolved(found) => {
                        announcement(&found).map(Discovery::Announced)
                    }
                    ServiceEvent::ServiceRemoved(_, fullname) => {
                        Some(Discovery::Withdrawn(fullname))
                    }
                    _ => None,
                };
                if let Some(discovery) = discovery {
                    if tx.send_blocking(discovery).is_err() {
                        break;
                    }
                }
            }
        })
        .context("cannot start the LAN thread")?;
    runtime::spawn(take(rx, broker, origin));
    Ok(Lan {
        daemon,
        instance: fullname,
    })
}

impl Lan {
    /// Withdraws the announcement (a goodbye the others see at once) and stops the daemon,
    /// each waited for at most [`STOP_GRACE`].
    pub fn stop(self) {
        if let Ok(done) = self.daemon.unregister(&self.instance) {
            let _ = done.recv_timeout(STOP_GRACE);
        }
        if let Ok(done) = self.daemon.shutdown() {
            let _ = done.recv_timeout(STOP_GRACE);
        }
    }
}

/// The task: each announcement is checked at its addresses in turn with an exchange that
/// expects the announced key; the first to answer with it is where the peer is.
async fn take(rx: async_channel::Receiver<Discovery>, broker: Broker, origin: Origin) {
    while let Ok(discovery) = rx.recv().await {
        match discovery {
            Discovery::Announced(a) => {
                let (instance, key) = (a.instance.clone(), a.key);
                let addrs = broker.call(move |state, cx, _| state.nearby_announced(a, cx));
                let Some(addrs) = addrs.await else { break };
                if addrs.is_empty() {
                    continue;
                }
                let mut reached = None;
                for addr in addrs {
                    match peer_exchange::exchange(&broker, &origin, addr, Some(key)).await {
                        Ok(_) => {
                            reached = Some(addr);
                            break;
                        }
                        Err(e) => tracing::debug!("LAN peer {instance} not at {addr}: {e}"),
                    }
                }
                let _ = broker
                    .call(move |state, cx, fx| match reached {
                        Some(addr) => state.nearby_reached(&instance, &key, addr, cx, fx),
                        None => state.nearby_unreached(&instance, &key),
                    })
                    .await;
            }
            Discovery::Withdrawn(instance) => {
                let _ = broker
                    .call(move |state, _, fx| state.nearby_withdrawn(&instance, fx))
                    .await;
            }
        }
    }
}

/// What a resolved instance claims, if it is a p2p-chat peer of our TXT version with a valid
/// name and key and an IPv4 address.
fn announcement(found: &ResolvedService) -> Option<Announcement> {
    let ips = found.get_addresses().iter().map(|ip| ip.to_ip_addr());
    parse(
        found.get_fullname(),
        |k| found.get_property_val_str(k),
        ips.collect(),
        found.get_port(),
    )
}

/// [`announcement`] without the crate's type: the instance `fullname`, its TXT record
/// (`txt`), its addresses and port.
fn parse<'a>(
    fullname: &str,
    txt: impl Fn(&str) -> Option<&'a str>,
    ips: Vec<IpAddr>,
    port: u16,
) -> Option<Announcement> {
    if txt("v")? != TXT_VERSION || fullname.len() > MAX_INSTANCE || port == 0 {
        return None;
    }
    let name: PeerName = txt("name")?.parse().ok()?;
    let key: PublicKey = txt("key")?.parse().ok()?;
    let mut ips: Vec<IpAddr> = ips.into_iter().filter(IpAddr::is_ipv4).collect();
    // Another host's loopback address is our own: tried last. Then in a stable order.
    ips.sort_by_key(|ip| (ip.is_loopback(), *ip));
    ips.dedup();
    let addrs: Vec<SocketAddr> = ips
        .into_iter()
        .take(MAX_ADDRS)
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    (!addrs.is_empty()).then(|| Announcement {
        instance: fullname.to_string(),
        name,
        key,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::identity::Identity;

    fn txt<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |k| pairs.iter().find(|(name, _)| *name == k).map(|(_, v)| *v)
    }

    #[test]
    fn an_announcement_gives_name_key_and_ipv4_addresses_loopback_last() {
        let key = Identity::generate().public().to_string();
        let pairs = [("v", "1"), ("name", "bob"), ("key", key.as_str())];
        let ips = vec![
            "127.0.0.1".parse().unwrap(),
            "fe80::1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
        ];
        let a = parse("bob-1234._p2pchat._tcp.local.", txt(&pairs), ips, 4000).unwrap();
        assert_eq!(a.name.as_str(), "bob");
        assert_eq!(a.key.to_string(), key);
        let addrs: Vec<String> = a.addrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.2:4000", "127.0.0.1:4000"]);
    }

    #[test]
    fn announcements_that_are_not_ours_are_ignored() {
        let key = Identity::generate().public().to_string();
        let ip = || vec!["10.0.0.2".parse().unwrap()];
        let good = [("v", "1"), ("name", "bob"), ("key", key.as_str())];
        assert!(parse("i", txt(&good), ip(), 4000).is_some());
        let v2 = [("v", "2"), ("name", "bob"), ("key", key.as_str())];
        assert!(parse("i", txt(&v2), ip(), 4000).is_none());
        let bad_name = [("v", "1"), ("name", "b b"), ("key", key.as_str())];
        assert!(parse("i", txt(&bad_name), ip(), 4000).is_none());
        let bad_key = [("v", "1"), ("name", "bob"), ("key", "nope")];
        assert!(parse("i", txt(&bad_key), ip(), 4000).is_none());
        let v6 = vec!["fe80::1".parse().unwrap()];
        assert!(parse("i", txt(&good), v6, 4000).is_none());
        assert!(parse("i", txt(&good), ip(), 0).is_none());
    }
}
