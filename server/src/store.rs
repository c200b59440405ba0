//! Name claims that survive a restart: which key owns which name, in SQLite, written by a
//! thread of its own.
//!
//! A claim is made by the first key to register a name and lasts until that key releases it
//! (`release name`), whether or not its owner is online: nobody can take a name while its
//! owner is away, and a restarted registry still knows every owner. Addresses, by contrast,
//! are soft state and live only in memory (`registry.rs`).
//!
//! SQLite is an embedded database (no server to run) and a trusted one. Claims are read once,
//! at start, into memory (`claims.rs`); from then on only new claims and releases touch the
//! disk, as [`Op`]s sent to the [`StoreThread`]. A write ends with an `fsync` (the registry
//! confirms a name only once it is on disk), and an `fsync` can take milliseconds, or far
//! longer on a busy disk: on the registry's event loop it held up every request behind every
//! new name. On this thread it holds up nobody but the claimant, whose answer waits for it.
//! The thread writes whatever ops are waiting in one transaction: one `fsync` for all the
//! names that arrived together.

use std::path::Path;

use p2p_shared::identity::PublicKey;
use p2p_shared::PeerName;
use rusqlite::{params, Connection};

/// The most ops written in one transaction.
const BATCH: usize = 256;

/// How many ops may wait for the thread. Each one is a request whose connection waits for
/// its answer, and connections are bounded (`transport::MAX_CONNECTIONS`), so this is never
/// reached in practice; if it were, the request is answered `busy`.
pub const QUEUE: usize = 1024;

/// The store could not be read or written.
#[derive(Clone, Debug, thiserror::Error)]
#[error("the claims store failed: {message}")]
pub struct StoreError {
    message: String,
    /// Another process holds the database: a registry runs on it.
    locked: bool,
}

impl StoreError {
    /// The store thread has more writes waiting than it takes.
    pub fn overloaded() -> StoreError {
        StoreError {
            message: "too many writes are waiting".into(),
            locked: false,
        }
    }

    /// Whether another process (a running registry) holds the database.
    pub fn is_locked(&self) -> bool {
        self.locked
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let locked = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        StoreError {
            message: e.to_string(),
            locked,
        }
    }
}

/// One change to the claims on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Claim {
        name: PeerName,
        key: PublicKey,
    },
    /// The claim of `key` on `name` (and no other key's: a claim made since by another key,
    /// once this one's claim was lost, stays).
    Release {
        name: PeerName,
        key: PublicKey,
    },
}

/// Ops written (or not) together, as the thread reports them.
#[derive(Debug)]
pub struct Written {
    pub ops: Vec<Op>,
    pub result: Result<(), StoreError>,
}

/// The claims database. Only the store thread uses it after start-up.
pub struct ClaimStore {
    db: Connection,
}

impl ClaimStore {
    /// Opens (or creates) the store at `path`, readable by its owner only (SQLite gives its
    /// `-wal` and `-shm` files the database's mode).
    pub fn open(path: &Path) -> Result<ClaimStore, StoreError> {
        p2p_shared::private::create_private(path).map_err(|e| StoreError {
            message: format!("cannot create it: {e}"),
            locked: false,
        })?;
        Self::with(Connection::open(path)?)
    }

    /// Opens the store at `path`, failing at once (not after rusqlite's 5 s of retries) if
    /// another process holds it: for `p2p-server release`, which a running registry refuses.
    pub fn open_or_fail(path: &Path) -> Result<ClaimStore, StoreError> {
        let db = Connection::open(path)?;
        db.busy_timeout(std::time::Duration::ZERO)?;
        Self::with(db)
    }

    /// A store that lives in memory only, for tests.
    pub fn in_memory() -> Result<ClaimStore, StoreError> {
        Self::with(Connection::open_in_memory()?)
    }

    fn with(db: Connection) -> Result<ClaimStore, StoreError> {
        // Exclusive: the registry holds the database for as long as it runs (taken at the
        // first access, below), so the operator's `p2p-server release` cannot change claims
        // under a registry that keeps them in memory; it is refused instead. Set before the
        // first access in WAL mode, or SQLite sets up the shared-memory index anyway.
        db.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        // WAL: a crash never leaves a half-written claim; synchronous=FULL: a claim the
        // registry confirmed is on disk.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS claims (
                 name TEXT PRIMARY KEY,
                 key TEXT NOT NULL,
                 claimed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
             )",
        )?;
        Ok(ClaimStore { db })
    }

    /// Every claim in the store.
    pub fn claims(&self) -> Result<Vec<(PeerName, PublicKey)>, StoreError> {
        let mut claims = Vec::new();
        let mut rows = self.db.prepare("SELECT name, key FROM claims")?;
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            let (name, key): (String, String) = (row.get(0)?, row.get(1)?);
            // Rows are only ever written from valid values; skip anything else rather than
            // refuse to start.
            if let (Ok(name), Ok(key)) = (name.parse(), key.parse()) {
                claims.push((name, key));
            }
        }
        Ok(claims)
    }

    /// Writes `ops` in one transaction: all of them, or none if any fails.
    pub fn write(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        let transaction = self.db.transaction()?;
        {
            // REPLACE: a row start-up could not read (and skipped) must not fail every batch
            // that claims its name again.
            let mut insert = transaction
                .prepare_cached("INSERT OR REPLACE INTO claims (name, key) VALUES (?1, ?2)")?;
            let mut delete =
                transaction.prepare_cached("DELETE FROM claims WHERE name = ?1 AND key = ?2")?;
            for op in ops {
                match op {
                    Op::Claim { name, key } => {
                        insert.execute(params![name.as_str(), key.to_string()])?;
                    }
                    Op::Release { name, key } => {
                        delete.execute(params![name.as_str(), key.to_string()])?;
                    }
                }
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// Deletes the claim on `name`, whoever owns it: the operator's `p2p-server release`.
    /// Returns the key that owned it, if any.
    pub fn release_any(&mut self, name: &PeerName) -> Result<Option<PublicKey>, StoreError> {
        let transaction = self.db.transaction()?;
        let owner: Option<String> = transaction
            .query_row(
                "SELECT key FROM claims WHERE name = ?1",
                params![name.as_str()],
                |row| row.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        transaction.execute("DELETE FROM claims WHERE name = ?1", params![name.as_str()])?;
        transaction.commit()?;
        // A row start-up could not read is deleted all the same; it had no valid key.
        Ok(owner.and_then(|key| key.parse().ok()))
    }

    #[cfg(test)]
    fn rows(&self) -> i64 {
        self.db
            .query_row("SELECT count(*) FROM claims", [], |row| row.get(0))
            .unwrap()
    }
}

/// The handle to the store thread.
pub struct StoreThread {
    ops: async_channel::Sender<Op>,
}

/// The ops the thread could not take: its queue is full.
#[derive(Debug)]
pub struct Full;

impl StoreThread {
    /// Starts the thread that owns `store`. It reports each batch it wrote on `written`,
    /// and ends when the handle is dropped, after writing what it was sent.
    pub fn start(
        mut store: ClaimStore,
        written: async_channel::Sender<Written>,
    ) -> std::io::Result<StoreThread> {
        let (ops, queue) = async_channel::bounded::<Op>(QUEUE);
        std::thread::Builder::new()
            .name("claims".into())
            .spawn(move || {
                while let Ok(first) = queue.recv_blocking() {
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match queue.try_recv() {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    let result = store.write(&batch);
                    if written
                        .send_blocking(Written { ops: batch, result })
                        .is_err()
                    {
                        break;
                    }
                }
            })?;
        Ok(StoreThread { ops })
    }

    /// Hands `op` to the thread without waiting.
    pub fn submit(&self, op: Op) -> Result<(), Full> {
        self.ops.try_send(op).map_err(|_| Full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::identity::Identity;

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    fn claim(n: &str, key: PublicKey) -> Op {
        Op::Claim { name: name(n), key }
    }

    #[test]
    fn claims_survive_reopening_the_store() {
        let dir = std::env::temp_dir().join(format!("p2p-claims-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("claims.db");
        let key = Identity::generate().public();
        {
            let mut store = ClaimStore::open(&path).unwrap();
            assert!(store.claims().unwrap().is_empty());
            let other = Identity::generate().public();
            store
                .write(&[claim("alice", key), claim("bob", other)])
                .unwrap();
            store
                .write(&[Op::Release {
                    name: name("bob"),
                    key: other,
                }])
                .unwrap();
        }
        let claims = ClaimStore::open(&path).unwrap().claims().unwrap();
        assert_eq!(claims, vec![(name("alice"), key)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_batch_that_fails_halfway_leaves_nothing_on_disk() {
        let mut store = ClaimStore::in_memory().unwrap();
        // The second insert of the batch fails, after the first succeeded.
        store
            .db
            .execute_batch(
                "CREATE TRIGGER no_bob BEFORE INSERT ON claims WHEN NEW.name = 'bob'
                 BEGIN SELECT RAISE(ABORT, 'no room for bob'); END",
            )
            .unwrap();
        let key = Identity::generate().public();
        assert!(store
            .write(&[claim("alice", key), claim("bob", key)])
            .is_err());
        assert_eq!(store.rows(), 0, "the transaction is rolled back whole");
    }

    #[test]
    fn a_row_unreadable_at_start_up_does_not_block_its_name() {
        let mut store = ClaimStore::in_memory().unwrap();
        store
            .db
            .execute(
                "INSERT INTO claims (name, key) VALUES ('alice', 'not a key')",
                [],
            )
            .unwrap();
        let key = Identity::generate().public();
        store.write(&[claim("alice", key)]).unwrap();
        let stored: String = store
            .db
            .query_row("SELECT key FROM claims WHERE name = 'alice'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(stored, key.to_string());
    }

    #[test]
    fn the_thread_writes_what_is_waiting_together_and_reports_it() {
        let store = ClaimStore::in_memory().unwrap();
        let (written_tx, written) = async_channel::unbounded();
        let thread = StoreThread::start(store, written_tx).unwrap();
        let key = Identity::generate().public();
        let ops: Vec<Op> = (0..3).map(|i| claim(&format!("p{i}"), key)).collect();
        for op in &ops {
            thread.submit(op.clone()).unwrap();
        }
        let mut reported = Vec::new();
        while reported.len() < ops.len() {
            let batch = written.recv_blocking().unwrap();
            assert!(batch.result.is_ok());
            reported.extend(batch.ops);
        }
        assert_eq!(reported, ops, "every op, in the order sent");
    }
}
