//! The sync log: every decision the sync takes, as the workspace reads it.
//! Entries never hold tokens or message text, but may name contacts and
//! files: they expire after the workspace's retention (`crate::retention`).

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::deps::Deps;
use crate::store::{LogEntry, Store};

/// What a sync-log entry says happened. Stored and answered as its
/// snake_case name (`LogEntry::event`); infra/openapi.yaml lists the same
/// names (the e2e `openapi` test holds them in step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncEvent {
    // A message's way.
    /// The webhook or record-sync left a message out (a reason says why).
    Skipped,
    /// A message waits: no settings, connection or sender number yet.
    Parked,
    /// A failed attempt; the queue tries again.
    Retrying,
    /// The last attempt the queue allows failed.
    DeadLettered,
    /// A person sent a dead-lettered message back to the queue.
    Replayed,
    /// Lines were added to a record's day note.
    Appended,
    /// A message's media was attached to the record.
    Attached,
    /// The chat's record is gone from the CRM: the chat is linked anew.
    RecordGone,
    // A chat's record.
    /// An existing record was linked to the chat.
    Matched,
    /// A record was made for the chat.
    Created,
    /// The chat's record was renamed to the contact's WhatsApp name.
    Renamed,
    RenameFailed,
    /// A lead converted: the chat follows the record it became.
    ConvertedFollowed,
    /// A follow-up record was made for a chat whose record was closed.
    FollowUpCreated,
    FollowUpRefused,
    /// The chat's record cannot be synced to any more.
    SyncStopped,
    /// A person chose the chat's record.
    RecordChosen,
    /// A person set the chat's responsible user.
    ResponsibleSet,
    // The workspace.
    OrganizationConnected,
    OrganizationDisconnected,
    /// The CRM refused the connection's tokens: someone must reconnect.
    ConnectionBroken,
    CrmAppUninstalled,
    SettingsActivated,
    SettingsDeactivated,
    RetentionSet,
    ApiPlanSet,
    /// The daily API budget is forecast to run out: non-urgent work waits.
    BudgetConserving,
    /// The CRM's daily API budget is spent: the sync waits for it.
    BudgetSpent,
}

impl SyncEvent {
    pub const ALL: [Self; 28] = [
        Self::Skipped,
        Self::Parked,
        Self::Retrying,
        Self::DeadLettered,
        Self::Replayed,
        Self::Appended,
        Self::Attached,
        Self::RecordGone,
        Self::Matched,
        Self::Created,
        Self::Renamed,
        Self::RenameFailed,
        Self::ConvertedFollowed,
        Self::FollowUpCreated,
        Self::FollowUpRefused,
        Self::SyncStopped,
        Self::RecordChosen,
        Self::ResponsibleSet,
        Self::OrganizationConnected,
        Self::OrganizationDisconnected,
        Self::ConnectionBroken,
        Self::CrmAppUninstalled,
        Self::SettingsActivated,
        Self::SettingsDeactivated,
        Self::RetentionSet,
        Self::ApiPlanSet,
        Self::BudgetConserving,
        Self::BudgetSpent,
    ];

    /// The name stored and answered (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skipped => "skipped",
            Self::Parked => "parked",
            Self::Retrying => "retrying",
            Self::DeadLettered => "dead_lettered",
            Self::Replayed => "replayed",
            Self::Appended => "appended",
            Self::Attached => "attached",
            Self::RecordGone => "record_gone",
            Self::Matched => "matched",
            Self::Created => "created",
            Self::Renamed => "renamed",
            Self::RenameFailed => "rename_failed",
            Self::ConvertedFollowed => "converted_followed",
            Self::FollowUpCreated => "follow_up_created",
            Self::FollowUpRefused => "follow_up_refused",
            Self::SyncStopped => "sync_stopped",
            Self::RecordChosen => "record_chosen",
            Self::ResponsibleSet => "responsible_set",
            Self::OrganizationConnected => "organization_connected",
            Self::OrganizationDisconnected => "organization_disconnected",
            Self::ConnectionBroken => "connection_broken",
            Self::CrmAppUninstalled => "crm_app_uninstalled",
            Self::SettingsActivated => "settings_activated",
            Self::SettingsDeactivated => "settings_deactivated",
            Self::RetentionSet => "retention_set",
            Self::ApiPlanSet => "api_plan_set",
            Self::BudgetConserving => "budget_conserving",
            Self::BudgetSpent => "budget_spent",
        }
    }
}

impl std::fmt::Display for SyncEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sync-log entry to write: what happened, in which workspace, and to
/// which chat and message if any.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntryDraft<'a> {
    pub workspace_id: &'a str,
    pub event: SyncEvent,
    pub chat_key: Option<&'a str>,
    pub message_id: Option<&'a str>,
    pub detail: Value,
}

impl<'a> LogEntryDraft<'a> {
    /// An entry about the workspace as a whole (settings, connections).
    pub fn workspace(workspace_id: &'a str, event: SyncEvent, detail: Value) -> Self {
        Self {
            workspace_id,
            event,
            chat_key: None,
            message_id: None,
            detail,
        }
    }

    /// The entry as stored, at `now` (unix seconds) and `at_us` (unix
    /// microseconds, for its id), with the id's random `suffix`.
    fn entry(self, now: i64, at_us: i64, suffix: [u8; 4]) -> LogEntry {
        LogEntry {
            // Microseconds, so that entries one worker writes in a row keep
            // their order (milliseconds tied, and the random suffix then
            // shuffled them). The first 15 digits are the millisecond ids
            // older entries carry, so both sort together.
            id: format!("{at_us:018}-{}", hex::encode(suffix)),
            workspace_id: self.workspace_id.to_owned(),
            at: now,
            event: self.event.as_str().to_owned(),
            chat_key: self.chat_key.map(str::to_owned),
            message_id: self.message_id.map(str::to_owned),
            detail: self.detail,
        }
    }
}

/// Writes one entry at `now`, which expires after the workspace's
/// retention; nothing for a workspace being deleted (or gone). A failure to
/// log never fails the sync: it is reported in the function's own logs
/// instead.
pub async fn write(store: &dyn Store, now: i64, draft: LogEntryDraft<'_>) {
    let mut suffix = [0u8; 4];
    rand::rng().fill_bytes(&mut suffix);
    let at_us = chrono::Utc::now().timestamp_micros();
    let event = draft.event.as_str();
    let entry = draft.entry(now, at_us, suffix);
    let workspace_id = entry.workspace_id.as_str();
    let written = match store.workspace(workspace_id).await {
        Ok(Some(workspace)) if workspace.accepts_work() => {
            store
                .append_log(&entry, workspace.retention.counted_from(now).expires_at)
                .await
        }
        Ok(_) => {
            tracing::info!(
                workspace_id,
                event,
                "not logged: the workspace is deleted or being deleted"
            );
            Ok(())
        }
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::warn!(workspace_id, event, error = %e, "could not write the sync log");
    }
}

/// Writes one entry now (as `write`).
pub async fn record(deps: &Deps, draft: LogEntryDraft<'_>) {
    write(deps.store.as_ref(), deps.clock.now(), draft).await;
}

/// An entry about the workspace as a whole (settings, connections), now.
pub async fn workspace_event(deps: &Deps, workspace_id: &str, event: SyncEvent, detail: Value) {
    record(deps, LogEntryDraft::workspace(workspace_id, event, detail)).await;
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn events_are_stored_by_their_snake_case_names() {
        let names: HashSet<&str> = SyncEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(names.len(), SyncEvent::ALL.len(), "one name each");
        for event in SyncEvent::ALL {
            let json = serde_json::to_value(event).expect("serializes");
            assert_eq!(json, Value::from(event.as_str()));
            let back: SyncEvent = serde_json::from_value(json).expect("deserializes");
            assert_eq!(back, event);
        }
        // Names as entries already stored hold them.
        assert_eq!(SyncEvent::DeadLettered.as_str(), "dead_lettered");
        assert_eq!(SyncEvent::ApiPlanSet.as_str(), "api_plan_set");
        assert_eq!(
            SyncEvent::CrmAppUninstalled.to_string(),
            "crm_app_uninstalled"
        );
    }

    #[test]
    fn a_draft_becomes_the_stored_entry() {
        let draft = LogEntryDraft {
            workspace_id: "ws-1",
            event: SyncEvent::Skipped,
            chat_key: Some("pn-1#447700900123"),
            message_id: Some("wamid.A"),
            detail: serde_json::json!({ "reason": "group" }),
        };
        let entry = draft.entry(
            1_796_256_000,
            1_796_256_000_123_456,
            [0xab, 0xcd, 0x01, 0x02],
        );
        assert_eq!(
            entry,
            LogEntry {
                id: "001796256000123456-abcd0102".into(),
                workspace_id: "ws-1".into(),
                at: 1_796_256_000,
                event: "skipped".into(),
                chat_key: Some("pn-1#447700900123".into()),
                message_id: Some("wamid.A".into()),
                detail: serde_json::json!({ "reason": "group" }),
            }
        );
        let whole = LogEntryDraft::workspace("ws-1", SyncEvent::RetentionSet, Value::Null)
            .entry(5, 5_000_000, [0; 4]);
        assert_eq!((whole.chat_key, whole.message_id), (None, None));
        assert_eq!(whole.event, "retention_set");
    }
}
