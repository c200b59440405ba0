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
//!
//! The same database keeps each registered key's Noise static key and the key's signature
//! over it ([`StaticProof`]), which a `lookup` answer carries so that a requester can use
//! Noise IK with a peer it never met. A proof is 96 bytes a peer, too much to keep in memory
//! beside every registration (docs/benchmarks.md), and is read only for a `lookup`: it lives
//! on disk, written by the same thread with the claims ([`Statics`]), read by it on demand.
//! Losing one costs nothing but IK: the requester falls back to IX.

use std::path::Path;

use futures::channel::oneshot;
use p2p_shared::handshake::StaticProof;
use p2p_shared::identity::PublicKey;
use p2p_shared::PeerName;
use rusqlite::{params, Connection, OptionalExtension};

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
    /// The store cannot be reached (etcd down or unreachable): peers are told `unavailable`.
    unavailable: bool,
}

impl StoreError {
    /// The store thread has more writes waiting than it takes.
    pub fn overloaded() -> StoreError {
        StoreError {
            message: "too many writes are waiting".into(),
            locked: false,
            unavailable: false,
        }
    }

    /// The store cannot be reached (`why`): the registry answers `unavailable` until it is.
    pub fn unavailable(why: impl Into<String>) -> StoreError {
        StoreError {
            message: why.into(),
            locked: false,
            unavailable: true,
        }
    }

    /// The store answered, but not as it should (a reply that does not parse): refused
    /// `busy` like a failed write.
    pub fn failed(why: impl Into<String>) -> StoreError {
        StoreError {
            message: why.into(),
            locked: false,
            unavailable: false,
        }
    }

    /// Whether the store could not be reached at all.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
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
            unavailable: false,
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

/// What the store thread is asked to do.
enum Job {
    /// A claim or a release, reported back when written.
    Write(Op),
    /// Remember a key's static proof, unreported: it goes with the next batch.
    Remember(PublicKey, StaticProof),
    /// Read a key's static proof.
    Read(PublicKey, oneshot::Sender<Option<StaticProof>>),
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
            unavailable: false,
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
             );
             CREATE TABLE IF NOT EXISTS statics (
                 key TEXT PRIMARY KEY,
                 proof TEXT NOT NULL
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
        self.write_with(ops, &[])
    }

    /// Writes `ops`, and the `proofs` waiting with them, in one transaction.
    fn write_with(
        &mut self,
        ops: &[Op],
        proofs: &[(PublicKey, StaticProof)],
    ) -> Result<(), StoreError> {
        let transaction = self.db.transaction()?;
        {
            // REPLACE: a row start-up could not read (and skipped) must not fail every batch
            // that claims its name again.
            let mut insert = transaction
                .prepare_cached("INSERT OR REPLACE INTO claims (name, key) VALUES (?1, ?2)")?;
            let mut delete =
                transaction.prepare_cached("DELETE FROM claims WHERE name = ?1 AND key = ?2")?;
            // A key that holds no name any more leaves no proof behind.
            let mut forget = transaction.prepare_cached(
                "DELETE FROM statics WHERE key = ?1
                 AND NOT EXISTS (SELECT 1 FROM claims WHERE key = ?1)",
            )?;
            for op in ops {
                match op {
                    Op::Claim { name, key } => {
                        insert.execute(params![name.as_str(), key.to_string()])?;
                    }
                    Op::Release { name, key } => {
                        delete.execute(params![name.as_str(), key.to_string()])?;
                        forget.execute(params![key.to_string()])?;
                    }
                }
            }
            // Written only when it changes: a peer proves the same static each time it opens
            // a session, and a transaction that changed nothing costs no `fsync`.
            let mut remember = transaction.prepare_cached(
                "INSERT INTO statics (key, proof) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET proof = excluded.proof
                 WHERE proof != excluded.proof",
            )?;
            for (key, proof) in proofs {
                let proof = serde_json::to_string(proof).expect("a proof serializes");
                remember.execute(params![key.to_string(), proof])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// The static proof remembered for `key`, if any (and readable).
    fn static_of(&self, key: &PublicKey) -> Result<Option<StaticProof>, StoreError> {
        let proof: Option<String> = self
            .db
            .prepare_cached("SELECT proof FROM statics WHERE key = ?1")?
            .query_row(params![key.to_string()], |row| row.get(0))
            .optional()?;
        Ok(proof.and_then(|proof| serde_json::from_str(&proof).ok()))
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
    jobs: async_channel::Sender<Job>,
}

/// The ops the thread could not take: its queue is full.
#[derive(Debug)]
pub struct Full;

impl StoreThread {
    /// Starts the thread that owns `store`. It reports each batch of ops it wrote on
    /// `written`, and ends when every handle (this one and its [`Statics`]) is dropped, after
    /// writing what it was sent.
    pub fn start(
        mut store: ClaimStore,
        written: async_channel::Sender<Written>,
    ) -> std::io::Result<StoreThread> {
        let (jobs, queue) = async_channel::bounded::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("claims".into())
            .spawn(move || {
                while let Ok(first) = queue.recv_blocking() {
                    let (mut ops, mut proofs, mut reads) = (Vec::new(), Vec::new(), Vec::new());
                    let mut next = Some(first);
                    while let Some(job) = next.take() {
                        match job {
                            Job::Write(op) => ops.push(op),
                            Job::Remember(key, proof) => proofs.push((key, proof)),
                            Job::Read(key, answer) => reads.push((key, answer)),
                        }
                        if ops.len() + proofs.len() + reads.len() < BATCH {
                            next = queue.try_recv().ok();
                        }
                    }
                    let result = match ops.is_empty() && proofs.is_empty() {
                        true => Ok(()),
                        false => store.write_with(&ops, &proofs),
                    };
                    // After the writes queued before them: a read sees them.
                    for (key, answer) in reads {
                        let _ = answer.send(store.static_of(&key).ok().flatten());
                    }
                    if !ops.is_empty() && written.send_blocking(Written { ops, result }).is_err() {
                        break;
                    }
                }
            })?;
        Ok(StoreThread { jobs })
    }

    /// Hands `op` to the thread without waiting.
    pub fn submit(&self, op: Op) -> Result<(), Full> {
        self.jobs.try_send(Job::Write(op)).map_err(|_| Full)
    }

    /// A handle for the static proofs, which connection tasks use without the broker.
    pub fn statics(&self) -> Statics {
        Statics {
            jobs: self.jobs.clone(),
        }
    }
}

/// Remembers and reads the static proofs of registered keys, through the store thread.
#[derive(Clone)]
pub struct Statics {
    jobs: async_channel::Sender<Job>,
}

impl Statics {
    /// Remembers `key`'s proof, with the next batch the thread writes. Dropped if the thread
    /// has more waiting than it takes: the peer proves it again next session.
    pub fn remember(&self, key: PublicKey, proof: StaticProof) {
        let _ = self.jobs.try_send(Job::Remember(key, proof));
    }

    /// `key`'s proof, if one is remembered and the thread takes the question.
    pub async fn of(&self, key: PublicKey) -> Option<StaticProof> {
        let (answer, answered) = oneshot::channel();
        self.jobs.try_send(Job::Read(key, answer)).ok()?;
        answered.await.ok().flatten()
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
    fn a_static_proof_is_kept_while_its_key_holds_a_name() {
        let mut store = ClaimStore::in_memory().unwrap();
        let alice = Identity::generate();
        let key = alice.public();
        let proof = StaticProof::of(&alice);
        store
            .write_with(
                &[claim("alice", key), claim("alias", key)],
                &[(key, proof.clone())],
            )
            .unwrap();
        assert_eq!(store.static_of(&key).unwrap(), Some(proof.clone()));
        assert_eq!(
            store.static_of(&Identity::generate().public()).unwrap(),
            None
        );
        let release = |n: &str| Op::Release { name: name(n), key };
        store.write(&[release("alice")]).unwrap();
        assert_eq!(
            store.static_of(&key).unwrap(),
            Some(proof),
            "the key still holds a name"
        );
        store.write(&[release("alias")]).unwrap();
        assert_eq!(store.static_of(&key).unwrap(), None);
    }

    #[test]
    fn the_thread_answers_reads_and_reports_only_claims_and_releases() {
        let store = ClaimStore::in_memory().unwrap();
        let (written_tx, written) = async_channel::unbounded();
        let thread = StoreThread::start(store, written_tx).unwrap();
        let statics = thread.statics();
        let alice = Identity::generate();
        let proof = StaticProof::of(&alice);
        thread.submit(claim("alice", alice.public())).unwrap();
        statics.remember(alice.public(), proof.clone());
        let batch = written.recv_blocking().unwrap();
        assert_eq!(batch.ops, vec![claim("alice", alice.public())]);
        // A read is answered after whatever was queued before it is written.
        let read = p2p_shared::runtime::block_on(statics.of(alice.public()));
        assert_eq!(read, Some(proof));
        drop(thread);
        assert!(
            written.try_recv().is_err(),
            "remembering a proof is not reported"
        );
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
