//! Open chats: each with its partner's address and key, the chat's keys, our next counter and
//! the window of counters already received from the partner.
//!
//! Every chat message and acknowledgement is sealed and opened here, since the keys and
//! counters are this state: a counter is taken once, so no nonce is ever used twice.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};

use p2p_shared::identity::PublicKey;
use p2p_shared::replay::{ReplayWindow, Stale};
use p2p_shared::seal::{chat_of, ChatKeys};
use p2p_shared::transport::{Origin, Refusal};
use p2p_shared::wire::frame::{ChatId, Kind};
use p2p_shared::wire::SignedEnvelope;
use p2p_shared::{Envelope, MessageId, Outcome, PeerInfo, PeerName, ReplyBody, SealedRequest};

/// One open chat.
struct Chat {
    addr: SocketAddr,
    key: PublicKey,
    keys: ChatKeys,
    /// The counter of our next message.
    next: u64,
    /// The counters of theirs already accepted.
    window: ReplayWindow,
}

/// A chat frame ready to send: where, the bytes, and the counter its acknowledgement names.
pub struct Sealed {
    pub addr: SocketAddr,
    pub frame: Vec<u8>,
    pub counter: u64,
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
}

impl Chats {
    /// Opens a chat with `peer`, in place of any open one.
    pub fn open(&mut self, peer: PeerName, addr: SocketAddr, key: PublicKey, keys: ChatKeys) {
        self.close(&peer);
        self.by_id.insert(keys.id, peer);
        let chat = Chat {
            addr,
            key,
            keys,
            next: 0,
            window: ReplayWindow::default(),
        };
        self.by_name.insert(peer, chat);
    }

    /// Ends the chat with `peer`; false if none was open.
    pub fn close(&mut self, peer: &PeerName) -> bool {
        match self.by_name.remove(peer) {
            Some(chat) => {
                self.by_id.remove(&chat.keys.id);
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, peer: &PeerName) -> bool {
        self.by_name.contains_key(peer)
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
            addr: chat.addr,
            frame: chat.keys.seal(counter, &plaintext),
            counter,
        })
    }

    /// Opens a frame from a partner. Each counter is accepted once, so no acknowledgement is
    /// ever sealed twice under the same nonce.
    pub fn open_frame(&mut self, frame: &[u8]) -> Result<Opened, Refusal> {
        let chat_id = chat_of(frame).ok_or(Refusal::UnknownSession)?;
        let peer = *self.by_id.get(&chat_id).ok_or(Refusal::UnknownSession)?;
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
        let body = ReplyBody {
            re,
            result: outcome,
        };
        let reply = Envelope::new(p2p_shared::wire::new_id(), from, body).encode();
        Some(chat.keys.seal_ack(counter, &reply))
    }

    /// What the reply to our message `counter` to `peer` says: a sealed acknowledgement, or a
    /// refusal signed by the peer's own key (it could not open our frame). `None` if it is no
    /// valid reply from that peer.
    pub fn acknowledged(&self, peer: &PeerName, counter: u64, reply: &[u8]) -> Option<Outcome> {
        let chat = self.by_name.get(peer)?;
        match Kind::of(reply)? {
            Kind::SealedAck => {
                let plaintext = chat.keys.open_ack(counter, reply)?;
                Some(Envelope::<ReplyBody>::decode(&plaintext).ok()?.body.result)
            }
            // A signed reply to a sealed frame can only be a refusal (the peer could not open
            // it). Never a success: the peer signs `ok` to pings too, so a saved one could be
            // played back to fake "delivered"; only the sealed acknowledgement proves that.
            Kind::Signed => {
                let signed = SignedEnvelope::<ReplyBody>::decode(reply).ok()?;
                let valid = signed.envelope.from.key == chat.key && signed.verify();
                let result = signed.envelope.body.result;
                (valid && matches!(result, Outcome::Error { .. })).then_some(result)
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
    use p2p_shared::wire::new_id;
    use p2p_shared::ErrorCode;

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    fn origin(name_: &str, identity: Arc<Identity>) -> Origin {
        Origin {
            name: name(name_),
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

    fn signed_reply(from: &Origin, result: Outcome) -> Vec<u8> {
        let sender = from.sender(Ipv4Addr::LOCALHOST.into());
        let body = ReplyBody { re: None, result };
        Envelope::new(new_id(), sender, body).sign(&from.identity)
    }

    #[test]
    fn only_a_sealed_acknowledgement_proves_delivery() {
        let (mut chats, alice, theirs, bob) = chat_with_bob();
        let bob_origin = origin("bob", bob);
        let sealed = chats
            .seal(&alice, &name("bob"), new_id(), SealedRequest::Disconnect)
            .unwrap();
        // A signed `ok` bob once gave to a ping, played back: not a delivery.
        let ok = signed_reply(&bob_origin, Outcome::Ok);
        assert_eq!(chats.acknowledged(&name("bob"), sealed.counter, &ok), None);
        // A signed refusal from bob's key is an answer...
        let refusal = Outcome::error(ErrorCode::UnknownSession, "no such chat");
        let no = signed_reply(&bob_origin, refusal);
        assert!(matches!(
            chats.acknowledged(&name("bob"), sealed.counter, &no),
            Some(Outcome::Error { .. })
        ));
        // ... but not from someone else's key.
        let mallory = origin("bob", Arc::new(Identity::generate()));
        let forged = signed_reply(&mallory, Outcome::error(ErrorCode::Busy, "no"));
        assert_eq!(
            chats.acknowledged(&name("bob"), sealed.counter, &forged),
            None
        );
        // The sealed acknowledgement is the proof.
        let body = ReplyBody {
            re: None,
            result: Outcome::Ok,
        };
        let reply = Envelope::new(
            new_id(),
            bob_origin.sender(Ipv4Addr::UNSPECIFIED.into()),
            body,
        );
        let ack = theirs.seal_ack(sealed.counter, &reply.encode());
        assert_eq!(
            chats.acknowledged(&name("bob"), sealed.counter, &ack),
            Some(Outcome::Ok)
        );
    }

    #[test]
    fn a_frame_opens_once_and_only_in_its_chat() {
        let (mut chats, _, theirs, bob) = chat_with_bob();
        let bob_origin = origin("bob", bob);
        let message = SealedRequest::ChatMessage { text: "hi".into() };
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
        assert!(chats.close(&name("bob")));
        assert!(matches!(
            chats.open_frame(&theirs.seal(6, b"{}")),
            Err(Refusal::UnknownSession)
        ));
    }
}
