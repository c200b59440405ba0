//! Network prefixes: the unit in which budgets count hosts that can take many addresses.
//!
//! One machine easily holds many addresses of its own network (IPv6 hands a /64 to each
//! network, and an IPv4 host on a LAN can claim several of its /24), but rarely addresses in
//! many networks. So budgets that bound what one address may take (connections, remembered
//! ids, name claims) bound what its prefix may take too: /24 for IPv4, /64 for IPv6. An IPv6
//! address that carries an IPv4 one (`::ffff:a.b.c.d`) counts as that IPv4 address.

use std::net::IpAddr;

/// The network an address is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    /// The first three bytes of an IPv4 address (a /24).
    V4([u8; 3]),
    /// The first eight bytes of an IPv6 address (a /64).
    V6([u8; 8]),
}

impl Prefix {
    pub fn of(ip: IpAddr) -> Prefix {
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Prefix::V4([a, b, c])
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Prefix::of(IpAddr::V4(v4)),
                None => {
                    let o = v6.octets();
                    Prefix::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                }
            },
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Prefix::V4([a, b, c]) => write!(f, "{a}.{b}.{c}.0/24"),
            Prefix::V6(o) => {
                let groups: Vec<String> = o
                    .chunks(2)
                    .map(|g| format!("{:x}", u16::from_be_bytes([g[0], g[1]])))
                    .collect();
                write!(f, "{}::/64", groups.join(":"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(ip: &str) -> Prefix {
        Prefix::of(ip.parse().unwrap())
    }

    #[test]
    fn addresses_share_a_prefix_only_within_a_24_or_a_64() {
        assert_eq!(of("127.1.0.1"), of("127.1.0.254"));
        assert_ne!(of("127.1.0.1"), of("127.1.1.1"));
        assert_ne!(of("127.1.0.1"), of("127.0.0.1"));
        assert_eq!(of("2001:db8:1:2::1"), of("2001:db8:1:2:ffff::9"));
        assert_ne!(of("2001:db8:1:2::1"), of("2001:db8:1:3::1"));
        assert_eq!(of("::ffff:10.0.0.1"), of("10.0.0.9"));
        assert_eq!(of("10.1.2.3").to_string(), "10.1.2.0/24");
        assert_eq!(of("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
    }
}
