//! The chats a CRM record shows its user: the record's numbers, read from
//! the CRM with the user's own token (with their Brazilian/Mexican/
//! Argentinian equivalents), matched to the workspace's chats on each of
//! its WhatsApp numbers; each chat's messages newest first.

use std::collections::BTreeSet;

use serde::Serialize;

use super::LiveSession;
use crate::crm::CrmError;
use crate::deps::Deps;
use crate::error::WorkError;
use crate::model::{ConnectionKind, RecordRef, StoredMessage, chat_key};
use crate::phone::E164;
use crate::sync::{business_number_display, connection_crm};
use crate::whatsapp::Direction;

/// WhatsApp's customer-service window: free-form messages may be sent for
/// this long after the contact's last message.
pub const WINDOW_SECS: i64 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The user has no working personal connection to the CRM.
    #[error("connect your own {0} account to see its chats")]
    NotConnected(&'static str),
    /// The CRM does not show this user that record (or it does not exist).
    #[error("this record is not one you can see in the CRM")]
    NotVisible,
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

#[derive(Debug, Clone, Serialize)]
pub struct RecordChats {
    /// The record's numbers in E.164 (equivalent forms included).
    pub numbers: Vec<String>,
    pub chats: Vec<ChatView>,
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
    /// Newest first.
    pub messages: Vec<ViewMessage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ViewMessage {
    pub message_id: String,
    pub direction: Direction,
    pub timestamp: i64,
    pub kind: String,
    pub text: String,
    /// `received`, `queued`, `waiting`, `appended` (saved to the CRM), …
    pub state: &'static str,
    /// For messages we sent: how far WhatsApp got (ticks).
    pub delivery: Option<crate::model::Delivery>,
    /// Who sent it from the CRM.
    pub sent_by: Option<String>,
}

impl From<&StoredMessage> for ViewMessage {
    fn from(m: &StoredMessage) -> Self {
        Self {
            message_id: m.message_id.clone(),
            direction: m.direction,
            timestamp: m.timestamp,
            kind: m.kind.clone(),
            text: m.text.clone(),
            state: m.state.name(),
            delivery: m.delivery.clone(),
            sent_by: m.sent_by.clone(),
        }
    }
}

/// The chats `record` shows the session's user, up to `limit` messages each.
pub async fn record_chats(
    deps: &Deps,
    session: &LiveSession,
    record: &RecordRef,
    limit: usize,
) -> Result<RecordChats, ViewError> {
    let workspace_id = session.workspace_id.as_str();
    let connection = deps
        .store
        .connection(
            workspace_id,
            session.crm,
            ConnectionKind::Personal,
            Some(&session.user_id),
        )
        .await?
        .ok_or(ViewError::NotConnected(session.crm.display_name()))?;
    let crm = match connection_crm(deps, &connection).await {
        Ok(crm) => crm,
        Err(WorkError::Crm(CrmError::ConnectionBroken(_))) => {
            return Err(ViewError::NotConnected(session.crm.display_name()));
        }
        Err(e) => return Err(e.into()),
    };
    let phones = match crm.record_phones(record).await {
        Ok(Some(phones)) => phones,
        // A module the CRM does not have (a forged record) shows nothing,
        // as a record the user may not see does.
        Ok(None) | Err(CrmError::Rejected { .. }) => return Err(ViewError::NotVisible),
        Err(e) => return Err(e.into()),
    };
    let mut numbers = BTreeSet::new();
    for stored in &phones {
        if let Some(number) = E164::parse_stored(stored) {
            numbers.extend(number.equivalents());
            numbers.insert(number);
        }
    }
    let mut chats = Vec::new();
    for business in deps.store.whatsapp_numbers(workspace_id).await? {
        for contact in &numbers {
            let key = chat_key(&business.phone_number_id, contact);
            let Some(chat) = deps.store.chat(workspace_id, &key).await? else {
                continue;
            };
            let stored = deps.store.chat_messages(workspace_id, &key).await?;
            let last_inbound = stored
                .iter()
                .filter(|m| m.direction == Direction::Inbound)
                .map(|m| m.timestamp)
                .max();
            let messages = stored
                .iter()
                .rev()
                .take(limit)
                .map(ViewMessage::from)
                .collect();
            chats.push(ChatView {
                chat_key: key,
                business_number: business_number_display(&business.display_phone_number),
                contact: contact.to_string(),
                contact_name: chat.contact_name.clone(),
                window_closes_at: last_inbound.map(|t| t + WINDOW_SECS),
                messages,
            });
        }
    }
    Ok(RecordChats {
        numbers: numbers.iter().map(ToString::to_string).collect(),
        chats,
    })
}
