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
//! writes the claims when no other message is waiting (or [`SAVE_BATCH`] messages after the
//! first answer was held back), all in one transaction, so a burst of new names costs one `fsync` rather than one each, and
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

/// The most messages handled while answers wait for a save: under steady traffic the
/// channel is never empty, and the claims are saved after this many anyway.
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

/// The answers to `register`s held back until their name's claim is saved: the one that
/// claimed it, and any later one for the same name before the save (a retry is not told
/// "registered" before the first is).
#[derive(Default)]
struct Held {
    answers: Vec<HeldAnswer>,
    /// Messages handled since the first answer was held: a save waits for the channel to be
    /// empty, but never for more than [`SAVE_BATCH`] messages.
    since_first: usize,
}

struct HeldAnswer {
    name: PeerName,
    addr: SocketAddr,
    key: PublicKey,
    registration: Registration,
    done: oneshot::Sender<Result<Registration, StoreError>>,
}

impl Held {
    fn due(&self, channel_empty: bool) -> bool {
        !self.answers.is_empty() && (channel_empty || self.since_first >= SAVE_BATCH)
    }
}

async fn run(mut registry: Registry, rx: async_channel::Receiver<Msg>) {
    let mut pages = Pages::default();
    let mut held = Held::default();
    while let Ok(msg) = rx.recv().await {
        handle(msg, &mut registry, &mut pages, &mut held);
        if !held.answers.is_empty() {
            held.since_first += 1;
        }
        if held.due(rx.is_empty()) {
            save(&mut registry, &mut pages, &mut held);
        }
    }
}

/// Saves the claims made since the last save and gives the held answers.
fn save(registry: &mut Registry, pages: &mut Pages, held: &mut Held) {
    let saved = registry.save_claims();
    if saved.is_err() {
        // Their registrations are gone again.
        pages.clear();
    }
    held.since_first = 0;
    for answer in held.answers.drain(..) {
        let HeldAnswer {
            name,
            addr,
            key,
            registration,
            done,
        } = answer;
        let result = match &saved {
            Ok(()) => {
                announce(&name, addr, key, &registration);
                Ok(registration)
            }
            Err((e, _)) => {
                say(format_args!("cannot register {name}: {e}"));
                Err(e.clone())
            }
        };
        let _ = done.send(result);
    }
}

/// Prints the event of a registration that added a name (a refresh is no event).
fn announce(name: &PeerName, addr: SocketAddr, key: PublicKey, registration: &Registration) {
    if *registration == Registration::Added {
        say(format_args!(
            "registered {name} {addr} key {}",
            key.fingerprint()
        ));
    }
}

fn handle(msg: Msg, registry: &mut Registry, pages: &mut Pages, held: &mut Held) {
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
            }
            let confirms = matches!(registration, Registration::Added | Registration::Refreshed);
            if confirms && registry.claim_unsaved(&name) {
                held.answers.push(HeldAnswer {
                    name,
                    addr,
                    key,
                    registration,
                    done,
                });
                return;
            }
            announce(&name, addr, key, &registration);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Claims;
    use p2p_shared::identity::Identity;

    type Answer = oneshot::Receiver<Result<Registration, StoreError>>;

    fn broker() -> (Registry, Pages, Held) {
        let claims = Claims::in_memory().unwrap();
        let registry = Registry::new(claims, Duration::from_secs(60), 8);
        (registry, Pages::default(), Held::default())
    }

    fn register(key: PublicKey, (r, pages, held): &mut (Registry, Pages, Held)) -> Answer {
        let (done, answer) = oneshot::channel();
        let msg = Msg::Register {
            name: "alice".parse().unwrap(),
            addr: "10.0.0.1:4000".parse().unwrap(),
            key,
            session: None,
            done,
        };
        handle(msg, r, pages, held);
        answer
    }

    fn save_now((r, pages, held): &mut (Registry, Pages, Held)) {
        save(r, pages, held);
    }

    #[test]
    fn a_new_name_and_its_retry_are_answered_only_once_the_claim_is_saved() {
        let mut b = broker();
        let key = Identity::generate().public();
        let mut first = register(key, &mut b);
        let mut retry = register(key, &mut b);
        assert!(first.try_recv().unwrap().is_none(), "not before the save");
        assert!(retry.try_recv().unwrap().is_none(), "a retry neither");
        save_now(&mut b);
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
            "a saved claim is answered at once"
        );
    }

    #[test]
    fn a_failed_save_answers_every_held_register_with_the_error() {
        let mut b = broker();
        let key = Identity::generate().public();
        let mut first = register(key, &mut b);
        let mut retry = register(key, &mut b);
        b.0.break_disk();
        save_now(&mut b);
        assert!(matches!(first.try_recv(), Ok(Some(Err(_)))));
        assert!(matches!(retry.try_recv(), Ok(Some(Err(_)))));
    }

    #[test]
    fn held_answers_wait_for_an_empty_channel_or_a_batch_of_messages() {
        let mut b = broker();
        assert!(!b.2.due(true), "nothing held, nothing to save");
        let _answer = register(Identity::generate().public(), &mut b);
        assert!(b.2.due(true));
        b.2.since_first = SAVE_BATCH - 1;
        assert!(!b.2.due(false));
        b.2.since_first = SAVE_BATCH;
        assert!(
            b.2.due(false),
            "steady traffic does not hold answers back for ever"
        );
    }
}
