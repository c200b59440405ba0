//! Registry instances sharing one namespace on a real etcd (issue 16): claims, registrations
//! and their lapse seen through every instance; an instance killed mid-traffic; etcd itself
//! stopped and restarted.
//!
//! Each test starts its own etcd on free loopback ports (`p2p_e2e::Etcd`). A registration
//! lapses in etcd, not in a process the test can read, so the waits for a lapse list again
//! until the list changes, within a deadline and a bounded number of tries.

use std::path::Path;
use std::time::{Duration, Instant};

use p2p_e2e::{DataDir, Etcd, Peer, Server};

/// Registrations last this long, renewed by the peers every second.
const TTL: &str = "3s";

/// How long a lapse may take to show: the TTL, a renewal and etcd's lease check.
const LAPSE: Duration = Duration::from_secs(15);

/// A registry instance on `etcd`, with the key in `data`.
fn instance(etcd: &Etcd, data: &Path) -> Server {
    Server::builder()
        .data_dir(data)
        .arg("--ttl")
        .arg(TTL)
        .arg("--store")
        .arg(etcd.store())
        .start()
}

/// Two instances of one registry on `etcd`: the same key, each in a data folder of its own,
/// as an operator would copy the key file to a second machine.
fn two_instances(etcd: &Etcd) -> (Server, Server, DataDir, DataDir) {
    let (one, two) = (DataDir::new("instance-a"), DataDir::new("instance-b"));
    let a = instance(etcd, one.path());
    std::fs::copy(
        one.path().join("registry.key"),
        two.path().join("registry.key"),
    )
    .expect("copy the registry key");
    let b = instance(etcd, two.path());
    assert_eq!(a.key(), b.key(), "one registry, one key");
    (a, b, one, two)
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

/// Lists through `peer` until the list is `want` (sorted), within [`LAPSE`]; the last list
/// otherwise.
fn listed_eventually(peer: &Peer, want: &[String]) -> Vec<String> {
    let deadline = Instant::now() + LAPSE;
    let mut want = want.to_vec();
    want.sort();
    loop {
        let listed = sorted(peer.listpeer());
        if listed == want || Instant::now() > deadline {
            return listed;
        }
        // Between two listings, not as synchronisation: the lapse is etcd's, unannounced.
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_instances_on_one_etcd_share_claims_registrations_and_lapses() {
    let etcd = Etcd::start();
    let (a, b, _one, _two) = two_instances(&etcd);
    let mut alice = Peer::start("alice", a.addr());
    alice.register();
    a.expect_registered(&alice);

    // Registered through one, listed by the other.
    let bob = Peer::start("bob", b.addr());
    bob.register();
    assert_eq!(
        sorted(bob.listpeer()),
        sorted(vec![alice.peer_line(), bob.peer_line()])
    );

    // Claimed through one, refused to another key at the other.
    let impostor = Peer::start("alice", b.addr());
    assert_ne!(impostor.key(), alice.key());
    impostor.send("register");
    let error = impostor.expect_error();
    assert!(error.contains("taken"), "expected 'taken' in {error:?}");

    // A lease that lapses drops the peer from both.
    alice.kill();
    let carol = Peer::start("carol", a.addr());
    carol.register();
    let want = [bob.peer_line(), carol.peer_line()];
    assert_eq!(listed_eventually(&bob, &want), sorted(want.to_vec()));
    assert_eq!(sorted(carol.listpeer()), sorted(want.to_vec()));
    // The name is still alice's key's: the lapse dropped the address, not the claim.
    impostor.send("register");
    let error = impostor.expect_error();
    assert!(error.contains("taken"), "expected 'taken' in {error:?}");
}

#[test]
fn an_instance_killed_mid_traffic_leaves_the_other_answering_for_every_name() {
    let etcd = Etcd::start();
    let (mut a, b, _one, _two) = two_instances(&etcd);
    let both = format!("{},{}", a.addr(), b.addr());
    let alice = Peer::start("alice", &both);
    let bob = Peer::start("bob", &both);
    alice.register();
    bob.register();
    // The first instance named takes them while it answers.
    a.expect_all_registered(&[&alice, &bob]);
    alice.chat_by_name_with(&bob);

    alice.send("chat message bob one");
    a.kill(); // SIGKILL, in the middle of the chat
    alice.expect_exact("delivered to bob");
    bob.expect_exact("alice: one");

    // Within one renewal (a third of the TTL), with no command typed, both are registered
    // through the other instance, in a registry session of its own.
    b.expect_all_registered(&[&alice, &bob]);
    let carol = Peer::start("carol", b.addr());
    carol.register();
    assert_eq!(
        sorted(carol.listpeer()),
        sorted(vec![alice.peer_line(), bob.peer_line(), carol.peer_line()])
    );
    // Nothing claimed is lost: alice's name is still her key's.
    let impostor = Peer::start("alice", b.addr());
    impostor.send("register");
    let error = impostor.expect_error();
    assert!(error.contains("taken"), "expected 'taken' in {error:?}");
    // A chat requested by name, through the instance left.
    carol.chat_by_name_with(&alice);
    alice.say(&bob, "two");
}

#[test]
fn an_instance_whose_etcd_stops_refuses_as_unavailable_and_recovers_by_itself() {
    let mut etcd = Etcd::start();
    let data = DataDir::new("instance");
    let server = instance(&etcd, data.path());
    let alice = Peer::start("alice", server.addr());
    alice.register();
    server.expect_registered(&alice);

    etcd.stop();
    // The peer is told the registry cannot reach its store; the operator reads it in the log.
    let bob = Peer::start("bob", server.addr());
    bob.send("register");
    let error = bob.expect_error();
    assert!(error.contains("cannot reach its store"), "{error:?}");
    let line = server.expect("store unavailable: ");
    assert!(line.contains(&etcd.store()), "{line:?}");

    etcd.restart();
    // Nothing to do for the operator: the next request finds the store again.
    bob.register();
    server.expect_exact(&format!("store available again: {}", etcd.store()));
    let want = [alice.peer_line(), bob.peer_line()];
    assert_eq!(listed_eventually(&bob, &want), sorted(want.to_vec()));
}

#[test]
fn an_instance_with_another_key_is_refused_like_any_impostor() {
    let etcd = Etcd::start();
    let data = DataDir::new("instance");
    let mut a = instance(&etcd, data.path());
    // Another registry altogether, with a key of its own, named as a second instance.
    let other = Server::start();
    let alice = Peer::start("alice", format!("{},{}", a.addr(), other.addr()));
    alice.register();
    a.expect_registered(&alice);

    a.kill();
    alice.send("register");
    let error = alice.expect_error();
    assert!(error.contains("impostor"), "{error:?}");
    assert!(error.contains(&other.fingerprint()), "{error:?}");
}
