//! Where the programs under test come from.
//!
//! Cargo gives a package's integration tests the path of that package's own binaries
//! (`CARGO_BIN_EXE_*`), but the end-to-end tests and the bench live in packages of their own.
//! So the kit builds `p2p-server` and `p2p-peer` itself, once per process, with the profile
//! and into the target folder of the executable that asks: `cargo test` gets debug builds
//! next to its test executables, `cargo run --release -p p2p-bench` release builds next to
//! the bench, wherever `CARGO_TARGET_DIR` points. Cargo releases its build lock before it
//! runs test executables, so this works from inside `cargo test`; once built, it is a
//! no-op of a fraction of a second.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::Error;

/// The two programs under test.
#[derive(Clone, Debug)]
pub struct Bins {
    pub server: PathBuf,
    pub peer: PathBuf,
    /// The cargo profile they were built with, when the kit built them.
    pub profile: Option<String>,
}

impl Bins {
    /// The programs of this build: built (once per process) next to the running executable.
    pub fn of_this_build() -> Result<&'static Bins, Error> {
        static BINS: OnceLock<Result<Bins, Error>> = OnceLock::new();
        BINS.get_or_init(build_next_to_this_executable)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The programs in `dir`, built by someone else.
    pub fn in_dir(dir: &Path) -> Result<Bins, Error> {
        Bins::at(dir, None)
    }

    fn at(dir: &Path, profile: Option<String>) -> Result<Bins, Error> {
        let bin = |name: &str| dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        let bins = Bins {
            server: bin("p2p-server"),
            peer: bin("p2p-peer"),
            profile,
        };
        for path in [&bins.server, &bins.peer] {
            if !path.is_file() {
                return Err(Error(format!("{} does not exist", path.display())));
            }
        }
        Ok(bins)
    }
}

/// Environment variables cargo sets for a test or a program it runs, besides `CARGO_PKG_*`.
const SET_BY_CARGO_FOR_A_TEST: [&str; 8] = [
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];

/// Runs `cargo build --bins -p p2p-server -p p2p-peer` for this executable's profile and
/// target folder, and finds the programs there.
fn build_next_to_this_executable() -> Result<Bins, Error> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this executable: {e}"))?;
    // A test executable is in <target>/<profile>/deps/, a binary in <target>/<profile>/.
    let mut dir = exe.parent();
    if dir
        .and_then(Path::file_name)
        .is_some_and(|name| name == "deps")
    {
        dir = dir.and_then(Path::parent);
    }
    let (Some(dir), Some(target)) = (dir, dir.and_then(Path::parent)) else {
        return Err(Error(format!(
            "{} is not in a cargo target folder",
            exe.display()
        )));
    };
    let profile = dir
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| format!("{} has no profile folder", exe.display()))?
        .to_owned();
    // Cargo sets CARGO for the programs it runs; outside cargo, use the one on PATH.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut build = Command::new(&cargo);
    // What cargo sets for the test it runs describes that test's package: passed on, it made
    // build scripts that watch one of them (ring's watches CARGO_MANIFEST_DIR) run again, and
    // everything above them rebuild, on every `cargo test`.
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if name.starts_with("CARGO_PKG_") || SET_BY_CARGO_FOR_A_TEST.contains(&name.as_ref()) {
            build.env_remove(&var);
        }
    }
    build
        .current_dir(&workspace)
        .args(["build", "--bins", "-p", "p2p-server", "-p", "p2p-peer"])
        .arg("--target-dir")
        .arg(target);
    match profile.as_str() {
        // Cargo's `test` profile builds into `debug` too, with the dev profile's settings,
        // but a unit's fingerprint names its profile: built as `dev` here, every unit that
        // `cargo test` had built as `test` was rebuilt, and the other way round on the next
        // `cargo test` (about 20 s each time). As `test`, they are the same units.
        "debug" => {
            build.args(["--profile", "test"]);
        }
        "release" => {
            build.arg("--release");
        }
        other => {
            build.args(["--profile", other]);
        }
    }
    let out = build
        .output()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !out.status.success() {
        return Err(Error(format!(
            "building p2p-server and p2p-peer failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Bins::at(dir, Some(profile))
}
