use chrono::{TimeZone, Utc};
use p2p_shared::identity::Identity;
use p2p_shared::wire::new_id;

use super::*;

fn bob() -> PeerName {
    "bob".parse().unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_796_000_000 + secs, 0).unwrap()
}

fn typed(id: MessageId, text: &str) -> Typed {
    Typed {
        id,
        text: text.into(),
        cmd: None,
        place: None,
        tried: false,
    }
}

fn addr() -> SocketAddr {
    "127.0.0.1:40002".parse().unwrap()
}

#[test]
fn messages_for_an_away_partner_are_kept_in_order_and_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("p2p-conversations-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("conversations");
    let key = Identity::generate().public();
    let mut c = Conversations::load(path.clone()).unwrap();
    assert_eq!(
        c.queue(&bob(), typed(new_id(), "no chat"), at(0)).0,
        Queueing::NoChat
    );
    c.opened(bob(), key, addr()).0.perform().unwrap();
    assert!(!c.is_away(&bob()));
    c.away(&bob(), &key).unwrap().perform().unwrap();
    assert!(c.away(&bob(), &key).is_none(), "away once");
    let ids: Vec<MessageId> = (0..3).map(|_| new_id()).collect();
    // A script's id is kept with its message; the peer's own `cN` are not (the next run
    // numbers its commands from c1 again).
    let given = CommandId::given("job-0").unwrap();
    let cmds = [Some(given.clone()), Some(CommandId::chosen(2)), None];
    for (i, id) in ids.iter().enumerate() {
        let message = Typed {
            cmd: cmds[i].clone(),
            ..typed(*id, &format!("m{i}"))
        };
        let (queued, write) = c.queue(&bob(), message, at(i as i64));
        assert_eq!(queued, Queueing::Queued);
        write.unwrap().perform().unwrap();
    }
    assert_eq!(c.next_queued(&bob()).unwrap().0.cmd, Some(given.clone()));
    // A try of the second from the outbox was written whole: that is kept too.
    c.tried(&bob(), ids[1], true).unwrap().perform().unwrap();
    assert!(c.tried(&bob(), ids[1], true).is_none(), "news once");
    // A try that proves it did not show clears it again; and sets it once more.
    assert!(c.tried(&bob(), ids[1], false).is_some());
    c.tried(&bob(), ids[1], true).unwrap().perform().unwrap();
    // The same id again (a retry) is not kept twice.
    let (queued, write) = c.queue(&bob(), typed(ids[0], "m0"), at(9));
    assert_eq!((queued, write.is_none()), (Queueing::Queued, true));

    let mut again = Conversations::load(path).unwrap();
    assert!(again.is_away(&bob()), "after a restart, every chat is away");
    assert!(again.is_resumable(&bob(), &key));
    assert!(!again.is_resumable(&bob(), &Identity::generate().public()));
    for (i, id) in ids.iter().enumerate() {
        let (next, for_key) = again.next_queued(&bob()).unwrap();
        assert_eq!(for_key, key);
        assert_eq!(
            (next.seq, next.id, next.text.as_str()),
            (i as u64, *id, format!("m{i}").as_str())
        );
        let kept = match i {
            0 => Some(given.clone()),
            _ => None,
        };
        assert_eq!(next.cmd, kept, "message {i}");
        assert_eq!(next.tried, i == 1, "message {i}");
        assert!(again.delivered(&bob(), *id).is_some());
    }
    assert_eq!(again.next_queued(&bob()), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_outbox_is_bounded_in_count_and_age_and_ends_with_its_chat() {
    let key = Identity::generate().public();
    let mut c = Conversations::empty();
    c.opened(bob(), key, addr());
    for i in 0..MAX_QUEUED {
        assert_eq!(
            c.queue(&bob(), typed(new_id(), &i.to_string()), at(i as i64))
                .0,
            Queueing::Queued
        );
    }
    assert_eq!(
        c.queue(&bob(), typed(new_id(), "one more"), at(0)).0,
        Queueing::Full
    );
    let week = MAX_QUEUE_AGE.as_secs() as i64;
    let (expired, write) = c.expire(at(week + 1));
    assert_eq!(expired.len(), 1, "the first, a second too old");
    assert_eq!(expired[0].1.text, "0");
    assert!(write.is_some());
    assert_eq!(c.queued(&bob()), MAX_QUEUED - 1);
    let (dropped, _) = c.ended(&bob()).unwrap();
    assert_eq!(dropped.len(), MAX_QUEUED - 1);
    assert!(!c.is_resumable(&bob(), &key));
}

#[test]
fn a_chat_with_another_key_under_the_name_starts_a_new_conversation() {
    let (old, new) = (Identity::generate().public(), Identity::generate().public());
    let mut c = Conversations::empty();
    c.opened(bob(), old, addr());
    let typed_to_old = Typed {
        place: c.take_place(&bob()),
        ..typed(new_id(), "on its way to the old bob")
    };
    c.away(&bob(), &old);
    c.queue(&bob(), typed(new_id(), "for the old bob"), at(0));
    assert!(c.away(&bob(), &new).is_none(), "not that chat");
    let (_, replaced) = c.opened(bob(), new, addr());
    let replaced: Vec<&str> = replaced.iter().map(|q| q.text.as_str()).collect();
    assert_eq!(replaced, ["for the old bob"], "ends, for its outcome");
    assert_eq!(c.queued(&bob()), 0, "kept for someone else");
    assert!(c.is_resumable(&bob(), &new));
    // One typed to the old key and kept only now is not kept for the new one.
    assert_eq!(c.queue(&bob(), typed_to_old, at(1)).0, Queueing::KeyChanged);
    assert_eq!(c.queued(&bob()), 0);
    assert_eq!(c.take_place(&bob()).unwrap().key, new);
}

#[test]
fn a_message_kept_late_goes_before_those_typed_after_it() {
    let mut c = Conversations::empty();
    let key = Identity::generate().public();
    c.opened(bob(), key, addr());
    // Three messages typed while the chat is open: each takes its place as typed.
    let places: Vec<Place> = (0..3).map(|_| c.take_place(&bob()).unwrap()).collect();
    let message = |text: &str, place| Typed {
        place: Some(place),
        ..typed(new_id(), text)
    };
    c.away(&bob(), &key);
    // The third was typed after the chat went away, and kept at once; the first two were on
    // their way, and are kept when their tries run out, the second first.
    for (text, place) in [("m3", places[2]), ("m2", places[1]), ("m1", places[0])] {
        assert_eq!(
            c.queue(&bob(), message(text, place), at(0)).0,
            Queueing::Queued
        );
    }
    // One with no place (typed with no chat: never kept in fact) goes last.
    c.queue(&bob(), typed(new_id(), "m4"), at(0));
    let mut sent = Vec::new();
    while let Some((next, _)) = c.next_queued(&bob()) {
        sent.push(next.text.clone());
        c.delivered(&bob(), next.id);
    }
    assert_eq!(sent, ["m1", "m2", "m3", "m4"], "in the order typed");
    // Places keep growing past those kept.
    assert!(c.take_place(&bob()).unwrap().seq > places[2].seq);
}
