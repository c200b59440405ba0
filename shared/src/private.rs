//! A data folder only its owner can read: the folder 0700 and the program's files in it 0600.
//!
//! A data folder holds secrets (keys), what the user said (the chat history, every message in
//! the clear) and whom they trust (the pin files). A file created the ordinary way gets mode
//! 0644 under the usual umask: readable by every user of the machine. So each program creates
//! its files owner-only ([`create_private`], before SQLite opens a database: SQLite gives its
//! `-wal`, `-shm` and `-journal` files the mode of the database), and at start
//! [`make_private`] fixes a folder that an earlier version left open: the folder itself, its
//! subfolders, and the files in it that the program made, known by their names. A file is
//! never followed through a symbolic link, and a user's other files are left alone, since
//! `--data-dir` may name any folder.
//!
//! Key files are the exception: `Identity::load_or_create` refuses a key others could read
//! rather than fixing it, since such a key may be known to someone else already.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of a data folder and its subfolders.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file in a data folder.
pub const FILE_MODE: u32 = 0o600;

/// A file or folder whose mode [`make_private`] changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MadePrivate {
    pub path: PathBuf,
    pub was: u32,
    pub now: u32,
}

/// Makes `dir` private (created, with its parents, if missing), and in it, and in its
/// subfolders named in `subdirs`, every file whose name `ours` accepts. Returns what changed,
/// for the program to log.
pub fn make_private(
    dir: &Path,
    subdirs: &[&str],
    ours: impl Fn(&str) -> bool,
) -> io::Result<Vec<MadePrivate>> {
    let mut made = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    folders.extend(subdirs.iter().map(|sub| dir.join(sub)));
    for (i, folder) in folders.iter().enumerate() {
        if i == 0 {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(folder)?;
        }
        match fix(folder, true)? {
            Fix::Missing => continue,
            Fix::Changed(change) => made.push(change),
            Fix::Already => {}
        }
        for entry in fs::read_dir(folder)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_str().is_some_and(&ours) {
                if let Fix::Changed(change) = fix(&entry.path(), false)? {
                    made.push(change);
                }
            }
        }
    }
    Ok(made)
}

/// Creates `path` empty and owner-only if it does not exist; an existing file is left as it
/// is ([`make_private`] fixes its mode).
pub fn create_private(path: &Path) -> io::Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

enum Fix {
    Missing,
    Already,
    Changed(MadePrivate),
}

/// Gives `path` the private mode of a folder or a file, if it is one (not a link, which
/// would change the mode of whatever it points to).
fn fix(path: &Path, folder: bool) -> io::Result<Fix> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Fix::Missing),
        Err(e) => return Err(e),
    };
    let wanted = if folder { DIR_MODE } else { FILE_MODE };
    let right_kind = if folder {
        meta.is_dir()
    } else {
        meta.is_file()
    };
    let was = meta.permissions().mode() & 0o777;
    if !right_kind || was == wanted {
        return Ok(Fix::Already);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(wanted))?;
    Ok(Fix::Changed(MadePrivate {
        path: path.to_path_buf(),
        was,
        now: wanted,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn scratch(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("p2p-private-{}-{label}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn an_open_folder_and_our_files_in_it_are_made_private_and_others_left_alone() {
        let dir = scratch("open");
        fs::create_dir_all(dir.join("keys")).unwrap();
        for (file, mode) in [
            ("history-a.db", 0o644),
            ("history-a.db-wal", 0o644),
            ("keys/a.key", 0o600),
            ("notes.txt", 0o644),
        ] {
            fs::write(dir.join(file), "x").unwrap();
            fs::set_permissions(dir.join(file), fs::Permissions::from_mode(mode)).unwrap();
        }
        for folder in [&dir, &dir.join("keys")] {
            fs::set_permissions(folder, fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::os::unix::fs::symlink(dir.join("notes.txt"), dir.join("history-link")).unwrap();

        let made = make_private(&dir, &["keys", "missing"], |n| n.starts_with("history-")).unwrap();
        let mut changed: Vec<(PathBuf, u32, u32)> =
            made.into_iter().map(|m| (m.path, m.was, m.now)).collect();
        // A folder's entries come in no particular order.
        changed.sort();
        assert_eq!(
            changed,
            [
                (dir.clone(), 0o755, 0o700),
                (dir.join("history-a.db"), 0o644, 0o600),
                (dir.join("history-a.db-wal"), 0o644, 0o600),
                (dir.join("keys"), 0o755, 0o700),
            ]
        );
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("keys")), 0o700);
        assert_eq!(mode(&dir.join("history-a.db")), 0o600);
        assert_eq!(mode(&dir.join("history-a.db-wal")), 0o600);
        // Not ours, or behind a link: untouched.
        assert_eq!(mode(&dir.join("notes.txt")), 0o644);
        // Fixed once: nothing more to say the next time.
        assert!(make_private(&dir, &["keys"], |n| n.starts_with("history-"))
            .unwrap()
            .is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_folder_is_created_private_and_new_files_are_private() {
        let dir = scratch("new").join("deeper");
        assert!(make_private(&dir, &[], |_| true).unwrap().is_empty());
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("history-a.db");
        create_private(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        fs::write(&file, "kept").unwrap();
        create_private(&file).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "kept");
        fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}
