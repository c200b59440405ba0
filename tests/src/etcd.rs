//! A real etcd for a test: Debian's `etcd` (package `etcd-server`, which `.ci/run`
//! installs), on two free loopback ports, with a data folder of the test's own, stopped by
//! its PID when dropped.
//!
//! The registry's etcd store (`server/src/etcd.rs`) is tested against the program it will
//! meet, not a stand-in: its transactions and leases are etcd's behaviour to rely on.
//!
//! A registration lapses inside etcd, which tells no registry: a test that waits for a lapse
//! watches the key ([`Etcd::watch`], etcd's `/v3/watch` through its JSON gateway) and is
//! woken by its deletion.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use data_encoding::BASE64;
use p2p_kit::child::free_port;
use serde_json::{json, Value};

use crate::proc::{DataDir, Proc};

/// What etcd logs (stderr) once it answers clients.
const READY: &str = "ready to serve client requests";

pub struct Etcd {
    // Declared first: dropped (killed) before its data folder is removed.
    proc: Option<Proc>,
    client: u16,
    peer: u16,
    data: DataDir,
}

/// The `etcd` program: on the PATH, or where Debian puts it.
fn program() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("etcd"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        let debian = PathBuf::from("/usr/bin/etcd");
        assert!(
            debian.is_file(),
            "no etcd: install Debian's etcd-server (`apt-get install etcd-server`; .ci/run does)"
        );
        debian
    })
}

impl Etcd {
    /// A new single-member etcd on free loopback ports, once it serves clients.
    #[track_caller]
    pub fn start() -> Etcd {
        let port = || free_port().unwrap_or_else(|e| panic!("no free port: {e}"));
        let mut etcd = Etcd {
            proc: None,
            client: port(),
            peer: port(),
            data: DataDir::new("etcd"),
        };
        etcd.restart();
        etcd
    }

    /// `HOST:PORT` of its client endpoint.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client)
    }

    /// The registry's `--store` for it.
    pub fn store(&self) -> String {
        format!("etcd://{}", self.endpoint())
    }

    /// Watches the keys under `prefix` (every key of the registry's store starts with
    /// `p2p-chat/`: `server/src/etcd/kv.rs`) from now on.
    #[track_caller]
    pub fn watch(&self, prefix: &str) -> Watch {
        let end = match prefix.strip_suffix('/') {
            Some(stem) => format!("{stem}0"),
            None => panic!("a prefix ends with '/': {prefix:?}"),
        };
        let body = json!({"create_request": {
            "key": BASE64.encode(prefix.as_bytes()),
            "range_end": BASE64.encode(end.as_bytes()),
        }})
        .to_string();
        let mut stream = TcpStream::connect(self.endpoint()).expect("connect to etcd");
        stream
            .set_read_timeout(Some(WATCH_TIMEOUT))
            .expect("set_read_timeout");
        // HTTP/1.0: the gateway streams the events, one JSON object a line, until we close.
        let request = format!(
            "POST /v3/watch HTTP/1.0\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .expect("send the watch");
        let mut watch = Watch {
            events: BufReader::new(stream),
        };
        // Past the headers, then the answer that the watch is made: later changes come after.
        while !watch.line().trim().is_empty() {}
        let created = watch.event();
        assert_eq!(created["result"]["created"], true, "{created}");
        watch
    }

    /// Kills it (SIGKILL, by its PID) and reaps it; its data stays for [`Etcd::restart`].
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
        }
    }

    /// Starts it (again) on the same ports and data, once it serves clients.
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop();
        let client = format!("http://127.0.0.1:{}", self.client);
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let args: Vec<String> = [
            "--name",
            "test",
            "--data-dir",
            &self.data.arg(),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("test={peer}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let proc = Proc::spawn("etcd", &program(), &args);
        proc.expect_log(READY);
        self.proc = Some(proc);
    }
}

/// How long a watch waits for its next event: a lapse takes a registration's TTL and etcd's
/// lease check (at most a second or so past it).
const WATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The changes to some keys of an etcd, as etcd reports them.
pub struct Watch {
    events: BufReader<TcpStream>,
}

impl Watch {
    #[track_caller]
    fn line(&mut self) -> String {
        let mut line = String::new();
        match self.events.read_line(&mut line) {
            Ok(0) => panic!("etcd ended the watch"),
            Ok(_) => line,
            Err(e) => panic!("no event from etcd within {WATCH_TIMEOUT:?}: {e}"),
        }
    }

    #[track_caller]
    fn event(&mut self) -> Value {
        let line = self.line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not an event ({e}): {line:?}"))
    }

    /// The next change of `key`, passing over the other keys' changes: `PUT` with the lease
    /// the key is on now, or `DELETE` (with no lease).
    #[track_caller]
    pub fn next_change(&mut self, key: &str) -> (String, Option<String>) {
        let key = BASE64.encode(key.as_bytes());
        loop {
            let event = self.event();
            let events = event["result"]["events"].as_array().cloned();
            for change in events.unwrap_or_default() {
                if change["kv"]["key"].as_str() == Some(key.as_str()) {
                    // The gateway leaves out fields at their zero value: a PUT has no `type`.
                    let kind = change["type"].as_str().unwrap_or("PUT").to_owned();
                    let lease = change["kv"]["lease"].as_str().map(str::to_owned);
                    return (kind, lease);
                }
            }
        }
    }

    /// Waits until `key` is deleted (a lease that lapsed drops its keys), passing over the
    /// other changes.
    #[track_caller]
    pub fn expect_deleted(&mut self, key: &str) {
        let key = BASE64.encode(key.as_bytes());
        loop {
            let event = self.event();
            let events = event["result"]["events"].as_array().cloned();
            let deleted = events
                .unwrap_or_default()
                .iter()
                .any(|e| e["type"] == "DELETE" && e["kv"]["key"].as_str() == Some(key.as_str()));
            if deleted {
                return;
            }
        }
    }
}
