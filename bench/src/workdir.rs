//! A scratch folder for the programs' data (keys, name claims, history), removed at the end.
//!
//! Since protocol v2 the registry keeps its key and its name claims on disk and each peer
//! keeps its key there, by default in the user's data folder. The bench never touches that:
//! every program it starts gets a folder of its own under one scratch folder in the system's
//! temporary directory (on the same disk as a home folder here, so the registry's `fsync`s
//! cost what they would for a user), and dropping the [`WorkDir`] removes all of it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;

pub struct WorkDir {
    root: PathBuf,
    next: AtomicUsize,
}

impl WorkDir {
    /// Creates `p2p-bench-PID` in the temporary directory.
    pub fn create() -> anyhow::Result<WorkDir> {
        let root = std::env::temp_dir().join(format!("p2p-bench-{}", std::process::id()));
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        Ok(WorkDir {
            root,
            next: AtomicUsize::new(0),
        })
    }

    /// A new, empty folder for one program, named after it.
    pub fn fresh(&self, label: &str) -> anyhow::Result<PathBuf> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.root.join(format!("{n:03}-{label}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
