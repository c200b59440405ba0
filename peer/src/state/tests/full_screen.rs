//! A full screen: chat requests and messages are answered `busy` and nothing is stored or
//! shown, so that the sender retries and nothing the user must see is lost; only a retry of
//! a message shown, which shows nothing, is taken.

use super::*;

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
        let body = SealedRequest::ChatMessage {
            text: text.into(),
            seq: 1,
            again: false,
        };
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
    // With room, the message is to be shown, then stored and acknowledged.
    let stored = state.open_sealed(&bobs_keys.seal(1, &message("hi")), &at(now), &mut fx);
    let Ok(FromChat::Message(message)) = stored else {
        panic!("a message to show and store")
    };
    let ChatMessage {
        showing,
        storing: Storing { record, ack, .. },
    } = *message;
    assert_eq!(
        (record.peer, record.sender, record.text.as_str()),
        (name("bob"), name("bob"), "hi")
    );
    assert!(matches!(showing, Showing::Now(Event::Message { .. })));
    let ok = state.seal_ok(ack);
    assert_eq!(outcome_of(&bobs_keys, 1, &ok), Outcome::Ok);
    assert!(
        fx.is_empty(),
        "the broker shows it in the place kept as it arrived"
    );
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
fn a_retry_of_a_message_shown_is_taken_on_a_full_screen() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let bobs_keys = open_chat_with(&mut state, &bob, now);
    let sealed = |counter, (id, seq), again| {
        sealed_message((&bob, &bobs_keys), (counter, seq), (id, "hi"), again)
    };
    let (id, mut fx) = (new_id(), Vec::new());
    let first = state.open_sealed(&sealed(0, (id, 1), false), &at(now), &mut fx);
    let Ok(FromChat::Message(message)) = first else {
        panic!("a message to show and store")
    };
    assert!(matches!(message.showing, Showing::Now(_)));
    let full = Context {
        screen_room: false,
        ..at(now)
    };
    // Its acknowledgement was lost: the retry needs no room, only storing and answering.
    let retry = state.open_sealed(&sealed(1, (id, 1), true), &full, &mut fx);
    let Ok(FromChat::Message(message)) = retry else {
        panic!("a retry of a message shown is stored and acknowledged, not busy")
    };
    assert!(matches!(message.showing, Showing::Not));
    // One not shown yet still waits for room.
    let next = state.open_sealed(&sealed(2, (new_id(), 2), false), &full, &mut fx);
    let Ok(FromChat::Ack(ack)) = next else {
        panic!("an acknowledgement at once")
    };
    assert_eq!(
        outcome_of(&bobs_keys, 2, &ack).code(),
        Some(ErrorCode::Busy)
    );
}
