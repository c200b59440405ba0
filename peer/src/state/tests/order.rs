//! Chat messages that arrive out of order show in the order they were typed: an early one is
//! held, its connection waiting, until its turn comes, or until the gap before it is given up
//! on, or the chat ends; none is lost on the way.

use futures::channel::oneshot;

use super::*;
use crate::state::order::HOLD_FOR;
use crate::state::{Held, Showing, Storing};

/// Bob's message `text` in his place `seq`, sealed under `counter`, opened by alice.
fn arrives(
    state: &mut PeerState,
    (bob, keys): (&Someone, &ChatKeys),
    (counter, seq, text): (u64, u64, &str),
    cx: &Context,
    fx: &mut Vec<Effect>,
) -> FromChat {
    let sealed = sealed_message((bob, keys), (counter, seq), (id_of(seq, text), text), false);
    match state.open_sealed(&sealed, cx, fx) {
        Ok(from_chat) => from_chat,
        Err(refusal) => panic!("refused: {refusal}"),
    }
}

/// The id of bob's message `text` in place `seq`: the same for every try of it, as a
/// sender's retries keep their message's id.
fn id_of(seq: u64, text: &str) -> MessageId {
    let text = text
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    MessageId::from_u64_pair(seq, text)
}

/// Holds an early message as the broker does: its waiter, to see what it is handed.
fn hold(state: &mut PeerState, early: FromChat, now: Instant) -> Waiting {
    let FromChat::Early { peer, seq, message } = early else {
        panic!("an early message")
    };
    let (waiter, turn) = oneshot::channel();
    let ok = state.seal_ok(message.storing.ack);
    let held = Held {
        message,
        ok,
        waiter,
    };
    state.hold((peer, seq), held, now);
    Waiting(turn)
}

struct Waiting(oneshot::Receiver<(Box<Storing>, Vec<u8>)>);

/// The texts of the messages released by `fx`, in order.
fn released(fx: &mut Vec<Effect>) -> Vec<String> {
    fx.drain(..)
        .filter_map(|effect| match effect {
            Effect::Release(held) => Some(held.message.storing.record.text.clone()),
            _ => None,
        })
        .collect()
}

fn text_of(from_chat: FromChat) -> String {
    match from_chat {
        FromChat::Message(message) if matches!(message.showing, Showing::Now(_)) => {
            message.storing.record.text
        }
        _ => panic!("a message to show now"),
    }
}

/// A message not to show again, only to store and acknowledge: its text.
fn retried(from_chat: FromChat) -> String {
    match from_chat {
        FromChat::Message(message) if matches!(message.showing, Showing::Not) => {
            message.storing.record.text
        }
        _ => panic!("a retry of a message shown"),
    }
}

#[test]
fn early_messages_wait_for_those_before_them_and_then_show_in_order() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let keys = open_chat_with(&mut state, &bob, now);
    let mut fx = Vec::new();

    let third = arrives(
        &mut state,
        (&bob, &keys),
        (0, 3, "three"),
        &at(now),
        &mut fx,
    );
    let _three = hold(&mut state, third, now);
    let second = arrives(&mut state, (&bob, &keys), (1, 2, "two"), &at(now), &mut fx);
    let _two = hold(&mut state, second, now);
    assert!(released(&mut fx).is_empty());

    let first = arrives(&mut state, (&bob, &keys), (2, 1, "one"), &at(now), &mut fx);
    assert_eq!(text_of(first), "one");
    assert_eq!(released(&mut fx), ["two", "three"], "after it, in order");

    // A retry of one shown is stored if need be, and not shown again.
    let again = arrives(&mut state, (&bob, &keys), (3, 2, "two"), &at(now), &mut fx);
    assert_eq!(retried(again), "two");
    let fourth = arrives(&mut state, (&bob, &keys), (4, 4, "four"), &at(now), &mut fx);
    assert_eq!(text_of(fourth), "four");
    assert_eq!(state.next_deadline(), None, "nothing held");
}

#[test]
fn a_gap_that_stays_open_is_given_up_on_and_the_missing_message_shows_late() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let keys = open_chat_with(&mut state, &bob, now);
    let mut fx = Vec::new();

    let second = arrives(&mut state, (&bob, &keys), (0, 2, "two"), &at(now), &mut fx);
    let _two = hold(&mut state, second, now);
    assert_eq!(state.next_deadline(), Some(now + HOLD_FOR));
    state.expire(now + HOLD_FOR, &mut fx);
    assert_eq!(released(&mut fx), ["two"]);

    let first = arrives(&mut state, (&bob, &keys), (1, 1, "one"), &at(now), &mut fx);
    assert_eq!(text_of(first), "one", "late, not lost");
    let again = arrives(&mut state, (&bob, &keys), (2, 1, "one"), &at(now), &mut fx);
    assert_eq!(retried(again), "one", "shown late once");
}

#[test]
fn a_chat_that_ends_shows_what_it_held_and_a_replaced_try_is_answered() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let keys = open_chat_with(&mut state, &bob, now);
    let mut fx = Vec::new();

    let first_try = arrives(&mut state, (&bob, &keys), (0, 2, "two"), &at(now), &mut fx);
    let Waiting(mut replaced) = hold(&mut state, first_try, now);
    let retry = arrives(&mut state, (&bob, &keys), (1, 2, "two"), &at(now), &mut fx);
    let _retry = hold(&mut state, retry, now);
    assert!(
        matches!(replaced.try_recv(), Err(oneshot::Canceled)),
        "the replaced try's connection is let go (it answers busy)"
    );

    let bye = SealedRequest::Disconnect;
    let frame = Envelope::new(new_id(), bob.info.clone(), bye).encode();
    let _ = state.open_sealed(&keys.seal(2, &frame), &at(now), &mut fx);
    assert_eq!(released(&mut fx), ["two"]);
}

#[test]
fn a_message_too_far_ahead_is_busy() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let keys = open_chat_with(&mut state, &bob, now);
    let mut fx = Vec::new();
    let far = crate::state::order::HELD_MAX as u64 + 2;
    let FromChat::Ack(ack) = arrives(
        &mut state,
        (&bob, &keys),
        (0, far, "far"),
        &at(now),
        &mut fx,
    ) else {
        panic!("answered at once")
    };
    assert_eq!(outcome_of(&keys, 0, &ack).code(), Some(ErrorCode::Busy));
}

/// A message its sender kept while the chat was away (it showed, but its acknowledgement was
/// lost) comes again under its id in the chat that reopened, in a new place: it is stored if
/// need be, and not shown twice; the chat's order goes on after it.
#[test]
fn a_message_sent_again_in_a_chat_that_reopened_does_not_show_twice() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let mut fx = Vec::new();
    let keys = open_chat_with(&mut state, &bob, now);
    let id = new_id();
    let sealed = |keys: &ChatKeys, counter, seq, id, again| {
        sealed_message((&bob, keys), (counter, seq), (id, "kept"), again)
    };
    let first = state.open_sealed(&sealed(&keys, 0, 1, id, false), &at(now), &mut fx);
    assert_eq!(text_of(first.ok().unwrap()), "kept");

    let keys = open_chat_with(&mut state, &bob, now);
    let again = state.open_sealed(&sealed(&keys, 0, 1, id, true), &at(now), &mut fx);
    assert_eq!(retried(again.ok().unwrap()), "kept", "shown once");
    let next = state.open_sealed(&sealed(&keys, 1, 2, new_id(), false), &at(now), &mut fx);
    assert_eq!(text_of(next.ok().unwrap()), "kept", "the order goes on");
}

/// After a restart (a fresh state), or once more than the last ids shown have gone by, only
/// the history knows whether a message sent again showed before: it shows only if new.
#[test]
fn a_message_sent_again_and_not_shown_lately_shows_only_if_the_history_lacks_it() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let mut fx = Vec::new();
    let keys = open_chat_with(&mut state, &bob, now);
    let sealed = |counter, seq, text: &str, again| {
        sealed_message(
            (&bob, &keys),
            (counter, seq),
            (id_of(seq, text), text),
            again,
        )
    };
    let showing = |from_chat: Result<FromChat, _>| match from_chat {
        Ok(FromChat::Message(message)) => message.showing,
        _ => panic!("a message"),
    };

    let kept = state.open_sealed(&sealed(0, 1, "kept", true), &at(now), &mut fx);
    assert!(
        matches!(showing(kept), Showing::IfNew(_)),
        "the history decides"
    );
    let typed = state.open_sealed(&sealed(1, 2, "typed", false), &at(now), &mut fx);
    assert!(
        matches!(showing(typed), Showing::Now(_)),
        "a first try shows at once"
    );
    // Its store may have failed, and then it has not shown: the history decides again.
    let retry = state.open_sealed(&sealed(2, 1, "kept", true), &at(now), &mut fx);
    assert!(
        matches!(showing(retry), Showing::IfNew(_)),
        "the history decides again"
    );
    let retry = state.open_sealed(&sealed(3, 2, "typed", true), &at(now), &mut fx);
    assert!(
        matches!(showing(retry), Showing::Not),
        "shown lately: not twice"
    );
}

/// A retry of a message shown lately is taken on a full screen (it needs no room); it must
/// not come back as something to show, even when the messages its turn releases push its id
/// out of those shown lately: the broker would have no place for it.
#[test]
fn a_retry_taken_on_a_full_screen_never_needs_a_place() {
    let now = Instant::now();
    let (bob, carol) = (someone("bob", 2), someone("carol", 3));
    let mut state = alice();
    let mut fx = Vec::new();
    let keys = open_chat_with(&mut state, &bob, now);
    let x = new_id();
    let first = state.open_sealed(
        &sealed_message((&bob, &keys), (0, 1), (x, "x"), false),
        &at(now),
        &mut fx,
    );
    assert_eq!(text_of(first.ok().unwrap()), "x");
    // 1,023 other messages show (carol's): x is now the oldest id remembered.
    let carols = open_chat_with(&mut state, &carol, now);
    for i in 0..(crate::state::order::SHOWN_KEPT as u64 - 1) {
        let sealed = sealed_message((&carol, &carols), (i, i + 1), (new_id(), "c"), false);
        let from = state.open_sealed(&sealed, &at(now), &mut fx).ok().unwrap();
        assert_eq!(text_of(from), "c");
        fx.clear();
    }
    // Bob's chat reopens; his new message 2 (a first try) comes early, with room.
    let keys = open_chat_with(&mut state, &bob, now);
    let early = state.open_sealed(
        &sealed_message((&bob, &keys), (0, 2), (new_id(), "y"), false),
        &at(now),
        &mut fx,
    );
    let _y = hold(&mut state, early.ok().unwrap(), now);
    // x, kept while the chat was away, comes again as 1 while the screen is full.
    let full = Context {
        screen_room: false,
        ..at(now)
    };
    let again = state.open_sealed(
        &sealed_message((&bob, &keys), (1, 1), (x, "x"), true),
        &full,
        &mut fx,
    );
    match again {
        Ok(FromChat::Message(message)) => assert!(
            matches!(message.showing, Showing::Not),
            "taken without room but to be shown: {:?} (the broker's place() would panic)",
            message.showing
        ),
        Ok(FromChat::Ack(_)) => {}
        _ => panic!("a message to store, or an acknowledgement"),
    }
}
