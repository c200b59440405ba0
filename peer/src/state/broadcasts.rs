//! Broadcasts and blocking, as state: what a broadcast that arrives does (shown once, passed
//! on), what ours is, and whom `block NAME` means.

use std::net::SocketAddr;

use p2p_shared::broadcast::{Broadcast, MAX_HOPS};
use p2p_shared::identity::PublicKey;
use p2p_shared::wire::new_id;
use p2p_shared::{ErrorCode, Outcome, PeerInfo, PeerName};

use super::flood::Heard;
use super::{Context, Effect, PeerState, Vouch};
use crate::error::PeerError;
use crate::event::{Event, PeerKey};

/// A broadcast to pass on, and the peers it may go to (`flood.rs` picks among them).
#[derive(Debug)]
pub struct Forward {
    pub message: Broadcast,
    pub hops: u8,
    pub to: Vec<SocketAddr>,
}

impl PeerState {
    /// Whether `message` would be new here: the registry is asked about its origin's name
    /// only then.
    pub fn broadcast_may_be_new(&self, message: &Broadcast) -> bool {
        self.flood.may_be_new(message)
    }

    /// A broadcast that `from` passed on to us after `hops` hops: shown if new, and to be
    /// passed on then, unless it has gone as far as a broadcast goes. `vouch` is what the
    /// registry says of its origin's name and key.
    pub fn broadcast_received(
        &mut self,
        from: &PeerInfo,
        (message, hops): (Broadcast, u8),
        vouch: Vouch,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> (Outcome, Option<Forward>) {
        // Not remembered as seen when it cannot be shown: the sender, or another path,
        // brings it again.
        if !cx.screen_room {
            let busy = "the screen is full; send it again in a moment";
            return (Outcome::error(ErrorCode::Busy, busy), None);
        }
        match self.flood.hear(&message, cx.now, cx.utc.timestamp()) {
            Heard::New => {}
            Heard::Invalid(why) => {
                return (
                    Outcome::error(ErrorCode::InvalidRequest, why.to_string()),
                    None,
                )
            }
            // Taken, and dropped: nothing the sender should retry.
            Heard::Repeat | Heard::Blocked | Heard::TooMany => return (Outcome::Ok, None),
        }
        let verified =
            vouch.is_registered() || self.pins.vouches(cx.namespace, &message.name, &message.key);
        let shown = Event::Broadcast {
            peer: message.name,
            key: PeerKey(message.key),
            verified,
            text: message.text.clone(),
        };
        fx.push(Effect::Show(shown.into()));
        let hops = hops.saturating_add(1);
        let forward = (hops < MAX_HOPS).then(|| Forward {
            to: self.flood_targets(&[from.key, message.key]),
            message,
            hops,
        });
        (Outcome::Ok, forward)
    }

    /// Our broadcast of `text`, signed now, and the peers it may go to.
    pub fn broadcast_sending(&mut self, text: String, cx: &Context) -> Forward {
        let me = &self.origin;
        let at = cx.utc.timestamp();
        let message = Broadcast::sign(&me.identity, me.name, new_id(), at, text);
        self.flood.sent(&message, cx.now);
        Forward {
            to: self.flood_targets(&[]),
            message,
            hops: 0,
        }
    }

    /// The live peers of the book and our chat partners, but not `except`.
    fn flood_targets(&self, except: &[PublicKey]) -> Vec<SocketAddr> {
        let mut to: Vec<(PublicKey, SocketAddr)> = self.book.live();
        for partner in self.chats.list() {
            if !to.iter().any(|(key, _)| *key == partner.key) {
                to.push((partner.key, partner.addr));
            }
        }
        to.into_iter()
            .filter(|(key, _)| !except.contains(key))
            .map(|(_, addr)| addr)
            .collect()
    }

    /// `block NAME`: the keys NAME means here (the one pinned for it, those the book has
    /// under that name, our chat partner's) are blocked: their broadcasts and chat requests
    /// are dropped from now on.
    pub fn block(
        &mut self,
        name: PeerName,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> Result<usize, PeerError> {
        let mut keys: Vec<PublicKey> = self.book.keys_named(&name);
        keys.extend(self.pins.pinned(cx.namespace, &name));
        keys.extend(self.chats.key(&name));
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return Err(PeerError::NoKeyFor { peer: name });
        }
        fx.push(Effect::Write(self.flood.block(name, &keys)));
        Ok(keys.len())
    }

    /// `unblock NAME`: how many keys were unblocked.
    pub fn unblock(&mut self, name: PeerName, fx: &mut Vec<Effect>) -> Result<usize, PeerError> {
        let (count, write) = self.flood.unblock(&name);
        if count == 0 {
            return Err(PeerError::NotBlocked { peer: name });
        }
        fx.push(Effect::Write(write));
        Ok(count)
    }

    /// Whether chat requests from `key` are dropped.
    pub fn is_blocked(&self, key: &PublicKey) -> bool {
        self.flood.is_blocked(key)
    }
}
