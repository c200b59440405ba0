//! One lifecycle for chats and messages: a chat is open, away (its partner stopped
//! answering), or ended; what is typed to a partner who is away is kept, across restarts of
//! either side, and delivered in order, once, when the chat opens again.

use std::net::SocketAddr;
use std::sync::mpsc;

use p2p_e2e::{own_addr, raw_exchange, DataDir, Peer, Proc, Proxy, Server};

/// A peer on a data folder and an address of its own, restarted there: its partners find it
/// where they last saw it. Every second it checks its partners and asks its away chats again.
fn start(name: &str, data: &DataDir, at: SocketAddr) -> Peer {
    Peer::builder(name)
        .data_dir(data.path())
        .at(at)
        .arg("--keepalive")
        .arg("1s")
        .arg("--retry-for")
        .arg("1s")
        .arg("--exchange-every")
        .arg("1s")
        .start()
}

#[test]
fn messages_for_a_partner_who_is_away_arrive_in_order_once_after_both_restart() {
    let (alice_dir, bob_dir) = (DataDir::new("alice"), DataDir::new("bob"));
    let (alice_at, bob_at) = (own_addr(), own_addr());
    let mut alice = start("alice", &alice_dir, alice_at);
    let mut bob = start("bob", &bob_dir, bob_at);
    alice.chat_with(&bob);
    alice.say(&bob, "before");

    bob.kill();
    alice.expect_prefix("bob is away (");
    let texts = ["one", "two", "three"];
    for text in texts {
        alice.send(&format!("chat message bob {text}"));
        alice.expect_exact("queued for bob: bob is offline");
    }
    assert_eq!(
        alice.connected(),
        vec![format!("{} (away)", bob.connected_line())]
    );
    alice.exit();

    let alice = start("alice", &alice_dir, alice_at);
    assert_eq!(
        alice.connected(),
        vec![format!("{} (away)", bob.connected_line())],
        "kept across a restart"
    );
    let bob = start("bob", &bob_dir, bob_at);
    // Either side may ask first; the chat opens without a `yes`.
    alice.expect_exact(&format!(
        "bob is back ({}); chat resumed, sending 3 kept",
        bob.addr()
    ));
    for text in texts {
        bob.expect_exact(&format!("alice: {text}"));
    }
    for _ in texts {
        alice.expect_exact("delivered to bob");
    }
    alice.say(&bob, "after");
    bob.say(&alice, "back");
    let shown = bob.stdout_so_far();
    for text in texts {
        let line = format!("alice: {text}");
        assert_eq!(
            shown.iter().filter(|l| **l == line).count(),
            1,
            "{line} once: {shown:?}"
        );
    }
    assert_eq!(alice.connected(), vec![bob.connected_line()]);
}

/// `status` lines listing the partners who are away: `away: N`, then `away NAME ADDR key FP`.
fn away_in_status(peer: &Peer) -> Vec<String> {
    let lines = peer.run("status");
    let listed: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("away ") && !l.starts_with("away: "))
        .cloned()
        .collect();
    let header = format!("away: {}", listed.len());
    assert!(lines.contains(&header), "{header} in {lines:?}");
    listed
}

#[test]
fn a_partner_killed_and_restarted_is_said_away_then_back_and_status_shows_it() {
    let bob_dir = DataDir::new("bob");
    let bob_at = own_addr();
    // Kept to the end of the test: dropping it would remove alice's folder under her.
    let alice_dir = DataDir::new("alice");
    let alice = start("alice", &alice_dir, own_addr());
    let mut bob = start("bob", &bob_dir, bob_at);
    alice.chat_with(&bob);
    // Once bob shows a message, his record of the chat is on disk (his disk thread writes
    // in order), so the bob started again knows the chat and reopens it.
    alice.say(&bob, "hi");
    assert_eq!(away_in_status(&alice), Vec::<String>::new());

    bob.kill();
    let away = alice.expect_prefix("bob is away (");
    assert!(
        away.ends_with("); messages to bob are kept until bob is back"),
        "{away}"
    );
    let listed = format!("away bob {} key {}", bob.addr(), bob.fingerprint());
    assert_eq!(away_in_status(&alice), vec![listed]);

    let bob = start("bob", &bob_dir, bob_at);
    alice.expect_exact(&format!("bob is back ({}); chat resumed", bob.addr()));
    // bob's side kept the chat on disk and reopens it too.
    bob.expect_exact(&format!("alice is back ({}); chat resumed", alice.addr()));
    assert_eq!(away_in_status(&alice), Vec::<String>::new());
    alice.say(&bob, "welcome back");
}

#[test]
fn forget_ends_an_away_chat_with_its_kept_messages_and_its_pin() {
    let mut alice = Peer::builder("alice")
        .arg("--retry-for")
        .arg("1s")
        .arg("--keepalive")
        .arg("1s")
        .start();
    let mut bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    bob.kill();
    alice.expect_prefix("bob is away (");
    alice.send("chat message bob you there?");
    alice.expect_exact("queued for bob: bob is offline");

    alice.send("forget bob");
    alice.expect_exact("not delivered to bob: the chat ended");
    alice.expect_exact("forgot bob: no chat, no kept messages, no pinned key");
    assert_eq!(alice.connected(), Vec::<String>::new());
    alice.send("forget bob");
    alice.expect_exact("error: nothing to forget about bob: no chat and no pinned key");
    // After the disk thread has written what waits.
    alice.exit();
    let known = std::fs::read_to_string(alice.data_file("known_peers")).unwrap_or_default();
    assert!(!known.contains("/bob "), "unpinned: {known}");
}

/// bob restarts on the same port with the same key: his new process answers for his key but
/// not in the chat, and alice's check, sealed in the chat, finds out at once (a signed ping
/// answered by the new process kept the dead chat open before).
#[test]
fn a_partner_restarted_at_the_same_address_does_not_keep_a_dead_chat_alive() {
    let bob_dir = DataDir::new("bob");
    let bob_at = own_addr();
    // Rounds an hour apart: nobody reopens the chat by itself in this test.
    let quiet = |peer: p2p_e2e::PeerBuilder| peer.arg("--exchange-every").arg("1h");
    // A check keeps trying for 5 s while nobody listens: longer than bob's restart.
    let alice = quiet(Peer::builder("alice"))
        .arg("--keepalive")
        .arg("1s")
        .arg("--retry-for")
        .arg("5s")
        .start();
    let start_bob = || quiet(Peer::builder("bob").data_dir(bob_dir.path()).at(bob_at)).start();
    let mut bob = start_bob();
    alice.chat_with(&bob);
    bob.kill();
    let _bob = start_bob();
    let away = alice.expect_prefix("bob is away (");
    assert!(
        away.contains("no longer knows the chat (it restarted, or ended it meanwhile)"),
        "{away}"
    );
    assert_eq!(
        alice.connected(),
        vec![format!("{} (away)", _bob.connected_line())]
    );
}

/// The message held back: long enough that its frame is over 1,000 bytes.
fn m1() -> String {
    format!("m1 {}", ".".repeat(1_000))
}

/// alice and bob chat, alice reaching bob through a proxy; the proxy holds alice's message
/// [`m1`] back while bob is killed and started again on his port and data folder, and alice's
/// check finds out (`bob is away`); `then` runs (the chat may open again); then alice gets
/// bob's new process's answer to the held frame: a signed `unknown_session` naming it, about
/// the chat that ended. Returns what must outlive the peers (their data folders, the proxy),
/// alice and the new bob. Both ask their away chats again every `exchange_every`.
fn a_message_held_while_bob_restarts(
    exchange_every: &str,
    then: impl FnOnce(&Peer),
) -> ((DataDir, DataDir, Proxy), Peer, Peer) {
    let (alice_dir, bob_dir) = (DataDir::new("alice"), DataDir::new("bob"));
    let bob_at = own_addr();
    let args = [
        "--keepalive",
        "1s",
        "--retry-for",
        "10s",
        "--exchange-every",
        exchange_every,
    ];
    let start = |name: &str, data: &DataDir, at: Option<SocketAddr>| {
        let builder = Peer::builder(name).data_dir(data.path());
        let builder = args.into_iter().fold(builder, |b, a| b.arg(a));
        // With `--debug`, alice's log says which way the message went.
        match at {
            Some(at) => builder.at(at).start(),
            None => builder.arg("--debug").start(),
        }
    };
    let mut bob = start("bob", &bob_dir, Some(bob_at));
    let proxy = Proxy::start(bob.addr());
    let alice = start("alice", &alice_dir, None);
    alice.send(&format!("chat request 127.0.0.1 {}", proxy.port()));
    alice.expect_request_sent(&bob);
    bob.expect_request_from(&alice);
    bob.accept_chat(&alice, proxy.addr());
    // Once bob shows a message, his record of the chat is on disk: his next process knows it.
    alice.say(&bob, "before");

    // The proxy keeps alice's next message and hands its frame over; her connection waits
    // for the answer the test gives it. The message is long, so that its frame is told from
    // her checks' (sealed too, and a few hundred bytes) by its length.
    let (frame_tx, frame_rx) = mpsc::channel::<Vec<u8>>();
    let (reply_tx, reply_rx) = mpsc::channel::<Vec<u8>>();
    let long = |frame: &[u8]| frame.len() > 1_000;
    proxy.answer_next_sealed_where(long, move |frame| {
        let _ = frame_tx.send(frame.to_vec());
        reply_rx.recv().unwrap_or_default()
    });
    alice.send(&format!("chat message bob {}", m1()));
    let frame = frame_rx
        .recv_timeout(p2p_e2e::EXPECT_TIMEOUT)
        .expect("alice's message reached the proxy");

    // Meanwhile bob restarts: alice's next check finds out (his new process does not know
    // the chat's keys).
    bob.kill();
    let bob = start("bob", &bob_dir, Some(bob_at));
    alice.expect_prefix("bob is away (");
    then(&alice);
    let refusal = raw_exchange(bob.addr(), &frame, false);
    assert!(!refusal.is_empty(), "bob answered the old frame");
    reply_tx
        .send(refusal)
        .expect("the proxy waits for the answer");
    ((alice_dir, bob_dir, proxy), alice, bob)
}

/// A message on its way while its chat ends and opens again: the reply to it, from the chat
/// that ended, says nothing about the new one (read against the chat open by then, bob's
/// refusal made that chat away and kept the message). It goes again in the new chat, once,
/// and the new chat stays open.
#[test]
fn a_reply_about_a_chat_that_ended_does_not_end_the_chat_opened_since() {
    let (_kept, alice, bob) = a_message_held_while_bob_restarts("1s", |alice| {
        alice.expect_prefix("bob is back (");
    });
    alice.expect_log("the chat ended under a message; it goes again");
    bob.expect_exact(&format!("alice: {}", m1()));
    alice.expect_exact("delivered to bob");
    let shown = alice.stdout_so_far();
    let away = shown
        .iter()
        .filter(|l| l.starts_with("bob is away ("))
        .count();
    assert_eq!(away, 1, "only the restart made the chat away: {shown:?}");
    assert!(
        !shown.iter().any(|l| l.starts_with("queued for bob")),
        "{shown:?}"
    );
    assert_eq!(
        alice.connected(),
        vec![bob.connected_line()],
        "the new chat is open"
    );
}

/// The same with no chat open when the message goes again (nobody asks again within the
/// test): it is kept for the next chat, not refused as typed outside a chat, and shows once
/// when a chat opens.
#[test]
fn a_message_whose_chat_ended_under_it_is_kept_for_the_next_chat() {
    let (_kept, alice, bob) = a_message_held_while_bob_restarts("1h", |_| {});
    alice.expect_exact(
        "queued for bob: its chat ended while it was on its way; it goes again when a chat \
         with bob is open, and bob shows it once",
    );
    let (ip, port) = (bob.addr().ip(), bob.port());
    alice.send(&format!("chat request {ip} {port}"));
    let line = format!("alice: {}", m1());
    bob.expect_exact(&line);
    alice.expect_exact("delivered to bob");
    let shown = bob.stdout_so_far();
    assert_eq!(shown.iter().filter(|l| **l == line).count(), 1, "{shown:?}");
}

/// bob, registered and in a chat with alice, is stopped by `signal`: he leaves as `exit`
/// does. alice is told the chat is over, and the registry no longer lists him.
fn a_signal_ends_a_peer_as_exit_does(signal: fn(&Proc)) {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    let mut bob = Peer::start("bob", server.addr());
    alice.register();
    bob.register();
    assert_eq!(alice.listpeer(), vec![alice.peer_line(), bob.peer_line()]);
    alice.chat_with(&bob);

    signal(&bob);
    bob.expect_exact("bye");
    let status = bob.wait_exit();
    assert!(status.success(), "{status}");
    alice.expect_exact("bob disconnected");
    assert_eq!(alice.connected(), Vec::<String>::new());
    server.expect_exact("unregistered bob");
    assert_eq!(alice.listpeer(), vec![alice.peer_line()]);
}

#[test]
fn sigterm_ends_a_peer_as_exit_does_partners_told_and_unregistered() {
    a_signal_ends_a_peer_as_exit_does(Proc::terminate);
}

/// SIGHUP is what a peer gets when the terminal window it runs in is closed.
#[test]
fn sighup_ends_a_peer_as_exit_does_partners_told_and_unregistered() {
    a_signal_ends_a_peer_as_exit_does(Proc::hang_up);
}
