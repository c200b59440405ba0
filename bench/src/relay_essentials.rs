//! What the relay floor does in its `--essentials` mode: the work a chat message costs that
//! no design of the peer can leave out, and nothing else.
//!
//! Issue 19 times the peer against a bare relay (`relay.rs`), which carries a line in the
//! clear and forgets it. The peer must also (docs/security.md, docs/decisions.md):
//!
//! - **seal** each message and its acknowledgement: a JSON envelope of the protocol's own
//!   types (`Envelope`, `SealedRequest::ChatMessage`, `ReplyBody`), encrypted with
//!   ChaCha20-Poly1305, as a chat's frames are, and opened and decoded at the other end;
//! - **store** each message durably before it is acknowledged, and before its sender reports
//!   it delivered, so that an acknowledged message is in both histories: a row in SQLite in
//!   write-ahead-log mode, written by a thread of its own (a disk never holds the event
//!   loop), rows waiting behind each other sharing one transaction.
//!
//! A relay in this mode does both, in the relay's own structure, so that the bench can say
//! how much of the distance between the peer and the bare relay these two cost, and how much
//! is the peer's own. It measures cost, not secrecy: the key is fixed, known to anyone who
//! reads this file, and never used outside the bench. A nonce is the sealing side's
//! listening port and a count of its frames: the two relays of a pair listen at once, on two
//! ports, so they never use one nonce twice (a later relay on a freed port may repeat one;
//! with a key anyone knows, that costs nothing).
//!
//! The store keeps what a history must answer and no more: a message's id stored once (its
//! key) and a chat's lines in order (one index). docs/benchmarks.md, "The floor with the
//! essentials", has the measurements.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use futures::channel::oneshot;
use futures::io::{AsyncRead, AsyncReadExt};
use p2p_shared::identity::Identity;
use p2p_shared::wire::{new_id, Envelope, MessageId, Outcome, PeerInfo, ReplyBody, SealedRequest};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use rusqlite::{params, Connection};

/// The fixed key of every relay in this mode (see the module's comment).
const KEY: [u8; 32] = *b"p2p-bench relay floor: not a key";
/// The longest sealed frame a relay reads.
const MAX_SEALED: usize = 64 * 1024;
/// Rows waiting for the disk thread, as the peer's disk queue.
const STORE_QUEUE: usize = 1_024;
/// How long the database waits for another holder at start.
const OPEN_WAIT: Duration = Duration::from_secs(1);
/// As the peer's history (`peer/src/history.rs`, `peer/src/disk.rs`): the log is copied into
/// the database after this long without a row, or once it holds this many rows, never by
/// SQLite in the commit of a message.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(100);
const LOG_ROWS_MAX: usize = 1_000;

/// One side's sealing: its key, its name in envelopes and its frames' numbers.
pub struct Sealer {
    key: LessSafeKey,
    me: PeerInfo,
    /// The first four bytes of every nonce this side seals with: its listening port.
    prefix: [u8; 4],
    next: AtomicU64,
}

/// A message opened at the receiver.
pub struct Opened {
    pub seq: u64,
    pub id: MessageId,
    pub sender: String,
    pub text: String,
}

impl Sealer {
    /// A sealer for the relay named `name`, listening on `addr`.
    pub fn new(name: &str, addr: std::net::SocketAddr) -> anyhow::Result<Sealer> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, &KEY)
            .map_err(|_| anyhow::anyhow!("ChaCha20-Poly1305 refused a 32-byte key"))?;
        let prefix = u32::from(addr.port()).to_be_bytes();
        Ok(Sealer {
            key: LessSafeKey::new(key),
            me: PeerInfo {
                name: name.parse().context("a relay's name must be a peer name")?,
                addr,
                key: Identity::generate().public(),
            },
            prefix,
            next: AtomicU64::new(0),
        })
    }

    /// The frame of message `seq`: its envelope, with a fresh id (returned), sealed.
    pub fn seal_message(&self, seq: u64, text: &str) -> (MessageId, Vec<u8>) {
        let body = SealedRequest::ChatMessage {
            text: text.to_owned(),
            seq,
            again: false,
        };
        let id = new_id();
        (
            id,
            self.seal(&Envelope::new(id, self.me.clone(), body).encode()),
        )
    }

    /// The frame acknowledging the message `re`.
    pub fn seal_ack(&self, re: MessageId) -> Vec<u8> {
        let body = ReplyBody::new(Some(re), Outcome::Ok);
        self.seal(&Envelope::new(new_id(), self.me.clone(), body).encode())
    }

    /// `length (4, big endian) | nonce (12) | ciphertext and tag`.
    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let counter = self.next.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..4].copy_from_slice(&self.prefix);
        nonce[4..].copy_from_slice(&counter.to_be_bytes());
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .expect("a frame far below ChaCha20-Poly1305's limit");
        let mut frame = Vec::with_capacity(4 + NONCE_LEN + sealed.len());
        frame.extend_from_slice(&((NONCE_LEN + sealed.len()) as u32).to_be_bytes());
        frame.extend_from_slice(&nonce);
        frame.extend_from_slice(&sealed);
        frame
    }

    /// Opens a message's frame body (what follows its length); `None` if it does not open
    /// or is not a chat message.
    pub fn open_message(&self, body: Vec<u8>) -> Option<Opened> {
        let plaintext = self.open(body)?;
        let envelope = Envelope::<SealedRequest>::decode(&plaintext).ok()?;
        match envelope.body {
            SealedRequest::ChatMessage { text, seq, .. } => Some(Opened {
                seq,
                id: envelope.id,
                sender: envelope.from.name.to_string(),
                text,
            }),
            _ => None,
        }
    }

    /// Whether an acknowledgement's frame body opens to `ok` for the message `re`.
    pub fn open_ack(&self, body: Vec<u8>, re: MessageId) -> bool {
        self.open(body)
            .and_then(|plaintext| Envelope::<ReplyBody>::decode(&plaintext).ok())
            .is_some_and(|ack| ack.body.re == Some(re) && matches!(ack.body.result, Outcome::Ok))
    }

    fn open(&self, mut body: Vec<u8>) -> Option<Vec<u8>> {
        if body.len() < NONCE_LEN {
            return None;
        }
        let mut sealed = body.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&body).ok()?;
        let len = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut sealed)
            .ok()?
            .len();
        sealed.truncate(len);
        Some(sealed)
    }
}

/// Reads one sealed frame's body (after its length) from `stream`: a header read, then the
/// body's, as the peer reads a frame.
pub async fn read_frame(mut stream: impl AsyncRead + Unpin) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_SEALED {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes, over {MAX_SEALED}"),
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

/// A row to store, and who waits for it.
struct Row {
    id: MessageId,
    peer: String,
    sender: String,
    text: String,
    stored: oneshot::Sender<bool>,
}

/// The handle to the disk thread.
pub struct Store {
    rows: mpsc::SyncSender<Row>,
}

impl Store {
    /// Opens (or creates) the database in `dir` and starts its thread.
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let db = Connection::open(dir.join("history.sqlite"))?;
        db.busy_timeout(OPEN_WAIT)?;
        create(&db)?;
        let (rows, queue) = mpsc::sync_channel(STORE_QUEUE);
        std::thread::Builder::new()
            .name("disk".into())
            .spawn(move || write_rows(&db, &queue))
            .context("cannot start the disk thread")?;
        Ok(Store { rows })
    }

    /// Stores one message of the chat with `peer`; true once it is in the database.
    pub async fn store(&self, id: MessageId, peer: &str, sender: &str, text: &str) -> bool {
        let (stored, done) = oneshot::channel();
        let row = Row {
            id,
            peer: peer.to_owned(),
            sender: sender.to_owned(),
            text: text.to_owned(),
            stored,
        };
        // Never full in the bench: each side has at most `WINDOW` messages in flight, each
        // waiting for its row. Were it full, the message would fail (`not stored`), which
        // the bench counts, rather than block the event loop.
        self.rows.try_send(row).is_ok() && done.await.unwrap_or(false)
    }
}

/// As the peer's history (peer/src/history.rs): held exclusively, a write-ahead log on disk
/// at each commit without waiting for the disk, checkpoints made by the disk thread; one
/// table keyed by the message's id, one index for a chat's lines in order.
fn create(db: &Connection) -> rusqlite::Result<()> {
    db.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.pragma_update(None, "wal_autocheckpoint", 0)?;
    db.pragma_update(None, "journal_size_limit", 4 * 1024 * 1024)?;
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS lines (
             id BLOB PRIMARY KEY, chat TEXT NOT NULL, sender TEXT NOT NULL,
             text TEXT NOT NULL, at INTEGER NOT NULL
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS lines_by_chat ON lines (chat, at);",
    )
}

/// The disk thread: whatever waits is written in one transaction; the log is checkpointed
/// in a pause or when full, as the peer's disk thread does it.
fn write_rows(db: &Connection, queue: &mpsc::Receiver<Row>) {
    let mut in_log = 0;
    loop {
        // With nothing in the log, no pause to wait for: sleep until the next row.
        let next = match in_log {
            0 => queue
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            _ => queue.recv_timeout(CHECKPOINT_PAUSE),
        };
        let first = match next {
            Ok(row) => row,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                in_log = 0;
                checkpoint(db);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut rows = vec![first];
        rows.extend(std::iter::from_fn(|| queue.try_recv().ok()));
        let stored = insert_all(db, &rows).map_err(|e| eprintln!("relay: not stored: {e}"));
        in_log += rows.len();
        if in_log >= LOG_ROWS_MAX {
            in_log = 0;
            checkpoint(db);
        }
        for row in rows {
            let _ = row.stored.send(stored.is_ok());
        }
    }
}

fn checkpoint(db: &Connection) {
    if let Err(e) = db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        eprintln!("relay: the log was not checkpointed: {e}");
    }
}

/// Stores `rows`: one alone as its own transaction (as SQLite makes it), several in one
/// that is rolled back if any fails.
fn insert_all(db: &Connection, rows: &[Row]) -> rusqlite::Result<()> {
    let insert = |db: &Connection, row: &Row| {
        let mut insert = db.prepare_cached(
            "INSERT OR IGNORE INTO lines (id, chat, sender, text, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let at = Utc::now().timestamp_micros();
        let row = params![row.id.as_bytes(), row.peer, row.sender, row.text, at];
        insert.execute(row).map(drop)
    };
    match rows {
        [row] => insert(db, row),
        _ => {
            let transaction = db.unchecked_transaction()?;
            for row in rows {
                insert(&transaction, row)?;
            }
            transaction.commit()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(name: &str, port: u16) -> Sealer {
        Sealer::new(name, ([127, 0, 0, 1], port).into()).unwrap()
    }

    fn body(frame: &[u8]) -> Vec<u8> {
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4, "the length covers the rest");
        frame[4..].to_vec()
    }

    #[test]
    fn a_message_and_its_ack_open_at_the_other_side() {
        let (alice, bob) = (sealer("alice", 1), sealer("bob", 2));
        let (id, frame) = alice.seal_message(7, "m7 hi");
        let opened = bob.open_message(body(&frame)).expect("opens");
        assert_eq!(
            (
                opened.seq,
                opened.id,
                opened.sender.as_str(),
                opened.text.as_str()
            ),
            (7, id, "alice", "m7 hi")
        );
        let ack = bob.seal_ack(opened.id);
        assert!(alice.open_ack(body(&ack), opened.id));
        assert!(
            !alice.open_ack(body(&ack), new_id()),
            "another message's ack"
        );
    }

    #[test]
    fn a_changed_frame_does_not_open() {
        let (alice, bob) = (sealer("alice", 1), sealer("bob", 2));
        let mut frame = body(&alice.seal_message(1, "m1").1);
        let last = frame.len() - 1;
        frame[last] ^= 1;
        assert!(bob.open_message(frame).is_none());
        assert!(
            bob.open_message(vec![0; 3]).is_none(),
            "shorter than a nonce"
        );
    }

    #[test]
    fn frames_never_share_a_nonce() {
        let (alice, bob) = (sealer("alice", 1), sealer("bob", 2));
        let frames = [
            alice.seal_message(1, "x").1,
            alice.seal_message(1, "x").1,
            bob.seal_message(1, "x").1,
        ];
        let nonces: std::collections::HashSet<&[u8]> =
            frames.iter().map(|f| &f[4..4 + NONCE_LEN]).collect();
        assert_eq!(
            nonces.len(),
            3,
            "same text and number, on one side and on both"
        );
    }

    fn row(id: MessageId, text: &str) -> Row {
        let (stored, _) = oneshot::channel();
        let (peer, sender, text) = ("bob".into(), "alice".into(), text.into());
        Row {
            id,
            peer,
            sender,
            text,
            stored,
        }
    }

    #[test]
    fn rows_are_stored_once_each_and_together() {
        let db = Connection::open_in_memory().unwrap();
        create(&db).unwrap();
        let (id, other) = (new_id(), new_id());
        insert_all(&db, &[row(id, "m1")]).unwrap();
        insert_all(&db, &[row(id, "m1"), row(other, "m2")]).unwrap();
        let lines: Vec<String> = db
            .prepare("SELECT text FROM lines WHERE chat = 'bob' ORDER BY at, text")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(lines, ["m1", "m2"], "the repeat of m1 is not stored again");
    }

    #[test]
    fn a_stored_message_is_reported_stored() {
        let dir = std::env::temp_dir().join(format!("relay-store-{}", new_id()));
        let store = Store::open(&dir).unwrap();
        assert!(futures::executor::block_on(store.store(
            new_id(),
            "bob",
            "alice",
            "m1"
        )));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
