//! The fault suite: crashes, a read-only data directory, silent and flooding clients. Each
//! test provokes the fault against the real programs and checks what a user relies on
//! afterwards. docs/testing.md lists each fault with the outcome observed.
//!
//! Every wait is for an event with a deadline; every loop is bounded in count. Floods come
//! from 127.0.0.2, a second loopback address, so that they are one "other host" to the
//! programs, whose per-address limits are what keeps the peers on 127.0.0.1 served.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use p2p_e2e::{binary, own_addr, DataDir, Peer, Proxy, RawPeer, Server, Stream};

/// A TCP connection to `to` from the loopback address `from`.
#[track_caller]
fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    p2p_e2e::try_connect_from(from.into(), to)
        .unwrap_or_else(|e| panic!("cannot connect to {to} from {from:?}: {e}"))
}

/// Sends `bytes` from 127.0.0.2 and reads until the other side closes (bounded by a read
/// timeout); returns what came back.
fn garbage_exchange(to: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = connect_from([127, 0, 0, 2], to);
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply
}

/// Resident memory of a process, in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status")
}

/// Frame number `i` of a flood: every kind of malformed input, in turn.
fn garbage(i: usize) -> Vec<u8> {
    let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let framed = |body: &[u8]| [&(body.len() as u32).to_be_bytes()[..], body].concat();
    match i % 9 {
        0 => noise(1 + i % 300),                                    // raw bytes
        1 => [&0x7fff_ffffu32.to_be_bytes()[..], b"x"].concat(),    // absurd length
        2 => 0u32.to_be_bytes().to_vec(),                           // empty frame
        3 => [&100u32.to_be_bytes()[..], &noise(10)].concat(),      // truncated
        4 => framed(b"S{\"v\":4,\"not\":\"signed properly\"}"),     // bad signed frame
        5 => framed(&[b"E".to_vec(), noise(40)].concat()),          // sealed in no session
        6 => framed(&[b"R\x05alice".to_vec(), noise(40)].concat()), // registry session: none
        7 => framed(&[b"X".to_vec(), noise(20)].concat()),          // unknown kind
        _ => framed(b"{\"v\":1,\"id\":\"x\"}"),                     // version 1 JSON, unsigned
    }
}

/// Sends `count` garbage frames at `to` from 4 threads; returns how many got an answer.
fn flood(to: SocketAddr, count: usize) -> usize {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                (t..count)
                    .step_by(4)
                    .filter(|&i| !garbage_exchange(to, &garbage(i)).is_empty())
                    .count()
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("flood thread"))
        .sum()
}

#[test]
fn ten_thousand_garbage_frames_change_nothing_and_memory_comes_back() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    let bob = Peer::start("bob", server.addr());
    alice.register();
    bob.register();
    alice.chat_with(&bob);
    alice.say(&bob, "before the flood");
    let (server_before, peer_before) = (rss_kib(server.pid()), rss_kib(bob.pid()));

    let answered = flood(server.addr(), 10_000) + flood(bob.addr(), 10_000);
    assert!(
        server.is_running() && bob.is_running(),
        "a flood stopped a program"
    );
    // Every frame was refused with an answer, but for those cut short on purpose, whose
    // answer the reset of the unread bytes may destroy.
    assert!(
        answered >= 15_000,
        "only {answered} of 20000 garbage frames were answered"
    );

    // A normal session still works, end to end.
    alice.say(&bob, "after the flood");
    bob.say(&alice, "all fine here");
    let listing = alice.listpeer();
    assert_eq!(listing.len(), 2, "{listing:?}");
    bob.send("status");
    bob.expect_exact("chats: 1");

    // Memory is back near where it started: nothing of the flood is kept.
    let (server_after, peer_after) = (rss_kib(server.pid()), rss_kib(bob.pid()));
    for (who, before, after) in [
        ("registry", server_before, server_after),
        ("peer", peer_before, peer_after),
    ] {
        eprintln!("{who}: {before} KiB resident before the flood, {after} KiB after");
        assert!(
            after <= before + 8 * 1024,
            "{who} grew from {before} KiB to {after} KiB after the flood"
        );
    }
}

#[test]
fn a_registry_whose_stdout_nobody_reads_still_answers_after_3000_refusals() {
    let server = Server::start();
    server.shrink_pipe(Stream::Stdout);
    server.stop_reading(Stream::Stdout);
    // The refusals of one address are a few lines of the registry's log and then a summary
    // (output_attacks.rs counts them), so they no longer fill the log's queue: the lines a
    // full queue drops are counted and reported as the log's unit tests check
    // (`server/src/log.rs`). Here: nothing the flood leaves behind holds the registry up.
    let answered = flood(server.addr(), 3_000);
    assert!(
        answered > 2_900,
        "only {answered} of 3,000 refusals answered"
    );
    let alice = Peer::start("alice", server.addr());
    alice.register();
    assert_eq!(alice.listpeer(), [alice.peer_line()]);
    server.resume_reading(Stream::Stdout);
    server.expect("refused 127.0.0.2:");
}

#[test]
fn silent_clients_from_one_host_do_not_starve_the_others() {
    let server = Server::start();
    let alice = Peer::start("alice", server.addr());
    let bob = Peer::start("bob", server.addr());
    // 200 connections that say nothing, from one other host, at the registry and at bob:
    // more than one address may hold, fewer than the listen backlog.
    let silent: Vec<TcpStream> = (0..200)
        .flat_map(|_| {
            [
                connect_from([127, 0, 0, 2], server.addr()),
                connect_from([127, 0, 0, 2], bob.addr()),
            ]
        })
        .collect();

    // Meanwhile everyone else is served at once.
    alice.register();
    bob.register();
    assert_eq!(alice.listpeer().len(), 2);
    alice.chat_with(&bob);
    alice.say(&bob, "still here");
    drop(silent);
}

#[test]
fn a_registry_killed_mid_traffic_comes_back_and_peers_register_again_by_themselves() {
    let data = DataDir::new("registry");
    let mut server = Server::builder()
        .data_dir(data.path())
        .at(own_addr())
        .arg("--ttl")
        .arg("3s")
        .start();
    let at = server.addr();
    let alice = Peer::start("alice", server.addr());
    let bob = Peer::start("bob", server.addr());
    alice.register();
    bob.register();
    alice.chat_with(&bob);

    alice.send("chat message bob one");
    server.kill(); // SIGKILL, in the middle of the chat
    alice.expect_exact("delivered to bob");
    bob.expect_exact("alice: one");
    // Chats never went through the registry: they go on without it. (Either peer may say
    // meanwhile that it lost the registry: its renewal is due every second.)
    bob.send("chat message alice two");
    bob.expect_exact("delivered to alice");
    alice.expect_exact("bob: two");

    let server = Server::builder()
        .data_dir(data.path())
        .at(at)
        .arg("--ttl")
        .arg("3s")
        .start();
    // Within one renewal (a third of the 3 s TTL), with no command typed.
    server.expect_all_registered(&[&alice, &bob]);
    let carol = Peer::start("carol", server.addr());
    carol.register();
    assert_eq!(carol.listpeer().len(), 3);
    alice.say(&bob, "three");
}

#[test]
fn a_peer_killed_in_a_chat_is_noticed_and_drops_out_of_the_registry() {
    let server = Server::builder().arg("--ttl").arg("3s").start();
    let alice = Peer::builder("alice")
        .server(server.addr())
        .arg("--keepalive")
        .arg("1s")
        .arg("--retry-for")
        .arg("1s")
        .start();
    let mut bob = Peer::start("bob", server.addr());
    alice.register();
    bob.register();
    alice.chat_with(&bob);
    alice.say(&bob, "hello");

    bob.kill(); // SIGKILL: no goodbye
    alice.expect_prefix("bob is away (cannot reach ");
    alice.send("chat message bob are you there?");
    alice.expect_exact("queued for bob: bob is offline");
    server.expect_exact("expired bob (not renewed in time)");
    assert_eq!(alice.listpeer().len(), 1);
}

#[test]
fn a_message_to_a_partner_that_died_is_kept_after_retrying_and_the_chat_is_away() {
    let alice = Peer::builder("alice").arg("--retry-for").arg("1s").start();
    let mut bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    bob.kill();
    alice.send("chat message bob anyone?");
    alice.expect_prefix("bob is away (cannot reach bob");
    alice.expect_prefix("queued for bob: cannot reach bob");
    // Ended by `disconnect`, the kept message ends with it.
    alice.send("disconnect bob");
    alice.expect_exact("not delivered to bob: the chat ended");
    alice.expect_exact("disconnected from bob");
    alice.send("list connected peer");
    alice.expect_exact("connected peers: 0");
}

/// Runs `p2p-peer` with `data` mounted read-only (in a private mount namespace when running
/// as root, whom file modes do not stop; with file modes otherwise); returns its exit status
/// and what it printed on stderr.
fn run_on_read_only(data: &Path, name: &str) -> (std::process::ExitStatus, String) {
    let peer = binary("p2p-peer");
    let args = format!(
        "{} --name {name} --port 0 --bind 127.0.0.1 --data-dir {}",
        peer.display(),
        data.display()
    );
    let output = if nix_is_root() {
        let script = format!(
            "mount --bind {d} {d} && mount -o remount,bind,ro {d} && exec {args} </dev/null",
            d = data.display()
        );
        Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .output()
    } else {
        set_mode(data, 0o500);
        let out = Command::new("sh")
            .args(["-c", &format!("exec {args} </dev/null")])
            .output();
        set_mode(data, 0o700);
        out
    }
    .expect("run the peer");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn a_read_only_data_directory_is_a_clear_error_at_start() {
    // Never used: no key can be created in it.
    let empty = DataDir::new("read-only-empty");
    let (status, stderr) = run_on_read_only(empty.path(), "alice");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains("keys"),
        "the error names what it could not write: {stderr}"
    );

    // Used before (the key exists), then made read-only: the history cannot be written, and
    // the peer says so rather than chat without keeping what it shows.
    let used = DataDir::new("read-only-used");
    let mut alice = Peer::builder("alice").data_dir(used.path()).start();
    alice.exit();
    let (status, stderr) = run_on_read_only(used.path(), "alice");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("history"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_full_disk_at_the_receiver_loses_no_message_and_its_user_is_told() {
    let alice = Peer::start_offline("alice");
    // Bob's files cannot grow past 64 KiB, and each message is 4 KiB: his history is full
    // after a dozen or so, whether its log is checkpointed into the database or not.
    let bob = Peer::builder("bob").file_size_limit(64 * 1024).start();
    alice.chat_with(&bob);
    let text = |i: usize| format!("m{i:02} {}", "x".repeat(4 * 1024));
    let count = 40;
    for i in 0..count {
        alice.send(&format!("chat message bob {}", text(i)));
    }
    for i in 0..count {
        alice.expect_next("delivered to bob");
        let line = format!("alice: {}", text(i));
        bob.expect_line(&line[..12], |l| l == line);
    }
    // Every message shows once, and alice is told each was delivered: it was, and bob read
    // it; only bob's history lacks it, and bob is told so.
    let shown = bob.stdout_so_far();
    for i in 0..count {
        let line = format!("alice: {}", text(i));
        let times = shown.iter().filter(|l| **l == line).count();
        assert_eq!(times, 1, "message {i} shown {times} times");
    }
    let told = "the message from alice shows, but it is not in the history";
    let told = shown.iter().filter(|l| l.contains(told)).count();
    assert!(told >= count / 2, "{told} of {count} said not stored");
}

/// A message sent again that the receiver cannot store before it shows is answered `busy`
/// (signed, naming its frame), so its sender tries again and never hears it was delivered;
/// the receiver never shows it.
#[test]
fn a_message_sent_again_that_a_full_disk_cannot_store_is_answered_busy_and_never_shown() {
    let alice = Peer::builder("alice")
        .arg("--debug")
        .arg("--retry-for")
        .arg("2s")
        .start();
    // Bob's files cannot grow past 16 KiB: a message of 8 KiB, four pages of the history's
    // log, never fits.
    let bob = Peer::builder("bob").file_size_limit(16 * 1024).start();
    let proxy = Proxy::start(bob.addr());
    alice.send(&format!("chat request 127.0.0.1 {}", proxy.port()));
    alice.expect_request_sent(&bob);
    bob.expect_request_from(&alice);
    bob.accept_chat(&alice, proxy.addr());
    // The proxy keeps the first try from bob and closes its connection unanswered: alice
    // sends it again, marked `again`, and bob must store it to know whether it showed
    // before.
    let long = format!("late {}", "y".repeat(8 * 1024 - 10));
    proxy.answer_next_sealed_where(|frame| frame.len() > 8_000, |_| Vec::new());
    alice.send(&format!("chat message bob {long}"));
    alice.expect_log("busy; the message will be sent again");
    alice.expect_exact("error: no acknowledgement from bob: it may not have arrived");
    bob.expect_log("a chat message sent again could not be stored");
    let shown = bob.stdout_so_far();
    assert!(
        !shown.iter().any(|l| l.contains("late ")),
        "not stored, so not shown: {shown:?}"
    );
}

/// The text of chat message number `i` in the unread-stdout tests: long enough that a page of
/// pipe and the reader's chunk hold only a hundred or so, so the peer's screen must fill.
fn numbered(i: usize) -> String {
    format!("m{i:03} {}", "x".repeat(60))
}

#[test]
fn a_peer_whose_stdout_is_not_read_shows_every_message_once_in_order_when_read_again() {
    let alice = Peer::builder("alice").arg("--debug").start();
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    bob.shrink_pipe(Stream::Stdout);
    bob.stop_reading(Stream::Stdout);
    // 600 commands at once (they fit in alice's stdin pipe); she runs them one after the
    // other, each until bob acknowledges it.
    for i in 0..600 {
        alice.send(&format!("chat message bob {}", numbered(i)));
    }
    // Bob's screen fills, he answers busy, and alice tries again...
    alice.expect_log("busy; the message will be sent again");
    // ... until bob's stdout is read again: then every message shows, once, in order, and
    // alice reports each delivered.
    bob.resume_reading(Stream::Stdout);
    for i in 0..600 {
        assert_eq!(bob.next_line(), format!("alice: {}", numbered(i)));
    }
    for _ in 0..600 {
        assert_eq!(alice.next_line(), "delivered to bob");
    }
}

#[test]
fn messages_to_a_peer_whose_stdout_stays_unread_are_not_acknowledged_and_the_chat_stays_open() {
    let alice = Peer::builder("alice").arg("--retry-for").arg("1s").start();
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    bob.shrink_pipe(Stream::Stdout);
    bob.stop_reading(Stream::Stdout);
    let count = 600;
    for i in 0..count {
        alice.send(&format!("chat message bob {}", numbered(i)));
    }
    // Alice's outcome for each message (several are in flight at once, so in no set order);
    // once one is refused for the whole retry time, bob's stdout is read again.
    let mut delivered = 0;
    let mut refused = 0;
    for _ in 0..count {
        let line = alice.next_line();
        if line == "delivered to bob" {
            delivered += 1;
            continue;
        }
        assert_eq!(
            line,
            "error: bob is busy and did not take the message within 1s; message not delivered"
        );
        refused += 1;
        bob.resume_reading(Stream::Stdout);
    }
    assert!(refused > 0, "bob never refused a message");
    // The chat is still open, at both ends.
    assert_eq!(alice.connected(), [bob.connected_line()]);
    // Bob shows as many messages as alice was told were delivered, each once, in the order
    // they were typed (those refused left gaps).
    let mut last = None;
    for _ in 0..delivered {
        let line = bob.next_line();
        let shown = (0..count)
            .find(|i| line == format!("alice: {}", numbered(*i)))
            .unwrap_or_else(|| panic!("not one of alice's messages: {line:?}"));
        assert!(last < Some(shown), "{shown} after {last:?}");
        last = Some(shown);
    }
    assert_eq!(bob.connected(), [alice.connected_line()]);
}

/// bob reads alice's message whole and never acknowledges it: it may have been shown there.
/// alice is told so, not that it was not delivered, which would have her type it again; it
/// stays kept, to go again under its id (shown once) when the chat opens again.
#[test]
fn a_message_read_but_never_acknowledged_is_said_to_have_maybe_arrived() {
    // A try waits one exchange (10 s, docs/protocol.md) for its acknowledgement; with
    // `--retry-for 1s` there is one try.
    const ONE_EXCHANGE_AND_ROOM: Duration = Duration::from_secs(30);
    let bob = RawPeer::start("bob");
    let alice = Peer::builder("alice").arg("--retry-for").arg("1s").start();
    bob.chat_with(&alice);

    alice.send("chat message bob did you get this?");
    assert_eq!(bob.expect_unacknowledged(), "did you get this?");
    let no_ack = "no acknowledgement from bob: it may not have arrived";
    let away = alice.expect_line_within("bob is away", ONE_EXCHANGE_AND_ROOM, |l| {
        l.starts_with("bob is away (")
    });
    assert_eq!(
        away,
        format!("bob is away ({no_ack}); messages to bob are kept until bob is back")
    );
    alice.expect_next(&format!(
        "queued for bob: {no_ack}; it goes again when bob is back, and bob shows it once"
    ));
    let shown = alice.stdout_so_far();
    assert!(
        !shown.iter().any(|l| l.contains("not delivered")),
        "{shown:?}"
    );
}

#[test]
fn a_peer_whose_log_nobody_reads_still_answers_after_3000_refusals() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    // Each refusal is a warning in bob's log: a few of them fill the pipe.
    bob.shrink_pipe(Stream::Stderr);
    bob.stop_reading(Stream::Stderr);
    let answered = flood(bob.addr(), 3_000);
    assert!(
        answered > 2_900,
        "only {answered} of 3,000 refusals answered"
    );
    alice.chat_with(&bob);
    alice.say(&bob, "still here?");
    bob.resume_reading(Stream::Stderr);
    bob.expect_log("refused 127.0.0.2");
}

#[test]
fn commands_wait_for_a_reader_and_nothing_they_print_is_lost() {
    let mut alice = Peer::start_offline("alice");
    alice.shrink_pipe(Stream::Stdout);
    alice.stop_reading(Stream::Stdout);
    // More results than the screen holds: the command loop waits for room, and reads the rest
    // of its input (and its end) only once someone reads its stdout again.
    for _ in 0..600 {
        alice.send("whoami");
    }
    alice.close_stdin();
    alice.resume_reading(Stream::Stdout);
    let whoami = format!("alice key {} ({})", alice.fingerprint(), alice.key());
    for _ in 0..600 {
        assert_eq!(alice.next_line(), whoami);
    }
    alice.expect_next("bye");
    assert!(alice.wait_exit().success());
}

#[test]
fn a_chat_request_to_a_full_screen_is_tried_again_until_there_is_room() {
    let alice = Peer::builder("alice").arg("--debug").start();
    let carol = Peer::builder("carol").arg("--debug").start();
    let bob = Peer::start_offline("bob");
    carol.chat_with(&bob);
    bob.shrink_pipe(Stream::Stdout);
    bob.stop_reading(Stream::Stdout);
    // Carol's messages fill bob's screen: she is told busy.
    for i in 0..600 {
        carol.send(&format!("chat message bob {}", numbered(i)));
    }
    carol.expect_log("busy; the message will be sent again");
    // So is alice's request, which she sends again (under the same id) ...
    alice.send(&format!("chat request {} {}", bob.addr().ip(), bob.port()));
    alice.expect_log("busy; the chat request will be sent again");
    // ... until bob's stdout is read again.
    bob.resume_reading(Stream::Stdout);
    alice.expect_request_sent(&bob);
    bob.expect_request_from(&alice);
}

#[test]
fn sigterm_stops_a_peer_even_while_its_stdout_is_not_read() {
    let mut alice = Peer::builder("alice").arg("--debug").start();
    alice.shrink_pipe(Stream::Stdout);
    alice.stop_reading(Stream::Stdout);
    for _ in 0..600 {
        alice.send("whoami");
    }
    // Well into the commands (the screen fills after some 300 of them), then SIGTERM: the
    // peer leaves, whether its command loop was between commands or waiting for room.
    for _ in 0..300 {
        alice.expect_log("running");
    }
    alice.terminate();
    alice.resume_reading(Stream::Stdout);
    let last = alice.expect_line("bye", |l| l == "bye");
    assert_eq!(last, "bye");
    assert!(alice.wait_exit().success());
}

/// A registry that restarted forgot every session: the first request a peer makes in its old
/// session is refused `unknown_session`, and the peer registers again at once, so that the
/// listing it asked for already has it (not only after its next renewal, a third of the TTL
/// later).
#[test]
fn after_a_registry_restart_the_first_request_registers_the_peer_again() {
    let data = DataDir::new("registry");
    let mut server = Server::builder()
        .data_dir(data.path())
        .at(own_addr())
        .start();
    let at = server.addr();
    let alice = Peer::start("alice", server.addr());
    alice.register();
    server.kill();
    let server = Server::builder().data_dir(data.path()).at(at).start();
    let listed = alice.listpeer();
    let alice_line = format!("peer alice {} key {}", alice.addr(), alice.fingerprint());
    assert_eq!(
        listed,
        vec![alice_line],
        "registered again before the listing"
    );
    server.expect_registered(&alice);
}
