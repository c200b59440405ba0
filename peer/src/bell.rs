//! The terminal bell: which events ring it, and whether it is on.
//!
//! A new message or chat request rings the bell (BEL, `\x07`) so that a person looking at
//! another window hears of it; a message from the partner of the current conversation
//! (`talk PEER`) does not, since the user is typing to it already. Only a person at a
//! terminal hears it: in pipes and with `--json` the screen has no bell at all, so a script's
//! output never holds a BEL. `--bell on|off` sets it at start, `bell on|off` while running.
//! The command loop sets it and the conversation, the screen thread reads both: one small
//! shared value rather than a message, since the screen asks at every event it writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use p2p_shared::PeerName;

use crate::event::Event;

/// The bell byte.
pub const BEL: char = '\x07';

/// Whether the bell is on, and who the current conversation is with; cheap to clone.
#[derive(Clone, Debug)]
pub struct Bell {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    on: AtomicBool,
    talking: Mutex<Option<PeerName>>,
}

impl Bell {
    pub fn new(on: bool) -> Bell {
        Bell {
            inner: Arc::new(Inner {
                on: AtomicBool::new(on),
                talking: Mutex::new(None),
            }),
        }
    }

    pub fn set(&self, on: bool) {
        self.inner.on.store(on, Ordering::Relaxed);
    }

    pub fn is_on(&self) -> bool {
        self.inner.on.load(Ordering::Relaxed)
    }

    /// The current conversation changed (`talk PEER`, `talk`).
    pub fn talking(&self, with: Option<PeerName>) {
        *self.inner.talking.lock().unwrap_or_else(|p| p.into_inner()) = with;
    }

    /// Whether showing `event` rings the bell.
    pub fn rings_for(&self, event: &Event) -> bool {
        if !self.is_on() {
            return false;
        }
        match event {
            Event::Message { peer, .. } => {
                let talking = self.inner.talking.lock().unwrap_or_else(|p| p.into_inner());
                *talking != Some(*peer)
            }
            Event::RequestArrived { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(from: &str) -> Event {
        Event::Message {
            peer: from.parse().unwrap(),
            text: "hi".into(),
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_message_rings_unless_typing_to_its_sender_or_off() {
        let bell = Bell::new(true);
        assert!(bell.rings_for(&message("bob")));
        bell.talking(Some("bob".parse().unwrap()));
        assert!(!bell.rings_for(&message("bob")), "typing to bob already");
        assert!(bell.rings_for(&message("carol")));
        bell.talking(None);
        assert!(bell.rings_for(&message("bob")));
        bell.set(false);
        assert!(!bell.rings_for(&message("carol")));
    }

    #[test]
    fn nothing_else_rings() {
        let bell = Bell::new(true);
        let delivered = Event::Delivered {
            peer: "bob".parse().unwrap(),
        };
        assert!(!bell.rings_for(&delivered));
    }
}
