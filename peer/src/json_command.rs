//! Commands in JSON, and the ids that tie every event to the command it answers.
//!
//! A script reading `--json` must know which command (or which earlier message) each event
//! answers: two `chat message` commands in a row each end in a `delivered`, perhaps in either
//! order, perhaps much later. So every command has a [`CommandId`], and every event a command
//! causes carries it, its later outcomes included (docs/json.md, "Ids"). With `--json`, a
//! line of stdin that starts with `{` is a command with an id of the script's own choosing,
//! `{"id": "7", "cmd": "chat message bob hi"}` ([`parse`]); a plain line is a command too, and
//! the peer numbers those itself: `c1`, `c2`, ...
//!
//! The line comes from a script, so nothing in it is trusted: it is at most a line long
//! (`input.rs`), the id is short and printable, and whatever is wrong with it is one error
//! that says what, with the id when the id itself could be read.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// The longest id a JSON command may have, in characters (all ASCII).
pub const MAX_ID_LEN: usize = 64;

/// The id of one command, as events carry it in `id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CommandId(Repr);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Repr {
    /// Chosen by the peer for the `n`th plain line with a command: `cN`.
    Chosen(u64),
    /// Given by a JSON command: 1 to [`MAX_ID_LEN`] printable ASCII characters.
    Given(Box<str>),
}

impl CommandId {
    /// The id the peer gives the `n`th plain command (counting from 1): `cN`.
    pub fn chosen(n: u64) -> CommandId {
        CommandId(Repr::Chosen(n))
    }

    /// `id` as a script gave it, if it is one: 1 to [`MAX_ID_LEN`] characters, each printable
    /// ASCII (space to `~`), so that it is short and shows as typed wherever it is echoed.
    pub fn given(id: &str) -> Result<CommandId, String> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(format!(
                "\"id\" has 1 to {MAX_ID_LEN} characters, this one has {}",
                id.chars().count()
            ));
        }
        if !id.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err("\"id\" may hold only printable ASCII characters (space to ~)".into());
        }
        Ok(CommandId(Repr::Given(id.into())))
    }

    /// Whether a script gave this id (rather than the peer choosing it). Only those outlive
    /// the run: the peer's own `cN` start again at `c1` in the next one.
    pub fn is_given(&self) -> bool {
        matches!(self.0, Repr::Given(_))
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Chosen(n) => write!(f, "c{n}"),
            Repr::Given(id) => f.write_str(id),
        }
    }
}

impl Serialize for CommandId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CommandId {
    /// An id read back (from the file of kept messages) is one a script gave: only those are
    /// written.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CommandId, D::Error> {
        let id = String::deserialize(d)?;
        CommandId::given(&id).map_err(serde::de::Error::custom)
    }
}

/// A command read from a JSON line: its id, and the command as it would be typed.
#[derive(Debug, PartialEq, Eq)]
pub struct JsonCommand {
    pub id: CommandId,
    pub cmd: String,
}

/// A JSON line that is no command: why, and its id if that much could be read.
#[derive(Debug, PartialEq, Eq)]
pub struct BadJsonCommand {
    pub id: Option<CommandId>,
    pub why: String,
}

/// Whether `line` is meant as a JSON command (with `--json`): it starts with `{`. No command
/// does, so a plain line is never mistaken for one.
pub fn is_json(line: &str) -> bool {
    line.trim_start().starts_with('{')
}

/// The exact shape of a JSON command: both fields, nothing else, each once.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    id: String,
    cmd: String,
}

/// Reads `line` as `{"id": "...", "cmd": "..."}`: one JSON object with exactly those two
/// string fields, an id as [`CommandId::given`] takes it, and a command that is not blank.
pub fn parse(line: &str) -> Result<JsonCommand, BadJsonCommand> {
    // serde reads a struct from an array of its fields too (`["7", "whoami"]`): only an
    // object is a command. What serde_json skips before a value is these four.
    if !line
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return Err(BadJsonCommand {
            id: None,
            why: "a JSON command is one object".into(),
        });
    }
    let Wire { id, cmd } = match serde_json::from_str::<Wire>(line) {
        Ok(wire) => wire,
        Err(e) => {
            return Err(BadJsonCommand {
                id: readable_id(line),
                why: e.to_string(),
            })
        }
    };
    let id = CommandId::given(&id).map_err(|why| BadJsonCommand { id: None, why })?;
    if cmd.trim().is_empty() {
        return Err(BadJsonCommand {
            id: Some(id),
            why: "\"cmd\" is blank: it holds the command, as it would be typed".into(),
        });
    }
    Ok(JsonCommand { id, cmd })
}

/// The id of a JSON object that is no valid command, if it has a valid one: its error then
/// carries it, so the script knows which of its commands failed.
fn readable_id(line: &str) -> Option<CommandId> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).ok()?;
    CommandId::given(object.get("id")?.as_str()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(id: &str) -> CommandId {
        CommandId::given(id).unwrap()
    }

    fn bad(line: &str) -> BadJsonCommand {
        parse(line).unwrap_err()
    }

    #[test]
    fn a_command_is_an_id_and_the_line_as_it_would_be_typed() {
        assert_eq!(
            parse(r#"{"id": "7", "cmd": "chat message bob hi \"there\""}"#),
            Ok(JsonCommand {
                id: given("7"),
                cmd: "chat message bob hi \"there\"".into()
            })
        );
        // Either order, blanks around it.
        let command = parse(r#"  {"cmd":"whoami","id":"who am i?"}  "#).unwrap();
        assert_eq!(command.id.to_string(), "who am i?");
        assert_eq!(command.cmd, "whoami");
        assert!(is_json("  {\"id\"") && !is_json("chat message bob {x}"));
    }

    #[test]
    fn ids_are_short_and_printable() {
        assert!(CommandId::given(&"x".repeat(MAX_ID_LEN)).is_ok());
        let long = bad(&format!(r#"{{"id":"{}","cmd":"whoami"}}"#, "x".repeat(65)));
        assert_eq!(long.id, None);
        assert!(long.why.contains("1 to 64 characters"), "{}", long.why);
        for id in ["", "a\nb", "a\\u001bb", "é", "\\u202e"] {
            let refused = bad(&format!(r#"{{"id":"{id}","cmd":"whoami"}}"#));
            assert_eq!(refused.id, None, "{id:?}");
        }
        assert_eq!(CommandId::chosen(12).to_string(), "c12");
        assert!(!CommandId::chosen(1).is_given() && given("c1").is_given());
    }

    #[test]
    fn what_is_wrong_is_said_with_the_id_when_it_could_be_read() {
        let blank = bad(r#"{"id":"a","cmd":"  "}"#);
        assert_eq!(blank.id, Some(given("a")));
        assert!(blank.why.contains("blank"), "{}", blank.why);
        let missing = bad(r#"{"id":"b"}"#);
        assert_eq!(missing.id, Some(given("b")));
        assert!(
            missing.why.contains("missing field `cmd`"),
            "{}",
            missing.why
        );
        let unknown = bad(r#"{"id":"c","cmd":"whoami","extra":1}"#);
        assert_eq!(unknown.id, Some(given("c")));
        assert!(
            unknown.why.contains("unknown field `extra`"),
            "{}",
            unknown.why
        );
        let not_text = bad(r#"{"id":"d","cmd":["whoami"]}"#);
        assert_eq!(not_text.id, Some(given("d")));
        // A number is no id: echoed back as text, it would not match what the script sent.
        assert_eq!(bad(r#"{"id":7,"cmd":"whoami"}"#).id, None);
        assert!(bad(r#"{"id":"e","id":"f","cmd":"whoami"}"#)
            .why
            .contains("duplicate"));
        for line in [
            "{",
            "{}",
            "{\"id\":\"g\",\"cmd\":\"x\"} trailing",
            "[1]",
            "{\"id\":",
        ] {
            let refused = bad(line);
            assert!(!refused.why.is_empty(), "{line:?}");
            assert!(!refused.why.contains('\n'), "one line: {:?}", refused.why);
        }
        assert_eq!(bad("{\"id\":\"g\",\"cmd\":\"x\"} trailing").id, None);
    }

    #[test]
    fn only_an_object_is_a_command() {
        // Found by the json_command fuzz target: serde reads a struct from an array as well.
        let array = bad(r#"["a", "whoami"]"#);
        assert_eq!(array.id, None);
        assert_eq!(array.why, "a JSON command is one object");
        assert_eq!(bad(r#"["+m",""]"#).id, None);
        assert!(parse(" \t{\"id\":\"a\",\"cmd\":\"whoami\"}").is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            "{{\"id\":\"h\",\"cmd\":{}1{}}}",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn an_id_reads_back_only_as_one_a_script_could_give() {
        let id: CommandId = serde_json::from_str("\"job-1\"").unwrap();
        assert_eq!(id, given("job-1"));
        assert_eq!(
            serde_json::to_string(&CommandId::chosen(3)).unwrap(),
            "\"c3\""
        );
        assert!(serde_json::from_str::<CommandId>("\"\"").is_err());
    }
}
