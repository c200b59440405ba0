//! The environment variables of the two programs, one rule for all: a flag `--some-flag` of
//! p2p-peer is also the variable `P2P_PEER_SOME_FLAG`, of p2p-server `P2P_REGISTRY_SOME_FLAG`.
//!
//! Each program has a prefix of its own because the same flag means different things to the
//! two (`--port`, `--bind`, `--data-dir`): both used to read `P2P_PORT`, so exporting it for
//! one moved the other too. The names of before (`P2P_` and the flag) are still read for one
//! release, each with a warning that names the new one; where both are set, the new one
//! counts. The names are given to the flags here, at start, rather than written beside each
//! flag, so that no flag can break the rule.

use std::ffi::OsString;

use clap::Command;

/// The prefix of p2p-peer's variables.
pub const PEER: &str = "P2P_PEER_";
/// The prefix of p2p-server's variables.
pub const REGISTRY: &str = "P2P_REGISTRY_";
/// The prefix both programs read before, still read for one release.
pub const OLD: &str = "P2P_";

/// The variable of the flag `--long` under `prefix`: `variable(PEER, "data-dir")` is
/// `P2P_PEER_DATA_DIR`.
pub fn variable(prefix: &str, long: &str) -> String {
    format!("{prefix}{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// Which variable a flag reads, and what to tell the user about it.
#[derive(Debug, PartialEq, Eq)]
pub struct Chosen {
    pub name: String,
    pub warning: Option<String>,
}

/// The variable to read for the flag `--long` of the program with `prefix`, given which
/// variables are set (`is_set`): its own name, or the name of before when only that one is
/// set (with a warning to rename it), and a warning if the name of before is set beside the
/// new one (it is not read).
pub fn choose(prefix: &str, long: &str, is_set: impl Fn(&str) -> bool) -> Chosen {
    let (new, old) = (variable(prefix, long), variable(OLD, long));
    match (is_set(&new), is_set(&old)) {
        (false, true) => Chosen {
            warning: Some(format!(
                "{old} is read as {new} for this release only; rename it (the next release \
                 reads only {new})"
            )),
            name: old,
        },
        (true, true) => Chosen {
            warning: Some(format!("{old} is not read: {new} is set; remove {old}")),
            name: new,
        },
        _ => Chosen {
            name: new,
            warning: None,
        },
    }
}

/// Gives every flag of `command` its variable (bar `--help`, `--version` and the flags named
/// in `except`), choosing as [`choose`] does from the process's environment; returns the
/// command and the warnings to give.
pub fn with_variables(command: Command, prefix: &str, except: &[&str]) -> (Command, Vec<String>) {
    with_variables_from(command, prefix, except, |name| {
        std::env::var_os(name).is_some_and(|v: OsString| !v.is_empty())
    })
}

fn with_variables_from(
    command: Command,
    prefix: &str,
    except: &[&str],
    is_set: impl Fn(&str) -> bool,
) -> (Command, Vec<String>) {
    let mut warnings = Vec::new();
    let command = command.mut_args(|arg| {
        let Some(long) = arg.get_long().map(str::to_owned) else {
            return arg;
        };
        if ["help", "version"].contains(&long.as_str()) || except.contains(&long.as_str()) {
            return arg;
        }
        let chosen = choose(prefix, &long, &is_set);
        warnings.extend(chosen.warning);
        arg.env(chosen.name)
    });
    (command, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn program() -> Command {
        Command::new("p")
            .arg(Arg::new("data_dir").long("data-dir"))
            .arg(Arg::new("port").long("port"))
            .arg(Arg::new("peers").long("peers"))
            .arg(Arg::new("json").long("json").action(ArgAction::SetTrue))
    }

    fn envs(command: &Command) -> Vec<(String, Option<String>)> {
        command
            .get_arguments()
            .map(|a| {
                let env = a.get_env().map(|e| e.to_string_lossy().into_owned());
                (a.get_id().to_string(), env)
            })
            .collect()
    }

    #[test]
    fn every_flag_gets_its_programs_name_and_the_old_one_only_alone() {
        let set = ["P2P_PORT", "P2P_JSON", "P2P_PEER_JSON"];
        let (command, warnings) =
            with_variables_from(program(), PEER, &["peers"], |v| set.contains(&v));
        let envs = envs(&command);
        let env_of = |id: &str| envs.iter().find(|(i, _)| i == id).unwrap().1.clone();
        assert_eq!(env_of("data_dir").as_deref(), Some("P2P_PEER_DATA_DIR"));
        assert_eq!(
            env_of("port").as_deref(),
            Some("P2P_PORT"),
            "only the old one"
        );
        assert_eq!(
            env_of("json").as_deref(),
            Some("P2P_PEER_JSON"),
            "the new one wins"
        );
        assert_eq!(env_of("peers"), None, "left as it was");
        assert_eq!(
            warnings,
            [
                "P2P_PORT is read as P2P_PEER_PORT for this release only; rename it (the next \
                 release reads only P2P_PEER_PORT)",
                "P2P_JSON is not read: P2P_PEER_JSON is set; remove P2P_JSON",
            ]
        );
    }

    #[test]
    fn the_two_programs_never_share_a_name() {
        for flag in ["port", "bind", "data-dir", "max-conns-per-ip"] {
            assert_ne!(variable(PEER, flag), variable(REGISTRY, flag));
        }
        assert_eq!(variable(REGISTRY, "data-dir"), "P2P_REGISTRY_DATA_DIR");
    }
}
