//! The lead or deal made beside a new record, and its conversion.

use serde_json::json;

use crate::crm::{Conversion, CrmError, FollowUpKind, NewFollowUp};
use crate::error::WorkError;
use crate::model::{ChatPatch, FollowUpRule, RecordRef};
use crate::pacing::Deferrable;
use crate::sync::{record_name, record_of};
use crate::synclog::SyncEvent;

use super::Linking;

/// Makes the lead or deal the settings ask for beside a record this
/// product created, once per chat: an attempt whose answer was lost is
/// found by its title instead of made twice. A refusal (a pipeline deleted
/// since activation) is logged and the messages go on without one.
pub(super) async fn ensure_follow_up(
    ctx: &Linking<'_>,
    person: &RecordRef,
) -> Result<(), WorkError> {
    let chat = ctx.chat;
    let (kind, template) = match &ctx.settings.pipedrive.follow_up {
        FollowUpRule::None => return Ok(()),
        FollowUpRule::Lead {
            title_template,
            label_id,
        } => (
            FollowUpKind::Lead {
                label_id: label_id.clone(),
            },
            title_template,
        ),
        FollowUpRule::Deal {
            title_template,
            pipeline_id,
            stage_id,
        } => (
            FollowUpKind::Deal {
                pipeline_id: pipeline_id.clone(),
                stage_id: stage_id.clone(),
            },
            title_template,
        ),
    };
    if !chat.record_created_by_us || chat.follow_up.is_some() {
        return Ok(());
    }
    let name = chat
        .record_name
        .clone()
        .unwrap_or_else(|| record_name(chat.contact_name.as_deref(), &chat.contact));
    let title = follow_up_title(template, &name, &chat.contact);
    if chat.follow_up_started {
        if let Some(found) = ctx.crm.find_follow_up(person, &title).await? {
            ctx.patch(ChatPatch {
                follow_up: Some(Some(found.clone())),
                follow_up_checked_at: Some(ctx.deps.clock.now()),
                ..ChatPatch::default()
            })
            .await?;
            ctx.log(
                SyncEvent::FollowUpCreated,
                json!({ "record": found, "person": person, "found_after": "an interrupted create whose answer was lost" }),
            )
            .await;
            return Ok(());
        }
    } else {
        ctx.patch(ChatPatch {
            follow_up_started: Some(true),
            ..ChatPatch::default()
        })
        .await?;
    }
    let (owner_id, owner_reason) = ctx.owner().await?;
    let created = ctx
        .crm
        .create_follow_up(&NewFollowUp {
            kind,
            title,
            person: person.clone(),
            owner_id: Some(owner_id.clone()),
        })
        .await;
    match created {
        Ok(follow_up) => {
            ctx.patch(ChatPatch {
                follow_up: Some(Some(follow_up.clone())),
                follow_up_checked_at: Some(ctx.deps.clock.now()),
                ..ChatPatch::default()
            })
            .await?;
            tracing::info!(workspace_id = %chat.workspace_id, chat = %chat.log_id(), follow_up = %record_of(&follow_up), "created the chat's lead or deal");
            ctx.log(
                SyncEvent::FollowUpCreated,
                json!({ "record": follow_up, "person": person, "owner_id": owner_id, "owner_reason": owner_reason }),
            )
            .await;
            Ok(())
        }
        Err(e @ (CrmError::Rejected { .. } | CrmError::Duplicate { .. })) => {
            // Nothing was made: the next message tries again.
            ctx.patch(ChatPatch {
                follow_up_started: Some(false),
                ..ChatPatch::default()
            })
            .await?;
            tracing::warn!(workspace_id = %chat.workspace_id, chat = %chat.log_id(), error = %e, "the CRM refused the chat's lead or deal");
            ctx.log(
                SyncEvent::FollowUpRefused,
                json!({ "person": person, "error": e.to_string() }),
            )
            .await;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// `{name}` and `{number}` of a title template filled in.
fn follow_up_title(template: &str, name: &str, number: &crate::phone::E164) -> String {
    template
        .replace("{name}", name)
        .replace("{number}", number.as_str())
}

/// A lead this product made is checked for conversion at most once per
/// `conversion_check_secs`: converted, the chat follows it to its deal
/// (Pipedrive moves the lead's notes there; new notes go there too); gone
/// without a deal, it is forgotten.
pub(super) async fn follow_follow_up(
    ctx: &Linking<'_>,
    person: &RecordRef,
) -> Result<(), WorkError> {
    let Some(follow_up) = &ctx.chat.follow_up else {
        return Ok(());
    };
    let now = ctx.deps.clock.now();
    if follow_up.module != "leads"
        || now - ctx.chat.follow_up_checked_at < ctx.deps.config.conversion_check_secs
        || !ctx.may_spend_on(Deferrable::ConversionCheck).await
    {
        return Ok(());
    }
    let conversion = match ctx.crm.conversion(follow_up, "deals", Some(person)).await {
        Ok(conversion) => conversion,
        Err(e) if e.is_transient() || matches!(e, CrmError::ConnectionBroken(_)) => {
            return Err(e.into());
        }
        Err(e) => {
            tracing::warn!(workspace_id = %ctx.chat.workspace_id, chat = %ctx.chat.log_id(), error = %e, "could not check the lead for conversion");
            return Ok(());
        }
    };
    let became = match conversion {
        Conversion::NotConverted => {
            return ctx
                .patch(ChatPatch {
                    follow_up_checked_at: Some(now),
                    ..ChatPatch::default()
                })
                .await;
        }
        Conversion::Converted { into } => into,
    };
    ctx.patch(ChatPatch {
        follow_up: Some(became.clone()),
        follow_up_checked_at: Some(now),
        ..ChatPatch::default()
    })
    .await?;
    ctx.log(
        SyncEvent::ConvertedFollowed,
        json!({ "from": follow_up, "to": became }),
    )
    .await;
    Ok(())
}
