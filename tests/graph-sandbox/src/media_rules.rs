//! Meta's media rules (WhatsApp reference §7, live-chat reference §3.2):
//! which MIME types each message type takes and how large a file may be.
//! Used by uploads (`POST …/media`) and by sends of an uploaded id.

const MB: u64 = 1024 * 1024;
const KB: u64 = 1024;

/// A message type that carries media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
    Sticker,
}

impl MediaKind {
    pub fn from_type(message_type: &str) -> Option<Self> {
        Some(match message_type {
            "image" => Self::Image,
            "video" => Self::Video,
            "audio" => Self::Audio,
            "document" => Self::Document,
            "sticker" => Self::Sticker,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Document => "document",
            Self::Sticker => "sticker",
        }
    }

    /// Whether a file of this MIME type can be sent as this kind (documents
    /// take any supported file).
    pub fn accepts(self, mime: &str) -> bool {
        self == Self::Document || kind_of(mime) == Some(self)
    }
}

const IMAGE: [&str; 2] = ["image/jpeg", "image/png"];
const VIDEO: [&str; 2] = ["video/mp4", "video/3gpp"];
const AUDIO: [&str; 6] = [
    "audio/aac",
    "audio/amr",
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
    "audio/opus",
];
const DOCUMENT: [&str; 8] = [
    "text/plain",
    "application/pdf",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
];
const STICKER: &str = "image/webp";

/// The MIME type without parameters, lower case (`audio/ogg; codecs=opus`
/// → `audio/ogg`).
pub fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The message type a supported MIME type belongs to.
pub fn kind_of(mime: &str) -> Option<MediaKind> {
    let mime = essence(mime);
    let mime = mime.as_str();
    if IMAGE.contains(&mime) {
        Some(MediaKind::Image)
    } else if VIDEO.contains(&mime) {
        Some(MediaKind::Video)
    } else if AUDIO.contains(&mime) {
        Some(MediaKind::Audio)
    } else if DOCUMENT.contains(&mime) {
        Some(MediaKind::Document)
    } else if mime == STICKER {
        Some(MediaKind::Sticker)
    } else {
        None
    }
}

/// Every supported type, as Meta lists them in its "Param file must be a
/// file with one of the following types" error.
pub fn supported_types() -> String {
    AUDIO
        .iter()
        .chain(DOCUMENT.iter())
        .chain(IMAGE.iter())
        .chain(std::iter::once(&STICKER))
        .chain(VIDEO.iter())
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// The largest file of a kind: image 5 MB, video and audio 16 MB, document
/// 100 MB, sticker 100 KB static / 500 KB animated.
pub fn max_size(kind: MediaKind, animated: bool) -> u64 {
    match kind {
        MediaKind::Image => 5 * MB,
        MediaKind::Video | MediaKind::Audio => 16 * MB,
        MediaKind::Document => 100 * MB,
        MediaKind::Sticker if animated => 500 * KB,
        MediaKind::Sticker => 100 * KB,
    }
}

/// `5 MB`, `100 KB`.
pub fn human_size(bytes: u64) -> String {
    if bytes >= MB {
        format!("{} MB", bytes / MB)
    } else {
        format!("{} KB", bytes / KB)
    }
}

/// Whether a WebP file is animated: an extended (`VP8X`) header with the
/// animation flag.
pub fn webp_animated(bytes: &[u8]) -> bool {
    bytes.len() > 20 && &bytes[12..16] == b"VP8X" && bytes[20] & 0x02 != 0
}

/// Whether the bytes look like the declared image type (other types are not
/// sniffed).
pub fn content_matches(mime: &str, bytes: &[u8]) -> bool {
    match essence(mime).as_str() {
        "image/jpeg" => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/webp" => bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP",
        "application/pdf" => bytes.starts_with(b"%PDF"),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_limits() {
        assert_eq!(kind_of("image/jpeg"), Some(MediaKind::Image));
        assert_eq!(kind_of("audio/ogg; codecs=opus"), Some(MediaKind::Audio));
        assert_eq!(kind_of("image/gif"), None);
        assert!(MediaKind::Document.accepts("image/png"));
        assert!(!MediaKind::Image.accepts("application/pdf"));
        assert_eq!(max_size(MediaKind::Sticker, false), 100 * 1024);
        assert_eq!(human_size(5 * MB), "5 MB");
    }

    #[test]
    fn animated_webp_is_told_apart() {
        let mut animated = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0".to_vec();
        animated.extend([0x02, 0, 0, 0]);
        assert!(webp_animated(&animated));
        assert!(!webp_animated(b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0\0"));
    }
}
