//! What the CRMs hold, read from the sandboxes' own in-process state (never
//! through their faulted API): every day note's text, where each soak
//! message's line is, and the records holding each chat's number.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::plan::{Crm, Plan, note_date, tokens_in};
use crate::TestSystem;

/// A day note as the checks see it.
#[derive(Debug, Clone)]
pub struct SeenNote {
    pub crm: Crm,
    pub id: String,
    /// The record it hangs on.
    pub record_id: String,
    /// Title and content, Pipedrive's `<br>` as line breaks.
    pub text: String,
}

impl SeenNote {
    pub fn date(&self) -> Option<String> {
        note_date(&self.text)
    }

    /// A continuation (`… (part 2)`), not a day's first note.
    pub fn is_continuation(&self) -> bool {
        self.text.contains(") (part ")
    }
}

/// The day notes of both CRMs that hold a soak line.
pub fn soak_notes(system: &TestSystem, crms: &[Crm]) -> Vec<SeenNote> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let id = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut notes = Vec::new();
    if crms.contains(&Crm::Zoho) {
        notes.extend(system.sandbox.notes().iter().map(|n| SeenNote {
            crm: Crm::Zoho,
            id: id(&n["id"]),
            record_id: id(&n["Parent_Id"]["id"]),
            text: format!("{}\n{}", text(&n["Note_Title"]), text(&n["Note_Content"])),
        }));
    }
    if crms.contains(&Crm::Pipedrive) {
        notes.extend(system.pipedrive.notes().iter().map(|n| SeenNote {
            crm: Crm::Pipedrive,
            id: id(&n["id"]),
            record_id: id(&n["person_id"]),
            text: text(&n["content"]).replace("<br>", "\n"),
        }));
    }
    notes.retain(|n| !tokens_in(&n.text).is_empty());
    notes
}

/// Where each message's line is: (chat, seq) → the notes holding it, once
/// per line.
pub fn lines_by_message(notes: &[SeenNote]) -> BTreeMap<(usize, usize), Vec<usize>> {
    let mut found: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
    for (i, note) in notes.iter().enumerate() {
        for line in note.text.lines() {
            // A line names its message once (a caption and a file name
            // both carry the token on a document's line).
            let tokens: BTreeSet<(usize, usize)> = tokens_in(line).into_iter().collect();
            for token in tokens {
                found.entry(token).or_default().push(i);
            }
        }
    }
    found
}

/// The counts a soak must get to zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub messages: usize,
    /// Messages in no note line.
    pub lost: usize,
    /// Lines beyond the first of a message.
    pub duplicates: usize,
    /// Lines after a later message of their chat in the same note, or in
    /// the note of another day than their own.
    pub out_of_order: usize,
    /// A chat's day with more than one first note.
    pub extra_day_notes: usize,
    /// Chats whose number is on no record or on several.
    pub chats_without_one_record: usize,
    /// Lines on a record other than their chat's.
    pub misplaced: usize,
    /// Messages whose ledger entry is not `appended` in the note that
    /// holds its line.
    pub ledger_disagrees: usize,
    /// Messages in the dead-letter queues.
    pub dead_lettered: u64,
    /// The first few ledger entries that disagree, as the ledger shows
    /// them (state and reason), to tell why.
    pub ledger_samples: Vec<String>,
}

impl Findings {
    /// Whether the run kept every promise.
    pub fn clean(&self) -> bool {
        *self
            == Self {
                messages: self.messages,
                ledger_samples: self.ledger_samples.clone(),
                ..Self::default()
            }
    }
}

/// The records holding the chat's number: Zoho Leads, Pipedrive persons.
fn records_of(system: &TestSystem, crm: Crm, e164: &str) -> Vec<String> {
    match crm {
        Crm::Zoho => system
            .leads_with_mobile(e164)
            .iter()
            .filter_map(|r| r["id"].as_str().map(str::to_owned))
            .collect(),
        Crm::Pipedrive => system
            .pipedrive_persons_with_phone(e164)
            .iter()
            .map(|p| p["id"].to_string())
            .collect(),
    }
}

/// Checks the CRMs' final state against the plan (ledger and DLQs aside:
/// [`ledger_disagreements`]).
pub fn check_notes(system: &TestSystem, plan: &Plan, crms: &[Crm]) -> Findings {
    let notes = soak_notes(system, crms);
    let lines = lines_by_message(&notes);
    let mut findings = Findings {
        messages: plan.message_count(),
        ..Findings::default()
    };
    for chat in &plan.chats {
        let records = records_of(system, chat.crm, &chat.e164());
        if records.len() != 1 {
            findings.chats_without_one_record += 1;
        }
        for message in &chat.messages {
            let held = lines
                .get(&(chat.index, message.seq))
                .map_or(&[][..], Vec::as_slice);
            match held.len() {
                0 => findings.lost += 1,
                n => findings.duplicates += n - 1,
            }
            for note in held.iter().map(|i| &notes[*i]) {
                if note.date().as_deref() != Some(message.local_date.as_str()) {
                    findings.out_of_order += 1;
                }
                if !records.contains(&note.record_id) {
                    findings.misplaced += 1;
                }
            }
        }
    }
    let mut first_notes: BTreeMap<(usize, String), usize> = BTreeMap::new();
    for note in &notes {
        let seqs: Vec<(usize, usize)> = tokens_in(&note.text);
        let chats: BTreeSet<usize> = seqs.iter().map(|(c, _)| *c).collect();
        for chat in &chats {
            let order: Vec<usize> = seqs
                .iter()
                .filter(|(c, _)| c == chat)
                .map(|(_, s)| *s)
                .collect();
            findings.out_of_order += order.windows(2).filter(|w| w[1] < w[0]).count();
            if !note.is_continuation()
                && let Some(date) = note.date()
            {
                *first_notes.entry((*chat, date)).or_default() += 1;
            }
        }
    }
    findings.extra_day_notes = first_notes.values().map(|n| n.saturating_sub(1)).sum();
    findings
}

/// Messages whose ledger entry (`GET /api/chats/{chat}/messages`) is not
/// `appended` with the id of the note that holds their line: how many, and
/// the first few entries.
pub async fn ledger_disagreements(
    system: &TestSystem,
    plan: &Plan,
    crms: &[Crm],
    tokens: &BTreeMap<Crm, String>,
) -> (usize, Vec<String>) {
    let notes = soak_notes(system, crms);
    let lines = lines_by_message(&notes);
    let mut disagree = 0;
    let mut samples = Vec::new();
    for chat in &plan.chats {
        let Some(token) = tokens.get(&chat.crm) else {
            continue;
        };
        let path = format!("/api/chats/{}/messages", crate::urlencode(&chat.key()));
        let (status, body) = system.call(reqwest::Method::GET, &path, token, None).await;
        let entries = if status == 200 {
            body["messages"].as_array().cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        for message in &chat.messages {
            let entry = entries
                .iter()
                .find(|e| e["message_id"] == message.id.as_str());
            let holder = lines
                .get(&(chat.index, message.seq))
                .and_then(|held| held.first())
                .map(|i| notes[*i].id.as_str());
            let agrees = entry.is_some_and(|e| {
                e["state"] == "appended" && holder.is_some_and(|h| e["note_id"] == h)
            });
            if !agrees {
                disagree += 1;
                if samples.len() < 10 {
                    let shown = entry.map_or_else(
                        || "no ledger entry".to_owned(),
                        |e| format!("{} {}", e["state"], e["reason"]),
                    );
                    samples.push(format!("{}: {shown}", message.id));
                }
            }
        }
    }
    (disagree, samples)
}
