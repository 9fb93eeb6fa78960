//! What a day note says: its title, header and lines, as the CRM stores it.

use crate::crm::{Crm, CrmError, NoteDraft};
use crate::model::{Chat, DayNote, RecordRef, StoredMessage, SyncSettings};
use crate::whatsapp::Direction;

pub fn note_title(contact_display: &str, date: &str) -> String {
    format!("WhatsApp Chat with {contact_display} ({date})")
}

/// `09:14 ← Alice: Hello` for the contact, `09:15 → Business +44…: Hi` for
/// us; `business_number` as [`crate::sync::business_number_display`] gives it.
pub fn note_line_text(
    message: &StoredMessage,
    contact_display: &str,
    business_number: &str,
    time: &str,
) -> String {
    let attachment = message
        .attachment
        .as_ref()
        .map(|a| a.line_suffix())
        .unwrap_or_default();
    match message.direction {
        Direction::Inbound => format!("{time} ← {contact_display}: {}{attachment}", message.text),
        Direction::Outbound => match &message.sent_by {
            // Sent from the CRM: who sent it.
            Some(sender) => format!(
                "{time} → {sender} (Business {business_number}): {}{attachment}",
                message.text
            ),
            None => format!(
                "{time} → Business {business_number}: {}{attachment}",
                message.text
            ),
        },
    }
}

/// The first line of every day note: the chat's link and the business
/// number it is with. It also tells apart the notes of two business numbers
/// with the same contact, which share a title. `business_number` as
/// [`crate::sync::business_number_display`] gives it.
pub fn note_header(chat_link: &str, business_number: &str) -> String {
    format!("WhatsApp chat: {chat_link} (with {business_number})")
}

/// A day note's content as `crm` stores it.
pub fn rendered_note(crm: &dyn Crm, note: &DayNote, header: &str) -> String {
    let lines: Vec<&str> = note.lines.iter().map(|l| l.text.as_str()).collect();
    crm.render_note(&NoteDraft {
        title: &note.title,
        header,
        lines: &lines,
    })
}

/// A record this product made less than this long ago has no deal of its
/// own worth a lookup (10 Pipedrive tokens) for its first note.
const NEW_RECORD_SECS: i64 = 3600;

/// Where a new day note goes besides the chat's record: the lead or deal
/// this product made for the chat, else (if the settings say so) the
/// record's most recently updated open deal, else nowhere.
pub async fn note_also(
    crm: &dyn Crm,
    chat: &Chat,
    settings: &SyncSettings,
    now: i64,
) -> Result<Option<RecordRef>, CrmError> {
    if let Some(follow_up) = &chat.follow_up {
        return Ok(Some(follow_up.clone()));
    }
    let (Some(record), true) = (&chat.record, settings.pipedrive.note_on_open_deal) else {
        return Ok(None);
    };
    // `record_checked_at` is when a record we made was linked (a person is
    // never checked for conversion after).
    if chat.record_created_by_us && now - chat.record_checked_at < NEW_RECORD_SECS {
        return Ok(None);
    }
    crm.latest_open_deal(record, settings.pipedrive.open_deal_pipeline_id.as_deref())
        .await
}
