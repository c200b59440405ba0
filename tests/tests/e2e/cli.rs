//! The command line and the command loop: mistakes, help, ways to exit, start-up questions.

use std::process::Command;

use p2p_e2e::{binary, dead_addr, is_one_error, DataDir, Peer};

/// `lines` is exactly one `error:` line, and it mentions the command's usage.
fn assert_one_usage_error(command: &str, lines: &[String]) {
    match lines {
        [line] if line.starts_with("error:") => assert!(
            line.to_lowercase().contains("usage"),
            "{command:?}: the error shows the usage: {line:?}"
        ),
        _ => panic!("{command:?}: expected one error line, got {lines:?}"),
    }
}

#[test]
fn an_unknown_command_is_one_error_and_the_peer_goes_on() {
    let alice = Peer::start_offline("alice");
    let out = alice.run("frobnicate the network");
    assert!(is_one_error(&out), "one error line: {out:?}");
    assert_eq!(alice.connected(), Vec::<String>::new());
}

#[test]
fn wrong_arguments_show_the_usage_and_the_peer_goes_on() {
    let alice = Peer::start_offline("alice");
    for command in [
        "chat message bob",
        "chat message",
        "chat request",
        "disconnect",
    ] {
        assert_one_usage_error(command, &alice.run(command));
    }
    // Still a working peer.
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    alice.say(&bob, "fine after all that");
}

#[test]
fn extra_arguments_show_the_usage() {
    let alice = Peer::start_offline("alice");
    for command in [
        "chat request 127.0.0.1 4000 extra",
        "disconnect bob now",
        "register now",
        "yes alice bob",
    ] {
        assert_one_usage_error(command, &alice.run(command));
    }
}

#[test]
fn a_bad_port_in_a_chat_request_is_an_error() {
    let alice = Peer::start_offline("alice");
    for command in [
        "chat request 127.0.0.1 99999",
        "chat request 127.0.0.1 port",
    ] {
        let out = alice.run(command);
        assert!(is_one_error(&out), "{command:?}: one error line: {out:?}");
    }
}

#[test]
fn help_lists_the_commands() {
    let alice = Peer::start_offline("alice");
    let help = alice.run("help").join("\n");
    for command in [
        "register",
        "listpeer",
        "exit network",
        "chat request",
        "yes",
        "no",
        "chat message",
        "list connected peer",
        "disconnect",
        "status",
        "whoami",
        "trust",
        "release name",
        "exit",
    ] {
        assert!(help.contains(command), "help mentions {command:?}:\n{help}");
    }
}

#[test]
fn end_of_input_exits_zero() {
    let mut alice = Peer::start_offline("alice");
    alice.close_stdin();
    alice.expect_exact("bye");
    let status = alice.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn exit_exits_zero() {
    let mut alice = Peer::start_offline("alice");
    alice.send("exit");
    alice.expect_exact("bye");
    let status = alice.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn exit_ends_the_peer_even_with_commands_after_it() {
    let mut alice = Peer::start_offline("alice");
    alice.send("exit\nlist connected peer");
    alice.expect_exact("bye");
    let status = alice.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        !alice
            .stdout_so_far()
            .iter()
            .any(|l| l.starts_with("connected peers:")),
        "nothing runs after exit: {:?}",
        alice.stdout_so_far()
    );
}

#[test]
fn without_flags_the_port_and_name_are_read_from_stdin() {
    let dave = Peer::builder("dave").prompted().start();
    // No prompt text: stdin is not a terminal, so the first line is the start-up line.
    let first = dave.stdout_so_far().first().cloned();
    assert_eq!(first, Some(format!("dave listening on {}", dave.addr())));

    // It really listens there, under that name.
    let erin = Peer::start_offline("erin");
    erin.chat_with(&dave);
    erin.say(&dave, "found you");
}

#[test]
fn help_and_version_flags() {
    for bin in ["p2p-server", "p2p-peer"] {
        let out = Command::new(binary(bin)).arg("--version").output().unwrap();
        assert!(out.status.success(), "{bin} --version: {out:?}");
        let version = String::from_utf8_lossy(&out.stdout);
        assert!(
            version.contains(env!("CARGO_PKG_VERSION")),
            "{bin} --version: {version:?}"
        );
    }

    let out = Command::new(binary("p2p-peer"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "p2p-peer --help: {out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--name",
        "--port",
        "--bind",
        "--server",
        "--server-key",
        "--request-timeout",
        "--data-dir",
    ] {
        assert!(
            help.contains(flag),
            "p2p-peer --help mentions {flag}:\n{help}"
        );
    }

    let out = Command::new(binary("p2p-server"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "p2p-server --help: {out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--port", "--bind", "--data-dir"] {
        assert!(
            help.contains(flag),
            "p2p-server --help mentions {flag}:\n{help}"
        );
    }
}

/// A registration shorter than peers can renew would lapse between renewals: the peer would
/// drop out of the list and come back, again and again.
#[test]
fn a_ttl_too_short_to_renew_is_refused_at_start() {
    let data = DataDir::new("short-ttl");
    for ttl in ["1ms", "1s"] {
        // Under `timeout`: a registry that took the flag would run until stopped.
        let out = Command::new("timeout")
            .arg("10")
            .arg(binary("p2p-server"))
            .args(["--ttl", ttl, "--port", "0", "--bind", "127.0.0.1"])
            .args(["--data-dir", &data.arg()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "--ttl {ttl}: {out:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("at least 2s"), "--ttl {ttl}: {said}");
    }
}

#[test]
fn an_invalid_name_is_refused_at_start() {
    let server = dead_addr().to_string();
    let data = DataDir::new("invalid");
    for name in ["two words", "semi;colon", "", &"x".repeat(33), "../escape"] {
        let out = Command::new(binary("p2p-peer"))
            .args(["--name", name, "--port", "0", "--bind", "127.0.0.1"])
            .args(["--server", &server, "--data-dir", &data.arg()])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "--name {name:?} must be refused: {out:?}"
        );
    }
    // Refused before anything was written: no key file for any of those names.
    let written: Vec<_> = std::fs::read_dir(data.path()).unwrap().collect();
    assert!(written.is_empty(), "files were written: {written:?}");
}

#[test]
fn an_overlong_input_line_is_one_error_and_the_peer_goes_on() {
    let alice = Peer::start_offline("alice");
    let out = alice.run(&format!("chat message bob {}", "x".repeat(100_000)));
    assert!(
        is_one_error(&out),
        "one error line: {:?}",
        out.iter()
            .map(|l| l.chars().take(80).collect::<String>())
            .collect::<Vec<_>>()
    );
    let bob = Peer::start_offline("bob");
    alice.chat_with(&bob);
    alice.say(&bob, "after the long line");
}

#[test]
fn trust_without_a_new_key_offered_is_one_error() {
    let alice = Peer::start_offline("alice");
    let fingerprint = alice.fingerprint();
    let out = alice.run(&format!("trust bob {fingerprint}"));
    assert!(is_one_error(&out), "one error line: {out:?}");
    assert!(out[0].contains("bob"), "{out:?}");
    assert_one_usage_error("trust", &alice.run("trust"));
    assert_one_usage_error("trust", &alice.run("trust bob"));
    assert_one_usage_error("trust", &alice.run("trust bob 3f2a:9c1d"));
    assert_one_usage_error("whoami now", &alice.run("whoami now"));
    // whoami still shows the key the peer started with.
    assert_eq!(alice.whoami(), alice.key());
}

#[test]
fn a_second_peer_with_the_same_name_and_data_directory_is_refused_at_start() {
    let dir = DataDir::new("alice");
    let _alice = Peer::builder("alice").data_dir(dir.path()).start();
    let out = Command::new(binary("p2p-peer"))
        .args(["--name", "alice", "--port", "0", "--bind", "127.0.0.1"])
        .args([
            "--server",
            &dead_addr().to_string(),
            "--data-dir",
            &dir.arg(),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("another p2p-peer runs with this name and data directory"),
        "says why: {said}"
    );
}

#[test]
fn a_port_in_use_is_one_line_that_suggests_port_0() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let data = DataDir::new("busy");
    let server = dead_addr().to_string();
    let runs = [
        Command::new(binary("p2p-server"))
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--data-dir",
                &data.arg(),
            ])
            .output()
            .unwrap(),
        Command::new(binary("p2p-peer"))
            .args(["--name", "alice", "--port", &port, "--bind", "127.0.0.1"])
            .args(["--server", &server, "--data-dir", &data.arg()])
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap(),
    ];
    for out in runs {
        assert!(!out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "one line: {stderr}");
        assert!(errors[0].contains("the port is in use"), "{stderr}");
        assert!(errors[0].contains("--port 0"), "{stderr}");
        assert!(!stderr.contains("Caused by"), "{stderr}");
        assert!(!stderr.contains("backtrace"), "{stderr}");
    }
}

#[test]
fn a_mistyped_command_gets_a_did_you_mean() {
    let alice = Peer::start_offline("alice");
    let out = alice.run("regster");
    assert!(is_one_error(&out), "{out:?}");
    assert!(out[0].contains("did you mean register?"), "{out:?}");
    let bob = Peer::start_offline("bob");
    alice.send(&format!("chat request 127.0.0.1:{}", bob.port()));
    alice.expect_request_sent(&bob);
    bob.expect_request_from(&alice);
}

/// In a pipe, a wrong answer to a start-up question ends the program at once with one error
/// line: asking again would take the script's next line as the answer.
#[test]
fn a_scripts_wrong_start_up_answer_is_one_error() {
    use std::io::Write;
    let data = DataDir::new("prompted");
    let mut child = Command::new(binary("p2p-peer"))
        .args(["--bind", "127.0.0.1", "--server", &dead_addr().to_string()])
        .args(["--data-dir", &data.arg()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"40o1\nalice\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("serverport must be a port number"),
        "{stderr}"
    );
}
