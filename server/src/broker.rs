//! The broker task: the one owner of the [`Registry`].
//!
//! Connection tasks never share the registry through a lock; they send the broker a message
//! and await its answer on a oneshot channel (the pattern of the async-std book's chat
//! server). The broker never waits on the network, so one slow peer cannot hold up others.
//! It also prints the registry's events, since it is the one place where they happen.

use std::net::SocketAddr;

use futures::channel::oneshot;
use p2p_shared::{runtime, PeerInfo, PeerName};

use crate::output::say;
use crate::registry::{Claim, Registry};

enum Msg {
    Claim {
        name: PeerName,
        addr: SocketAddr,
        done: oneshot::Sender<Claim>,
    },
    Replace {
        name: PeerName,
        stale: SocketAddr,
        addr: SocketAddr,
        done: oneshot::Sender<Claim>,
    },
    Release {
        name: PeerName,
        addr: SocketAddr,
        done: oneshot::Sender<bool>,
    },
    Lookup {
        name: PeerName,
        done: oneshot::Sender<Option<SocketAddr>>,
    },
    Page {
        after: Option<PeerName>,
        done: oneshot::Sender<(Vec<PeerInfo>, Option<PeerName>)>,
    },
}

/// A handle to the broker task; cheap to clone, one per connection task.
#[derive(Clone)]
pub struct Registrar {
    tx: async_channel::Sender<Msg>,
}

impl Registrar {
    /// Starts the broker task.
    pub fn start() -> Registrar {
        let (tx, rx) = async_channel::bounded(1024);
        runtime::spawn(run(rx));
        Registrar { tx }
    }

    pub async fn claim(&self, name: PeerName, addr: SocketAddr) -> Claim {
        self.ask(|done| Msg::Claim { name, addr, done }).await
    }

    pub async fn replace(&self, name: PeerName, stale: SocketAddr, addr: SocketAddr) -> Claim {
        self.ask(|done| Msg::Replace {
            name,
            stale,
            addr,
            done,
        })
        .await
    }

    pub async fn release(&self, name: PeerName, addr: SocketAddr) -> bool {
        self.ask(|done| Msg::Release { name, addr, done }).await
    }

    pub async fn lookup(&self, name: PeerName) -> Option<SocketAddr> {
        self.ask(|done| Msg::Lookup { name, done }).await
    }

    pub async fn page(&self, after: Option<PeerName>) -> (Vec<PeerInfo>, Option<PeerName>) {
        self.ask(|done| Msg::Page { after, done }).await
    }

    async fn ask<T>(&self, msg: impl FnOnce(oneshot::Sender<T>) -> Msg) -> T {
        let (done, answer) = oneshot::channel();
        // The broker lives as long as the process, so neither side of this can fail.
        self.tx
            .send(msg(done))
            .await
            .expect("the registry broker never stops");
        answer.await.expect("the registry broker always answers")
    }
}

async fn run(rx: async_channel::Receiver<Msg>) {
    let mut registry = Registry::default();
    while let Ok(msg) = rx.recv().await {
        // A dropped `done` means the connection task gave up (timeout); nothing to do then.
        match msg {
            Msg::Claim { name, addr, done } => {
                let claim = registry.claim(&name, addr);
                if claim == Claim::Added {
                    say(format_args!("registered {name} {addr}"));
                }
                let _ = done.send(claim);
            }
            Msg::Replace {
                name,
                stale,
                addr,
                done,
            } => {
                let claim = registry.replace(&name, stale, addr);
                if claim == Claim::Added {
                    say(format_args!(
                        "registered {name} {addr} (replacing {stale}, which did not answer)"
                    ));
                }
                let _ = done.send(claim);
            }
            Msg::Release { name, addr, done } => {
                let released = registry.release(&name, addr);
                if released {
                    say(format_args!("unregistered {name}"));
                }
                let _ = done.send(released);
            }
            Msg::Lookup { name, done } => {
                let _ = done.send(registry.lookup(&name));
            }
            Msg::Page { after, done } => {
                let _ = done.send(registry.page(after.as_ref()));
            }
        }
    }
}
