//! Pinned keys, like SSH's `known_hosts`: the key we first saw for each peer name in each
//! registry's namespace (in `known_peers-NAME`, keyed by `state::pins::Scoped`) and for each
//! registry as the user names it (in `known_registries-NAME`); each peer name of a data
//! folder has its own (`files.rs`).
//!
//! On first contact a key is pinned; afterwards a different key for the same name is refused
//! until the user deliberately trusts it (`trust NAME FINGERPRINT`). Each file has one
//! `NAME KEY` pair per line, read once at start-up; a peer's line may end with the Noise
//! static key its identity vouched for in the last chat (`NAME KEY NOISE`), so that the
//! next chat request to it can use Noise IK (`shared/src/handshake.rs`). A change is kept in memory at once and the whole file is
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

use p2p_shared::identity::{NoiseKey, PublicKey};

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
    /// The Noise static key last proved by the pinned key, where one was.
    noise: BTreeMap<K, NoiseKey>,
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
        let (mut keys, mut noise) = (BTreeMap::new(), BTreeMap::new());
        match fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let (name, key, static_key) = match words[..] {
                        [name, key] => (name, key, None),
                        [name, key, static_key] => (name, key, Some(static_key)),
                        _ => continue,
                    };
                    let (Ok(name), Ok(key)) = (name.parse::<K>(), key.parse()) else {
                        continue;
                    };
                    if let Some(Ok(static_key)) = static_key.map(str::parse::<NoiseKey>) {
                        noise.insert(name.clone(), static_key);
                    }
                    keys.insert(name, key);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        }
        Ok(KnownKeys { path, keys, noise })
    }

    /// Nothing pinned, nothing on disk: for tests.
    #[cfg(test)]
    pub fn empty() -> Self {
        KnownKeys {
            path: PathBuf::new(),
            keys: BTreeMap::new(),
            noise: BTreeMap::new(),
        }
    }

    pub fn check(&self, name: &K, key: &PublicKey) -> Pin {
        match self.keys.get(name) {
            None => Pin::New,
            Some(pinned) if pinned == key => Pin::Known,
            Some(pinned) => Pin::Changed { pinned: *pinned },
        }
    }

    /// Every pin: each name and its key, in the names' order.
    pub fn entries(&self) -> impl Iterator<Item = (&K, &PublicKey)> {
        self.keys.iter()
    }

    /// The key pinned for `name`, if any.
    pub fn get(&self, name: &K) -> Option<PublicKey> {
        self.keys.get(name).copied()
    }

    /// The Noise static key the key pinned for `name` proved in the last chat, if any.
    pub fn noise(&self, name: &K) -> Option<NoiseKey> {
        self.noise.get(name).copied()
    }

    /// Pins `key` for `name`, replacing any earlier key (and the Noise static key of the
    /// earlier one); returns the file to write.
    pub fn pin(&mut self, name: &K, key: PublicKey) -> FileWrite {
        if self.keys.insert(name.clone(), key) != Some(key) {
            self.noise.remove(name);
        }
        self.file()
    }

    /// Records the Noise static key that the key pinned for `name` proved; the file to
    /// write if that changed anything.
    pub fn pin_noise(&mut self, name: &K, static_key: NoiseKey) -> Option<FileWrite> {
        if !self.keys.contains_key(name) || self.noise.get(name) == Some(&static_key) {
            return None;
        }
        self.noise.insert(name.clone(), static_key);
        Some(self.file())
    }

    /// Removes the pin for `name` (and its Noise static key); the file to write if there was
    /// one.
    pub fn unpin(&mut self, name: &K) -> Option<FileWrite> {
        self.noise.remove(name);
        self.keys.remove(name).map(|_| self.file())
    }

    /// Moves the pins whose name `rename` gives a new one (with their Noise static keys);
    /// the file to write if any moved. A pin already under the new name stays.
    pub fn rekey(&mut self, rename: impl Fn(&K) -> Option<K>) -> Option<FileWrite> {
        let moving: Vec<(K, K)> = self
            .keys
            .keys()
            .filter_map(|old| rename(old).map(|new| (old.clone(), new)))
            .collect();
        if moving.is_empty() {
            return None;
        }
        for (old, new) in moving {
            let key = self.keys.remove(&old).expect("listed just now");
            let noise = self.noise.remove(&old);
            if !self.keys.contains_key(&new) {
                self.keys.insert(new.clone(), key);
                if let Some(noise) = noise {
                    self.noise.insert(new, noise);
                }
            }
        }
        Some(self.file())
    }

    fn file(&self) -> FileWrite {
        let mut contents = String::new();
        for (name, key) in &self.keys {
            match self.noise.get(name) {
                Some(static_key) => contents.push_str(&format!("{name} {key} {static_key}\n")),
                None => contents.push_str(&format!("{name} {key}\n")),
            }
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
        let tmp = temporary(&self.path);
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

/// Where `path` is written before it is renamed into place: `NAME.PID.tmp` beside it. The
/// process id keeps two programs on one data folder off each other's temporary file (one
/// renamed it away while the other still wrote it), and the whole name is kept: a peer name
/// may hold dots, and `with_extension` would make `book-a.b` and `book-a.c` one `book-a.tmp`.
fn temporary(path: &std::path::Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
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

    #[test]
    fn the_temporary_file_is_this_process_s_and_keeps_the_whole_name() {
        let pid = std::process::id();
        for (path, tmp) in [
            (
                "/d/known_peers-a.b",
                format!("/d/known_peers-a.b.{pid}.tmp"),
            ),
            (
                "/d/known_peers-a.c",
                format!("/d/known_peers-a.c.{pid}.tmp"),
            ),
            ("/d/book", format!("/d/book.{pid}.tmp")),
        ] {
            assert_eq!(temporary(std::path::Path::new(path)), PathBuf::from(tmp));
        }
    }

    #[test]
    fn a_noise_static_key_is_kept_with_its_pin_and_forgotten_with_it() {
        let dir = std::env::temp_dir().join(format!("p2p-known-noise-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("known_peers");
        // A file of protocol version 4: name and key only.
        let (bob, first) = ("bob".parse::<PeerName>().unwrap(), Identity::generate());
        fs::write(&path, format!("bob {}\n", first.public())).unwrap();
        let mut known = KnownKeys::<PeerName>::load(path.clone()).unwrap();
        assert_eq!(
            known.check(&bob, &first.public()),
            Pin::Known,
            "carried over"
        );
        assert_eq!(known.noise(&bob), None);

        let static_key = first.noise().public();
        known
            .pin_noise(&bob, static_key)
            .unwrap()
            .perform()
            .unwrap();
        assert!(known.pin_noise(&bob, static_key).is_none(), "nothing new");
        let mut known = KnownKeys::<PeerName>::load(path.clone()).unwrap();
        assert_eq!(known.noise(&bob), Some(static_key), "kept across restarts");
        let carol: PeerName = "carol".parse().unwrap();
        assert!(
            known.pin_noise(&carol, static_key).is_none(),
            "only with a pin"
        );

        // A new key for bob: the static key proved by the old one no longer counts.
        known
            .pin(&bob, Identity::generate().public())
            .perform()
            .unwrap();
        assert_eq!(KnownKeys::<PeerName>::load(path).unwrap().noise(&bob), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
