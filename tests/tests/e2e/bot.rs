//! The echo bot of docs/json.md, run exactly as the page shows it: the test reads the page's
//! Python block, so the example cannot drift from what the peer does.

use std::path::Path;

use p2p_e2e::{binary, DataDir, Peer, Proc, Server};

/// The one ```python block of docs/json.md.
fn python_block_of_docs_json_md() -> String {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/json.md");
    let text = std::fs::read_to_string(&page).expect("docs/json.md");
    let blocks: Vec<&str> = text
        .split("```python\n")
        .skip(1)
        .map(|rest| rest.split("\n```").next().expect("a closed block"))
        .collect();
    assert_eq!(blocks.len(), 1, "docs/json.md has one Python block");
    format!("{}\n", blocks[0])
}

#[test]
fn the_echo_bot_of_docs_json_md_works_as_written() {
    let server = Server::start();
    let folder = DataDir::new("echo-bot");
    let script = folder.path().join("echo_bot.py");
    std::fs::write(&script, python_block_of_docs_json_md()).unwrap();
    // The bot finds p2p-peer on the PATH, as after `cargo install --path peer`.
    let peer = binary("p2p-peer");
    let path = match std::env::var("PATH") {
        Ok(path) => format!("{}:{path}", peer.parent().unwrap().display()),
        Err(_) => peer.parent().unwrap().display().to_string(),
    };
    let data = DataDir::new("echo");
    let args: Vec<String> = [
        format!("PATH={path}"),
        "python3".into(),
        script.display().to_string(),
        // The bot's arguments go to p2p-peer.
        "--bind".into(),
        "127.0.0.1".into(),
        "--server".into(),
        server.addr().to_string(),
        "--data-dir".into(),
        data.arg(),
    ]
    .to_vec();
    let bot = Proc::spawn("echo bot", Path::new("/usr/bin/env"), &args);
    bot.expect_log("registered as echo at ");

    let bob = Peer::start("bob", server.addr());
    let listed = bob.listpeer();
    assert!(
        listed.iter().any(|l| l.starts_with("peer echo 127.0.0.1:")),
        "bob finds the bot: {listed:?}"
    );
    bob.send("chat request echo");
    bob.expect_prefix("chat request sent to echo (");
    bob.expect_prefix("chat accepted by echo (");
    for text in ["hello, echo: \"quoted\" 你好", "once more"] {
        bob.send(&format!("chat message echo {text}"));
        // The echo may overtake the acknowledgement of what it echoes.
        let mut shown = bob.expect_lines(2);
        shown.sort();
        assert_eq!(
            shown,
            ["delivered to echo".to_string(), format!("echo: {text}")]
        );
    }
}
