//! Chat history, per peer, in an embedded database (SQLite) in the data directory.
//!
//! A received message is written here before it is acknowledged (it shows meanwhile), and a
//! sent one before it is reported delivered, so a crash never loses a message: one shown but
//! not yet stored was not acknowledged either, and its sender sends it again. The database runs in
//! write-ahead-log mode with `synchronous=NORMAL`: each message is one small append to the
//! log, on disk as soon as the process hands it to the kernel, so it survives the process
//! being killed at any point (an operating-system crash may lose the last moments, a price
//! paid for not waiting on the disk for every chat line). The log is copied into the
//! database (a checkpoint, which does wait on the disk) by the disk thread in a pause, or
//! when the log is full, never by SQLite in the commit of whichever message filled it. Each
//! message is stored once: its id (the envelope id) is unique.
//!
//! The insert is on the path of every chat message, on both sides, so it is kept small: the
//! peer holds the database exclusively while it runs (`locking_mode=EXCLUSIVE`), which spares
//! each message six file-lock system calls and the shared-memory log index; a second peer
//! with the same name and data directory gets a "database is locked" error at start instead.
//! And a message is two B-tree entries, two pages written to the log: its row, in a table
//! kept in the order it is read (`WITHOUT ROWID`, keyed by the chat's partner and the
//! message's place in that chat), and its id in the index that stores it once. Numbering the
//! rows with SQLite's `rowid` would take a third B-tree (the rows by number, then an index
//! by chat). docs/benchmarks.md has the measurements.
//!
//! The layout's version is the database's `user_version`. Version 0, the three-tree table
//! `messages` of earlier releases, is moved into this layout's `chat_lines` when the history
//! is first opened (one transaction: a crash leaves it whole). An earlier release run on the
//! history later does not see `chat_lines` and stores into a `messages` table of its own,
//! which is moved in the same way at the next start of this one: nothing is lost either way
//! (only, while the earlier release runs, a message sent again that this table alone has
//! may show once more, as after a crash between showing and storing).
//! A history from a newer release is not opened.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use p2p_shared::{MessageId, PeerName};
use rusqlite::{params, Connection};

/// The history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Another peer holds it: the history is held exclusively (see above).
    #[error("it is in use: another p2p-peer runs with this name and data directory")]
    InUse,
    #[error("cannot create it: {0}")]
    Create(std::io::Error),
    /// Written by a newer p2p-peer, in a layout this one does not know.
    #[error("it was written by a newer p2p-peer (history version {0}); run that one")]
    Newer(i64),
    #[error("the chat history failed: {0}")]
    Failed(#[from] rusqlite::Error),
}

/// How long opening waits for another peer to let go of the history (one that is exiting).
const OPEN_WAIT: Duration = Duration::from_secs(1);

/// How many rows the log may hold before they are copied into the database even while
/// messages keep coming (a checkpoint): it bounds the log's file at about 1,000 rows of 2
/// to 3 pages each. Otherwise the disk thread checkpoints in a pause (`disk.rs`).
const LOG_ROWS_MAX: usize = 1_000;

/// The layout this release writes (the database's `user_version`).
const SCHEMA_VERSION: i64 = 1;

/// The layout: the rows in each chat's order, and each id once.
const SCHEMA: &str = "CREATE TABLE chat_lines (
        peer TEXT NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL UNIQUE,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (peer, seq)
    ) WITHOUT ROWID;";

/// One stored chat line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Line {
    pub at: DateTime<Utc>,
    /// Who wrote it (ourselves or the peer).
    pub sender: PeerName,
    pub text: String,
}

pub struct History {
    db: Connection,
    /// The last place taken in each chat written to since the history was opened.
    last_seq: HashMap<PeerName, i64>,
    /// Rows written to the log since its last checkpoint (or about: an ignored insert
    /// counts).
    in_log: usize,
    /// At how many rows in the log the next checkpoint is made at once, pause or not: after
    /// one that failed (a full disk), not again on every message's store.
    force_at: usize,
}

impl History {
    /// Opens (or creates) the history at `path`, readable by its owner only: every message is
    /// in it in the clear. SQLite gives its `-wal` and `-journal` files the database's mode.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        p2p_shared::private::create_private(path).map_err(HistoryError::Create)?;
        let db = Connection::open(path)?;
        db.busy_timeout(OPEN_WAIT)?;
        Self::with(db).map_err(|e| match e {
            HistoryError::Failed(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                HistoryError::InUse
            }
            other => other,
        })
    }

    #[cfg(test)]
    pub fn in_memory() -> Result<History, HistoryError> {
        Self::with(Connection::open_in_memory()?)
    }

    fn with(db: Connection) -> Result<History, HistoryError> {
        // Before the first access in WAL mode, or SQLite sets up the shared-memory index anyway.
        db.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        // SQLite's own checkpoints run in the commit that fills the log past 1,000 pages:
        // about every 330 messages, that message's store took milliseconds (a sync of the
        // disk), and with it its acknowledgement and what waited behind it on the screen.
        // They are ours instead ([`History::checkpoint`]).
        db.pragma_update(None, "wal_autocheckpoint", 0)?;
        // After a checkpoint the log's file is cut back to 4 MiB, about what SQLite's own
        // checkpoints let it reach, instead of keeping the size of the longest burst.
        db.pragma_update(None, "journal_size_limit", 4 * 1024 * 1024)?;
        Self::lay_out(&db)?;
        Ok(History {
            db,
            last_seq: HashMap::new(),
            // The tables just made, or what an earlier run left in the log (one killed before
            // it closed): copied in the first pause.
            in_log: 1,
            force_at: LOG_ROWS_MAX,
        })
    }

    /// Creates the table of a new history, and moves in the rows of an earlier release's
    /// table, if there is one: version 0's, or one an earlier release made since on this
    /// history (it does not know this table, and starts a `messages` table of its own).
    fn lay_out(db: &Connection) -> Result<(), HistoryError> {
        let version: i64 = db.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(HistoryError::Newer(version));
        }
        let tables =
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'messages'";
        let earlier = db.query_row(tables, [], |row| row.get::<_, i64>(0))? > 0;
        let mut steps = String::new();
        if version < SCHEMA_VERSION {
            steps += &format!("{SCHEMA} PRAGMA user_version = {SCHEMA_VERSION};");
        }
        // Its `seq` numbers rows across all chats, in the order stored: after the last
        // number here, each chat's rows keep their order, and follow the rows already here.
        // (`WHERE true`: SQLite reads `ON CONFLICT` after a join as part of it otherwise.)
        if earlier {
            steps += "INSERT INTO chat_lines (peer, seq, id, sender, text, at)
                          SELECT m.peer, here.last + m.seq, m.id, m.sender, m.text, m.at
                          FROM messages AS m,
                               (SELECT coalesce(max(seq), 0) AS last FROM chat_lines) AS here
                          WHERE true ON CONFLICT (id) DO NOTHING;
                      DROP TABLE messages;";
        }
        if steps.is_empty() {
            return Ok(());
        }
        // One transaction: a crash leaves the earlier table whole.
        db.execute_batch(&format!("BEGIN; {steps} COMMIT;"))
            .inspect_err(|_| {
                let _ = db.execute_batch("ROLLBACK");
            })?;
        Ok(())
    }

    /// Whether the log holds rows not yet copied into the database.
    pub fn needs_checkpoint(&self) -> bool {
        self.in_log > 0
    }

    /// Copies the log into the database (and syncs it), so that the log starts over.
    pub fn checkpoint(&mut self) -> Result<(), HistoryError> {
        // PASSIVE never waits for a reader; this connection is the only one.
        self.db
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        (self.in_log, self.force_at) = (0, LOG_ROWS_MAX);
        Ok(())
    }

    /// Notes `rows` written to the log; with [`LOG_ROWS_MAX`] more since the last
    /// checkpoint, or since the last one that failed, checkpoints now. A failed checkpoint
    /// is only logged: the rows are stored, and a pause or the next [`LOG_ROWS_MAX`] rows
    /// try again.
    fn logged(&mut self, rows: usize) {
        self.in_log += rows;
        if self.in_log >= self.force_at {
            if let Err(e) = self.checkpoint() {
                tracing::warn!("the chat history's log could not be checkpointed: {e}");
                self.force_at = self.in_log + LOG_ROWS_MAX;
            }
        }
    }

    /// Stores one message of the chat with `peer`. Storing the same id again changes nothing
    /// and returns false.
    pub fn record(
        &mut self,
        id: MessageId,
        peer: &PeerName,
        sender: &PeerName,
        text: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, HistoryError> {
        let seq = self.last_seq(peer)? + 1;
        // Prepared once and cached: this runs for every chat message. Only a known id is
        // no insert; any other conflict is an error, never a message taken for stored.
        let mut insert = self.db.prepare_cached(
            "INSERT INTO chat_lines (peer, seq, id, sender, text, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
        )?;
        let added = insert.execute(params![
            peer.as_str(),
            seq,
            id.to_string(),
            sender.as_str(),
            text,
            at.to_rfc3339_opts(SecondsFormat::Micros, true)
        ])? == 1;
        if added {
            self.last_seq.insert(*peer, seq);
        }
        Ok(added)
    }

    /// The last place taken in the chat with `peer`: asked of the database once per chat
    /// (the last entry of its range in the table), then kept.
    fn last_seq(&mut self, peer: &PeerName) -> Result<i64, HistoryError> {
        if let Some(&seq) = self.last_seq.get(peer) {
            return Ok(seq);
        }
        let last = "SELECT coalesce(max(seq), 0) FROM chat_lines WHERE peer = ?1";
        let seq = self.db.query_row(last, [peer.as_str()], |row| row.get(0))?;
        self.last_seq.insert(*peer, seq);
        Ok(seq)
    }

    /// Stores several messages (as [`History::record`] each) in one transaction: under load,
    /// messages wait behind each other for the disk thread, and they share one commit, one
    /// append to the log, instead of one each. All are stored, or none (the error).
    pub fn record_all<'a>(
        &mut self,
        rows: impl IntoIterator<
            Item = (
                MessageId,
                &'a PeerName,
                &'a PeerName,
                &'a str,
                DateTime<Utc>,
            ),
        >,
    ) -> Result<Vec<bool>, HistoryError> {
        let mut rows = rows.into_iter().peekable();
        let Some((id, peer, sender, text, at)) = rows.next() else {
            return Ok(Vec::new());
        };
        // One alone is its own transaction, as SQLite makes it: no BEGIN and COMMIT to parse.
        if rows.peek().is_none() {
            let stored = self.record(id, peer, sender, text, at)?;
            self.logged(1);
            return Ok(vec![stored]);
        }
        self.db.execute_batch("BEGIN")?;
        let stored = std::iter::once((id, peer, sender, text, at))
            .chain(rows)
            .map(|(id, peer, sender, text, at)| self.record(id, peer, sender, text, at))
            .collect::<Result<Vec<bool>, _>>()
            .and_then(|stored| Ok(self.db.execute_batch("COMMIT").map(|()| stored)?));
        match &stored {
            Ok(all) => self.logged(all.len()),
            Err(_) => {
                let _ = self.db.execute_batch("ROLLBACK");
            }
        }
        stored
    }

    /// The last `n` lines of the chat with `peer`, oldest first.
    pub fn last(&self, peer: &PeerName, n: usize) -> Result<Vec<Line>, HistoryError> {
        let mut query = self.db.prepare(
            "SELECT at, sender, text FROM
                 (SELECT seq, at, sender, text FROM chat_lines WHERE peer = ?1
                  ORDER BY seq DESC LIMIT ?2)
             ORDER BY seq",
        )?;
        let rows = query.query_map(params![peer.as_str(), n as i64], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let mut lines = Vec::new();
        for row in rows {
            let (at, sender, text) = row?;
            // Rows are only written from valid values; skip anything else.
            if let (Ok(at), Ok(sender)) = (DateTime::parse_from_rfc3339(&at), sender.parse()) {
                lines.push(Line {
                    at: at.with_timezone(&Utc),
                    sender,
                    text,
                });
            }
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::wire::new_id;

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    #[test]
    fn keeps_each_chat_in_order_and_each_message_once() {
        let mut h = History::in_memory().unwrap();
        let (alice, bob, carol) = (name("alice"), name("bob"), name("carol"));
        let first = new_id();
        assert!(h.record(first, &bob, &alice, "hi bob", Utc::now()).unwrap());
        assert!(
            !h.record(first, &bob, &alice, "hi bob", Utc::now()).unwrap(),
            "once"
        );
        h.record(new_id(), &bob, &bob, "hi alice", Utc::now())
            .unwrap();
        h.record(new_id(), &carol, &carol, "hey", Utc::now())
            .unwrap();
        h.record(new_id(), &bob, &alice, "how are you?", Utc::now())
            .unwrap();
        assert_eq!(texts(&h, &bob, 10), ["hi bob", "hi alice", "how are you?"]);
        assert_eq!(texts(&h, &bob, 2), ["hi alice", "how are you?"]);
    }

    #[test]
    fn several_stored_in_one_transaction_keep_their_order_and_each_is_stored_once() {
        let mut h = History::in_memory().unwrap();
        let (alice, bob) = (name("alice"), name("bob"));
        let seen = new_id();
        h.record(seen, &bob, &bob, "one", Utc::now()).unwrap();
        let (two, three) = (new_id(), new_id());
        let stored = h
            .record_all([
                (seen, &bob, &bob, "one", Utc::now()),
                (two, &bob, &alice, "two", Utc::now()),
                (three, &bob, &bob, "three", Utc::now()),
            ])
            .unwrap();
        assert_eq!(stored, [false, true, true], "a repeat is not stored again");
        assert_eq!(texts(&h, &bob, 10), ["one", "two", "three"]);
        // After a batch, one at a time as before.
        assert!(h.record(new_id(), &bob, &bob, "four", Utc::now()).unwrap());
        assert_eq!(texts(&h, &bob, 1), ["four"]);
    }

    /// An empty directory of this test's own, and the history's path in it.
    fn fresh_history(test: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("p2p-history-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history-alice.db");
        (dir, path)
    }

    /// The texts of the last `n` lines with `peer`, oldest first.
    fn texts(h: &History, peer: &PeerName, n: usize) -> Vec<String> {
        h.last(peer, n)
            .unwrap()
            .into_iter()
            .map(|l| l.text)
            .collect()
    }

    #[test]
    fn the_log_is_copied_into_the_database_in_a_pause_or_when_it_is_full() {
        let (dir, path) = fresh_history("log");
        let size = || std::fs::metadata(&path).unwrap().len();
        let (alice, bob) = (name("alice"), name("bob"));
        let mut h = History::open(&path).unwrap();
        let rows = |h: &mut History, n: usize| {
            let rows: Vec<_> = (0..n)
                .map(|_| (new_id(), &bob, &alice, "hi", Utc::now()))
                .collect();
            h.record_all(rows).unwrap();
        };
        let empty = size();
        // One commit each, past SQLite's own 1,000 pages: it no longer checkpoints.
        for _ in 0..400 {
            rows(&mut h, 1);
        }
        assert!(h.needs_checkpoint());
        assert_eq!(size(), empty, "all of it still in the log");
        // In a pause, the disk thread asks.
        h.checkpoint().unwrap();
        assert!(!h.needs_checkpoint());
        let copied = size();
        assert!(copied > empty, "the rows are in the database");
        // Without a pause, a full log is copied all the same.
        rows(&mut h, LOG_ROWS_MAX - 1);
        assert!(h.needs_checkpoint());
        assert_eq!(size(), copied);
        rows(&mut h, 1);
        assert!(!h.needs_checkpoint(), "checkpointed as the log filled");
        assert!(size() > copied);
        drop(h);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Stores `rows` as a release before version 1 did: one table numbered across chats,
    /// an id index and an index by chat, made if missing.
    fn earlier_release_stores(path: &Path, rows: &[(MessageId, &PeerName, &PeerName, &str)]) {
        let old = Connection::open(path).unwrap();
        old.execute_batch(
            "CREATE TABLE IF NOT EXISTS messages (
                 seq INTEGER PRIMARY KEY,
                 id TEXT NOT NULL UNIQUE,
                 peer TEXT NOT NULL,
                 sender TEXT NOT NULL,
                 text TEXT NOT NULL,
                 at TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS messages_by_peer ON messages (peer, seq);",
        )
        .unwrap();
        let at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        for (id, peer, sender, text) in rows {
            old.execute(
                "INSERT OR IGNORE INTO messages (id, peer, sender, text, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id.to_string(), peer.as_str(), sender.as_str(), text, at],
            )
            .unwrap();
        }
    }

    #[test]
    fn a_history_of_an_earlier_release_is_moved_into_this_layout_whole_and_in_order() {
        let (dir, path) = fresh_history("v0");
        let (alice, bob, carol) = (name("alice"), name("bob"), name("carol"));
        let kept = new_id();
        earlier_release_stores(
            &path,
            &[
                (kept, &bob, &alice, "one"),
                (new_id(), &carol, &carol, "hey"),
                (new_id(), &bob, &bob, "two"),
            ],
        );

        let mut h = History::open(&path).unwrap();
        assert_eq!(texts(&h, &bob, 10), ["one", "two"]);
        assert_eq!(texts(&h, &carol, 10), ["hey"]);
        assert!(
            !h.record(kept, &bob, &alice, "one", Utc::now()).unwrap(),
            "an id stored before is still stored once"
        );
        h.record(new_id(), &bob, &alice, "three", Utc::now())
            .unwrap();
        assert_eq!(texts(&h, &bob, 2), ["two", "three"], "after the old rows");
        drop(h);
        let h = History::open(&path).unwrap();
        assert_eq!(texts(&h, &bob, 10), ["one", "two", "three"], "moved once");
        drop(h);

        // An earlier release run on it again stores into a table of its own: moved in at
        // the next start, after what was here.
        earlier_release_stores(&path, &[(new_id(), &bob, &bob, "four")]);
        let h = History::open(&path).unwrap();
        assert_eq!(texts(&h, &bob, 10), ["one", "two", "three", "four"]);
        assert_eq!(texts(&h, &carol, 10), ["hey"]);
        drop(h);

        // A layout from a newer release is left alone.
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 2")
            .unwrap();
        assert!(matches!(History::open(&path), Err(HistoryError::Newer(2))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_history_on_disk_is_kept_across_runs_in_order() {
        let (dir, path) = fresh_history("runs");
        let (alice, bob) = (name("alice"), name("bob"));
        {
            let mut h = History::open(&path).unwrap();
            h.record(new_id(), &bob, &alice, "first", Utc::now())
                .unwrap();
            h.record(new_id(), &bob, &bob, "second", Utc::now())
                .unwrap();
        }
        let mut h = History::open(&path).unwrap();
        h.record(new_id(), &bob, &alice, "third", Utc::now())
            .unwrap();
        assert_eq!(texts(&h, &bob, 10), ["first", "second", "third"]);
        assert!(
            matches!(History::open(&path), Err(HistoryError::InUse)),
            "a second peer with the same history"
        );
        drop(h);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
