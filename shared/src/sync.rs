//! What linking ([`crate::linking`]) and day notes ([`crate::day_notes`])
//! share: the workspace's sync target (its connection, a CRM client on it
//! and the active settings), parking a message and waiting for a spent
//! budget, and what a chat and a new record are called.

use std::sync::Arc;

use crate::crm::{Crm, CrmError};
use crate::deps::Deps;
use crate::error::WorkError;
use crate::model::{
    Connection, ConnectionKind, ConnectionStatus, CrmKind, MessageState, RecordRef, SyncSettings,
};
use crate::phone::E164;
use crate::synclog::{LogEntryDraft, SyncEvent};
use crate::tokens::ConnectionTokens;

/// The organization connection and a CRM client on it, if the workspace has one.
pub async fn organization_crm(
    deps: &Deps,
    workspace_id: &str,
    crm: CrmKind,
) -> Result<Option<(Connection, Arc<dyn Crm>)>, WorkError> {
    let Some(connection) = deps
        .store
        .connection(workspace_id, crm, ConnectionKind::Organization, None)
        .await?
    else {
        return Ok(None);
    };
    let api = connection_crm(deps, &connection).await?;
    Ok(Some((connection, api)))
}

/// A CRM client calling with `connection`'s tokens (refreshed as needed),
/// counting its calls against the workspace's use of that CRM.
pub async fn connection_crm(
    deps: &Deps,
    connection: &Connection,
) -> Result<Arc<dyn Crm>, WorkError> {
    let crm = connection.crm;
    let workspace_id = connection.workspace_id.as_str();
    if connection.status == ConnectionStatus::Broken {
        return Err(WorkError::Crm(CrmError::ConnectionBroken(
            match connection.kind {
                ConnectionKind::Organization => "the organization must reconnect",
                ConnectionKind::Personal => "reconnect your own CRM connection",
            }
            .into(),
        )));
    }
    let keys = deps.secrets.keys().await?;
    let oauth = deps.crms.oauth(crm).await?;
    let tokens = ConnectionTokens::new(
        deps.store.clone(),
        keys.token_cipher(),
        oauth,
        deps.clock.clone(),
        connection.clone(),
    );
    // A CRM that cannot be synced to has no active settings either: the
    // messages wait as for any inactive settings.
    let api = deps
        .crms
        .api(
            crm,
            &connection.api_domain,
            Arc::new(tokens),
            Arc::new(crate::usage::StoredUsage::new(
                deps.store.clone(),
                deps.clock.clone(),
                workspace_id,
                crm,
            )),
        )
        .ok_or(WorkError::NotActive)?;
    Ok(api)
}

/// The CRM the workspace syncs to: the one whose settings are active (a
/// workspace syncs to one CRM at a time). Without any: not connected when
/// no CRM has an organization connection — the first thing to do —, else
/// not active.
pub async fn sync_crm(deps: &Deps, workspace_id: &str) -> Result<CrmKind, WorkError> {
    for crm in CrmKind::ALL {
        if deps
            .store
            .sync_settings(workspace_id, crm)
            .await?
            .is_some_and(|s| s.active)
        {
            return Ok(crm);
        }
    }
    for crm in CrmKind::ALL {
        if deps
            .store
            .connection(workspace_id, crm, ConnectionKind::Organization, None)
            .await?
            .is_some()
        {
            return Err(WorkError::NotActive);
        }
    }
    Err(WorkError::NotConnected)
}

/// The organization connection and client of the CRM the workspace syncs
/// to, and that CRM's active settings.
pub async fn sync_target(
    deps: &Deps,
    workspace_id: &str,
) -> Result<(Connection, Arc<dyn Crm>, SyncSettings), WorkError> {
    let crm = sync_crm(deps, workspace_id).await?;
    // The connection first: without one, that is the reason to give.
    let (connection, client) = organization_crm(deps, workspace_id, crm)
        .await?
        .ok_or(WorkError::NotConnected)?;
    let settings = active_settings(deps, workspace_id, crm).await?;
    Ok((connection, client, settings))
}

/// Keeps a message that cannot sync now (no connection yet, a broken one,
/// settings not active) in the `waiting` state; connecting or activating
/// queues it again. If the cause went away while parking, the message is
/// retried instead, so it cannot be missed by the re-queueing.
pub async fn park(
    deps: &Deps,
    workspace_id: &str,
    message_id: &str,
    reason: &str,
) -> Result<(), WorkError> {
    // Logged first: once the state says waiting, the log says why.
    crate::synclog::record(
        deps,
        LogEntryDraft {
            workspace_id,
            event: SyncEvent::Parked,
            chat_key: None,
            message_id: Some(message_id),
            detail: serde_json::json!({ "reason": reason }),
        },
    )
    .await;
    deps.store
        .set_message_state(
            workspace_id,
            message_id,
            &MessageState::Waiting {
                reason: reason.to_owned(),
            },
            None,
        )
        .await?;
    tracing::info!(workspace_id, message_id, reason, "message parked");
    // Whatever would have re-queued the message (activation, connecting)
    // may have happened while it was being parked: then it is retried now.
    let cause_gone = if reason == NO_MEDIA_ACCESS {
        // Note-append compares the number's token itself: only it knows
        // which token the fetch was refused with.
        false
    } else {
        match sync_crm(deps, workspace_id).await {
            // Active settings now: gone, unless the connection is the cause.
            Ok(crm) => {
                reason == NOT_ACTIVE
                    || deps
                        .store
                        .connection(workspace_id, crm, ConnectionKind::Organization, None)
                        .await?
                        .is_some_and(|c| c.status == ConnectionStatus::Active)
            }
            // Connected now, though nothing is active yet.
            Err(WorkError::NotActive) => reason == NO_CONNECTION,
            Err(WorkError::NotConnected) => false,
            Err(other) => return Err(other),
        }
    };
    if cause_gone {
        return Err(WorkError::Contended(
            "the cause went away while the message was parked".into(),
        ));
    }
    Ok(())
}

/// Keeps messages waiting while the CRM's daily API budget is spent,
/// instead of failing them again and again into the dead-letter queue: the
/// sync log says so once per wait, with when it ends, and one re-queue is
/// scheduled for then (tried again then if the budget is still spent).
pub async fn wait_for_budget(
    deps: &Deps,
    workspace_id: &str,
    crm: CrmKind,
    resets_at: i64,
    message_ids: &[&str],
) -> Result<(), WorkError> {
    let now = deps.clock.now();
    let until = resets_at.clamp(now + 1, now + deps.config.budget_wait_max_secs);
    let reason = budget_reason(crm, until);
    if deps
        .store
        .mark_budget_wait(workspace_id, crm, until)
        .await?
    {
        crate::synclog::workspace_event(
            deps,
            workspace_id,
            SyncEvent::BudgetSpent,
            serde_json::json!({ "crm": crm.as_str(), "until": until, "reason": reason }),
        )
        .await;
        tracing::warn!(
            workspace_id,
            crm = crm.as_str(),
            until,
            "the CRM's daily API budget is spent; sync waits"
        );
        crate::requeue::request_at(deps, workspace_id, Some(until)).await?;
    }
    for message_id in message_ids {
        deps.store
            .set_message_state(
                workspace_id,
                message_id,
                &MessageState::Waiting {
                    reason: reason.clone(),
                },
                None,
            )
            .await?;
    }
    Ok(())
}

/// Why a message waits for a CRM's API budget, saying until when.
pub fn budget_reason(crm: CrmKind, until: i64) -> String {
    let at = chrono::DateTime::from_timestamp(until, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    format!(
        "{}'s daily API budget is spent; sync goes on at {at}",
        crm.display_name()
    )
}

/// The waiting reason for a failure that parks a message (no connection, or
/// a broken one), if the failure is of that kind.
pub fn parking_reason(error: &WorkError) -> Option<&'static str> {
    match error {
        WorkError::NotConnected => Some(NO_CONNECTION),
        WorkError::NotActive => Some(NOT_ACTIVE),
        WorkError::NoMediaAccess(_) => Some(NO_MEDIA_ACCESS),
        WorkError::Crm(CrmError::ConnectionBroken(_)) => Some(BROKEN_CONNECTION),
        _ => None,
    }
}

pub const NO_CONNECTION: &str = "no CRM connection";
pub const NOT_ACTIVE: &str = "sync settings are not active; activate them";
pub const NO_MEDIA_ACCESS: &str =
    "the WhatsApp number has no usable access token for media; register it again with one";
pub const BROKEN_CONNECTION: &str = "the CRM connection is broken; reconnect it";

/// The workspace's active sync settings for `crm`; nothing syncs without.
pub async fn active_settings(
    deps: &Deps,
    workspace_id: &str,
    crm: CrmKind,
) -> Result<SyncSettings, WorkError> {
    match deps.store.sync_settings(workspace_id, crm).await? {
        Some(settings) if settings.active => Ok(settings),
        _ => Err(WorkError::NotActive),
    }
}

/// The values a new record gets, by field API name, from the settings.
pub fn record_fields(
    settings: &SyncSettings,
    name: &str,
    number: &E164,
    link: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let mut fields = serde_json::Map::new();
    if let Some(field) = &settings.name_field {
        fields.insert(field.clone(), fitted_name(settings, name).into());
    }
    if let Some(field) = &settings.number_field {
        fields.insert(field.clone(), number.as_str().into());
    }
    if let Some(field) = &settings.chat_link_field {
        fields.insert(field.clone(), link.into());
    }
    if let Some(field) = &settings.zoho.lead_source_field {
        fields.insert(
            field.clone(),
            settings.zoho.lead_source_value.clone().into(),
        );
    }
    fields
}

/// A name cut to what the name field holds.
pub fn fitted_name(settings: &SyncSettings, name: &str) -> String {
    let max = settings.name_max_length.unwrap_or(80) as usize;
    name.chars().take(max).collect()
}

/// A value that makes a deliberate re-send distinct for FIFO deduplication
/// (which drops equal ids for 5 minutes), however often it happens.
pub fn resend_marker() -> i64 {
    i64::from(rand::random::<u32>()) + 1
}

pub fn chat_link(contact: &E164) -> String {
    format!("https://wa.me/{}", contact.digits())
}

pub fn record_name(contact_name: Option<&str>, contact: &E164) -> String {
    match contact_name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None => format!("New WhatsApp contact: {contact}"),
    }
}

/// The business number as notes show it: E.164 (`+447700900100`) however
/// it was registered, so a number stored as typed before registration
/// normalised it (`+44 7700 900100`) is shown right too; one that does not
/// read as a number is shown as stored.
pub fn business_number_display(registered: &str) -> String {
    E164::parse_business_number(registered)
        .map(|number| number.to_string())
        .unwrap_or_else(|_| registered.trim().to_owned())
}

/// A CRM failure as a worker error.
pub fn crm_failure(e: CrmError) -> WorkError {
    WorkError::Crm(e)
}

pub fn record_of(record: &RecordRef) -> String {
    format!("{}/{}", record.module, record.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::day_notes::{note_header, note_title};

    #[test]
    fn the_business_number_shows_once_in_e164_however_it_was_registered() {
        for registered in ["447700900100", "+447700900100", "+44 7700 900100"] {
            let shown = business_number_display(registered);
            assert_eq!(
                note_header("https://wa.me/447700900123", &shown),
                "WhatsApp chat: https://wa.me/447700900123 (with +447700900100)",
                "{registered}"
            );
        }
        assert_eq!(business_number_display(" not a number "), "not a number");
    }

    #[test]
    fn names_fall_back_to_the_number() {
        let number = E164::from_wa_id("447700900123").expect("valid");
        assert_eq!(record_name(Some("Alice"), &number), "Alice");
        assert_eq!(
            record_name(Some("  "), &number),
            "New WhatsApp contact: +447700900123"
        );
        assert_eq!(
            note_title("Alice", "20/05/2026"),
            "WhatsApp Chat with Alice (20/05/2026)"
        );
    }
}
