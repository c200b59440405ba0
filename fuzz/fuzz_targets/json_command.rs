//! JSON commands: `p2p_peer::json_command::parse` on any line, and on well-formed JSON
//! objects built from any id and command text.
//!
//! Checks, besides never panicking:
//! - a line is taken for a JSON command (`is_json`) exactly when it starts with `{` after
//!   blanks;
//! - what parses is one JSON object with exactly the fields `id` and `cmd`, as strings, which
//!   the command holds unchanged; its id is one a script may give (1 to 64 printable ASCII
//!   characters, a model here) and prints back as given; its command is not blank; the same
//!   command written again as JSON parses to itself;
//! - a refusal says why, and carries an id only if the line is a JSON object whose `id` is
//!   that valid id;
//! - `{"id": ID, "cmd": CMD}` for any strings (the input split at its first zero byte) is
//!   taken exactly when the model takes ID and CMD is not blank; refused otherwise, with the
//!   id exactly when the model takes it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2p_peer::json_command::{is_json, parse, BadJsonCommand, CommandId, JsonCommand};
use serde_json::{json, Value};

/// What an id may be: 1 to 64 characters, each printable ASCII (space to `~`).
fn id_model(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// The line as a JSON object, if it is one.
fn object(line: &str) -> Option<serde_json::Map<String, Value>> {
    serde_json::from_str(line).ok()
}

fn check_line(line: &str) {
    assert_eq!(
        is_json(line),
        line.trim_start().starts_with('{'),
        "{line:?}"
    );
    match parse(line) {
        Ok(JsonCommand { id, cmd }) => {
            assert!(is_json(line), "{line:?} is a command but not taken for one");
            let text = id.to_string();
            assert!(
                id.is_given() && id_model(&text),
                "{line:?} gave the id {text:?}"
            );
            assert_eq!(CommandId::given(&text).as_ref(), Ok(&id));
            assert!(!cmd.trim().is_empty(), "{line:?} gave a blank command");
            let fields = object(line).expect("a command is a JSON object");
            assert_eq!(fields.len(), 2, "{line:?}");
            assert_eq!(fields["id"], json!(text));
            assert_eq!(fields["cmd"], json!(cmd));
            let again = json!({ "id": text, "cmd": cmd }).to_string();
            assert_eq!(parse(&again), Ok(JsonCommand { id, cmd }));
        }
        Err(BadJsonCommand { id, why }) => {
            assert!(!why.is_empty(), "{line:?} refused without a word");
            if let Some(id) = id {
                let text = id.to_string();
                assert!(id.is_given() && id_model(&text), "{line:?}: {text:?}");
                let fields = object(line).expect("an id is read from a JSON object");
                assert_eq!(fields.get("id"), Some(&json!(text)), "{line:?}");
            }
        }
    }
}

fn check_fields(id: &str, cmd: &str) {
    let line = json!({ "id": id, "cmd": cmd }).to_string();
    let parsed = parse(&line);
    match (id_model(id), cmd.trim().is_empty()) {
        (true, false) => {
            let command = parsed.unwrap_or_else(|e| panic!("{line:?} refused: {}", e.why));
            assert_eq!(command.id.to_string(), id);
            assert_eq!(command.cmd, cmd);
        }
        (valid, _) => {
            let refused = parsed.expect_err(&line);
            assert_eq!(
                refused.id.map(|i| i.to_string()),
                valid.then(|| id.to_string())
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    check_line(&line);
    if let Some(at) = data.iter().position(|&b| b == 0) {
        let id = String::from_utf8_lossy(&data[..at]);
        let cmd = String::from_utf8_lossy(&data[at + 1..]);
        check_fields(&id, &cmd);
    }
});
