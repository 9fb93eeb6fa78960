//! The `note-append` worker: writes messages into their chat's day note on
//! the linked record. All messages of one chat in a batch are applied
//! together, so a burst costs one note write (record-sync passes a chat's
//! messages on in one queue message, so the queue cannot split them), and a
//! message a note already holds is never added twice.

use std::time::SystemTime;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use super::batch::{
    GroupOutcome, Received, RetryPolicy, live_workspace, record_failures, run_fifo_batch,
};
use crate::crm::{Crm, CrmError, NoteDraft};
use crate::deps::Deps;
use crate::error::WorkError;
use crate::media::{MediaError, media_file_name};
use crate::model::{
    AttachmentOutcome, Chat, ChatPatch, DayNote, MessageState, NoteLine, RecordRef, StoredMessage,
    SyncSettings, WhatsAppNumber, Workspace,
};
use crate::queue::{MessageRef, QueueName};
use crate::retention::{Expiry, Retention, day_note_anchor};
use crate::sync::{
    NO_MEDIA_ACCESS, business_number_display, chat_link, note_also, note_header, note_line_text,
    note_title, park, parking_reason, record_of, rendered_note, resend_marker, sync_crm,
    sync_target, wait_for_budget,
};
use crate::synclog::{self, LogEntryDraft, SyncEvent};
use crate::time_zone::{TimeZone, local_times, zone};
use serde_json::json;

/// `deadline`: when the invocation times out (Lambda's context), if known.
pub async fn handle(
    deps: &Deps,
    event: SqsEvent,
    deadline: Option<SystemTime>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let outcome = run_fifo_batch(
        deps.queue.as_ref(),
        QueueName::Notes,
        RetryPolicy::from_config(&deps.config),
        deadline,
        event,
        |group| append_group(deps, group),
    )
    .await;
    record_failures(deps, &outcome.failures).await;
    Ok(outcome.response)
}

/// Messages of one chat, cut into runs of the same day.
struct DayRun {
    day: String,
    date: String,
    /// Where the run's first message is in the group.
    first_index: usize,
    messages: Vec<(StoredMessage, String)>,
}

async fn append_group(deps: &Deps, group: Vec<Received>) -> GroupOutcome {
    let workspace = match live_workspace(deps, &group).await {
        Ok(workspace) => workspace,
        Err(dropped_or_failed) => return dropped_or_failed,
    };
    let (done, error) = match append_all(deps, &workspace, &group).await {
        Ok(()) => return GroupOutcome::all(group.len()),
        Err(failure) => failure,
    };
    // A chat without a record (forgotten after a deletion, while these
    // messages were on their way) is linked by record-sync first.
    if matches!(error, WorkError::Unlinked) {
        return match send_back_to_sync(deps, &group[done..]).await {
            Ok(()) => GroupOutcome::all(group.len()),
            Err(e) => GroupOutcome {
                done,
                error: Some(e),
            },
        };
    }
    // A refused note write may mean a person deleted the record: then the
    // rest of the group goes back to record-sync to find or make another.
    let mut error = error;
    if matches!(error, WorkError::Crm(CrmError::Rejected { .. })) {
        match relink_if_record_gone(deps, &group[done..]).await {
            Ok(true) => return GroupOutcome::all(group.len()),
            Ok(false) => {}
            // A broken connection, found while checking, parks below.
            Err(check_failed) => error = check_failed,
        }
    }
    // A spent API budget: the rest of the group waits for it to come back.
    if let WorkError::Crm(CrmError::BudgetSpent { resets_at }) = error {
        let rest: Vec<&str> = group[done..]
            .iter()
            .map(|m| m.reference.message_id.as_str())
            .collect();
        let workspace_id = &group[0].reference.workspace_id;
        let waited = match sync_crm(deps, workspace_id).await {
            Ok(crm) => wait_for_budget(deps, workspace_id, crm, resets_at, &rest).await,
            Err(e) => Err(e),
        };
        return match waited {
            Ok(()) => GroupOutcome::all(group.len()),
            Err(e) => GroupOutcome {
                done,
                error: Some(e),
            },
        };
    }
    // Without a working connection the rest of the group waits (parked) for
    // the organization to connect again, instead of failing into the DLQ.
    let Some(reason) = parking_reason(&error) else {
        return GroupOutcome {
            done,
            error: Some(error),
        };
    };
    for (index, received) in group.iter().enumerate().skip(done) {
        let r = &received.reference;
        if let Err(error) = park(deps, &r.workspace_id, &r.message_id, reason).await {
            return GroupOutcome {
                done: index,
                error: Some(error),
            };
        }
    }
    GroupOutcome::all(group.len())
}

/// If the chat's record no longer exists in the CRM, forgets it and sends
/// `rest` back through record-sync (which links the chat afresh); true if
/// it did.
async fn relink_if_record_gone(deps: &Deps, rest: &[Received]) -> Result<bool, WorkError> {
    let Some(first) = rest.first() else {
        return Ok(false);
    };
    let r = &first.reference;
    let Some(chat) = deps.store.chat(&r.workspace_id, &r.chat_key).await? else {
        return Ok(false);
    };
    let Some(record) = &chat.record else {
        return Ok(false);
    };
    let crm = match sync_target(deps, &r.workspace_id).await {
        Ok((_, crm, _)) => crm,
        // Nothing to relink through: the message parks where it is.
        Err(WorkError::NotConnected | WorkError::NotActive) => return Ok(false),
        Err(other) => return Err(other),
    };
    if crm.record_exists(record).await? {
        return Ok(false);
    }
    let forgotten = deps
        .store
        .patch_chat(
            &r.workspace_id,
            &r.chat_key,
            &ChatPatch {
                forget_record: Some(record.clone()),
                ..ChatPatch::default()
            },
        )
        .await?;
    if !forgotten {
        // Linked to another record meanwhile: the group is retried on it.
        return Err(WorkError::Contended(
            "the chat was linked to another record meanwhile".into(),
        ));
    }
    // The contact's other chats must not be linked to it either.
    deps.store
        .forget_contact_record(&r.workspace_id, &chat.contact, record)
        .await?;
    tracing::warn!(workspace_id = %r.workspace_id, chat = %chat.log_id(), record = %record_of(record), "the chat's record was deleted in the CRM; linking afresh");
    synclog::record(
        deps,
        LogEntryDraft {
            workspace_id: &r.workspace_id,
            event: SyncEvent::RecordGone,
            chat_key: Some(&r.chat_key),
            message_id: Some(&r.message_id),
            detail: json!({ "record": record }),
        },
    )
    .await;
    send_back_to_sync(deps, rest).await?;
    Ok(true)
}

/// Queues messages for record-sync again (marked as deliberate re-sends).
async fn send_back_to_sync(deps: &Deps, messages: &[Received]) -> Result<(), WorkError> {
    let again: Vec<MessageRef> = messages
        .iter()
        .map(|m| MessageRef {
            resend: resend_marker(),
            ..m.reference.clone()
        })
        .collect();
    deps.queue.send_all(QueueName::Sync, &again).await?;
    Ok(())
}

/// Returns how many messages were done before a failure.
async fn append_all(
    deps: &Deps,
    workspace: &Workspace,
    group: &[Received],
) -> Result<(), (usize, WorkError)> {
    let first = &group[0].reference;
    let at_start = |e: WorkError| (0, e);
    let chat = deps
        .store
        .chat(&first.workspace_id, &first.chat_key)
        .await
        .map_err(|e| at_start(e.into()))?
        .ok_or_else(|| at_start(WorkError::Inconsistent("chat is not stored".into())))?;
    let number = deps
        .store
        .whatsapp_number(&chat.phone_number_id)
        .await
        .map_err(|e| at_start(e.into()))?;
    let business_number = number
        .as_ref()
        .map(|n| business_number_display(&n.display_phone_number))
        .unwrap_or_default();
    let (_, crm, settings) = sync_target(deps, &first.workspace_id)
        .await
        .map_err(at_start)?;
    let keeping = Keeping {
        retention: workspace.retention,
        tz: zone(&workspace.time_zone),
    };
    let header = note_header(&chat_link(&chat.contact), &business_number);
    let contact_display = chat
        .contact_name
        .clone()
        .unwrap_or_else(|| chat.contact.to_string());

    let mut runs: Vec<DayRun> = Vec::new();
    for (index, received) in group.iter().enumerate() {
        let r = &received.reference;
        let mut message = deps
            .store
            .message(&r.workspace_id, &r.message_id)
            .await
            .map_err(|e| at_start(e.into()))?
            .ok_or_else(|| {
                at_start(WorkError::Inconsistent(format!(
                    "message {} is not stored",
                    r.message_id
                )))
            })?;
        if message.media.is_some() && message.attachment.is_none() {
            // Decided once per message: a retry reuses the stored outcome.
            let outcome = match attach_media(deps, &chat, number.as_ref(), crm.as_ref(), &message)
                .await
            {
                Ok(outcome) => outcome,
                // This message waits for a token; the others go on.
                Err(WorkError::NoMediaAccess(why)) => {
                    tracing::warn!(workspace_id = %r.workspace_id, message_id = %r.message_id, why, "media message waits for a WhatsApp access token");
                    park(deps, &r.workspace_id, &r.message_id, NO_MEDIA_ACCESS)
                        .await
                        .map_err(at_start)?;
                    // A token registered since the number was read re-queued
                    // only what was waiting then: this one is retried (after
                    // the usual back-off) instead, so the new token cannot
                    // miss it.
                    let token_now = deps
                        .store
                        .whatsapp_number(&chat.phone_number_id)
                        .await
                        .map_err(|e| at_start(e.into()))?
                        .and_then(|n| n.access_token_enc);
                    if token_now != number.as_ref().and_then(|n| n.access_token_enc.clone()) {
                        return Err(at_start(WorkError::Contended(
                            "a WhatsApp token was registered while the message was parked".into(),
                        )));
                    }
                    continue;
                }
                // Nothing of the group is written yet: all of it is
                // retried (attachments already decided are not redone).
                Err(e) => return Err(at_start(e)),
            };
            deps.store
                .set_message_attachment(&r.workspace_id, &r.message_id, &outcome)
                .await
                .map_err(|e| at_start(e.into()))?;
            message.attachment = Some(outcome);
        }
        let (day, date, time) = local_times(message.timestamp, &keeping.tz);
        let sender = message
            .contact_name
            .clone()
            .unwrap_or_else(|| contact_display.clone());
        let line = note_line_text(&message, &sender, &business_number, &time);
        match runs.last_mut() {
            Some(run) if run.day == day => run.messages.push((message, line)),
            _ => runs.push(DayRun {
                day,
                date,
                first_index: index,
                messages: vec![(message, line)],
            }),
        }
    }

    // A failed run fails its messages and every later one of the group;
    // those before it are done (or parked).
    for run in runs {
        let first_index = run.first_index;
        let ctx = RunContext {
            deps,
            chat: &chat,
            crm: crm.as_ref(),
            settings: &settings,
            contact_display: &contact_display,
            header: &header,
            keeping: &keeping,
        };
        append_run(&ctx, run).await.map_err(|e| (first_index, e))?;
    }
    Ok(())
}

/// How long what a run writes is kept: the workspace's retention, its days
/// cut in its time zone.
#[derive(Debug, Clone)]
struct Keeping {
    retention: Retention,
    tz: TimeZone,
}

impl Keeping {
    /// A day note written at `now`.
    fn note_expiry(&self, note: &DayNote, now: i64) -> Expiry {
        self.retention
            .counted_from(day_note_anchor(&note.day, &self.tz, now))
    }
}

/// What writing one chat's day runs works with.
struct RunContext<'a> {
    deps: &'a Deps,
    chat: &'a Chat,
    crm: &'a dyn Crm,
    settings: &'a SyncSettings,
    contact_display: &'a str,
    header: &'a str,
    keeping: &'a Keeping,
}

async fn append_run(ctx: &RunContext<'_>, run: DayRun) -> Result<(), WorkError> {
    let RunContext {
        deps,
        chat,
        crm,
        contact_display,
        header,
        keeping,
        ..
    } = *ctx;
    let record = chat.record.clone().ok_or(WorkError::Unlinked)?;
    // Every part of the day so far: a message any of them holds is done.
    let mut parts = Vec::new();
    while let Some(part) = deps
        .store
        .day_note(
            &chat.workspace_id,
            &chat.key,
            &record,
            &run.day,
            parts.len() as u32 + 1,
        )
        .await?
    {
        parts.push(part);
    }
    // Named as the contact was called when the day began.
    let base_title = match parts.first() {
        Some(first) => first.title.clone(),
        None => note_title(
            run.messages
                .iter()
                .find_map(|(m, _)| m.contact_name.as_deref())
                .unwrap_or(contact_display),
            &run.date,
        ),
    };
    let current = match parts.pop() {
        Some(last) => last,
        None => new_part(chat, &record, None, &run.day, 1, &base_title),
    };
    let earlier = parts;
    let max = deps.config.note_content_max.min(crm.note_limit());
    let lines = run
        .messages
        .iter()
        .map(|(message, text)| NoteLine {
            message_id: message.message_id.clone(),
            timestamp: message.timestamp,
            text: text.clone(),
        })
        .collect();
    // Notes this run changed, in part order; the last is the open one.
    let Placed { changed, added } = place_lines(
        crm,
        header,
        max,
        current,
        lines,
        |id| earlier.iter().any(|n| n.holds(id)),
        |full| {
            new_part(
                chat,
                &record,
                full.also.clone(),
                &run.day,
                full.part + 1,
                &base_title,
            )
        },
    );
    // Which note holds each message, including those held before this run
    // (a redelivery), so the ledger always says where a message is.
    let mut note_of: Vec<(String, String)> = Vec::new();
    let held_by = |note: &DayNote, id: &str| -> Vec<(String, String)> {
        note.lines
            .iter()
            .map(|l| (l.message_id.clone(), id.to_owned()))
            .collect()
    };
    for note in &earlier {
        if let Some(id) = &note.note_id {
            note_of.extend(held_by(note, id));
        }
    }
    for mut note in changed {
        let lines_added: Vec<String> = note
            .lines
            .iter()
            .filter(|l| added.contains(&l.message_id))
            .map(|l| l.message_id.clone())
            .collect();
        if lines_added.is_empty() && !note.full {
            if let Some(id) = &note.note_id {
                note_of.extend(held_by(&note, id));
            }
            continue;
        }
        if note.note_id.is_none() && !note.create_started && note.part == 1 {
            note.also = note_also(crm, chat, ctx.settings, deps.clock.now()).await?;
        }
        let content = rendered_note(crm, &note, header);
        let note_id = match note.note_id.clone() {
            Some(id) if lines_added.is_empty() => id,
            Some(id) => {
                crm.update_note(&id, &note.title, &content).await?;
                id
            }
            None => {
                let expiry = keeping.note_expiry(&note, deps.clock.now());
                create_note_once(deps, crm, &mut note, header, &content, expiry).await?
            }
        };
        note.note_id = Some(note_id.clone());
        note.version += 1;
        let expiry = keeping.note_expiry(&note, deps.clock.now());
        if !deps.store.save_day_note(&note, expiry).await? {
            return Err(WorkError::Contended(
                "the day note changed meanwhile".into(),
            ));
        }
        note_of.extend(held_by(&note, &note_id));
        if lines_added.is_empty() {
            continue;
        }
        tracing::info!(
            workspace_id = %chat.workspace_id,
            chat = %chat.log_id(),
            day = %note.day,
            part = note.part,
            lines_added = lines_added.len(),
            "day note written"
        );
        synclog::record(
            deps,
            LogEntryDraft {
                workspace_id: &chat.workspace_id,
                event: SyncEvent::Appended,
                chat_key: Some(&chat.key),
                message_id: lines_added.last().map(String::as_str),
                detail: json!({ "record": note.record, "note_id": note_id, "day": note.day, "part": note.part, "messages": lines_added }),
            },
        )
        .await;
    }
    for (message, _) in &run.messages {
        let note_id = note_of
            .iter()
            .find(|(m, _)| *m == message.message_id)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        deps.store
            .finish_message(
                &chat.workspace_id,
                &message.message_id,
                &MessageState::Appended { note_id },
                keeping.retention.counted_from(deps.clock.now()),
            )
            .await?;
    }
    Ok(())
}

/// Ends a line cut to fit a note.
pub const CUT_MARK: &str = " … [cut: too long for one note]";

/// What [`place_lines`] made of a day's parts.
#[derive(Debug)]
pub struct Placed {
    /// The parts it changed, in part order: full ones, then the open one.
    pub changed: Vec<DayNote>,
    /// The ids of the messages it added.
    pub added: Vec<String>,
}

/// Places `lines` (each a message) in a day's open part `current`. A note
/// never outgrows `max` as `crm` counts it: a full part stays as it is and
/// the day continues in `next_part` of it. A message that an earlier part
/// holds (`held`), or one placed here, is not added again.
pub fn place_lines(
    crm: &dyn Crm,
    header: &str,
    max: usize,
    mut current: DayNote,
    lines: Vec<NoteLine>,
    held: impl Fn(&str) -> bool,
    next_part: impl Fn(&DayNote) -> DayNote,
) -> Placed {
    let mut changed: Vec<DayNote> = Vec::new();
    let mut added = Vec::new();
    for line in lines {
        let id = line.message_id.clone();
        if held(&id) || changed.iter().any(|n| n.holds(&id)) || current.holds(&id) {
            continue;
        }
        let mut grown = current.clone();
        grown.insert_line(line.clone());
        if !current.lines.is_empty() && crm.note_size(&rendered_note(crm, &grown, header)) > max {
            current.full = true;
            // Saved as full; written to the CRM only if this run added to it.
            let next = next_part(&current);
            changed.push(std::mem::replace(&mut current, next));
        }
        let line = fit_line(crm, header, max, &current, line);
        current.insert_line(line);
        added.push(id);
    }
    changed.push(current);
    Placed { changed, added }
}

/// The line as `part` can hold it: whole if it fits, else (a line that
/// alone outgrows a note) its longest beginning that fits with
/// [`CUT_MARK`], cut between characters: the CRM would refuse the note.
fn fit_line(crm: &dyn Crm, header: &str, max: usize, part: &DayNote, line: NoteLine) -> NoteLine {
    let fits = |text: String| {
        let mut grown = part.clone();
        grown.insert_line(NoteLine {
            text,
            ..line.clone()
        });
        crm.note_size(&rendered_note(crm, &grown, header)) <= max
    };
    if fits(line.text.clone()) {
        return line;
    }
    // Where each beginning of 0, 1, … characters ends; the size grows
    // with the length, so the longest that fits is found by halving.
    let ends: Vec<usize> = line
        .text
        .char_indices()
        .map(|(at, _)| at)
        .chain(std::iter::once(line.text.len()))
        .collect();
    let cut = |chars: usize| format!("{}{CUT_MARK}", &line.text[..ends[chars]]);
    let (mut fitting, mut too_long) = (0, ends.len() - 1);
    while fitting + 1 < too_long {
        let middle = (fitting + too_long) / 2;
        if fits(cut(middle)) {
            fitting = middle;
        } else {
            too_long = middle;
        }
    }
    tracing::warn!(
        message_id = %line.message_id,
        kept_chars = fitting,
        "a message too long for one note was cut"
    );
    NoteLine {
        text: cut(fitting),
        ..line
    }
}

/// Downloads a media message's file from WhatsApp and attaches it to the
/// chat's record. A file that cannot be attached for good (too large, gone,
/// refused) is an outcome the note line reports, not a failure; only
/// transient trouble fails the message, to be retried.
async fn attach_media(
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

/// A new, empty part of a day's note: part 1 has the plain title, later
/// parts say which part they are.
fn new_part(
    chat: &Chat,
    record: &RecordRef,
    also: Option<RecordRef>,
    day: &str,
    part: u32,
    base_title: &str,
) -> DayNote {
    DayNote {
        also,
        workspace_id: chat.workspace_id.clone(),
        chat_key: chat.key.clone(),
        day: day.to_owned(),
        part,
        record: record.clone(),
        title: if part == 1 {
            base_title.to_owned()
        } else {
            format!("{base_title} (part {part})")
        },
        note_id: None,
        create_started: false,
        full: false,
        lines: Vec::new(),
        version: 0,
    }
}

/// Creates the day's note, or adopts it if an earlier attempt created it and
/// died before remembering its id.
async fn create_note_once(
    deps: &Deps,
    crm: &dyn Crm,
    note: &mut DayNote,
    header: &str,
    content: &str,
    expiry: Expiry,
) -> Result<String, WorkError> {
    if note.create_started {
        let draft = NoteDraft {
            title: &note.title,
            header,
            lines: &[],
        };
        if let Some(existing) = crm.find_note(&note.record, &draft).await? {
            crm.update_note(&existing, &note.title, content).await?;
            return Ok(existing);
        }
    } else {
        // Remember the attempt before making it; the lines are stored
        // together with the note id once the CRM has it.
        let marker = DayNote {
            create_started: true,
            lines: Vec::new(),
            version: note.version + 1,
            ..note.clone()
        };
        if !deps.store.save_day_note(&marker, expiry).await? {
            return Err(WorkError::Contended(
                "the day note changed meanwhile".into(),
            ));
        }
        note.create_started = true;
        note.version = marker.version;
    }
    Ok(crm
        .create_note(&note.record, note.also.as_ref(), &note.title, content)
        .await?)
}
