//! Exhaustion attacks of issue 13, against the real programs: nobody can cheaply knock anyone
//! off. Each test runs one measured attack, scaled down where a flag makes the bound small
//! enough to reach, and then checks that the legitimate users on 127.0.0.1 are still served.
//!
//! Attackers connect from 127.1.x.y: other addresses, in other /24 networks, than the
//! legitimate peers on 127.0.0.1. Every load loop is bounded in count and in time, and every
//! wait is for an event (a line, a reply, a count), with a deadline.

use p2p_shared::wire::RequestDigest;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use p2p_e2e::{
    binary, decode_reply, envelope, frame, frame_body, json, outcome, sign_json, DataDir, Peer,
    Proc, RawPeer, Server, Signer, Value,
};

/// A TCP connection to `to` from the loopback address `from`, or why not.
fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    p2p_e2e::try_connect_from(from.into(), to)
}

/// Sends one frame from `from` and returns the outcome of the signed reply (`busy`, `ok`,
/// an error code...).
fn exchange_from(from: [u8; 4], to: SocketAddr, frame: &[u8]) -> String {
    let mut stream = connect_from(from, to).expect("a connection");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    stream.write_all(frame).expect("the frame is sent");
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    match decode_reply(&reply) {
        Ok(envelope) => outcome(&envelope),
        Err(e) => panic!("no signed reply from {to}: {e}"),
    }
}

/// `n` signed `unregister` requests from `from`, each with a fresh key if `fresh_keys`, else
/// all with one; returns how many were answered `busy` (the rest must get `not_registered`:
/// admitted and handled).
fn signed_requests(to: SocketAddr, from: [u8; 4], n: usize, fresh_keys: bool) -> usize {
    let [a, b, c, d] = from;
    let addr = format!("{a}.{b}.{c}.{d}:1");
    let mut signer = Signer::new("squatter", &addr);
    let mut busy = 0;
    for _ in 0..n {
        if fresh_keys {
            signer = Signer::new("squatter", &addr);
        }
        let request = signer.envelope(json!({ "type": "unregister" }));
        match exchange_from(from, to, &signer.frame(&request)).as_str() {
            "busy" => busy += 1,
            "not_registered" => {}
            other => panic!("an unregister from {addr} answered {other}"),
        }
    }
    busy
}

/// One key, dated 115 s ahead, then many keys from one address, then from its network: each
/// fills only its own quota, and a legitimate peer still registers. (The measured attack sent
/// 200,000 requests to fill a cache of 200,000; here the whole cache holds 1,000, so the 1,800
/// requests below would fill it three times over without quotas.)
#[test]
fn one_key_or_one_network_flooding_signed_requests_silences_only_itself() {
    let server = Server::builder()
        .arg("--replay-ids=1000")
        .arg("--replay-ids-per-ip=300")
        .arg("--replay-ids-per-prefix=600")
        .start();
    let to = server.addr();

    // Dated 115 s ahead, as in the attack: refused, and remembered by nobody.
    let early = Signer::new("squatter", "127.1.0.1:1");
    let mut request = early.envelope(json!({ "type": "unregister" }));
    let ahead = chrono::Utc::now() + chrono::Duration::seconds(115);
    request["at"] = json!(ahead.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    let answer = exchange_from([127, 1, 0, 1], to, &early.frame(&request));
    assert_eq!(answer, "stale");

    // One key: its quota of 256, then busy for that key.
    let busy = signed_requests(to, [127, 1, 0, 1], 1_000, false);
    assert_eq!(busy, 1_000 - 256, "one key is admitted its quota");
    // Fresh keys from one address: its quota (300 ids, 256 of them the key above's).
    let busy = signed_requests(to, [127, 1, 0, 1], 100, true);
    assert_eq!(busy, 100 - (300 - 256), "one address is admitted its quota");
    // Fresh keys from other addresses of its /24: the network's quota (600) in all.
    let busy = signed_requests(to, [127, 1, 0, 2], 400, true);
    assert_eq!(busy, 400 - 300, "another address has a quota of its own");
    let busy = signed_requests(to, [127, 1, 0, 3], 100, true);
    assert_eq!(busy, 100, "but the network's is used up");

    // Everybody else is untouched: another network, and the legitimate peer on 127.0.0.1.
    assert_eq!(signed_requests(to, [127, 2, 0, 1], 10, true), 0);
    let alice = Peer::start("alice", server.addr());
    alice.register();
    server.expect_registered(&alice);
}

/// Slow senders from 8 addresses, 64 connections each, a byte a second: they hold no slot for
/// long (a frame's header within 2 s) and no more than their budgets, so the registry still
/// lists, and a chat between two peers they also flood stays open and delivers.
#[test]
fn slow_senders_from_eight_addresses_do_not_take_the_slots() {
    let server = Server::start();
    let keepalive = ["--keepalive", "1s", "--retry-for", "1s"];
    let start = |name| {
        let mut builder = Peer::builder(name).server(server.addr());
        for arg in keepalive {
            builder = builder.arg(arg);
        }
        builder.start()
    };
    let (alice, bob) = (start("alice"), start("bob"));
    alice.register();
    bob.register();
    alice.chat_with(&bob);

    let stop = Arc::new(AtomicBool::new(false));
    let (ready, readied) = mpsc::channel();
    let attackers: Vec<_> = (1..=8u8)
        .flat_map(|host| [(host, server.addr()), (host, bob.addr())])
        .map(|(host, to)| {
            let (stop, ready) = (Arc::clone(&stop), ready.clone());
            thread::spawn(move || trickle([127, 1, 0, host], to, &stop, ready))
        })
        .collect();
    // Every attacker has opened its 64 connections: the slots are under attack.
    for _ in &attackers {
        let opened = readied.recv_timeout(Duration::from_secs(20));
        assert_eq!(opened, Ok(64), "an attacker could not connect");
    }

    let listed = alice.listpeer();
    assert_eq!(listed.len(), 2, "{listed:?}");
    alice.say(&bob, "still here");
    // Liveness checks run meanwhile, every second, from both sides. One more round trip with
    // a full keepalive cycle behind it: both still see the chat.
    bob.say(&alice, "me too");
    assert_eq!(alice.connected(), vec![bob.connected_line()]);
    stop.store(true, Ordering::SeqCst);
    for attacker in attackers {
        attacker.join().expect("an attacker thread");
    }
    assert_eq!(bob.connected(), vec![alice.connected_line()]);
}

/// One attacker: 64 connections from `from` to `to`, each sent one byte a second of a frame
/// that announces 65,535 bytes, reopened when the receiver closes it, until told to stop (or
/// 60 s, or 20,000 connections).
/// Says on `ready` how many of its first 64 connections opened.
fn trickle(from: [u8; 4], to: SocketAddr, stop: &AtomicBool, ready: mpsc::Sender<usize>) {
    let limit = Instant::now() + Duration::from_secs(60);
    let made = AtomicUsize::new(0);
    let open = || {
        made.fetch_add(1, Ordering::SeqCst);
        connect_from(from, to).ok()
    };
    let frame = [&[0u8, 0, 0xff, 0xff][..], &[b'x'; 0xffff]].concat();
    // Each connection and how many bytes of the frame it has sent.
    let mut streams: Vec<(Option<TcpStream>, usize)> = (0..64).map(|_| (open(), 0)).collect();
    let _ = ready.send(streams.iter().filter(|(s, _)| s.is_some()).count());
    let going = || made.load(Ordering::SeqCst) < 20_000 && Instant::now() < limit;
    while !stop.load(Ordering::SeqCst) && going() {
        for (stream, sent) in streams.iter_mut() {
            let byte = &frame[*sent % frame.len()..][..1];
            match stream.as_mut().is_some_and(|s| s.write_all(byte).is_ok()) {
                true => *sent += 1,
                false => (*stream, *sent) = (open(), 0),
            }
        }
        // The attack's own pace, not a wait for anything: a byte a second per connection.
        thread::sleep(Duration::from_secs(1));
    }
}

/// A chat partner that answers every liveness check `busy` is alive: the chat stays open.
#[test]
fn a_partner_that_answers_busy_keeps_the_chat() {
    let alice = Peer::builder("alice")
        .server(p2p_e2e::dead_addr())
        .arg("--keepalive")
        .arg("300ms")
        .arg("--retry-for")
        .arg("1s")
        .start();
    let raw = RawPeer::start("bob");
    let mut chat = raw.chat_with(&alice);
    raw.answer_pings_busy();
    // Checks go on, answered busy: more pings than one check would retry within --retry-for
    // (4: at 0, 0.1, 0.3 and 0.7 s) before it gave up on a partner it took for gone.
    raw.expect_busy_pings(8);
    let reply = chat.message("still here");
    assert_eq!(outcome(&reply), "ok", "{reply}");
    alice.expect_exact("bob: still here");
    let connected = alice.connected();
    assert_eq!(connected.len(), 1, "the chat is open: {connected:?}");
}

/// Squatting from 60 addresses of one /24: they share the network's budget of new names, and
/// one key holds only so many names.
#[test]
fn squatting_from_many_addresses_of_one_network_is_bounded() {
    let server = Server::builder()
        .arg("--max-names-per-prefix=40")
        .arg("--max-names-per-key=2")
        .start();
    let mut registered = 0;
    for host in 1..=60u8 {
        let addr = format!("127.1.1.{host}:1");
        for i in 0..2 {
            let signer = Signer::new(&format!("squat-{host}-{i}"), &addr);
            let request = signer.envelope(json!({ "type": "register" }));
            match exchange_from([127, 1, 1, host], server.addr(), &signer.frame(&request)).as_str()
            {
                "registered" => registered += 1,
                "registry_full" => {}
                other => panic!("a register from {addr} answered {other}"),
            }
        }
    }
    assert_eq!(
        registered, 40,
        "the network's budget, not 60 addresses' worth"
    );

    // One key, from addresses of different networks: 2 names, then no more.
    let key = p2p_e2e::Identity::generate();
    let answers: Vec<String> = (1..=3u8)
        .map(|net| {
            let addr = format!("127.2.{net}.1:1");
            let body = json!({ "type": "register" });
            let request = envelope(&format!("mine-{net}"), &addr, &key.public(), body);
            let json = serde_json::to_vec(&request).unwrap();
            let bytes = frame(&sign_json(&key, &json));
            exchange_from([127, 2, net, 1], server.addr(), &bytes)
        })
        .collect();
    assert_eq!(answers, ["registered", "registered", "registry_full"]);

    let alice = Peer::start("alice", server.addr());
    alice.register();
}

/// `p2p-server release NAME`: refused while the registry runs on the data folder; once it is
/// stopped, the name is released, and after a restart another key can claim it.
#[test]
fn the_operator_releases_a_name_while_the_registry_is_stopped() {
    let data = DataDir::new("registry");
    let server = Server::builder().data_dir(data.path()).start();
    let alice = Peer::start("alice", server.addr());
    alice.register();

    let release = |name: &str| {
        let args = vec![
            "release".to_string(),
            name.to_string(),
            "--data-dir".to_string(),
            data.path().display().to_string(),
        ];
        let mut proc = Proc::spawn("release", &binary("p2p-server"), &args);
        let status = proc.wait_exit();
        (status.success(), proc.transcript())
    };
    let (ok, said) = release("alice");
    assert!(!ok, "{said:?}");
    assert!(
        said.iter().any(|l| l.contains("a registry is running on")),
        "{said:?}"
    );

    server.terminate();
    let mut server = server;
    server.wait_exit();
    drop(server);
    let (ok, said) = release("alice");
    assert!(ok, "{said:?}");
    let fingerprint = alice.fingerprint();
    assert_eq!(
        said,
        [format!(
            "out| released alice (it was claimed by key {fingerprint})"
        )]
    );
    let (ok, said) = release("alice");
    assert!(
        !ok && said.iter().any(|l| l.contains("alice is not claimed")),
        "{said:?}"
    );

    // Another key may now have the name.
    let server = Server::builder().data_dir(data.path()).start();
    let other = Peer::start("alice", server.addr());
    assert_ne!(other.fingerprint(), fingerprint);
    other.register();
}

/// A lying registry lists 262,144 peers: the peer keeps the first 4,096, asks for no more
/// pages than they take, and says it stopped.
#[test]
fn a_huge_listing_from_a_lying_registry_is_cut_at_the_bound() {
    let registry = FakeRegistry::start(262_144);
    let alice = Peer::builder("alice").server(registry.addr).start();
    let listed = alice.listpeer();
    assert_eq!(listed.len(), 4_096);
    assert_eq!(
        alice.next_line(),
        "the registry lists more peers; showing the first 4096 (the most a listing keeps)"
    );
    assert_eq!(registry.pages.load(Ordering::SeqCst), 4_096 / 256);
}

/// A registry played by the test: it answers every signed `list_peers` with a full page of
/// made-up peers, `total` in all, and counts the pages it served.
struct FakeRegistry {
    addr: SocketAddr,
    pages: Arc<AtomicUsize>,
}

impl FakeRegistry {
    fn start(total: usize) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().unwrap();
        let pages = Arc::new(AtomicUsize::new(0));
        let served = Arc::clone(&pages);
        let signer = Signer::new("registry", addr);
        let key = signer.key().to_string();
        // Ends with the test process; serves at most 2,000 connections.
        thread::spawn(move || {
            for stream in listener.incoming().take(2_000) {
                let Ok(mut stream) = stream else { continue };
                let Some((request, digest)) = read_signed(&mut stream) else {
                    continue;
                };
                let after = request["body"]["after"].as_str().map(|a| {
                    a.trim_start_matches('f')
                        .parse::<usize>()
                        .expect("our name")
                        + 1
                });
                let first = after.unwrap_or(0);
                let last = (first + 256).min(total);
                let rows: Vec<Value> = (first..last)
                    .map(|i| json!([format!("f{i:06}"), "127.9.0.1:1", key]))
                    .collect();
                let next = (last < total).then(|| format!("f{:06}", last - 1));
                let reply = signer.envelope(json!({
                    "type": "reply",
                    "re": request["id"],
                    "re_digest": digest,
                    "result": { "type": "peers", "peers": rows, "next": next },
                }));
                served.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(&signer.frame(&reply));
            }
        });
        FakeRegistry { addr, pages }
    }
}

/// One signed request's envelope (its signature is not checked: the fake trusts anyone), and
/// the digest of its frame, which the reply names.
fn read_signed(stream: &mut TcpStream) -> Option<(Value, RequestDigest)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).ok()?;
    let len = u32::from_be_bytes(head) as usize;
    let mut body = vec![0u8; len.min(65_536)];
    stream.read_exact(&mut body).ok()?;
    let mut whole = head.to_vec();
    whole.extend_from_slice(&body);
    let body = frame_body(&whole).ok()?;
    let envelope = serde_json::from_slice(body.get(65..)?).ok()?;
    Some((envelope, RequestDigest::of(body)))
}

/// Issue 19: a chat partner that sends early messages and never the one before them holds
/// at most its share of connections, for at most the hold (5 s): meanwhile others are served
/// at once, and afterwards what it sent shows, in order, and the chat goes on.
#[test]
fn a_partner_that_never_closes_a_gap_holds_its_messages_only_for_a_while() {
    let alice = RawPeer::start("alice");
    let bob = Peer::builder("bob").arg("--debug").start();
    let mut chat = alice.chat_with(&bob);
    // 16 early messages, seq 2 to 17, each on a connection of its own, waiting; seq 1 never.
    const EARLY: u64 = 16;
    let frames: Vec<(u64, Vec<u8>)> = (2..=EARLY + 1)
        .map(|seq| {
            let text = format!("early {seq}");
            chat.seal(json!({ "type": "chat_message", "text": text, "seq": seq }))
        })
        .collect();
    let answers: Vec<String> = thread::scope(|s| {
        let waiting: Vec<_> = frames
            .iter()
            .map(|(counter, frame)| s.spawn(|| outcome(&chat.exchange(*counter, frame))))
            .collect();
        bob.expect_log(&format!("message {} from alice waits", EARLY + 1));
        // Held, they take nothing from anyone else: another address is answered at once.
        let someone = Signer::new("carol", "127.1.0.9:40000");
        let framed = someone.frame(&someone.envelope(json!({ "type": "ping" })));
        assert_eq!(exchange_from([127, 1, 0, 9], bob.addr(), &framed), "ok");
        waiting
            .into_iter()
            .map(|w| w.join().expect("an exchange"))
            .collect()
    });
    assert!(answers.iter().all(|a| a == "ok"), "{answers:?}");
    for seq in 2..=EARLY + 1 {
        bob.expect_next(&format!("alice: early {seq}"));
    }
    assert_eq!(outcome(&chat.message("after the gap")), "ok");
    bob.expect_next("alice: after the gap");
}
