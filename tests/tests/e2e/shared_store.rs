//! Registry instances sharing one namespace on a real etcd (issue 16): claims, registrations
//! and their lapse seen through every instance; an instance killed mid-traffic; etcd itself
//! stopped and restarted; the claim rules (names per key, per address, new names per
//! network) held across instances, racing included.
//!
//! Each test starts its own etcd on free loopback ports (`p2p_e2e::Etcd`). A registration
//! lapses in etcd, not in a process the test can read, so a test waits for a lapse by
//! watching the registration's key in etcd.

use std::path::Path;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use p2p_e2e::{decode_reply, envelope, frame, json, outcome, raw_exchange_from, sign_json};
use p2p_e2e::{DataDir, Etcd, Identity, Peer, Server, Value};

/// Registrations last this long, renewed by the peers every second.
const TTL: &str = "3s";

/// How long a registration may take to show again after etcd came back: a renewal, and a
/// registration made anew if its lease lapsed meanwhile.
const RECOVERY: Duration = Duration::from_secs(15);

/// A registry instance on `etcd`, with the key in `data`.
fn instance(etcd: &Etcd, data: &Path) -> Server {
    instance_with(etcd, data, &[])
}

/// The same, with more arguments (the claim rules' limits).
fn instance_with(etcd: &Etcd, data: &Path, args: &[&str]) -> Server {
    let mut builder = Server::builder()
        .data_dir(data)
        .arg("--ttl")
        .arg(TTL)
        .arg("--store")
        .arg(etcd.store());
    for arg in args {
        builder = builder.arg(*arg);
    }
    builder.start()
}

/// Two instances of one registry on `etcd`: the same key, each in a data folder of its own,
/// as an operator would copy the key file to a second machine.
fn two_instances(etcd: &Etcd) -> (Server, Server, DataDir, DataDir) {
    two_instances_with(etcd, &[])
}

/// The same, both with `args`.
fn two_instances_with(etcd: &Etcd, args: &[&str]) -> (Server, Server, DataDir, DataDir) {
    let (one, two) = (DataDir::new("instance-a"), DataDir::new("instance-b"));
    let a = instance_with(etcd, one.path(), args);
    std::fs::copy(
        one.path().join("registry.key"),
        two.path().join("registry.key"),
    )
    .expect("copy the registry key");
    let b = instance_with(etcd, two.path(), args);
    assert_eq!(a.key(), b.key(), "one registry, one key");
    (a, b, one, two)
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

/// Lists through `peer` until the list is `want` (sorted), within [`RECOVERY`]; the last list
/// otherwise. For a wait with no one event to watch for: after etcd came back, a peer's
/// registration is either still there or made again at its next renewal.
fn listed_eventually(peer: &Peer, want: &[String]) -> Vec<String> {
    let deadline = Instant::now() + RECOVERY;
    let mut want = want.to_vec();
    want.sort();
    loop {
        let listed = sorted(peer.listpeer());
        if listed == want || Instant::now() > deadline {
            return listed;
        }
        // Between two listings, not as synchronisation: nothing announces the registration.
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
    let mut lapses = etcd.watch("p2p-chat/peers/");
    alice.kill();
    let carol = Peer::start("carol", a.addr());
    carol.register();
    lapses.expect_deleted("p2p-chat/peers/alice");
    let want = sorted(vec![bob.peer_line(), carol.peer_line()]);
    assert_eq!(sorted(bob.listpeer()), want);
    assert_eq!(sorted(carol.listpeer()), want);
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

/// A signed request from `identity` as `name` at `from` (a loopback address of its own) to
/// the instance at `to`: the reply envelope.
fn signed(identity: &Identity, name: &str, from: &str, to: SocketAddr, body: Value) -> Value {
    let request_envelope = envelope(name, from, &identity.public(), body);
    let json = serde_json::to_vec(&request_envelope).expect("serialize");
    let bytes = frame(&sign_json(identity, &json));
    let ip = from.parse::<SocketAddr>().expect("an address").ip();
    let raw = raw_exchange_from(Some(ip), to, &bytes, false);
    let reply = decode_reply(&raw).unwrap_or_else(|e| panic!("no reply from {to}: {e}"));
    assert_eq!(reply["body"]["re"], request_envelope["id"], "{reply}");
    reply
}

/// The error code and detail of a refusal (`registered` for a success).
fn answer(reply: &Value) -> (String, String) {
    let detail = reply["body"]["result"]["detail"].as_str().unwrap_or("");
    (outcome(reply), detail.to_owned())
}

#[test]
fn a_key_at_its_limit_through_one_instance_is_refused_a_name_at_the_other() {
    let etcd = Etcd::start();
    let (a, b, _one, _two) = two_instances_with(&etcd, &["--max-names-per-key", "2"]);
    let key = Identity::generate();
    let register = json!({ "type": "register" });
    for name in ["mine-1", "mine-2"] {
        let reply = signed(&key, name, "127.5.0.1:1", a.addr(), register.clone());
        assert_eq!(outcome(&reply), "registered", "{reply}");
    }
    // The embedded store's refusal, word for word (registry.rs, service.rs).
    let refused = signed(&key, "mine-3", "127.5.0.1:1", b.addr(), register.clone());
    assert_eq!(
        answer(&refused),
        (
            "registry_full".to_owned(),
            "this key holds as many names as one key may; release one first".to_owned()
        )
    );
    // A release through one instance gives the key its room back at the other.
    let released = signed(
        &key,
        "mine-1",
        "127.5.0.1:1",
        b.addr(),
        json!({ "type": "release" }),
    );
    assert_eq!(outcome(&released), "ok", "{released}");
    let reply = signed(&key, "mine-3", "127.5.0.1:1", a.addr(), register);
    assert_eq!(outcome(&reply), "registered", "{reply}");
}

#[test]
fn an_address_and_its_network_are_bounded_across_instances() {
    let etcd = Etcd::start();
    let limits = ["--max-names-per-ip", "2", "--max-names-per-prefix", "3"];
    let (a, b, _one, _two) = two_instances_with(&etcd, &limits);
    let register = json!({ "type": "register" });
    let from = |who: &Identity, name: &str, at: &str, to: &Server| {
        answer(&signed(who, name, at, to.addr(), register.clone()))
    };
    let registered = ("registered".to_owned(), String::new());
    let (one, two, three) = (
        Identity::generate(),
        Identity::generate(),
        Identity::generate(),
    );

    // Names registered at once from one address: two through one instance, then no third
    // through the other.
    assert_eq!(from(&one, "here-1", "127.6.0.1:1", &a), registered);
    assert_eq!(from(&two, "here-2", "127.6.0.1:1", &a), registered);
    let full_here = (
        "registry_full".to_owned(),
        "too many names are registered from this address".to_owned(),
    );
    assert_eq!(from(&three, "here-3", "127.6.0.1:1", &b), full_here);
    // Unregistered through the other instance, a name no longer counts there: its owner
    // registers it again (no new claim) from the same address.
    let gone = signed(
        &one,
        "here-1",
        "127.6.0.1:1",
        b.addr(),
        json!({ "type": "unregister" }),
    );
    assert_eq!(outcome(&gone), "ok", "{gone}");
    assert_eq!(from(&one, "here-1", "127.6.0.1:1", &b), registered);

    // New names from one network in the hour: the two above and one more, from any of its
    // addresses and through either instance; then none.
    assert_eq!(from(&three, "net-1", "127.6.0.2:1", &b), registered);
    let spent = (
        "registry_full".to_owned(),
        "too many new names were claimed from this address or its network in the last hour"
            .to_owned(),
    );
    assert_eq!(
        from(&Identity::generate(), "net-2", "127.6.0.3:1", &a),
        spent
    );
    assert_eq!(
        from(&Identity::generate(), "net-3", "127.6.0.4:1", &b),
        spent
    );
    // Another network has its own.
    assert_eq!(
        from(&Identity::generate(), "far-1", "127.7.0.1:1", &b),
        registered
    );
}

#[test]
fn concurrent_claims_through_both_instances_never_pass_a_limit() {
    let etcd = Etcd::start();
    let limits = ["--max-names-per-key", "2", "--max-names-per-prefix", "3"];
    let (a, b, _one, _two) = two_instances_with(&etcd, &limits);
    let instances = [a.addr(), b.addr()];
    // 12 claims at once, half through each instance: 6 names for one key (2 may pass), and
    // 6 by keys of their own from one network (3 may pass, and the key's count toward it).
    let key = std::sync::Arc::new(Identity::generate());
    let threads: Vec<_> = (0..12usize)
        .map(|i| {
            let (key, to) = (key.clone(), instances[i % 2]);
            std::thread::spawn(move || {
                let (who, name, at) = match i < 6 {
                    true => (key, format!("one-key-{i}"), format!("127.8.{i}.1:1")),
                    false => (
                        std::sync::Arc::new(Identity::generate()),
                        format!("one-net-{i}"),
                        format!("127.9.0.{i}:1"),
                    ),
                };
                let reply = signed(&who, &name, &at, to, json!({ "type": "register" }));
                (i < 6, outcome(&reply))
            })
        })
        .collect();
    let answers: Vec<(bool, String)> = threads
        .into_iter()
        .map(|t| t.join().expect("a claiming thread"))
        .collect();
    let granted = |same_key: bool| {
        let mine = answers.iter().filter(|(k, _)| *k == same_key);
        mine.filter(|(_, o)| o == "registered").count()
    };
    // Every claim is answered as a rule says, never `busy` after losing a race.
    for (_, outcome) in &answers {
        assert!(
            outcome == "registered" || outcome == "registry_full",
            "{answers:?}"
        );
    }
    assert_eq!(granted(true), 2, "one key, two names: {answers:?}");
    assert_eq!(
        granted(false),
        3,
        "one network, three new names: {answers:?}"
    );
}

/// A peer that moved from instance a to instance b (a stopped answering in time, say) and
/// later renews through a again: a renews only if the registration is still on its own lease.
/// Otherwise a registers it again on a new lease: renewing its old one would tell the peer it
/// is registered while the registration, on b's lease that nobody renews now, lapses.
#[test]
fn a_renewal_through_an_instance_the_peer_had_left_registers_again() {
    let etcd = Etcd::start();
    let (a, b, _one, _two) = two_instances(&etcd);
    let key = Identity::generate();
    let register = json!({ "type": "register" });
    let mut watch = etcd.watch("p2p-chat/peers/");
    let registered = |at: SocketAddr| {
        let reply = signed(&key, "rover", "127.6.0.1:1", at, register.clone());
        assert_eq!(outcome(&reply), "registered", "{reply}");
    };
    registered(a.addr());
    let (kind, on_a) = watch.next_change("p2p-chat/peers/rover");
    assert_eq!((kind.as_str(), on_a.is_some()), ("PUT", true));
    registered(b.addr());
    let (kind, on_b) = watch.next_change("p2p-chat/peers/rover");
    assert_eq!(kind, "PUT");
    assert_ne!(on_b, on_a, "b registers on a lease of its own");
    // Back at a, well within a's lease: the registration is put again, on a's new lease,
    // rather than left on b's to lapse.
    registered(a.addr());
    let (kind, again) = watch.next_change("p2p-chat/peers/rover");
    assert_eq!(kind, "PUT", "the registration lapsed instead: {again:?}");
    assert_ne!(again, on_b);
}
