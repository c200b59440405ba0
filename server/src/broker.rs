//! The broker task: the one owner of the [`Registry`].
//!
//! Connection tasks never share the registry through a lock; they send the broker a message
//! and await its answer on a oneshot channel (the pattern of the async-std book's chat
//! server). The broker never waits on the network, the disk or the log, so nothing one
//! client does holds up another:
//!
//! - a claim or a release goes to the store thread (`store.rs`) as an [`Op`], and only the
//!   `register` or `release` that asked for it waits for its write, held here until the
//!   thread reports it ([`Held`]); every other request is answered meanwhile;
//! - events go to the log (`log.rs`), which never blocks;
//! - lapsed registrations are dropped when a ticker sends [`Msg::Sweep`] (every [`SWEEP`]),
//!   which also has the log sum up the refusals over its budget (`refusals.rs`);
//! - the encoded pages of the peer list are kept for as long as the list does not change
//!   (`pages.rs`).
//!
//! The broker ends when every [`Registrar`] is gone and every held answer is given.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{select, Either};
use p2p_shared::clock::Clock;
use p2p_shared::identity::PublicKey;
use p2p_shared::registry_session::{RegistrySession, Replier};
use p2p_shared::wire::frame::RegistryRequestHeader as Header;
use p2p_shared::{runtime, PeerInfo, PeerName};

use crate::event::Event;
use crate::log::Log;
use crate::pages::{EncodedPage, Pages};
use crate::registry::{Lookup, Registration, Registry, Removal};
use crate::store::{Op, StoreError, StoreThread, Written};

/// How often lapsed registrations are swept out (they are invisible from the moment they
/// lapse; the sweep frees their memory and logs the event).
const SWEEP: Duration = Duration::from_secs(1);

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
        done: oneshot::Sender<Lookup>,
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
pub type Accepted = (PublicKey, Vec<u8>, Replier);

/// A handle to the broker task; cheap to clone, one per connection task.
#[derive(Clone)]
pub struct Registrar {
    tx: async_channel::Sender<Msg>,
}

impl Registrar {
    /// Starts the broker task, owning `registry`, writing through `store` (whose reports
    /// arrive on `written`) and logging to `log`.
    /// The task's handle ends with it.
    pub fn start(
        registry: Registry,
        store: StoreThread,
        written: async_channel::Receiver<Written>,
        log: Log,
        clock: Clock,
    ) -> (Registrar, runtime::JoinHandle<()>) {
        let (tx, rx) = async_channel::bounded(1024);
        let broker = Broker {
            registry,
            store,
            log,
            clock,
            pages: Pages::default(),
            held: Held::default(),
        };
        let task = runtime::spawn(broker.run(rx, written));
        // A ticker of its own rather than a timeout around every wait for a message: each
        // timeout is a timer set and cancelled, for every message, in the busiest task. It
        // holds a weak handle, so that it does not keep the broker alive.
        let ticker = tx.downgrade();
        runtime::spawn(async move {
            loop {
                runtime::sleep(SWEEP).await;
                let Some(tx) = ticker.upgrade() else { break };
                if tx.send(Msg::Sweep).await.is_err() {
                    break;
                }
            }
        });
        (Registrar { tx }, task)
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

    pub async fn lookup(&self, name: PeerName) -> Lookup {
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
        // The broker lives as long as any Registrar, and answers every message it takes.
        self.tx
            .send(msg(done))
            .await
            .expect("the registry broker outlives its handles");
        answer.await.expect("the registry broker always answers")
    }
}

/// Answers that wait for the store: `register`s of a name whose claim is not written yet
/// (the one that claimed it, and any later one for the same name before the write, so that a
/// retry is not told "registered" before the first), and `release`s.
#[derive(Default)]
struct Held {
    registers: HashMap<PeerName, Vec<HeldRegister>>,
    releases: HashMap<PeerName, Vec<oneshot::Sender<Result<Removal, StoreError>>>>,
}

struct HeldRegister {
    addr: SocketAddr,
    key: PublicKey,
    registration: Registration,
    done: oneshot::Sender<Result<Registration, StoreError>>,
}

impl Held {
    fn is_empty(&self) -> bool {
        self.registers.is_empty() && self.releases.is_empty()
    }
}

/// What woke the broker: a message (`None`: every handle is gone), or a report of the store.
enum Next {
    Msg(Option<Msg>),
    Written(Option<Written>),
}

struct Broker {
    registry: Registry,
    store: StoreThread,
    log: Log,
    clock: Clock,
    pages: Pages,
    held: Held,
}

impl Broker {
    async fn run(
        mut self,
        rx: async_channel::Receiver<Msg>,
        written: async_channel::Receiver<Written>,
    ) {
        let mut open = true;
        while open || !self.held.is_empty() {
            let next = match open {
                true => {
                    let msg = std::pin::pin!(rx.recv());
                    match select(msg, std::pin::pin!(written.recv())).await {
                        Either::Left((msg, _)) => Next::Msg(msg.ok()),
                        Either::Right((batch, _)) => Next::Written(batch.ok()),
                    }
                }
                false => Next::Written(written.recv().await.ok()),
            };
            match next {
                Next::Msg(Some(msg)) => self.handle(msg),
                Next::Msg(None) => open = false,
                Next::Written(Some(batch)) => self.written(batch),
                // The store thread is gone (it cannot be, while we hold its handle).
                Next::Written(None) => break,
            }
            self.submit_ops();
        }
    }

    /// Hands the writes the registry decided to the store thread. A write the thread cannot
    /// take is failed at once, as if the disk had refused it.
    fn submit_ops(&mut self) {
        for op in self.registry.take_ops() {
            if self.store.submit(op.clone()).is_err() {
                self.written(Written {
                    ops: vec![op],
                    result: Err(StoreError::overloaded()),
                });
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        let now = self.clock.now();
        // A dropped `done` means the connection task gave up (timeout); nothing to do then.
        match msg {
            Msg::Sweep => {
                for name in self.registry.expire(now) {
                    self.log.event(Event::Expired { name });
                    self.pages.clear();
                }
                // The same ticker ends the log's windows of refusals.
                self.log.tick();
            }
            Msg::Register {
                name,
                addr,
                key,
                session,
                done,
            } => {
                let registration = self.registry.register(&name, addr, key, session, now);
                if registration == Registration::Added {
                    self.pages.clear();
                }
                let confirms =
                    matches!(registration, Registration::Added | Registration::Refreshed);
                if confirms && self.registry.claim_unsaved(&name) {
                    let held = HeldRegister {
                        addr,
                        key,
                        registration,
                        done,
                    };
                    self.held.registers.entry(name).or_default().push(held);
                    return;
                }
                self.announce(name, addr, key, &registration);
                let _ = done.send(Ok(registration));
            }
            Msg::Unregister { name, key, done } => {
                let removal = self.registry.unregister(&name, key);
                if removal == Removal::Done {
                    self.pages.clear();
                    self.log.event(Event::Unregistered { name });
                }
                let _ = done.send(removal);
            }
            Msg::Release { name, key, done } => match self.registry.release(&name, key) {
                Removal::Done => self.held.releases.entry(name).or_default().push(done),
                other => {
                    let _ = done.send(Ok(other));
                }
            },
            Msg::Accept {
                header,
                frame,
                done,
            } => {
                let _ = done.send(self.registry.accept(&header, &frame, now));
            }
            Msg::Lookup { name, done } => {
                let _ = done.send(self.registry.lookup(&name, now));
            }
            Msg::Page { after, done } => {
                let _ = done.send(self.registry.page(after.as_ref(), now));
            }
            Msg::EncodedPage { after, done } => {
                let registry = &self.registry;
                let page = self.pages.get(after, |after| registry.page(after, now));
                let _ = done.send(page);
            }
        }
    }

    /// The store wrote a batch (or could not): gives the answers that waited for it.
    fn written(&mut self, Written { ops, result }: Written) {
        let lost = self.registry.written(&ops, result.is_ok());
        if !lost.is_empty() {
            // Their registrations are gone again.
            self.pages.clear();
        }
        for op in ops {
            match op {
                Op::Claim { name, .. } => {
                    for held in self.held.registers.remove(&name).unwrap_or_default() {
                        let answer = match &result {
                            Ok(()) => {
                                self.announce(name, held.addr, held.key, &held.registration);
                                Ok(held.registration)
                            }
                            Err(e) => Err(e.clone()),
                        };
                        let _ = held.done.send(answer);
                    }
                    if let Err(e) = &result {
                        let why = e.to_string();
                        self.log.event(Event::CannotRegister { name, why });
                    }
                }
                Op::Release { name, .. } => {
                    match &result {
                        Ok(()) => {
                            self.pages.clear();
                            self.log.event(Event::Released { name });
                        }
                        Err(e) => {
                            let why = e.to_string();
                            self.log.event(Event::CannotRelease { name, why });
                        }
                    }
                    for done in self.held.releases.remove(&name).unwrap_or_default() {
                        let _ = done.send(result.clone().map(|()| Removal::Done));
                    }
                }
            }
        }
    }

    /// Logs a registration that added a name (a refresh is no event).
    fn announce(&self, name: PeerName, addr: SocketAddr, key: PublicKey, r: &Registration) {
        if *r == Registration::Added {
            self.log.event(Event::Registered { name, addr, key });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Claims;
    use crate::store::ClaimStore;
    use p2p_shared::identity::Identity;

    type Answer = oneshot::Receiver<Result<Registration, StoreError>>;

    /// A broker with its store thread; the store's reports come back on the receiver.
    fn broker() -> (Broker, async_channel::Receiver<Written>) {
        let store = ClaimStore::in_memory().unwrap();
        let (written_tx, written) = async_channel::unbounded();
        let broker = Broker {
            registry: Registry::new(
                Claims::default(),
                Duration::from_secs(60),
                crate::registry::NameLimits {
                    per_address: 8,
                    per_prefix: 1_000,
                    per_key: 1_000,
                },
                crate::registry::CAPACITY,
                std::time::Instant::now(),
            ),
            store: StoreThread::start(store, written_tx).unwrap(),
            log: Log::channel().0,
            clock: Clock::System,
            pages: Pages::default(),
            held: Held::default(),
        };
        (broker, written)
    }

    fn register(key: PublicKey, b: &mut Broker) -> Answer {
        let (done, answer) = oneshot::channel();
        b.handle(Msg::Register {
            name: "alice".parse().unwrap(),
            addr: "10.0.0.1:4000".parse().unwrap(),
            key,
            session: None,
            done,
        });
        b.submit_ops();
        answer
    }

    fn ping_lookup(b: &mut Broker) -> oneshot::Receiver<Lookup> {
        let (done, answer) = oneshot::channel();
        b.handle(Msg::Lookup {
            name: "alice".parse().unwrap(),
            done,
        });
        answer
    }

    #[test]
    fn a_new_name_and_its_retry_are_answered_only_once_the_claim_is_written() {
        let (mut b, written) = broker();
        let key = Identity::generate().public();
        let mut first = register(key, &mut b);
        let mut retry = register(key, &mut b);
        assert!(first.try_recv().unwrap().is_none(), "not before the write");
        assert!(retry.try_recv().unwrap().is_none(), "a retry neither");
        // Meanwhile everyone else is answered: the claim is listed already.
        let looked_up = ping_lookup(&mut b).try_recv().unwrap().unwrap();
        assert!(matches!(looked_up, Lookup::Online(_)), "{looked_up:?}");
        b.written(written.recv_blocking().unwrap());
        assert!(matches!(
            first.try_recv(),
            Ok(Some(Ok(Registration::Added)))
        ));
        assert!(matches!(
            retry.try_recv(),
            Ok(Some(Ok(Registration::Refreshed)))
        ));
        let mut later = register(key, &mut b);
        assert!(
            matches!(later.try_recv(), Ok(Some(Ok(Registration::Refreshed)))),
            "a written claim is answered at once"
        );
    }

    #[test]
    fn a_failed_write_answers_every_held_register_with_the_error() {
        let (mut b, written) = broker();
        let key = Identity::generate().public();
        let mut first = register(key, &mut b);
        let mut retry = register(key, &mut b);
        let mut batch = written.recv_blocking().unwrap();
        batch.result = Err(StoreError::overloaded());
        b.written(batch);
        assert!(matches!(first.try_recv(), Ok(Some(Err(_)))));
        assert!(matches!(retry.try_recv(), Ok(Some(Err(_)))));
        let looked_up = ping_lookup(&mut b).try_recv().unwrap().unwrap();
        assert_eq!(looked_up, Lookup::Unknown, "the claim was never written");
    }

    #[test]
    fn a_release_is_answered_once_written() {
        let (mut b, written) = broker();
        let key = Identity::generate().public();
        let _registered = register(key, &mut b);
        b.written(written.recv_blocking().unwrap());
        let (done, mut released) = oneshot::channel();
        b.handle(Msg::Release {
            name: "alice".parse().unwrap(),
            key,
            done,
        });
        b.submit_ops();
        assert!(
            released.try_recv().unwrap().is_none(),
            "not before the write"
        );
        b.written(written.recv_blocking().unwrap());
        assert!(matches!(released.try_recv(), Ok(Some(Ok(Removal::Done)))));
        let looked_up = ping_lookup(&mut b).try_recv().unwrap().unwrap();
        assert_eq!(looked_up, Lookup::Unknown, "released: nobody's");
    }
}
