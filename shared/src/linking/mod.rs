//! Linking a chat to its CRM record, the rule record-sync runs for each
//! message: the remembered record (followed through a conversion, renamed
//! with the contact), else one found by the contact's number, else a new
//! one with the right owner, and the lead or deal the settings ask for
//! beside it.

mod conversion;
mod follow_up;
mod record;

use conversion::{follow_conversion, rename, renamed_to};
use follow_up::{ensure_follow_up, follow_follow_up};
use record::{choose_owner, crm_users, link_record, owner_candidates};

use serde_json::json;

use crate::crm::Crm;
use crate::deps::Deps;
use crate::error::WorkError;
use crate::model::{
    Chat, ChatPatch, Connection, FollowUpRule, MessageState, RecordRef, StoredMessage, SyncSettings,
};
use crate::pacing::{self, Deferrable};
use crate::retention::Retention;
use crate::sync::{record_of, sync_target};
use crate::synclog::{self, LogEntryDraft, SyncEvent};

/// How long a worker may take to create a record before another may try.
const CREATION_CLAIM_SECS: i64 = 120;
/// How long a contact's other chats link to the record made for it rather
/// than search: longer than Zoho's search-index delay (seconds to a few
/// minutes), short enough that a record deleted since is searched for again.
const CONTACT_RECORD_WINDOW_SECS: i64 = 600;

/// Makes sure the chat has a live record; false when the chat's sync
/// stopped on the way (a converted lead with `stop`).
pub async fn link(
    deps: &Deps,
    retention: Retention,
    chat: &Chat,
    message: &StoredMessage,
) -> Result<bool, WorkError> {
    let (connection, crm, settings) = sync_target(deps, &chat.workspace_id).await?;
    let mut chat = chat.clone();
    if let Some(other) = chat.record.clone().filter(|r| r.crm != connection.crm) {
        // The workspace syncs to another CRM now: the chat is linked there
        // afresh, and the old CRM's record is left as it is.
        deps.store
            .patch_chat(
                &chat.workspace_id,
                &chat.key,
                &ChatPatch {
                    forget_record: Some(other),
                    ..ChatPatch::default()
                },
            )
            .await?;
        chat.record = None;
        chat.follow_up = None;
        chat.follow_up_started = false;
        chat.record_created_by_us = false;
        chat.creating_by = None;
    }
    let chat = &chat;
    let Some(record) = &chat.record else {
        // A new record is named as the contact was called in this message,
        // not by whatever name a later delivery has already stored.
        let mut chat = chat.clone();
        if let Some(name) = &message.contact_name {
            chat.contact_name = Some(name.clone());
        }
        let ctx = Linking {
            deps,
            chat: &chat,
            settings: &settings,
            connection: &connection,
            crm: crm.as_ref(),
            message_id: &message.message_id,
            retention,
        };
        let Some(record) = link_record(&ctx).await? else {
            return Ok(false);
        };
        // Without a lead or deal to make, nothing more (and no read).
        if settings.pipedrive.follow_up == FollowUpRule::None {
            return Ok(true);
        }
        // What linking just stored (was the record made by us?) decides
        // whether a lead or deal follows.
        let linked = deps
            .store
            .chat(&chat.workspace_id, &chat.key)
            .await?
            .ok_or_else(|| WorkError::Inconsistent("the chat is gone".into()))?;
        let ctx = Linking {
            chat: &linked,
            ..ctx
        };
        ensure_follow_up(&ctx, &record).await?;
        return Ok(true);
    };
    let ctx = Linking {
        deps,
        chat,
        settings: &settings,
        connection: &connection,
        crm: crm.as_ref(),
        message_id: &message.message_id,
        retention,
    };
    if !follow_conversion(&ctx, record).await? {
        return Ok(false);
    }
    ensure_follow_up(&ctx, record).await?;
    follow_follow_up(&ctx, record).await?;
    if let Some(new_name) = renamed_to(chat, message) {
        rename(&ctx, record, &new_name).await?;
    }
    Ok(true)
}

/// What linking one message's chat works with.
struct Linking<'a> {
    deps: &'a Deps,
    chat: &'a Chat,
    settings: &'a SyncSettings,
    connection: &'a Connection,
    crm: &'a dyn Crm,
    message_id: &'a str,
    /// The workspace's: a message skipped expires after it.
    retention: Retention,
}

impl Linking<'_> {
    /// Whether the CRM's API budget allows `work`, which can wait.
    async fn may_spend_on(&self, work: Deferrable) -> bool {
        pacing::may_spend_on(self.deps, &self.chat.workspace_id, self.settings.crm, work).await
    }

    async fn log(&self, event: SyncEvent, detail: serde_json::Value) {
        synclog::record(
            self.deps,
            LogEntryDraft {
                workspace_id: &self.chat.workspace_id,
                event,
                chat_key: Some(&self.chat.key),
                message_id: Some(self.message_id),
                detail,
            },
        )
        .await;
    }

    /// The CRM user to own a record made for this chat, and why.
    async fn owner(&self) -> Result<(String, &'static str), WorkError> {
        let chat = self.chat;
        let users = crm_users(self.deps, self.crm, &chat.workspace_id, self.connection.crm).await?;
        let candidates = owner_candidates(self.deps, chat).await?;
        Ok(choose_owner(&users, &candidates, self.connection))
    }

    /// Links the chat to an existing record: the first of `candidates`
    /// (most recently modified first); several are kept for a person to
    /// settle. `by` says how it was found.
    /// The contact's other chats link to `record`, made by this product,
    /// rather than create one while the CRM's search cannot see it yet.
    async fn remember_for_contact(&self, record: &RecordRef) -> Result<(), WorkError> {
        self.deps
            .store
            .set_contact_record(
                &self.chat.workspace_id,
                &self.chat.contact,
                record,
                self.deps.clock.now() + CONTACT_RECORD_WINDOW_SECS,
            )
            .await?;
        Ok(())
    }

    async fn link_found(&self, candidates: &[RecordRef], by: &str) -> Result<RecordRef, WorkError> {
        let chat = self.chat;
        let best = candidates
            .first()
            .cloned()
            .ok_or_else(|| WorkError::Inconsistent("no record to link".into()))?;
        let ambiguous = candidates.len() > 1;
        if ambiguous {
            tracing::warn!(
                workspace_id = %chat.workspace_id,
                chat = %chat.log_id(),
                candidates = candidates.len(),
                chosen = %record_of(&best),
                "several records hold this number; chose the most recently modified"
            );
        }
        self.patch(ChatPatch {
            record: Some(best.clone()),
            record_created_by_us: Some(false),
            ambiguous_candidates: Some(if ambiguous {
                candidates.to_vec()
            } else {
                Vec::new()
            }),
            record_checked_at: Some(self.deps.clock.now()),
            ..ChatPatch::default()
        })
        .await?;
        tracing::info!(
            workspace_id = %chat.workspace_id,
            chat = %chat.log_id(),
            record = %record_of(&best),
            "linked an existing record"
        );
        let candidate_names: Vec<String> = candidates.iter().map(record_of).collect();
        self.log(
            SyncEvent::Matched,
            json!({
                "record": best,
                "by": by,
                "candidates": candidate_names,
                "rule": if ambiguous { Some("most recently modified") } else { None },
            }),
        )
        .await;
        Ok(best)
    }

    async fn patch(&self, patch: ChatPatch) -> Result<(), WorkError> {
        self.deps
            .store
            .patch_chat(&self.chat.workspace_id, &self.chat.key, &patch)
            .await?;
        Ok(())
    }
}

/// Marks a message not synced on purpose (it expires after the workspace's
/// retention), and logs why.
pub async fn skip(
    deps: &Deps,
    retention: Retention,
    chat: &Chat,
    message_id: &str,
    reason: &str,
) -> Result<(), WorkError> {
    // Logged first: once the state says skipped, the log says why.
    synclog::record(
        deps,
        LogEntryDraft {
            workspace_id: &chat.workspace_id,
            event: SyncEvent::Skipped,
            chat_key: Some(&chat.key),
            message_id: Some(message_id),
            detail: json!({ "reason": reason }),
        },
    )
    .await;
    deps.store
        .finish_message(
            &chat.workspace_id,
            message_id,
            &MessageState::Skipped {
                reason: reason.to_owned(),
            },
            retention.counted_from(deps.clock.now()),
        )
        .await?;
    Ok(())
}
