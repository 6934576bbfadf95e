//! Text from outside, made safe to show to people: in logs, email subjects
//! and bodies, and Slack cards.

/// Text with control and invisible formatting characters escaped (`\u{a}`,
/// `\u{200b}`), so that what people read is what is there.
pub fn printable(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
        {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Hostile text shown back to people: [`printable`], and at most 80 characters.
pub fn shown(raw: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = printable(&raw.chars().take(MAX).collect::<String>());
    if raw.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// SNS subjects: ASCII, no line breaks, under 100 characters.
pub fn subject(raw: &str) -> String {
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    clean.chars().take(99).collect()
}

/// Text for a Slack message, escaped the way Slack reads it: `&`, `<` and `>`
/// as HTML entities (so no `<!channel>` or `<url|link>` can be injected), and
/// nothing else (Slack shows backslashes literally).
pub fn slack(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in printable(raw).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_hostile_text_when_shown_back_then_control_characters_are_escaped_and_length_bounded() {
        assert_eq!(shown("a\nb\u{0}\u{200b}\"'"), "a\\u{a}b\\u{0}\\u{200b}\"'");
        let long = "x".repeat(500);
        assert_eq!(shown(&long).chars().count(), 81);
    }

    #[test]
    fn given_slack_control_sequences_when_escaped_then_only_ampersand_and_angle_brackets_change() {
        assert_eq!(
            slack("<!channel> & <https://evil|click>"),
            "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;"
        );
        assert_eq!(slack("*bold* _it_ `code` \\"), "*bold* _it_ `code` \\");
        assert_eq!(slack("a\nb"), "a\\u{a}b");
    }

    #[test]
    fn given_a_hostile_subject_when_cleaned_then_it_is_ascii_single_line_and_short() {
        let s = subject(&format!("a\nb\u{200b}{}", "x".repeat(200)));
        assert!(s.is_ascii() && !s.contains('\n') && s.len() == 99, "{s}");
    }
}
