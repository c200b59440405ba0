//! Chat requests: yes, no, stray answers, several pending, expiry, repeats, refusals.

use p2p_e2e::{dead_addr, is_one_error, Peer};

const NONE: Vec<String> = Vec::new();

#[test]
fn no_declines_the_request() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");

    alice.request_chat(&bob);
    bob.expect_request_from(&alice);
    bob.send("no");
    bob.expect_exact("declined chat request from alice");
    alice.expect_exact("chat declined by bob");

    assert_eq!(alice.connected(), NONE);
    assert_eq!(bob.connected(), NONE);
    alice.send("chat message bob hello?");
    alice.expect_error();
}

#[test]
fn a_stray_yes_does_not_accept_a_later_request() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");

    bob.send("yes");
    bob.expect_error();

    alice.request_chat(&bob);
    bob.expect_request_from(&alice);
    assert_eq!(bob.connected(), NONE);
    assert_eq!(alice.connected(), NONE);

    // The request is still pending, and still bob's to answer.
    bob.send("no");
    bob.expect_exact("declined chat request from alice");
    alice.expect_exact("chat declined by bob");
    assert_eq!(bob.connected(), NONE);
}

#[test]
fn a_stray_no_does_nothing() {
    let bob = Peer::start_offline("bob");
    let out = bob.run("no");
    assert!(
        is_one_error(&out),
        "one error line for a 'no' with nothing pending: {out:?}"
    );
}

#[test]
fn two_pending_requests_are_answered_by_name() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    let carol = Peer::start_offline("carol");

    alice.request_chat(&bob);
    bob.expect_request_from(&alice);
    carol.request_chat(&bob);
    bob.expect_request_from(&carol);

    bob.send("yes");
    let error = bob.expect_error();
    assert!(
        error.contains("alice") && error.contains("carol"),
        "a plain yes with two pending must name both: {error:?}"
    );
    assert_eq!(bob.connected(), NONE);

    bob.send("yes carol");
    bob.expect_exact(&format!("accepted chat with carol ({})", carol.addr()));
    carol.expect_exact(&format!("chat accepted by bob ({})", bob.addr()));

    bob.send("no alice");
    bob.expect_exact("declined chat request from alice");
    alice.expect_exact("chat declined by bob");

    assert_eq!(bob.connected(), vec![carol.connected_line()]);
    assert_eq!(carol.connected(), vec![bob.connected_line()]);
    assert_eq!(alice.connected(), NONE);
    carol.say(&bob, "picked me");
}

#[test]
fn yes_or_no_naming_nobody_pending_is_an_error() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.request_chat(&bob);
    bob.expect_request_from(&alice);

    bob.send("yes carol");
    bob.expect_error();
    bob.send("no carol");
    bob.expect_error();
    assert_eq!(bob.connected(), NONE);

    // alice's request was untouched.
    bob.send("yes alice");
    bob.expect_exact(&format!("accepted chat with alice ({})", alice.addr()));
    alice.expect_exact(&format!("chat accepted by bob ({})", bob.addr()));
}

/// A chat request by one's own name is refused as that, not as "not online" (the registry,
/// asked, knows nothing of a peer that has not registered, or would give our own address).
#[test]
fn a_chat_request_by_ones_own_name_is_refused_as_that() {
    let alice = Peer::start_offline("alice");
    let out = alice.run("chat request alice");
    assert!(is_one_error(&out), "{out:?}");
    assert_eq!(
        out[0],
        "error: alice is this peer's own name: a chat is with another peer"
    );
}

#[test]
fn an_unanswered_request_expires_on_both_sides() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::builder("bob").request_timeout("1s").start();

    alice.request_chat(&bob);
    let asked = bob.expect_request_from(&alice);
    assert!(
        asked.contains("(expires in 1s), key "),
        "the line tells the configured timeout: {asked:?}"
    );
    bob.expect_exact("chat request from alice expired");
    alice.expect_exact("chat request to bob timed out");

    bob.send("yes");
    bob.expect_error();
    assert_eq!(bob.connected(), NONE);
    assert_eq!(alice.connected(), NONE);
}

#[test]
fn a_repeated_request_replaces_the_first() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");

    alice.request_chat(&bob);
    bob.expect_request_from(&alice);
    alice.request_chat(&bob);
    bob.expect_request_from(&alice);

    // One record for alice: a plain yes is not ambiguous, and nothing is left after it.
    bob.accept_chat(&alice, bob.addr());
    bob.send("yes");
    bob.expect_error();
    assert_eq!(bob.connected(), vec![alice.connected_line()]);
    assert_eq!(alice.connected(), vec![bob.connected_line()]);
}

#[test]
fn a_request_within_an_open_chat_is_refused() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);

    alice.send(&format!("chat request 127.0.0.1 {}", bob.port()));
    let error = alice.expect_error();
    assert!(error.contains("already"), "expected 'already' in {error:?}");

    // The other direction too.
    bob.send(&format!("chat request 127.0.0.1 {}", alice.port()));
    let error = bob.expect_error();
    assert!(error.contains("already"), "expected 'already' in {error:?}");

    // Nothing new is pending on either side, and the chat still works.
    bob.send("yes");
    bob.expect_error();
    alice.send("yes");
    alice.expect_error();
    alice.say(&bob, "still one chat");
    assert_eq!(bob.connected(), vec![alice.connected_line()]);
}

#[test]
fn a_request_to_a_port_nobody_listens_on_fails() {
    let alice = Peer::start_offline("alice");
    alice.send(&format!("chat request 127.0.0.1 {}", dead_addr().port()));
    alice.expect_error();
    assert_eq!(alice.connected(), NONE);
    // And the peer still does its job.
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
}

#[test]
fn a_chat_request_to_oneself_is_refused() {
    let alice = Peer::start_offline("alice");
    alice.send(&format!("chat request 127.0.0.1 {}", alice.port()));
    alice.expect_error();
    let out = alice.run("yes");
    assert!(is_one_error(&out), "nothing pending after that: {out:?}");
    assert_eq!(alice.connected(), NONE);
}

/// `status` line counting our own requests still waiting for an answer.
fn outgoing_requests(peer: &Peer) -> String {
    peer.send("status");
    peer.expect_prefix("outgoing requests: ")
}

#[test]
fn crossed_requests_settle_each_other_when_one_is_accepted() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.request_chat(&bob);
    bob.expect_request_from(&alice);
    bob.request_chat(&alice);
    alice.expect_request_from(&bob);

    alice.send("yes");
    alice.expect("accepted chat with bob");
    bob.expect("chat accepted by alice");

    // Alice's own request to bob can never be answered now, and needs no answer: it is gone,
    // rather than left to report a time-out in the middle of the chat.
    assert_eq!(outgoing_requests(&alice), "outgoing requests: 0");
    assert_eq!(outgoing_requests(&bob), "outgoing requests: 0");
    bob.send("status");
    bob.expect_exact("incoming requests: 0");
}

#[test]
fn a_newer_request_to_the_same_peer_replaces_the_older_on_both_sides() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.request_chat(&bob);
    bob.expect_request_from(&alice);
    alice.request_chat(&bob);
    bob.expect_request_from(&alice);
    assert_eq!(outgoing_requests(&alice), "outgoing requests: 1");
    bob.send("yes");
    alice.expect("chat accepted by bob");
    assert_eq!(outgoing_requests(&alice), "outgoing requests: 0");
}

#[test]
fn a_peer_that_exits_tells_everyone_waiting_for_its_answer() {
    let alice = Peer::start_offline("alice");
    let carol = Peer::start_offline("carol");
    let mut bob = Peer::start_offline("bob");
    alice.request_chat(&bob);
    bob.expect_request_from(&alice);
    carol.request_chat(&bob);
    bob.expect_request_from(&carol);

    bob.send("exit");
    bob.expect_exact("bye");
    assert!(bob.wait_exit().success());
    alice.expect_exact("chat request to bob ended: bob left without answering");
    carol.expect_exact("chat request to bob ended: bob left without answering");
    assert_eq!(outgoing_requests(&alice), "outgoing requests: 0");
}

/// However alice ends (`exit`, the end of her input, Ctrl-C, SIGTERM, SIGHUP), bob, whom she
/// asked, is told at once: his `yes` finds nothing instead of waiting for an answer that
/// never comes.
#[test]
fn a_requester_that_exits_withdraws_its_request() {
    /// One way to end a peer, and its name.
    type Leave = (&'static str, fn(&mut Peer));
    let bob = Peer::start_offline("bob");
    let ways: [Leave; 5] = [
        ("exit", |p| p.send("exit")),
        ("end of input", |p| p.close_stdin()),
        ("Ctrl-C", |p| p.interrupt()),
        ("SIGTERM", |p| p.terminate()),
        ("SIGHUP", |p| p.hang_up()),
    ];
    for (how, leave) in ways {
        let mut alice = Peer::start_offline("alice");
        alice.request_chat(&bob);
        bob.expect_request_from(&alice);

        leave(&mut alice);
        alice.expect_exact("chat request to bob dropped: exiting");
        alice.expect_exact("bye");
        assert!(alice.wait_exit().success(), "{how}");
        bob.expect_exact("chat request from alice withdrawn: alice left");
        bob.send("yes alice");
        bob.expect_next("error: no pending chat request from alice");
        bob.send("status");
        assert_eq!(
            bob.expect_prefix("incoming requests: "),
            "incoming requests: 0"
        );
    }
}
