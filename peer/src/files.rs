//! The files one peer keeps in its data folder, each with the peer's name in it, and carrying
//! over the files that versions before this one shared between every name of the folder.
//!
//! A data folder is often shared by several names: README's quick start runs alice and bob
//! on the default one. Each name is an identity of its own (its own key), so everything a
//! peer writes is its own file: peers of different names never write the same file, and
//! nothing one of them writes can be lost to the other (docs/decisions.md, "One data folder,
//! several names"). Two peers of the same name on one folder are refused at start (the chat
//! history is held exclusively, `history.rs`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use p2p_shared::PeerName;

use crate::known::FileWrite;

/// The paths of one peer's files.
pub struct Files {
    /// `keys/NAME.key`: the peer's identity.
    pub key: PathBuf,
    /// `history-NAME.db`: the chat history (SQLite).
    pub history: PathBuf,
    /// `history-NAME`: the lines typed at the terminal.
    pub lines: PathBuf,
    /// `known_peers-NAME`: the keys pinned for peer names.
    pub known_peers: PathBuf,
    /// `known_registries-NAME`: the keys pinned for registries.
    pub known_registries: PathBuf,
    /// `book-NAME`: the peers known from their records.
    pub book: PathBuf,
    /// `blocked-NAME`: the keys whose broadcasts and requests are dropped.
    pub blocked: PathBuf,
    /// `conversations-NAME`: the open and away chats, with the messages kept for them.
    pub conversations: PathBuf,
    dir: PathBuf,
    name: PeerName,
}

/// The prefixes of the files [`Files`] names (for any name), with their SQLite and
/// temporary files: what [`is_peer_file`] knows as the peer's.
const PREFIXES: [&str; 6] = [
    "history-",
    "known_peers",
    "known_registries",
    "book",
    "blocked",
    "conversations",
];

/// The files versions before this one kept for every name of the folder, and what each
/// holds: whether any name may take a copy of it.
const SHARED: [(&str, Carry); 5] = [
    ("known_peers", Carry::Copy),
    ("known_registries", Carry::Copy),
    ("book", Carry::Copy),
    ("blocked", Carry::Copy),
    ("conversations", Carry::OnlyName),
];

/// How an old shared file is carried over to a name.
#[derive(Clone, Copy)]
enum Carry {
    /// Each name starts from a copy: pins, the book and blocked keys were every name's.
    Copy,
    /// Taken by a name only when it is the only one with a key in the folder: a chat and the
    /// messages kept for it belong to the name that typed them, and the old file does not
    /// say which name that was.
    OnlyName,
}

impl Files {
    /// The files of `name` in the data folder `dir`.
    pub fn of(dir: &Path, name: PeerName) -> Files {
        let own = |file: &str| dir.join(format!("{file}-{name}"));
        Files {
            key: dir.join("keys").join(format!("{name}.key")),
            history: dir.join(format!("history-{name}.db")),
            lines: own("history"),
            known_peers: own("known_peers"),
            known_registries: own("known_registries"),
            book: own("book"),
            blocked: own("blocked"),
            conversations: own("conversations"),
            dir: dir.to_path_buf(),
            name,
        }
    }

    /// Gives this name the files an earlier version shared between all names, where it has
    /// none of its own yet; returns what it did that the user should know, one line each.
    /// Run while the peer holds its history (so no other peer of this name runs): two names
    /// may carry over at once, each to its own files.
    ///
    /// The old files stay where they are, for other names to copy (and for the older
    /// version, should the user go back to it), bar one that no name may take: it is renamed
    /// `NAME.old`, so that it is reported once.
    pub fn carry_over(&self) -> anyhow::Result<Vec<String>> {
        let mut said = Vec::new();
        for (file, carry) in SHARED {
            let (old, own) = (
                self.dir.join(file),
                self.dir.join(format!("{file}-{}", self.name)),
            );
            if exists(&own)? {
                continue;
            }
            let contents = match fs::read_to_string(&old) {
                Ok(contents) => contents,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => anyhow::bail!("cannot read {}: {e}", old.display()),
            };
            match carry {
                Carry::Copy => {}
                Carry::OnlyName if self.only_name()? => {}
                Carry::OnlyName => {
                    let aside = self.dir.join(format!("{file}.old"));
                    match fs::rename(&old, &aside) {
                        Ok(()) => said.push(format!(
                            "{} was kept for every name of this folder and several names have \
                             keys here: not carried over (renamed {}); away chats in it start \
                             anew with a chat request",
                            old.display(),
                            aside.display()
                        )),
                        // Another name set it aside first, and said so.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => anyhow::bail!("cannot rename {}: {e}", old.display()),
                    }
                    continue;
                }
            }
            FileWrite {
                path: own,
                contents,
            }
            .perform()?;
        }
        Ok(said)
    }

    /// Whether this name's key is the only key in the folder.
    fn only_name(&self) -> anyhow::Result<bool> {
        let keys = self.dir.join("keys");
        let entries = fs::read_dir(&keys)
            .map_err(|e| anyhow::anyhow!("cannot list {}: {e}", keys.display()))?;
        let mut others = 0;
        for entry in entries {
            let file = entry?.file_name();
            let file = file.to_string_lossy();
            if file.ends_with(".key") && file != format!("{}.key", self.name) {
                others += 1;
            }
        }
        Ok(others == 0)
    }
}

fn exists(path: &Path) -> anyhow::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => anyhow::bail!("cannot look at {}: {e}", path.display()),
    }
}

/// Whether a file of the data folder is one this program made (for any name): the chat
/// history and its SQLite files (`history-NAME.db`, `-wal`, `-shm`, `-journal`), the command
/// history (`history-NAME`), the pin files, the book, the blocked keys and the conversations,
/// with their temporary files and the shared files of earlier versions. Key files are not:
/// one others could read is refused, not fixed (`Identity::load_or_create`).
pub fn is_peer_file(file: &str) -> bool {
    PREFIXES.iter().any(|prefix| file.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh data folder with keys for `names`.
    fn folder(test: &str, names: &[&str]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("p2p-files-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("keys")).unwrap();
        for name in names {
            fs::write(dir.join("keys").join(format!("{name}.key")), "").unwrap();
        }
        dir
    }

    fn name(s: &str) -> PeerName {
        s.parse().unwrap()
    }

    #[test]
    fn every_file_but_the_key_folder_has_the_name_in_it() {
        let files = Files::of(Path::new("/d"), name("a.b"));
        for path in [
            &files.history,
            &files.lines,
            &files.known_peers,
            &files.known_registries,
            &files.book,
            &files.blocked,
            &files.conversations,
        ] {
            let file = path.file_name().unwrap().to_str().unwrap();
            assert!(file.contains("-a.b"), "{file}");
            assert!(is_peer_file(file), "{file}");
        }
        assert_eq!(files.key, Path::new("/d/keys/a.b.key"));
        assert!(!is_peer_file("a.b.key"));
    }

    #[test]
    fn the_shared_files_of_before_are_copied_to_each_name_once() {
        let dir = folder("copy", &["alice", "carol"]);
        fs::write(dir.join("known_peers"), "@local/bob KEY\n").unwrap();
        fs::write(dir.join("blocked"), "mallory KEY\n").unwrap();
        for who in ["alice", "carol"] {
            let files = Files::of(&dir, name(who));
            assert_eq!(files.carry_over().unwrap(), Vec::<String>::new());
            assert_eq!(
                fs::read_to_string(&files.known_peers).unwrap(),
                "@local/bob KEY\n"
            );
            assert_eq!(fs::read_to_string(&files.blocked).unwrap(), "mallory KEY\n");
            assert!(!files.book.exists(), "nothing to carry");
        }
        // A name's own file is never overwritten by the old one.
        let alice = Files::of(&dir, name("alice"));
        fs::write(&alice.known_peers, "@local/dave KEY\n").unwrap();
        alice.carry_over().unwrap();
        assert_eq!(
            fs::read_to_string(&alice.known_peers).unwrap(),
            "@local/dave KEY\n"
        );
        assert!(dir.join("known_peers").exists(), "kept for other names");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_old_conversations_go_only_to_the_one_name_of_the_folder() {
        let dir = folder("alone", &["alice"]);
        fs::write(dir.join("conversations"), "{}\n").unwrap();
        let alice = Files::of(&dir, name("alice"));
        assert!(alice.carry_over().unwrap().is_empty());
        assert_eq!(fs::read_to_string(&alice.conversations).unwrap(), "{}\n");
        let _ = fs::remove_dir_all(&dir);

        let dir = folder("several", &["alice", "carol"]);
        fs::write(dir.join("conversations"), "{}\n").unwrap();
        let alice = Files::of(&dir, name("alice"));
        let said = alice.carry_over().unwrap();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("not carried over"), "{said:?}");
        assert!(!alice.conversations.exists());
        assert!(dir.join("conversations.old").exists());
        // Said once: the next name finds nothing to set aside.
        assert!(Files::of(&dir, name("carol"))
            .carry_over()
            .unwrap()
            .is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
