//! The sandbox's state: media, issued URLs, accepted tokens, faults, clock
//! and the request log. Every method is synchronous so handlers never hold
//! the lock across an await.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::chat::ChatState;
use crate::{
    Endpoint, FileSizeFormat, GraphSandboxConfig, MediaContent, RecordedRequest, SeedMedia,
    SeedPhoneNumber, pattern_chunk,
};

/// Chunk size used to hash and to stream generated content.
pub const CHUNK: u64 = 64 * 1024;

pub struct StoredMedia {
    pub seed: SeedMedia,
    /// base64 of the SHA-256 of the bytes, computed on first use: hashing a
    /// large generated item at seed time would slow tests that never ask.
    sha256: Option<String>,
}

pub struct IssuedUrl {
    pub media_id: String,
    pub issued_at: Duration,
}

struct Fault {
    endpoint: Option<Endpoint>,
    remaining: u32,
    status: u16,
}

pub struct Store {
    pub base_url: String,
    pub tokens: Vec<String>,
    pub url_lifetime: Duration,
    pub clock_offset: Duration,
    pub file_size_format: FileSizeFormat,
    pub media: HashMap<String, StoredMedia>,
    pub phone_numbers: HashMap<String, SeedPhoneNumber>,
    /// By the URL's `hash` parameter.
    pub urls: HashMap<String, IssuedUrl>,
    faults: Vec<Fault>,
    pub requests: Vec<RecordedRequest>,
    /// Templates, windows, sends and status webhooks.
    pub chat: ChatState,
}

impl Store {
    pub fn new(config: GraphSandboxConfig, base_url: String) -> Self {
        let chat = ChatState::new(&config);
        Self {
            chat,
            base_url,
            tokens: config.access_tokens,
            url_lifetime: config.url_lifetime,
            clock_offset: Duration::ZERO,
            file_size_format: config.file_size_format,
            media: HashMap::new(),
            phone_numbers: config
                .phone_numbers
                .into_iter()
                .map(|n| (n.id.clone(), n))
                .collect(),
            urls: HashMap::new(),
            faults: Vec::new(),
            requests: Vec::new(),
        }
    }

    /// The sandbox's "now" since the epoch (real time plus the test offset).
    pub fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + self.clock_offset
    }

    pub fn seed(&mut self, media: SeedMedia) {
        self.media.insert(
            media.id.clone(),
            StoredMedia {
                seed: media,
                sha256: None,
            },
        );
    }

    pub fn seed_phone_number(&mut self, number: SeedPhoneNumber) {
        self.phone_numbers.insert(number.id.clone(), number);
    }

    /// The sandbox's "now" in unix seconds.
    pub fn now_secs(&self) -> i64 {
        i64::try_from(self.now().as_secs()).unwrap_or(i64::MAX)
    }

    /// The WABA a business number belongs to.
    pub fn waba_of(&self, number: &SeedPhoneNumber) -> String {
        number
            .waba_id
            .clone()
            .unwrap_or_else(|| self.chat.default_waba_id.clone())
    }

    /// Whether Graph knows a WABA: the default one, or one a number or a
    /// template names.
    pub fn knows_waba(&self, waba_id: &str) -> bool {
        waba_id == self.chat.default_waba_id
            || self
                .phone_numbers
                .values()
                .any(|n| n.waba_id.as_deref() == Some(waba_id))
            || self
                .chat
                .templates
                .iter()
                .any(|t| t.waba_id.as_deref() == Some(waba_id))
    }

    pub fn accepts(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| self.tokens.iter().any(|ok| ok == t))
    }

    pub fn add_fault(&mut self, endpoint: Option<Endpoint>, n: u32, status: u16) {
        if n > 0 {
            self.faults.push(Fault {
                endpoint,
                remaining: n,
                status,
            });
        }
    }

    /// The injected status for this request, if a fault applies. A fault
    /// for no endpoint in particular is for media requests.
    pub fn take_fault(&mut self, endpoint: Endpoint) -> Option<u16> {
        let i = self.faults.iter().position(|f| match f.endpoint {
            Some(e) => e == endpoint,
            None => matches!(endpoint, Endpoint::Metadata | Endpoint::Download),
        })?;
        let fault = &mut self.faults[i];
        let status = fault.status;
        fault.remaining -= 1;
        if fault.remaining == 0 {
            self.faults.remove(i);
        }
        Some(status)
    }

    fn sha256_of(&mut self, id: &str) -> Option<String> {
        let media = self.media.get_mut(id)?;
        if media.sha256.is_none() {
            let mut hasher = Sha256::new();
            match &media.seed.content {
                MediaContent::Bytes(b) => hasher.update(b),
                MediaContent::Generated { size } => {
                    let mut offset = 0;
                    while offset < *size {
                        let len = CHUNK.min(size - offset);
                        hasher.update(pattern_chunk(offset, len));
                        offset += len;
                    }
                }
            }
            media.sha256 =
                Some(base64::engine::general_purpose::STANDARD.encode(hasher.finalize()));
        }
        media.sha256.clone()
    }

    /// Issues a download URL for `id` and answers the metadata body.
    pub fn metadata(&mut self, id: &str) -> Option<Value> {
        let sha256 = self.sha256_of(id)?;
        let media = &self.media.get(id)?.seed;
        let size = media.declared_size.unwrap_or(media.content.len());
        let file_size = match self.file_size_format {
            FileSizeFormat::String => json!(size.to_string()),
            FileSizeFormat::Number => json!(size),
        };
        let mime_type = media.mime_type.clone();
        let hash = random_alnum(32);
        let issued_at = self.now();
        // Shaped like Meta's lookaside links (`…/whatsapp_business/attachments/
        // ?mid=…&ext=…&hash=…`); only `hash` identifies the URL here.
        let url = format!(
            "{}/whatsapp_business/attachments/?mid={}&ext={}&hash={hash}",
            self.base_url,
            url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>(),
            issued_at.as_secs(),
        );
        self.urls.insert(
            hash,
            IssuedUrl {
                media_id: id.to_owned(),
                issued_at,
            },
        );
        Some(json!({
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": mime_type,
            "sha256": sha256,
            "file_size": file_size,
            "id": id,
        }))
    }

    pub fn webhook_media(&mut self, id: &str) -> Option<Value> {
        let sha256 = self.sha256_of(id)?;
        let media = &self.media.get(id)?.seed;
        let mut value = json!({ "id": id, "mime_type": media.mime_type, "sha256": sha256 });
        if let Some(name) = &media.filename {
            value["filename"] = json!(name);
        }
        Some(value)
    }

    /// The media a download URL (by its `hash`) still gives access to.
    pub fn resolve_url(&self, hash: &str) -> Option<&SeedMedia> {
        let issued = self.urls.get(hash)?;
        if self.now() >= issued.issued_at + self.url_lifetime {
            return None;
        }
        self.media.get(&issued.media_id).map(|m| &m.seed)
    }

    pub fn record(&mut self, request: RecordedRequest) {
        self.requests.push(request);
    }
}

/// Graph-like opaque identifiers (`fbtrace_id`, URL hashes).
pub fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
