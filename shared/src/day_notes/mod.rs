//! Day notes, the rule note-append runs: a chat's messages land as one note
//! per chat per day on its record (in parts when a day outgrows what the
//! CRM holds), each message in exactly one line, however often it comes.

mod media;
mod placing;
mod text;

pub use placing::{CUT_MARK, Placed, place_lines};
pub use text::{note_also, note_header, note_line_text, note_title, rendered_note};

use media::attach_media;

use serde_json::json;

use crate::crm::{Crm, NoteDraft};
use crate::deps::Deps;
use crate::error::WorkError;
use crate::model::{
    Chat, DayNote, MessageState, NoteLine, RecordRef, StoredMessage, SyncSettings, Workspace,
};
use crate::queue::MessageRef;
use crate::retention::{Expiry, Retention, day_note_anchor};
use crate::sync::{NO_MEDIA_ACCESS, business_number_display, chat_link, park, sync_target};
use crate::synclog::{self, LogEntryDraft, SyncEvent};
use crate::time_zone::{TimeZone, local_times, zone};

/// Messages of one chat, cut into runs of the same day.
struct DayRun {
    day: String,
    date: String,
    /// Where the run's first message is among the chat's messages.
    first_index: usize,
    messages: Vec<(StoredMessage, String)>,
}

/// Writes `messages`, one chat's in the order they came, into its day
/// notes. On a failure, also says how many of them were done before it.
pub async fn append(
    deps: &Deps,
    workspace: &Workspace,
    messages: &[MessageRef],
) -> Result<(), (usize, WorkError)> {
    let Some(first) = messages.first() else {
        return Ok(());
    };
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
    for (index, r) in messages.iter().enumerate() {
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

    // A failed run fails its messages and every later one of the chat's;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::CrmError;
    use crate::model::{CrmKind, MessageState};
    use crate::testing::fixture::{self, PHONE_NUMBER_ID, WORKSPACE_ID};
    use crate::testing::{MemoryCrm, MemoryDeps, memory_deps};

    /// 2026-05-20 10:00 UTC (11:00 in London).
    const MORNING: i64 = 1_779_271_200;

    /// The fixture's chat, linked to a lead, in a CRM whose notes hold
    /// `note_limit` characters.
    struct LinkedChat {
        memory: MemoryDeps,
        workspace: Workspace,
        chat: Chat,
        record: RecordRef,
    }

    fn linked_chat(note_limit: usize) -> LinkedChat {
        let memory = memory_deps(MemoryCrm::new(CrmKind::Zoho, note_limit), MORNING + 86_400);
        let workspace = fixture::seed_workspace(&memory.store);
        let record = memory.crm.seed_record("Leads", &["+447700900123"]);
        let chat = Chat {
            record: Some(record.clone()),
            ..fixture::seed_chat(&memory.store, PHONE_NUMBER_ID)
        };
        memory.store.seed_chat(chat.clone());
        LinkedChat {
            memory,
            workspace,
            chat,
            record,
        }
    }

    impl LinkedChat {
        fn messages(&self, start: i64, texts: &[&str]) -> Vec<MessageRef> {
            fixture::seed_messages(&self.memory.store, &self.chat, start, texts)
        }

        async fn append(&self, messages: &[MessageRef]) -> Result<(), (usize, WorkError)> {
            append(&self.memory.deps, &self.workspace, messages).await
        }

        /// Each note's lines after its header and the blank line below
        /// it, oldest note first.
        fn note_lines(&self) -> Vec<Vec<String>> {
            self.memory
                .crm
                .notes_on(&self.record)
                .iter()
                .map(|n| n.content.lines().skip(2).map(str::to_owned).collect())
                .collect()
        }

        fn appended(&self, messages: &[MessageRef]) -> usize {
            messages
                .iter()
                .filter(|m| {
                    matches!(
                        self.memory.store.message_state(WORKSPACE_ID, &m.message_id),
                        Some(MessageState::Appended { .. })
                    )
                })
                .count()
        }
    }

    const TEN: [&str; 10] = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];

    /// `11:00 ← Ana: one`, … as a note shows `texts` from 11:00 on.
    fn lines_from_eleven(texts: &[&str]) -> Vec<String> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| format!("11:{i:02} ← Ana: {t}"))
            .collect()
    }

    #[tokio::test]
    async fn ten_messages_of_a_chat_handed_over_together_are_one_note_write() {
        let chat = linked_chat(32_000);
        let messages = chat.messages(MORNING, &TEN);
        chat.append(&messages).await.expect("appended");
        assert_eq!(
            chat.memory.crm.note_writes(),
            1,
            "{:?}",
            chat.memory.crm.calls()
        );
        let notes = chat.memory.crm.notes_on(&chat.record);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].title, "WhatsApp Chat with Ana (20/05/2026)");
        assert_eq!(chat.note_lines()[0], lines_from_eleven(&TEN));
        assert_eq!(chat.appended(&messages), 10);
    }

    #[tokio::test]
    async fn messages_handed_over_again_are_neither_a_second_line_nor_a_write() {
        let chat = linked_chat(32_000);
        let messages = chat.messages(MORNING, &TEN);
        chat.append(&messages[..4]).await.expect("appended");
        // A redelivery of all ten, the first four among them.
        chat.append(&messages).await.expect("appended");
        chat.append(&messages).await.expect("appended");
        assert_eq!(
            chat.memory.crm.note_writes(),
            2,
            "{:?}",
            chat.memory.crm.calls()
        );
        assert_eq!(chat.note_lines(), vec![chat.note_lines()[0].clone()]);
        assert_eq!(chat.note_lines()[0].len(), 10);
    }

    #[tokio::test]
    async fn each_local_day_has_its_own_note() {
        let chat = linked_chat(32_000);
        // 23:58 and 23:59 in London, then 00:00 and 00:01 the next day.
        let late = MORNING + 12 * 3600 + 58 * 60;
        let messages = chat.messages(late, &["late", "later", "midnight", "after"]);
        chat.append(&messages).await.expect("appended");
        let notes = chat.memory.crm.notes_on(&chat.record);
        let titles: Vec<&str> = notes.iter().map(|n| n.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "WhatsApp Chat with Ana (20/05/2026)",
                "WhatsApp Chat with Ana (21/05/2026)"
            ]
        );
        assert_eq!(
            chat.note_lines().iter().map(Vec::len).collect::<Vec<_>>(),
            [2, 2]
        );
        assert_eq!(chat.memory.crm.note_writes(), 2);
    }

    #[tokio::test]
    async fn a_day_that_outgrows_the_note_goes_on_in_parts_each_message_once_in_order() {
        // The header and three lines fit; a fourth does not.
        let chat = linked_chat(160);
        let texts: Vec<String> = (1..=10).map(|i| format!("message number {i:02}")).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let messages = chat.messages(MORNING, &texts);
        chat.append(&messages).await.expect("appended");
        let notes = chat.memory.crm.notes_on(&chat.record);
        assert!(notes.len() > 1, "{notes:#?}");
        assert_eq!(
            notes[1].title,
            "WhatsApp Chat with Ana (20/05/2026) (part 2)"
        );
        for note in &notes {
            assert!(note.content.chars().count() <= 160, "{note:#?}");
        }
        assert_eq!(chat.note_lines().concat(), lines_from_eleven(&texts));
        assert_eq!(chat.appended(&messages), 10);
    }

    #[tokio::test]
    async fn a_failed_write_appends_nothing_and_its_retry_no_line_twice() {
        let chat = linked_chat(32_000);
        let messages = chat.messages(MORNING, &TEN);
        chat.memory.crm.fail_next([CrmError::Unavailable(503)]);
        let (done, error) = chat.append(&messages).await.expect_err("the CRM is down");
        assert_eq!(done, 0);
        assert!(error.is_transient(), "{error:?}");
        assert_eq!(chat.appended(&messages), 0);
        chat.append(&messages).await.expect("appended on the retry");
        assert_eq!(chat.note_lines().len(), 1);
        assert_eq!(chat.note_lines()[0].len(), 10);
        assert_eq!(chat.appended(&messages), 10);
    }

    #[tokio::test]
    async fn a_note_whose_creation_answer_was_lost_is_found_not_made_twice() {
        let chat = linked_chat(32_000);
        let messages = chat.messages(MORNING, &TEN);
        chat.memory.crm.lose_next_answers(1);
        chat.append(&messages)
            .await
            .expect_err("the answer was lost");
        assert_eq!(chat.memory.crm.notes_on(&chat.record).len(), 1, "made once");
        chat.append(&messages).await.expect("appended on the retry");
        let notes = chat.memory.crm.notes_on(&chat.record);
        assert_eq!(notes.len(), 1, "{notes:#?}");
        assert_eq!(chat.note_lines()[0].len(), 10);
        assert_eq!(chat.appended(&messages), 10);
    }
}
