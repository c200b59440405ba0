//! What the programs read and say at start (issue 17, item 13): each program its own
//! environment variables (`P2P_PEER_...`, `P2P_REGISTRY_...`; the names of before still read,
//! with a warning), and, after `listening on ADDR`, the address to give others, never
//! `0.0.0.0`.

use std::net::SocketAddr;

use p2p_e2e::{binary, dead_addr, DataDir, Proc};

/// `(NAME, value)` pairs with `P2P_` in front of each name replaced by `prefix`.
fn renamed(env: &[(&str, String)], prefix: &str) -> Vec<(String, String)> {
    env.iter()
        .map(|(name, value)| (format!("{prefix}{name}"), value.clone()))
        .collect()
}

/// Starts `program` with no arguments and the variables `env`.
fn start(label: &str, program: &str, env: &[(String, String)]) -> Proc {
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    Proc::spawn_with_env(label, &binary(program), &[], &env)
}

/// The warnings of `proc`'s log (all of it, once it exited).
fn warnings(proc: &Proc) -> Vec<String> {
    let log = proc.take_log();
    log.into_iter()
        .filter(|l| l.contains("WARN") || l.starts_with("warning:"))
        .collect()
}

#[track_caller]
fn exit_peer(mut peer: Proc) -> Proc {
    peer.send("exit");
    peer.expect_exact("bye");
    assert!(peer.wait_exit().success());
    peer
}

#[track_caller]
fn stop_registry(mut registry: Proc) -> Proc {
    registry.terminate();
    registry.expect_exact("stopped");
    assert!(registry.wait_exit().success());
    registry
}

#[test]
fn the_peer_reads_its_own_variables_and_those_of_before_with_a_warning() {
    let data = DataDir::new("alice");
    let flags = [
        ("NAME", "alice".to_owned()),
        ("PORT", "0".to_owned()),
        ("BIND", "127.0.0.1".to_owned()),
        ("SERVER", dead_addr().to_string()),
        ("DATA_DIR", data.arg()),
    ];
    // A registry's variables exported in the same shell are not the peer's: before, both
    // read P2P_PORT, P2P_BIND and P2P_DATA_DIR.
    let registrys = [
        ("PORT", "1".to_owned()),
        ("BIND", "0.0.0.0".to_owned()),
        ("DATA_DIR", "/nonexistent".to_owned()),
    ];
    let env = [
        renamed(&flags, "P2P_PEER_"),
        renamed(&registrys, "P2P_REGISTRY_"),
    ]
    .concat();
    let peer = start("peer", "p2p-peer", &env);
    peer.expect_prefix("alice listening on 127.0.0.1:");
    let peer = exit_peer(peer);
    assert_eq!(warnings(&peer), Vec::<String>::new());

    let peer = start("peer", "p2p-peer", &renamed(&flags, "P2P_"));
    peer.expect_prefix("alice listening on 127.0.0.1:");
    let peer = exit_peer(peer);
    let warnings = warnings(&peer);
    for (flag, _) in flags {
        let said = format!("P2P_{flag} is read as P2P_PEER_{flag} for this release only");
        assert!(
            warnings.iter().any(|w| w.contains(&said)),
            "{said}: {warnings:#?}"
        );
    }
}

#[test]
fn the_registry_reads_its_own_variables_and_those_of_before_with_a_warning() {
    let data = DataDir::new("registry");
    let flags = [
        ("PORT", "0".to_owned()),
        ("BIND", "127.0.0.1".to_owned()),
        ("DATA_DIR", data.arg()),
    ];
    let peers = [
        ("PORT", "1".to_owned()),
        ("BIND", "0.0.0.0".to_owned()),
        ("DATA_DIR", "/nonexistent".to_owned()),
    ];
    let env = [
        renamed(&flags, "P2P_REGISTRY_"),
        renamed(&peers, "P2P_PEER_"),
    ]
    .concat();
    let registry = start("registry", "p2p-server", &env);
    registry.expect_prefix("listening on 127.0.0.1:");
    let registry = stop_registry(registry);
    assert_eq!(warnings(&registry), Vec::<String>::new());

    let registry = start("registry", "p2p-server", &renamed(&flags, "P2P_"));
    registry.expect_prefix("listening on 127.0.0.1:");
    let registry = stop_registry(registry);
    let warnings = warnings(&registry);
    for (flag, _) in flags {
        let said =
            format!("warning: P2P_{flag} is read as P2P_REGISTRY_{flag} for this release only");
        assert!(
            warnings.iter().any(|w| w.starts_with(&said)),
            "{said}: {warnings:#?}"
        );
    }
}

/// Checks the line after `listening on 0.0.0.0:PORT`: the addresses of this machine's
/// interfaces other than loopback, with the port, or, on a machine with loopback only, that
/// only it reaches the program.
#[track_caller]
fn check_reachable(line: &str, port: u16) {
    match line.strip_prefix("reachable at ") {
        Some(addrs) => {
            for addr in addrs.split(", ") {
                let addr: SocketAddr = addr.parse().unwrap_or_else(|_| panic!("{line}"));
                assert!(!addr.ip().is_unspecified(), "{line}");
                assert!(!addr.ip().is_loopback(), "{line}");
                assert_eq!(addr.port(), port, "{line}");
            }
        }
        None => assert_eq!(
            line,
            format!(
                "reachable only from this machine, at 127.0.0.1:{port} (no network interface \
                 has an address but loopback)"
            )
        ),
    }
}

#[test]
fn after_listening_on_0_0_0_0_each_program_says_the_address_to_give_others() {
    // Both on every interface (the default, as on a LAN); nothing connects to them.
    let data = DataDir::new("registry");
    let registry = Proc::spawn(
        "registry",
        &binary("p2p-server"),
        &["--port".into(), "0".into(), "--data-dir".into(), data.arg()],
    );
    let line = registry.expect_prefix("listening on ");
    let listening: SocketAddr = line["listening on ".len()..].parse().unwrap();
    assert!(listening.ip().is_unspecified(), "{line}");
    check_reachable(&registry.next_line(), listening.port());
    stop_registry(registry);

    let data = DataDir::new("alice");
    let peer = Proc::spawn(
        "peer",
        &binary("p2p-peer"),
        &[
            "--name".into(),
            "alice".into(),
            "--port".into(),
            "0".into(),
            "--server".into(),
            dead_addr().to_string(),
            "--data-dir".into(),
            data.arg(),
        ],
    );
    let line = peer.expect_prefix("alice listening on ");
    let listening: SocketAddr = line["alice listening on ".len()..].parse().unwrap();
    assert!(listening.ip().is_unspecified(), "{line}");
    check_reachable(&peer.next_line(), listening.port());
    exit_peer(peer);
}

#[test]
fn a_program_on_loopback_says_only_this_machine_reaches_it() {
    let data = DataDir::new("alice");
    let peer = Proc::spawn(
        "peer",
        &binary("p2p-peer"),
        &[
            "--name".into(),
            "alice".into(),
            "--port".into(),
            "0".into(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--server".into(),
            dead_addr().to_string(),
            "--data-dir".into(),
            data.arg(),
            "--json".into(),
        ],
    );
    let listening = peer.next_line();
    let addr = serde_json::from_str::<serde_json::Value>(&listening).unwrap()["addr"].clone();
    let reachable: serde_json::Value = serde_json::from_str(&peer.next_line()).unwrap();
    assert_eq!(
        reachable,
        serde_json::json!({
            "event": "reachable",
            "addrs": [addr],
            "only_here": "bound_to_loopback",
        })
    );
    let mut peer = peer;
    peer.send("exit");
    peer.expect_exact(r#"{"event":"bye","id":"c1"}"#);
    assert!(peer.wait_exit().success());
}
