use std::time::Duration;

use chrono::{TimeZone, Utc};
use p2p_shared::identity::Identity;
use p2p_shared::record::PeerRecord;

use super::*;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_796_000_000 + secs, 0).unwrap()
}

fn record(who: &Identity, name: &str, port: u16, when: DateTime<Utc>) -> PeerRecord {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    PeerRecord::sign(who, name.parse().unwrap(), addr, when.timestamp())
}

#[test]
fn the_newest_valid_record_per_key_is_kept() {
    let (me, bob) = (Identity::generate(), Identity::generate());
    let mut book = Book::empty(me.public());
    assert_eq!(
        book.learn(record(&me, "me", 1, at(0)), Source::Direct, at(0)),
        Learned::Ignored
    );
    assert_eq!(
        book.learn(record(&bob, "bob", 2, at(0)), Source::Exchange, at(0)),
        Learned::New
    );
    assert_eq!(
        book.learn(record(&bob, "bob", 2, at(0)), Source::Exchange, at(1)),
        Learned::Stale
    );
    assert_eq!(
        book.learn(record(&bob, "bob", 3, at(5)), Source::Direct, at(5)),
        Learned::Updated
    );
    let known = book.get(&bob.public()).unwrap();
    assert_eq!(
        (known.record.addr.port(), known.source),
        (3, Source::Direct)
    );
    let mut forged = record(&bob, "bob", 4, at(9));
    forged.name = "mallory".parse().unwrap();
    assert_eq!(
        book.learn(forged, Source::Exchange, at(9)),
        Learned::Refused(RecordError::BadSignature)
    );
    let old = record(&Identity::generate(), "old", 5, at(0));
    assert_eq!(
        book.learn(old, Source::Exchange, at(2 * 86_400)),
        Learned::Refused(RecordError::TooOld)
    );
}

#[test]
fn a_peer_failing_checks_is_dead_then_back_and_dead_ones_are_not_passed_on() {
    let (me, bob, carol) = (
        Identity::generate(),
        Identity::generate(),
        Identity::generate(),
    );
    let mut book = Book::empty(me.public());
    book.learn(record(&bob, "bob", 2, at(0)), Source::Direct, at(0));
    book.learn(record(&carol, "carol", 3, at(0)), Source::Exchange, at(0));
    for i in 1..DEAD_AFTER {
        assert_eq!(book.failed(&bob.public(), at(i as i64)), None);
    }
    assert_eq!(book.failed(&bob.public(), at(10)), Some(Liveness::Dead));
    assert_eq!(book.failed(&bob.public(), at(11)), None, "said once");
    let page = book.page(None, at(12));
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].key, carol.public());
    assert_eq!(book.live(), vec![(carol.public(), page[0].addr)]);
    // A dead peer is checked again with backoff, not at every round.
    let interval = Duration::from_secs(10);
    assert!(!book
        .due(at(12), interval)
        .iter()
        .any(|(k, _)| *k == bob.public()));
    assert!(book
        .due(at(10 + 100), interval)
        .iter()
        .any(|(k, _)| *k == bob.public()));
    let addr = book.get(&bob.public()).unwrap().record.addr;
    assert_eq!(
        book.seen(&bob.public(), addr, at(200)),
        Some(Liveness::Back)
    );
    assert_eq!(book.live().len(), 2);
}

#[test]
fn the_long_dead_are_forgotten_and_a_full_book_makes_room_only_from_the_dead() {
    let me = Identity::generate();
    let mut book = Book::empty(me.public());
    let peers: Vec<Identity> = (0..MAX_BOOK).map(|_| Identity::generate()).collect();
    for (i, p) in peers.iter().enumerate() {
        book.learn(
            record(p, &format!("p{i}"), 1000 + i as u16, at(0)),
            Source::Exchange,
            at(0),
        );
    }
    let late = Identity::generate();
    assert_eq!(
        book.learn(record(&late, "late", 9, at(1)), Source::Exchange, at(1)),
        Learned::Ignored,
        "full of live peers"
    );
    for _ in 0..DEAD_AFTER {
        book.failed(&peers[0].public(), at(2));
    }
    assert_eq!(
        book.learn(record(&late, "late", 9, at(3)), Source::Exchange, at(3)),
        Learned::New,
        "in place of the dead one"
    );
    assert!(book.get(&peers[0].public()).is_none());
    for _ in 0..DEAD_AFTER {
        book.failed(&peers[1].public(), at(4));
    }
    let week = FORGET_AFTER.as_secs() as i64;
    book.forget_long_dead(at(4 + week - 1));
    assert!(book.get(&peers[1].public()).is_some());
    book.forget_long_dead(at(4 + week));
    assert!(book.get(&peers[1].public()).is_none());
}

#[test]
fn the_book_is_written_when_changed_and_read_back() {
    let dir = std::env::temp_dir().join(format!("p2p-book-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("book");
    let (me, bob) = (Identity::generate(), Identity::generate());
    let mut book = Book::load(path.clone(), me.public()).unwrap();
    assert!(book.take_write().is_none(), "nothing changed");
    book.learn(record(&bob, "bob", 2, at(0)), Source::Direct, at(0));
    book.seen(&bob.public(), "127.0.0.1:2".parse().unwrap(), at(1));
    book.take_write().unwrap().perform().unwrap();
    assert!(book.take_write().is_none(), "written once");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("not a record\n");
    std::fs::write(&path, text).unwrap();
    let again = Book::load(path, me.public()).unwrap();
    assert_eq!(again.list(), book.list());
    let _ = std::fs::remove_dir_all(&dir);
}
