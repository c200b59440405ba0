//! `--lan`: peers that find each other on a LAN by mDNS, with no registry and no address
//! typed, and leave each other's `nearby` when they go.
//!
//! Only inside network namespaces the tests make ([`TestLan`]): multicast from the machine's
//! own namespace would leave the machine. Making namespaces needs root, so these tests are
//! `#[ignore]`d in a plain `cargo test` (listed as ignored, never as passed) and `.ci/run`, as
//! root, runs them with `--ignored`; there a test that cannot make its namespaces fails.

use std::time::Duration;

use p2p_e2e::{Peer, TestLan};

/// A peer with `--lan` on host `i` of `lan`, with no registry; `extra` flags after.
#[track_caller]
fn lan_peer(lan: &TestLan, i: usize, name: &str, extra: &[&str]) -> Peer {
    let mut builder = Peer::builder(name)
        .netns(lan.host(i), lan.ip(i))
        .arg("--lan");
    for arg in extra {
        builder = builder.arg(*arg);
    }
    builder.start()
}

/// `found NAME (unverified) on the LAN at ADDR key FP`, as `at` prints it for `who`.
fn found_line(who: &Peer) -> String {
    format!(
        "found {} (unverified) on the LAN at {} key {}",
        who.name(),
        who.addr(),
        who.fingerprint()
    )
}

/// `nearby`: the `nearby NAME ADDR key FP ...` lines after `nearby peers: N`.
#[track_caller]
fn nearby(peer: &Peer) -> Vec<String> {
    peer.send("nearby");
    peer.expect_list("nearby peers: ")
}

#[test]
#[ignore = "needs root for network namespaces: run with --ignored (.ci/run does)"]
fn two_hosts_find_each_other_chat_by_name_and_a_goodbye_leaves_nearby() {
    let lan = TestLan::new(2);
    let alice = lan_peer(&lan, 1, "alice", &[]);
    let mut bob = lan_peer(&lan, 2, "bob", &[]);
    alice.expect_exact(&found_line(&bob));
    bob.expect_exact(&found_line(&alice));
    let bob_line = format!(
        "nearby bob {} key {} (unverified)",
        bob.addr(),
        bob.fingerprint()
    );
    assert_eq!(nearby(&alice), vec![bob_line]);

    // By name, with no registry (it is not even reachable) and no address typed.
    alice.send("chat request bob");
    alice.expect_exact(&format!(
        "chat request sent to bob (unverified) ({}), waiting for an answer",
        bob.addr()
    ));
    bob.expect_prefix(&format!(
        "chat request from alice (unverified) ({})",
        alice.addr()
    ));
    bob.send("yes");
    alice.expect_exact(&format!("chat accepted by bob ({})", bob.addr()));
    alice.send("chat message bob hello over the LAN");
    bob.expect_exact("alice: hello over the LAN");
    // The chat pinned bob's key: his name is verified now.
    let pinned = format!("nearby bob {} key {}", bob.addr(), bob.fingerprint());
    assert_eq!(nearby(&alice), vec![pinned]);

    // graph: bob is known three ways (chat, book, LAN); the registry never answered.
    alice.send("graph --json");
    let graph: serde_json::Value = serde_json::from_str(&alice.expect_prefix("{\"nodes\":"))
        .expect("graph --json is one JSON object");
    let mut kinds: Vec<&str> = graph["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter(|e| e["to"] == bob.fingerprint().as_str())
        .map(|e| e["kind"].as_str().expect("a kind"))
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["chat", "direct", "lan"], "{graph}");
    assert_eq!(graph["nodes"].as_array().map(Vec::len), Some(3), "{graph}");

    // An exit says goodbye on the LAN: gone at once, not after the book's checks (30 s).
    bob.exit();
    alice.expect_exact("bob left the LAN (said goodbye)");
    assert_eq!(nearby(&alice), Vec::<String>::new());
}

#[test]
#[ignore = "needs root for network namespaces: run with --ignored (.ci/run does)"]
fn a_killed_host_leaves_nearby_through_the_books_checks() {
    let lan = TestLan::new(2);
    // Checks every second: dead after 3 missed ones (README, "--lan").
    let fast = ["--exchange-every", "1s"];
    let alice = lan_peer(&lan, 1, "alice", &fast);
    let mut bob = lan_peer(&lan, 2, "bob", &fast);
    alice.expect_exact(&found_line(&bob));
    assert_eq!(nearby(&alice).len(), 1);

    bob.kill();
    alice.expect_line_within(
        "bob leaving nearby after 3 missed checks",
        Duration::from_secs(20),
        |l| l == "bob left the LAN (stopped answering)",
    );
    assert_eq!(nearby(&alice), Vec::<String>::new());
}

#[test]
#[ignore = "needs root for network namespaces: run with --ignored (.ci/run does)"]
fn a_broadcast_reaches_three_hosts_through_lan_discovered_peers() {
    let lan = TestLan::new(3);
    let peers = [
        lan_peer(&lan, 1, "alice", &[]),
        lan_peer(&lan, 2, "bob", &[]),
        lan_peer(&lan, 3, "carol", &[]),
    ];
    // Nobody was told of anybody: each finds the two others on the LAN.
    // In whichever order they answer.
    for (i, peer) in peers.iter().enumerate() {
        let mut found = vec![peer.expect_prefix("found "), peer.expect_prefix("found ")];
        found.sort();
        let mut wanted: Vec<String> = (peers.iter().enumerate())
            .filter(|&(j, _)| j != i)
            .map(|(_, other)| found_line(other))
            .collect();
        wanted.sort();
        assert_eq!(found, wanted);
    }
    let (alice, others) = (&peers[0], &peers[1..]);
    alice.send("broadcast hello, LAN");
    alice.expect_exact("broadcast sent to 2 peers");
    let line = format!(
        "[broadcast] alice (unverified {}): hello, LAN",
        alice.fingerprint()
    );
    for peer in others {
        peer.expect_exact(&line);
    }
}
