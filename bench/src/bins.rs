//! Where the programs under test come from.
//!
//! By default the bench measures the binaries of its own build: it asks cargo to build
//! `p2p-server` and `p2p-peer` with the profile and into the target directory the bench itself
//! was built with (`<target>/<profile>/p2p-bench` sits next to them), so the one command
//! `cargo run --release -p p2p-bench` measures release binaries of the current source. With
//! `--bin-dir` it measures whatever binaries that directory holds and builds nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// The two programs under test.
pub struct Bins {
    pub server: PathBuf,
    pub peer: PathBuf,
    /// The cargo profile they were built with, when the bench built them.
    pub profile: Option<String>,
}

impl Bins {
    /// Uses the binaries in `dir`, or builds them next to this executable when `dir` is `None`.
    pub fn locate(dir: Option<&Path>) -> anyhow::Result<Bins> {
        let (dir, profile) = match dir {
            Some(dir) => (dir.to_path_buf(), None),
            None => {
                let (dir, profile) = build_next_to_this_executable()?;
                (dir, Some(profile))
            }
        };
        let bins = Bins {
            server: dir.join(format!("p2p-server{}", std::env::consts::EXE_SUFFIX)),
            peer: dir.join(format!("p2p-peer{}", std::env::consts::EXE_SUFFIX)),
            profile,
        };
        for bin in [&bins.server, &bins.peer] {
            if !bin.is_file() {
                bail!("{} does not exist", bin.display());
            }
        }
        Ok(bins)
    }
}

/// Runs `cargo build --bins -p p2p-server -p p2p-peer` for this executable's profile and
/// target directory; returns the directory the binaries land in and the profile.
fn build_next_to_this_executable() -> anyhow::Result<(PathBuf, String)> {
    let exe = std::env::current_exe().context("cannot locate the p2p-bench executable")?;
    let (Some(dir), Some(target)) = (exe.parent(), exe.parent().and_then(Path::parent)) else {
        bail!(
            "{} is not inside a cargo target directory; pass --bin-dir",
            exe.display()
        );
    };
    let profile = dir
        .file_name()
        .and_then(|name| name.to_str())
        .context("the executable's directory has no name")?
        .to_owned();
    // Cargo sets CARGO for the programs it runs; outside cargo, use the one on PATH.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut build = Command::new(&cargo);
    build
        .current_dir(&workspace)
        .args(["build", "--bins", "-p", "p2p-server", "-p", "p2p-peer"])
        .arg("--target-dir")
        .arg(target);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            build.arg("--release");
        }
        other => {
            build.args(["--profile", other]);
        }
    }
    let status = build
        .status()
        .with_context(|| format!("cannot run {cargo} to build the programs under test"))?;
    if !status.success() {
        bail!("building p2p-server and p2p-peer failed ({status})");
    }
    Ok((dir.to_path_buf(), profile))
}
