//! Network namespaces for the LAN tests (`--lan`): a few "hosts" on one bridge, each its own
//! network namespace, so that mDNS multicast never leaves the test's own network.
//!
//! Multicast from the machine's own namespace would go out of its real interface to whoever
//! is on that network: the LAN tests never do that. A [`TestLan`] makes, with `ip`
//! (iproute2): one namespace holding a bridge, and `hosts` namespaces, each with `lo` up and
//! an `eth0` joined to the bridge by a veth pair, at `10.77.0.N/24` (N from 1). Names carry
//! the test process's id and a counter, so tests running side by side never share one;
//! dropping the [`TestLan`] (also when a test fails) deletes them, which deletes the veths
//! and the bridge; namespaces of a test process that died before it could are deleted by the
//! next [`TestLan`]. Only root may do this: [`TestLan::new`] fails the test with a message
//! saying so (docs/testing.md, "The LAN tests").

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What every namespace name of these tests starts with.
const PREFIX: &str = "p2plan-";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Namespaces joined by a bridge; deleted when dropped.
pub struct TestLan {
    bridge: String,
    hosts: Vec<String>,
}

impl TestLan {
    /// A bridge and `hosts` namespaces on it. Fails the test if they cannot be made (not
    /// root, or no `ip`): the LAN tests are run on purpose (`--ignored`), so a test that could
    /// not run must not pass.
    #[track_caller]
    pub fn new(hosts: usize) -> TestLan {
        assert!((1..=250).contains(&hosts), "1 to 250 hosts");
        clean_up_after_the_dead();
        let tag = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut lan = TestLan {
            bridge: format!("{tag}-br"),
            hosts: Vec::new(),
        };
        let br = lan.bridge.clone();
        ip(&["netns", "add", &br]);
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        for i in 1..=hosts {
            let host = format!("{tag}-{i}");
            ip(&["netns", "add", &host]);
            lan.hosts.push(host.clone());
            let veth = format!("v{i}");
            ip(&[
                "-n", &br, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
                &host,
            ]);
            ip(&["-n", &br, "link", "set", &veth, "master", "br0", "up"]);
            let cidr = format!("{}/24", lan_ip(i));
            ip(&["-n", &host, "addr", "add", &cidr, "dev", "eth0"]);
            ip(&["-n", &host, "link", "set", "eth0", "up"]);
            ip(&["-n", &host, "link", "set", "lo", "up"]);
        }
        lan
    }

    /// The namespace of host `i` (from 1).
    pub fn host(&self, i: usize) -> &str {
        &self.hosts[i - 1]
    }

    /// The address of host `i` (from 1) on the bridge.
    pub fn ip(&self, i: usize) -> IpAddr {
        lan_ip(i)
    }
}

impl Drop for TestLan {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain([&self.bridge]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn lan_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 77, 0, i as u8))
}

/// Runs `ip ARGS`, failing the test with what it said if it fails.
#[track_caller]
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output();
    let out = out
        .unwrap_or_else(|e| panic!("LAN test not run: cannot run `ip` (iproute2 is needed): {e}"));
    assert!(
        out.status.success(),
        "LAN test not run: `ip {}` failed (the LAN tests need root for network namespaces): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Deletes the namespaces of test processes that are gone (killed before their clean-up).
fn clean_up_after_the_dead() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        let alive = std::path::Path::new("/proc").join(pid).exists();
        if !pid.is_empty() && !alive {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}
