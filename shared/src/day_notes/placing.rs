//! Placing a run's lines in a day's parts without outgrowing a note.

use crate::crm::Crm;
use crate::model::{DayNote, NoteLine};

use super::text::rendered_note;

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
