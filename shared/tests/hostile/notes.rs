//! The note renderers and the day note's parts: Pipedrive's HTML escapes
//! everything the input says; no part outgrows the CRM's limit, a cut line
//! keeps whole characters, and every message lands in exactly one part.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use shared::crm::{Crm, NoMeter, NoteDraft};
use shared::day_notes::{CUT_MARK, place_lines, rendered_note};
use shared::model::{CrmKind, DayNote, NoteLine, RecordRef};
use shared::tokens::FreshToken;

use super::webhook::any_text;
use super::{Checked, ensure, harness};

/// The CRM's own client (never called: rendering is local).
pub fn crm(kind: CrmKind) -> Arc<dyn Crm> {
    harness()
        .case()
        .deps
        .crms
        .api(
            kind,
            "http://127.0.0.1:9",
            Arc::new(FreshToken("unused".into())),
            Arc::new(NoMeter),
        )
        .expect("both CRMs have an API client")
}

#[derive(Debug, Clone)]
pub struct Draft {
    pub title: String,
    pub header: String,
    pub lines: Vec<String>,
}

pub fn draft() -> impl Strategy<Value = Draft> {
    (
        any_text(),
        any_text(),
        proptest::collection::vec(any_text(), 0..12),
    )
        .prop_map(|(title, header, lines)| Draft {
            title,
            header,
            lines,
        })
}

/// Pipedrive's HTML: the title in `<b>`, then `<br>` and one escaped piece
/// per line; no `<`, `>` or `&` of the input survives unescaped, and each
/// piece decodes back to its input.
pub fn check_pipedrive_html(draft: &Draft) -> Checked {
    let crm = crm(CrmKind::Pipedrive);
    let lines: Vec<&str> = draft.lines.iter().map(String::as_str).collect();
    let html = crm.render_note(&NoteDraft {
        title: &draft.title,
        header: &draft.header,
        lines: &lines,
    });
    let body = html
        .strip_prefix("<b>")
        .ok_or_else(|| super::Violation::Property(format!("{html:?} does not open with <b>")))?;
    let (title, rest) = body
        .split_once("</b>")
        .ok_or_else(|| super::Violation::Property("no </b>".into()))?;
    let pieces: Vec<&str> = rest.split("<br>").skip(1).collect();
    ensure(
        rest.starts_with("<br>") && pieces.len() == 1 + lines.len(),
        || {
            format!(
                "{} pieces for {} lines: {html:?}",
                pieces.len(),
                lines.len()
            )
        },
    )?;
    let inputs = std::iter::once(draft.title.as_str())
        .chain(std::iter::once(draft.header.as_str()))
        .chain(lines.iter().copied());
    for (piece, input) in std::iter::once(title).chain(pieces).zip(inputs) {
        ensure(!piece.contains(['<', '>']), || {
            format!("unescaped markup in {piece:?} (from {input:?})")
        })?;
        ensure(entities_only(piece), || {
            format!("a bare & in {piece:?} (from {input:?})")
        })?;
        ensure(html_escape::decode_html_entities(piece) == input, || {
            format!("{piece:?} does not decode to {input:?}")
        })?;
    }
    Ok(())
}

/// Every `&` starts `&amp;`, `&lt;` or `&gt;`: the entities the escaper
/// writes.
fn entities_only(piece: &str) -> bool {
    piece.match_indices('&').all(|(at, _)| {
        ["&amp;", "&lt;", "&gt;"]
            .iter()
            .any(|e| piece[at..].starts_with(e))
    })
}

#[derive(Clone)]
pub struct Day {
    pub zoho: bool,
    pub title: String,
    pub header: String,
    /// (timestamp, text), one message each.
    pub lines: Vec<(i64, String)>,
    pub max: usize,
}

/// Long texts shown by their length and beginning, so a failure reads.
impl std::fmt::Debug for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self
            .lines
            .iter()
            .map(|(at, text)| format!("{at}: {}", super::short(text)))
            .collect();
        f.debug_struct("Day")
            .field("zoho", &self.zoho)
            .field("title", &self.title)
            .field("header", &self.header)
            .field("max", &self.max)
            .field("lines", &lines)
            .finish()
    }
}

pub fn day() -> impl Strategy<Value = Day> {
    let line = (
        0i64..86_400,
        prop_oneof![
            4 => any_text(),
            1 => proptest::collection::vec(any::<char>(), 800..4000)
                .prop_map(|c| c.into_iter().collect::<String>()),
            1 => "[<>&]{300,2000}",
        ],
    );
    (
        any::<bool>(),
        "[ -~]{0,40}|.{0,20}",
        "[ -~]{0,60}",
        proptest::collection::vec(line, 1..20),
        300usize..4000,
    )
        .prop_map(|(zoho, title, header, lines, max)| Day {
            zoho,
            title,
            header,
            lines,
            max,
        })
}

fn part(title: &str, number: u32) -> DayNote {
    DayNote {
        workspace_id: "ws".into(),
        chat_key: "1#447700900123".into(),
        day: "2025-06-15".into(),
        part: number,
        record: RecordRef {
            crm: CrmKind::Zoho,
            module: "Leads".into(),
            id: "1".into(),
        },
        also: None,
        title: if number == 1 {
            title.to_owned()
        } else {
            format!("{title} (part {number})")
        },
        note_id: None,
        create_started: false,
        full: false,
        lines: Vec::new(),
        version: 0,
    }
}

/// The day's lines placed in parts: each part within the limit, each
/// message in exactly one part, its text whole or cut at a character with
/// the mark; placed again (a redelivery), nothing is added.
pub fn check_day(day: &Day) -> Checked {
    let crm = crm(if day.zoho {
        CrmKind::Zoho
    } else {
        CrmKind::Pipedrive
    });
    let crm = crm.as_ref();
    let size = |note: &DayNote| crm.note_size(&rendered_note(crm, note, &day.header));
    // The limit leaves room for the longest title, the header and a line
    // holding no more than the mark (else nothing could fit).
    let mut smallest = part(&day.title, 99);
    smallest.insert_line(NoteLine {
        message_id: "m".into(),
        timestamp: 0,
        text: CUT_MARK.trim_start().to_owned(),
    });
    if size(&smallest) > day.max {
        return Ok(());
    }
    let lines: Vec<NoteLine> = day
        .lines
        .iter()
        .enumerate()
        .map(|(i, (timestamp, text))| NoteLine {
            message_id: format!("wamid.{i}"),
            timestamp: *timestamp,
            text: text.clone(),
        })
        .collect();
    let next = |full: &DayNote| part(&day.title, full.part + 1);
    let placed = place_lines(
        crm,
        &day.header,
        day.max,
        part(&day.title, 1),
        lines.clone(),
        |_| false,
        next,
    );
    let parts = &placed.changed;
    let mut where_held: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (i, note) in parts.iter().enumerate() {
        ensure(note.part == i as u32 + 1, || {
            format!(
                "parts numbered {:?}",
                parts.iter().map(|p| p.part).collect::<Vec<_>>()
            )
        })?;
        ensure(note.full == (i + 1 < parts.len()), || {
            format!("part {} full = {}", note.part, note.full)
        })?;
        let size = size(note);
        ensure(size <= day.max, || {
            format!(
                "part {} is {size} long, over the limit {} ({} lines)",
                note.part,
                day.max,
                note.lines.len()
            )
        })?;
        for line in &note.lines {
            where_held
                .entry(line.message_id.as_str())
                .or_default()
                .push(note.part);
        }
    }
    for line in &lines {
        let held = where_held
            .get(line.message_id.as_str())
            .cloned()
            .unwrap_or_default();
        ensure(held.len() == 1, || {
            format!("{} is held by parts {held:?}", line.message_id)
        })?;
        let kept = parts
            .iter()
            .flat_map(|p| &p.lines)
            .find(|l| l.message_id == line.message_id)
            .map(|l| l.text.as_str())
            .unwrap_or_default();
        let whole = kept == line.text;
        let cut = kept
            .strip_suffix(CUT_MARK)
            .is_some_and(|prefix| line.text.starts_with(prefix) && prefix.len() < line.text.len());
        ensure(whole || cut, || {
            format!(
                "{}'s text is neither whole nor a cut of it ({} of {} bytes kept)",
                line.message_id,
                kept.len(),
                line.text.len()
            )
        })?;
    }
    ensure(placed.added.len() == lines.len(), || {
        format!("{} of {} added", placed.added.len(), lines.len())
    })?;
    // Delivered again: every part holds them already.
    let last = parts.last().cloned().expect("at least the open part");
    let again = place_lines(
        crm,
        &day.header,
        day.max,
        last,
        lines,
        |id| parts.iter().any(|p| p.holds(id)),
        next,
    );
    ensure(again.added.is_empty(), || {
        format!("a redelivery added {:?}", again.added)
    })
}
