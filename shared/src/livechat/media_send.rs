//! Photos and documents from the live chat: what may be sent, checked
//! before anything is uploaded, so the user reads which limit a file breaks
//! instead of a Meta error code after the upload.
//!
//! WhatsApp's limits (WhatsApp reference §7): images are JPEG or PNG up to
//! 5 MB; documents are text, PDF and Office files up to 100 MB. Ours is
//! tighter ([`TRANSPORT_MAX_BYTES`]): the file comes inside the request.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::business_numbers::{MediaUpload, OutboundMediaKind};
use crate::whatsapp::Media;

const MB: u64 = 1024 * 1024;
/// WhatsApp's largest image.
pub const IMAGE_MAX_BYTES: u64 = 5 * MB;
/// WhatsApp's largest document.
pub const DOCUMENT_MAX_BYTES: u64 = 100 * MB;
/// The largest file the live chat takes. The `api` function is invoked
/// synchronously, and Lambda caps such an invocation's request at 6 MB; the
/// file travels base64-encoded (4 bytes for every 3) inside the JSON body,
/// itself inside the API Gateway event with its headers. 4 MB of file is
/// 5.33 MB encoded, which leaves room for the rest; a larger file would be
/// refused by Lambda before our code could say why.
pub const TRANSPORT_MAX_BYTES: u64 = 4 * MB;
/// WhatsApp's longest media caption.
const CAPTION_MAX_CHARS: usize = 1024;
/// The longest file name taken (WhatsApp shows it; the CRM stores it).
const FILE_NAME_MAX_CHARS: usize = 240;

/// Images WhatsApp takes.
const IMAGE_TYPES: [(&str, &str); 2] = [("image/jpeg", "JPEG"), ("image/png", "PNG")];
/// Documents WhatsApp takes: txt, pdf, doc(x), xls(x), ppt(x).
const DOCUMENT_TYPES: [(&str, &str); 8] = [
    ("text/plain", "text"),
    ("application/pdf", "PDF"),
    ("application/msword", "Word"),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "Word",
    ),
    ("application/vnd.ms-excel", "Excel"),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Excel",
    ),
    ("application/vnd.ms-powerpoint", "PowerPoint"),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "PowerPoint",
    ),
];

/// A photo or document as the page sends it.
#[derive(Deserialize)]
pub struct MediaRequest {
    pub kind: OutboundMediaKind,
    pub file_name: String,
    pub mime_type: String,
    /// The file, in standard base64.
    pub data_base64: String,
    #[serde(default)]
    pub caption: Option<String>,
}

/// Without the file's bytes.
impl std::fmt::Debug for MediaRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaRequest")
            .field("kind", &self.kind)
            .field("mime_type", &self.mime_type)
            .field("base64_chars", &self.data_base64.len())
            .finish_non_exhaustive()
    }
}

/// Why a file cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaRefusal {
    /// Over a size limit (WhatsApp's for its type, or ours).
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Invalid(String),
}

/// A file that may be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedMedia {
    pub kind: OutboundMediaKind,
    pub file_name: String,
    /// Lower case, without parameters.
    pub mime_type: String,
    pub bytes: Vec<u8>,
    pub caption: Option<String>,
}

impl CheckedMedia {
    /// What the upload carries (the bytes move into it).
    pub fn upload(&mut self) -> MediaUpload {
        MediaUpload {
            bytes: std::mem::take(&mut self.bytes),
            mime_type: self.mime_type.clone(),
            file_name: self.file_name.clone(),
        }
    }

    /// How the chat and the day note show it, as a received file of the
    /// same kind: `[Image] caption`, `[Document: name] caption`.
    pub fn line(&self) -> String {
        let label = match self.kind {
            OutboundMediaKind::Image => "[Image]".to_owned(),
            OutboundMediaKind::Document => format!("[Document: {}]", self.file_name),
        };
        let line = match &self.caption {
            Some(caption) => format!("{label} {caption}"),
            None => label,
        };
        // One message per note line, as for received messages.
        line.replace(['\r', '\n'], " ")
    }

    /// The message's media as stored: note-append fetches it from WhatsApp
    /// by id and attaches it to the record, as it does a received file.
    pub fn stored(&self, media_id: &str) -> Media {
        Media {
            id: media_id.to_owned(),
            mime_type: Some(self.mime_type.clone()),
            caption: self.caption.clone(),
            filename: Some(self.file_name.clone()),
        }
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{} MB", bytes / MB)
}

/// Checks a file against WhatsApp's rules for its kind and our transport
/// limit, and decodes it.
pub fn check(asked: &MediaRequest) -> Result<CheckedMedia, MediaRefusal> {
    let (kind_name, types, type_max) = match asked.kind {
        OutboundMediaKind::Image => ("images", &IMAGE_TYPES[..], IMAGE_MAX_BYTES),
        OutboundMediaKind::Document => ("documents", &DOCUMENT_TYPES[..], DOCUMENT_MAX_BYTES),
    };
    let mime_type = asked
        .mime_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !types.iter().any(|(t, _)| *t == mime_type) {
        let mut names: Vec<&str> = types.iter().map(|(_, name)| *name).collect();
        names.dedup();
        let hint = match asked.kind {
            OutboundMediaKind::Image => "; send other files as a document",
            OutboundMediaKind::Document => "",
        };
        return Err(MediaRefusal::Invalid(format!(
            "WhatsApp takes only {} files as {kind_name} (this one is `{mime_type}`){hint}",
            names.join(", ")
        )));
    }
    let file_name = asked.file_name.trim();
    if file_name.is_empty()
        || file_name.chars().count() > FILE_NAME_MAX_CHARS
        || file_name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(MediaRefusal::Invalid(format!(
            "file_name must be a file's name: 1 to {FILE_NAME_MAX_CHARS} characters, no folders"
        )));
    }
    let caption = asked
        .caption
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if caption.is_some_and(|c| c.chars().count() > CAPTION_MAX_CHARS) {
        return Err(MediaRefusal::Invalid(format!(
            "a caption may be at most {CAPTION_MAX_CHARS} characters"
        )));
    }
    // The size is known from the encoded length: a file over a limit is
    // refused before it is decoded.
    let encoded = asked.data_base64.trim();
    let padding = encoded.bytes().rev().take_while(|b| *b == b'=').count() as u64;
    let size =
        (encoded.len() as u64 / 4 * 3 + encoded.len() as u64 % 4 * 3 / 4).saturating_sub(padding);
    too_large(size, asked.kind, kind_name, type_max)?;
    let bytes = STANDARD.decode(encoded).map_err(|_| {
        MediaRefusal::Invalid("data_base64 must be the file in standard base64".into())
    })?;
    if bytes.is_empty() {
        return Err(MediaRefusal::Invalid("the file is empty".into()));
    }
    too_large(bytes.len() as u64, asked.kind, kind_name, type_max)?;
    if !content_matches(&mime_type, &bytes) {
        return Err(MediaRefusal::Invalid(format!(
            "the file's content is not of its type (`{mime_type}`)"
        )));
    }
    Ok(CheckedMedia {
        kind: asked.kind,
        file_name: file_name.to_owned(),
        mime_type,
        bytes,
        caption: caption.map(str::to_owned),
    })
}

/// WhatsApp's limit for the kind first (no way round it), then ours.
fn too_large(
    size: u64,
    kind: OutboundMediaKind,
    kind_name: &str,
    type_max: u64,
) -> Result<(), MediaRefusal> {
    if size > type_max {
        return Err(MediaRefusal::TooLarge(format!(
            "WhatsApp takes {kind_name} up to {}; this file is larger",
            megabytes(type_max)
        )));
    }
    if size > TRANSPORT_MAX_BYTES {
        let limit = match kind {
            OutboundMediaKind::Image => String::new(),
            OutboundMediaKind::Document => {
                format!(" (WhatsApp itself takes up to {})", megabytes(type_max))
            }
        };
        return Err(MediaRefusal::TooLarge(format!(
            "the live chat sends files up to {}{limit}; this file is larger",
            megabytes(TRANSPORT_MAX_BYTES)
        )));
    }
    Ok(())
}

/// Whether the bytes start as files of the type do, for the types whose
/// start is fixed (WhatsApp refuses a mismatched image after the upload,
/// with an error that does not say why).
fn content_matches(mime_type: &str, bytes: &[u8]) -> bool {
    const ZIP: &[u8] = b"PK\x03\x04";
    const OLE: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";
    match mime_type {
        "image/jpeg" => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "application/pdf" => bytes.starts_with(b"%PDF"),
        "application/msword" | "application/vnd.ms-excel" | "application/vnd.ms-powerpoint" => {
            bytes.starts_with(OLE)
        }
        t if t.starts_with("application/vnd.openxmlformats") => bytes.starts_with(ZIP),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];

    fn asked(kind: OutboundMediaKind, mime: &str, bytes: &[u8]) -> MediaRequest {
        MediaRequest {
            kind,
            file_name: "kitchen.jpg".into(),
            mime_type: mime.into(),
            data_base64: STANDARD.encode(bytes),
            caption: Some("  The damp patch \n ".into()),
        }
    }

    #[test]
    fn a_photo_is_decoded_and_shown_as_a_received_one_is() {
        let checked = check(&asked(OutboundMediaKind::Image, "image/JPEG", JPEG)).expect("valid");
        assert_eq!(checked.bytes, JPEG);
        assert_eq!(checked.mime_type, "image/jpeg");
        assert_eq!(checked.line(), "[Image] The damp patch");
        let mut doc = asked(
            OutboundMediaKind::Document,
            "application/pdf",
            b"%PDF-1.7\n",
        );
        doc.file_name = " lease.pdf ".into();
        doc.caption = None;
        let checked = check(&doc).expect("valid");
        assert_eq!(checked.line(), "[Document: lease.pdf]");
        assert_eq!(
            checked.stored("m1").filename.as_deref(),
            Some("lease.pdf"),
            "the attachment keeps the name"
        );
    }

    #[test]
    fn types_names_and_contents_are_checked_before_anything_is_uploaded() {
        let refused = |a: MediaRequest| check(&a).expect_err("refused");
        let gif = refused(asked(OutboundMediaKind::Image, "image/gif", b"GIF89a"));
        assert!(gif.to_string().contains("JPEG, PNG"), "{gif}");
        let zip = refused(asked(
            OutboundMediaKind::Document,
            "application/zip",
            ZIPPED,
        ));
        assert!(zip.to_string().contains("PDF"), "{zip}");
        let png_as_jpeg = refused(asked(
            OutboundMediaKind::Image,
            "image/jpeg",
            b"\x89PNG\r\n\x1a\n",
        ));
        assert!(matches!(png_as_jpeg, MediaRefusal::Invalid(_)));
        let mut nameless = asked(OutboundMediaKind::Image, "image/jpeg", JPEG);
        nameless.file_name = "../etc/passwd".into();
        assert!(refused(nameless).to_string().contains("file_name"));
        let mut garbled = asked(OutboundMediaKind::Image, "image/jpeg", JPEG);
        garbled.data_base64 = "not base64!".into();
        assert!(refused(garbled).to_string().contains("base64"));
        let mut long = asked(OutboundMediaKind::Image, "image/jpeg", JPEG);
        long.caption = Some("x".repeat(CAPTION_MAX_CHARS + 1));
        assert!(refused(long).to_string().contains("1024"));
    }

    const ZIPPED: &[u8] = b"PK\x03\x04rest";

    #[test]
    fn sizes_name_the_limit_they_break() {
        let sized = |kind, mime: &str, size: u64| {
            let mut bytes = vec![0u8; size as usize];
            let head: &[u8] = if mime == "image/jpeg" { JPEG } else { b"%PDF" };
            bytes[..head.len()].copy_from_slice(head);
            check(&asked(kind, mime, &bytes))
        };
        let over_ours = sized(
            OutboundMediaKind::Image,
            "image/jpeg",
            TRANSPORT_MAX_BYTES + 1,
        )
        .expect_err("too large");
        assert_eq!(
            over_ours,
            MediaRefusal::TooLarge(
                "the live chat sends files up to 4 MB; this file is larger".into()
            )
        );
        let over_whatsapps = sized(OutboundMediaKind::Image, "image/jpeg", IMAGE_MAX_BYTES + 1)
            .expect_err("too large");
        assert!(
            over_whatsapps.to_string().contains("images up to 5 MB"),
            "{over_whatsapps}"
        );
        let document = sized(
            OutboundMediaKind::Document,
            "application/pdf",
            TRANSPORT_MAX_BYTES + 1,
        )
        .expect_err("too large");
        assert!(document.to_string().contains("100 MB"), "{document}");
        assert!(sized(OutboundMediaKind::Image, "image/jpeg", TRANSPORT_MAX_BYTES).is_ok());
    }
}
