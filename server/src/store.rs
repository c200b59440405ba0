//! Name claims that survive a restart: which key owns which name, in SQLite.
//!
//! A claim is made by the first key to register a name and lasts until that key releases it
//! (`release name`), whether or not its owner is online: nobody can take a name while its
//! owner is away, and a restarted registry still knows every owner. Addresses, by contrast,
//! are soft state and live only in memory (`registry.rs`).
//!
//! SQLite is an embedded database (no server to run) and a trusted one. Claims are also
//! cached in memory, so checking a name costs a hash lookup; only new claims and releases
//! touch the disk. A new claim counts in memory at once and is written by [`Claims::save`],
//! which writes every claim made since the last one in a single transaction: one `fsync` for
//! all the names that arrived together, instead of one each. Whoever made a claim answers for
//! it only after `save` (the broker holds those answers back), so a name the registry said
//! was yours is on disk.

use std::collections::HashMap;
use std::path::Path;

use p2p_shared::identity::PublicKey;
use p2p_shared::PeerName;
use rusqlite::{params, Connection};

/// The most names the registry will ever hold claims for; beyond, `register` is refused.
pub const MAX_CLAIMS: usize = 1_000_000;

/// The store could not be read or written.
#[derive(Clone, Debug, thiserror::Error)]
#[error("the claims store failed: {0}")]
pub struct StoreError(String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

pub struct Claims {
    db: Connection,
    owners: HashMap<PeerName, PublicKey>,
    /// Claims made since the last [`Claims::save`], in `owners` but not yet on disk.
    unsaved: Vec<PeerName>,
}

impl Claims {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Claims, StoreError> {
        Self::with(Connection::open(path)?)
    }

    /// A store that lives in memory only, for tests.
    #[cfg(test)]
    pub fn in_memory() -> Result<Claims, StoreError> {
        Self::with(Connection::open_in_memory()?)
    }

    fn with(db: Connection) -> Result<Claims, StoreError> {
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
        let mut owners = HashMap::new();
        {
            let mut rows = db.prepare("SELECT name, key FROM claims")?;
            let mut rows = rows.query([])?;
            while let Some(row) = rows.next()? {
                let (name, key): (String, String) = (row.get(0)?, row.get(1)?);
                // Rows are only ever written from valid values; skip anything else rather
                // than refuse to start.
                if let (Ok(name), Ok(key)) = (name.parse(), key.parse()) {
                    owners.insert(name, key);
                }
            }
        }
        Ok(Claims {
            db,
            owners,
            unsaved: Vec::new(),
        })
    }

    /// The key that owns `name`, if any.
    pub fn owner(&self, name: &PeerName) -> Option<PublicKey> {
        self.owners.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Records that `key` owns `name` (which must be unclaimed), in memory: on disk with the
    /// next [`Claims::save`].
    pub fn claim(&mut self, name: &PeerName, key: PublicKey) {
        self.owners.insert(name.clone(), key);
        self.unsaved.push(name.clone());
    }

    /// Whether the claim on `name` waits for [`Claims::save`].
    pub fn is_unsaved(&self, name: &PeerName) -> bool {
        self.unsaved.contains(name)
    }

    /// Writes the claims made since the last save, all in one transaction. If that fails,
    /// none of them is kept, in memory either, and the names come back with the error.
    pub fn save(&mut self) -> Result<(), (StoreError, Vec<PeerName>)> {
        if self.unsaved.is_empty() {
            return Ok(());
        }
        let unsaved = std::mem::take(&mut self.unsaved);
        match self.write(&unsaved) {
            Ok(()) => Ok(()),
            Err(e) => {
                for name in &unsaved {
                    self.owners.remove(name);
                }
                Err((e, unsaved))
            }
        }
    }

    fn write(&mut self, names: &[PeerName]) -> Result<(), StoreError> {
        let transaction = self.db.transaction()?;
        {
            // REPLACE: a row start-up could not read (and skipped) must not fail every batch
            // that claims its name again.
            let mut insert = transaction
                .prepare_cached("INSERT OR REPLACE INTO claims (name, key) VALUES (?1, ?2)")?;
            for name in names {
                let key = self.owners.get(name).expect("an unsaved claim is an owner");
                insert.execute(params![name.as_str(), key.to_string()])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// Makes every later write fail, as a full or broken disk would.
    #[cfg(test)]
    pub fn break_disk(&mut self) {
        self.db.execute_batch("DROP TABLE claims").unwrap();
    }

    /// Forgets the claim on `name`: from the disk, unless it was not saved yet.
    pub fn release(&mut self, name: &PeerName) -> Result<(), StoreError> {
        match self.unsaved.iter().position(|n| n == name) {
            Some(i) => {
                self.unsaved.swap_remove(i);
            }
            None => {
                self.db
                    .execute("DELETE FROM claims WHERE name = ?1", params![name.as_str()])?;
            }
        }
        self.owners.remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::identity::Identity;

    #[test]
    fn claims_survive_reopening_the_store() {
        let dir = std::env::temp_dir().join(format!("p2p-claims-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("claims.db");
        let (alice, bob) = ("alice".parse().unwrap(), "bob".parse().unwrap());
        let key = Identity::generate().public();
        {
            let mut claims = Claims::open(&path).unwrap();
            claims.claim(&alice, key);
            claims.claim(&bob, Identity::generate().public());
            claims.save().unwrap();
            claims.release(&bob).unwrap();
        }
        let claims = Claims::open(&path).unwrap();
        assert_eq!(claims.owner(&alice), Some(key));
        assert_eq!(claims.owner(&bob), None);
        assert_eq!(claims.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn claims_made_together_are_saved_together() {
        let mut claims = Claims::in_memory().unwrap();
        let names: Vec<PeerName> = (0..3).map(|i| format!("p{i}").parse().unwrap()).collect();
        let key = Identity::generate().public();
        for name in &names {
            claims.claim(name, key);
            assert_eq!(claims.owner(name), Some(key), "a claim counts at once");
            assert!(claims.is_unsaved(name));
        }
        claims.save().unwrap();
        assert!(!claims.is_unsaved(&names[0]));
        let on_disk: i64 = claims
            .db
            .query_row("SELECT count(*) FROM claims", [], |row| row.get(0))
            .unwrap();
        assert_eq!(on_disk, 3);
    }

    #[test]
    fn a_batch_that_fails_halfway_leaves_nothing_on_disk() {
        let mut claims = Claims::in_memory().unwrap();
        let (alice, bob): (PeerName, PeerName) = ("alice".parse().unwrap(), "bob".parse().unwrap());
        // The second insert of the batch fails, after the first succeeded.
        claims
            .db
            .execute_batch(
                "CREATE TRIGGER no_bob BEFORE INSERT ON claims WHEN NEW.name = 'bob'
                 BEGIN SELECT RAISE(ABORT, 'no room for bob'); END",
            )
            .unwrap();
        claims.claim(&alice, Identity::generate().public());
        claims.claim(&bob, Identity::generate().public());
        let (_, lost) = claims.save().unwrap_err();
        assert_eq!(lost, vec![alice.clone(), bob.clone()]);
        let on_disk: i64 = claims
            .db
            .query_row("SELECT count(*) FROM claims", [], |row| row.get(0))
            .unwrap();
        assert_eq!(on_disk, 0, "the transaction is rolled back whole");
        assert_eq!(claims.owner(&alice), None);
    }

    #[test]
    fn a_row_unreadable_at_start_up_does_not_block_its_name() {
        let mut claims = Claims::in_memory().unwrap();
        claims
            .db
            .execute(
                "INSERT INTO claims (name, key) VALUES ('alice', 'not a key')",
                [],
            )
            .unwrap();
        let alice: PeerName = "alice".parse().unwrap();
        let key = Identity::generate().public();
        claims.claim(&alice, key);
        claims.save().unwrap();
        let stored: String = claims
            .db
            .query_row("SELECT key FROM claims WHERE name = 'alice'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(stored, key.to_string());
    }

    #[test]
    fn a_failed_save_keeps_none_of_its_claims() {
        let mut claims = Claims::in_memory().unwrap();
        let (alice, bob): (PeerName, PeerName) = ("alice".parse().unwrap(), "bob".parse().unwrap());
        let key = Identity::generate().public();
        claims.claim(&alice, key);
        claims.save().unwrap();
        claims.claim(&bob, key);
        // The disk refuses the write: nothing of it may stay, not even in memory.
        claims.break_disk();
        let (_, lost) = claims.save().unwrap_err();
        assert_eq!(lost, vec![bob.clone()]);
        assert_eq!(claims.owner(&bob), None);
        assert!(!claims.is_unsaved(&bob));
        assert_eq!(claims.owner(&alice), Some(key), "saved before, kept");
    }
}
