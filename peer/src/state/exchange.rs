//! Peer exchange, as state: what an `exchange` we receive does to the book and what we
//! answer, what the answer to ours does, and the book as the user sees it (`peers`).
//!
//! An exchange carries the sender's own record first, signed for the address the receiver
//! reached it at, then a page of the records it knows (docs/protocol.md, "Peer exchange").
//! Each record is checked on its own (`book.rs`); only the sender's own counts as heard from
//! that peer directly.

use std::net::{IpAddr, SocketAddr};

use p2p_shared::identity::PublicKey;
use p2p_shared::record::PeerRecord;
use p2p_shared::{Outcome, PeerInfo, PeerName};

use super::book::{Learned, Liveness, Source};
use super::{Context, Effect, PeerState};
use crate::event::{BookEntry, Event, PeerKey};

impl PeerState {
    /// Our own record, at `ip` (where the other side reaches us), signed now.
    pub fn own_record(&self, ip: IpAddr, cx: &Context) -> PeerRecord {
        let addr = SocketAddr::new(ip, self.origin.port);
        let me = &self.origin.identity;
        PeerRecord::sign(me, self.origin.name, addr, cx.utc.timestamp())
    }

    /// The records of the book to pass on to `to`: a page less our own.
    pub fn exchange_page(&self, to: Option<&PublicKey>, cx: &Context) -> Vec<PeerRecord> {
        self.book.page(to, cx.utc)
    }

    /// An `exchange` from `from` came in at `local`: takes what is valid, answers with our
    /// record for `local` and a page of the book.
    pub fn exchange_received(
        &mut self,
        from: &PeerInfo,
        records: Vec<PeerRecord>,
        local: SocketAddr,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> Outcome {
        self.learn_all(&from.key, records, cx, fx);
        let mut answer = vec![self.own_record(local.ip(), cx)];
        answer.extend(self.book.page(Some(&from.key), cx.utc));
        Outcome::Records { records: answer }
    }

    /// The answer to our exchange with `addr`, signed by `key`: how many peers were new.
    pub fn exchange_answered(
        &mut self,
        addr: SocketAddr,
        key: &PublicKey,
        records: Vec<PeerRecord>,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> usize {
        let new = self.learn_all(key, records, cx, fx);
        self.reached(key, addr, cx, fx);
        new
    }

    /// A reply signed by `key` came from `addr`: a peer of the book is alive there.
    pub fn reached(
        &mut self,
        key: &PublicKey,
        addr: SocketAddr,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) {
        if self.book.seen(key, addr, cx.utc) == Some(Liveness::Back) {
            let name = self.book.get(key).map(|k| k.record.name);
            if let Some(peer) = name {
                let key = PeerKey(*key);
                fx.push(Effect::Show(
                    Event::KnownPeerBack { peer, addr, key }.into(),
                ));
            }
        }
        self.flush_book(fx);
    }

    /// A check of `key` found nobody there, or another key.
    pub fn unreached(&mut self, key: &PublicKey, cx: &Context, fx: &mut Vec<Effect>) {
        if self.book.failed(key, cx.utc) == Some(Liveness::Dead) {
            if let Some(known) = self.book.get(key) {
                let (peer, addr) = (known.record.name, known.record.addr);
                let key = PeerKey(*key);
                fx.push(Effect::Show(
                    Event::KnownPeerDead { peer, addr, key }.into(),
                ));
            }
            self.nearby_dead(key, fx);
        }
        self.book.forget_long_dead(cx.utc);
        self.flush_book(fx);
    }

    /// The peers to check now, one check interval apart.
    pub fn due_checks(
        &self,
        interval: std::time::Duration,
        cx: &Context,
    ) -> Vec<(PublicKey, SocketAddr)> {
        self.book.due(cx.utc, interval)
    }

    /// Live peers of the book, to exchange with.
    pub fn live_peers(&self) -> Vec<(PublicKey, SocketAddr)> {
        self.book.live()
    }

    /// Where the book says `name` is, when no registry answers: the peer whose key is
    /// pinned for `name`, or the only one the book has under that name (then not vouched
    /// for); none if the book has several and none is pinned.
    pub fn book_lookup(&self, name: &PeerName, cx: &Context) -> Option<(PeerInfo, bool)> {
        let keys = self.book.keys_named(name);
        let pinned = self.pins.pinned(cx.namespace, name);
        let (key, vouched) = match pinned {
            Some(pinned) if keys.contains(&pinned) => (pinned, true),
            _ if keys.len() == 1 => (keys[0], false),
            _ => return None,
        };
        let addr = self.book.get(&key)?.record.addr;
        Some((
            PeerInfo {
                name: *name,
                addr,
                key,
            },
            vouched,
        ))
    }

    /// The book as `peers` shows it: a name is verified if a pin here vouches for its key.
    pub fn book_entries(&self, cx: &Context) -> Vec<BookEntry> {
        self.book
            .list()
            .into_iter()
            .map(|known| BookEntry {
                verified: self
                    .pins
                    .vouches(cx.namespace, &known.record.name, &known.record.key),
                name: known.record.name,
                addr: known.record.addr,
                key: known.record.key,
                source: known.source,
                seen: known.seen,
                dead_since: known.dead_since,
            })
            .collect()
    }

    fn learn_all(
        &mut self,
        sender: &PublicKey,
        records: Vec<PeerRecord>,
        cx: &Context,
        fx: &mut Vec<Effect>,
    ) -> usize {
        let mut new = 0;
        for record in records {
            let source = match record.key == *sender {
                true => Source::Direct,
                false => Source::Exchange,
            };
            if self.book.learn(record, source, cx.utc) == Learned::New {
                new += 1;
            }
        }
        self.flush_book(fx);
        new
    }

    fn flush_book(&mut self, fx: &mut Vec<Effect>) {
        if let Some(write) = self.book.take_write() {
            fx.push(Effect::Write(write));
        }
    }
}
