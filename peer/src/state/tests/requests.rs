//! How each chat request, ours or another's, ends: in exactly one event.

use super::*;

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
    assert_eq!(
        state
            .pins
            .pin_of(Namespace::Local, &name("bob"), &mallory.info.key),
        Pin::New
    );
    // The real bob's request, which the registry vouches for, replaces mallory's record
    // (one per name); alice says yes.
    let (outcome, events) = ask_vouched(&mut state, &bob, Vouch::Registered, now);
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
    let answering = state.answer(None, true, None, &at(now), &mut fx).unwrap();
    assert_eq!(answering.answer, Answer::Accepted);
    assert!(
        fx.iter().any(|e| matches!(e, Effect::Write(_))),
        "the pin is saved"
    );
    assert_eq!(
        state
            .pins
            .pin_of(Namespace::Local, &name("bob"), &bob.info.key),
        Pin::Known
    );
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
        .answer(Some(name("bob")), false, None, &at(now), &mut fx)
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
        .answer(Some(name("carol")), true, None, &at(now), &mut fx)
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
        state
            .answer(None, true, None, &at(now + TTL), &mut fx)
            .err(),
        Some(PeerError::NonePending)
    );
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
            addr: bob.info.addr,
            key: PeerKey(bob.info.key),
            // First contact, and no registry said who bob is.
            verified: false,
        }]
    );
    ask(&mut state, &bob, &at(now));
    let mut fx = Vec::new();
    let yes = state.answer(None, true, None, &at(now), &mut fx).unwrap();
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
    let (_, initiator, _) = start(&state, &bob);
    state.request_sent(id, bob.info.addr, initiator, None);
    let answer = |from: &Someone| {
        let body = PeerRequest::ChatAnswer {
            request: id,
            answer: Answer::Declined,
            handshake: None,
        };
        Envelope::new(new_id(), from.info.clone(), body)
    };
    let mut fx = Vec::new();
    let early = state.signed_request(answer(&bob), None, &at(now), &mut fx);
    assert!(matches!(
        early,
        Outcome::Error {
            code: ErrorCode::Busy,
            ..
        }
    ));
    state.request_pending(id, bob.info.clone(), (TTL, false), &at(now), &mut fx);
    let forged = state.signed_request(answer(&mallory), None, &at(now), &mut fx);
    assert!(matches!(
        forged,
        Outcome::Error {
            code: ErrorCode::UnknownRequest,
            ..
        }
    ));
    let mut fx = Vec::new();
    assert_eq!(
        state.signed_request(answer(&bob), None, &at(now), &mut fx),
        Outcome::Ok
    );
    assert_eq!(shown(&fx), [Event::RequestDeclined { peer: name("bob") }]);
}

#[test]
fn leaving_ends_every_chat_and_request_once() {
    let now = Instant::now();
    let (bob, carol, dave) = (someone("bob", 2), someone("carol", 3), someone("dave", 4));
    let mut state = alice();
    open_chat_with(&mut state, &bob, now);
    ask(&mut state, &carol, &at(now));
    let (to_dave, _) = request_to(&mut state, &dave, now);
    let mut fx = Vec::new();
    let leaving = state.leave(&mut fx);
    assert_eq!(leaving.goodbyes.len(), 1);
    assert_eq!(leaving.unanswered.len(), 1);
    assert_eq!(
        leaving.withdraw,
        [outgoing::Withdraw {
            request: to_dave,
            addr: dave.info.addr
        }]
    );
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
fn a_yes_that_cannot_be_kept_and_a_no_nobody_heard_each_end_in_one_line() {
    let now = Instant::now();
    let (bob, carol) = (someone("bob", 2), someone("carol", 3));
    let mut state = alice();
    let (asked, _) = ask(&mut state, &carol, &at(now));
    assert!(matches!(asked, Outcome::Pending { .. }));
    // Meanwhile alice asked another "carol", whose key is pinned by its pending reply: the
    // carol who asked first no longer has the name's pinned key.
    let other_carol = someone("carol", 4);
    request_to(&mut state, &other_carol, now);
    ask(&mut state, &bob, &at(now));
    let mut fx = Vec::new();
    let yes = state
        .answer(Some(name("carol")), true, None, &at(now), &mut fx)
        .unwrap();
    assert_eq!(
        yes.answer,
        Answer::Declined,
        "a yes that cannot be kept is a no"
    );
    state.answer_sent(yes, Ok(()), &mut fx);
    let no = state
        .answer(Some(name("bob")), false, None, &at(now), &mut fx)
        .unwrap();
    let unheard = PeerError::NoLongerWaiting { peer: name("bob") };
    state.answer_sent(no, Err(unheard.clone()), &mut fx);
    assert_eq!(
        shown(&fx),
        [
            Event::KeyChanged {
                peer: name("carol"),
                pinned: other_carol.info.key.fingerprint(),
                offered: carol.info.key.fingerprint(),
                pinned_key: other_carol.info.key,
                offered_key: carol.info.key,
            },
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

#[test]
fn a_request_whose_handshake_is_not_by_its_signer_or_not_for_us_is_refused_unseen() {
    let now = Instant::now();
    let (bob, mallory) = (someone("bob", 2), someone("mallory", 9));
    let mut state = alice();
    let mut refused = |from: &Someone, by: &Identity, to: Option<&str>| {
        let id = new_id();
        let to = Recipient::Unknown(to.map(name));
        let (_, pattern, handshake) = Initiator::start(by, id, to);
        let body = PeerRequest::ChatRequest { pattern, handshake };
        let mut fx = Vec::new();
        let outcome = state.signed_request(
            Envelope::new(id, from.info.clone(), body),
            None,
            &at(now),
            &mut fx,
        );
        assert_eq!(
            outcome.code(),
            Some(ErrorCode::InvalidRequest),
            "{outcome:?}"
        );
        assert_eq!(shown(&fx), [], "nothing shown");
    };
    // Mallory signs a request around bob's message 1 (misbinding), or bob's is meant for carol.
    refused(&mallory, &bob.identity, None);
    refused(&bob, &bob.identity, Some("carol"));
    assert_eq!(state.snapshot(now).incoming.len(), 0, "nothing pending");
}

#[test]
fn a_request_shows_whether_the_registry_vouches_for_its_name_and_refuses_an_impostor() {
    let now = Instant::now();
    let (bob, carol, mallory) = (someone("bob", 2), someone("carol", 3), someone("bob", 9));
    let mut state = alice();
    let arrived = |events: Vec<Event>| match events.as_slice() {
        [.., Event::RequestArrived { verified, .. }] => *verified,
        other => panic!("a request line expected: {other:?}"),
    };
    let (_, shown) = ask_vouched(&mut state, &bob, Vouch::Registered, now);
    assert!(arrived(shown), "the registry binds bob to this key");
    let (_, shown) = ask_vouched(&mut state, &carol, Vouch::Unregistered, now);
    assert!(!arrived(shown), "a name nobody vouches for is unverified");
    let (_, shown) = ask_vouched(&mut state, &carol, Vouch::NoRegistry, now);
    assert!(!arrived(shown));

    // A stranger calling itself bob, with its own key: refused, and named an impostor.
    let registered = bob.info.key;
    let (outcome, shown) = ask_vouched(&mut state, &mallory, Vouch::Impostor { registered }, now);
    assert_eq!(outcome.code(), Some(ErrorCode::KeyChanged), "{outcome:?}");
    assert_eq!(
        shown,
        [Event::Impostor {
            peer: name("bob"),
            offered: mallory.info.key.fingerprint(),
            registered: registered.fingerprint(),
            offered_key: mallory.info.key,
            registered_key: registered,
        }]
    );
    // bob's own request is still the one pending under his name.
    let pending = state.snapshot(now).incoming;
    assert_eq!(pending.len(), 2, "bob and carol");
    let mut fx = Vec::new();
    let yes = state
        .answer(Some(name("bob")), true, None, &at(now), &mut fx)
        .unwrap();
    assert_eq!(yes.request.key, bob.info.key);
}

#[test]
fn a_stranger_displaced_by_the_owner_of_the_name_is_told_declined() {
    let now = Instant::now();
    let (stranger, carol) = (someone("carol", 9), someone("carol", 3));
    let mut state = alice();
    let pending = |outcome: &Outcome| matches!(outcome, Outcome::Pending { .. });
    // Nobody vouches for the stranger's carol: pending, unverified.
    let (_, outcome, fx) = ask_for_effects(&mut state, &stranger, Vouch::Unregistered, now);
    assert!(pending(&outcome), "{outcome:?}");
    assert_eq!(told(&fx), []);
    // The stranger asking again replaces its own request: it knows, nobody is told.
    let (asked, outcome, fx) = ask_for_effects(&mut state, &stranger, Vouch::Unregistered, now);
    assert!(pending(&outcome), "{outcome:?}");
    assert_eq!(told(&fx), []);

    // The carol the registry vouches for takes the name; the stranger, whose request will
    // never be answered now, is told so instead of waiting for its timeout.
    let (_, outcome, fx) = ask_for_effects(&mut state, &carol, Vouch::Registered, now);
    assert!(pending(&outcome), "{outcome:?}");
    assert_eq!(told(&fx), [(stranger.info.addr, asked, Answer::Declined)]);
    let withdrawn = Event::RequestWithdrawn {
        peer: name("carol"),
        why: Withdrawal::Replaced,
    };
    assert!(matches!(
        shown(&fx).as_slice(),
        [first, Event::RequestArrived { verified: true, .. }] if *first == withdrawn
    ));
    let mut fx = Vec::new();
    let yes = state.answer(None, true, None, &at(now), &mut fx).unwrap();
    assert_eq!(yes.request.key, carol.info.key, "the only one pending");
}

#[test]
fn a_request_refused_whatever_the_registry_says_is_refused_before_it_is_asked() {
    let now = Instant::now();
    let mut state = alice();
    let from_ip = |who: &str, ip: &str| {
        let mut someone = someone(who, 1);
        someone.info.addr = format!("{ip}:1").parse().unwrap();
        someone
    };
    let before = |state: &PeerState, from: &Someone| {
        let refusal = state.refusal_before_vouching(&from.info, &at(now));
        refusal.as_ref().and_then(Code::code)
    };
    // Four requesters fill the share of one address.
    for i in 0..incoming::MAX_PER_ADDRESS {
        let requester = from_ip(&format!("r{i}"), "127.1.0.1");
        assert_eq!(before(&state, &requester), None, "the registry is asked");
        let (outcome, _) = ask_vouched(&mut state, &requester, Vouch::Unregistered, now);
        assert!(matches!(outcome, Outcome::Pending { .. }), "{outcome:?}");
    }
    // The fifth is refused before the registry is asked, and the same after, whatever it says.
    let fifth = from_ip("r4", "127.1.0.1");
    assert_eq!(before(&state, &fifth), Some(ErrorCode::TooManyRequests));
    let (outcome, shown) = ask_vouched(&mut state, &fifth, Vouch::Registered, now);
    assert_eq!(
        outcome.code(),
        Some(ErrorCode::TooManyRequests),
        "{outcome:?}"
    );
    assert_eq!(shown, []);
    // One from another address could be taken: the registry is asked about it.
    assert_eq!(before(&state, &from_ip("r5", "127.1.0.2")), None);

    // The partner of an open chat, under its key, asks again: it lost the chat's keys (it
    // restarted before we noticed), and the request reopens the chat.
    let bob = from_ip("bob", "127.2.0.1");
    open_chat_with(&mut state, &bob, now);
    assert_eq!(before(&state, &bob), None);
    // Another key calling itself bob may be an impostor the registry knows: asked, and
    // warned about.
    assert_eq!(before(&state, &from_ip("bob", "127.2.0.2")), None);
    // Our own name; a full screen.
    let me = from_ip("alice", "127.3.0.1");
    assert_eq!(before(&state, &me), Some(ErrorCode::InvalidRequest));
    let full = Context {
        screen_room: false,
        ..at(now)
    };
    let refusal = state.refusal_before_vouching(&from_ip("r6", "127.3.0.2").info, &full);
    assert_eq!(refusal.as_ref().and_then(Code::code), Some(ErrorCode::Busy));
}

#[test]
fn a_chat_keeps_the_partners_noise_static_key_for_ik_next_time() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    assert_eq!(
        state.pinned_noise(&name("bob"), &bob.info.key, &at(now)),
        None
    );
    open_chat_with(&mut state, &bob, now);
    let noise = bob.identity.noise().public();
    assert_eq!(
        state.pinned_noise(&name("bob"), &bob.info.key, &at(now)),
        Some(noise)
    );
    // Only for the key pinned for the name.
    let other = Identity::generate().public();
    assert_eq!(state.pinned_noise(&name("bob"), &other, &at(now)), None);
}

#[test]
fn a_request_the_registry_did_not_answer_about_says_so() {
    let now = Instant::now();
    let mut state = alice();
    let (_, shown) = ask_vouched(&mut state, &someone("bob", 2), Vouch::Unanswered, now);
    let [Event::RequestArrived {
        verified,
        unanswered,
        ..
    }] = shown.as_slice()
    else {
        panic!("one request line: {shown:?}");
    };
    assert!(
        !verified && *unanswered,
        "not the same as nobody registered"
    );
}

#[test]
fn an_acceptance_sent_again_after_a_lost_reply_is_answered_ok_and_changes_nothing() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let (id, initiator, first) = start(&state, &bob);
    state.request_sent(id, bob.info.addr, initiator, None);
    let mut fx = Vec::new();
    state.request_pending(id, bob.info.clone(), (TTL, false), &at(now), &mut fx);
    let alice_key = state.origin.identity.public();
    let pattern = p2p_shared::handshake::Pattern::IX;
    let (_, second) = Responder::accept(
        &bob.identity,
        &bob.info.name,
        id,
        pattern,
        &first,
        &alice_key,
    )
    .unwrap();
    let body = PeerRequest::ChatAnswer {
        request: id,
        answer: Answer::Accepted,
        handshake: Some(second),
    };
    let answer = |state: &mut PeerState, fx: &mut Vec<Effect>| {
        let accepted = Envelope::new(new_id(), bob.info.clone(), body.clone());
        state.signed_request(accepted, None, &at(now), fx)
    };
    assert_eq!(answer(&mut state, &mut fx), Outcome::Ok);
    // Our `ok` was lost; bob sends the same acceptance again.
    let mut again = Vec::new();
    assert_eq!(
        answer(&mut state, &mut again),
        Outcome::Ok,
        "not unknown_request"
    );
    assert_eq!(shown(&again), [], "nothing new to show");
    assert_eq!(state.snapshot(now).chats.len(), 1, "the chat stays open");
    // An acceptance of a request that opened nothing is still unknown.
    let stray = PeerRequest::ChatAnswer {
        request: new_id(),
        answer: Answer::Accepted,
        handshake: None,
    };
    let stray = Envelope::new(new_id(), bob.info.clone(), stray);
    let outcome = state.signed_request(stray, None, &at(now), &mut again);
    assert_eq!(outcome.code(), Some(ErrorCode::UnknownRequest));
}

#[test]
fn only_the_requester_withdraws_its_request_and_then_yes_finds_none() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    let (id, outcome, _) = ask_for_effects(&mut state, &bob, Vouch::NoRegistry, now);
    assert!(matches!(outcome, Outcome::Pending { .. }), "{outcome:?}");
    let withdraw = |from: &PeerInfo, request: MessageId| {
        let body = PeerRequest::ChatWithdraw { request };
        Envelope::new(new_id(), from.clone(), body)
    };
    // Another key, as itself or in bob's name; bob's key with another id.
    let mallory = someone("mallory", 9);
    let in_bobs_name = PeerInfo {
        key: mallory.info.key,
        ..bob.info.clone()
    };
    for forged in [
        withdraw(&mallory.info, id),
        withdraw(&in_bobs_name, id),
        withdraw(&bob.info, new_id()),
    ] {
        let mut fx = Vec::new();
        let refused = state.signed_request(forged, None, &at(now), &mut fx);
        assert_eq!(
            refused.code(),
            Some(ErrorCode::UnknownRequest),
            "{refused:?}"
        );
        assert!(fx.is_empty(), "nothing shown or sent: {fx:?}");
    }
    assert_eq!(state.snapshot(now).incoming.len(), 1, "still pending");

    let mut fx = Vec::new();
    let withdrawn = state.signed_request(withdraw(&bob.info, id), None, &at(now), &mut fx);
    assert_eq!(withdrawn, Outcome::Ok);
    assert_eq!(
        shown(&fx),
        [Event::RequestWithdrawn {
            peer: name("bob"),
            why: Withdrawal::Left
        }]
    );
    assert!(told(&fx).is_empty(), "bob is not told: he withdrew it");
    let mut fx = Vec::new();
    let yes = state.answer(Some(name("bob")), true, None, &at(now), &mut fx);
    assert_eq!(
        yes.err(),
        Some(PeerError::NonePendingFrom { name: name("bob") })
    );
    let again = state.signed_request(withdraw(&bob.info, id), None, &at(now), &mut fx);
    assert_eq!(again.code(), Some(ErrorCode::UnknownRequest), "one end");
    assert_eq!(state.next_deadline(), None, "nothing left to expire");
}

#[test]
fn a_conversation_has_a_chat_while_it_is_open_or_away_and_not_once_it_ended() {
    let now = Instant::now();
    let bob = someone("bob", 2);
    let mut state = alice();
    assert!(!state.has_chat_with(&name("bob")), "no chat yet");
    let chat = open_chat_with(&mut state, &bob, now).id;
    assert!(state.has_chat_with(&name("bob")));
    assert!(!state.has_chat_with(&name("carol")));
    // Away: its messages are kept, so a conversation with it goes on.
    let mut fx = Vec::new();
    assert!(state.away_if(&name("bob"), chat, &mut fx));
    assert!(state.has_chat_with(&name("bob")));
    let mut fx = Vec::new();
    assert!(state.end_away(&name("bob"), &mut fx));
    assert!(!state.has_chat_with(&name("bob")), "ended for good");
    // Ended by either side while open.
    open_chat_with(&mut state, &bob, now);
    let mut fx = Vec::new();
    assert!(state.disconnect(&name("bob"), &mut fx).is_some());
    assert!(!state.has_chat_with(&name("bob")));
}
