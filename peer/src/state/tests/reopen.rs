//! Away chats reopened by the peer itself (`resume.rs`), and what ends them.

use super::*;

/// Alice's peer asks bob, whose chat is away, to reopen it, as far as bob's `pending`
/// reply: the request's id and its message 1.
fn reopening(
    state: &mut PeerState,
    bob: &Someone,
    now: Instant,
) -> (MessageId, p2p_shared::handshake::HandshakeMessage) {
    let (id, initiator, first) = start(state, bob);
    assert!(state.reopen_sent(id, (bob.info.name, bob.info.key), bob.info.addr, initiator));
    let mut fx = Vec::new();
    state.resume_pending(id, bob.info.clone(), TTL, &at(now), &mut fx);
    (id, first)
}

fn is_unknown_request(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Error {
            code: ErrorCode::UnknownRequest,
            ..
        }
    )
}

/// Alice's peer asks bob, whose chat is away, to reopen it; the user ends the chat before
/// bob's acceptance comes (bob's peer takes such a request without asking). The request is
/// withdrawn, and the acceptance opens nothing: a chat the user ended stays ended.
#[test]
fn an_acceptance_of_a_reopening_request_after_disconnect_opens_nothing() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    away_chat_with(&mut state, &bob, now);
    let (id, first) = reopening(&mut state, &bob, now);

    // `disconnect bob`: the away chat ends here, and the request is withdrawn at bob.
    let mut fx = Vec::new();
    assert!(state.end_away(&name("bob"), &mut fx));
    let withdrawn: Vec<MessageId> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Tell {
                to,
                body: PeerRequest::ChatWithdraw { request },
            } if *to == bob.info.addr => Some(*request),
            _ => None,
        })
        .collect();
    assert_eq!(withdrawn, [id]);

    // Bob's acceptance, already on its way, opens nothing.
    let (_, second) = accept_as(&state, &bob, id, &first);
    let accepted = (id, Answer::Accepted, Some(second));
    let (outcome, fx) = answer_as(&mut state, &bob, accepted, now);
    assert!(is_unknown_request(&outcome), "{outcome:?}");
    assert!(shown(&fx).is_empty(), "{fx:?}");
    assert!(state.chat_names().next().is_none(), "no chat opened");
}

/// A request the user made is not withdrawn when an away chat with the same partner ends:
/// only the peer's own reopening requests are.
#[test]
fn ending_an_away_chat_leaves_the_users_own_requests() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    away_chat_with(&mut state, &bob, now);
    request_to(&mut state, &bob, now);
    let mut fx = Vec::new();
    assert!(state.end_away(&name("bob"), &mut fx));
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Tell { .. })),
        "{fx:?}"
    );
    assert_eq!(
        state.outgoing.awaiting().count(),
        1,
        "the user's request still waits for bob's answer"
    );
}

/// The partner of an away chat says `no` to our peer's request to reopen it: the chat ends,
/// and is not asked again every round.
#[test]
fn a_declined_reopening_request_ends_the_away_chat() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    away_chat_with(&mut state, &bob, now);
    assert_eq!(state.resumable(&at(now)).len(), 1);
    let (id, _) = reopening(&mut state, &bob, now);
    let (outcome, fx) = answer_as(&mut state, &bob, (id, Answer::Declined, None), now);
    assert_eq!(outcome, Outcome::Ok);
    assert_eq!(shown(&fx), [Event::ReopenDeclined { peer: name("bob") }]);
    assert!(state.resumable(&at(now)).is_empty(), "not asked again");
    let mut fx = Vec::new();
    assert!(!state.end_away(&name("bob"), &mut fx), "no away chat left");
}

/// A `no` to a request the user made ends only that request.
#[test]
fn a_declined_request_of_the_users_leaves_the_away_chat() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    away_chat_with(&mut state, &bob, now);
    let (id, _) = request_to(&mut state, &bob, now);
    let (outcome, fx) = answer_as(&mut state, &bob, (id, Answer::Declined, None), now);
    assert_eq!(outcome, Outcome::Ok);
    assert_eq!(shown(&fx), [Event::RequestDeclined { peer: name("bob") }]);
    assert_eq!(state.resumable(&at(now)).len(), 1, "still away");
}

/// A round of reopening requests takes its list of away chats at its start, and asking each
/// may take a while: a chat the user ended meanwhile is not asked.
#[test]
fn a_chat_ended_since_the_round_began_is_not_asked() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    away_chat_with(&mut state, &bob, now);
    assert_eq!(state.resumable(&at(now)).len(), 1, "the round's list");
    let mut fx = Vec::new();
    assert!(state.end_away(&name("bob"), &mut fx));
    let (id, initiator, _) = start(&state, &bob);
    let recorded = state.reopen_sent(id, (name("bob"), bob.info.key), bob.info.addr, initiator);
    assert!(!recorded, "not sent");
    assert_eq!(state.outgoing.awaiting().count(), 0);
}

/// The partner's request to reopen an away chat is taken without a `yes` by a task of its
/// own, later: if the user ended the chat meanwhile, it is an ordinary request, shown to be
/// answered.
#[test]
fn a_reopening_request_is_not_taken_alone_once_the_user_ended_the_chat() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    away_chat_with(&mut state, &bob, now);
    let (outcome, arrived) = ask(&mut state, &bob, &at(now));
    assert!(matches!(outcome, Outcome::Pending { .. }), "{outcome:?}");
    assert!(arrived.is_empty(), "taken without asking the user");
    let mut fx = Vec::new();
    assert!(state.end_away(&name("bob"), &mut fx));
    let mut fx = Vec::new();
    assert!(state.auto_answer(name("bob"), &at(now), &mut fx).is_none());
    assert!(
        matches!(shown(&fx)[..], [Event::RequestArrived { .. }]),
        "{fx:?}"
    );
    assert!(state.chat_names().next().is_none(), "no chat opened");
    // Still the user's to answer.
    let mut fx = Vec::new();
    let answering = state.answer(Some(name("bob")), false, None, &at(now), &mut fx);
    assert!(matches!(
        answering,
        Ok(Answering {
            answer: Answer::Declined,
            ..
        })
    ));
}

/// A `no` to a reopening request that comes after the chat opened another way ends nothing:
/// here the chat opens while the request's `pending` reply is still on its way, so opening
/// does not settle it (only requests whose other side is asking are).
#[test]
fn a_late_no_to_a_reopening_request_leaves_a_chat_opened_since() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    away_chat_with(&mut state, &bob, now);
    let (id, initiator, _) = start(&state, &bob);
    assert!(state.reopen_sent(id, (name("bob"), bob.info.key), bob.info.addr, initiator));
    open_chat_with(&mut state, &bob, now);
    let mut fx = Vec::new();
    state.resume_pending(id, bob.info.clone(), TTL, &at(now), &mut fx);
    let (_, fx) = answer_as(&mut state, &bob, (id, Answer::Declined, None), now);
    assert!(shown(&fx).is_empty(), "{fx:?}");
    assert_eq!(
        state.chat_names().copied().collect::<Vec<_>>(),
        [name("bob")],
        "still open"
    );
}

/// Only the key that said `pending` answers a request: after the user trusts another key for
/// the name, a `no` signed by that key ends neither the request nor the away chat.
#[test]
fn a_no_from_a_key_trusted_since_the_request_ends_nothing() {
    let now = Instant::now();
    let (bob, new_bob) = (someone("bob", 2), someone("bob", 2));
    let mut state = alice();
    away_chat_with(&mut state, &bob, now);
    let (id, _) = reopening(&mut state, &bob, now);
    // Another key for bob is offered, and the user trusts it.
    let (refused, _) = ask(&mut state, &new_bob, &at(now));
    assert!(matches!(
        refused,
        Outcome::Error {
            code: ErrorCode::KeyChanged,
            ..
        }
    ));
    let (fingerprint, mut fx) = (new_bob.info.key.fingerprint(), Vec::new());
    state
        .trust(&name("bob"), &fingerprint, &at(now), &mut fx)
        .unwrap();
    let (outcome, fx) = answer_as(&mut state, &new_bob, (id, Answer::Declined, None), now);
    assert!(is_unknown_request(&outcome), "{outcome:?}");
    assert!(shown(&fx).is_empty(), "{fx:?}");
    assert_eq!(
        state.outgoing.awaiting().count(),
        1,
        "still bob's to answer"
    );
}
