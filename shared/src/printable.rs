//! Text from the network made safe to print on one line: the one escaping both programs use.
//!
//! Text an attacker chose (a chat line, a detail in a refusal) reaches a terminal or a log.
//! Printed raw, a newline forges a second event or log line (`registered root ...`), an
//! escape sequence drives the terminal, a bidirectional override (U+202E) shows the text in
//! another order than it was written, and an invisible character (U+200B) makes two different
//! strings look alike. [`printable`] writes every such character as a `\u{..}` escape, so
//! what is shown is what was sent. The peer's text output (`peer/src/render.rs`) and the
//! registry's log (`server/src/event.rs`) both print through it, so they cannot drift apart.
//!
//! Which characters: every control character (C0, DEL, C1, U+0085 included); the line and
//! paragraph separators U+2028 and U+2029, which many tools split lines on; every character
//! of Unicode's format category (Cf: bidirectional marks, embeddings, overrides and
//! isolates, zero-width spaces and joiners, U+FEFF, U+061C, tag characters and the rest), and
//! the Hangul fillers, which are letters that show as blank space. Rust's standard library
//! has no category table, so the Cf ranges are listed here (Unicode 15.1).
//!
//! The price: an emoji built with U+200D (a zero-width joiner) or a Persian word written with
//! U+200C shows its joiner as an escape. Showing every invisible character is the safer
//! default for a terminal; `--json` carries the text as it was sent.

use std::borrow::Cow;

/// `text` with every control, separator, format (Cf) and blank-filler character written as
/// a `\u{..}` escape; borrowed when there is none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return Cow::Borrowed(text);
    }
    let mut clean = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hidden(c) {
            clean.extend(c.escape_unicode());
        } else {
            clean.push(c);
        }
    }
    Cow::Owned(clean)
}

/// Whether `c` must not be printed as itself: it moves the cursor, breaks the line, changes
/// how the text around it is ordered, or shows as nothing.
pub fn is_hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_format(c) || is_filler(c)
}

/// Unicode's general category Cf (format characters), Unicode 15.1.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

/// Letters that render as blank space (Hangul fillers): a name or word padded with them
/// looks like another.
fn is_filler(c: char) -> bool {
    matches!(c, '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        let text = "héllo  wörld 你好 🎉 مرحبا";
        assert!(matches!(printable(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn controls_and_line_separators_are_escaped() {
        assert_eq!(printable("\u{1b}[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(
            printable("x\nregistered root 1.2.3.4:5"),
            "x\\u{a}registered root 1.2.3.4:5"
        );
        assert_eq!(printable("a\rb\u{7f}c\u{9b}d"), "a\\u{d}b\\u{7f}c\\u{9b}d");
        assert_eq!(
            printable("a\u{2028}b\u{2029}c\u{85}d"),
            "a\\u{2028}b\\u{2029}c\\u{85}d"
        );
    }

    #[test]
    fn bidi_and_invisible_characters_are_escaped() {
        for c in [
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{200e}',
            '\u{200f}',
            '\u{202a}',
            '\u{202b}',
            '\u{202c}',
            '\u{202d}',
            '\u{202e}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{feff}',
            '\u{61c}',
            '\u{ad}',
            '\u{2060}',
            '\u{e0041}',
            '\u{3164}',
        ] {
            let text = format!("a{c}b");
            assert_eq!(
                printable(&text),
                format!("a\\u{{{:x}}}b", u32::from(c)),
                "{c:?}"
            );
        }
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
    }

    #[test]
    fn the_escaped_text_has_nothing_left_to_escape() {
        let all: String = (0..=0x10ffff).filter_map(char::from_u32).collect();
        let once = printable(&all);
        assert!(!once.chars().any(is_hidden));
        assert_eq!(printable(&once), once);
    }
}
