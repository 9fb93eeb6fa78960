//! The chats a CRM record shows its user: the record's numbers, read from
//! the CRM with the user's own token (with their Brazilian/Mexican/
//! Argentinian equivalents), matched to the workspace's chats on each of
//! its WhatsApp numbers; each chat's messages newest first, a page at a
//! time, as the page draws them: a reply with an excerpt of what it quotes,
//! reactions on the message they are on (not bubbles of their own), media
//! described, and per chat what is unread and whether the user may send.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use super::LiveSession;
use super::record_pass::RecordPass;
use super::send::may_send;
use crate::crm::CrmError;
use crate::deps::Deps;
use crate::error::WorkError;
use crate::media::media_file_name;
use crate::model::{Delivery, RecordRef, StoredMessage, chat_key};
use crate::phone::E164;
use crate::store::ReadMark;
use crate::sync::business_number_display;
use crate::whatsapp::Direction;

/// WhatsApp's customer-service window: free-form messages may be sent for
/// this long after the contact's last message.
pub const WINDOW_SECS: i64 = 24 * 3600;

/// The longest excerpt of a quoted message, in characters.
const EXCERPT_MAX_CHARS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The user has no working personal connection to the CRM.
    #[error("connect your own {0} account to see its chats")]
    NotConnected(&'static str),
    /// The CRM does not show this user that record (or it does not exist).
    #[error("this record is not one you can see in the CRM")]
    NotVisible,
    /// The workspace is being deleted: it shows nothing any more.
    #[error("this workspace is being deleted")]
    WorkspaceDeleted,
    /// `before` names no message of the record's chats.
    #[error("`before` is not a message of this record's chats")]
    NoSuchMessage,
    #[error(transparent)]
    Work(#[from] WorkError),
}

impl From<CrmError> for ViewError {
    fn from(e: CrmError) -> Self {
        Self::Work(WorkError::Crm(e))
    }
}

impl From<crate::error::StoreError> for ViewError {
    fn from(e: crate::error::StoreError) -> Self {
        Self::Work(WorkError::Store(e))
    }
}

impl From<crate::error::SecretsError> for ViewError {
    fn from(e: crate::error::SecretsError) -> Self {
        Self::Work(WorkError::Secrets(e))
    }
}

/// Which messages of each chat an answer holds: the newest `limit`, or,
/// with `before`, the `limit` before that message (only the chat that
/// holds it is answered then); with `chat`, only that chat is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Paging {
    pub limit: usize,
    pub before: Option<String>,
    pub chat: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordChats {
    /// The record's numbers in E.164 (equivalent forms included).
    pub numbers: Vec<String>,
    /// What the CRM showed of the record, for the next polls to send back
    /// (`X-Live-Record-Pass`) instead of the CRM being asked again.
    pub record_pass: String,
    pub chats: Vec<ChatView>,
    /// The workspace's business numbers the user may start a chat from.
    pub senders: Vec<Sender>,
}

/// A business number a new chat can start from.
#[derive(Debug, Clone, Serialize)]
pub struct Sender {
    pub phone_number_id: String,
    pub business_number: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChatView {
    pub chat_key: String,
    pub business_number: String,
    pub contact: String,
    pub contact_name: Option<String>,
    /// When free-form messages stop being allowed (unix seconds); none if
    /// the contact never wrote.
    pub window_closes_at: Option<i64>,
    /// Whether this user may send from the chat's business number (its
    /// owner, the chat's responsible user, owners and admins); others read.
    pub can_send: bool,
    /// The customer's messages after the last one marked read.
    pub unread: usize,
    /// When the last message marked read was sent (unix seconds), if any.
    pub read_up_to: Option<i64>,
    /// Newest first; reactions are on the messages they are on.
    pub messages: Vec<ViewMessage>,
    /// Pass as `before` for the next older page; none: this is the oldest.
    pub next_before: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ViewMessage {
    pub message_id: String,
    pub direction: Direction,
    pub timestamp: i64,
    pub kind: String,
    pub text: String,
    /// `received`, `queued`, `waiting`, `appended` (saved to the CRM), …
    pub state: &'static str,
    /// For messages we sent: how far WhatsApp got (ticks).
    pub delivery: Option<Delivery>,
    /// Who sent it from the CRM.
    pub sent_by: Option<String>,
    /// The message it quotes, with an excerpt if that is still in the chat.
    pub reply_to: Option<Quote>,
    /// Each side's current reaction on it (a removed one is gone).
    pub reactions: Vec<Reaction>,
    /// Its file, for a media message (`GET …/media/{message_id}` shows it).
    pub media: Option<MediaView>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Quote {
    pub message_id: String,
    /// The start of the quoted message; none when it is not in the chat
    /// (older than the retention, or never stored).
    pub excerpt: Option<String>,
    /// Who wrote the quoted message, when it is in the chat.
    pub direction: Option<Direction>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reaction {
    pub emoji: String,
    /// Whose: the customer's (`inbound`) or the business's (`outbound`).
    pub direction: Direction,
    pub timestamp: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MediaView {
    /// `image`, `video`, `audio`, `document`, `sticker`.
    pub kind: String,
    pub mime_type: Option<String>,
    /// The sender's own file name (documents), else one made of the kind
    /// and the media id.
    pub file_name: String,
    pub caption: Option<String>,
}

/// The chats `record` shows the session's user, up to `limit` messages
/// each (the newest).
pub async fn record_chats(
    deps: &Deps,
    session: &LiveSession,
    record: &RecordRef,
    limit: usize,
) -> Result<RecordChats, ViewError> {
    let paging = Paging {
        limit,
        ..Paging::default()
    };
    record_chats_page(deps, session, record, &paging, None).await
}

/// The chats `record` shows the session's user, a page of messages each;
/// the record's numbers from `pass` while it holds, else from the CRM.
pub async fn record_chats_page(
    deps: &Deps,
    session: &LiveSession,
    record: &RecordRef,
    paging: &Paging,
    pass: Option<&str>,
) -> Result<RecordChats, ViewError> {
    let workspace_id = session.workspace_id.as_str();
    // A session outlives a deletion by up to its 15 minutes: once the
    // workspace is being deleted, nothing of it is shown (as its API
    // tokens stop working at once).
    if !deps
        .store
        .workspace(workspace_id)
        .await?
        .is_some_and(|w| w.accepts_work())
    {
        return Err(ViewError::WorkspaceDeleted);
    }
    let (phones, record_pass) = record_phones(deps, session, record, pass).await?;
    let mut numbers = BTreeSet::new();
    for stored in &phones {
        if let Some(number) = E164::parse_stored(stored) {
            numbers.extend(number.equivalents());
            numbers.insert(number);
        }
    }
    let mut chats = Vec::new();
    let mut senders = Vec::new();
    // Read once: sending's own rule decides for every number and chat (a
    // user no longer in the workspace sends from none).
    let user = deps
        .store
        .user(&session.workspace_id, &session.user_id)
        .await?;
    for business in deps.store.whatsapp_numbers(workspace_id).await? {
        // A new chat has no responsible user yet.
        if user.as_ref().is_some_and(|u| may_send(u, &business, None)) {
            senders.push(Sender {
                phone_number_id: business.phone_number_id.clone(),
                business_number: business_number_display(&business.display_phone_number),
            });
        }
        for contact in &numbers {
            let key = chat_key(&business.phone_number_id, contact);
            if paging.chat.as_ref().is_some_and(|only| *only != key) {
                continue;
            }
            let Some((chat, read_mark)) = deps.store.chat_and_read_mark(workspace_id, &key).await?
            else {
                continue;
            };
            let stored = deps.store.chat_messages(workspace_id, &key).await?;
            let Some(page) = page_of(&stored, read_mark.as_ref(), paging) else {
                continue; // `before` is in another chat
            };
            // Read-only users see no composer.
            let can_send = user
                .as_ref()
                .is_some_and(|u| may_send(u, &business, Some(&chat)));
            chats.push(ChatView {
                chat_key: key,
                business_number: business_number_display(&business.display_phone_number),
                contact: contact.to_string(),
                contact_name: chat.contact_name.clone(),
                window_closes_at: page.last_inbound.map(|t| t + WINDOW_SECS),
                can_send,
                unread: page.unread,
                read_up_to: read_mark.map(|m| m.up_to),
                messages: page.messages,
                next_before: page.next_before,
            });
        }
    }
    if paging.before.is_some() && chats.is_empty() {
        return Err(ViewError::NoSuchMessage);
    }
    Ok(RecordChats {
        numbers: numbers.iter().map(ToString::to_string).collect(),
        record_pass,
        chats,
        senders,
    })
}

/// The record's phone fields and a pass for them: from `pass` while it
/// holds for this user and record (the connection still read: one that
/// stopped working shows nothing at once), else read from the CRM with
/// the user's own token.
async fn record_phones(
    deps: &Deps,
    session: &LiveSession,
    record: &RecordRef,
    pass: Option<&str>,
) -> Result<(Vec<String>, String), ViewError> {
    let keys = deps.secrets.keys().await?;
    let now = deps.clock.now();
    if let Some(sealed) = pass
        && let Some(held) = RecordPass::open(sealed, keys, session, record, now)
    {
        session.personal_connection(deps).await?;
        return Ok((held.phones, sealed.to_owned()));
    }
    let crm = session.personal_crm(deps).await?;
    let phones = match crm.record_phones(record).await {
        Ok(Some(phones)) => phones,
        // A module the CRM does not have (a forged record) shows nothing,
        // as a record the user may not see does.
        Ok(None) | Err(CrmError::Rejected { .. }) => return Err(ViewError::NotVisible),
        Err(e) => return Err(e.into()),
    };
    let sealed = RecordPass::new(session, record, phones.clone(), now).seal(keys);
    Ok((phones, sealed))
}

/// What a chat shows of its messages.
#[derive(Debug, Clone, PartialEq)]
struct ChatPage {
    messages: Vec<ViewMessage>,
    next_before: Option<String>,
    unread: usize,
    last_inbound: Option<i64>,
}

/// A page of a chat's messages (`stored` oldest first, as the store gives
/// them); none when `paging.before` is not one of them.
fn page_of(stored: &[StoredMessage], read: Option<&ReadMark>, paging: &Paging) -> Option<ChatPage> {
    let by_id: HashMap<&str, &StoredMessage> =
        stored.iter().map(|m| (m.message_id.as_str(), m)).collect();
    let reactions = reactions_by_target(stored);
    let bubbles: Vec<&StoredMessage> = stored.iter().filter(|m| !is_reaction(m)).collect();
    let newer_than = match &paging.before {
        Some(before) => bubbles.iter().position(|m| m.message_id == *before)?,
        None => bubbles.len(),
    };
    let older = &bubbles[..newer_than];
    let shown = &older[older.len().saturating_sub(paging.limit)..];
    let messages = shown
        .iter()
        .rev()
        .map(|m| view_message(m, &by_id, &reactions))
        .collect();
    let next_before = (shown.len() < older.len())
        .then(|| shown.first().map(|m| m.message_id.clone()))
        .flatten();
    let inbound = || bubbles.iter().filter(|m| m.direction == Direction::Inbound);
    Some(ChatPage {
        messages,
        next_before,
        unread: inbound()
            .filter(|m| read.is_none_or(|read| m.timestamp > read.up_to))
            .count(),
        // Any message of the customer's opens the window, a reaction too.
        last_inbound: stored
            .iter()
            .filter(|m| m.direction == Direction::Inbound)
            .map(|m| m.timestamp)
            .max(),
    })
}

fn is_reaction(m: &StoredMessage) -> bool {
    m.kind == "reaction"
}

/// The emoji of a reaction message; none for a reaction removed. A
/// reaction is stored with its note line's body: the customer's as the
/// webhook renders it (`[Reacted 👍]`, `[Removed a reaction]` when WhatsApp
/// sends no emoji), ours with the start of what it is on (`[Reacted 👍 to
/// "…"]`, `[Removed a reaction to "…"]`). An emoji holds no whitespace.
fn reaction_emoji(m: &StoredMessage) -> Option<&str> {
    m.text
        .strip_prefix("[Reacted ")?
        .split(char::is_whitespace)
        .next()
        .map(|emoji| emoji.strip_suffix(']').unwrap_or(emoji))
        .filter(|emoji| !emoji.is_empty())
}

/// Each message's current reactions, by side: a side's latest reaction
/// replaces its earlier one, and one removed leaves none.
fn reactions_by_target(stored: &[StoredMessage]) -> HashMap<&str, Vec<Reaction>> {
    // Oldest first, so the latest of each side (is it the business's) is
    // the one kept.
    let mut latest: HashMap<(&str, bool), &StoredMessage> = HashMap::new();
    for m in stored.iter().filter(|m| is_reaction(m)) {
        if let Some(target) = m.reaction_to.as_deref() {
            latest.insert((target, m.direction == Direction::Outbound), m);
        }
    }
    let mut by_target: HashMap<&str, Vec<Reaction>> = HashMap::new();
    for ((target, _), m) in latest {
        if let Some(emoji) = reaction_emoji(m) {
            by_target.entry(target).or_default().push(Reaction {
                emoji: emoji.to_owned(),
                direction: m.direction,
                timestamp: m.timestamp,
            });
        }
    }
    for reactions in by_target.values_mut() {
        reactions.sort_by_key(|r| (r.timestamp, r.direction == Direction::Outbound));
    }
    by_target
}

fn view_message(
    m: &StoredMessage,
    by_id: &HashMap<&str, &StoredMessage>,
    reactions: &HashMap<&str, Vec<Reaction>>,
) -> ViewMessage {
    ViewMessage {
        message_id: m.message_id.clone(),
        direction: m.direction,
        timestamp: m.timestamp,
        kind: m.kind.clone(),
        text: m.text.clone(),
        state: m.state.name(),
        delivery: m.delivery.clone(),
        sent_by: m.sent_by.clone(),
        reply_to: m.reply_to.as_ref().map(|quoted| {
            let found = by_id.get(quoted.as_str());
            Quote {
                message_id: quoted.clone(),
                excerpt: found.map(|q| excerpt(&q.text)),
                direction: found.map(|q| q.direction),
            }
        }),
        reactions: reactions
            .get(m.message_id.as_str())
            .cloned()
            .unwrap_or_default(),
        media: m.media.as_ref().map(|media| MediaView {
            kind: m.kind.clone(),
            mime_type: media.mime_type.clone(),
            file_name: media_file_name(
                &m.kind,
                &media.id,
                media.mime_type.as_deref().unwrap_or_default(),
                media.filename.as_deref(),
            ),
            caption: media.caption.clone(),
        }),
    }
}

/// The start of a message, as a quote shows it: at most
/// [`EXCERPT_MAX_CHARS`] characters, cut at a word where one is near.
fn excerpt(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= EXCERPT_MAX_CHARS {
        return text.to_owned();
    }
    let cut: String = text.chars().take(EXCERPT_MAX_CHARS).collect();
    let at_word = match cut.rfind(char::is_whitespace) {
        Some(space) if space > cut.len() / 2 => &cut[..space],
        _ => cut.as_str(),
    };
    format!("{}…", at_word.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MessageState;
    use crate::whatsapp::{Media, WebhookItem, parse_delivery};

    fn message(id: &str, at: i64, direction: Direction, text: &str) -> StoredMessage {
        StoredMessage {
            workspace_id: "ws".into(),
            message_id: id.into(),
            chat_key: "170000000000001#447700900123".into(),
            direction,
            timestamp: at,
            kind: "text".into(),
            text: text.into(),
            media: None,
            contact_name: None,
            state: MessageState::Queued,
            received_at: at,
            attachment: None,
            attachment_started_at: None,
            sent_by: None,
            delivery: None,
            reply_to: None,
            reaction_to: None,
        }
    }

    fn reaction(id: &str, at: i64, direction: Direction, on: &str, text: &str) -> StoredMessage {
        StoredMessage {
            kind: "reaction".into(),
            reaction_to: Some(on.into()),
            ..message(id, at, direction, text)
        }
    }

    fn all(limit: usize) -> Paging {
        Paging {
            limit,
            ..Paging::default()
        }
    }

    fn ids(page: &ChatPage) -> Vec<&str> {
        page.messages
            .iter()
            .map(|m| m.message_id.as_str())
            .collect()
    }

    #[test]
    fn reactions_sit_on_their_message_latest_per_side_and_a_removed_one_goes() {
        use Direction::{Inbound, Outbound};
        let stored = vec![
            message("m1", 100, Inbound, "Is it still for sale?"),
            message("m2", 110, Outbound, "Yes"),
            reaction("r1", 120, Inbound, "m2", "[Reacted 👍]"),
            reaction("r2", 130, Outbound, "m1", "[Reacted ❤️]"),
            reaction("r3", 140, Inbound, "m2", "[Reacted 🙏]"),
            reaction("r4", 150, Outbound, "m1", "[Removed a reaction]"),
            // On a message no longer in the chat: shown nowhere.
            reaction("r5", 160, Inbound, "gone", "[Reacted 😀]"),
        ];
        let page = page_of(&stored, None, &all(50)).expect("a page");
        assert_eq!(ids(&page), ["m2", "m1"], "reactions are no bubbles");
        assert_eq!(
            page.messages[0].reactions,
            [Reaction {
                emoji: "🙏".into(),
                direction: Inbound,
                timestamp: 140
            }]
        );
        assert_eq!(page.messages[1].reactions, [], "removed");
        // A reaction does not count as unread, but opens the window.
        assert_eq!(page.unread, 1);
        assert_eq!(page.last_inbound, Some(160));
    }

    #[test]
    fn a_reply_quotes_the_start_of_its_message_if_the_chat_still_has_it() {
        let long = "word ".repeat(40);
        let stored = vec![
            message("m1", 100, Direction::Inbound, &long),
            StoredMessage {
                reply_to: Some("m1".into()),
                ..message("m2", 110, Direction::Outbound, "Sure")
            },
            StoredMessage {
                reply_to: Some("expired".into()),
                ..message("m3", 120, Direction::Inbound, "And this?")
            },
        ];
        let page = page_of(&stored, None, &all(50)).expect("a page");
        let quote = page.messages[1].reply_to.clone().expect("a quote");
        let excerpt = quote.excerpt.expect("an excerpt");
        assert!(excerpt.ends_with("word…"), "{excerpt}");
        assert!(
            excerpt.chars().count() <= EXCERPT_MAX_CHARS + 1,
            "{excerpt}"
        );
        assert_eq!(quote.direction, Some(Direction::Inbound));
        assert_eq!(
            page.messages[0].reply_to,
            Some(Quote {
                message_id: "expired".into(),
                excerpt: None,
                direction: None
            })
        );
        assert_eq!(page.messages[2].reply_to, None);
        assert_eq!(super::excerpt("  short  "), "short");
    }

    #[test]
    fn pages_go_back_from_before_and_say_where_the_next_starts() {
        let stored: Vec<StoredMessage> = (0..7)
            .map(|i| message(&format!("m{i}"), 100 + i, Direction::Inbound, "hi"))
            .collect();
        let first = page_of(&stored, None, &all(3)).expect("a page");
        assert_eq!(ids(&first), ["m6", "m5", "m4"]);
        assert_eq!(first.next_before.as_deref(), Some("m4"));
        let second = page_of(
            &stored,
            None,
            &Paging {
                limit: 3,
                before: first.next_before.clone(),
                chat: None,
            },
        )
        .expect("a page");
        assert_eq!(ids(&second), ["m3", "m2", "m1"]);
        let last = page_of(
            &stored,
            None,
            &Paging {
                limit: 3,
                before: second.next_before.clone(),
                chat: None,
            },
        )
        .expect("a page");
        assert_eq!(ids(&last), ["m0"]);
        assert_eq!(last.next_before, None, "the oldest page");
        let elsewhere = Paging {
            limit: 3,
            before: Some("not-here".into()),
            chat: None,
        };
        assert_eq!(page_of(&stored, None, &elsewhere), None);
    }

    #[test]
    fn unread_counts_the_customers_messages_after_the_read_mark() {
        let stored = vec![
            message("m1", 100, Direction::Inbound, "a"),
            message("m2", 110, Direction::Inbound, "b"),
            message("m3", 120, Direction::Outbound, "c"),
            message("m4", 130, Direction::Inbound, "d"),
        ];
        assert_eq!(page_of(&stored, None, &all(50)).map(|p| p.unread), Some(3));
        let read = ReadMark {
            up_to: 110,
            message_id: "m2".into(),
        };
        assert_eq!(
            page_of(&stored, Some(&read), &all(50)).map(|p| p.unread),
            Some(1)
        );
    }

    #[test]
    fn media_is_described_with_a_file_name_to_show() {
        let stored = vec![StoredMessage {
            kind: "document".into(),
            media: Some(Media {
                id: "1200".into(),
                mime_type: Some("application/pdf".into()),
                caption: Some("Our quote".into()),
                filename: Some("Quote.pdf".into()),
            }),
            ..message(
                "m1",
                100,
                Direction::Inbound,
                "[Document: Quote.pdf] Our quote",
            )
        }];
        let page = page_of(&stored, None, &all(50)).expect("a page");
        assert_eq!(
            page.messages[0].media,
            Some(MediaView {
                kind: "document".into(),
                mime_type: Some("application/pdf".into()),
                file_name: "Quote.pdf".into(),
                caption: Some("Our quote".into()),
            })
        );
    }

    /// The emoji is read back from the text the webhook stores: pinned to
    /// what the parser writes for Meta's own reaction payloads.
    #[test]
    fn the_emoji_is_read_from_what_the_webhook_stores() {
        let stored = |file: &str| {
            let path = format!(
                "{}/../tests/fixtures/whatsapp/{file}",
                env!("CARGO_MANIFEST_DIR")
            );
            let body = std::fs::read(path).expect("fixture");
            let items = parse_delivery(&body).expect("parses");
            let Some(WebhookItem::Message(m)) = items.into_iter().next() else {
                panic!("a message");
            };
            StoredMessage {
                kind: m.kind.clone(),
                reaction_to: m.reaction_to.clone(),
                ..message(&m.message_id, m.timestamp, m.direction, &m.text)
            }
        };
        assert_eq!(reaction_emoji(&stored("cloud-reaction.json")), Some("👍"));
        assert_eq!(reaction_emoji(&stored("cloud-reaction-removed.json")), None);
        // Ours, sent from the CRM, name what they are on.
        let ours = |text: &str| message("r", 1, Direction::Outbound, text);
        assert_eq!(
            reaction_emoji(&ours("[Reacted ❤️ to \"Can I visit [on] Friday?\"]")),
            Some("❤️")
        );
        assert_eq!(
            reaction_emoji(&ours("[Removed a reaction to \"Can I visit…\"]")),
            None
        );
        assert_eq!(reaction_emoji(&ours("[Reacted 👨‍👩‍👧]")), Some("👨‍👩‍👧"));
    }
}
