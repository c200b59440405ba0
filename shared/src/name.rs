//! Peer names: 1 to 32 characters from `A-Z a-z 0-9 _ - .`, not only dots.
//!
//! A [`PeerName`] can only be built through validation, and serde goes through the same
//! check, so every name that reaches the rest of the program (from the command line, from
//! stdin or from the network) is already known to be short and printable.
//!
//! A name made only of dots (`.`, `..`) is refused: it reads as "this" or "the parent" to
//! anyone who meets it in a path, a listing or a command (`chat request ..`), and it is
//! too easy to miss on a screen.
//!
//! A name is at most 32 ASCII bytes, so it is kept inline, in 33 bytes, and is `Copy`: the
//! registry holds each name in several indexes (by name, by claim, by expiry), and a heap
//! string would cost 24 bytes, an allocation and its allocator overhead for each copy.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A validated peer name.
///
/// The bytes after the name are zero, and zero sorts before every allowed character, so the
/// derived order is the order of the strings ("ab" before "abc" before "abd").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerName {
    bytes: [u8; PeerName::MAX_LEN],
    len: u8,
}

/// Why a string is not a valid [`PeerName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("a name has at most {max} characters, this one has {0}", max = PeerName::MAX_LEN)]
    TooLong(usize),
    #[error("a name may only use letters A-Z a-z, digits, '_', '-' and '.', not {0:?}")]
    BadChar(char),
    #[error("a name cannot be only dots, like {0:?}: use a letter or a digit too")]
    OnlyDots(String),
}

impl PeerName {
    /// The longest name, in characters (all allowed characters are one byte).
    pub const MAX_LEN: usize = 32;

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)])
            .expect("a name is checked to be ASCII")
    }

    fn is_allowed(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
    }
}

impl TryFrom<String> for PeerName {
    type Error = NameError;

    fn try_from(s: String) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if let Some(bad) = s.chars().find(|&c| !Self::is_allowed(c)) {
            return Err(NameError::BadChar(bad));
        }
        // Only ASCII is left, so the byte length is the character count.
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong(s.len()));
        }
        if s.bytes().all(|b| b == b'.') {
            return Err(NameError::OnlyDots(s));
        }
        let mut bytes = [0; Self::MAX_LEN];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Ok(PeerName {
            bytes,
            len: s.len() as u8,
        })
    }
}

impl FromStr for PeerName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::try_from(s.to_owned())
    }
}

impl From<PeerName> for String {
    fn from(name: PeerName) -> String {
        name.as_str().to_owned()
    }
}

impl fmt::Display for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in [
            "a",
            "alice",
            "Bob_2",
            "x-y.z",
            ".a",
            "a..",
            "_",
            "-",
            &"n".repeat(32),
        ] {
            assert_eq!(ok.parse::<PeerName>().unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_everything_else_with_a_reason() {
        assert_eq!("".parse::<PeerName>(), Err(NameError::Empty));
        assert_eq!(
            "n".repeat(33).parse::<PeerName>(),
            Err(NameError::TooLong(33))
        );
        assert_eq!("al ice".parse::<PeerName>(), Err(NameError::BadChar(' ')));
        for dots in [".", "..", "...", &".".repeat(32)] {
            assert_eq!(
                dots.parse::<PeerName>(),
                Err(NameError::OnlyDots(dots.to_string()))
            );
        }
        assert_eq!(
            NameError::OnlyDots("..".into()).to_string(),
            "a name cannot be only dots, like \"..\": use a letter or a digit too"
        );
        assert_eq!("é".parse::<PeerName>(), Err(NameError::BadChar('é')));
        assert_eq!(
            "a\u{1b}[2J".parse::<PeerName>(),
            Err(NameError::BadChar('\u{1b}'))
        );
    }

    #[test]
    fn names_sort_as_their_strings() {
        let mut names: Vec<PeerName> = ["abd", "b", "ab", "abc", "a-", "A"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        names.sort();
        let sorted: Vec<&str> = names.iter().map(PeerName::as_str).collect();
        assert_eq!(sorted, ["A", "a-", "ab", "abc", "abd", "b"]);
    }

    #[test]
    fn serde_validates_too() {
        let bad: Result<PeerName, _> = serde_json::from_str("\"no spaces\"");
        assert!(bad.is_err());
        let good: PeerName = serde_json::from_str("\"alice\"").unwrap();
        assert_eq!(good.as_str(), "alice");
    }
}
