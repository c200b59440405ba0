//! The registry: register, listpeer, exit network, taken names, released names, peers that
//! leave.

use p2p_e2e::{json, outcome, own_addr, DataDir, Peer, Server, Signer};

#[test]
fn register_list_and_leave_across_three_peers() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    let bob = Peer::start("bob", server.addr());
    let carol = Peer::start("carol", server.addr());

    // Registered out of order: listpeer sorts by name.
    carol.register();
    alice.register();
    bob.register();
    for peer in [&carol, &alice, &bob] {
        server.expect_registered(peer);
    }

    let everyone = vec![alice.peer_line(), bob.peer_line(), carol.peer_line()];
    assert_eq!(alice.listpeer(), everyone);
    assert_eq!(bob.listpeer(), everyone);
    assert_eq!(carol.listpeer(), everyone);

    bob.send("exit network");
    bob.expect_exact("left the network");
    server.expect_exact("unregistered bob");

    let remaining = vec![alice.peer_line(), carol.peer_line()];
    assert_eq!(alice.listpeer(), remaining);
    assert_eq!(carol.listpeer(), remaining);
    // The one who left can still look.
    assert_eq!(bob.listpeer(), remaining);
}

/// A peer listening on one address of a host with several is registered, asked for a chat
/// and reached at that address: its connections leave from it, so the address its signed
/// requests name is one it listens on. On loopback every route to 127.0.0.1 picks 127.0.0.1
/// as the source, so a peer on 127.0.2.N would otherwise name 127.0.0.1, where it does not
/// listen.
#[test]
fn a_peer_bound_to_one_of_several_addresses_is_reached_there() {
    let server = Server::start();
    let alice = Peer::builder("alice")
        .server(server.addr())
        .at(own_addr())
        .start();
    let bob = Peer::start("bob", server.addr());
    let carol = Peer::start("carol", server.addr());
    alice.register();
    server.expect_registered(&alice);
    assert_eq!(bob.listpeer(), vec![alice.peer_line()]);

    // Asked for by name: the address is the registry's.
    bob.chat_by_name_with(&alice);
    bob.say(&alice, "to your own address");
    alice.say(&bob, "from it");
    // Asking: the address is the one alice's request names.
    alice.chat_with(&carol);
    carol.say(&alice, "reached");
}

#[test]
fn registering_twice_from_the_same_peer_keeps_one_entry() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    alice.register();
    alice.register();
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);
}

#[test]
fn a_name_held_by_a_live_peer_is_taken() {
    let server = Server::start();
    let mut first = Peer::start("alice", server.addr());
    first.register();

    let second = Peer::start("alice", server.addr());
    assert_ne!(second.key(), first.key(), "two data directories, two keys");
    second.send("register");
    let error = second.expect_error();
    assert!(error.contains("taken"), "expected 'taken' in {error:?}");
    assert!(
        error.ends_with("(p2p-server release alice)"),
        "the way out: {error:?}"
    );
    assert_eq!(second.listpeer(), vec![first.peer_line()]);

    // The name belongs to the first alice's key, not to whoever is online: once she has left,
    // the second alice is still refused, and the name stays free of any address.
    first.exit();
    server.expect_exact("unregistered alice");
    second.send("register");
    let error = second.expect_error();
    assert!(error.contains("taken"), "expected 'taken' in {error:?}");
    assert_eq!(second.listpeer(), Vec::<String>::new());
}

#[test]
fn a_released_name_can_be_claimed_by_another_key() {
    let server = Server::start();
    let first = Peer::start("alice", server.addr());
    first.register();
    let second = Peer::start("alice", server.addr());
    second.send("release name");
    let error = second.expect_error();
    assert!(error.contains("another key"), "{error:?}");
    assert_eq!(second.listpeer(), vec![first.peer_line()]);

    first.send("release name");
    first.expect_exact("released the name alice");
    server.expect_exact("released alice");
    assert_eq!(second.listpeer(), Vec::<String>::new());

    second.register();
    server.expect_registered(&second);
    assert_eq!(first.listpeer(), vec![second.peer_line()]);
    // Now the first key is the stranger.
    first.send("register");
    let error = first.expect_error();
    assert!(error.contains("taken"), "expected 'taken' in {error:?}");
}

#[test]
fn register_without_a_reachable_registry_fails_promptly() {
    let alice = Peer::start_offline("alice");
    alice.send("register");
    alice.expect_error();
    alice.send("listpeer");
    alice.expect_error();
    // Still answering.
    assert_eq!(alice.connected(), Vec::<String>::new());
}

#[test]
fn a_registered_peer_that_exits_is_no_longer_listed() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    let mut bob = Peer::start("bob", server.addr());
    alice.register();
    bob.register();
    assert_eq!(alice.listpeer(), vec![alice.peer_line(), bob.peer_line()]);

    bob.send("exit");
    bob.expect_exact("bye");
    assert!(bob.wait_exit().success());
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);
}

#[test]
fn a_registered_peer_whose_input_ends_is_no_longer_listed() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    let mut bob = Peer::start("bob", server.addr());
    alice.register();
    bob.register();

    bob.close_stdin();
    bob.expect_exact("bye");
    assert!(bob.wait_exit().success());
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);
}

#[test]
fn leaving_the_network_keeps_open_chats() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    let bob = Peer::start("bob", server.addr());
    alice.register();
    bob.register();
    alice.chat_by_name_with(&bob);

    alice.send("exit network");
    alice.expect_exact("left the network");
    assert_eq!(bob.listpeer(), vec![bob.peer_line()]);
    alice.say(&bob, "still chatting");
    bob.say(&alice, "yes we are");
    assert_eq!(alice.connected(), vec![bob.connected_line()]);
}

#[test]
fn listpeer_shows_every_peer_past_one_page() {
    // All from 127.0.0.1, which by default may hold 64 names, and its /24 claim 256 an hour.
    let server = Server::builder()
        .arg("--max-names-per-ip")
        .arg("301")
        .arg("--max-names-per-prefix")
        .arg("301")
        .start();
    let alice = Peer::start("alice", server.addr());
    alice.register();
    // 300 more registrations, each signed by a key of its own, written by hand: a `peers`
    // reply holds at most 256. From 10 threads at once, as many peers would: the registry
    // writes the new names that arrive together in one transaction.
    let addr = server.addr();
    let register = move |i: u16| {
        let (name, at) = (format!("p{i:03}"), format!("127.0.0.1:{}", 1000 + i));
        let signer = Signer::new(&name, &at);
        let reply = signer.request(addr, json!({ "type": "register" }));
        assert_eq!(outcome(&reply), "registered", "{reply}");
        assert_eq!(reply["body"]["result"]["key"], signer.key().to_string());
        format!("peer {name} {at} key {}", signer.key().fingerprint())
    };
    let threads: Vec<_> = (0..10u16)
        .map(|t| {
            std::thread::spawn(move || (t * 30..t * 30 + 30).map(register).collect::<Vec<_>>())
        })
        .collect();
    let mut expected = vec![alice.peer_line()];
    for thread in threads {
        expected.extend(thread.join().expect("a registering thread"));
    }
    assert_eq!(alice.listpeer(), expected);
}

#[test]
fn a_listing_sees_every_change_to_the_registry() {
    // Listings in a registry session get pages the registry encoded once and keeps until the
    // list changes: every kind of change must show at once.
    let server = Server::builder().arg("--ttl").arg("3s").start();
    let alice = Peer::start("alice", server.addr());
    alice.register();
    server.expect_registered(&alice);
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);

    // Added, then moved to another address by the same key.
    let bob_dir = DataDir::new("bob");
    let start_bob = || {
        Peer::builder("bob")
            .server(server.addr())
            .data_dir(bob_dir.path())
            .start()
    };
    let mut bob = start_bob();
    bob.register();
    server.expect_registered(&bob);
    assert_eq!(alice.listpeer(), vec![alice.peer_line(), bob.peer_line()]);
    bob.kill();
    let bob = start_bob();
    bob.register();
    server.expect_registered(&bob);
    assert_eq!(alice.listpeer(), vec![alice.peer_line(), bob.peer_line()]);

    // Unregistered.
    bob.send("exit network");
    bob.expect_exact("left the network");
    server.expect_exact("unregistered bob");
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);

    // Released.
    let carol = Peer::start("carol", server.addr());
    carol.register();
    server.expect_registered(&carol);
    assert_eq!(alice.listpeer(), vec![alice.peer_line(), carol.peer_line()]);
    carol.send("release name");
    carol.expect_exact("released the name carol");
    server.expect_exact("released carol");
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);

    // Lapsed: dave dies without a word.
    let mut dave = Peer::start("dave", server.addr());
    dave.register();
    server.expect_registered(&dave);
    assert_eq!(alice.listpeer(), vec![alice.peer_line(), dave.peer_line()]);
    dave.kill();
    server.expect_exact("expired dave (not renewed in time)");
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);
}

#[test]
fn a_registry_stops_cleanly_on_sigterm_and_on_ctrl_c() {
    for interrupt in [false, true] {
        let mut server = Server::start();
        let alice = Peer::start("alice", server.addr());
        alice.register();
        match interrupt {
            true => server.interrupt(),
            false => server.terminate(),
        }
        server.expect_exact("stopped");
        let status = server.wait_exit();
        assert!(status.success(), "{status}");
    }
}
