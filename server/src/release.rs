//! The operator's `p2p-server release NAME`: gives a claimed name back, offline.
//!
//! Claims never expire (a name is a promise), but a user who lost their key cannot release
//! their name, and a squatter will not. The operator can, on the registry's own machine: this
//! deletes the claim from the claims database in `--data-dir`. It works only while no
//! registry runs on that database: a running registry holds it exclusively (`store.rs`) and
//! keeps the claims in memory, so a change under it would be undone or, worse, half seen. A
//! running registry makes this fail with a line that says to stop it first; the next start
//! reads the claims without the released name. No network request can release a name in
//! anyone else's stead, so the registry gains no new way in (docs/decisions.md).

use std::path::Path;

use p2p_shared::identity::PublicKey;
use p2p_shared::PeerName;

use crate::store::ClaimStore;

/// Why a release did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("no claims database at {0}")]
    NoDatabase(String),
    #[error("a registry is running on {0} (its claims database is locked); stop it, then release")]
    RegistryRunning(String),
    #[error("{name} is not claimed in {path}")]
    NotClaimed { name: PeerName, path: String },
    #[error("cannot release in {path}: {source}")]
    Failed {
        path: String,
        source: crate::store::StoreError,
    },
}

/// Deletes the claim on `name` from the claims database at `path`; returns the key that
/// owned it.
pub fn release(path: &Path, name: &PeerName) -> Result<PublicKey, ReleaseError> {
    let shown = path.display().to_string();
    // Opening would create an empty database: a wrong --data-dir must say so instead.
    if !path.is_file() {
        return Err(ReleaseError::NoDatabase(shown));
    }
    let failed = |source: crate::store::StoreError| match source.is_locked() {
        true => ReleaseError::RegistryRunning(shown.clone()),
        false => ReleaseError::Failed {
            path: shown.clone(),
            source,
        },
    };
    let mut store = ClaimStore::open_or_fail(path).map_err(failed)?;
    match store.release_any(name).map_err(failed)? {
        Some(key) => Ok(key),
        None => Err(ReleaseError::NotClaimed {
            name: *name,
            path: shown,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Op;
    use p2p_shared::identity::Identity;

    #[test]
    fn a_release_deletes_the_claim_and_is_refused_while_the_database_is_held() {
        let dir = std::env::temp_dir().join(format!("p2p-release-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("claims.db");
        let (alice, bob): (PeerName, PeerName) = ("alice".parse().unwrap(), "bob".parse().unwrap());
        let key = Identity::generate().public();
        let missing = release(&dir.join("nothing.db"), &alice);
        assert!(matches!(missing, Err(ReleaseError::NoDatabase(_))));
        ClaimStore::open(&path)
            .unwrap()
            .write(&[Op::Claim { name: alice, key }])
            .unwrap();
        {
            // A registry's store, which has only read the claims so far, holds the database:
            // the release is refused.
            let running = ClaimStore::open(&path).unwrap();
            assert_eq!(running.claims().unwrap().len(), 1);
            let refused = release(&path, &alice);
            assert!(
                matches!(refused, Err(ReleaseError::RegistryRunning(_))),
                "{refused:?}"
            );
        }
        assert_eq!(release(&path, &alice).unwrap(), key);
        assert!(matches!(
            release(&path, &alice),
            Err(ReleaseError::NotClaimed { .. })
        ));
        assert!(matches!(
            release(&path, &bob),
            Err(ReleaseError::NotClaimed { .. })
        ));
        assert!(ClaimStore::open(&path)
            .unwrap()
            .claims()
            .unwrap()
            .is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
