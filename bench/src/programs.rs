//! How the bench starts the programs it measures: the registry and the peers.
//!
//! All of them listen on 127.0.0.1 only; the bench never sends to any other address. Each
//! registry and peer gets a data folder of its own in the bench's [`Scratch`] folder, and each peer
//! is given its registry's key (`--server-key`), as a careful user would; the peers of the
//! broadcast part have no registry at all (a loopback port nobody listens on).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use p2p_shared::identity::PublicKey;

use p2p_kit::child::free_port;
use p2p_kit::Bins;
use p2p_kit::Child;
use p2p_kit::Scratch;

/// How long a program may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running registry.
pub struct Registry {
    pub child: Child,
    pub addr: SocketAddr,
    pub key: PublicKey,
}

/// A program the registry runs under (`strace OPTIONS`), given the registry's command line
/// after its own arguments.
pub struct Wrapper {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// The programs under test, and where their data goes.
pub struct Programs {
    pub bins: Bins,
    pub work: Scratch,
}

impl Programs {
    /// Starts `p2p-server` on a free loopback port with fresh data (no key, no claims), with
    /// `extra` arguments.
    pub fn registry(&self, extra: &[&str]) -> anyhow::Result<Registry> {
        self.registry_under(None, extra)
    }

    /// [`Programs::registry`], run by `wrapper` when there is one: `wrapper.program
    /// wrapper.args... p2p-server ARGS...`. The [`Registry`]'s child is then the wrapper.
    pub fn registry_under(
        &self,
        wrapper: Option<&Wrapper>,
        extra: &[&str],
    ) -> anyhow::Result<Registry> {
        let data = self.work.fresh("registry")?;
        let mut args = vec![
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--port".to_owned(),
            "0".to_owned(),
            "--data-dir".to_owned(),
            path_arg(&data)?,
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = match wrapper {
            None => Child::spawn("p2p-server", &self.bins.server, &args)?,
            Some(wrapper) => {
                let mut all = wrapper.args.clone();
                all.push(path_arg(&self.bins.server)?);
                all.extend(args);
                let label = format!("p2p-server under {}", wrapper.program.display());
                Child::spawn(&label, &wrapper.program, &all)?
            }
        };
        let addr = child.listening_addr(START_TIMEOUT)?;
        const MARK: &str = "registry key ";
        let line = child.expect("with its key", START_TIMEOUT, |l| l.starts_with(MARK))?;
        let key = line.text[MARK.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .parse()
            .with_context(|| format!("p2p-server: {:?} names no key", line.text))?;
        Ok(Registry { child, addr, key })
    }

    /// Starts `p2p-peer` named `name` on loopback `port` (0: any free port) with the data in
    /// `data`, using `registry`, with `extra` arguments, without waiting for it to listen.
    pub fn peer(
        &self,
        name: &str,
        port: u16,
        registry: &Registry,
        data: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Child> {
        let mut args = self.peer_args(name, port, registry, data)?;
        args.extend(extra.iter().map(|a| a.to_string()));
        Ok(Child::spawn(
            &format!("p2p-peer {name}"),
            &self.bins.peer,
            &args,
        )?)
    }

    /// The arguments [`Programs::peer`] starts `p2p-peer` with, for a harness that starts it
    /// itself.
    pub fn peer_args(
        &self,
        name: &str,
        port: u16,
        registry: &Registry,
        data: &Path,
    ) -> anyhow::Result<Vec<String>> {
        Ok(vec![
            "--name".to_owned(),
            name.to_owned(),
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--port".to_owned(),
            port.to_string(),
            "--server".to_owned(),
            registry.addr.to_string(),
            "--server-key".to_owned(),
            registry.key.to_string(),
            "--data-dir".to_owned(),
            path_arg(data)?,
        ])
    }

    /// Starts `p2p-peer` named `name` with fresh data on a free loopback port, with no
    /// registry (its `--server` is a loopback port nobody listens on) and `extra` arguments;
    /// returns it once it listens.
    pub fn peer_without_registry(
        &self,
        name: &str,
        extra: &[String],
    ) -> anyhow::Result<(Child, SocketAddr)> {
        let nobody = free_port()?;
        let mut args = vec![
            "--name".to_owned(),
            name.to_owned(),
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--port".to_owned(),
            "0".to_owned(),
            "--server".to_owned(),
            format!("127.0.0.1:{nobody}"),
            "--data-dir".to_owned(),
            path_arg(&self.work.fresh(name)?)?,
        ];
        args.extend(extra.iter().cloned());
        let child = Child::spawn(&format!("p2p-peer {name}"), &self.bins.peer, &args)?;
        let addr = child.listening_addr(START_TIMEOUT)?;
        Ok((child, addr))
    }

    /// Starts a peer with fresh data on a free port, with `extra` arguments; returns it once
    /// it listens.
    pub fn listening_peer(
        &self,
        name: &str,
        registry: &Registry,
        extra: &[&str],
    ) -> anyhow::Result<(Child, SocketAddr)> {
        let child = self.peer(name, 0, registry, &self.work.fresh(name)?, extra)?;
        let addr = child.listening_addr(START_TIMEOUT)?;
        Ok((child, addr))
    }
}

fn path_arg(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}
