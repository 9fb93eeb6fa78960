//! Server-side HTML sanitising of note content.
//!
//! Pipedrive documents that note HTML is sanitised but not the exact
//! allow-list; the sandbox keeps `p, br, b, strong, i, em, u, a[href], ul,
//! ol, li` (attributes other than a safe `href` dropped), removes `script`,
//! `style`, `iframe`, `object`, `embed`, `template`, `noscript` and `title`
//! together with their content, strips every other tag (keeping its text)
//! and comments, and escapes stray `<`/`>`.

const KEEP: &[&str] = &[
    "p", "br", "b", "strong", "i", "em", "u", "a", "ul", "ol", "li",
];
const DROP_WITH_CONTENT: &[&str] = &[
    "script", "style", "iframe", "object", "embed", "template", "noscript", "title",
];

/// One parsed tag.
struct Tag {
    name: String,
    closing: bool,
    attrs: Vec<(String, String)>,
}

/// Parses the tag starting at `s[0] == '<'`; returns it and its length.
fn parse_tag(s: &str) -> Option<(Tag, usize)> {
    let bytes = s.as_bytes();
    let mut i = 1;
    let closing = bytes.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let start = i;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric()) {
        i += 1;
    }
    if i == start {
        return None;
    }
    let name = s[start..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        match bytes.get(i) {
            None => return None,
            Some(b'>') => {
                return Some((
                    Tag {
                        name,
                        closing,
                        attrs,
                    },
                    i + 1,
                ));
            }
            _ => {}
        }
        let a_start = i;
        while i < bytes.len()
            && !bytes[i].is_ascii_whitespace()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
        {
            i += 1;
        }
        let attr = s[a_start..i].to_ascii_lowercase();
        let mut value = String::new();
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            match bytes.get(i) {
                Some(q @ (b'"' | b'\'')) => {
                    let q = *q;
                    let v_start = i + 1;
                    let end = s[v_start..].find(q as char)? + v_start;
                    value = s[v_start..end].to_string();
                    i = end + 1;
                }
                _ => {
                    let v_start = i;
                    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                        i += 1;
                    }
                    value = s[v_start..i].to_string();
                }
            }
        }
        if !attr.is_empty() {
            attrs.push((attr, value));
        }
    }
}

fn safe_href(href: &str) -> bool {
    let h: String = href
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    match h.split_once(':') {
        Some((scheme, _)) if !scheme.contains('/') => {
            matches!(scheme, "http" | "https" | "mailto" | "tel")
        }
        _ => true,
    }
}

fn escape_attr(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Sanitises note HTML (see module docs).
pub fn sanitize(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(pos) = rest.find(['<', '>']) {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        if rest.starts_with('>') {
            out.push_str("&gt;");
            rest = &rest[1..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |e| &after[e + 3..]);
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            rest = rest.find('>').map_or("", |e| &rest[e + 1..]);
            continue;
        }
        let Some((tag, len)) = parse_tag(rest) else {
            out.push_str("&lt;");
            rest = &rest[1..];
            continue;
        };
        rest = &rest[len..];
        if DROP_WITH_CONTENT.contains(&tag.name.as_str()) {
            if !tag.closing {
                let close = format!("</{}", tag.name);
                let lower = rest.to_ascii_lowercase();
                rest = match lower.find(&close) {
                    Some(e) => rest[e..].find('>').map_or("", |g| &rest[e + g + 1..]),
                    None => "",
                };
            }
            continue;
        }
        if !KEEP.contains(&tag.name.as_str()) {
            continue;
        }
        match (tag.closing, tag.name.as_str()) {
            (true, "br") => {}
            (true, name) => {
                out.push_str("</");
                out.push_str(name);
                out.push('>');
            }
            (false, "a") => {
                let href = tag
                    .attrs
                    .iter()
                    .find(|(k, _)| k == "href")
                    .map(|(_, v)| v.as_str());
                match href.filter(|h| safe_href(h)) {
                    Some(h) => out.push_str(&format!("<a href=\"{}\">", escape_attr(h))),
                    None => out.push_str("<a>"),
                }
            }
            (false, name) => {
                out.push('<');
                out.push_str(name);
                out.push('>');
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn keeps_the_allowed_tags() {
        let html =
            "<p><b>WhatsApp Chat</b></p><p>09:14 ← Ana: Hi!<br/>09:15 → Rui: <em>Hello</em></p>";
        assert_eq!(
            sanitize(html),
            "<p><b>WhatsApp Chat</b></p><p>09:14 ← Ana: Hi!<br>09:15 → Rui: <em>Hello</em></p>"
        );
        assert_eq!(sanitize("<ul><li>a</li></ul>"), "<ul><li>a</li></ul>");
    }

    #[test]
    fn drops_scripts_handlers_and_unknown_tags() {
        assert_eq!(
            sanitize("<p onclick=\"x()\">a<script>alert(1)</script>b</p>"),
            "<p>ab</p>"
        );
        assert_eq!(sanitize("<div><span style='x'>t</span></div>"), "t");
        assert_eq!(
            sanitize("<a href=\"javascript:alert(1)\">x</a>"),
            "<a>x</a>"
        );
        assert_eq!(
            sanitize("<a href='https://x.example/?a=1&b=2' target=_blank>x</a>"),
            "<a href=\"https://x.example/?a=1&amp;b=2\">x</a>"
        );
        assert_eq!(sanitize("1 < 2 > 0<!-- c -->"), "1 &lt; 2 &gt; 0");
        assert_eq!(sanitize("<STYLE>p{}</STYLE>ok"), "ok");
    }
}
