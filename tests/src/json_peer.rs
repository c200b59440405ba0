//! A peer driven as a bot drives it: `p2p-peer --json`, JSON commands with ids of the test's
//! choosing on stdin, and one JSON event per line on stdout, read as [`Value`]s.

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::Path;

use p2p_shared::identity::PublicKey;
use serde_json::{json, Value};

use crate::proc::{DataDirUse, Proc};
use crate::programs::PeerBuilder;

/// A running `p2p-peer --json`.
pub struct JsonPeer {
    // Declared first: dropped (killed) before its data directory is removed.
    proc: Proc,
    name: String,
    addr: SocketAddr,
    key: PublicKey,
    data: DataDirUse,
}

impl PeerBuilder {
    /// Starts the peer with `--json`, waits for its `listening` event and the `reachable`
    /// one that follows, then asks `whoami` (a JSON command with the id `start`) for its key.
    #[track_caller]
    pub fn start_json(self) -> JsonPeer {
        let (proc, name, data) = self.arg("--json").spawn();
        let listening = next_event(&proc);
        if listening["event"] != "listening" || listening["name"] != name.as_str() {
            proc.fail(&format!(
                "expected {name}'s listening event, got {listening}"
            ));
        }
        let addr = listening["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| proc.fail(&format!("no address in {listening}")));
        let reachable = next_event(&proc);
        if reachable["event"] != "reachable" {
            proc.fail(&format!(
                "expected where {name} is reachable, got {reachable}"
            ));
        }
        send_command(&proc, "start", "whoami");
        let whoami = next_event(&proc);
        let key = whoami["key"]
            .as_str()
            .and_then(|k| k.parse().ok())
            .unwrap_or_else(|| proc.fail(&format!("no key in {whoami}")));
        if whoami["event"] != "whoami" || whoami["id"] != "start" {
            proc.fail(&format!("expected the answer to whoami, got {whoami}"));
        }
        JsonPeer {
            proc,
            name,
            addr,
            key,
            data,
        }
    }
}

impl JsonPeer {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address this peer listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn key(&self) -> PublicKey {
        self.key
    }

    pub fn fingerprint(&self) -> String {
        self.key.fingerprint()
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Sends the JSON command `{"id": id, "cmd": cmd}`.
    #[track_caller]
    pub fn command(&self, id: &str, cmd: &str) {
        send_command(&self.proc, id, cmd);
    }

    /// The very next event, whatever it is.
    #[track_caller]
    pub fn next_event(&self) -> Value {
        next_event(&self.proc)
    }

    /// The next event, which must be of kind `event`: nothing printed in between.
    #[track_caller]
    pub fn expect_next_event(&self, event: &str) -> Value {
        let next = self.next_event();
        if next["event"] != event {
            self.fail(&format!("the next event is {next}, not {event:?}"));
        }
        next
    }

    /// Skips events until one of kind `event`, and returns it.
    #[track_caller]
    pub fn expect_event(&self, event: &str) -> Value {
        let line = self.expect_line(&format!("a {event:?} event"), |line| {
            serde_json::from_str::<Value>(line).is_ok_and(|v| v["event"] == event)
        });
        serde_json::from_str(&line).expect("parsed just now")
    }
}

#[track_caller]
fn send_command(proc: &Proc, id: &str, cmd: &str) {
    proc.send(&json!({ "id": id, "cmd": cmd }).to_string());
}

/// The next stdout line, which must be one JSON object with an `event`.
#[track_caller]
fn next_event(proc: &Proc) -> Value {
    let line = proc.next_line();
    match serde_json::from_str::<Value>(&line) {
        Ok(event) if event["event"].is_string() => event,
        _ => proc.fail(&format!("not a JSON event: {line:?}")),
    }
}

impl Deref for JsonPeer {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl DerefMut for JsonPeer {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}
