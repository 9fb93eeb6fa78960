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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CrmKind, CrmUser};
    use crate::store::{ChatStore, MessageStore};
    use crate::testing::fixture::{
        self, OTHER_PHONE_NUMBER_ID, OWNER_EMAIL, PHONE_NUMBER_ID, WORKSPACE_ID,
    };
    use crate::testing::{MemoryCrm, MemoryDeps, memory_deps};

    const NOW: i64 = 1_779_271_200;

    /// The fixture's workspace on a CRM whose users are the admin who
    /// connected it and the WhatsApp number's owner.
    fn workspace() -> MemoryDeps {
        let crm = MemoryCrm::new(CrmKind::Zoho, 32_000).with_users(vec![
            CrmUser {
                id: "crm-admin".into(),
                email: "admin@acme.example".into(),
            },
            CrmUser {
                id: "crm-owner".into(),
                email: OWNER_EMAIL.to_uppercase(),
            },
        ]);
        let memory = memory_deps(crm, NOW);
        fixture::seed_workspace(&memory.store);
        memory
    }

    /// Links the chat for its first message, as record-sync does.
    async fn link_first_message(memory: &MemoryDeps, chat: &Chat) -> Result<bool, WorkError> {
        let first = fixture::seed_messages(&memory.store, chat, NOW - 60, &["hello"]);
        let message = memory
            .store
            .message(WORKSPACE_ID, &first[0].message_id)
            .await?
            .ok_or_else(|| WorkError::Inconsistent("the message is not stored".into()))?;
        let chat = memory
            .store
            .chat(WORKSPACE_ID, &chat.key)
            .await?
            .ok_or_else(|| WorkError::Inconsistent("the chat is not stored".into()))?;
        link(&memory.deps, Retention::default(), &chat, &message).await
    }

    async fn record_of_chat(memory: &MemoryDeps, chat: &Chat) -> Option<RecordRef> {
        let stored = memory.store.chat(WORKSPACE_ID, &chat.key).await.ok()??;
        stored.record
    }

    #[tokio::test]
    async fn a_new_contact_gets_a_lead_owned_by_the_number_owner_by_email() {
        let memory = workspace();
        let chat = fixture::seed_chat(&memory.store, PHONE_NUMBER_ID);
        assert!(link_first_message(&memory, &chat).await.expect("linked"));
        let created = memory.crm.created_records();
        assert_eq!(created.len(), 1, "{:?}", memory.crm.calls());
        assert_eq!(created[0].module, "Leads");
        assert_eq!(created[0].owner_id.as_deref(), Some("crm-owner"));
        assert_eq!(created[0].fields["Mobile"], "+447700900123");
        assert_eq!(created[0].fields["Last_Name"], "Ana");
        let stored = memory
            .store
            .chat(WORKSPACE_ID, &chat.key)
            .await
            .expect("read")
            .expect("stored");
        assert!(stored.record.is_some() && stored.record_created_by_us);
    }

    #[tokio::test]
    async fn a_number_a_record_already_holds_links_to_it_however_it_is_written() {
        let memory = workspace();
        let theirs = memory.crm.seed_record("Leads", &["0044 7700 900123"]);
        let chat = fixture::seed_chat(&memory.store, PHONE_NUMBER_ID);
        assert!(link_first_message(&memory, &chat).await.expect("linked"));
        assert!(memory.crm.created_records().is_empty());
        assert_eq!(record_of_chat(&memory, &chat).await, Some(theirs));
    }

    #[tokio::test]
    async fn a_linked_chat_costs_no_crm_call() {
        let memory = workspace();
        let chat = fixture::seed_chat(&memory.store, PHONE_NUMBER_ID);
        link_first_message(&memory, &chat).await.expect("linked");
        let calls = memory.crm.calls().len();
        link_first_message(&memory, &chat).await.expect("linked");
        assert_eq!(memory.crm.calls().len(), calls, "{:?}", memory.crm.calls());
    }

    #[tokio::test]
    async fn the_contacts_chat_with_another_business_number_gets_the_same_record() {
        let memory = workspace();
        let first = fixture::seed_chat(&memory.store, PHONE_NUMBER_ID);
        let second = fixture::seed_chat(&memory.store, OTHER_PHONE_NUMBER_ID);
        link_first_message(&memory, &first).await.expect("linked");
        // The CRM's search would find it only after its index delay: the
        // second chat must not search and make another.
        link_first_message(&memory, &second).await.expect("linked");
        assert_eq!(memory.crm.created_records().len(), 1);
        assert_eq!(
            record_of_chat(&memory, &first).await,
            record_of_chat(&memory, &second).await
        );
    }

    #[tokio::test]
    async fn a_create_whose_answer_was_lost_is_found_on_the_retry_not_made_twice() {
        let memory = workspace();
        let chat = fixture::seed_chat(&memory.store, PHONE_NUMBER_ID);
        memory.crm.lose_next_answers(1);
        let error = link_first_message(&memory, &chat)
            .await
            .expect_err("the answer was lost");
        assert!(error.is_transient(), "{error:?}");
        assert_eq!(record_of_chat(&memory, &chat).await, None);
        link_first_message(&memory, &chat).await.expect("linked");
        assert_eq!(
            memory.crm.created_records().len(),
            1,
            "{:?}",
            memory.crm.calls()
        );
        assert!(record_of_chat(&memory, &chat).await.is_some());
    }
}
