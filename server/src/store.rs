//! Name claims that survive a restart: which key owns which name, in SQLite.
//!
//! A claim is made by the first key to register a name and lasts until that key releases it
//! (`release name`), whether or not its owner is online: nobody can take a name while its
//! owner is away, and a restarted registry still knows every owner. Addresses, by contrast,
//! are soft state and live only in memory (`registry.rs`).
//!
//! SQLite is an embedded database (no server to run) and a trusted one. Claims are also
//! cached in memory, so checking a name costs a hash lookup; only new claims and releases
//! touch the disk, each in its own transaction.

use std::collections::HashMap;
use std::path::Path;

use p2p_shared::identity::PublicKey;
use p2p_shared::PeerName;
use rusqlite::{params, Connection};

/// The most names the registry will ever hold claims for; beyond, `register` is refused.
pub const MAX_CLAIMS: usize = 1_000_000;

/// The store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the claims store failed: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

pub struct Claims {
    db: Connection,
    owners: HashMap<PeerName, PublicKey>,
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
        Ok(Claims { db, owners })
    }

    /// The key that owns `name`, if any.
    pub fn owner(&self, name: &PeerName) -> Option<PublicKey> {
        self.owners.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Records that `key` owns `name` (which must be unclaimed).
    pub fn claim(&mut self, name: &PeerName, key: PublicKey) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO claims (name, key) VALUES (?1, ?2)",
            params![name.as_str(), key.to_string()],
        )?;
        self.owners.insert(name.clone(), key);
        Ok(())
    }

    /// Forgets the claim on `name`.
    pub fn release(&mut self, name: &PeerName) -> Result<(), StoreError> {
        self.db
            .execute("DELETE FROM claims WHERE name = ?1", params![name.as_str()])?;
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
            claims.claim(&alice, key).unwrap();
            claims.claim(&bob, Identity::generate().public()).unwrap();
            claims.release(&bob).unwrap();
        }
        let claims = Claims::open(&path).unwrap();
        assert_eq!(claims.owner(&alice), Some(key));
        assert_eq!(claims.owner(&bob), None);
        assert_eq!(claims.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
