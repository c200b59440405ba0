//! Folders for the programs' data (keys, name claims, history), removed when dropped.
//!
//! The programs keep their keys and more in the user's data folder by default; nothing run
//! by the tests or the bench ever touches it. Each program gets a folder of its own under the
//! system's temporary folder (on the same disk as a home folder here, so `fsync`s cost what
//! they would for a user).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh, empty folder, unique to this process and this instance, removed (with
/// everything in it) when dropped.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    next: AtomicUsize,
}

impl Scratch {
    /// A new folder; `label` (a peer name, `server`, ...) only helps a person reading paths.
    pub fn new(label: &str) -> std::io::Result<Scratch> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("p2p-{}-{n}-{label}", std::process::id());
        let path = std::env::temp_dir().join(name);
        // Left over by an earlier process with the same id that was killed: start empty.
        let _ = std::fs::remove_dir_all(&path);
        private_dir(&path)?;
        Ok(Scratch {
            path,
            next: AtomicUsize::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new, empty folder inside this one, named after `label`.
    pub fn fresh(&self, label: &str) -> std::io::Result<PathBuf> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.path.join(format!("{n:03}-{label}"));
        private_dir(&dir)?;
        Ok(dir)
    }
}

/// A folder only its owner can read, as the programs want their data folders: they would
/// otherwise fix its mode at start and say so, in every test.
fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
