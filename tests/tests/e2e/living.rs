//! Living in the chat (issue 18): the terminal bell, `contacts`, and `p2p-peer send` from a
//! script to the peer already running. Presence (`bob is away`, `bob is back`) is with the
//! chat lifecycle, in `lifecycle.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use p2p_e2e::{binary, DataDir, Peer, Server};

use crate::pty::Terminal;

/// alice at a terminal, bob in a pipe: what rings alice's bell and what does not.
#[test]
fn a_new_message_or_request_rings_the_bell_at_a_terminal_unless_talking_to_its_sender() {
    let server = Server::start();
    let data = DataDir::new("alice");
    let alice = Terminal::peer("alice", server.addr(), &data);
    alice.wait_for_input_line(">>");
    alice.type_keys("register\r");
    alice.wait_for_text("registered as alice");
    assert_eq!(alice.bells(), 0, "nothing rang at start");

    let bob = Peer::start("bob", server.addr());
    bob.send("chat request alice");
    alice.wait_for_text("chat request from bob");
    assert_eq!(alice.bells(), 1, "a chat request rings");
    alice.type_keys("yes\r");
    bob.expect("chat accepted by alice");

    let from_bob = |text: &str| {
        bob.send(&format!("chat message alice {text}"));
        bob.expect_exact("delivered to alice");
        alice.wait_for_text(&format!("bob: {text}"));
    };
    from_bob("one");
    assert_eq!(alice.bells(), 2, "a message rings");

    // Typing to bob already: his message does not ring.
    alice.type_keys("talk bob\r");
    alice.wait_for_input_line("bob>");
    from_bob("two");
    assert_eq!(alice.bells(), 2, "no bell for the current conversation");

    alice.type_keys("/talk\r");
    alice.wait_for_input_line(">>");
    alice.type_keys("bell off\r");
    alice.wait_for_text("bell off");
    from_bob("three");
    assert_eq!(alice.bells(), 2, "the bell is off");

    alice.type_keys("bell on\r");
    alice.wait_for_text("bell on: new messages and chat requests ring");
    from_bob("four");
    assert_eq!(alice.bells(), 3, "on again");
}

/// The same events in a pipe: a script's output never holds a bell byte, even with
/// `--bell on`.
#[test]
fn nothing_rings_in_a_pipe() {
    let alice = Peer::builder("alice").arg("--bell").arg("on").start();
    let bob = Peer::start_offline("bob");
    bob.chat_with(&alice);
    bob.say(&alice, "hello");
    let out = alice.run("bell on");
    assert_eq!(out, vec!["bell on, but it rings only at a terminal"]);
    bob.say(&alice, "again");
    let shown = alice.stdout_so_far();
    assert!(shown.iter().any(|l| l == "bob: again"), "{shown:?}");
    assert!(!shown.iter().any(|l| l.contains('\x07')), "{shown:?}");
}

/// `contacts` after chats with two peers, one of them forgotten: the other is listed with its
/// fingerprint, how its key is vouched for, its chat, what is kept for it, and when it was
/// last seen; away with a kept message once it is killed.
#[test]
fn contacts_lists_the_pinned_peers_after_chats_with_two_one_forgotten() {
    let mut alice = Peer::builder("alice")
        .arg("--keepalive")
        .arg("1s")
        .arg("--retry-for")
        .arg("1s")
        .start();
    let mut bob = Peer::start_offline("bob");
    let carol = Peer::start_offline("carol");
    alice.chat_with(&bob);
    alice.chat_with(&carol);
    alice.say(&bob, "hi bob");
    alice.say(&carol, "hi carol");

    alice.send("forget carol");
    alice.expect_exact("forgot carol: no chat, no kept messages, no pinned key");
    let bob_line = format!(
        "contact bob key {} pinned on first contact, ",
        bob.fingerprint()
    );
    let listed = contacts(&alice);
    assert_eq!(listed.len(), 1, "carol is forgotten: {listed:?}");
    assert!(
        listed[0].starts_with(&format!("{bob_line}chat open, 0 queued, last seen 20")),
        "{listed:?}"
    );

    bob.kill();
    alice.expect_prefix("bob is away (");
    alice.send("chat message bob still there?");
    alice.expect_exact("queued for bob: bob is offline");
    let listed = contacts(&alice);
    assert!(
        listed[0].starts_with(&format!("{bob_line}chat away, 1 queued, last seen 20")),
        "{listed:?}"
    );

    alice.send("disconnect bob");
    alice.expect_exact("not delivered to bob: the chat ended");
    let listed = contacts(&alice);
    assert!(
        listed[0].starts_with(&format!("{bob_line}chat ended, 0 queued, last seen 20")),
        "{listed:?}"
    );
    alice.exit();
}

/// `contacts`: the `contact ...` lines after `contacts: N`.
fn contacts(peer: &Peer) -> Vec<String> {
    let lines = peer.run("contacts");
    let listed: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("contact "))
        .cloned()
        .collect();
    assert!(
        lines.contains(&format!("contacts: {}", listed.len())),
        "{lines:?}"
    );
    listed
}

/// `p2p-peer --data-dir DIR --name NAME send ARGS...`, run to its end (as the user and group
/// `as_ids` when given: `setpriv` as root). The flags are those of the running peer.
fn send(dir: &Path, name: &str, args: &[&str], as_ids: Option<u32>) -> Output {
    let peer = binary("p2p-peer");
    let mut command = match as_ids {
        None => Command::new(&peer),
        Some(id) => {
            let mut setpriv = Command::new("setpriv");
            let ids = [format!("--reuid={id}"), format!("--regid={id}")];
            setpriv.args(ids).arg("--clear-groups").arg(&peer);
            setpriv
        }
    };
    let dir = dir.display().to_string();
    command.args(["--data-dir", &dir, "--name", name, "send"]);
    command.args(args).output().expect("p2p-peer send runs")
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(String::from)
        .collect()
}

/// A script's message to an open chat is delivered through the running peer, which shows its
/// outcome as for a typed command; one that cannot go (no chat) fails with the error.
#[test]
fn send_hands_a_message_to_the_running_peer_and_exits_0_when_delivered() {
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);

    let out = send(
        alice.data_dir(),
        "alice",
        &["bob", "hello", "from a script"],
        None,
    );
    assert_eq!(lines(&out.stdout), vec!["delivered to bob"], "{out:?}");
    assert!(out.status.success(), "{out:?}");
    bob.expect_exact("alice: hello from a script");
    // The running peer shows it too, as the answer to a command of its own.
    alice.expect_exact("delivered to bob");

    let out = send(alice.data_dir(), "alice", &["carol", "hi"], None);
    assert!(!out.status.success(), "{out:?}");
    let shown = lines(&out.stdout);
    assert!(
        shown.len() == 1 && shown[0].starts_with("error: ") && shown[0].contains("carol"),
        "{out:?}"
    );

    // --json: the event as a bot reads it, with the id of the command the peer ran.
    let out = send(alice.data_dir(), "alice", &["--json", "bob", "again"], None);
    assert!(out.status.success(), "{out:?}");
    let shown = lines(&out.stdout);
    assert_eq!(shown.len(), 1, "{out:?}");
    let event: serde_json::Value = serde_json::from_str(&shown[0]).expect("a JSON event");
    assert_eq!(event["event"], "delivered", "{event}");
    assert_eq!(event["peer"], "bob", "{event}");
    assert!(event["id"].is_string(), "{event}");
    bob.expect_exact("alice: again");

    // Longer than a typed line: refused before it leaves, saying the limit.
    let long = "x".repeat(20_000);
    let out = send(alice.data_dir(), "alice", &["bob", &long], None);
    assert!(!out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("20000 bytes") && said.contains("at most 16384"),
        "{said}"
    );
}

/// To a partner who is away, the message is kept: `queued`, still a success for the script.
#[test]
fn send_to_an_away_partner_is_queued_and_exits_0() {
    let alice = Peer::builder("alice")
        .arg("--keepalive")
        .arg("1s")
        .arg("--retry-for")
        .arg("1s")
        .start();
    let mut bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    bob.kill();
    alice.expect_prefix("bob is away (");

    let out = send(alice.data_dir(), "alice", &["bob", "are you there?"], None);
    assert_eq!(
        lines(&out.stdout),
        vec!["queued for bob: bob is offline"],
        "{out:?}"
    );
    assert!(out.status.success(), "{out:?}");
    let contacts = contacts(&alice);
    assert!(contacts[0].contains("chat away, 1 queued"), "{contacts:?}");
}

/// With no peer running on the folder, `send` says so, fails, and starts nothing: the
/// folder stays empty (no key, no history).
#[test]
fn send_with_no_peer_running_says_so_and_starts_none() {
    let data = DataDir::new("alice");
    let out = send(data.path(), "alice", &["bob", "hi"], None);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no peer is running"), "{err}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let made: Vec<_> = std::fs::read_dir(data.path()).unwrap().collect();
    assert!(made.is_empty(), "send made files: {made:?}");

    // A peer that has exited took its socket with it.
    let mut alice = Peer::builder("alice").data_dir(data.path()).start();
    alice.exit();
    let out = send(data.path(), "alice", &["bob", "hi"], None);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no peer is running"), "{err}");
}

/// Another user cannot send through alice's peer: the folder and the socket are alice's
/// (0700, 0600), and even with them opened to everyone, the peer checks the caller's uid
/// (SO_PEERCRED) and refuses. Needs root, to run the caller as `nobody`.
#[test]
fn send_refuses_a_caller_that_is_not_the_owner() {
    if !is_root() {
        eprintln!("skipped: only root can run a caller as another user");
        return;
    }
    let alice = Peer::start_offline("alice");
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    let socket = alice.data_dir().join("control-alice.sock");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(alice.data_dir()), 0o700);

    let out = send(
        alice.data_dir(),
        "alice",
        &["bob", "from nobody"],
        Some(NOBODY),
    );
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused"), "{out:?}");

    // The permissions opened: the peer itself refuses, by the caller's uid.
    let open = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    open(alice.data_dir(), 0o711).unwrap();
    open(&socket, 0o666).unwrap();
    let out = send(
        alice.data_dir(),
        "alice",
        &["bob", "from nobody"],
        Some(NOBODY),
    );
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(
        lines(&out.stdout),
        vec![
            "error: the control socket refused the request: only the owner of the data folder \
             may send through its peer"
        ],
        "{out:?}"
    );
    alice.expect_log("control socket: refused a caller that is not our user");

    // Nothing reached bob; alice's own script still does.
    let out = send(alice.data_dir(), "alice", &["bob", "from alice"], None);
    assert!(out.status.success(), "{out:?}");
    bob.expect_exact("alice: from alice");
}

/// The uid and gid of `nobody`.
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
