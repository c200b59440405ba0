//! Pinned keys, like SSH's `known_hosts`: the key we first saw for each peer name (in
//! `known_peers`) and for each registry address (in `known_registries`).
//!
//! On first contact a key is pinned; afterwards a different key for the same name is refused
//! until the user deliberately trusts it (`trust NAME`). Each file is one `NAME KEY` pair per
//! line, read once at start-up. A change is kept in memory at once and the whole file is
//! rewritten by the disk thread (`disk.rs`) from the [`FileWrite`] that [`KnownKeys::pin`]
//! returns: written to a temporary file, then renamed over the old one, so a crash leaves
//! either the old or the new file, never half of one, readable by its owner only.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::str::FromStr;

use p2p_shared::identity::PublicKey;

/// What a key is, compared with the pinned one.
#[derive(Debug, PartialEq, Eq)]
pub enum Pin {
    /// The pinned key.
    Known,
    /// Nothing pinned yet: first contact.
    New,
    /// Another key is pinned: this one is refused.
    Changed { pinned: PublicKey },
}

/// Keys pinned for names of type `K`, kept in one file.
pub struct KnownKeys<K> {
    path: PathBuf,
    keys: BTreeMap<K, PublicKey>,
}

/// A whole file to write, atomically: what the disk thread does with a changed pin file.
#[derive(Debug)]
pub struct FileWrite {
    pub path: PathBuf,
    pub contents: String,
}

impl<K: Ord + Clone + Display + FromStr> KnownKeys<K> {
    /// Loads the file at `path`; a missing file is an empty list. Lines that do not parse are
    /// skipped (and kept out of the next rewrite).
    pub fn load(path: PathBuf) -> anyhow::Result<Self> {
        let mut keys = BTreeMap::new();
        match fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    let mut words = line.split_whitespace();
                    if let (Some(name), Some(key), None) =
                        (words.next(), words.next(), words.next())
                    {
                        if let (Ok(name), Ok(key)) = (name.parse(), key.parse()) {
                            keys.insert(name, key);
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        }
        Ok(KnownKeys { path, keys })
    }

    /// Nothing pinned, nothing on disk: for tests.
    #[cfg(test)]
    pub fn empty() -> Self {
        KnownKeys {
            path: PathBuf::new(),
            keys: BTreeMap::new(),
        }
    }

    pub fn check(&self, name: &K, key: &PublicKey) -> Pin {
        match self.keys.get(name) {
            None => Pin::New,
            Some(pinned) if pinned == key => Pin::Known,
            Some(pinned) => Pin::Changed { pinned: *pinned },
        }
    }

    /// Pins `key` for `name`, replacing any earlier key; returns the file to write.
    /// The key pinned for `name`, if any.
    pub fn get(&self, name: &K) -> Option<PublicKey> {
        self.keys.get(name).copied()
    }

    pub fn pin(&mut self, name: &K, key: PublicKey) -> FileWrite {
        self.keys.insert(name.clone(), key);
        let mut contents = String::new();
        for (name, key) in &self.keys {
            contents.push_str(&format!("{name} {key}\n"));
        }
        FileWrite {
            path: self.path.clone(),
            contents,
        }
    }
}

impl FileWrite {
    /// Writes the file: to a temporary file first, then renamed over the old one.
    pub fn perform(&self) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(self.contents.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| anyhow::anyhow!("cannot write {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::identity::Identity;
    use p2p_shared::PeerName;

    #[test]
    fn first_contact_pins_and_a_changed_key_is_caught_across_restarts() {
        let dir = std::env::temp_dir().join(format!("p2p-known-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("known_peers");
        let bob: PeerName = "bob".parse().unwrap();
        let (first, second) = (Identity::generate().public(), Identity::generate().public());

        let mut known = KnownKeys::<PeerName>::load(path.clone()).unwrap();
        assert_eq!(known.check(&bob, &first), Pin::New);
        known.pin(&bob, first).perform().unwrap();

        let mut known = KnownKeys::<PeerName>::load(path.clone()).unwrap();
        assert_eq!(known.check(&bob, &first), Pin::Known);
        assert_eq!(known.check(&bob, &second), Pin::Changed { pinned: first });
        known.pin(&bob, second).perform().unwrap();
        assert_eq!(
            KnownKeys::<PeerName>::load(path)
                .unwrap()
                .check(&bob, &second),
            Pin::Known
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
