//! The broker: the one task that owns the peer's state, and performs what its changes ask for.
//!
//! Open chats, chat requests both ways and pinned keys live in one [`PeerState`]
//! (`state/`), which does no I/O. The network side (`inbound.rs`), the user's command loop
//! and the liveness checks reach it through a [`Broker`] handle: each sends a function of the
//! state ([`Broker::call`]), the broker runs it with the [`Context`] of that moment and
//! performs the [`Effect`]s it returned: events to the screen, pin files to the disk thread,
//! notices to other peers in tasks of their own. No locks, every change in one order, and
//! the broker never waits on the network, the disk or the terminal. Timers need no task
//! either: the loop waits for the next message or the next request deadline, whichever
//! comes first.
//!
//! The broker ends when every handle is gone: shutdown by dropping, as in the async-std
//! book's chat server.

use std::time::Instant;

use futures::channel::oneshot;
use p2p_shared::runtime;
use p2p_shared::transport::{self, Origin, Refusal};
use p2p_shared::wire::new_id;

use crate::disk::Disk;
use crate::error::PeerError;
use crate::event::Event;
use crate::names::Names;
use crate::resume;
use crate::screen::Screen;
use crate::state::pins::Namespace;
use crate::state::{ChatMessage, Context, Effect, FromChat, Held, PeerState, Showing, Storing};
use crate::vouch::TrustedRegistry;

/// A function of the state, run by the broker.
type Call = Box<dyn FnOnce(&mut PeerState, &Context, &mut Vec<Effect>) + Send>;

enum Msg {
    Call(Call),
    /// A frame sealed in one of our chats: its place on the screen is kept before the state
    /// opens it, so a chat message shows in the order it arrived.
    Sealed {
        frame: Vec<u8>,
        done: oneshot::Sender<Result<Acknowledge, Refusal>>,
    },
}

/// How to acknowledge a sealed frame.
pub enum Acknowledge {
    /// With this, now.
    Now(Vec<u8>),
    /// A chat message whose turn has come: store it (filling its place if it shows only if
    /// new), then acknowledge as [`Storing`] says, with this sealed `ok`.
    AfterStoring(Box<Storing>, Vec<u8>),
    /// A chat message that came before its turn: wait for it to show (then as
    /// `AfterStoring`); if it is dropped instead, its sender is told `busy`.
    WhenItsTurnComes(oneshot::Receiver<(Box<Storing>, Vec<u8>)>),
}

/// A handle to the broker task; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    tx: async_channel::Sender<Msg>,
}

/// What the broker needs besides the state.
struct Actor {
    state: PeerState,
    screen: Screen,
    disk: Disk,
    names: Names,
    /// Who we are, for the notices we send.
    origin: Origin,
    /// The registry trusted now: whose namespace names are in ([`Context::namespace`]).
    trusted: TrustedRegistry,
    /// The task that reopens away chats and sends what was kept (`resume.rs`).
    resume: async_channel::Sender<resume::Job>,
}

impl Broker {
    /// Starts the broker task, owning `state`. Its events go to `screen`, its pin files to
    /// `disk`, the names of open chats to `names` (for Tab completion); it speaks as
    /// `origin` and takes names in the namespace of the registry `trusted` holds.
    pub fn start(
        state: PeerState,
        screen: Screen,
        disk: Disk,
        names: Names,
        (origin, trusted): (Origin, TrustedRegistry),
        resume: async_channel::Sender<resume::Job>,
    ) -> Broker {
        let (tx, rx) = async_channel::bounded(256);
        let actor = Actor {
            state,
            screen,
            disk,
            names,
            origin,
            trusted,
            resume,
        };
        runtime::spawn(actor.run(rx));
        Broker { tx }
    }

    /// Runs `f` on the state and returns what it returns; `None` only if the broker has
    /// stopped.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut PeerState, &Context, &mut Vec<Effect>) -> T + Send + 'static,
    ) -> Option<T> {
        let (done, answer) = oneshot::channel();
        let call: Call = Box::new(move |state, cx, fx| {
            let _ = done.send(f(state, cx, fx));
        });
        self.tx.send(Msg::Call(call)).await.ok()?;
        answer.await.ok()
    }

    /// Opens a frame sealed in one of our chats and says how to acknowledge it.
    pub async fn sealed(&self, frame: Vec<u8>) -> Result<Acknowledge, Refusal> {
        let (done, answer) = oneshot::channel();
        let sent = self.tx.send(Msg::Sealed { frame, done }).await;
        match sent {
            Ok(()) => answer.await.unwrap_or(Err(Refusal::UnknownSession)),
            Err(_) => Err(Refusal::UnknownSession),
        }
    }
}

impl Actor {
    async fn run(mut self, rx: async_channel::Receiver<Msg>) {
        loop {
            let next = match self.state.next_deadline() {
                None => rx.recv().await,
                Some(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    match runtime::timeout(wait, rx.recv()).await {
                        Ok(next) => next,
                        Err(_) => {
                            self.expire();
                            continue;
                        }
                    }
                }
            };
            let Ok(msg) = next else { break };
            // Whatever is past due goes first, so no message ever sees an expired record.
            self.expire();
            self.handle(msg);
        }
    }

    fn context(&self, screen_room: bool) -> Context {
        Context {
            now: Instant::now(),
            utc: chrono::Utc::now(),
            screen_room,
            namespace: Namespace::of(self.trusted.get()),
        }
    }

    fn expire(&mut self) {
        let mut fx = Vec::new();
        self.state.expire(Instant::now(), &mut fx);
        // No frame causes these, and each is the one end of a request that had room when it
        // came: they always show (`perform` pushes without a room check), never merged.
        for effect in fx {
            self.perform(effect);
        }
    }

    fn handle(&mut self, msg: Msg) {
        let mut fx = Vec::new();
        match msg {
            Msg::Call(call) => {
                let cx = self.context(self.screen.has_room());
                call(&mut self.state, &cx, &mut fx);
            }
            Msg::Sealed { frame, done } => {
                let slot = self.screen.reserve();
                let cx = self.context(slot.is_some());
                let opened = self.state.open_sealed(&frame, &cx, &mut fx);
                let acknowledge = match opened {
                    Ok(FromChat::Ack(ack)) => Ok(Acknowledge::Now(ack)),
                    // Shown now, in the place kept for it as it arrived, while its connection
                    // stores it: showing does not wait for the disk. One that showed before
                    // gives its place back.
                    Ok(FromChat::Message(message)) => {
                        let ChatMessage {
                            showing,
                            mut storing,
                        } = *message;
                        // The state takes a message only when told there was room.
                        let place = || slot.expect("a message is taken only with a place for it");
                        match showing {
                            Showing::Now(event) => place().fill(event),
                            Showing::IfNew(event) => storing.then = Some((place(), event.into())),
                            Showing::Not => {}
                        }
                        // Sealed once the line is out: sealing is not the reader's wait.
                        let ok = self.state.seal_ok(storing.ack);
                        Ok(Acknowledge::AfterStoring(Box::new(storing), ok))
                    }
                    // It shows when its turn comes, after those before.
                    Ok(FromChat::Early { peer, seq, message }) => {
                        tracing::debug!("message {seq} from {peer} waits for those before it");
                        let (waiter, turn) = oneshot::channel();
                        // Sealed now, under this chat's keys: it may have closed when the turn
                        // comes.
                        let ok = self.state.seal_ok(message.storing.ack);
                        let held = Held {
                            message,
                            ok,
                            waiter,
                        };
                        self.state.hold((peer, seq), held, cx.now);
                        Ok(Acknowledge::WhenItsTurnComes(turn))
                    }
                    Err(refusal) => Err(refusal),
                };
                let _ = done.send(acknowledge);
            }
        }
        for effect in fx {
            self.perform(effect);
        }
    }

    fn perform(&mut self, effect: Effect) {
        match effect {
            // Events the network causes were admitted by the state only with room; the
            // others are bounded by what the user does.
            Effect::Show(event) => {
                self.names.note(&event.event);
                self.screen.push(event)
            }
            Effect::Write(write) => self.disk.write(write),
            Effect::Tell { to, body } => {
                let origin = self.origin.clone();
                runtime::spawn(async move {
                    let _ = transport::request(to, &origin, new_id(), body).await;
                });
            }
            Effect::ChatsChanged => self.names.set_chatting(self.state.chat_names()),
            // Dropped if the task has more waiting than it takes: the next round reopens
            // and flushes what is left.
            Effect::Flush(peer) => {
                let _ = self.resume.try_send(resume::Job::Flush(peer));
            }
            Effect::AutoAccept(peer) => {
                let _ = self.resume.try_send(resume::Job::AutoAccept(peer));
            }
            // It had room when it came, so it shows now (or keeps the next place, if it shows
            // only if new) even above the screen's room. Its connection stores it; one that is
            // gone (its sender gave up on that try) cannot, and the message is stored all the
            // same, so that a retry of one that has shown is not shown again.
            Effect::Release(Held {
                message,
                ok,
                waiter,
            }) => {
                let ChatMessage {
                    showing,
                    mut storing,
                } = *message;
                match showing {
                    Showing::Now(event) => self.screen.push(event),
                    Showing::IfNew(event) => {
                        storing.then = Some((self.screen.reserve_now(), event.into()))
                    }
                    Showing::Not => {}
                }
                if let Err((storing, _)) = waiter.send((Box::new(storing), ok)) {
                    let (disk, screen) = (self.disk.clone(), self.screen.clone());
                    runtime::spawn(async move {
                        let Storing { record, then, .. } = *storing;
                        let (peer, shown) = (record.peer, then.is_none());
                        match disk.record(record, then).await {
                            Err(why) if shown => {
                                let error = PeerError::ReceivedNotStored { peer, why };
                                screen.show(Event::Error(error)).await;
                            }
                            Err(why) => tracing::warn!("a chat message was not stored: {why}"),
                            Ok(_) => {}
                        }
                    });
                }
            }
        }
    }
}
