//! Issue 19: chat messages in flight at once still show in the order they were typed, each
//! once, and each gets its one outcome. A burst piped into a real peer, and a raw peer that
//! sends a chat's messages out of order, or leaves a gap, or runs too far ahead.

use std::thread;

use p2p_e2e::{json, outcome, Peer, RawPeer};

/// The text of message `n` of a burst.
fn numbered(n: usize) -> String {
    format!("m{n:04}")
}

#[test]
fn a_burst_of_a_thousand_piped_messages_shows_each_once_in_order_and_each_is_delivered() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    const BURST: usize = 1_000;
    // Written as fast as alice's stdin takes them: several are in flight at once.
    for n in 1..=BURST {
        alice.send(&format!("chat message bob {}", numbered(n)));
    }
    for n in 1..=BURST {
        assert_eq!(bob.next_line(), format!("alice: {}", numbered(n)));
    }
    for _ in 1..=BURST {
        assert_eq!(alice.next_line(), "delivered to bob");
    }
    // Nothing else on either side: no message twice, no outcome twice.
    assert_eq!(alice.unread_lines(), Vec::<String>::new());
    assert_eq!(bob.unread_lines(), Vec::<String>::new());
}

#[test]
fn a_message_that_arrives_before_the_one_typed_before_it_waits_for_it() {
    let alice = RawPeer::start("alice");
    let bob = Peer::builder("bob").arg("--debug").start();
    let mut chat = alice.chat_with(&bob);
    let (second, second_frame) =
        chat.seal(json!({ "type": "chat_message", "text": "two", "seq": 2 }));
    let (first, first_frame) =
        chat.seal(json!({ "type": "chat_message", "text": "one", "seq": 1 }));
    thread::scope(|s| {
        // The second is held, its acknowledgement too, until the first has shown.
        let held = s.spawn(|| chat.exchange(second, &second_frame));
        bob.expect_log("message 2 from alice waits for those before it");
        assert_eq!(outcome(&chat.exchange(first, &first_frame)), "ok");
        assert_eq!(outcome(&held.join().expect("the held exchange")), "ok");
    });
    bob.expect_next("alice: one");
    bob.expect_next("alice: two");
}

#[test]
fn a_gap_that_never_closes_holds_the_messages_behind_it_only_for_a_while() {
    let alice = RawPeer::start("alice");
    let bob = Peer::start_offline("bob");
    let mut chat = alice.chat_with(&bob);
    // Message 1 never comes (its sender gave up on it, say): 2 shows after the hold.
    let (second, frame) = chat.seal(json!({ "type": "chat_message", "text": "two", "seq": 2 }));
    assert_eq!(outcome(&chat.exchange(second, &frame)), "ok");
    bob.expect_next("alice: two");
    // If it comes after all, it shows late rather than never.
    let (first, frame) = chat.seal(json!({ "type": "chat_message", "text": "one", "seq": 1 }));
    assert_eq!(outcome(&chat.exchange(first, &frame)), "ok");
    bob.expect_next("alice: one");
}

#[test]
fn a_message_too_far_ahead_of_the_chat_is_busy_and_one_with_no_place_is_refused() {
    let alice = RawPeer::start("alice");
    let bob = Peer::start_offline("bob");
    let mut chat = alice.chat_with(&bob);
    let far = chat.send(json!({ "type": "chat_message", "text": "far", "seq": 1_000_000 }));
    assert_eq!(outcome(&far), "busy", "{far}");
    let none = chat.send(json!({ "type": "chat_message", "text": "none", "seq": 0 }));
    assert_eq!(outcome(&none), "invalid_request", "{none}");
    let missing = chat.send(json!({ "type": "chat_message", "text": "no seq" }));
    assert_eq!(outcome(&missing), "bad_message", "{missing}");
    // The chat goes on.
    assert_eq!(outcome(&chat.message("still here")), "ok");
    bob.expect_next("alice: still here");
}

#[test]
fn disconnect_and_exit_come_after_the_messages_typed_before_them() {
    let mut alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    let carol = Peer::start_offline("carol");
    alice.chat_with(&bob);
    alice.chat_with(&carol);
    const TYPED: usize = 50;
    for n in 1..=TYPED {
        alice.send(&format!("chat message bob {}", numbered(n)));
    }
    alice.send("disconnect bob");
    for n in 1..=TYPED {
        alice.send(&format!("chat message carol {}", numbered(n)));
    }
    alice.send("exit");

    for n in 1..=TYPED {
        assert_eq!(bob.next_line(), format!("alice: {}", numbered(n)));
    }
    bob.expect_next("alice disconnected");
    for n in 1..=TYPED {
        assert_eq!(carol.next_line(), format!("alice: {}", numbered(n)));
    }
    carol.expect_next("alice disconnected");
    for _ in 1..=TYPED {
        alice.expect_next("delivered to bob");
    }
    alice.expect_next("disconnected from bob");
    for _ in 1..=TYPED {
        alice.expect_next("delivered to carol");
    }
    alice.expect_next("bye");
    assert!(alice.wait_exit().success());
}
