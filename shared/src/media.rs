//! The media port: the bytes behind a WhatsApp media message (image, video,
//! audio, document, sticker), whoever stores them, and the file name the CRM
//! attachment gets.

use async_trait::async_trait;

/// A downloaded media file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFile {
    pub bytes: Vec<u8>,
    /// As the media host declared it for the id (e.g. `audio/ogg; codecs=opus`).
    pub mime_type: String,
    /// Bytes actually received (`bytes.len()`), not the announced size.
    pub file_size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// Over the caller's limit. `size` is the announced size when the
    /// metadata or `Content-Length` gave it away (nothing was downloaded),
    /// or the bytes received so far when the stream overran the limit.
    #[error("the media is {size} bytes, over the {max}-byte limit")]
    TooLarge { size: u64, max: u64 },
    /// The id is unknown or no longer downloadable (WhatsApp keeps inbound
    /// media 7 days), or its URL kept expiring: retrying will not help.
    #[error("the media is unknown or has expired")]
    NotFound,
    /// The access token was refused (invalid, expired or missing permission).
    #[error("the media host refused the access token")]
    Unauthorized,
    #[error("the media host is rate-limiting us")]
    RateLimited,
    #[error("the media host is unavailable (HTTP {0})")]
    Unavailable(u16),
    #[error("could not reach the media host: {0}")]
    Transport(String),
    /// Any other refusal, kept for the sync log.
    #[error("the media host refused the request: HTTP {status} (code {code:?}): {message}")]
    Rejected {
        status: u16,
        code: Option<i64>,
        message: String,
    },
    /// An answer we cannot use (unreadable metadata, an unsafe URL).
    #[error("the media host answered something we cannot use: {0}")]
    Invalid(String),
}

impl MediaError {
    /// Whether the same fetch may succeed later (retry with back-off);
    /// everything else needs a person or never works.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::Unavailable(_) | Self::Transport(_)
        )
    }
}

#[async_trait]
pub trait MediaSource: Send + Sync {
    /// The file behind `media_id`, if it is at most `max_bytes`: a larger one
    /// is refused from its announced size before any byte is downloaded, and
    /// again while reading in case the announcement was wrong.
    async fn fetch(
        &self,
        access_token: &str,
        media_id: &str,
        max_bytes: u64,
    ) -> Result<MediaFile, MediaError>;
}

/// Extensions to prefer when a MIME type has several: mime_guess lists them
/// alphabetically, which would name a JPEG `.jfif` and an MP3 `.m2a`.
const PREFERRED_EXTENSIONS: &[&str] = &[
    "jpg", "png", "webp", "gif", "mp4", "3gp", "mp3", "m4a", "ogg", "opus", "aac", "amr", "pdf",
    "txt", "csv", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "zip",
];

/// WhatsApp media types that mime_guess does not know (`audio/amr`) or
/// names unusually (`audio/mp4` as `.mp4a`, where players expect `.m4a`).
const MIME_GUESS_GAPS: &[(&str, &str)] = &[("audio/amr", "amr"), ("audio/mp4", "m4a")];

/// Longest file name produced, in characters (a cautious length for CRM
/// file names and every common file system).
const FILE_NAME_MAX_CHARS: usize = 150;

/// The usual extension for a MIME type (`bin` when unknown). Parameters such
/// as `; codecs=opus` are ignored.
pub fn extension_for_mime(mime_type: &str) -> &'static str {
    let essence = mime_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if let Some((_, ext)) = MIME_GUESS_GAPS.iter().find(|(mime, _)| *mime == essence) {
        return ext;
    }
    let Some(candidates) = mime_guess::get_mime_extensions_str(&essence) else {
        return "bin";
    };
    let subtype = essence.split('/').nth(1).unwrap_or("");
    PREFERRED_EXTENSIONS
        .iter()
        .find(|ext| candidates.contains(ext))
        .or_else(|| candidates.iter().find(|ext| **ext == subtype))
        .or_else(|| candidates.first())
        .copied()
        .unwrap_or("bin")
}

/// The file name of a media message's attachment: a document's own file name
/// when it has a usable one (made safe, and given the MIME type's extension
/// when it has none), otherwise `<kind>-<media id>.<ext>`.
pub fn media_file_name(
    kind: &str,
    media_id: &str,
    mime_type: &str,
    filename: Option<&str>,
) -> String {
    let ext = extension_for_mime(mime_type);
    if let Some(name) = filename.map(sanitize_file_name).filter(|n| !n.is_empty()) {
        return if name.contains('.') {
            name
        } else {
            shorten(&format!("{name}.{ext}"))
        };
    }
    let token = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            .collect()
    };
    let kind = match token(kind) {
        k if k.is_empty() => "media".to_owned(),
        k => k,
    };
    let id = token(media_id);
    if id.is_empty() {
        shorten(&format!("{kind}.{ext}"))
    } else {
        shorten(&format!("{kind}-{id}.{ext}"))
    }
}

/// A sender-chosen file name made safe to store and to offer for download:
/// no directories, no control or reserved characters, no leading dots (hidden
/// files) or trailing dots and spaces (refused on Windows), bounded length.
fn sanitize_file_name(name: &str) -> String {
    // Only the last path component: "../../x.pdf" or "C:\\x.pdf" is "x.pdf".
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = cleaned
        .trim()
        .trim_start_matches('.')
        .trim_end_matches(['.', ' '])
        .trim();
    // Nothing but replacement characters left is as good as no name.
    if trimmed.chars().all(|c| c == '_') {
        return String::new();
    }
    shorten(trimmed)
}

/// Cuts a name to [`FILE_NAME_MAX_CHARS`], keeping a short extension.
fn shorten(name: &str) -> String {
    if name.chars().count() <= FILE_NAME_MAX_CHARS {
        return name.to_owned();
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.chars().count() <= 10 => (stem, Some(ext)),
        _ => (name, None),
    };
    match ext {
        Some(ext) => {
            let keep = FILE_NAME_MAX_CHARS - ext.chars().count() - 1;
            let stem: String = stem.chars().take(keep).collect();
            format!("{}.{ext}", stem.trim_end())
        }
        None => name.chars().take(FILE_NAME_MAX_CHARS).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whatsapp_mime_types_get_their_usual_extensions() {
        let mut wrong = Vec::new();
        for (mime, ext) in [
            ("image/jpeg", "jpg"),
            ("image/png", "png"),
            ("image/webp", "webp"),
            ("video/mp4", "mp4"),
            ("video/3gpp", "3gp"),
            ("audio/ogg; codecs=opus", "ogg"),
            ("audio/mpeg", "mp3"),
            ("audio/mp4", "m4a"),
            ("audio/aac", "aac"),
            ("audio/amr", "amr"),
            ("application/pdf", "pdf"),
            ("text/plain", "txt"),
            ("application/msword", "doc"),
            (
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "docx",
            ),
            ("application/vnd.ms-excel", "xls"),
            (
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "xlsx",
            ),
            ("application/vnd.ms-powerpoint", "ppt"),
            (
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "pptx",
            ),
            ("IMAGE/JPEG", "jpg"),
        ] {
            let got = extension_for_mime(mime);
            if got != ext {
                wrong.push(format!("{mime}: {got}, expected {ext}"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn unknown_mime_types_are_bin() {
        assert_eq!(extension_for_mime("application/x-made-up"), "bin");
        assert_eq!(extension_for_mime(""), "bin");
    }

    #[test]
    fn media_without_a_file_name_are_named_by_kind_and_id() {
        assert_eq!(
            media_file_name("image", "1234567890", "image/jpeg", None),
            "image-1234567890.jpg"
        );
        assert_eq!(
            media_file_name("audio", "77", "audio/ogg; codecs=opus", None),
            "audio-77.ogg"
        );
        assert_eq!(
            media_file_name("sticker", "5", "image/webp", None),
            "sticker-5.webp"
        );
        // Ids and kinds from a webhook cannot smuggle in paths.
        assert_eq!(
            media_file_name("video/../x", "../12", "video/mp4", None),
            "videox-12.mp4"
        );
        assert_eq!(media_file_name("", "", "video/mp4", None), "media.mp4");
    }

    #[test]
    fn document_file_names_are_kept_but_made_safe() {
        let name = |f: &str| media_file_name("document", "9", "application/pdf", Some(f));
        assert_eq!(name("Quote 2026.pdf"), "Quote 2026.pdf");
        assert_eq!(name("Orçamento – março.pdf"), "Orçamento – março.pdf");
        assert_eq!(name("../../etc/passwd"), "passwd.pdf");
        assert_eq!(name("C:\\Users\\ana\\report.pdf"), "report.pdf");
        assert_eq!(name("a<b>c:d\"e|f?g*h.pdf"), "a_b_c_d_e_f_g_h.pdf");
        assert_eq!(name("line\nbreak.pdf"), "line_break.pdf");
        assert_eq!(name(".hidden.pdf"), "hidden.pdf");
        assert_eq!(name("trailing.pdf. . "), "trailing.pdf");
        // No extension: the MIME type's is added.
        assert_eq!(name("invoice"), "invoice.pdf");
        // Nothing usable: the generated name.
        assert_eq!(name(""), "document-9.pdf");
        assert_eq!(name("..."), "document-9.pdf");
        assert_eq!(name("???"), "document-9.pdf");
        assert_eq!(name("dir/"), "document-9.pdf");
    }

    #[test]
    fn long_file_names_keep_their_extension() {
        let long = format!("{}.docx", "x".repeat(400));
        let name = media_file_name("document", "1", "application/pdf", Some(&long));
        assert_eq!(name.chars().count(), FILE_NAME_MAX_CHARS);
        assert!(name.ends_with("x.docx"), "{name}");
        let no_ext = "y".repeat(400);
        let name = media_file_name("document", "1", "text/plain", Some(&no_ext));
        assert_eq!(name.chars().count(), FILE_NAME_MAX_CHARS);
        assert!(name.ends_with("y.txt"), "{name}");
    }

    #[test]
    fn only_outages_are_transient() {
        assert!(MediaError::Unavailable(503).is_transient());
        assert!(MediaError::RateLimited.is_transient());
        assert!(MediaError::Transport("reset".into()).is_transient());
        assert!(!MediaError::NotFound.is_transient());
        assert!(!MediaError::Unauthorized.is_transient());
        assert!(!MediaError::TooLarge { size: 2, max: 1 }.is_transient());
        assert!(!MediaError::Invalid("x".into()).is_transient());
    }
}
