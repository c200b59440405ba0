//! A long chat message, sent as several: where to cut it.
//!
//! The wire takes at most `MAX_TEXT_LEN` bytes of text per message (docs/protocol.md), and a
//! line typed or pasted may be longer. Rather than refuse it, the peer sends it in parts,
//! each a message of its own with its own outcome (`delivered`, `queued`, ...), cut where a
//! reader would: after a line, else between words, else anywhere between characters.

/// The parts of `text`, in order, each at most `max` bytes (`max` is at least 8). A part is
/// cut at the last line break or blank of its second half, which is dropped; failing that,
/// at the last character that fits. Only the last part may be shorter than `max / 2`.
pub fn parts(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let fits = floor_char_boundary(rest, max);
        let window = &rest[..fits];
        let half = floor_char_boundary(rest, max / 2);
        let cut = window[half..]
            .rfind('\n')
            .or_else(|| window[half..].rfind([' ', '\t']))
            .map(|i| half + i);
        match cut {
            Some(at) => {
                parts.push(&rest[..at]);
                // The separator is one byte (a newline, a space or a tab).
                rest = &rest[at + 1..];
            }
            None => {
                parts.push(window);
                rest = &rest[fits..];
            }
        }
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest);
    }
    parts
}

/// The largest index at most `at` that is a character boundary of `s`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    (0..=at.min(s.len()))
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_text_is_one_part() {
        assert_eq!(parts("hello", 8), vec!["hello"]);
        assert_eq!(parts("exactly8", 8), vec!["exactly8"]);
    }

    #[test]
    fn cuts_after_a_line_else_between_words_else_anywhere() {
        assert_eq!(
            parts("one two\nthree four", 12),
            vec!["one two", "three four"]
        );
        assert_eq!(parts("alpha beta gamma", 12), vec!["alpha beta", "gamma"]);
        assert_eq!(parts("abcdefghijklmnop", 8), vec!["abcdefgh", "ijklmnop"]);
    }

    #[test]
    fn never_cuts_inside_a_character_and_every_part_fits() {
        let text = "é".repeat(1000) + &"你好 ".repeat(500) + &"🎉".repeat(300);
        for max in [8, 9, 10, 64, 1000] {
            let got = parts(&text, max);
            assert!(got.iter().all(|p| p.len() <= max && !p.is_empty()), "{max}");
            // Only the separators cut at are gone.
            let kept: usize = got.iter().map(|p| p.len()).sum();
            assert!(text.len() - kept < got.len(), "{max}");
        }
    }

    #[test]
    fn a_run_of_blanks_does_not_make_empty_parts() {
        let text = "x".repeat(5) + &" ".repeat(40);
        assert!(parts(&text, 8).iter().all(|p| !p.is_empty()));
    }
}
