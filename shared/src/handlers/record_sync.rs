//! The `record-sync` worker: makes sure a chat is linked to a CRM record —
//! the remembered one, else one found by the contact's number, else a new
//! one with the right owner — then passes the message on to note-append.

use std::time::SystemTime;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

use super::batch::{GroupOutcome, Received, RetryPolicy, record_failures, run_fifo_batch};
use crate::crm::{Conversion, Crm, CrmError, FollowUpKind, NewFollowUp, NewRecord};
use crate::deletion::{self, PageOutcome};
use crate::deps::Deps;
use crate::error::WorkError;
use crate::model::{
    Chat, ChatPatch, Connection, FollowUpRule, MessageState, OnConverted, RecordRef, StoredMessage,
    SyncSettings, Workspace,
};
use crate::pacing::{self, Deferrable};
use crate::queue::{Job, QueueName};
use crate::requeue;
use crate::retention::{self, Retention};
use crate::store::ContactClaim;
use crate::sync::{
    chat_link, choose_owner, confirmed_matches, crm_users, fitted_name, park, parking_reason,
    record_fields, record_name, record_of, sync_crm, sync_target, wait_for_budget,
};
use crate::synclog::{self, LogEntryDraft, SyncEvent};
use crate::whatsapp::Direction;
use serde_json::json;

/// SQS keeps a message invisible for at most 12 hours.
const MAX_VISIBILITY_SECS: i64 = 43_200;

/// How long a worker may take to create a record before another may try.
const CREATION_CLAIM_SECS: i64 = 120;
/// How long a contact's other chats link to the record made for it rather
/// than search: longer than Zoho's search-index delay (seconds to a few
/// minutes), short enough that a record deleted since is searched for again.
const CONTACT_RECORD_WINDOW_SECS: i64 = 600;

/// `deadline`: when the invocation times out (Lambda's context), if known.
pub async fn handle(
    deps: &Deps,
    event: SqsEvent,
    deadline: Option<SystemTime>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    // Workspace jobs (re-queue, retention, deletion) travel in groups of
    // their own; the chats' messages go through the FIFO batch.
    let (jobs, messages): (Vec<_>, Vec<_>) = event
        .records
        .into_iter()
        .partition(|record| record.body.as_deref().and_then(Job::from_body).is_some());
    let mut job_failures = Vec::new();
    for record in jobs {
        let Some(job) = record.body.as_deref().and_then(Job::from_body) else {
            continue;
        };
        if !run_job(deps, &job, record.receipt_handle.as_deref(), deadline).await {
            job_failures.push(record.message_id.unwrap_or_default());
        }
    }
    let mut batch = SqsEvent::default();
    batch.records = messages;
    let outcome = run_fifo_batch(
        deps.queue.as_ref(),
        QueueName::Sync,
        RetryPolicy::from_config(&deps.config),
        deadline,
        batch,
        |group| sync_group(deps, group),
    )
    .await;
    record_failures(deps, &outcome.failures).await;
    let mut response = outcome.response;
    response
        .batch_item_failures
        .extend(job_failures.into_iter().map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        }));
    Ok(response)
}

/// Runs one page of a workspace's job; false when the page is to run
/// again: it failed, or it is too early for it.
async fn run_job(
    deps: &Deps,
    job: &Job,
    receipt_handle: Option<&str>,
    deadline: Option<SystemTime>,
) -> bool {
    let outcome = crate::budget::within(deadline, async {
        match job {
            Job::Requeue(job) if job.not_before.is_some_and(|at| at > deps.clock.now()) => {
                let wait = job.not_before.unwrap_or_default() - deps.clock.now();
                Ok(PageOutcome::NotYet {
                    in_secs: wait.clamp(1, MAX_VISIBILITY_SECS) as i32,
                })
            }
            Job::Requeue(job) => requeue::run_page(deps, job).await.map(|_| PageOutcome::Ran),
            Job::DeleteWorkspace(job) => deletion::run_page(deps, job).await,
            Job::ApplyRetention(job) => retention::run_page(deps, job)
                .await
                .map(|_| PageOutcome::Ran),
        }
    })
    .await;
    match outcome {
        Ok(PageOutcome::Ran) => true,
        Ok(PageOutcome::NotYet { in_secs }) => {
            // A FIFO queue has no per-message delay: the page comes back
            // when it is time, by its visibility.
            if let Some(handle) = receipt_handle
                && let Err(error) = deps
                    .queue
                    .retry_after(QueueName::Sync, handle, in_secs)
                    .await
            {
                tracing::warn!(workspace_id = %job.workspace_id(), job = job.kind(), %error, "could not delay a job page; it comes back after the visibility time-out");
            }
            false
        }
        Err(error) => {
            tracing::warn!(workspace_id = %job.workspace_id(), job = job.kind(), %error, "job page failed; it runs again");
            false
        }
    }
}

/// Links each message's chat, then passes the group's messages on together
/// (one notes-queue message for the chat's messages of this batch), so that
/// note-append sees a burst at once (one note write).
async fn sync_group(deps: &Deps, group: Vec<Received>) -> GroupOutcome {
    let workspace = match super::batch::live_workspace(deps, &group).await {
        Ok(workspace) => workspace,
        Err(dropped_or_failed) => return dropped_or_failed,
    };
    let mut forward = Vec::new();
    let mut failure = None;
    for (done, message) in group.iter().enumerate() {
        match sync_message(deps, &workspace, message).await {
            Ok(true) => forward.push(message.reference.clone()),
            Ok(false) => {}
            Err(error) => {
                failure = Some((done, error));
                break;
            }
        }
    }
    if let Err(error) = deps.queue.send_all(QueueName::Notes, &forward).await {
        // Nothing after the last successful send is known to be passed on:
        // the whole group is retried (linking is idempotent).
        return GroupOutcome {
            done: 0,
            error: Some(error.into()),
        };
    }
    match failure {
        Some((done, error)) => GroupOutcome {
            done,
            error: Some(error),
        },
        None => GroupOutcome::all(group.len()),
    }
}

/// Whether the message goes on to note-append (false: done, skipped or
/// parked).
async fn sync_message(
    deps: &Deps,
    workspace: &Workspace,
    message: &Received,
) -> Result<bool, WorkError> {
    let r = &message.reference;
    let stored = deps
        .store
        .message(&r.workspace_id, &r.message_id)
        .await?
        .ok_or_else(|| {
            WorkError::Inconsistent(format!("message {} is not stored", r.message_id))
        })?;
    if matches!(
        stored.state,
        MessageState::Appended { .. } | MessageState::Skipped { .. }
    ) {
        return Ok(false);
    }
    let chat = deps
        .store
        .chat(&r.workspace_id, &r.chat_key)
        .await?
        .ok_or_else(|| {
            WorkError::Inconsistent(format!("chat of {} is not stored", r.message_id))
        })?;
    if let Some(reason) = &chat.sync_stopped {
        skip(deps, workspace.retention, &chat, &r.message_id, reason).await?;
        return Ok(false);
    }
    match link(deps, workspace.retention, &chat, &stored).await {
        Ok(proceed) => Ok(proceed),
        Err(WorkError::Crm(CrmError::BudgetSpent { resets_at })) => {
            let crm = sync_crm(deps, &r.workspace_id).await?;
            wait_for_budget(deps, &r.workspace_id, crm, resets_at, &[&r.message_id])
                .await
                .map(|()| false)
        }
        // Kept, not failed: activating or connecting (again) queues it anew.
        Err(error) => match parking_reason(&error) {
            Some(reason) => park(deps, &r.workspace_id, &r.message_id, reason)
                .await
                .map(|()| false),
            None => Err(error),
        },
    }
}

/// Makes sure the chat has a live record; false when the chat's sync
/// stopped on the way (a converted lead with `stop`).
async fn link(
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
async fn skip(
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

/// A remembered record of a convertible module (a Lead) is checked for
/// conversion at most once per `conversion_check_secs` (an hour), so the steady state
/// stays at one CRM call per message. A converted one is followed to what
/// it became (`continue`), or the chat's sync stops (`stop`). False when
/// the chat's sync stopped.
async fn follow_conversion(ctx: &Linking<'_>, record: &RecordRef) -> Result<bool, WorkError> {
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
async fn stop_chat(ctx: &Linking<'_>, record: &RecordRef, reason: &str) -> Result<(), WorkError> {
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
fn renamed_to(chat: &Chat, message: &StoredMessage) -> Option<String> {
    let name = message.contact_name.as_deref()?.trim();
    (chat.record_created_by_us
        && message.direction == Direction::Inbound
        && !name.is_empty()
        && chat.record_name.as_deref() != Some(name))
    .then(|| name.to_owned())
}

async fn rename(ctx: &Linking<'_>, record: &RecordRef, name: &str) -> Result<(), WorkError> {
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

/// Finds the chat's record by number — in the destination, then in the
/// converted destination — or creates it, and remembers it. `None` when the
/// number belongs to a converted record and the settings say stop.
async fn link_record(ctx: &Linking<'_>) -> Result<Option<RecordRef>, WorkError> {
    if let Some(record) = recover_interrupted_create(ctx).await? {
        return Ok(Some(record));
    }
    let chat = ctx.chat;
    let settings = ctx.settings;
    let mut places = Vec::new();
    if let (Some(module), Some(field)) = (&settings.destination_module, &settings.number_field) {
        places.push((module.clone(), field.clone()));
    }
    // Searched whatever the rule: with `stop`, a person whose Lead was
    // converted must not come back as a new Lead either.
    if settings.zoho.destination_convertable
        && let (Some(module), Some(field)) = (
            &settings.zoho.converted_module,
            &settings.zoho.converted_number_field,
        )
    {
        places.push((module.clone(), field.clone()));
    }
    for (module, field) in &places {
        let found = ctx.crm.find_by_phone(module, field, &chat.contact).await?;
        let matches = confirmed_matches(found, &chat.contact);
        let Some(best) = matches.first() else {
            continue;
        };
        let in_converted = Some(module) != settings.destination_module.as_ref();
        if in_converted && settings.zoho.on_converted == OnConverted::Stop {
            let reason = format!(
                "the number belongs to a {module} record (where converted leads go) and the settings say stop"
            );
            stop_chat(ctx, &best.record, &reason).await?;
            return Ok(None);
        }
        let candidates: Vec<RecordRef> = matches.iter().map(|m| m.record.clone()).collect();
        return ctx
            .link_found(&candidates, &format!("{module}.{field}"))
            .await
            .map(Some);
    }
    create_record(ctx).await.map(Some)
}

/// An earlier attempt that claimed the creation and never linked a record
/// may have created it (its answer was lost). Zoho's search cannot see a
/// record that new, so the newest records are read, before any search; a
/// record found there is the one this product made.
async fn recover_interrupted_create(ctx: &Linking<'_>) -> Result<Option<RecordRef>, WorkError> {
    let (chat, settings) = (ctx.chat, ctx.settings);
    let (Some(_), Some(module), Some(field)) = (
        &chat.creating_by,
        &settings.destination_module,
        &settings.number_field,
    ) else {
        return Ok(None);
    };
    let recent = ctx.crm.recently_created(module, field).await?;
    let Some(found) = confirmed_matches(recent, &chat.contact).into_iter().next() else {
        return Ok(None);
    };
    let (owner_id, owner_reason) = ctx.owner().await?;
    ctx.remember_for_contact(&found.record).await?;
    ctx.patch(ChatPatch {
        record: Some(found.record.clone()),
        record_created_by_us: Some(true),
        record_name: Some(Some(record_name(
            chat.contact_name.as_deref(),
            &chat.contact,
        ))),
        record_checked_at: Some(ctx.deps.clock.now()),
        ..ChatPatch::default()
    })
    .await?;
    ctx.log(
        SyncEvent::Created,
        json!({
            "record": found.record,
            "owner_id": owner_id,
            "owner_reason": owner_reason,
            "found_after": "an interrupted create whose answer was lost",
        }),
    )
    .await;
    Ok(Some(found.record))
}

/// Who holds a chat's record-creation claim: the chat, not one of its
/// messages. The sync queue hands a chat's messages over one at a time (one
/// FIFO group per chat), so a claim another of its messages left is an
/// earlier attempt's that has ended (failed, or parked until a reconnect or
/// the budget's reset), and [`recover_interrupted_create`] has just looked
/// for what it may have made. Claimed per message, the chat's next message
/// was refused as busy until the claim expired (2 minutes), spending its
/// receives on it, and was dead-lettered (found by the soak).
fn creation_claimant(chat_key: &str) -> String {
    format!("chat#{chat_key}")
}

async fn create_record(ctx: &Linking<'_>) -> Result<RecordRef, WorkError> {
    let (deps, chat, settings) = (ctx.deps, ctx.chat, ctx.settings);
    let module = settings
        .destination_module
        .clone()
        .ok_or(WorkError::NotActive)?;
    let now = deps.clock.now();
    let claimant = creation_claimant(&chat.key);
    if !deps
        .store
        .claim_record_creation(
            &chat.workspace_id,
            &chat.key,
            &claimant,
            now,
            now + CREATION_CLAIM_SECS,
        )
        .await?
    {
        // Another worker is creating it right now (or just did): try again
        // shortly and find it linked.
        return Err(WorkError::Contended(
            "the chat's record is being created by another worker".into(),
        ));
    }
    // The same person may be writing to another business number of the
    // workspace: one record per contact, not per chat.
    match deps
        .store
        .claim_contact_creation(
            &chat.workspace_id,
            &chat.contact,
            &chat.key,
            now,
            now + CREATION_CLAIM_SECS,
        )
        .await?
    {
        ContactClaim::Claimed => {}
        ContactClaim::Created(record) => {
            deps.store
                .release_record_claim(&chat.workspace_id, &chat.key, &claimant)
                .await?;
            return ctx
                .link_found(&[record], "the record made for this contact's other chat")
                .await;
        }
        ContactClaim::Busy => {
            deps.store
                .release_record_claim(&chat.workspace_id, &chat.key, &claimant)
                .await?;
            return Err(WorkError::Contended(
                "this contact's record is being created for another of its chats".into(),
            ));
        }
    }
    let (owner_id, owner_reason) = ctx.owner().await?;
    let name = record_name(chat.contact_name.as_deref(), &chat.contact);
    let created = ctx
        .crm
        .create_record(&NewRecord {
            module,
            fields: record_fields(settings, &name, &chat.contact, &chat_link(&chat.contact)),
            owner_id: Some(owner_id.clone()),
        })
        .await;
    let record = match created {
        Ok(record) => record,
        // The org marks the number field unique and holds the number
        // already, where the search did not see it (index delay): that
        // record is the match. A duplicate on another field (a unique name)
        // is someone else: refused like any other refusal.
        Err(CrmError::Duplicate { record, field })
            if field.is_some() && field == settings.number_field =>
        {
            ctx.remember_for_contact(&record).await?;
            return ctx.link_found(&[record], "the CRM's duplicate check").await;
        }
        // Refused outright: nothing was created, so the claims can go.
        Err(e @ (CrmError::Rejected { .. } | CrmError::Duplicate { .. })) => {
            deps.store
                .release_record_claim(&chat.workspace_id, &chat.key, &claimant)
                .await?;
            deps.store
                .release_contact_claim(&chat.workspace_id, &chat.contact, &chat.key)
                .await?;
            return Err(e.into());
        }
        // Anything else may or may not have created the record: the claim
        // stays with this message until it expires.
        Err(e) => return Err(e.into()),
    };
    ctx.remember_for_contact(&record).await?;
    ctx.patch(ChatPatch {
        record: Some(record.clone()),
        record_created_by_us: Some(true),
        record_name: Some(Some(name)),
        record_checked_at: Some(now),
        ..ChatPatch::default()
    })
    .await?;
    tracing::info!(
        workspace_id = %chat.workspace_id,
        chat = %chat.log_id(),
        record = %record_of(&record),
        owner_id,
        owner_reason,
        "created record"
    );
    ctx.log(
        SyncEvent::Created,
        json!({ "record": record, "owner_id": owner_id, "owner_reason": owner_reason }),
    )
    .await;
    Ok(record)
}

/// Makes the lead or deal the settings ask for beside a record this
/// product created, once per chat: an attempt whose answer was lost is
/// found by its title instead of made twice. A refusal (a pipeline deleted
/// since activation) is logged and the messages go on without one.
async fn ensure_follow_up(ctx: &Linking<'_>, person: &RecordRef) -> Result<(), WorkError> {
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
async fn follow_follow_up(ctx: &Linking<'_>, person: &RecordRef) -> Result<(), WorkError> {
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

/// The people who could own a new record, in order of preference, by
/// e-mail: the chat's responsible user, then the WhatsApp number's owner.
async fn owner_candidates(
    deps: &Deps,
    chat: &Chat,
) -> Result<Vec<(String, &'static str)>, WorkError> {
    let mut candidates = Vec::new();
    if let Some(responsible) = &chat.responsible_user_id
        && let Some(user) = deps.store.user(&chat.workspace_id, responsible).await?
    {
        candidates.push((user.email, "chat_responsible_user"));
    }
    if let Some(number) = deps.store.whatsapp_number(&chat.phone_number_id).await?
        && let Some(user) = deps
            .store
            .user(&chat.workspace_id, &number.owner_user_id)
            .await?
    {
        candidates.push((user.email, "whatsapp_number_owner"));
    }
    Ok(candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_of_a_chat_may_take_over_its_creation_claim_and_no_other_chat() {
        let (a, b) = (
            "170000000000001#447700900123",
            "170000000000001#447700900456",
        );
        // Named by the chat alone: no message id in it, so whichever of
        // the chat's messages comes next holds the same claim.
        assert_eq!(creation_claimant(a), format!("chat#{a}"));
        assert_ne!(creation_claimant(a), creation_claimant(b));
        assert!(
            !creation_claimant(a).starts_with("wamid."),
            "not a message id"
        );
    }
}
