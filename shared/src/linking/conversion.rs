//! A linked lead converted in the CRM, and a contact who renamed themselves.

use serde_json::json;

use crate::crm::{Conversion, CrmError};
use crate::error::WorkError;
use crate::model::{Chat, ChatPatch, OnConverted, RecordRef, StoredMessage};
use crate::pacing::Deferrable;
use crate::sync::{fitted_name, record_of};
use crate::synclog::SyncEvent;
use crate::whatsapp::Direction;

use super::{Linking, skip};

/// A remembered record of a convertible module (a Lead) is checked for
/// conversion at most once per `conversion_check_secs` (an hour), so the steady state
/// stays at one CRM call per message. A converted one is followed to what
/// it became (`continue`), or the chat's sync stops (`stop`). False when
/// the chat's sync stopped.
pub(super) async fn follow_conversion(
    ctx: &Linking<'_>,
    record: &RecordRef,
) -> Result<bool, WorkError> {
    let settings = ctx.settings;
    let now = ctx.deps.clock.now();
    let convertible = settings.zoho.destination_convertable
        && settings.destination_module.as_deref() == Some(record.module.as_str());
    if !convertible || now - ctx.chat.record_checked_at < ctx.deps.config.conversion_check_secs {
        return Ok(true);
    }
    // Not checked now, so still due for the next message.
    if !ctx.may_spend_on(Deferrable::ConversionCheck).await {
        return Ok(true);
    }
    let into_module = settings
        .zoho
        .converted_module
        .as_deref()
        .unwrap_or("Contacts");
    let conversion = match ctx.crm.conversion(record, into_module, None).await {
        Ok(conversion) => conversion,
        Err(e) if e.is_transient() || matches!(e, CrmError::ConnectionBroken(_)) => {
            return Err(e.into());
        }
        Err(e) => {
            // Not worth holding messages up for: checked again next time.
            tracing::warn!(workspace_id = %ctx.chat.workspace_id, chat = %ctx.chat.log_id(), error = %e, "could not check the record for conversion");
            return Ok(true);
        }
    };
    let into = match (conversion, settings.zoho.on_converted) {
        (Conversion::NotConverted, _) => {
            ctx.patch(ChatPatch {
                record_checked_at: Some(now),
                ..ChatPatch::default()
            })
            .await?;
            return Ok(true);
        }
        (Conversion::Converted { into: Some(into) }, OnConverted::Continue) => into,
        (Conversion::Converted { .. }, rule) => {
            let reason = match rule {
                OnConverted::Stop => CONVERTED_STOP.to_owned(),
                OnConverted::Continue => {
                    format!("the lead was converted without a {into_module} record to continue in")
                }
            };
            stop_chat(ctx, record, &reason).await?;
            return Ok(false);
        }
    };
    // The record it became is a person's, not ours: it is never renamed.
    ctx.patch(ChatPatch {
        record: Some(into.clone()),
        record_created_by_us: Some(false),
        record_name: Some(None),
        record_checked_at: Some(now),
        ..ChatPatch::default()
    })
    .await?;
    tracing::info!(workspace_id = %ctx.chat.workspace_id, chat = %ctx.chat.log_id(), from = %record_of(record), to = %record_of(&into), "followed a converted record");
    ctx.log(
        SyncEvent::ConvertedFollowed,
        json!({ "from": record, "to": into }),
    )
    .await;
    Ok(true)
}

const CONVERTED_STOP: &str = "the lead was converted and the settings say stop";

/// Stops the chat's sync for good (logged), skipping this message.
pub(super) async fn stop_chat(
    ctx: &Linking<'_>,
    record: &RecordRef,
    reason: &str,
) -> Result<(), WorkError> {
    ctx.patch(ChatPatch {
        sync_stopped: Some(Some(reason.to_owned())),
        record_checked_at: Some(ctx.deps.clock.now()),
        ..ChatPatch::default()
    })
    .await?;
    ctx.log(
        SyncEvent::SyncStopped,
        json!({ "record": record, "reason": reason }),
    )
    .await;
    skip(ctx.deps, ctx.retention, ctx.chat, ctx.message_id, reason).await
}

/// The contact's new WhatsApp name, if they renamed themselves and the chat's
/// record is one this product created (records people made are theirs).
pub(super) fn renamed_to(chat: &Chat, message: &StoredMessage) -> Option<String> {
    let name = message.contact_name.as_deref()?.trim();
    (chat.record_created_by_us
        && message.direction == Direction::Inbound
        && !name.is_empty()
        && chat.record_name.as_deref() != Some(name))
    .then(|| name.to_owned())
}

pub(super) async fn rename(
    ctx: &Linking<'_>,
    record: &RecordRef,
    name: &str,
) -> Result<(), WorkError> {
    let Some(name_field) = &ctx.settings.name_field else {
        return Ok(());
    };
    // The record keeps its old name meanwhile: the next message asks again.
    if !ctx.may_spend_on(Deferrable::Rename).await {
        return Ok(());
    }
    let fitted = fitted_name(ctx.settings, name);
    // Best effort: a rename never holds up the messages.
    match ctx.crm.update_field(record, name_field, &fitted).await {
        Ok(()) => {}
        Err(e) if e.is_transient() || matches!(e, CrmError::ConnectionBroken(_)) => {
            return Err(e.into());
        }
        Err(e) => {
            tracing::warn!(workspace_id = %ctx.chat.workspace_id, chat = %ctx.chat.log_id(), error = %e, "rename refused by the CRM");
            ctx.log(
                SyncEvent::RenameFailed,
                json!({ "record": record, "error": e.to_string() }),
            )
            .await;
            // Remembered as tried, so later messages do not pay for the same
            // refused rename again; a further rename is tried afresh.
            ctx.patch(ChatPatch {
                record_name: Some(Some(name.to_owned())),
                ..ChatPatch::default()
            })
            .await?;
            return Ok(());
        }
    }
    ctx.patch(ChatPatch {
        record_name: Some(Some(name.to_owned())),
        ..ChatPatch::default()
    })
    .await?;
    ctx.log(
        SyncEvent::Renamed,
        json!({ "record": record, "from": ctx.chat.record_name, "to": name }),
    )
    .await;
    Ok(())
}
