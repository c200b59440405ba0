//! The broker task: the one owner of the [`Registry`].
//!
//! Connection tasks never share the registry through a lock; they send the broker a message
//! and await its answer on a oneshot channel (the pattern of the async-std book's chat
//! server). The broker never waits on the network, so one slow peer cannot hold up others.
//! It also prints the registry's events, since it is the one place where they happen, drops
//! lapsed registrations (a ticker task sends it [`Msg::Sweep`] every [`SWEEP`]), and keeps
//! the encoded pages of the peer list for as long as the list does not change (`pages.rs`).
//!
//! A `register` that claims a new name is answered only once the claim is on disk. The broker
//! writes the claims when no other message is waiting (or after [`SAVE_BATCH`] of them), all
//! in one transaction, so a burst of new names costs one `fsync` rather than one each, and
//! the messages behind them do not each wait for one (`store.rs`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use p2p_shared::identity::PublicKey;
use p2p_shared::registry_session::{Header, RegistrySession, Replier};
use p2p_shared::{runtime, PeerInfo, PeerName};

use crate::output::say;
use crate::pages::{EncodedPage, Pages};
use crate::registry::{Registration, Registry, Removal};
use crate::store::StoreError;

/// How often lapsed registrations are swept out (they are invisible from the moment they
/// lapse; the sweep frees their memory and prints the event).
const SWEEP: Duration = Duration::from_secs(1);

/// The most new claims held back for one save: their `register`s wait for it.
const SAVE_BATCH: usize = 64;

enum Msg {
    /// Time to drop the registrations that lapsed.
    Sweep,
    Register {
        name: PeerName,
        addr: SocketAddr,
        key: PublicKey,
        session: Option<RegistrySession>,
        done: oneshot::Sender<Result<Registration, StoreError>>,
    },
    Accept {
        header: Header,
        frame: Vec<u8>,
        done: oneshot::Sender<Option<Accepted>>,
    },
    Unregister {
        name: PeerName,
        key: PublicKey,
        done: oneshot::Sender<Removal>,
    },
    Release {
        name: PeerName,
        key: PublicKey,
        done: oneshot::Sender<Result<Removal, StoreError>>,
    },
    Lookup {
        name: PeerName,
        done: oneshot::Sender<Option<PeerInfo>>,
    },
    Page {
        after: Option<PeerName>,
        done: oneshot::Sender<(Vec<PeerInfo>, Option<PeerName>)>,
    },
    EncodedPage {
        after: Option<PeerName>,
        done: oneshot::Sender<EncodedPage>,
    },
}

/// A request accepted in its registry session: the key the session was agreed with, and the
/// means to reply.
pub type Accepted = (PublicKey, Replier);

/// A handle to the broker task; cheap to clone, one per connection task.
#[derive(Clone)]
pub struct Registrar {
    tx: async_channel::Sender<Msg>,
}

impl Registrar {
    /// Starts the broker task, owning `registry`.
    pub fn start(registry: Registry) -> Registrar {
        let (tx, rx) = async_channel::bounded(1024);
        runtime::spawn(run(registry, rx));
        // A ticker of its own rather than a timeout around every wait for a message: each
        // timeout is a timer set and cancelled, for every message, in the busiest task.
        let ticker = tx.clone();
        runtime::spawn(async move {
            loop {
                runtime::sleep(SWEEP).await;
                if ticker.send(Msg::Sweep).await.is_err() {
                    break;
                }
            }
        });
        Registrar { tx }
    }

    pub async fn register(
        &self,
        name: PeerName,
        addr: SocketAddr,
        key: PublicKey,
        session: Option<RegistrySession>,
    ) -> Result<Registration, StoreError> {
        self.ask(|done| Msg::Register {
            name,
            addr,
            key,
            session,
            done,
        })
        .await
    }

    /// Accepts a request in a registry session (only the owner of the sessions can: it also
    /// moves the session's counter).
    pub async fn accept(&self, header: Header, frame: Vec<u8>) -> Option<Accepted> {
        self.ask(|done| Msg::Accept {
            header,
            frame,
            done,
        })
        .await
    }

    pub async fn unregister(&self, name: PeerName, key: PublicKey) -> Removal {
        self.ask(|done| Msg::Unregister { name, key, done }).await
    }

    pub async fn release(&self, name: PeerName, key: PublicKey) -> Result<Removal, StoreError> {
        self.ask(|done| Msg::Release { name, key, done }).await
    }

    pub async fn lookup(&self, name: PeerName) -> Option<PeerInfo> {
        self.ask(|done| Msg::Lookup { name, done }).await
    }

    pub async fn page(&self, after: Option<PeerName>) -> (Vec<PeerInfo>, Option<PeerName>) {
        self.ask(|done| Msg::Page { after, done }).await
    }

    /// The same page, as the JSON of its outcome: encoded once for everyone who asks until
    /// the list changes (`pages.rs`).
    pub async fn encoded_page(&self, after: Option<PeerName>) -> EncodedPage {
        self.ask(|done| Msg::EncodedPage { after, done }).await
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

/// A `register` that claimed a new name, answered when the claim is saved.
struct Claimed {
    name: PeerName,
    addr: SocketAddr,
    key: PublicKey,
    done: oneshot::Sender<Result<Registration, StoreError>>,
}

async fn run(mut registry: Registry, rx: async_channel::Receiver<Msg>) {
    let mut pages = Pages::default();
    let mut claimed: Vec<Claimed> = Vec::new();
    while let Ok(msg) = rx.recv().await {
        handle(msg, &mut registry, &mut pages, &mut claimed);
        if !claimed.is_empty() && (rx.is_empty() || claimed.len() >= SAVE_BATCH) {
            save(&mut registry, &mut pages, &mut claimed);
        }
    }
}

/// Saves the claims made since the last save and answers the `register`s that made them.
fn save(registry: &mut Registry, pages: &mut Pages, claimed: &mut Vec<Claimed>) {
    let saved = registry.save_claims();
    if saved.is_err() {
        // Their registrations are gone again.
        pages.clear();
    }
    for Claimed {
        name,
        addr,
        key,
        done,
    } in claimed.drain(..)
    {
        match &saved {
            Ok(()) => say(format_args!(
                "registered {name} {addr} key {}",
                key.fingerprint()
            )),
            Err((e, _)) => say(format_args!("cannot register {name}: {e}")),
        }
        let _ = done.send(
            saved
                .clone()
                .map(|()| Registration::Added)
                .map_err(|(e, _)| e),
        );
    }
}

fn handle(msg: Msg, registry: &mut Registry, pages: &mut Pages, claimed: &mut Vec<Claimed>) {
    let now = Instant::now();
    // A dropped `done` means the connection task gave up (timeout); nothing to do then.
    match msg {
        Msg::Sweep => {
            for name in registry.expire(now) {
                say(format_args!("expired {name} (not renewed in time)"));
                pages.clear();
            }
        }
        Msg::Register {
            name,
            addr,
            key,
            session,
            done,
        } => {
            let registration = registry.register(&name, addr, key, session, now);
            if registration == Registration::Added {
                pages.clear();
                if registry.claim_unsaved(&name) {
                    claimed.push(Claimed {
                        name,
                        addr,
                        key,
                        done,
                    });
                    return;
                }
                say(format_args!(
                    "registered {name} {addr} key {}",
                    key.fingerprint()
                ));
            }
            let _ = done.send(Ok(registration));
        }
        Msg::Unregister { name, key, done } => {
            let removal = registry.unregister(&name, key);
            if removal == Removal::Done {
                pages.clear();
                say(format_args!("unregistered {name}"));
            }
            let _ = done.send(removal);
        }
        Msg::Release { name, key, done } => {
            let result = registry.release(&name, key);
            match &result {
                Ok(Removal::Done) => {
                    pages.clear();
                    say(format_args!("released {name}"))
                }
                Err(e) => say(format_args!("cannot release {name}: {e}")),
                Ok(_) => {}
            }
            let _ = done.send(result);
        }
        Msg::Accept {
            header,
            frame,
            done,
        } => {
            let _ = done.send(registry.accept(&header, &frame, now));
        }
        Msg::Lookup { name, done } => {
            let _ = done.send(registry.lookup(&name, now));
        }
        Msg::Page { after, done } => {
            let _ = done.send(registry.page(after.as_ref(), now));
        }
        Msg::EncodedPage { after, done } => {
            let _ = done.send(pages.get(after, |after| registry.page(after, now)));
        }
    }
}
