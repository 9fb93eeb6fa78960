//! WhatsApp Cloud API webhook payloads: the wire types, and their reading into
//! the chat messages the product syncs.
//!
//! Parsing is strict about types (a field of the wrong type refuses the whole
//! delivery, so Meta keeps retrying it while we fix the parser, and nothing is
//! half-stored) and lenient about presence (unknown fields and types are fine).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::phone::E164;

#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
pub struct Entry {
    pub id: String,
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub field: String,
    pub value: ChangeValue,
}

#[derive(Debug, Deserialize)]
pub struct ChangeValue {
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub message_echoes: Vec<Message>,
    #[serde(default)]
    pub statuses: Vec<Value>,
    #[serde(default)]
    pub errors: Vec<Value>,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub display_phone_number: String,
    pub phone_number_id: String,
}

#[derive(Debug, Deserialize)]
pub struct Contact {
    pub profile: Option<Profile>,
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Profile {
    pub name: Option<String>,
    pub username: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub id: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub from_user_id: Option<String>,
    #[serde(deserialize_with = "unix_seconds")]
    pub timestamp: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub group_id: Option<String>,
    pub context: Option<Context>,
    pub text: Option<Text>,
    pub image: Option<Media>,
    pub video: Option<Media>,
    pub audio: Option<Media>,
    pub document: Option<Media>,
    pub sticker: Option<Media>,
    pub location: Option<Location>,
    pub contacts: Option<Vec<ContactCard>>,
    pub reaction: Option<Reaction>,
    pub interactive: Option<Interactive>,
    pub button: Option<Button>,
    pub unsupported: Option<Unsupported>,
}

#[derive(Debug, Deserialize)]
pub struct Context {
    pub from: Option<String>,
    pub id: Option<String>,
    #[serde(default)]
    pub forwarded: bool,
}

#[derive(Debug, Deserialize)]
pub struct Text {
    pub body: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Media {
    pub id: String,
    pub mime_type: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ContactCard {
    pub name: Option<CardName>,
    #[serde(default)]
    pub phones: Vec<CardPhone>,
}

#[derive(Debug, Deserialize)]
pub struct CardName {
    pub formatted_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CardPhone {
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Reaction {
    /// The message reacted to.
    pub message_id: Option<String>,
    pub emoji: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Interactive {
    pub button_reply: Option<Choice>,
    pub list_reply: Option<Choice>,
}

#[derive(Debug, Deserialize)]
pub struct Choice {
    pub title: String,
}

#[derive(Debug, Deserialize)]
pub struct Button {
    pub text: String,
}

#[derive(Debug, Deserialize)]
pub struct Unsupported {
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// Meta sends unix seconds as a string; one page types it as an integer.
fn unix_seconds<'de, D: Deserializer<'de>>(de: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(i64),
    }
    match Raw::deserialize(de)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(s) => s
            .parse()
            .map_err(|_| serde::de::Error::custom("timestamp is not unix seconds")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Sent by the contact to the business.
    Inbound,
    /// Sent by the business (echoes of the WhatsApp Business app, or live chat).
    Outbound,
}

/// Who the business talks with in a 1:1 chat.
#[derive(Debug, Clone, PartialEq)]
pub enum Counterpart {
    /// A phone number, with the user's business-scoped user id (BSUID) when
    /// the delivery names it.
    Number {
        contact: E164,
        user_id: Option<String>,
    },
    /// A WhatsApp username that shares no number: only its BSUID is known.
    UserOnly { user_id: String },
}

/// One message of a 1:1 chat, ready to be stored and synced.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub phone_number_id: String,
    pub business_number: String,
    pub message_id: String,
    pub counterpart: Counterpart,
    pub contact_name: Option<String>,
    pub direction: Direction,
    pub timestamp: i64,
    pub kind: String,
    /// What the note line says after time and sender.
    pub text: String,
    pub media: Option<Media>,
    /// The message this one quotes (a reply).
    pub reply_to: Option<String>,
    /// The message a reaction is on.
    pub reaction_to: Option<String>,
}

/// Why an item of a delivery is not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    NotWhatsApp,
    Status,
    GroupMessage,
    NoPhoneNumber,
    MissingMetadata,
    SystemEvent,
    Revoke,
    ValueErrors,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotWhatsApp => "not_whatsapp_object",
            Self::Status => "status_update",
            Self::GroupMessage => "group_chat",
            Self::NoPhoneNumber => "no_phone_number_shared",
            Self::MissingMetadata => "missing_metadata",
            Self::SystemEvent => "system_event",
            Self::Revoke => "revoked_message",
            Self::ValueErrors => "platform_error",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum WebhookItem {
    Message(Box<ChatMessage>),
    Skipped {
        reason: SkipReason,
        message_id: Option<String>,
        /// The business number it came to, when the delivery says.
        phone_number_id: Option<String>,
    },
}

/// Why a delivery cannot be read. It names where, never the values there:
/// they may be phone numbers or message text.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not valid JSON (line {line}, column {column})")]
    Syntax { line: usize, column: usize },
    #[error("body does not have the shape of a WhatsApp webhook (line {line}, column {column})")]
    Shape { line: usize, column: usize },
}

impl From<serde_json::Error> for PayloadError {
    fn from(e: serde_json::Error) -> Self {
        let (line, column) = (e.line(), e.column());
        match e.classify() {
            serde_json::error::Category::Data => Self::Shape { line, column },
            _ => Self::Syntax { line, column },
        }
    }
}

/// Reads a verified webhook body into the items it carries, in order.
pub fn parse_delivery(body: &[u8]) -> Result<Vec<WebhookItem>, PayloadError> {
    let envelope: Envelope = serde_json::from_slice(body)?;
    if envelope.object != "whatsapp_business_account" {
        return Ok(vec![WebhookItem::Skipped {
            reason: SkipReason::NotWhatsApp,
            message_id: None,
            phone_number_id: None,
        }]);
    }
    let mut items = Vec::new();
    for change in envelope.entry.into_iter().flat_map(|e| e.changes) {
        read_change(change.value, &mut items);
    }
    Ok(items)
}

/// A status webhook's news about a message we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub phone_number_id: String,
    pub message_id: String,
    /// `sent`, `delivered`, `read`, `played`, `failed`.
    pub status: String,
    pub error_code: Option<i64>,
    /// What the error says (`title`, else `message`).
    pub error_reason: Option<String>,
}

/// The status updates of a delivery (statuses without an id or a number
/// are passed over: nothing could be matched to them).
pub fn status_updates(body: &[u8]) -> Result<Vec<StatusUpdate>, PayloadError> {
    let envelope: Envelope = serde_json::from_slice(body)?;
    let mut updates = Vec::new();
    for value in envelope
        .entry
        .into_iter()
        .flat_map(|e| e.changes)
        .map(|c| c.value)
    {
        let Some(number) = value.metadata.as_ref().map(|m| m.phone_number_id.clone()) else {
            continue;
        };
        for status in &value.statuses {
            let (Some(id), Some(state)) = (status["id"].as_str(), status["status"].as_str()) else {
                continue;
            };
            let error = status["errors"].get(0);
            updates.push(StatusUpdate {
                phone_number_id: number.clone(),
                message_id: id.to_owned(),
                status: state.to_owned(),
                error_code: error.and_then(|e| e["code"].as_i64()),
                error_reason: error.and_then(|e| {
                    e["error_data"]["details"]
                        .as_str()
                        .or(e["title"].as_str())
                        .or(e["message"].as_str())
                        .map(str::to_owned)
                }),
            });
        }
    }
    Ok(updates)
}

fn read_change(value: ChangeValue, items: &mut Vec<WebhookItem>) {
    let number = value.metadata.as_ref().map(|m| m.phone_number_id.clone());
    let skip = |reason, id: Option<&str>| WebhookItem::Skipped {
        reason,
        message_id: id.map(str::to_owned),
        phone_number_id: number.clone(),
    };
    items.extend(
        value
            .statuses
            .iter()
            .map(|_| skip(SkipReason::Status, None)),
    );
    if !value.errors.is_empty() && value.messages.is_empty() && value.message_echoes.is_empty() {
        items.push(skip(SkipReason::ValueErrors, None));
    }
    let Some(metadata) = value.metadata else {
        let count = value.messages.len() + value.message_echoes.len();
        items.extend((0..count).map(|_| skip(SkipReason::MissingMetadata, None)));
        return;
    };
    let inbound = value.messages.into_iter().map(|m| (Direction::Inbound, m));
    let outbound = value
        .message_echoes
        .into_iter()
        .map(|m| (Direction::Outbound, m));
    for (direction, message) in inbound.chain(outbound) {
        let id = message.id.as_str();
        if message.group_id.is_some() {
            items.push(skip(SkipReason::GroupMessage, Some(id)));
            continue;
        }
        match message.kind.as_str() {
            "system" => {
                items.push(skip(SkipReason::SystemEvent, Some(id)));
                continue;
            }
            "revoke" => {
                items.push(skip(SkipReason::Revoke, Some(id)));
                continue;
            }
            _ => {}
        }
        let contact_id = match direction {
            Direction::Inbound => message.from.as_deref(),
            Direction::Outbound => message.to.as_deref(),
        };
        // A number when there is one; else (a username that shares none)
        // the business-scoped user id, kept until a number is known.
        let number = contact_id.and_then(|id| E164::from_wa_id(id).ok());
        let user_id = message
            .from_user_id
            .clone()
            .filter(|_| direction == Direction::Inbound)
            .or_else(|| {
                let digits = number.as_ref()?.digits().to_owned();
                value
                    .contacts
                    .iter()
                    .find(|c| c.wa_id.as_deref() == Some(digits.as_str()))
                    .and_then(|c| c.user_id.clone())
            });
        let counterpart = match (number, user_id) {
            (Some(contact), user_id) => Counterpart::Number { contact, user_id },
            (None, Some(user_id)) => Counterpart::UserOnly { user_id },
            (None, None) => {
                items.push(skip(SkipReason::NoPhoneNumber, Some(id)));
                continue;
            }
        };
        let contact_name = value
            .contacts
            .iter()
            .find(|c| match &counterpart {
                Counterpart::Number { contact, .. } => c.wa_id.as_deref() == Some(contact.digits()),
                Counterpart::UserOnly { user_id } => c.user_id.as_deref() == Some(user_id),
            })
            .and_then(|c| c.profile.as_ref())
            .and_then(|p| p.name.clone())
            .filter(|n| !n.trim().is_empty());
        let text = render(&message);
        let reply_to = message
            .context
            .as_ref()
            .filter(|c| !c.forwarded)
            .and_then(|c| c.id.clone());
        let reaction_to = message.reaction.as_ref().and_then(|r| r.message_id.clone());
        let media = [
            &message.image,
            &message.video,
            &message.audio,
            &message.document,
            &message.sticker,
        ]
        .into_iter()
        .find_map(|m| m.clone());
        items.push(WebhookItem::Message(Box::new(ChatMessage {
            phone_number_id: metadata.phone_number_id.clone(),
            business_number: metadata.display_phone_number.clone(),
            message_id: message.id,
            counterpart,
            contact_name,
            direction,
            timestamp: message.timestamp,
            kind: message.kind,
            text,
            media,
            reply_to,
            reaction_to,
        })));
    }
}

/// The readable body of a note line for any message type.
fn render(m: &Message) -> String {
    let with_caption = |label: &str, media: &Option<Media>| {
        let caption = media
            .as_ref()
            .and_then(|x| x.caption.as_deref())
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        format!("[{label}]{caption}")
    };
    let body = match m.kind.as_str() {
        "text" => m.text.as_ref().map(|t| t.body.clone()).unwrap_or_default(),
        "image" => with_caption("Image", &m.image),
        "video" => with_caption("Video", &m.video),
        "audio" => "[Voice message]".to_owned(),
        "sticker" => "[Sticker]".to_owned(),
        "document" => {
            let name = m
                .document
                .as_ref()
                .and_then(|d| d.filename.as_deref())
                .unwrap_or("file");
            with_caption(&format!("Document: {name}"), &m.document)
        }
        "location" => match &m.location {
            Some(l) => {
                let label = [l.name.as_deref(), l.address.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ");
                let map = format!("https://maps.google.com/?q={},{}", l.latitude, l.longitude);
                if label.is_empty() {
                    format!("[Location] {map}")
                } else {
                    format!("[Location] {label} {map}")
                }
            }
            None => "[Location]".to_owned(),
        },
        "contacts" => {
            let cards = m
                .contacts
                .iter()
                .flatten()
                .map(|c| {
                    let name = c
                        .name
                        .as_ref()
                        .and_then(|n| n.formatted_name.clone())
                        .unwrap_or_else(|| "unnamed".to_owned());
                    let phones: Vec<_> = c.phones.iter().filter_map(|p| p.phone.clone()).collect();
                    if phones.is_empty() {
                        name
                    } else {
                        format!("{name} ({})", phones.join(", "))
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            format!("[Contact card] {cards}")
        }
        "reaction" => match m.reaction.as_ref().and_then(|r| r.emoji.as_deref()) {
            Some(emoji) => format!("[Reacted {emoji}]"),
            None => "[Removed a reaction]".to_owned(),
        },
        "interactive" => m
            .interactive
            .as_ref()
            .and_then(|i| i.button_reply.as_ref().or(i.list_reply.as_ref()))
            .map(|c| c.title.clone())
            .unwrap_or_else(|| "[Interactive reply]".to_owned()),
        "button" => m
            .button
            .as_ref()
            .map(|b| b.text.clone())
            .unwrap_or_else(|| "[Button]".to_owned()),
        other => {
            let kind = m
                .unsupported
                .as_ref()
                .and_then(|u| u.kind.as_deref())
                .unwrap_or(other);
            format!("[Unsupported message: {kind}]")
        }
    };
    // Lines of a note are one message each: keep a message on its line.
    body.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/whatsapp/");

    fn parse(name: &str) -> Result<Vec<WebhookItem>, PayloadError> {
        parse_delivery(&std::fs::read(format!("{FIXTURES}{name}")).expect("fixture exists"))
    }

    fn messages(name: &str) -> Vec<ChatMessage> {
        parse(name)
            .expect("parses")
            .into_iter()
            .filter_map(|i| match i {
                WebhookItem::Message(m) => Some(*m),
                WebhookItem::Skipped { .. } => None,
            })
            .collect()
    }

    fn number(message: &ChatMessage) -> Option<&str> {
        match &message.counterpart {
            Counterpart::Number { contact, .. } => Some(contact.as_str()),
            Counterpart::UserOnly { .. } => None,
        }
    }

    #[test]
    fn a_username_without_a_number_is_kept_by_its_user_id() {
        let m = messages("cloud-text-username-bsuid.json");
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].counterpart,
            Counterpart::UserOnly {
                user_id: "GB.13491208655300000001".into()
            }
        );
        assert_eq!(m[0].contact_name.as_deref(), Some("Evan Example"));
        assert!(skipped("cloud-text-username-bsuid.json").is_empty());
    }

    fn skipped(name: &str) -> Vec<SkipReason> {
        parse(name)
            .expect("parses")
            .into_iter()
            .filter_map(|i| match i {
                WebhookItem::Skipped { reason, .. } => Some(reason),
                WebhookItem::Message(_) => None,
            })
            .collect()
    }

    #[test]
    fn plain_text_message_is_read_with_contact_and_business_number() {
        let m = messages("cloud-text-inbound.json");
        assert_eq!(m.len(), 1);
        assert_eq!(number(&m[0]), Some("+447700900123"));
        assert_eq!(m[0].contact_name.as_deref(), Some("Alice Example"));
        assert_eq!(m[0].phone_number_id, "170000000000001");
        assert_eq!(m[0].business_number, "447700900100");
        assert_eq!(m[0].direction, Direction::Inbound);
        assert_eq!(m[0].timestamp, 1_779_268_500);
        assert_eq!(
            m[0].text,
            "Hi, is the 3-bed flat on Elm Road still available?"
        );
    }

    #[test]
    fn escaped_unicode_decodes() {
        let m = messages("cloud-text-unicode-escaped.json");
        assert_eq!(m[0].text, "Café at 10? £15 deposit is fine 👍 — Zoë");
    }

    #[test]
    fn batch_yields_every_message_and_skips_the_status() {
        let m = messages("cloud-batch-two-messages.json");
        assert_eq!(m.len(), 3);
        assert_eq!(
            skipped("cloud-batch-two-messages.json"),
            [SkipReason::Status]
        );
        assert_eq!(m[2].phone_number_id, "170000000000002");
    }

    #[test]
    fn echoes_are_outbound_to_the_customer() {
        let m = messages("cloud-smb-message-echo.json");
        assert_eq!(m.len(), 2);
        assert!(m.iter().all(|x| x.direction == Direction::Outbound));
        assert_eq!(number(&m[0]), Some("+447700900123"));
        assert_eq!(m[1].text, "[Image] Floor plan");
        assert_eq!(
            m[1].media.as_ref().map(|x| x.id.as_str()),
            Some("1200000000000007")
        );
    }

    #[test]
    fn things_that_are_not_chat_lines_are_skipped_with_a_reason() {
        assert_eq!(
            skipped("cloud-group-message.json"),
            [SkipReason::GroupMessage]
        );
        assert_eq!(skipped("cloud-status-read.json"), [SkipReason::Status]);
        assert_eq!(
            skipped("cloud-system-number-changed.json"),
            [SkipReason::SystemEvent]
        );
        assert_eq!(
            skipped("cloud-smb-message-echo-revoke.json"),
            [SkipReason::Revoke]
        );
        assert_eq!(
            skipped("cloud-errors-value-level.json"),
            [SkipReason::ValueErrors]
        );
        assert_eq!(
            skipped("malformed-not-whatsapp-object.json"),
            [SkipReason::NotWhatsApp]
        );
        assert_eq!(
            skipped("malformed-missing-metadata.json"),
            [SkipReason::MissingMetadata]
        );
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        assert!(parse("malformed-truncated.json").is_err());
        assert!(parse("malformed-wrong-types.json").is_err());
    }

    #[test]
    fn every_message_type_has_a_readable_line() {
        let cases = [
            ("cloud-image-inbound.json", "[Image]"),
            ("cloud-video-inbound.json", "[Video]"),
            ("cloud-audio-inbound.json", "[Voice message]"),
            ("cloud-document-inbound.json", "[Document: "),
            ("cloud-sticker-inbound.json", "[Sticker]"),
            ("cloud-location.json", "https://maps.google.com/?q="),
            ("cloud-contacts.json", "[Contact card] "),
            ("cloud-reaction.json", "[Reacted "),
            ("cloud-reaction-removed.json", "[Removed a reaction]"),
            ("cloud-unsupported.json", "[Unsupported message: "),
        ];
        for (file, expected) in cases {
            let m = messages(file);
            assert_eq!(m.len(), 1, "{file}");
            assert!(m[0].text.contains(expected), "{file}: {}", m[0].text);
        }
        for file in [
            "cloud-interactive-reply.json",
            "cloud-interactive-list-reply.json",
            "cloud-button-reply.json",
        ] {
            let m = messages(file);
            assert!(!m[0].text.starts_with('['), "{file}: {}", m[0].text);
        }
    }
}
