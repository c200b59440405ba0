//! The addresses to give to others: where a program can be reached from other machines.
//!
//! Both programs listen on `0.0.0.0` by default, which is no address to hand a friend: it
//! means "every interface of this machine". So at start each says, after its `listening on`
//! line, the addresses of this machine's interfaces with its port (bar loopback, which only
//! this machine reaches), or that only this machine can reach it. The interfaces are read
//! from the system (`getifaddrs`, through `if-addrs`); nothing is sent anywhere.

use std::net::{IpAddr, SocketAddr};

/// Where a program listening on an address can be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// From other machines, at these addresses.
    At(Vec<SocketAddr>),
    /// From this machine only, at this address.
    OnlyHere { addr: SocketAddr, why: OnlyHere },
}

/// Why only this machine can reach a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnlyHere {
    /// It listens on a loopback address (`--bind 127.0.0.1`).
    Loopback,
    /// It listens on every interface, and no interface has an address but loopback.
    NoInterface,
}

impl OnlyHere {
    /// The reason, in a word, for JSON.
    pub fn code(self) -> &'static str {
        match self {
            OnlyHere::Loopback => "bound_to_loopback",
            OnlyHere::NoInterface => "no_network_interface",
        }
    }
}

/// In JSON: `addrs`, and `only_here`, null or why ([`OnlyHere::code`]).
impl serde::Serialize for Reach {
    fn serialize<S: serde::Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (addrs, only_here) = match self {
            Reach::At(addrs) => (addrs.clone(), None),
            Reach::OnlyHere { addr, why } => (vec![*addr], Some(why.code())),
        };
        let mut json = out.serialize_struct("Reach", 2)?;
        json.serialize_field("addrs", &addrs)?;
        json.serialize_field("only_here", &only_here)?;
        json.end()
    }
}

impl std::fmt::Display for Reach {
    /// The line a program prints at start.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reach::At(addrs) => {
                let addrs: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
                write!(f, "reachable at {}", addrs.join(", "))
            }
            Reach::OnlyHere { addr, why } => {
                let why = match why {
                    OnlyHere::Loopback => {
                        "it listens on a loopback address; --bind 0.0.0.0 \
                                           for other machines"
                    }
                    OnlyHere::NoInterface => "no network interface has an address but loopback",
                };
                write!(f, "reachable only from this machine, at {addr} ({why})")
            }
        }
    }
}

/// Where a program listening on `local` can be reached, from this machine's interfaces.
pub fn reach(local: SocketAddr) -> Reach {
    let interfaces = match local.ip() {
        ip if ip.is_unspecified() => if_addrs::get_if_addrs()
            .map(|found| found.into_iter().map(|i| i.ip()).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    reach_from(local, &interfaces)
}

/// [`reach`], given the interfaces' addresses.
fn reach_from(local: SocketAddr, interfaces: &[IpAddr]) -> Reach {
    let port = local.port();
    let ip = local.ip();
    if ip.is_loopback() {
        return Reach::OnlyHere {
            addr: local,
            why: OnlyHere::Loopback,
        };
    }
    if !ip.is_unspecified() {
        return Reach::At(vec![local]);
    }
    // 0.0.0.0 takes IPv4 connections only; `::` takes both (on Linux, unless the system
    // says otherwise).
    let ipv6 = ip.is_ipv6();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for interface in interfaces {
        let usable = !interface.is_loopback() && (ipv6 || interface.is_ipv4());
        let addr = SocketAddr::new(*interface, port);
        if usable && !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        let here = match ip {
            IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        };
        return Reach::OnlyHere {
            addr: SocketAddr::new(here, port),
            why: OnlyHere::NoInterface,
        };
    }
    // IPv4 first: the address a person most likely types.
    addrs.sort_by_key(|a| a.is_ipv6());
    Reach::At(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_interface_is_given_but_loopback_and_never_0_0_0_0() {
        let interfaces = ips(&["127.0.0.1", "192.168.1.23", "fd00::5", "10.8.0.2", "::1"]);
        let reach = reach_from(addr("0.0.0.0:40001"), &interfaces);
        assert_eq!(
            reach,
            Reach::At(vec![addr("192.168.1.23:40001"), addr("10.8.0.2:40001")])
        );
        assert_eq!(
            reach.to_string(),
            "reachable at 192.168.1.23:40001, 10.8.0.2:40001"
        );
        // `::` takes IPv6 too: IPv4 first.
        let reach = reach_from(addr("[::]:4000"), &interfaces);
        assert_eq!(
            reach,
            Reach::At(vec![
                addr("192.168.1.23:4000"),
                addr("10.8.0.2:4000"),
                addr("[fd00::5]:4000"),
            ])
        );
    }

    #[test]
    fn a_machine_with_only_loopback_or_a_loopback_bind_says_so() {
        let reach = reach_from(addr("0.0.0.0:40001"), &ips(&["127.0.0.1", "::1"]));
        assert_eq!(
            reach.to_string(),
            "reachable only from this machine, at 127.0.0.1:40001 (no network interface has \
             an address but loopback)"
        );
        let reach = reach_from(addr("127.0.0.1:40001"), &ips(&["192.168.1.23"]));
        assert_eq!(
            reach,
            Reach::OnlyHere {
                addr: addr("127.0.0.1:40001"),
                why: OnlyHere::Loopback
            }
        );
        // Bound to one address: that one.
        let reach = reach_from(addr("192.168.1.23:40001"), &ips(&["10.8.0.2"]));
        assert_eq!(reach, Reach::At(vec![addr("192.168.1.23:40001")]));
    }
}
