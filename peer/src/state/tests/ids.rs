//! Which command each event answers: the one that caused it, at once or long after (a
//! request's end, a kept message's fate), and none for what the network alone caused.

use super::*;
use crate::json_command::CommandId;
use crate::state::conversations::Typed;

fn cmd(id: &str) -> Option<CommandId> {
    Some(CommandId::given(id).unwrap())
}

/// The id each shown event carries, in order.
fn ids(fx: &[Effect]) -> Vec<Option<String>> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Show(shown) => Some(shown.id.as_ref().map(CommandId::to_string)),
            _ => None,
        })
        .collect()
}

fn some(ids: &[&str]) -> Vec<Option<String>> {
    ids.iter().map(|id| Some(id.to_string())).collect()
}

/// Alice's request to `to` made by the command `by`, as far as its `pending` reply.
fn request_by(state: &mut PeerState, to: &Someone, by: &str, now: Instant) -> Vec<Effect> {
    let (id, initiator, _) = start(state, to);
    state.request_sent(id, to.info.addr, initiator, cmd(by));
    let mut fx = Vec::new();
    state.request_pending(id, to.info.clone(), (TTL, false), &at(now), &mut fx);
    fx
}

#[test]
fn a_request_settled_by_a_yes_answers_its_own_command_and_the_chat_answers_the_yes() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    assert_eq!(
        ids(&request_by(&mut state, &bob, "ask-bob", now)),
        some(&["ask-bob"])
    );
    let (_, arrived) = ask(&mut state, &bob, &at(now));
    assert!(matches!(arrived[..], [Event::RequestArrived { .. }]));
    let mut fx = Vec::new();
    let yes = state
        .answer(None, true, cmd("yes-1"), &at(now), &mut fx)
        .unwrap();
    state.answer_sent(yes, Ok(()), &mut fx);
    assert_eq!(
        shown(&fx),
        [
            Event::RequestSettled { peer: name("bob") },
            Event::AcceptedChat {
                peer: name("bob"),
                addr: bob.info.addr,
                key: PeerKey(bob.info.key),
            }
        ]
    );
    assert_eq!(ids(&fx), some(&["ask-bob", "yes-1"]));
}

#[test]
fn what_the_network_alone_causes_answers_no_command() {
    let now = Instant::now();
    let (bob, carol) = (someone("bob", 2), someone("carol", 3));
    let mut state = alice();
    let (_, _, fx) = ask_for_effects(&mut state, &bob, Vouch::Registered, now);
    assert_eq!(ids(&fx), [None]);
    ask(&mut state, &carol, &at(now));
    let mut fx = Vec::new();
    state.expire(now + TTL, &mut fx);
    assert_eq!(shown(&fx).len(), 2, "both expired");
    assert_eq!(ids(&fx), [None, None]);
}

#[test]
fn every_later_end_of_a_request_answers_the_command_that_made_it() {
    let now = Instant::now();
    let (bob, carol) = (someone("bob", 2), someone("carol", 3));
    let mut state = alice();
    request_by(&mut state, &bob, "first", now);
    // A newer request to bob replaces the first there: that end answers the first command.
    let fx = request_by(&mut state, &bob, "second", now);
    assert_eq!(shown(&fx)[0], Event::RequestReplaced { peer: name("bob") });
    assert_eq!(ids(&fx), some(&["first", "second"]));
    request_by(&mut state, &carol, "third", now + TTL);
    let mut fx = Vec::new();
    state.expire(now + TTL + outgoing::ANSWER_GRACE, &mut fx);
    assert_eq!(shown(&fx), [Event::RequestTimedOut { peer: name("bob") }]);
    assert_eq!(ids(&fx), some(&["second"]));
    let mut fx = Vec::new();
    state.leave(&mut fx);
    assert_eq!(
        shown(&fx),
        [Event::RequestDropped {
            peer: name("carol")
        }]
    );
    assert_eq!(ids(&fx), some(&["third"]));
}

#[test]
fn a_kept_message_answers_the_command_that_sent_it_until_its_end() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let chat = open_chat_with(&mut state, &bob, now).id;
    let mut fx = Vec::new();
    let message = typed;
    // The message that finds bob gone makes the chat away, and is kept: both answer it.
    let why = ("nobody answered".to_string(), "bob is away".to_string());
    state
        .message_failed(
            name("bob"),
            message("one", "m1"),
            chat,
            why,
            &at(now),
            &mut fx,
        )
        .unwrap();
    assert!(matches!(
        shown(&fx)[..],
        [Event::PeerAway { .. }, Event::Queued { .. }]
    ));
    assert_eq!(ids(&fx), some(&["m1", "m1"]));
    let mut fx = Vec::new();
    let why = "bob is offline".to_string();
    state
        .queue_message(name("bob"), message("two", "m2"), why, &at(now), &mut fx)
        .unwrap();
    assert_eq!(ids(&fx), some(&["m2"]));
    // Ending the chat drops both, each answering its own command.
    let mut fx = Vec::new();
    assert!(state.end_away(&name("bob"), &mut fx));
    assert!(shown(&fx)
        .iter()
        .all(|e| matches!(e, Event::QueuedDropped { .. })));
    assert_eq!(ids(&fx), some(&["m1", "m2"]));
    assert_eq!(state.outbox_next(&name("bob")), None);
}

/// A kept message that may have shown (a try of it was written whole, before it was kept or
/// from the outbox since) ends as one on its way would: no acknowledgement, not "not
/// delivered", which would have the user send it again.
#[test]
fn a_kept_message_that_may_have_shown_ends_with_no_acknowledgement() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    away_chat_with(&mut state, &bob, now);
    let mut fx = Vec::new();
    let written = Typed {
        tried: true,
        ..typed("written, never acknowledged", "m1")
    };
    let from_the_outbox = typed("tried from the outbox since", "m3");
    let third = from_the_outbox.id;
    for message in [written, typed("never sent", "m2"), from_the_outbox] {
        let why = "bob is offline".to_string();
        state
            .queue_message(name("bob"), message, why, &at(now), &mut fx)
            .unwrap();
    }
    state.outbox_tried(&name("bob"), third, true, &mut fx);
    let mut fx = Vec::new();
    assert!(state.end_away(&name("bob"), &mut fx));
    let shown = shown(&fx);
    assert!(
        matches!(
            shown[..],
            [
                Event::Error(PeerError::NoAcknowledgementEnded { .. }),
                Event::QueuedDropped { .. },
                Event::Error(PeerError::NoAcknowledgementEnded { .. }),
            ]
        ),
        "{shown:?}"
    );
    assert_eq!(ids(&fx), some(&["m1", "m2", "m3"]));
}

#[test]
fn a_message_kept_too_long_ends_answering_its_command() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    away_chat_with(&mut state, &bob, now);
    let mut fx = Vec::new();
    let typed = typed("late", "m9");
    let why = "bob is offline".to_string();
    state
        .queue_message(name("bob"), typed, why, &at(now), &mut fx)
        .unwrap();
    let later = Context {
        utc: Utc::now() + chrono::Duration::days(8),
        ..at(now)
    };
    let mut fx = Vec::new();
    state.expire_outbox(&later, &mut fx);
    assert!(matches!(shown(&fx)[..], [Event::QueuedDropped { .. }]));
    assert_eq!(ids(&fx), some(&["m9"]));
}

#[test]
fn a_message_whose_chat_ended_under_it_is_kept_and_never_ends_the_chat_open_now() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let chat = open_chat_with(&mut state, &bob, now).id;
    let typed = |by: &str| typed("on its way", by);
    let why = || "its chat ended while it was on its way".to_string();
    // A chat open again by now (the same name and key): the message is kept and goes at
    // once in it; the chat stays open.
    let mut fx = Vec::new();
    state
        .queue_message(name("bob"), typed("m1"), why(), &at(now), &mut fx)
        .unwrap();
    assert!(matches!(shown(&fx)[..], [Event::Queued { .. }]), "no away");
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::Flush(p) if *p == name("bob"))));
    assert_eq!(
        state.chat_names().copied().collect::<Vec<_>>(),
        [name("bob")],
        "still open"
    );
    // Away by now: kept for when it is back.
    let mut fx = Vec::new();
    assert!(state.away_if(&name("bob"), chat, &mut fx));
    let mut fx = Vec::new();
    state
        .queue_message(name("bob"), typed("m2"), why(), &at(now), &mut fx)
        .unwrap();
    assert!(matches!(shown(&fx)[..], [Event::Queued { .. }]));
    assert!(!fx.iter().any(|e| matches!(e, Effect::Flush(_))));
    // Ended for good: nothing is kept, and the message ends, saying whether it may have
    // shown.
    let mut fx = Vec::new();
    assert!(state.end_away(&name("bob"), &mut fx));
    let mut fx = Vec::new();
    state
        .queue_message(name("bob"), typed("m3"), why(), &at(now), &mut fx)
        .unwrap();
    assert!(matches!(shown(&fx)[..], [Event::QueuedDropped { .. }]));
    let written = Typed {
        tried: true,
        ..typed("m4")
    };
    let mut fx = Vec::new();
    state
        .queue_message(name("bob"), written, why(), &at(now), &mut fx)
        .unwrap();
    assert!(matches!(
        shown(&fx)[..],
        [Event::Error(PeerError::NoAcknowledgementEnded { .. })]
    ));
    assert_eq!(ids(&fx), some(&["m4"]));
}

#[test]
fn a_failure_in_a_chat_that_has_ended_never_makes_the_chat_open_now_away() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let old = open_chat_with(&mut state, &bob, now).id;
    // The chat opens again with the same partner, under new keys, while a message sent in
    // the old one waits for its verdict.
    let new = open_chat_with(&mut state, &bob, now).id;
    assert_ne!(old, new);
    let typed = typed("sent in the old chat", "m1");
    let why = ("nobody answered".to_string(), "bob is away".to_string());
    let mut fx = Vec::new();
    state
        .message_failed(name("bob"), typed, old, why, &at(now), &mut fx)
        .unwrap();
    // No verdict on the new chat: it stays open, and the message is kept and goes in it.
    assert!(matches!(shown(&fx)[..], [Event::Queued { .. }]), "no away");
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::Flush(p) if *p == name("bob"))));
    let mut fx = Vec::new();
    assert!(
        !state.away_if(&name("bob"), old, &mut fx),
        "not the chat open"
    );
    assert!(fx.is_empty());
    assert_eq!(
        state.chat_names().copied().collect::<Vec<_>>(),
        [name("bob")]
    );
    // A verdict in the chat open now still counts.
    assert!(state.away_if(&name("bob"), new, &mut fx));
    assert!(state.chat_names().next().is_none());
}

#[test]
fn what_was_typed_to_a_key_never_goes_to_the_key_trusted_since() {
    let now = Instant::now();
    let (old_bob, new_bob) = (someone("bob", 2), someone("bob", 2));
    let bob = name("bob");
    let mut state = alice();
    let chat = open_chat_with(&mut state, &old_bob, now).id;
    // One message on its way in the chat; one kept, typed once bob is away.
    let mut on_its_way = typed("on its way", "m1");
    on_its_way.place = state.message_typed(&bob, on_its_way.id).place;
    let to = on_its_way.place.map(|place| place.key);
    let sealed = state.seal_message(&bob, on_its_way.id, "x".into(), false, to);
    assert!(sealed.is_some(), "in the chat with the key it was typed to");
    let mut fx = Vec::new();
    assert!(state.away_if(&bob, chat, &mut fx));
    let mut kept = typed("kept", "m2");
    kept.place = state.message_typed(&bob, kept.id).place;
    let why = "bob is offline".to_string();
    state
        .queue_message(bob, kept, why, &at(now), &mut fx)
        .unwrap();
    // Bob is back with another key; the user trusts it, and a chat with it opens.
    let (refused, _) = ask(&mut state, &new_bob, &at(now));
    assert!(
        matches!(
            &refused,
            Outcome::Error {
                code: ErrorCode::KeyChanged,
                ..
            }
        ),
        "{refused:?}"
    );
    let fingerprint = new_bob.info.key.fingerprint();
    let mut fx = Vec::new();
    state.trust(&bob, &fingerprint, &at(now), &mut fx).unwrap();
    let (_, fx) = open_chat_showing(&mut state, &new_bob, now);
    let dropped: Vec<&Shown> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Show(shown) if matches!(shown.event, Event::QueuedDropped { .. }) => {
                Some(shown)
            }
            _ => None,
        })
        .collect();
    assert_eq!(dropped.len(), 1, "the kept one ends: {fx:?}");
    assert_eq!(dropped[0].id, cmd("m2"));
    assert_eq!(state.outbox_next(&bob), None);
    // The one on its way is neither sealed in the new chat nor kept for it.
    let again = state.seal_message(&bob, on_its_way.id, "x".into(), true, to);
    assert!(again.is_none(), "not to the new key");
    let why = ("nobody answered".to_string(), "bob is away".to_string());
    let mut fx = Vec::new();
    state
        .message_failed(bob, on_its_way, chat, why, &at(now), &mut fx)
        .unwrap();
    assert!(matches!(shown(&fx)[..], [Event::QueuedDropped { .. }]));
    assert_eq!(ids(&fx), some(&["m1"]));
    assert_eq!(state.outbox_next(&bob), None);
}

/// A message typed as command `by`, with no place taken (as one typed with no chat).
fn typed(text: &str, by: &str) -> Typed {
    Typed {
        id: new_id(),
        text: text.into(),
        cmd: cmd(by),
        place: None,
        tried: false,
    }
}
