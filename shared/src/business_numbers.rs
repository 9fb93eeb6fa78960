//! The business-number port: what the WhatsApp Cloud API says a phone-number
//! id is, read with an access token. Graph lets a token read only the
//! numbers of its own business, so reading the number, and finding the
//! number registered, proves that whoever holds the token controls it.

use async_trait::async_trait;

/// A business phone number as the Cloud API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessNumber {
    /// As Graph writes it (`+44 7700 900100`).
    pub display_phone_number: String,
    pub verified_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusinessNumberError {
    /// Invalid, expired, or without permission to read numbers.
    #[error(
        "the WhatsApp Cloud API refused the access token (invalid, expired or without permission)"
    )]
    TokenRefused,
    /// No such number, or one of another business: Graph does not tell which.
    #[error(
        "the WhatsApp Cloud API has no phone number with this id that the access token may read"
    )]
    NotReadable,
    /// Rate-limited, down or unreachable: asking again later may work.
    #[error("the WhatsApp Cloud API could not answer ({0}); try again")]
    Unavailable(String),
    /// Any other refusal.
    #[error("the WhatsApp Cloud API refused the request: {0}")]
    Rejected(String),
    #[error("the WhatsApp Cloud API answered something we cannot use: {0}")]
    Invalid(String),
}

#[async_trait]
pub trait BusinessNumbers: Send + Sync {
    /// The number `phone_number_id` names, read with `access_token`.
    async fn read(
        &self,
        access_token: &str,
        phone_number_id: &str,
    ) -> Result<BusinessNumber, BusinessNumberError>;
    /// Sends a text from the number to `to` (E.164), quoting `reply_to` if
    /// given; the message id WhatsApp gives it.
    async fn send_text(
        &self,
        access_token: &str,
        phone_number_id: &str,
        to: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<String, SendError>;
    /// Reacts with `emoji` to the contact's message `message_id` (`""`
    /// takes our reaction back); the reaction's own message id.
    async fn send_reaction(
        &self,
        access_token: &str,
        phone_number_id: &str,
        to: &str,
        message_id: &str,
        emoji: &str,
    ) -> Result<String, SendError>;
    /// Uploads a file to send from the number; the media id WhatsApp gives
    /// it (WhatsApp keeps it 30 days, and serves it by id like received
    /// media).
    async fn upload_media(
        &self,
        access_token: &str,
        phone_number_id: &str,
        file: MediaUpload,
    ) -> Result<String, SendError>;
    /// Sends an uploaded file to `to` (E.164).
    async fn send_media(
        &self,
        access_token: &str,
        phone_number_id: &str,
        to: &str,
        media: &MediaMessage<'_>,
    ) -> Result<String, SendError>;
    /// The approved message templates of the business account `waba_id`.
    async fn approved_templates(
        &self,
        access_token: &str,
        waba_id: &str,
    ) -> Result<Vec<Template>, SendError>;
    /// Sends the template `name` in `language` with its body's parameters.
    async fn send_template(
        &self,
        access_token: &str,
        phone_number_id: &str,
        to: &str,
        template: &TemplateSend,
    ) -> Result<String, SendError>;
    /// Marks the customer's message `message_id` (and, WhatsApp does so,
    /// the chat's earlier ones) as read: their ticks turn blue.
    async fn mark_read(
        &self,
        access_token: &str,
        phone_number_id: &str,
        message_id: &str,
    ) -> Result<(), SendError>;
}

/// What kind of file a live chat sends: WhatsApp takes each with its own
/// types and limits, and shows them differently (a photo inline, a
/// document as a file with its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboundMediaKind {
    Image,
    Document,
}

impl OutboundMediaKind {
    /// The message `type` (and the name of its object) in a send.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Document => "document",
        }
    }
}

/// A file to upload.
pub struct MediaUpload {
    pub bytes: Vec<u8>,
    pub mime_type: String,
    pub file_name: String,
}

/// An uploaded file to send.
#[derive(Debug, Clone, Copy)]
pub struct MediaMessage<'a> {
    pub kind: OutboundMediaKind,
    /// The id the upload answered.
    pub media_id: &'a str,
    pub caption: Option<&'a str>,
    /// Documents only: the name the customer sees.
    pub file_name: Option<&'a str>,
}

/// An approved message template, as the composer offers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Template {
    pub name: String,
    pub language: String,
    pub category: String,
    /// The body's text with its `{{1}}`… placeholders.
    pub body: String,
    /// How many body parameters it takes.
    pub parameters: usize,
}

/// A template to send and its body's parameter values, in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct TemplateSend {
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub parameters: Vec<String>,
}

/// The number of distinct `{{n}}` placeholders in a template text.
pub fn placeholder_count(text: &str) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        seen.insert(after[..end].trim().to_owned());
        rest = &after[end + 2..];
    }
    seen.len()
}

/// A send WhatsApp refused or could not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{explanation}")]
pub struct SendError {
    /// Meta's error code, if it gave one.
    pub code: Option<i64>,
    /// What it means, in words a sales person understands.
    pub explanation: String,
    /// Whether trying the same send again later may work.
    pub transient: bool,
}

/// Meta's send errors in words (WhatsApp reference §8).
pub fn explain_send_error(code: Option<i64>, fallback: &str) -> String {
    match code {
        Some(131047) => "More than 24 hours have passed since the customer last wrote: only an approved template can be sent until they reply.".into(),
        Some(131056) => "Too many messages to this customer in a short time: wait a moment before sending again.".into(),
        Some(130429) => "WhatsApp is limiting how fast this number sends: try again shortly.".into(),
        Some(131026) => "WhatsApp could not deliver the message: the number may not be on WhatsApp, or the customer's app is too old.".into(),
        Some(132001) => "That template does not exist in this language or is not approved.".into(),
        Some(132000) => "The template's parameters do not match: fill in every placeholder.".into(),
        Some(131053) => "WhatsApp could not use the attached file (type or size).".into(),
        Some(190) => "The WhatsApp number's access token is no longer valid: register the number again with a new one.".into(),
        _ => format!("WhatsApp refused the message: {fallback}"),
    }
}
