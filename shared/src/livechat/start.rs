//! Starting a chat from a CRM record: an approved template (a new chat has
//! no open window) from one of the workspace's business numbers to one of
//! the record's numbers. The record's numbers are read from the CRM with
//! the user's own token, as the chat view reads them, so nobody can write
//! to a number the CRM does not show them on that record. The chat is made
//! as a webhook would make it, so record-sync links it to its record the
//! usual way; a chat that exists already just gets the template.

use serde::{Deserialize, Serialize};

use super::LiveSession;
use super::send::{
    Destination, Outgoing, SendRefusal, checked_template, client_id, deliver, sender,
};
use super::view::{ViewError, record_chats};
use crate::business_numbers::TemplateSend;
use crate::deps::Deps;
use crate::model::{RecordRef, chat_key};
use crate::phone::E164;

#[derive(Debug, Deserialize)]
pub struct StartRequest {
    /// The page's own id for this send: the same id starts (and sends) once.
    pub client_id: String,
    /// `<module>/<id>` of the record the user is on.
    pub record: String,
    /// One of the record's numbers, in E.164.
    pub contact: String,
    /// The business number to write from.
    pub phone_number_id: String,
    pub template: TemplateSend,
}

#[derive(Debug, Serialize)]
pub struct Started {
    pub chat_key: String,
    pub message_id: String,
    /// The same client id had started it already.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartRefusal {
    #[error("`record` must be <module>/<id>")]
    BadRecord,
    #[error("`contact` must be a phone number in international form (+…)")]
    BadContact,
    #[error("the workspace has no WhatsApp number with this phone_number_id")]
    NoSuchNumber,
    #[error("this number is not one of the record's numbers (as the CRM shows you the record)")]
    NotOnRecord,
    /// The record cannot be read with the user's token (or is not theirs
    /// to see).
    #[error(transparent)]
    Record(#[from] ViewError),
    #[error(transparent)]
    Send(#[from] SendRefusal),
}

impl From<crate::error::StoreError> for StartRefusal {
    fn from(e: crate::error::StoreError) -> Self {
        Self::Send(e.into())
    }
}

/// Starts (or continues) the chat between `asked.phone_number_id` and
/// `asked.contact` with a template, as the session's user.
pub async fn start(
    deps: &Deps,
    session: &LiveSession,
    asked: &StartRequest,
) -> Result<Started, StartRefusal> {
    let client_id = client_id(&asked.client_id)?;
    let template = checked_template(&asked.template)?;
    let record = asked
        .record
        .split_once('/')
        .filter(|(module, id)| !module.is_empty() && !id.is_empty())
        .map(|(module, id)| RecordRef::new(session.crm, module, id))
        .ok_or(StartRefusal::BadRecord)?;
    let contact = E164::parse_stored(&asked.contact).ok_or(StartRefusal::BadContact)?;
    let workspace_id = session.workspace_id.as_str();
    let number = deps
        .store
        .whatsapp_number(asked.phone_number_id.trim())
        .await?
        .filter(|n| n.workspace_id == workspace_id)
        .ok_or(StartRefusal::NoSuchNumber)?;
    let key = chat_key(&number.phone_number_id, &contact);
    let existing = deps.store.chat(workspace_id, &key).await?;
    // Who may send is decided before the CRM is asked anything.
    let user = sender(deps, session, &number, existing.as_ref()).await?;
    // No message is needed, only the record's numbers.
    let shown = record_chats(deps, session, &record, 0).await?;
    if !shown.numbers.iter().any(|n| n == contact.as_str()) {
        return Err(StartRefusal::NotOnRecord);
    }
    let to = Destination {
        number: &number,
        chat_key: &key,
        contact: &contact,
        create_chat: existing.is_none(),
    };
    let sent = deliver(deps, &user, &to, client_id, Outgoing::Template(template)).await?;
    Ok(Started {
        chat_key: key,
        message_id: sent.message_id,
        duplicate: sent.duplicate,
    })
}
