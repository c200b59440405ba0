//! The request/accept workflow and the chats, driven as the broker would, with a clock of
//! the test's own: no runtime, no network, no waiting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use p2p_shared::identity::Identity;
use p2p_shared::seal::{ChatKeys, KeyShare, Role, Transcript};
use p2p_shared::transport::Origin;
use p2p_shared::wire::new_id;
use p2p_shared::{
    Answer, Envelope, ErrorCode, MessageId, Outcome, PeerInfo, PeerName, PeerRequest, ReplyBody,
    SealedRequest,
};

use super::*;
use crate::error::PeerError;
use crate::event::{Event, Withdrawal};
use crate::known::{KnownKeys, Pin};

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
        port: 40001,
        identity: Arc::new(Identity::generate()),
    };
    PeerState::new(origin, TTL, Pins::new(KnownKeys::empty()))
}

fn at(now: Instant) -> Context {
    Context {
        now,
        utc: Utc::now(),
        screen_room: true,
    }
}

fn shown(fx: &[Effect]) -> Vec<Event> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Show(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

/// `from` asks alice for a chat; the outcome, and what alice shows.
fn ask(state: &mut PeerState, from: &Someone, cx: &Context) -> (Outcome, Vec<Event>) {
    let share = KeyShare::new().public();
    let request = Envelope::new(
        new_id(),
        from.info.clone(),
        PeerRequest::ChatRequest { share },
    );
    let mut fx = Vec::new();
    let outcome = state.signed_request(request, cx, &mut fx);
    (outcome, shown(&fx))
}

#[test]
fn an_unsolicited_request_pins_nothing_until_the_user_accepts() {
    let mut state = alice();
    let now = Instant::now();
    let (bob, mallory) = (someone("bob", 2), someone("bob", 2));
    // Mallory asks first, as "bob": nothing is pinned, so the real bob is not locked out.
    assert!(matches!(
        ask(&mut state, &mallory, &at(now)).0,
        Outcome::Pending { .. }
    ));
    assert_eq!(state.pins.pin_of(&name("bob"), &mallory.info.key), Pin::New);
    // The real bob's request replaces mallory's record (one per name); alice says yes.
    let (outcome, events) = ask(&mut state, &bob, &at(now));
    assert!(matches!(outcome, Outcome::Pending { .. }));
    assert_eq!(
        events[0],
        Event::RequestWithdrawn {
            peer: name("bob"),
            why: Withdrawal::Replaced
        },
        "the replaced request ends too"
    );
    let mut fx = Vec::new();
    let answering = state.answer(None, true, &at(now), &mut fx).unwrap();
    assert_eq!(answering.answer, Answer::Accepted);
    assert!(
        fx.iter().any(|e| matches!(e, Effect::Write(_))),
        "the pin is saved"
    );
    assert_eq!(state.pins.pin_of(&name("bob"), &bob.info.key), Pin::Known);
    state.answer_sent(answering, Ok(()), &mut fx);
    // From now on another key for bob is refused.
    let (outcome, _) = ask(&mut state, &mallory, &at(now));
    assert!(matches!(
        outcome,
        Outcome::Error {
            code: ErrorCode::KeyChanged,
            ..
        }
    ));
}

#[test]
fn every_request_to_us_ends_in_exactly_one_event() {
    let now = Instant::now();
    let (bob, carol, dave) = (someone("bob", 2), someone("carol", 3), someone("dave", 4));
    let mut state = alice();
    for who in [&bob, &carol, &dave] {
        ask(&mut state, who, &at(now));
    }
    // No: declined, though the requester could not be told.
    let mut fx = Vec::new();
    let no = state
        .answer(Some(name("bob")), false, &at(now), &mut fx)
        .unwrap();
    let unreachable = PeerError::NoLongerWaiting { peer: name("bob") };
    state.answer_sent(no, Err(unreachable.clone()), &mut fx);
    assert_eq!(
        shown(&fx),
        [Event::Error(PeerError::DeclinedUntold {
            peer: name("bob"),
            why: Box::new(unreachable)
        })]
    );
    // Yes, but the answer never arrives: no chat after all.
    let mut fx = Vec::new();
    let yes = state
        .answer(Some(name("carol")), true, &at(now), &mut fx)
        .unwrap();
    assert_eq!(state.chats().len(), 1, "open from the yes on");
    let gone = PeerError::NoLongerWaiting {
        peer: name("carol"),
    };
    state.answer_sent(yes, Err(gone.clone()), &mut fx);
    assert_eq!(shown(&fx), [Event::Error(gone)]);
    assert!(state.chats().is_empty());
    // Nobody answers dave: it expires once, and dave is told.
    assert_eq!(state.next_deadline(), Some(now + TTL));
    let mut fx = Vec::new();
    state.expire(now + TTL, &mut fx);
    state.expire(now + TTL, &mut fx);
    assert_eq!(shown(&fx), [Event::RequestExpired { peer: name("dave") }]);
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Tell { body: PeerRequest::ChatAnswer { answer: Answer::Expired, .. }, to }
            if *to == dave.info.addr
    )));
    let mut fx = Vec::new();
    assert_eq!(
        state.answer(None, true, &at(now + TTL), &mut fx).err(),
        Some(PeerError::NonePending)
    );
}

/// Alice's request to bob, as far as bob's `pending` reply: its id and alice's share.
fn request_to(state: &mut PeerState, bob: &Someone, now: Instant) -> (MessageId, Vec<Event>) {
    let id = new_id();
    let share = KeyShare::new();
    state.request_sent(id, bob.info.addr, share);
    let mut fx = Vec::new();
    state.request_pending(id, bob.info.clone(), TTL, &at(now), &mut fx);
    (id, shown(&fx))
}

#[test]
fn crossed_requests_end_each_in_one_event_when_one_is_accepted() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let (_, sent) = request_to(&mut state, &bob, now);
    assert_eq!(
        sent,
        [Event::RequestSent {
            peer: name("bob"),
            addr: bob.info.addr
        }]
    );
    ask(&mut state, &bob, &at(now));
    let mut fx = Vec::new();
    let yes = state.answer(None, true, &at(now), &mut fx).unwrap();
    state.answer_sent(yes, Ok(()), &mut fx);
    assert_eq!(
        shown(&fx),
        [
            Event::RequestSettled { peer: name("bob") },
            Event::AcceptedChat {
                peer: name("bob"),
                addr: bob.info.addr
            }
        ]
    );
    let snapshot = state.snapshot(now);
    assert!(snapshot.incoming.is_empty() && snapshot.outgoing.is_empty());
    // Nothing is left to time out in the middle of the chat.
    assert_eq!(state.next_deadline(), None);
}

#[test]
fn an_answer_from_someone_else_or_before_the_pending_reply_takes_nothing() {
    let now = Instant::now();
    let (bob, mallory) = (someone("bob", 2), someone("mallory", 9));
    let mut state = alice();
    let id = new_id();
    state.request_sent(id, bob.info.addr, KeyShare::new());
    let answer = |from: &Someone| {
        let body = PeerRequest::ChatAnswer {
            request: id,
            answer: Answer::Declined,
            share: None,
        };
        Envelope::new(new_id(), from.info.clone(), body)
    };
    let mut fx = Vec::new();
    let early = state.signed_request(answer(&bob), &at(now), &mut fx);
    assert!(matches!(
        early,
        Outcome::Error {
            code: ErrorCode::Busy,
            ..
        }
    ));
    state.request_pending(id, bob.info.clone(), TTL, &at(now), &mut fx);
    let forged = state.signed_request(answer(&mallory), &at(now), &mut fx);
    assert!(matches!(
        forged,
        Outcome::Error {
            code: ErrorCode::UnknownRequest,
            ..
        }
    ));
    let mut fx = Vec::new();
    assert_eq!(
        state.signed_request(answer(&bob), &at(now), &mut fx),
        Outcome::Ok
    );
    assert_eq!(shown(&fx), [Event::RequestDeclined { peer: name("bob") }]);
}

#[test]
fn a_full_screen_makes_chat_requests_and_messages_busy_and_stores_nothing() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let full = Context {
        screen_room: false,
        ..at(now)
    };
    let (outcome, events) = ask(&mut state, &bob, &full);
    assert!(matches!(
        outcome,
        Outcome::Error {
            code: ErrorCode::Busy,
            ..
        }
    ));
    assert!(events.is_empty());
    assert!(state.snapshot(now).incoming.is_empty(), "nothing recorded");

    // A chat with bob, bob's keys on the other side.
    let bobs_keys = open_chat_with(&mut state, &bob, now);
    let message = |text: &str| {
        let body = SealedRequest::ChatMessage { text: text.into() };
        Envelope::new(new_id(), bob.info.clone(), body).encode()
    };
    let mut fx = Vec::new();
    let busy = state.open_sealed(&bobs_keys.seal(0, &message("hi")), &full, &mut fx);
    let Ok(FromChat::Ack(ack)) = busy else {
        panic!("an acknowledgement at once")
    };
    assert_eq!(
        outcome_of(&bobs_keys, 0, &ack).code(),
        Some(ErrorCode::Busy)
    );
    // With room, the message is to be stored, then shown and acknowledged.
    let stored = state.open_sealed(&bobs_keys.seal(1, &message("hi")), &at(now), &mut fx);
    let Ok(FromChat::Message(message)) = stored else {
        panic!("a message to store")
    };
    let ChatMessage {
        record,
        event,
        ok,
        busy,
    } = *message;
    assert_eq!(
        (record.peer, record.sender, record.text.as_str()),
        (name("bob"), name("bob"), "hi")
    );
    assert!(matches!(event, Event::Message { .. }));
    assert_eq!(outcome_of(&bobs_keys, 1, &ok), Outcome::Ok);
    assert_eq!(
        outcome_of(&bobs_keys, 1, &busy).code(),
        Some(ErrorCode::Busy)
    );
    assert!(fx.is_empty(), "nothing shown before it is stored");
}

/// Opens a chat between alice and `bob` the way bob's acceptance does; bob's keys.
fn open_chat_with(state: &mut PeerState, bob: &Someone, now: Instant) -> ChatKeys {
    let id = new_id();
    let ours = KeyShare::new();
    let mine = ours.public();
    state.request_sent(id, bob.info.addr, ours);
    let mut fx = Vec::new();
    state.request_pending(id, bob.info.clone(), TTL, &at(now), &mut fx);
    let theirs = KeyShare::new();
    let share = theirs.public();
    let alice_key = state.origin.identity.public();
    let transcript = Transcript {
        request: id,
        requester: &alice_key,
        accepter: &bob.info.key,
        requester_share: &mine,
        accepter_share: &share,
    };
    let keys = ChatKeys::agree(Role::Accepter, theirs, &transcript).unwrap();
    let body = PeerRequest::ChatAnswer {
        request: id,
        answer: Answer::Accepted,
        share: Some(share),
    };
    let accepted = Envelope::new(new_id(), bob.info.clone(), body);
    assert_eq!(
        state.signed_request(accepted, &at(now), &mut fx),
        Outcome::Ok
    );
    let _ = &bob.identity;
    keys
}

/// What alice's acknowledgement `ack` of bob's message `counter` says.
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

#[test]
fn leaving_ends_every_chat_and_request_once() {
    let now = Instant::now();
    let (bob, carol, dave) = (someone("bob", 2), someone("carol", 3), someone("dave", 4));
    let mut state = alice();
    open_chat_with(&mut state, &bob, now);
    ask(&mut state, &carol, &at(now));
    request_to(&mut state, &dave, now);
    let mut fx = Vec::new();
    let leaving = state.leave(&mut fx);
    assert_eq!(leaving.goodbyes.len(), 1);
    assert_eq!(leaving.unanswered.len(), 1);
    assert_eq!(
        shown(&fx),
        [
            Event::RequestUnanswered {
                peer: name("carol")
            },
            Event::RequestDropped { peer: name("dave") }
        ]
    );
    assert!(state.chats().is_empty());
    assert_eq!(state.next_deadline(), None);
}

#[test]
fn a_full_screen_shows_no_warning_for_a_changed_key_either() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    // Bob is pinned: alice chatted with him before.
    open_chat_with(&mut state, &bob, now);
    let mut fx = Vec::new();
    state.disconnect(&name("bob"), &mut fx);
    let full = Context {
        screen_room: false,
        ..at(now)
    };
    // Requests in bob's name, from two other keys in turn: each warning would be a line.
    let (k1, k2) = (someone("bob", 2), someone("bob", 2));
    for i in 0..1000 {
        let who = if i % 2 == 0 { &k1 } else { &k2 };
        let (outcome, events) = ask(&mut state, who, &full);
        assert!(matches!(
            outcome,
            Outcome::Error {
                code: ErrorCode::Busy,
                ..
            }
        ));
        assert!(
            events.is_empty(),
            "nothing shown on a full screen: {events:?}"
        );
    }
    // With room, one warning per new key offered.
    let (outcome, events) = ask(&mut state, &k1, &at(now));
    assert!(matches!(
        outcome,
        Outcome::Error {
            code: ErrorCode::KeyChanged,
            ..
        }
    ));
    assert!(matches!(events.as_slice(), [Event::KeyChanged { .. }]));
}

#[test]
fn a_yes_that_cannot_be_kept_and_a_no_nobody_heard_each_end_in_one_line() {
    let now = Instant::now();
    let (bob, carol) = (someone("bob", 2), someone("carol", 3));
    let mut state = alice();
    // Carol's key share is the zero point: no key can be agreed with it.
    let zero: p2p_shared::seal::EphemeralKey =
        serde_json::from_str(&format!("\"{}\"", "A".repeat(43))).unwrap();
    let request = PeerRequest::ChatRequest { share: zero };
    let mut fx = Vec::new();
    let asked = Envelope::new(new_id(), carol.info.clone(), request);
    assert!(matches!(
        state.signed_request(asked, &at(now), &mut fx),
        Outcome::Pending { .. }
    ));
    ask(&mut state, &bob, &at(now));
    let mut fx = Vec::new();
    let yes = state
        .answer(Some(name("carol")), true, &at(now), &mut fx)
        .unwrap();
    assert_eq!(
        yes.answer,
        Answer::Declined,
        "a yes that cannot be kept is a no"
    );
    state.answer_sent(yes, Ok(()), &mut fx);
    let no = state
        .answer(Some(name("bob")), false, &at(now), &mut fx)
        .unwrap();
    let unheard = PeerError::NoLongerWaiting { peer: name("bob") };
    state.answer_sent(no, Err(unheard.clone()), &mut fx);
    assert_eq!(
        shown(&fx),
        [
            Event::Error(PeerError::CannotAccept {
                peer: name("carol")
            }),
            Event::Error(PeerError::DeclinedUntold {
                peer: name("bob"),
                why: Box::new(unheard)
            }),
        ]
    );
}
