//! Day notes as Pipedrive stores them (reference §6): HTML, the title in
//! bold, then the header and one line per message, each HTML-escaped and
//! separated by `<br>`. Pipedrive sanitises note HTML; `<b>` and `<br>` and
//! escaped text pass through as sent, so what is rendered here is what is
//! stored, and a stored note can be recognised by its rendered beginning.

use crate::crm::NoteDraft;

/// Pipedrive's cap on a note's content (100,000 characters per the
/// OpenAPI files; counted here in bytes, which is never fewer).
pub(super) const NOTE_LIMIT: usize = 100_000;

const LINE_BREAK: &str = "<br>";

/// The note's HTML (see the module docs).
pub(super) fn render(note: &NoteDraft<'_>) -> String {
    let mut html = String::with_capacity(
        64 + note.title.len()
            + note.header.len()
            + note.lines.iter().map(|l| l.len() + 8).sum::<usize>(),
    );
    html.push_str("<b>");
    html.push_str(&html_escape::encode_text(note.title));
    html.push_str("</b>");
    for line in std::iter::once(&note.header).chain(note.lines) {
        html.push_str(LINE_BREAK);
        html.push_str(&html_escape::encode_text(line));
    }
    html
}

/// The forms of a line break other sanitisers write.
fn normalised(html: &str) -> String {
    html.replace("<br/>", LINE_BREAK)
        .replace("<br />", LINE_BREAK)
}

/// Whether stored `content` is the note of `note`'s title and header,
/// whatever its lines.
pub(super) fn is_note_of(content: &str, note: &NoteDraft<'_>) -> bool {
    let head = render(&NoteDraft {
        lines: &[],
        ..*note
    });
    let content = normalised(content);
    content == head
        || content
            .strip_prefix(&head)
            .is_some_and(|rest| rest.starts_with(LINE_BREAK))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft<'a>(title: &'a str, header: &'a str, lines: &'a [&'a str]) -> NoteDraft<'a> {
        NoteDraft {
            title,
            header,
            lines,
        }
    }

    #[test]
    fn user_text_is_escaped_and_lines_are_broken() {
        let html = render(&draft(
            "WhatsApp <Ana & Rui>",
            "https://app.example/c/1 · +44 7700 900100",
            &["09:14 Ana: <script>alert(1)</script>", "09:15 Rui: ok"],
        ));
        assert_eq!(
            html,
            "<b>WhatsApp &lt;Ana &amp; Rui&gt;</b><br>https://app.example/c/1 · +44 7700 900100<br>09:14 Ana: &lt;script&gt;alert(1)&lt;/script&gt;<br>09:15 Rui: ok"
        );
    }

    #[test]
    fn a_note_is_recognised_by_its_title_and_header_only() {
        let lines = ["a", "b"];
        let note = draft("T", "H", &lines);
        assert!(is_note_of(&render(&note), &note));
        assert!(is_note_of(&render(&draft("T", "H", &[])), &note));
        assert!(is_note_of("<b>T</b><br/>H<br/>x", &note));
        assert!(!is_note_of(&render(&draft("T", "H2", &lines)), &note));
        assert!(!is_note_of(&render(&draft("T2", "H", &lines)), &note));
    }
}
