//! What a soak sends: chats spread over both CRMs' workspaces and two
//! business numbers each, every chat's messages straddling its workspace's
//! local midnight, cut into bursts (deliveries of several messages), a few
//! of them photos and documents, each delivery posted one to `redeliver`
//! times, all shuffled. Drawn from a seed, so a run can be repeated.

use chrono::TimeZone;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// A CRM a soak syncs to (one workspace each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Crm {
    Zoho,
    Pipedrive,
}

impl Crm {
    pub fn name(self) -> &'static str {
        match self {
            Self::Zoho => "zoho",
            Self::Pipedrive => "pipedrive",
        }
    }

    /// The workspace's time zone: each its own, so the day boundary each
    /// chat straddles is a local midnight, not UTC's.
    pub fn time_zone(self) -> &'static str {
        match self {
            Self::Zoho => "Europe/London",
            Self::Pipedrive => "America/Sao_Paulo",
        }
    }

    /// The workspace's two business numbers: (phone number id, digits).
    pub fn business_numbers(self) -> [(&'static str, &'static str); 2] {
        match self {
            Self::Zoho => [
                ("170000000000011", "447700900111"),
                ("170000000000012", "447700900112"),
            ],
            Self::Pipedrive => [
                ("170000000000021", "447700900121"),
                ("170000000000022", "447700900122"),
            ],
        }
    }
}

/// The local day whose midnight every chat straddles: 2026-05-21.
const MIDNIGHT: (i32, u32, u32) = (2026, 5, 21);
/// Between one message of a chat and its next.
const MESSAGE_GAP_SECS: i64 = 240;
/// Largest burst (messages of one chat in one delivery).
const LONGEST_BURST: usize = 5;

/// Share of messages that are a photo or a document.
const MEDIA_SHARE: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Image,
    Document,
}

/// One WhatsApp message of the soak.
#[derive(Debug, Clone)]
pub struct PlannedMessage {
    pub id: String,
    /// Unique text the message's note line carries: `soak-CCCC-SSS`.
    pub token: String,
    pub seq: usize,
    pub timestamp: i64,
    /// `DD/MM/YYYY` of the timestamp in the workspace's time zone: the day
    /// note it belongs in.
    pub local_date: String,
    pub kind: Kind,
    /// The Graph media id (photos and documents).
    pub media_id: Option<String>,
}

/// One chat: a contact writing to one business number of one workspace.
#[derive(Debug, Clone)]
pub struct PlannedChat {
    pub index: usize,
    pub crm: Crm,
    pub phone_number_id: &'static str,
    pub display_phone_number: &'static str,
    pub wa_id: String,
    pub name: String,
    pub messages: Vec<PlannedMessage>,
}

impl PlannedChat {
    pub fn e164(&self) -> String {
        format!("+{}", self.wa_id)
    }

    pub fn key(&self) -> String {
        format!("{}#{}", self.phone_number_id, self.wa_id)
    }
}

/// One webhook body: a burst of one chat's messages.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub chat: usize,
    /// Indexes into the chat's messages.
    pub messages: Vec<usize>,
    pub body: Vec<u8>,
}

/// Everything a soak sends, in the order it posts it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub chats: Vec<PlannedChat>,
    pub deliveries: Vec<Delivery>,
    /// Delivery indexes, each 1..=redeliver times, shuffled.
    pub postings: Vec<usize>,
}

impl Plan {
    pub fn message_count(&self) -> usize {
        self.chats.iter().map(|c| c.messages.len()).sum()
    }

    /// `chats` chats (spread evenly over `crms`) of `messages` each.
    pub fn draw(crms: &[Crm], chats: usize, messages: usize, redeliver: u32, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let chats: Vec<PlannedChat> = (0..chats)
            .map(|index| {
                plan_chat(
                    index,
                    crms[index % crms.len()],
                    messages,
                    crms.len(),
                    &mut rng,
                )
            })
            .collect();
        let mut deliveries = Vec::new();
        for chat in &chats {
            let mut next = 0;
            while next < chat.messages.len() {
                let len = rng
                    .random_range(1..=LONGEST_BURST)
                    .min(chat.messages.len() - next);
                let indexes: Vec<usize> = (next..next + len).collect();
                let objects = indexes
                    .iter()
                    .map(|i| message_object(chat, &chat.messages[*i]))
                    .collect();
                deliveries.push(Delivery {
                    chat: chat.index,
                    messages: indexes,
                    body: crate::delivery_to(
                        chat.phone_number_id,
                        chat.display_phone_number,
                        &chat.wa_id,
                        &chat.name,
                        objects,
                    ),
                });
                next += len;
            }
        }
        let mut postings: Vec<usize> = (0..deliveries.len())
            .flat_map(|d| std::iter::repeat_n(d, rng.random_range(1..=redeliver.max(1)) as usize))
            .collect();
        postings.shuffle(&mut rng);
        Self {
            chats,
            deliveries,
            postings,
        }
    }
}

fn plan_chat(
    index: usize,
    crm: Crm,
    messages: usize,
    crm_count: usize,
    rng: &mut StdRng,
) -> PlannedChat {
    let (phone_number_id, display_phone_number) = crm.business_numbers()[(index / crm_count) % 2];
    // chrono-tz, not the functions' time zones: the expected days come
    // from another implementation of the zone database.
    let tz: chrono_tz::Tz = crm.time_zone().parse().unwrap_or(chrono_tz::UTC);
    let (y, m, d) = MIDNIGHT;
    let midnight = tz
        .with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .map_or(0, |t| t.timestamp());
    // Half the messages before the local midnight, half after; chats a
    // few seconds apart.
    let first = midnight - MESSAGE_GAP_SECS * (messages as i64 / 2) + index as i64 % 60 + 1;
    let messages = (0..messages)
        .map(|seq| {
            let timestamp = first + MESSAGE_GAP_SECS * seq as i64;
            let local_date = tz
                .timestamp_opt(timestamp, 0)
                .single()
                .map(|t| t.format("%d/%m/%Y").to_string())
                .unwrap_or_default();
            let kind = if rng.random_bool(MEDIA_SHARE) {
                if rng.random_bool(0.5) {
                    Kind::Image
                } else {
                    Kind::Document
                }
            } else {
                Kind::Text
            };
            PlannedMessage {
                id: format!("wamid.SOAK{index:04}x{seq:03}"),
                token: format!("soak-{index:04}-{seq:03}"),
                seq,
                timestamp,
                local_date,
                kind,
                media_id: (kind != Kind::Text)
                    .then(|| format!("{}", 9_000_000_000_000u64 + (index * 1000 + seq) as u64)),
            }
        })
        .collect();
    PlannedChat {
        index,
        crm,
        phone_number_id,
        display_phone_number,
        wa_id: format!("4477009{:05}", 10_000 + index),
        name: format!("Soak Contact {index:04}"),
        messages,
    }
}

/// The file name a document message carries.
pub fn document_name(message: &PlannedMessage) -> String {
    format!("{}.pdf", message.token)
}

/// The Cloud API message object of `message`.
fn message_object(chat: &PlannedChat, message: &PlannedMessage) -> Value {
    let common = json!({
        "from": chat.wa_id, "id": message.id, "timestamp": message.timestamp.to_string(),
    });
    let caption = format!("{} from {}", message.token, chat.name);
    let typed = match (message.kind, &message.media_id) {
        (Kind::Image, Some(id)) => json!({
            "type": "image",
            "image": { "caption": caption, "mime_type": "image/jpeg", "sha256": "c29haw==", "id": id }
        }),
        (Kind::Document, Some(id)) => json!({
            "type": "document",
            "document": { "caption": caption, "filename": document_name(message),
                          "mime_type": "application/pdf", "sha256": "c29haw==", "id": id }
        }),
        _ => {
            json!({ "type": "text", "text": { "body": format!("{} says hello at step {}", message.token, message.seq) } })
        }
    };
    let mut object = common;
    if let (Some(o), Some(t)) = (object.as_object_mut(), typed.as_object()) {
        o.extend(t.clone());
    }
    object
}

/// The soak tokens in `text`, in the order they appear.
pub fn tokens_in(text: &str) -> Vec<(usize, usize)> {
    text.match_indices("soak-")
        .filter_map(|(at, _)| {
            let rest = text.get(at + 5..at + 13)?;
            let (chat, seq) = rest.split_once('-')?;
            Some((chat.parse().ok()?, seq.parse().ok()?))
        })
        .collect()
}

/// The `DD/MM/YYYY` of a day note's title in `text`: the first
/// `(DD/MM/YYYY)` it holds.
pub fn note_date(text: &str) -> Option<String> {
    text.match_indices('(').find_map(|(at, _)| {
        let date = text.get(at + 1..at + 11)?;
        let shaped = date.len() == 10
            && date.char_indices().all(|(i, c)| {
                if i == 2 || i == 5 {
                    c == '/'
                } else {
                    c.is_ascii_digit()
                }
            });
        (shaped && text.get(at + 11..at + 12) == Some(")")).then(|| date.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chat_straddles_its_local_midnight_and_every_message_is_posted() {
        let plan = Plan::draw(&[Crm::Zoho, Crm::Pipedrive], 6, 6, 3, 1);
        assert_eq!(plan.message_count(), 36);
        for chat in &plan.chats {
            let dates: std::collections::BTreeSet<&str> = chat
                .messages
                .iter()
                .map(|m| m.local_date.as_str())
                .collect();
            assert_eq!(dates.len(), 2, "{chat:?}");
        }
        let mut posted: Vec<usize> = plan.postings.clone();
        posted.sort();
        posted.dedup();
        assert_eq!(posted.len(), plan.deliveries.len());
        let in_deliveries: usize = plan.deliveries.iter().map(|d| d.messages.len()).sum();
        assert_eq!(in_deliveries, 36);
    }

    #[test]
    fn tokens_and_dates_are_read_back_from_note_text() {
        let text =
            "WhatsApp Chat with X (20/05/2026)\n23:58 ← X: soak-0012-003 hi\n(a) soak-0012-004";
        assert_eq!(tokens_in(text), [(12, 3), (12, 4)]);
        assert_eq!(note_date(text).as_deref(), Some("20/05/2026"));
        assert_eq!(note_date("(part 2)"), None);
    }
}
