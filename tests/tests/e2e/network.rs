//! The network without a center: peers that know each other from each other, with no
//! registry at all (`join`, `peers`, the bootstrap list, peer exchange).

use p2p_e2e::Peer;

/// The line `peers` shows for `who`, seen directly or learned from others.
fn known_line(lines: &[String], who: &Peer) -> Option<String> {
    let prefix = format!(
        "known {} (unverified) {} key {} (",
        who.name(),
        who.addr(),
        who.fingerprint()
    );
    lines.iter().find(|l| l.starts_with(&prefix)).cloned()
}

#[test]
fn peers_found_through_one_another_with_no_registry() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    let carol = Peer::start_offline("carol");
    assert_eq!(alice.known(), Vec::<String>::new());

    bob.send(&format!("join 127.0.0.1 {}", alice.port()));
    bob.expect_exact(&format!("joined alice at {}: 1 new peer", alice.addr()));
    // carol knows only bob; bob passes alice on.
    carol.send(&format!("join 127.0.0.1:{}", bob.port()));
    carol.expect_exact(&format!("joined bob at {}: 2 new peers", bob.addr()));

    let known = carol.known();
    assert_eq!(known.len(), 2, "{known:?}");
    let bob_line = known_line(&known, &bob).expect("bob, whom carol joined");
    assert!(
        bob_line.ends_with("(direct, seen") || bob_line.contains("(direct, seen "),
        "{bob_line}"
    );
    let alice_line = known_line(&known, &alice).expect("alice, from bob");
    assert!(
        alice_line.contains("(from exchange, not seen yet)"),
        "{alice_line}"
    );
    // Each side of an exchange learns the other.
    assert!(known_line(&alice.known(), &bob).is_some());
    assert!(known_line(&bob.known(), &carol).is_some());
}

#[test]
fn the_book_is_kept_across_a_restart_and_the_bootstrap_list_joins_at_start() {
    let alice = Peer::start_offline("alice");
    let list = p2p_e2e::DataDir::new("bootstrap");
    let file = list.path().join("peers");
    std::fs::write(
        &file,
        format!("# the lab\n127.0.0.1:{} {}\n", alice.port(), alice.key()),
    )
    .unwrap();
    let data = p2p_e2e::DataDir::new("bob");
    let start_bob = || {
        Peer::builder("bob")
            .data_dir(data.path())
            .arg("--peers")
            .arg(file.display().to_string())
            .start()
    };
    let mut bob = start_bob();
    // The bootstrap runs beside the start: its line may come before `whoami`'s, which the
    // kit reads at start.
    let joined = format!("joined alice at {}: 1 new peer", alice.addr());
    if !bob.stdout_so_far().contains(&joined) {
        bob.expect_exact(&joined);
    }
    bob.exit();
    std::fs::write(&file, "").unwrap();
    let bob = start_bob();
    let known = bob.known();
    assert!(
        known_line(&known, &alice).is_some(),
        "kept in the data folder: {known:?}"
    );
}

/// How often the peers of these tests check their book and swap records: short, so that a
/// network forms in seconds.
const EVERY: &str = "1s";

/// The longest a network of twelve may take to form, or to notice its dead, at [`EVERY`]:
/// docs/protocol.md ("Peer exchange") says a few rounds; this leaves room for a loaded
/// machine.
const WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Twelve peers, no registry, each started knowing only the one before (`--peers`).
fn chain(n: usize, lists: &p2p_e2e::DataDir) -> Vec<Peer> {
    let mut peers: Vec<Peer> = Vec::new();
    for i in 0..n {
        let mut builder = Peer::builder(&format!("p{i}"))
            .arg("--exchange-every")
            .arg(EVERY);
        if let Some(before) = peers.last() {
            let file = lists.path().join(format!("p{i}"));
            std::fs::write(&file, format!("127.0.0.1:{}\n", before.port())).unwrap();
            builder = builder.arg("--peers").arg(file.display().to_string());
        }
        peers.push(builder.start());
    }
    peers
}

/// Waits until `peer`'s book lists each of `live` as not dead, and each of `dead` as dead.
#[track_caller]
fn await_book(peer: &Peer, live: &[&Peer], dead: &[&Peer]) {
    let start = std::time::Instant::now();
    loop {
        let known = peer.known();
        let has = |who: &Peer, dead: bool| {
            known.iter().any(|l| {
                l.starts_with(&format!("known {} ", who.name()))
                    && l.contains(&who.fingerprint())
                    && l.contains("dead since") == dead
            })
        };
        if live.iter().all(|p| has(p, false)) && dead.iter().all(|p| has(p, true)) {
            return;
        }
        if start.elapsed() > WITHIN {
            peer.fail(&format!(
                "its book is not complete within {WITHIN:?}: {known:?}"
            ));
        }
        // No event says that a book is complete: look again in a moment.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `from` broadcasts `text`; each of `to` shows it exactly once.
#[track_caller]
fn broadcast_reaches_each_once(from: &Peer, to: &[&Peer], text: &str) {
    from.send(&format!("broadcast {text}"));
    let sent = from.expect_prefix("broadcast sent to ");
    assert_ne!(sent, "broadcast sent to 0 peers");
    let line = format!(
        "[broadcast] {} (unverified {}): {text}",
        from.name(),
        from.fingerprint()
    );
    for peer in to {
        peer.expect_exact(&line);
    }
    // Repeats are dropped by (origin, id): none that came before this marker shows.
    for peer in to {
        let after = peer.unread_lines();
        assert!(
            !after.contains(&line),
            "{} showed it twice: {after:?}",
            peer.name()
        );
    }
}

#[test]
fn twelve_peers_from_a_chain_of_bootstraps_form_one_network_and_heal_when_a_third_die() {
    let lists = p2p_e2e::DataDir::new("lists");
    let mut peers = chain(12, &lists);
    for (i, peer) in peers.iter().enumerate() {
        let others: Vec<&Peer> = peers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p)
            .collect();
        await_book(peer, &others, &[]);
    }
    let others: Vec<&Peer> = peers.iter().skip(1).collect();
    broadcast_reaches_each_once(&peers[0], &others, "hello, everyone");

    // Kill -9 a third, the middle of the chain included.
    let doomed = [3, 5, 6, 9];
    for i in doomed {
        peers[i].kill();
    }
    let pick = |dead: bool| -> Vec<&Peer> {
        (peers.iter().enumerate())
            .filter(|(i, _)| doomed.contains(i) == dead)
            .map(|(_, p)| p)
            .collect()
    };
    let (dead, live) = (pick(true), pick(false));
    for peer in &live {
        let others: Vec<&Peer> = live
            .iter()
            .filter(|p| p.name() != peer.name())
            .copied()
            .collect();
        await_book(peer, &others, &dead);
    }
    let from = live[live.len() - 1];
    let to: Vec<&Peer> = live
        .iter()
        .filter(|p| p.name() != from.name())
        .copied()
        .collect();
    broadcast_reaches_each_once(from, &to, "still here?");
}

/// The registry dies in the middle of a chat: the chat goes on, and a chat request by name
/// still finds a peer the book knows (shown unverified: nobody vouches for its key now).
#[test]
fn without_the_registry_the_book_finds_peers_by_name() {
    let mut server = p2p_e2e::Server::start();
    let alice = Peer::start("alice", server.addr());
    let bob = Peer::start("bob", server.addr());
    let carol = Peer::start("carol", server.addr());
    for peer in [&alice, &bob, &carol] {
        peer.register();
    }
    alice.chat_by_name_with(&bob);
    alice.send(&format!("join 127.0.0.1 {}", carol.port()));
    alice.expect_exact(&format!("joined carol at {}: 1 new peer", carol.addr()));

    server.kill();
    alice.say(&bob, "the registry is gone");
    bob.say(&alice, "we go on");

    alice.send("chat request carol");
    alice.expect_request_sent_vouched(&carol, false);
    carol.expect_prefix("chat request from alice (unverified: the registry did not answer)");
    carol.accept_chat(&alice, carol.addr());
    alice.say(&carol, "found you in my book");
}

/// A name in the book is verified when the registry alice trusts lists it with that key.
#[test]
fn the_book_and_broadcasts_show_a_name_the_registry_vouches_for_as_verified() {
    let server = p2p_e2e::Server::start();
    let alice = Peer::start("alice", server.addr());
    let bob = Peer::start("bob", server.addr());
    let carol = Peer::start_offline("carol");
    alice.register();
    bob.register();
    alice.send(&format!("join 127.0.0.1 {}", bob.port()));
    alice.expect_exact(&format!("joined bob at {}: 1 new peer", bob.addr()));
    alice.send(&format!("join 127.0.0.1 {}", carol.port()));
    alice.expect_exact(&format!("joined carol at {}: 1 new peer", carol.addr()));
    let known = alice.known();
    let bob_line = format!("known bob {} key {} (", bob.addr(), bob.fingerprint());
    assert!(known.iter().any(|l| l.starts_with(&bob_line)), "{known:?}");
    // carol is registered nowhere: her name is only a claim.
    assert!(known_line(&known, &carol).is_some(), "{known:?}");
    // A broadcast is shown under a name the registry vouches for, and under a claim.
    bob.send("broadcast hello from bob");
    bob.expect_exact("broadcast sent to 1 peer");
    alice.expect_exact("[broadcast] bob: hello from bob");
    carol.send("broadcast hello from carol");
    // carol knows alice, and bob from alice.
    carol.expect_exact("broadcast sent to 2 peers");
    alice.expect_exact(&format!(
        "[broadcast] carol (unverified {}): hello from carol",
        carol.fingerprint()
    ));
}
