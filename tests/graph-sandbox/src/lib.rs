//! Graph API sandbox: a local HTTP server that behaves like the Meta Graph
//! API's WhatsApp media endpoints, for tests and the local demo (the team's
//! WhatsApp reference, section 7 "Downloading media"), and like its business
//! phone-number node:
//!
//! 1. `GET /{version}/{media_id}[?phone_number_id=…]` with
//!    `Authorization: Bearer <token>` answers the media's metadata and a
//!    download URL that lives 5 minutes;
//! 2. `GET <url>` with the same bearer answers the bytes, `Content-Type` being
//!    the media's MIME type; an expired URL answers 404;
//! 3. `GET /{version}/{phone_number_id}[?fields=display_phone_number,verified_name]`
//!    with the bearer answers the number as Graph shows it
//!    (`{"display_phone_number":"+44 7700 900100","verified_name":…,"id":…}`);
//!    a token that may not read the number gets Graph's "cannot be loaded"
//!    error (code 100), as for any object it cannot see.
//!
//!
//! and what a live chat needs (the WhatsApp reference §7–8, the live-chat
//! reference §3):
//!
//! 4. `POST /{version}/{phone_number_id}/messages`: text, media (by uploaded
//!    id or link), reactions, templates (checked against the seeded ones),
//!    replies (`context.message_id`) and mark-as-read / typing indicator;
//!    free-form sends outside the 24-hour customer-service window fail with
//!    131047 (by default in a `failed` status webhook, as Meta usually does);
//! 5. `POST /{version}/{phone_number_id}/media` (multipart) with Meta's type
//!    and size limits; uploads can be sent by id and downloaded like any
//!    media;
//! 6. `GET /{version}/{waba_id}/message_templates` with `fields`, `limit`,
//!    `after` cursors and `status`/`name`/`category` filters;
//! 7. signed status webhooks (`sent` → `delivered` → `read`, or `failed`)
//!    POSTed to a configured URL, like Meta's (`X-Hub-Signature-256`).
//!
//! Errors use Graph's envelope `{"error":{"message","type","code",
//! "error_data","fbtrace_id"}}`. Admin helpers on [`GraphSandboxHandle`] seed
//! media, phone numbers and templates, set the accepted tokens, inject
//! failures, move the clock, record inbound messages, emit statuses and count
//! requests.

mod chat;
mod errors;
mod media_rules;
mod messaging;
mod server;
mod statuses;
mod store;
mod templates;

pub use errors::{CloudError, CodeInfo, code_info};
pub use messaging::{
    CUSTOMER_SERVICE_WINDOW, DeliveryStatus, EmittedStatus, EmittedWebhook, SendOutcome,
    SentMessage, StatusProgression, WebhookTarget, WindowErrorMode,
};
pub use statuses::{meta_json, meta_signature};
pub use templates::{SeedTemplate, default_templates};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

/// The token a default sandbox accepts.
pub const DEFAULT_ACCESS_TOKEN: &str = "sandbox-graph-token";
/// The Graph version used in the current WhatsApp documentation examples; the
/// sandbox accepts any `vNN.N`.
pub const DEFAULT_API_VERSION: &str = "v25.0";
/// The fixtures' business number (`PHONE_NUMBER_ID` of the end-to-end
/// harness), seeded by default.
pub const DEFAULT_PHONE_NUMBER_ID: &str = "170000000000001";
/// Its number as Graph answers it (WhatsApp Manager's layout).
pub const DEFAULT_DISPLAY_PHONE_NUMBER: &str = "+44 7700 900100";
pub const DEFAULT_VERIFIED_NAME: &str = "Acme Lettings";
/// The fixtures' WhatsApp Business Account (`entry[].id` of their webhooks):
/// the default number and templates belong to it.
pub const DEFAULT_WABA_ID: &str = "190000000000001";
/// How long a download URL works after the metadata call issued it (Meta:
/// "media URL lifetime 5 minutes").
pub const MEDIA_URL_LIFETIME: Duration = Duration::from_secs(300);

/// How `file_size` is written in the metadata answer. Meta's documented
/// example shows a quoted value (`"file_size": "<FILE_SIZE>"`), while several
/// client libraries type it as a number; a client must read both, so the
/// sandbox can answer either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileSizeFormat {
    #[default]
    String,
    Number,
}

/// Sandbox configuration.
#[derive(Debug, Clone)]
pub struct GraphSandboxConfig {
    /// 0 = ephemeral port.
    pub port: u16,
    /// Bearer tokens the sandbox accepts.
    pub access_tokens: Vec<String>,
    /// Lifetime of a download URL.
    pub url_lifetime: Duration,
    pub file_size_format: FileSizeFormat,
    /// Business phone numbers Graph knows.
    pub phone_numbers: Vec<SeedPhoneNumber>,
    /// The WABA numbers and templates belong to unless they name another.
    pub waba_id: String,
    /// Message templates ([`default_templates`] by default).
    pub templates: Vec<SeedTemplate>,
    /// How a free-form send outside the 24-hour window fails.
    pub window_error_mode: WindowErrorMode,
    /// Automatic status webhooks after a successful send.
    pub status_progression: StatusProgression,
    /// Where status webhooks go; `None`: they are only recorded.
    pub webhook: Option<WebhookTarget>,
    /// Add `conversation` to statuses (webhooks before v24.0 carried it;
    /// the fixtures, v24+, do not).
    pub include_conversation: bool,
}

impl Default for GraphSandboxConfig {
    fn default() -> Self {
        Self {
            port: 0,
            access_tokens: vec![DEFAULT_ACCESS_TOKEN.to_owned()],
            url_lifetime: MEDIA_URL_LIFETIME,
            file_size_format: FileSizeFormat::default(),
            phone_numbers: vec![SeedPhoneNumber::new(
                DEFAULT_PHONE_NUMBER_ID,
                DEFAULT_DISPLAY_PHONE_NUMBER,
                DEFAULT_VERIFIED_NAME,
            )],
            waba_id: DEFAULT_WABA_ID.to_owned(),
            templates: default_templates(),
            window_error_mode: WindowErrorMode::default(),
            status_progression: StatusProgression::default(),
            webhook: None,
            include_conversation: false,
        }
    }
}

/// A WhatsApp business phone number as Graph holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedPhoneNumber {
    pub id: String,
    /// Written as Graph answers it: `+44 7700 900100`.
    pub display_phone_number: String,
    pub verified_name: String,
    /// The tokens of the business that owns the number: only they may read
    /// it (another valid token gets Graph's "cannot be loaded" error).
    /// `None`: any token the sandbox accepts.
    pub readable_with: Option<Vec<String>>,
    /// The WABA the number belongs to; `None`: the sandbox's
    /// ([`GraphSandboxConfig::waba_id`]).
    pub waba_id: Option<String>,
}

impl SeedPhoneNumber {
    pub fn new(id: &str, display_phone_number: &str, verified_name: &str) -> Self {
        Self {
            id: id.to_owned(),
            display_phone_number: display_phone_number.to_owned(),
            verified_name: verified_name.to_owned(),
            readable_with: None,
            waba_id: None,
        }
    }

    pub fn in_waba(mut self, waba_id: &str) -> Self {
        self.waba_id = Some(waba_id.to_owned());
        self
    }

    /// The number's digits, as webhooks' `metadata.display_phone_number`
    /// carries them (`447700900100`).
    pub fn display_digits(&self) -> String {
        self.display_phone_number
            .chars()
            .filter(char::is_ascii_digit)
            .collect()
    }

    /// The country calling code of the number as displayed (`+44 7700 …` →
    /// `44`): Meta prefixes it to a `to` without `+`.
    pub fn country_code(&self) -> Option<&str> {
        let (code, _) = self
            .display_phone_number
            .strip_prefix('+')?
            .split_once(' ')?;
        (!code.is_empty() && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
    }

    /// Only these tokens (valid ones, whatever the sandbox accepts
    /// otherwise) may read the number.
    pub fn readable_only_with<I, S>(mut self, tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.readable_with = Some(tokens.into_iter().map(Into::into).collect());
        self
    }
}

/// What a media item's download answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaContent {
    Bytes(bytes::Bytes),
    /// `size` bytes of [`generated_bytes`], produced while streaming, so a
    /// test can serve a large file without holding it.
    Generated {
        size: u64,
    },
}

impl MediaContent {
    pub fn len(&self) -> u64 {
        match self {
            Self::Bytes(b) => b.len() as u64,
            Self::Generated { size } => *size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A media item as WhatsApp would hold it after a user sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedMedia {
    pub id: String,
    pub mime_type: String,
    /// Documents carry the sender's file name in the webhook (not in the
    /// Graph answers); kept for [`GraphSandboxHandle::webhook_media`].
    pub filename: Option<String>,
    pub content: MediaContent,
    /// `file_size` to announce instead of the real size: for clients that
    /// must not trust the metadata.
    pub declared_size: Option<u64>,
    /// The business number the media belongs to; a metadata call naming
    /// another `phone_number_id` fails.
    pub phone_number_id: Option<String>,
    /// `false` = the download is sent chunked, without `Content-Length`.
    pub send_content_length: bool,
}

impl SeedMedia {
    pub fn bytes(id: &str, mime_type: &str, bytes: impl Into<bytes::Bytes>) -> Self {
        Self::with_content(id, mime_type, MediaContent::Bytes(bytes.into()))
    }

    /// `size` bytes of [`generated_bytes`].
    pub fn generated(id: &str, mime_type: &str, size: u64) -> Self {
        Self::with_content(id, mime_type, MediaContent::Generated { size })
    }

    fn with_content(id: &str, mime_type: &str, content: MediaContent) -> Self {
        Self {
            id: id.to_owned(),
            mime_type: mime_type.to_owned(),
            filename: None,
            content,
            declared_size: None,
            phone_number_id: None,
            send_content_length: true,
        }
    }

    pub fn with_filename(mut self, filename: &str) -> Self {
        self.filename = Some(filename.to_owned());
        self
    }

    pub fn with_declared_size(mut self, size: u64) -> Self {
        self.declared_size = Some(size);
        self
    }

    pub fn with_phone_number_id(mut self, phone_number_id: &str) -> Self {
        self.phone_number_id = Some(phone_number_id.to_owned());
        self
    }

    pub fn without_content_length(mut self) -> Self {
        self.send_content_length = false;
        self
    }
}

/// The bytes a [`MediaContent::Generated`] item serves: byte `i` is
/// `i % 251` (a prime, so chunk boundaries never line up with the pattern).
pub fn generated_bytes(size: u64) -> Vec<u8> {
    pattern_chunk(0, size)
}

pub(crate) fn pattern_chunk(offset: u64, len: u64) -> Vec<u8> {
    (offset..offset + len).map(|i| (i % 251) as u8).collect()
}

/// Which endpoint a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /{version}/{media_id}`.
    Metadata,
    /// `GET` of a download URL.
    Download,
    /// `GET /{version}/{phone_number_id}` of a seeded phone number.
    PhoneNumber,
    /// `POST /{version}/{phone_number_id}/messages` (sends and mark-as-read).
    Messages,
    /// `POST /{version}/{phone_number_id}/media`.
    MediaUpload,
    /// `GET /{version}/{waba_id}/message_templates`.
    Templates,
    /// Anything else (admin calls are not recorded).
    Unknown,
}

/// One request the sandbox received. The token is never kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub endpoint: Endpoint,
    pub method: String,
    pub path: String,
    /// Raw query string ("" when absent).
    pub query: String,
    pub status: u16,
    /// Whether a bearer token (right or wrong) came with the request.
    pub bearer_present: bool,
}

/// Errors of the library API.
#[derive(Debug, thiserror::Error)]
pub enum GraphSandboxError {
    #[error("cannot bind the sandbox listener: {0}")]
    Bind(#[from] std::io::Error),
    #[error("no message {0} was sent through the sandbox")]
    UnknownMessage(String),
    #[error("{0} is not a message status (sent, delivered, read, played, failed)")]
    UnknownStatus(String),
    #[error("cannot build the webhook client: {0}")]
    Client(String),
}

pub(crate) struct Shared {
    pub store: Mutex<store::Store>,
    /// Requests to these endpoints wait at the gate until it opens.
    pub gates: Mutex<Vec<(Endpoint, Arc<Gate>)>>,
    /// Posts status webhooks.
    pub http: reqwest::Client,
    /// Planned status webhooks not posted yet.
    pub pending_statuses: tokio::sync::watch::Sender<usize>,
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, store::Store> {
        // A panicking handler must not wedge every later test call.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits while a gate holds `endpoint` (before anything is answered).
    pub async fn pass_gate(&self, endpoint: Endpoint) {
        let gate = self
            .gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(e, _)| *e == endpoint)
            .map(|(_, gate)| Arc::clone(gate));
        if let Some(gate) = gate {
            gate.arrived
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // No permit is ever given: the gate opens by closing, which
            // ends every wait at once.
            let _ = gate.open.acquire().await;
        }
    }
}

/// Holds requests to one endpoint until [`HeldRequests::release`]: a test
/// can act at the exact moment a client's request is in flight.
pub(crate) struct Gate {
    arrived: std::sync::atomic::AtomicUsize,
    open: tokio::sync::Semaphore,
}

/// The handle of a gate set by [`GraphSandboxHandle::hold`].
pub struct HeldRequests {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    gate: Arc<Gate>,
}

impl HeldRequests {
    /// How many requests have reached the gate so far.
    pub fn arrived(&self) -> usize {
        self.gate.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets every held request (and every later one) through.
    pub fn release(self) {
        self.shared
            .gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(e, _)| *e != self.endpoint);
        self.gate.open.close();
    }
}

/// Entry point.
pub struct GraphSandbox;

impl GraphSandbox {
    /// Binds 127.0.0.1:`config.port` and starts serving in the background.
    pub async fn start(
        config: GraphSandboxConfig,
    ) -> Result<GraphSandboxHandle, GraphSandboxError> {
        let bound = sandbox_kit::Bound::loopback(config.port).await?;
        let base_url = bound.base_url.clone();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| GraphSandboxError::Client(e.to_string()))?;
        let shared = Arc::new(Shared {
            store: Mutex::new(store::Store::new(config, base_url.clone())),
            gates: Mutex::new(Vec::new()),
            http,
            pending_statuses: tokio::sync::watch::Sender::new(0),
        });
        let served = bound.serve(server::router(Arc::clone(&shared)), "graph sandbox");
        Ok(GraphSandboxHandle { shared, served })
    }
}

/// Control and inspection handle (cheap to clone).
#[derive(Clone)]
pub struct GraphSandboxHandle {
    pub(crate) shared: Arc<Shared>,
    served: sandbox_kit::Served,
}

impl std::fmt::Debug for GraphSandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSandboxHandle")
            .field("base_url", &self.served.base_url)
            .finish()
    }
}

impl GraphSandboxHandle {
    /// `http://127.0.0.1:<port>`: stands for `https://graph.facebook.com`
    /// (download URLs are issued on the same origin).
    pub fn base_url(&self) -> String {
        self.served.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.served.addr
    }

    /// Adds (or replaces) a media item.
    pub fn seed_media(&self, media: SeedMedia) {
        self.shared.store().seed(media);
    }

    /// Adds (or replaces) a business phone number.
    pub fn seed_phone_number(&self, number: SeedPhoneNumber) {
        self.shared.store().seed_phone_number(number);
    }

    /// Forgets a media item (as WhatsApp does after 7 days); returns whether
    /// it existed. URLs already issued for it answer 404.
    pub fn remove_media(&self, id: &str) -> bool {
        self.shared.store().media.remove(id).is_some()
    }

    /// The bytes a media item serves.
    pub fn media_bytes(&self, id: &str) -> Option<Vec<u8>> {
        self.shared
            .store()
            .media
            .get(id)
            .map(|m| match &m.seed.content {
                MediaContent::Bytes(b) => b.to_vec(),
                MediaContent::Generated { size } => generated_bytes(*size),
            })
    }

    /// The media object a webhook would carry for this item
    /// (`{"id","mime_type","sha256"[,"filename"]}`), to build test deliveries
    /// that agree with the sandbox.
    pub fn webhook_media(&self, id: &str) -> Option<Value> {
        self.shared.store().webhook_media(id)
    }

    /// Replaces the accepted bearer tokens.
    pub fn set_access_tokens<I, S>(&self, tokens: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared.store().tokens = tokens.into_iter().map(Into::into).collect();
    }

    /// The next `n` media requests (either media endpoint; phone-number
    /// reads only fail through [`Self::fail_next_at`]) answer `status` with a
    /// Graph error (503 → code 2, 429 → code 4, 401 → code 190, others →
    /// code 1; a 404 on a download is the expired-URL answer).
    pub fn fail_next(&self, n: u32, status: u16) {
        self.shared.store().add_fault(None, n, status);
    }

    /// Like [`Self::fail_next`], counting only requests to `endpoint`.
    pub fn fail_next_at(&self, endpoint: Endpoint, n: u32, status: u16) {
        self.shared.store().add_fault(Some(endpoint), n, status);
    }

    /// Holds every request to `endpoint` until the returned handle releases
    /// them.
    pub fn hold(&self, endpoint: Endpoint) -> HeldRequests {
        let gate = Arc::new(Gate {
            arrived: std::sync::atomic::AtomicUsize::new(0),
            open: tokio::sync::Semaphore::new(0),
        });
        self.shared
            .gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((endpoint, Arc::clone(&gate)));
        HeldRequests {
            shared: Arc::clone(&self.shared),
            endpoint,
            gate,
        }
    }

    /// Moves the sandbox's clock forward (URL expiry), without sleeping.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.store().clock_offset += by;
    }

    /// Lifetime of URLs issued from now on and of those already issued.
    pub fn set_url_lifetime(&self, lifetime: Duration) {
        self.shared.store().url_lifetime = lifetime;
    }

    /// Requests received by `endpoint` so far, whatever they were answered.
    pub fn request_count(&self, endpoint: Endpoint) -> usize {
        self.shared
            .store()
            .requests
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .count()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.store().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.shared.store().requests.clear();
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(&self) {
        self.served.shutdown().await;
    }
}
