//! The request/accept workflow and the chats, driven as the broker would, with a clock of
//! the test's own: no runtime, no network, no waiting. This file holds the fixtures; the tests
//! are in `requests.rs` (how each request ends), `ids.rs` (which command each event answers)
//! `full_screen.rs` (what a peer whose user is not reading takes and refuses), `order.rs`
//! (chat messages that arrive out of order) and `reopen.rs` (away chats the peer reopens).

mod full_screen;
mod ids;
mod order;
mod reopen;
mod requests;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use p2p_shared::handshake::{Initiator, Recipient, Responder};
use p2p_shared::identity::Identity;
use p2p_shared::seal::ChatKeys;
use p2p_shared::transport::Origin;
use p2p_shared::wire::new_id;
use p2p_shared::{
    Answer, Envelope, ErrorCode, MessageId, Outcome, PeerInfo, PeerName, PeerRequest, ReplyBody,
    SealedRequest,
};

use super::*;
use crate::error::PeerError;
use crate::event::{Event, PeerKey, Withdrawal};
use crate::known::{KnownKeys, Pin};
use crate::state::book::Book;
use crate::state::conversations::Conversations;
use crate::state::flood::Flood;
use crate::state::pins::Namespace;

const TTL: Duration = Duration::from_secs(60);

fn name(s: &str) -> PeerName {
    s.parse().unwrap()
}

/// A peer called `who` on port `port`, with a fresh key.
struct Someone {
    identity: Identity,
    info: PeerInfo,
}

fn someone(who: &str, port: u16) -> Someone {
    let identity = Identity::generate();
    let info = PeerInfo {
        name: name(who),
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        key: identity.public(),
    };
    Someone { identity, info }
}

/// Alice's state, with nothing pinned.
fn alice() -> PeerState {
    let origin = Origin {
        name: name("alice"),
        ip: Ipv4Addr::UNSPECIFIED.into(),
        port: 40001,
        identity: Arc::new(Identity::generate()),
    };
    PeerState::new(
        origin,
        TTL,
        Kept {
            pins: Pins::new(KnownKeys::empty(), Namespace::Local).0,
            book: Book::empty(Identity::generate().public()),
            flood: Flood::empty(),
            conversations: Conversations::empty(),
        },
    )
}

fn at(now: Instant) -> Context {
    Context {
        now,
        utc: Utc::now(),
        screen_room: true,
        namespace: Namespace::Local,
    }
}

fn shown(fx: &[Effect]) -> Vec<Event> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Show(shown) => Some(shown.event.clone()),
            _ => None,
        })
        .collect()
}

/// `from` asks alice for a chat, and the registry says `vouch` of it.
fn ask_vouched(
    state: &mut PeerState,
    from: &Someone,
    vouch: Vouch,
    now: Instant,
) -> (Outcome, Vec<Event>) {
    let (_, outcome, fx) = ask_for_effects(state, from, vouch, now);
    (outcome, shown(&fx))
}

/// The same: the request's id, the outcome, and every effect.
fn ask_for_effects(
    state: &mut PeerState,
    from: &Someone,
    vouch: Vouch,
    now: Instant,
) -> (MessageId, Outcome, Vec<Effect>) {
    let id = new_id();
    let (_, pattern, handshake) = Initiator::start(&from.identity, id, Recipient::Unknown(None));
    let body = PeerRequest::ChatRequest { pattern, handshake };
    let mut fx = Vec::new();
    let request = Envelope::new(id, from.info.clone(), body);
    let outcome = state.signed_request(request, Some(vouch), &at(now), &mut fx);
    (id, outcome, fx)
}

/// The requesters told how their request ended, and what: `(to, answer)` of each `chat_answer`.
fn told(fx: &[Effect]) -> Vec<(std::net::SocketAddr, MessageId, Answer)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Tell {
                to,
                body:
                    PeerRequest::ChatAnswer {
                        request, answer, ..
                    },
            } => Some((*to, *request, *answer)),
            _ => None,
        })
        .collect()
}

/// `from` asks alice for a chat; the outcome, and what alice shows.
fn ask(state: &mut PeerState, from: &Someone, cx: &Context) -> (Outcome, Vec<Event>) {
    let id = new_id();
    let (_, pattern, handshake) = Initiator::start(&from.identity, id, Recipient::Unknown(None));
    let request = Envelope::new(
        id,
        from.info.clone(),
        PeerRequest::ChatRequest { pattern, handshake },
    );
    let mut fx = Vec::new();
    let outcome = state.signed_request(request, Some(Vouch::NoRegistry), cx, &mut fx);
    (outcome, shown(&fx))
}

/// Alice's side of a new chat request to `to`, and its message 1.
fn start(
    state: &PeerState,
    to: &Someone,
) -> (
    MessageId,
    Initiator,
    p2p_shared::handshake::HandshakeMessage,
) {
    let id = new_id();
    let recipient = Recipient::Unknown(Some(to.info.name));
    let (initiator, _, first) = Initiator::start(&state.origin.identity, id, recipient);
    (id, initiator, first)
}

/// Alice's request to bob, as far as bob's `pending` reply: its id and alice's share.
fn request_to(state: &mut PeerState, bob: &Someone, now: Instant) -> (MessageId, Vec<Event>) {
    let (id, initiator, _) = start(state, bob);
    state.request_sent(id, bob.info.addr, initiator, None);
    let mut fx = Vec::new();
    state.request_pending(id, bob.info.clone(), (TTL, false), &at(now), &mut fx);
    (id, shown(&fx))
}

/// Opens a chat between alice and `bob` the way bob's acceptance does; bob's keys.
fn open_chat_with(state: &mut PeerState, bob: &Someone, now: Instant) -> ChatKeys {
    open_chat_showing(state, bob, now).0
}

/// The same, with the effects of the acceptance.
fn open_chat_showing(
    state: &mut PeerState,
    bob: &Someone,
    now: Instant,
) -> (ChatKeys, Vec<Effect>) {
    let (id, initiator, first) = start(state, bob);
    state.request_sent(id, bob.info.addr, initiator, None);
    let mut fx = Vec::new();
    state.request_pending(id, bob.info.clone(), (TTL, false), &at(now), &mut fx);
    let (keys, second) = accept_as(state, bob, id, &first);
    let (outcome, more) = answer_as(state, bob, (id, Answer::Accepted, Some(second)), now);
    assert_eq!(outcome, Outcome::Ok);
    fx.extend(more);
    (keys, fx)
}

/// A chat with `bob` that was open and is away now (its partner stopped answering).
fn away_chat_with(state: &mut PeerState, bob: &Someone, now: Instant) {
    let chat = open_chat_with(state, bob, now).id;
    let mut fx = Vec::new();
    assert!(state.away_if(&bob.info.name, chat, &mut fx));
}

/// Bob's side of accepting alice's request `id` whose message 1 is `first`: his keys, and
/// message 2.
fn accept_as(
    state: &PeerState,
    bob: &Someone,
    id: MessageId,
    first: &p2p_shared::handshake::HandshakeMessage,
) -> (ChatKeys, p2p_shared::handshake::HandshakeMessage) {
    let alice_key = state.origin.identity.public();
    let (pattern, me) = (p2p_shared::handshake::Pattern::IX, &bob.identity);
    Responder::accept(me, &bob.info.name, id, pattern, first, &alice_key).unwrap()
}

/// `from`'s signed answer to alice's request `id`, as alice takes it: her reply and what
/// she does.
fn answer_as(
    state: &mut PeerState,
    from: &Someone,
    (id, answer, handshake): (
        MessageId,
        Answer,
        Option<p2p_shared::handshake::HandshakeMessage>,
    ),
    now: Instant,
) -> (Outcome, Vec<Effect>) {
    let body = PeerRequest::ChatAnswer {
        request: id,
        answer,
        handshake,
    };
    let envelope = Envelope::new(new_id(), from.info.clone(), body);
    let mut fx = Vec::new();
    let outcome = state.signed_request(envelope, None, &at(now), &mut fx);
    (outcome, fx)
}

/// What alice's acknowledgement `ack` of bob's message `counter` says.
/// Bob's message `text` with `id` in his place `seq`, sealed under `counter`; `again` if he
/// sends it again.
fn sealed_message(
    (bob, keys): (&Someone, &ChatKeys),
    (counter, seq): (u64, u64),
    (id, text): (MessageId, &str),
    again: bool,
) -> Vec<u8> {
    let body = SealedRequest::ChatMessage {
        text: text.into(),
        seq,
        again,
    };
    keys.seal(counter, &Envelope::new(id, bob.info.clone(), body).encode())
}

fn outcome_of(bob: &ChatKeys, counter: u64, ack: &[u8]) -> Outcome {
    let json = bob
        .open_ack(counter, ack)
        .expect("an acknowledgement of that message");
    Envelope::<ReplyBody>::decode(&json).unwrap().body.result
}

trait Code {
    fn code(&self) -> Option<ErrorCode>;
}

impl Code for Outcome {
    fn code(&self) -> Option<ErrorCode> {
        match self {
            Outcome::Error { code, .. } => Some(*code),
            _ => None,
        }
    }
}
