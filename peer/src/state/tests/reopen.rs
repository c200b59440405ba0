//! Away chats reopened by the peer itself (`resume.rs`), and what ends them.

use super::*;

/// Alice's peer asks bob, whose chat is away, to reopen it; the user ends the chat before
/// bob's acceptance comes (bob's peer takes such a request without asking). The request is
/// withdrawn, and the acceptance opens nothing: a chat the user ended stays ended.
#[test]
fn an_acceptance_of_a_reopening_request_after_disconnect_opens_nothing() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let chat = open_chat_with(&mut state, &bob, now).id;
    let mut fx = Vec::new();
    assert!(state.away_if(&name("bob"), chat, &mut fx));

    // The resume task's request, as far as bob's `pending` reply.
    let (id, initiator, first) = start(&state, &bob);
    state.reopen_sent(id, name("bob"), bob.info.addr, initiator);
    let mut fx = Vec::new();
    state.resume_pending(id, bob.info.clone(), TTL, &at(now), &mut fx);

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
    let alice_key = state.origin.identity.public();
    let (pattern, me) = (p2p_shared::handshake::Pattern::IX, &bob.identity);
    let (_, second) =
        Responder::accept(me, &bob.info.name, id, pattern, &first, &alice_key).unwrap();
    let body = PeerRequest::ChatAnswer {
        request: id,
        answer: Answer::Accepted,
        handshake: Some(second),
    };
    let accepted = Envelope::new(new_id(), bob.info.clone(), body);
    let mut fx = Vec::new();
    let outcome = state.signed_request(accepted, None, &at(now), &mut fx);
    assert!(
        matches!(
            &outcome,
            Outcome::Error {
                code: ErrorCode::UnknownRequest,
                ..
            }
        ),
        "{outcome:?}"
    );
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
    let chat = open_chat_with(&mut state, &bob, now).id;
    let mut fx = Vec::new();
    assert!(state.away_if(&name("bob"), chat, &mut fx));
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

/// The partner of an away chat says `no` to our peer's request to reopen it: the chat ends
/// (as if it had disconnected), and is not asked again every round.
#[test]
fn a_declined_reopening_request_ends_the_away_chat() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let chat = open_chat_with(&mut state, &bob, now).id;
    let mut fx = Vec::new();
    assert!(state.away_if(&name("bob"), chat, &mut fx));
    assert_eq!(state.resumable(&at(now)).len(), 1);

    let (id, initiator, _) = start(&state, &bob);
    state.reopen_sent(id, name("bob"), bob.info.addr, initiator);
    let mut fx = Vec::new();
    state.resume_pending(id, bob.info.clone(), TTL, &at(now), &mut fx);
    let body = PeerRequest::ChatAnswer {
        request: id,
        answer: Answer::Declined,
        handshake: None,
    };
    let declined = Envelope::new(new_id(), bob.info.clone(), body);
    let mut fx = Vec::new();
    assert_eq!(
        state.signed_request(declined, None, &at(now), &mut fx),
        Outcome::Ok
    );
    assert_eq!(shown(&fx), [Event::PeerDisconnected { peer: name("bob") }]);
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
    let chat = open_chat_with(&mut state, &bob, now).id;
    let mut fx = Vec::new();
    assert!(state.away_if(&name("bob"), chat, &mut fx));
    let (id, _) = request_to(&mut state, &bob, now);
    let body = PeerRequest::ChatAnswer {
        request: id,
        answer: Answer::Declined,
        handshake: None,
    };
    let declined = Envelope::new(new_id(), bob.info.clone(), body);
    let mut fx = Vec::new();
    assert_eq!(
        state.signed_request(declined, None, &at(now), &mut fx),
        Outcome::Ok
    );
    assert_eq!(shown(&fx), [Event::RequestDeclined { peer: name("bob") }]);
    assert_eq!(state.resumable(&at(now)).len(), 1, "still away");
}
