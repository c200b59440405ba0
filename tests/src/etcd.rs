//! A real etcd for a test: Debian's `etcd` (package `etcd-server`, which `.ci/run`
//! installs), on two free loopback ports, with a data folder of the test's own, stopped by
//! its PID when dropped.
//!
//! The registry's etcd store (`server/src/etcd.rs`) is tested against the program it will
//! meet, not a stand-in: its transactions and leases are etcd's behaviour to rely on.

use std::path::PathBuf;

use p2p_kit::child::free_port;

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
