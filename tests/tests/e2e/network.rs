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
