//! The registry: register, listpeer, exit network, taken names, peers that leave.

use p2p_e2e::{envelope_from, json, request, Peer, Server};

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
        server.expect_exact(&format!("registered {} {}", peer.name(), peer.addr()));
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
    second.send("register");
    let error = second.expect_error();
    assert!(error.contains("taken"), "expected 'taken' in {error:?}");
    assert_eq!(second.listpeer(), vec![first.peer_line()]);

    // Once the first alice is gone, the registry finds it dead and gives the name away.
    first.kill();
    second.register();
    assert_eq!(second.listpeer(), vec![second.peer_line()]);
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
    alice.send("chat request bob");
    alice.expect_request_sent(&bob);
    bob.expect_request_from(&alice);
    bob.send("yes");
    bob.expect_exact(&format!("accepted chat with alice ({})", alice.addr()));
    alice.expect_exact(&format!("chat accepted by bob ({})", bob.addr()));

    alice.send("exit network");
    alice.expect_exact("left the network");
    assert_eq!(bob.listpeer(), vec![bob.peer_line()]);
    alice.say(&bob, "still chatting");
    bob.say(&alice, "yes we are");
    assert_eq!(alice.connected(), vec![bob.connected_line()]);
}

#[test]
fn listpeer_shows_every_peer_past_one_page() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    alice.register();
    // 300 more registrations, written by hand: a `peers` reply holds at most 256.
    let mut expected = vec![alice.peer_line()];
    for i in 0..300u16 {
        let (name, addr) = (format!("p{i:03}"), format!("127.0.0.1:{}", 1000 + i));
        let reply = request(
            server.addr(),
            &envelope_from(&name, &addr, json!({ "type": "register" })),
        );
        assert_eq!(reply["body"]["result"]["type"], "registered", "{reply}");
        expected.push(format!("peer {name} {addr}"));
    }
    assert_eq!(alice.listpeer(), expected);
}
