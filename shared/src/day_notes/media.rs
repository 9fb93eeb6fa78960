//! A media message's file, downloaded from WhatsApp and attached to the record.

use serde_json::json;

use crate::crm::{Crm, CrmError};
use crate::deps::Deps;
use crate::error::WorkError;
use crate::media::{MediaError, media_file_name};
use crate::model::{AttachmentOutcome, Chat, StoredMessage, WhatsAppNumber};
use crate::synclog::{self, LogEntryDraft, SyncEvent};

/// Downloads a media message's file from WhatsApp and attaches it to the
/// chat's record. A file that cannot be attached for good (too large, gone,
/// refused) is an outcome the note line reports, not a failure; only
/// transient trouble fails the message, to be retried.
pub(super) async fn attach_media(
    deps: &Deps,
    chat: &Chat,
    number: Option<&WhatsAppNumber>,
    crm: &dyn Crm,
    message: &StoredMessage,
) -> Result<AttachmentOutcome, WorkError> {
    let Some(media) = &message.media else {
        return Err(WorkError::Inconsistent("no media to attach".into()));
    };
    let record = chat.record.as_ref().ok_or(WorkError::Unlinked)?;
    let declared_mime = media
        .mime_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    let file_name = media_file_name(
        &message.kind,
        &media.id,
        declared_mime,
        media.filename.as_deref(),
    );
    let not_attached = |reason: String| AttachmentOutcome::NotAttached {
        file_name: file_name.clone(),
        reason,
    };
    // Without a usable token the message waits for one: Meta keeps media
    // for 7 days, so registering a token in time still gets the file.
    let Some(sealed) = number.and_then(|n| n.access_token_enc.as_deref()) else {
        return Err(WorkError::NoMediaAccess(
            "none is registered for this number".into(),
        ));
    };
    let binding = number
        .map(WhatsAppNumber::token_binding)
        .unwrap_or_default();
    let keys = deps.secrets.keys().await?;
    let Ok(token) = keys.token_cipher().decrypt(sealed, &binding) else {
        return Err(WorkError::NoMediaAccess(
            "the stored one does not decrypt".into(),
        ));
    };
    let max = deps.config.attachment_max_bytes;
    let file = match deps.media.fetch(&token, &media.id, max).await {
        Ok(file) => file,
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(MediaError::TooLarge { size, max }) => {
            return Ok(not_attached(format!(
                "too large to attach ({}; files up to {} are attached)",
                megabytes(size),
                megabytes(max)
            )));
        }
        Err(MediaError::NotFound) => {
            return Ok(not_attached("WhatsApp no longer has the file".into()));
        }
        Err(MediaError::Unauthorized) => {
            return Err(WorkError::NoMediaAccess("WhatsApp refused it".into()));
        }
        Err(other) => return Ok(not_attached(other.to_string())),
    };
    // An earlier attempt may have uploaded the file and lost the answer (a
    // time-out after the CRM stored it): look before uploading again.
    let size = file.bytes.len() as u64;
    let earlier = match message.attachment_started_at {
        Some(started_at) => {
            crm.find_attachment(record, &file_name, size, started_at - CLOCK_SKEW_SECS)
                .await?
        }
        None => {
            deps.store
                .mark_attachment_started(&chat.workspace_id, &message.message_id, deps.clock.now())
                .await?;
            None
        }
    };
    let uploaded = match earlier {
        Some(attachment_id) => {
            tracing::info!(workspace_id = %chat.workspace_id, message_id = %message.message_id, "an earlier upload of this file arrived; not uploading again");
            Ok(attachment_id)
        }
        None => {
            crm.attach_file(record, &file_name, &file.mime_type, file.bytes)
                .await
        }
    };
    match uploaded {
        Ok(attachment_id) => {
            synclog::record(
                deps,
                LogEntryDraft {
                    workspace_id: &chat.workspace_id,
                    event: SyncEvent::Attached,
                    chat_key: Some(&chat.key),
                    message_id: Some(&message.message_id),
                    detail: json!({ "record": record, "attachment_id": attachment_id, "file_name": file_name, "bytes": file.file_size }),
                },
            )
            .await;
            Ok(AttachmentOutcome::Attached {
                file_name,
                attachment_id,
            })
        }
        Err(e @ CrmError::Rejected { .. }) => {
            // A record deleted meanwhile refuses files too: then the chat
            // links afresh and the file goes to the new record.
            if !crm.record_exists(record).await? {
                return Err(e.into());
            }
            Ok(not_attached(format!("the CRM refused the file: {e}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// How far the CRM's clock may be behind ours when it stamps an upload.
const CLOCK_SKEW_SECS: i64 = 300;

/// `12.3 MB`, for people.
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}
