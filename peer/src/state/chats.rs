//! Open chats: each with its partner's address and key, the chat's keys, our next counter and
//! the window of counters already received from the partner.
//!
//! Every chat message and acknowledgement is sealed and opened here, since the keys and
//! counters are this state: a counter is taken once, so no nonce is ever used twice.
//!
//! The keys of the last [`ENDED_KEPT`] chats that ended here are kept, only to open what
//! arrives for them: a frame its partner sealed before it heard of the end (a goodbye that
//! crossed a liveness check) is refused as [`Refusal::Ended`], an ordinary event, and told
//! apart from one that does not open (altered, or made up with a chat id seen on the wire) or
//! opened before (a replay), which stay warnings. Nothing is ever sealed with them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use p2p_shared::identity::PublicKey;
use p2p_shared::replay::{ReplayWindow, Stale};
use p2p_shared::seal::{chat_of, ChatKeys};
use p2p_shared::transport::{Origin, Refusal};
use p2p_shared::wire::frame::{ChatId, Kind};
use p2p_shared::wire::SignedEnvelope;
use p2p_shared::{
    Envelope, ErrorCode, MessageId, Outcome, PeerInfo, PeerName, ReplyBody, SealedRequest,
};

use super::order::{Reorder, Sequencer, ShownIds, Turn};
use super::sealed::{Acked, Sealed, SentFrame};
use super::{Held, Showing};

/// One open chat.
struct Chat {
    addr: SocketAddr,
    key: PublicKey,
    keys: ChatKeys,
    /// The counter of our next message.
    next: u64,
    /// The counters of theirs already accepted.
    window: ReplayWindow,
    /// Our chat request whose acceptance opened this chat, if one did: the accepter may send
    /// that acceptance again when our reply to it was lost.
    opened_by: Option<MessageId>,
    /// Their chat request whose acceptance by us opened this chat, if one did.
    accepted: Option<MessageId>,
    /// The places of our chat messages in this chat (`order.rs`).
    sequencer: Sequencer,
    /// Their chat messages held until those before them show.
    reorder: Reorder<Held>,
}

/// How many ended chats keep their keys for [`Refusal::Ended`]: only this peer's chats end
/// here, one at a time, and a late frame comes within `--retry-for` of the end; 64 covers a
/// user who ends many chats at once (`exit` ends them all) at a few hundred bytes each.
pub const ENDED_KEPT: usize = 64;

/// A chat that ended here: what opens its partner's late frames, and which it sent already.
struct Ended {
    keys: ChatKeys,
    window: ReplayWindow,
}

/// A frame that opened in one of our chats: from whom, under which counter, saying what (or
/// why what it says cannot be read).
pub struct Opened {
    pub peer: PeerName,
    pub counter: u64,
    pub request: Result<Envelope<SealedRequest>, p2p_shared::wire::DecodeError>,
}

#[derive(Default)]
pub struct Chats {
    by_name: BTreeMap<PeerName, Chat>,
    by_id: HashMap<ChatId, PeerName>,
    /// The chats that ended last, oldest first, at most [`ENDED_KEPT`].
    ended: VecDeque<Ended>,
    /// The messages shown last, by id, over every chat (`order.rs`).
    shown: ShownIds,
}

impl Chats {
    /// Opens a chat with `peer`, in place of any open one: returns what that one held.
    pub fn open(
        &mut self,
        peer: PeerName,
        addr: SocketAddr,
        key: PublicKey,
        keys: ChatKeys,
    ) -> Vec<Held> {
        let held = self.close(&peer).unwrap_or_default();
        self.by_id.insert(keys.id, peer);
        let chat = Chat {
            addr,
            key,
            keys,
            next: 0,
            window: ReplayWindow::default(),
            opened_by: None,
            accepted: None,
            sequencer: Sequencer::default(),
            reorder: Reorder::default(),
        };
        self.by_name.insert(peer, chat);
        held
    }

    /// Notes that our request `request` opened the chat with `peer`.
    pub fn opened_by(&mut self, peer: &PeerName, request: MessageId) {
        if let Some(chat) = self.by_name.get_mut(peer) {
            chat.opened_by = Some(request);
        }
    }

    /// Notes that our acceptance of their request `request` opened the chat with `peer`.
    pub fn accepted(&mut self, peer: &PeerName, request: MessageId) {
        if let Some(chat) = self.by_name.get_mut(peer) {
            chat.accepted = Some(request);
        }
    }

    /// Whether the chat with `peer`, whose key is `key`, is open and was opened by our
    /// acceptance of their request `request`.
    pub fn was_accepted(&self, peer: &PeerName, key: &PublicKey, request: MessageId) -> bool {
        self.by_name
            .get(peer)
            .is_some_and(|chat| chat.key == *key && chat.accepted == Some(request))
    }

    /// Whether the chat with `peer`, whose key is `key`, is open and was opened by the
    /// acceptance of our request `request`.
    pub fn was_opened_by(&self, peer: &PeerName, key: &PublicKey, request: MessageId) -> bool {
        self.by_name
            .get(peer)
            .is_some_and(|chat| chat.key == *key && chat.opened_by == Some(request))
    }

    /// Ends the chat with `peer`: the messages it held, to show now (they came while it was
    /// open); `None` if none was open.
    pub fn close(&mut self, peer: &PeerName) -> Option<Vec<Held>> {
        match self.by_name.remove(peer) {
            Some(mut chat) => {
                let held = self.showing(chat.reorder.drain());
                self.by_id.remove(&chat.keys.id);
                if self.ended.len() == ENDED_KEPT {
                    self.ended.pop_front();
                }
                self.ended.push_back(Ended {
                    keys: chat.keys,
                    window: chat.window,
                });
                Some(held)
            }
            None => None,
        }
    }

    /// The place in our chat with `peer` of our message `id`: the one it was given, or the
    /// next (`order.rs`). `None` if no chat with `peer` is open.
    pub fn place_of(&mut self, peer: &PeerName, id: MessageId) -> Option<u64> {
        let chat = self.by_name.get_mut(peer)?;
        Some(chat.sequencer.place_of(id))
    }

    /// Where `peer`'s message `seq` stands in its chat's order.
    pub fn turn(&self, peer: &PeerName, seq: u64) -> Turn {
        match self.by_name.get(peer) {
            Some(chat) => chat.reorder.turn(seq),
            None => Turn::Full,
        }
    }

    /// `peer`'s message `seq`, the next, shows: the held ones that follow it, in order.
    pub fn show(&mut self, peer: &PeerName, seq: u64) -> Vec<Held> {
        let held = match self.by_name.get_mut(peer) {
            Some(chat) => chat.reorder.show(seq),
            None => Vec::new(),
        };
        self.showing(held)
    }

    /// What shows of message `id`, whose turn has come: nothing if it showed lately (a retry,
    /// or sent again in a chat that reopened: then it is only stored); a first try shows now,
    /// and is remembered as shown; one sent again is left to the history, and remembered only
    /// if a first try of it shows later (so one whose store fails shows when a retry is
    /// stored).
    pub fn settle(&mut self, id: MessageId, showing: Showing) -> Showing {
        match showing {
            Showing::Now(event) if self.shown.first_time(id) => Showing::Now(event),
            Showing::IfNew(event) if !self.shown.contains(id) => Showing::IfNew(event),
            _ => Showing::Not,
        }
    }

    /// Whether message `id` showed lately (one of the last 1,024 shown).
    pub fn shown_before(&self, id: MessageId) -> bool {
        self.shown.contains(id)
    }

    /// The held messages `held`, whose turn has come, settled as [`Chats::settle`] says.
    fn showing(&mut self, mut held: Vec<Held>) -> Vec<Held> {
        for one in &mut held {
            let id = one.message.storing.record.id;
            let showing = std::mem::replace(&mut one.message.showing, Showing::Not);
            one.message.showing = self.settle(id, showing);
        }
        held
    }

    /// Holds `peer`'s early message `seq` from `now`: returns an earlier try of it, replaced.
    pub fn hold(&mut self, peer: &PeerName, seq: u64, held: Held, now: Instant) -> Option<Held> {
        let chat = self.by_name.get_mut(peer)?;
        chat.reorder.hold(seq, held, now)
    }

    /// Gives up on the gaps that held messages up too long: what shows now, in order.
    pub fn expire_holds(&mut self, now: Instant) -> Vec<Held> {
        let mut released = Vec::new();
        for chat in self.by_name.values_mut() {
            released.extend(chat.reorder.expire(now));
        }
        self.showing(released)
    }

    /// When the next hold ends, if a message is held.
    pub fn next_hold_deadline(&self) -> Option<Instant> {
        self.by_name
            .values()
            .filter_map(|chat| chat.reorder.deadline())
            .min()
    }

    pub fn contains(&self, peer: &PeerName) -> bool {
        self.by_name.contains_key(peer)
    }

    /// The chat open with `peer`, by its id: a chat opened again, even with the same
    /// partner, has another.
    pub fn id(&self, peer: &PeerName) -> Option<ChatId> {
        self.by_name.get(peer).map(|chat| chat.keys.id)
    }

    /// The key of the partner in the chat with `peer`.
    pub fn key(&self, peer: &PeerName) -> Option<PublicKey> {
        self.by_name.get(peer).map(|chat| chat.key)
    }

    /// Every open chat, sorted by name.
    pub fn list(&self) -> Vec<PeerInfo> {
        self.by_name
            .iter()
            .map(|(name, chat)| PeerInfo {
                name: *name,
                addr: chat.addr,
                key: chat.key,
            })
            .collect()
    }

    /// The same, each with the chat's id.
    pub fn list_by_id(&self) -> Vec<(PeerInfo, ChatId)> {
        let ids = self.by_name.values().map(|chat| chat.keys.id);
        self.list().into_iter().zip(ids).collect()
    }

    pub fn names(&self) -> impl Iterator<Item = &PeerName> {
        self.by_name.keys()
    }

    /// Seals `body` as our next message in the chat with `peer`, as message `id`. Inside a
    /// chat the sender is known by its keys, so `from.addr` carries no address.
    pub fn seal(
        &mut self,
        origin: &Origin,
        peer: &PeerName,
        id: MessageId,
        body: SealedRequest,
    ) -> Option<Sealed> {
        let chat = self.by_name.get_mut(peer)?;
        let counter = chat.next;
        chat.next += 1;
        let from = origin.sender(Ipv4Addr::UNSPECIFIED.into());
        let plaintext = Envelope::new(id, from, body).encode();
        Some(Sealed {
            from: origin.source(),
            addr: chat.addr,
            frame: chat.keys.seal(counter, &plaintext),
            chat: chat.keys.id,
            counter,
        })
    }

    /// Opens a frame from a partner. Each counter is accepted once, so no acknowledgement is
    /// ever sealed twice under the same nonce.
    pub fn open_frame(&mut self, frame: &[u8]) -> Result<Opened, Refusal> {
        let chat_id = chat_of(frame).ok_or(Refusal::UnknownSession)?;
        let Some(&peer) = self.by_id.get(&chat_id) else {
            return Err(self.refuse_unopened(&chat_id, frame));
        };
        let chat = self.by_name.get_mut(&peer).ok_or(Refusal::UnknownSession)?;
        let (counter, plaintext) = chat.keys.open(frame).ok_or(Refusal::UnknownSession)?;
        if !chat.window.accept(counter) {
            return Err(Refusal::Stale(Stale::Replayed));
        }
        Ok(Opened {
            peer,
            counter,
            request: Envelope::decode_request(&plaintext),
        })
    }

    /// Why a frame of chat `id`, which is not open, is refused: [`Refusal::Ended`] if it
    /// opens with the keys of a chat that ended here under a counter not seen before, else
    /// as a frame of no session (or a replay). Whether a chat of an unknown id ended before
    /// this peer started, long ago, or never was cannot be told: that stays a warning.
    fn refuse_unopened(&mut self, id: &ChatId, frame: &[u8]) -> Refusal {
        let Some(ended) = self.ended.iter_mut().find(|e| e.keys.id == *id) else {
            return Refusal::UnknownSession;
        };
        match ended.keys.open(frame) {
            Some((counter, _)) if ended.window.accept(counter) => Refusal::Ended,
            Some(_) => Refusal::Stale(Stale::Replayed),
            None => Refusal::UnknownSession,
        }
    }

    /// The sealed acknowledgement of `peer`'s message `counter`, saying `outcome` about the
    /// request `re`.
    pub fn seal_ack(
        &self,
        origin: &Origin,
        peer: &PeerName,
        counter: u64,
        re: Option<MessageId>,
        outcome: Outcome,
    ) -> Option<Vec<u8>> {
        let chat = self.by_name.get(peer)?;
        let from = origin.sender(Ipv4Addr::UNSPECIFIED.into());
        let body = ReplyBody::new(re, outcome);
        let reply = Envelope::new(p2p_shared::wire::new_id(), from, body).encode();
        Some(chat.keys.seal_ack(counter, &reply))
    }

    /// What the reply to our frame `sent` to `peer` says: a sealed acknowledgement, or a
    /// refusal signed by the peer's own key (it could not open our frame), which must name
    /// that frame; or that the frame's chat has ended since.
    pub fn acknowledged(&self, peer: &PeerName, sent: SentFrame, reply: &[u8]) -> Acked {
        match self.by_name.get(peer) {
            Some(chat) if chat.keys.id == sent.chat => {
                Self::answer(chat, sent, reply).map_or(Acked::Invalid, Acked::Answer)
            }
            _ => Acked::ChatEnded,
        }
    }

    fn answer(chat: &Chat, sent: SentFrame, reply: &[u8]) -> Option<Outcome> {
        let SentFrame {
            counter, digest, ..
        } = sent;
        match Kind::of(reply)? {
            Kind::SealedAck => {
                let plaintext = chat.keys.open_ack(counter, reply)?;
                Some(Envelope::<ReplyBody>::decode(&plaintext).ok()?.body.result)
            }
            // A signed reply to a sealed frame can only be a refusal (the peer could not open
            // it). Never a success: the peer signs `ok` to pings too, so a saved one could be
            // played back to fake "delivered"; only the sealed acknowledgement proves that.
            // And it must name our frame: a refusal the peer signed for another frame (one an
            // attacker sent it with our chat id and counter) must not close our chat. Only a
            // `busy` sent before reading names none.
            Kind::Signed => {
                let signed = SignedEnvelope::<ReplyBody>::decode(reply).ok()?;
                let valid = signed.envelope.from.key == chat.key && signed.verify();
                let body = signed.envelope.body;
                let ours = match (&body.result, body.re_digest) {
                    (_, Some(named)) => named == digest,
                    (Outcome::Error { code, .. }, None) => *code == ErrorCode::Busy,
                    _ => false,
                };
                let refusal = matches!(body.result, Outcome::Error { .. });
                (valid && ours && refusal).then_some(body.result)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use p2p_shared::identity::Identity;
    use p2p_shared::wire::{new_id, RequestDigest};

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    fn origin(name_: &str, identity: Arc<Identity>) -> Origin {
        Origin {
            name: name(name_),
            ip: Ipv4Addr::UNSPECIFIED.into(),
            port: 40001,
            identity,
        }
    }

    /// Alice's chats with bob open, and bob's keys.
    fn chat_with_bob() -> (Chats, Origin, ChatKeys, Arc<Identity>) {
        let (ours, theirs) = ChatKeys::pair();
        let bob = Arc::new(Identity::generate());
        let mut chats = Chats::default();
        let addr = "127.0.0.1:40002".parse().unwrap();
        chats.open(name("bob"), addr, bob.public(), ours);
        let alice = origin("alice", Arc::new(Identity::generate()));
        (chats, alice, theirs, bob)
    }

    fn signed_reply(from: &Origin, digest: Option<RequestDigest>, result: Outcome) -> Vec<u8> {
        let sender = from.sender(Ipv4Addr::LOCALHOST.into());
        let body = ReplyBody {
            re: None,
            re_digest: digest,
            result,
        };
        Envelope::new(new_id(), sender, body).sign(&from.identity)
    }

    #[test]
    fn only_a_sealed_acknowledgement_proves_delivery() {
        let (mut chats, alice, theirs, bob) = chat_with_bob();
        let bob_origin = origin("bob", bob);
        let sealed = chats
            .seal(&alice, &name("bob"), new_id(), SealedRequest::Disconnect)
            .unwrap();
        let sent = sealed.sent();
        let ours = Some(sent.digest);
        // A signed `ok` bob once gave to a ping, played back: not a delivery.
        let ok = signed_reply(&bob_origin, ours, Outcome::Ok);
        assert_eq!(chats.acknowledged(&name("bob"), sent, &ok), Acked::Invalid);
        // A signed refusal from bob's key, naming our frame, is an answer...
        let refusal = Outcome::error(ErrorCode::UnknownSession, "no such chat");
        let no = signed_reply(&bob_origin, ours, refusal.clone());
        assert!(matches!(
            chats.acknowledged(&name("bob"), sent, &no),
            Acked::Answer(Outcome::Error { .. })
        ));
        // ... but not one naming another frame (an attacker's, with our chat id and
        // counter), or none...
        let elsewhere = Some(RequestDigest::of(b"an attacker's frame"));
        let swapped = signed_reply(&bob_origin, elsewhere, refusal.clone());
        assert_eq!(
            chats.acknowledged(&name("bob"), sent, &swapped),
            Acked::Invalid
        );
        let unnamed = signed_reply(&bob_origin, None, refusal);
        assert_eq!(
            chats.acknowledged(&name("bob"), sent, &unnamed),
            Acked::Invalid
        );
        // (bar a `busy` sent before reading, which names nothing)
        let busy = signed_reply(&bob_origin, None, Outcome::error(ErrorCode::Busy, "later"));
        assert!(matches!(
            chats.acknowledged(&name("bob"), sent, &busy),
            Acked::Answer(_)
        ));
        // ... nor from someone else's key.
        let mallory = origin("bob", Arc::new(Identity::generate()));
        let forged = signed_reply(&mallory, ours, Outcome::error(ErrorCode::Busy, "no"));
        assert_eq!(
            chats.acknowledged(&name("bob"), sent, &forged),
            Acked::Invalid
        );
        // The sealed acknowledgement is the proof.
        let body = ReplyBody::new(None, Outcome::Ok);
        let reply = Envelope::new(
            new_id(),
            bob_origin.sender(Ipv4Addr::UNSPECIFIED.into()),
            body,
        );
        let ack = theirs.seal_ack(sealed.counter, &reply.encode());
        assert_eq!(
            chats.acknowledged(&name("bob"), sent, &ack),
            Acked::Answer(Outcome::Ok)
        );
    }

    #[test]
    fn a_reply_from_a_chat_that_has_ended_does_not_touch_the_chat_open_now() {
        let (mut chats, alice, theirs, bob) = chat_with_bob();
        let bob_origin = origin("bob", bob.clone());
        let sealed = chats
            .seal(&alice, &name("bob"), new_id(), SealedRequest::Keepalive)
            .unwrap();
        let sent = sealed.sent();
        // While the frame is on its way, the chat with bob ends and opens again: new keys.
        let addr = "127.0.0.1:40002".parse().unwrap();
        let (reopened, _) = ChatKeys::pair();
        chats.open(name("bob"), addr, bob.public(), reopened);
        // Bob's refusal of the old frame (he restarted, say), signed by his key and naming
        // it, is about the chat that ended: it must not end the new one.
        let refusal = Outcome::error(ErrorCode::UnknownSession, "no such chat");
        let no = signed_reply(&bob_origin, Some(sent.digest), refusal);
        assert_eq!(
            chats.acknowledged(&name("bob"), sent, &no),
            Acked::ChatEnded
        );
        // Nor does his acknowledgement under the old keys count in the new chat.
        let reply = Envelope::new(
            new_id(),
            bob_origin.sender(Ipv4Addr::UNSPECIFIED.into()),
            ReplyBody::new(None, Outcome::Ok),
        );
        let ack = theirs.seal_ack(sealed.counter, &reply.encode());
        assert_eq!(
            chats.acknowledged(&name("bob"), sent, &ack),
            Acked::ChatEnded
        );
        // And with no chat at all, the same.
        chats.close(&name("bob"));
        assert_eq!(
            chats.acknowledged(&name("bob"), sent, &ack),
            Acked::ChatEnded
        );
    }

    #[test]
    fn a_frame_opens_once_and_only_in_its_chat() {
        let (mut chats, _, theirs, bob) = chat_with_bob();
        let bob_origin = origin("bob", bob);
        let message = SealedRequest::ChatMessage {
            text: "hi".into(),
            seq: 1,
            again: false,
        };
        let envelope = Envelope::new(
            new_id(),
            bob_origin.sender(Ipv4Addr::UNSPECIFIED.into()),
            message,
        );
        let frame = theirs.seal(5, &envelope.encode());
        let opened = chats.open_frame(&frame).unwrap();
        assert_eq!((opened.peer, opened.counter), (name("bob"), 5));
        assert_eq!(opened.request.unwrap().body, envelope.body);
        assert!(matches!(
            chats.open_frame(&frame),
            Err(Refusal::Stale(Stale::Replayed))
        ));
        assert!(chats.close(&name("bob")).is_some());
        assert!(matches!(
            chats.open_frame(&theirs.seal(6, b"{}")),
            Err(Refusal::Ended)
        ));
    }

    #[test]
    fn a_late_frame_of_an_ended_chat_is_told_from_an_altered_or_replayed_one() {
        let (mut chats, _, theirs, _) = chat_with_bob();
        let first = theirs.seal(1, b"{}");
        chats.open_frame(&first).unwrap();
        let late = theirs.seal(2, b"{}");
        assert!(chats.close(&name("bob")).is_some());
        // Sealed by bob before he heard of the end: an ordinary end, once.
        assert!(matches!(chats.open_frame(&late), Err(Refusal::Ended)));
        for replayed in [&first, &late] {
            assert!(matches!(
                chats.open_frame(replayed),
                Err(Refusal::Stale(Stale::Replayed))
            ));
        }
        // The chat's id with a changed byte after it: altered, or made up from the wire.
        let mut altered = theirs.seal(3, b"{}");
        *altered.last_mut().unwrap() ^= 1;
        assert!(matches!(
            chats.open_frame(&altered),
            Err(Refusal::UnknownSession)
        ));
        // A chat this peer never had: nothing tells where it came from.
        let (_, strangers) = ChatKeys::pair();
        assert!(matches!(
            chats.open_frame(&strangers.seal(1, b"{}")),
            Err(Refusal::UnknownSession)
        ));
    }

    #[test]
    fn only_the_last_ended_chats_keep_their_keys() {
        let mut chats = Chats::default();
        let bob = Identity::generate().public();
        let addr = "127.0.0.1:40002".parse().unwrap();
        let mut first = None;
        for _ in 0..=ENDED_KEPT {
            let (ours, theirs) = ChatKeys::pair();
            chats.open(name("bob"), addr, bob, ours);
            first.get_or_insert(theirs);
        }
        chats.close(&name("bob"));
        assert_eq!(chats.ended.len(), ENDED_KEPT);
        let forgotten = first.unwrap().seal(1, b"{}");
        assert!(matches!(
            chats.open_frame(&forgotten),
            Err(Refusal::UnknownSession)
        ));
    }
}
