//! Message content sealed inside DynamoDB items, so that a raw item (a
//! table export, a console read, a backup) holds none of it in clear: what
//! a customer or the business wrote, a media caption or file name, the
//! contact's name — in message, chat and day-note items. Each such field is sealed with the content cipher
//! (`crate::crypto::KeyRing::content_cipher`) into an attribute of its own,
//! `<field>_enc` (`media.caption` → `media_caption_enc`), bound to its item
//! and field (`WS#<ws>|MSG#<id>|text`): a value copied into another item, or
//! into another field of the same item, does not open. The clear field is
//! removed (top level) or set to null (inside a map, which keeps its other
//! attributes: a media's id, an attachment's outcome).
//!
//! Only these fields are sealed: everything the store queries or conditions
//! on (keys, states, timestamps, ids) stays as it is. Items written before
//! sealing existed hold their fields in clear and no `<field>_enc`: they
//! read as they are, and are sealed when next written.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::crypto::{CryptoError, TokenCipher};

type Item = HashMap<String, AttributeValue>;

/// A field that holds content: its attribute, or a map attribute and its
/// key in it.
pub(super) type Field = &'static [&'static str];

/// What a message item holds of its content (`crate::model::StoredMessage`).
pub(super) const MESSAGE_FIELDS: &[Field] = &[
    &["text"],
    &["contact_name"],
    &["media", "caption"],
    &["media", "filename"],
    &["attachment", "file_name"],
];

/// What a chat item holds of its contact (`crate::model::Chat`): the name
/// WhatsApp shows, and the one this product gave the record (the same name).
pub(super) const CHAT_FIELDS: &[Field] = &[CONTACT_NAME, RECORD_NAME];
pub(super) const CONTACT_NAME: Field = &["contact_name"];
pub(super) const RECORD_NAME: Field = &["record_name"];

/// What a day-note item holds besides its lines: its title names the
/// contact (`crate::model::DayNote`).
pub(super) const NOTE_FIELDS: &[Field] = &[&["title"]];

/// A field of each element of a list attribute (maps), each sealed inside
/// its element and bound to the element's id: a day note's lines, each one
/// message's text.
pub(super) struct ListField {
    list: &'static str,
    id: &'static str,
    field: &'static str,
}

pub(super) const NOTE_LINE_TEXT: ListField = ListField {
    list: "lines",
    id: "message_id",
    field: "text",
};

/// A message's attachment file name, written with its outcome on its own
/// (`SET attachment = …`).
pub(super) const ATTACHMENT_FILE_NAME: Field = &["attachment", "file_name"];

/// The attribute that holds a field's sealed value.
pub(super) fn sealed_name(field: Field) -> String {
    format!("{}_enc", field.join("_"))
}

/// What a field's sealed value is bound to: its item (`pk|sk`) and field.
fn binding(item: &str, field: Field) -> String {
    format!("{item}|{}", field.join("."))
}

/// The binding of the item with keys `pk` and `sk`.
pub(super) fn item_binding(pk: &str, sk: &str) -> String {
    format!("{pk}|{sk}")
}

/// Seals `fields` of `item` (bound to `bound_to`, see [`item_binding`]):
/// each clear string moves, sealed, to its `<field>_enc` attribute. A field
/// that is absent or null stays so.
pub(super) fn seal(item: &mut Item, cipher: &TokenCipher, bound_to: &str, fields: &[Field]) {
    for field in fields {
        let Some(clear) = take_clear(item, field) else {
            continue;
        };
        let (name, value) = seal_value(cipher, bound_to, field, &clear);
        item.insert(name, value);
    }
}

/// One field's clear value sealed: the attribute that holds it, and the
/// value (for an update that writes one field).
pub(super) fn seal_value(
    cipher: &TokenCipher,
    bound_to: &str,
    field: Field,
    clear: &str,
) -> (String, AttributeValue) {
    (
        sealed_name(field),
        AttributeValue::S(cipher.encrypt(clear, &binding(bound_to, field))),
    )
}

/// Opens what [`seal`] sealed back into place. A field with no sealed value
/// (an item from before sealing, or a field never set) is left as it is; a
/// sealed value that does not open (altered, moved from another item, or
/// sealed under another key) is an error: it is never shown in its stead.
pub(super) fn open(
    item: &mut Item,
    cipher: &TokenCipher,
    bound_to: &str,
    fields: &[Field],
) -> Result<(), CryptoError> {
    for field in fields {
        let Some(sealed) = item.remove(&sealed_name(field)) else {
            continue;
        };
        let AttributeValue::S(sealed) = sealed else {
            return Err(CryptoError::Decrypt);
        };
        let clear = cipher.decrypt(&sealed, &binding(bound_to, field))?;
        put(item, field, AttributeValue::S(clear));
    }
    Ok(())
}

/// Seals `field` of each element of its list (see [`ListField`]) into the
/// element's `<field>_enc`, bound to the item and the element's id.
pub(super) fn seal_list(item: &mut Item, cipher: &TokenCipher, bound_to: &str, field: &ListField) {
    for (id, element) in list_elements(item, field) {
        if let Some(AttributeValue::S(clear)) = element.remove(field.field) {
            let binding = format!("{bound_to}|{}.{id}.{}", field.list, field.field);
            element.insert(
                format!("{}_enc", field.field),
                AttributeValue::S(cipher.encrypt(&clear, &binding)),
            );
        }
    }
}

/// Opens what [`seal_list`] sealed; elements from before sealing (clear)
/// are left as they are.
pub(super) fn open_list(
    item: &mut Item,
    cipher: &TokenCipher,
    bound_to: &str,
    field: &ListField,
) -> Result<(), CryptoError> {
    for (id, element) in list_elements(item, field) {
        match element.remove(&format!("{}_enc", field.field)) {
            None => {}
            Some(AttributeValue::S(sealed)) => {
                let binding = format!("{bound_to}|{}.{id}.{}", field.list, field.field);
                let clear = cipher.decrypt(&sealed, &binding)?;
                element.insert(field.field.to_owned(), AttributeValue::S(clear));
            }
            Some(_) => return Err(CryptoError::Decrypt),
        }
    }
    Ok(())
}

/// The map elements of a list attribute, each with its id (elements
/// without one are not sealed: nothing to bind them to).
fn list_elements<'a>(
    item: &'a mut Item,
    field: &ListField,
) -> Vec<(String, &'a mut HashMap<String, AttributeValue>)> {
    let Some(AttributeValue::L(elements)) = item.get_mut(field.list) else {
        return Vec::new();
    };
    elements
        .iter_mut()
        .filter_map(|element| match element {
            AttributeValue::M(map) => {
                let id = map.get(field.id)?.as_s().ok()?.clone();
                Some((id, map))
            }
            _ => None,
        })
        .collect()
}

/// Takes a field's clear string out of the item: removed at the top level,
/// null inside a map.
fn take_clear(item: &mut Item, field: Field) -> Option<String> {
    match field {
        [name] => match item.remove(*name) {
            Some(AttributeValue::S(clear)) => Some(clear),
            Some(other) => {
                // Null, or not a string: nothing to seal; keep it as it was.
                item.insert((*name).to_owned(), other);
                None
            }
            None => None,
        },
        [map, key] => {
            let AttributeValue::M(inner) = item.get_mut(*map)? else {
                return None;
            };
            match inner.get(*key) {
                Some(AttributeValue::S(_)) => {}
                _ => return None,
            }
            match inner.insert((*key).to_owned(), AttributeValue::Null(true)) {
                Some(AttributeValue::S(clear)) => Some(clear),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Puts an opened value back where its field is. A map that is gone (it
/// never is for items this store writes) leaves the value out.
fn put(item: &mut Item, field: Field, value: AttributeValue) {
    match field {
        [name] => {
            item.insert((*name).to_owned(), value);
        }
        [map, key] => {
            if let Some(AttributeValue::M(inner)) = item.get_mut(*map) {
                inner.insert((*key).to_owned(), value);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyRing;
    use crate::model::{AttachmentOutcome, MessageState, StoredMessage};
    use crate::whatsapp::{Direction, Media};

    fn message() -> StoredMessage {
        StoredMessage {
            workspace_id: "ws".into(),
            message_id: "wamid.1".into(),
            chat_key: "170000000000001#447700900123".into(),
            direction: Direction::Inbound,
            timestamp: 1_779_268_500,
            kind: "document".into(),
            text: "[Document: Quote.pdf] Our quote".into(),
            media: Some(Media {
                id: "1200".into(),
                mime_type: Some("application/pdf".into()),
                caption: Some("Our quote".into()),
                filename: Some("Quote.pdf".into()),
            }),
            contact_name: Some("Alice".into()),
            state: MessageState::Queued,
            received_at: 1_779_268_501,
            attachment: Some(AttachmentOutcome::Attached {
                file_name: "Quote.pdf".into(),
                attachment_id: "9".into(),
            }),
            attachment_started_at: None,
            sent_by: None,
            delivery: None,
            reply_to: None,
            reaction_to: None,
        }
    }

    const ITEM: &str = "WS#ws|MSG#wamid.1";

    fn sealed(cipher: &TokenCipher) -> Item {
        let mut item: Item = serde_dynamo::to_item(message()).expect("an item");
        seal(&mut item, cipher, ITEM, MESSAGE_FIELDS);
        item
    }

    /// Every string anywhere in the item.
    fn strings(value: &AttributeValue, out: &mut Vec<String>) {
        match value {
            AttributeValue::S(s) => out.push(s.clone()),
            AttributeValue::M(m) => m.values().for_each(|v| strings(v, out)),
            AttributeValue::L(l) => l.iter().for_each(|v| strings(v, out)),
            _ => {}
        }
    }

    #[test]
    fn a_sealed_message_holds_no_content_in_clear_and_opens_as_it_was() {
        let cipher = KeyRing::from_master(b"master").content_cipher();
        let mut item = sealed(&cipher);
        let mut all = Vec::new();
        item.values().for_each(|v| strings(v, &mut all));
        for clear in ["Our quote", "Quote.pdf", "Alice"] {
            assert!(
                all.iter().all(|s| !s.contains(clear)),
                "{clear} in clear: {all:?}"
            );
        }
        // What the store queries on stays readable.
        assert!(all.contains(&"wamid.1".to_owned()) && all.contains(&"queued".to_owned()));
        open(&mut item, &cipher, ITEM, MESSAGE_FIELDS).expect("opens");
        let back: StoredMessage = serde_dynamo::from_item(item).expect("a message");
        assert_eq!(back, message());
    }

    #[test]
    fn a_tampered_moved_or_foreign_value_is_refused() {
        let cipher = KeyRing::from_master(b"master").content_cipher();
        // Altered.
        let mut item = sealed(&cipher);
        let Some(AttributeValue::S(text)) = item.get("text_enc").cloned() else {
            panic!("sealed text");
        };
        let mut altered = text.clone().into_bytes();
        altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
        item.insert(
            "text_enc".into(),
            AttributeValue::S(String::from_utf8(altered).expect("base64")),
        );
        assert_eq!(
            open(&mut item, &cipher, ITEM, MESSAGE_FIELDS),
            Err(CryptoError::Decrypt)
        );
        // The contact's name copied over the text of the same item.
        let mut item = sealed(&cipher);
        let name = item.get("contact_name_enc").cloned().expect("sealed name");
        item.insert("text_enc".into(), name);
        assert_eq!(
            open(&mut item, &cipher, ITEM, MESSAGE_FIELDS),
            Err(CryptoError::Decrypt)
        );
        // The whole item copied under another message, or workspace.
        for other in ["WS#ws|MSG#wamid.2", "WS#other|MSG#wamid.1"] {
            let mut item = sealed(&cipher);
            assert_eq!(
                open(&mut item, &cipher, other, MESSAGE_FIELDS),
                Err(CryptoError::Decrypt),
                "{other}"
            );
        }
        // Another deployment's key.
        let mut item = sealed(&cipher);
        let other_key = KeyRing::from_master(b"another").content_cipher();
        assert_eq!(
            open(&mut item, &other_key, ITEM, MESSAGE_FIELDS),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn a_day_notes_lines_are_sealed_each_bound_to_its_message() {
        use crate::model::{CrmKind, DayNote, NoteLine, RecordRef};
        let cipher = KeyRing::from_master(b"master").content_cipher();
        let note = DayNote {
            workspace_id: "ws".into(),
            chat_key: "170000000000001#447700900123".into(),
            day: "2026-05-20".into(),
            part: 1,
            record: RecordRef::new(CrmKind::Pipedrive, "persons", "1"),
            also: None,
            title: "WhatsApp Chat with Alice (20/05/2026)".into(),
            note_id: Some("9".into()),
            create_started: false,
            full: false,
            lines: ["wamid.1", "wamid.2"]
                .iter()
                .map(|id| NoteLine {
                    message_id: (*id).into(),
                    timestamp: 1,
                    text: format!("09:15 ← Alice: secret of {id}"),
                })
                .collect(),
            version: 1,
        };
        let bound_to = "WS#ws|NOTE#x";
        let sealed = || {
            let mut item: Item = serde_dynamo::to_item(&note).expect("an item");
            seal(&mut item, &cipher, bound_to, NOTE_FIELDS);
            seal_list(&mut item, &cipher, bound_to, &NOTE_LINE_TEXT);
            item
        };
        let mut item = sealed();
        let mut all = Vec::new();
        item.values().for_each(|v| strings(v, &mut all));
        assert!(
            all.iter()
                .all(|s| !s.contains("Alice") && !s.contains("secret")),
            "{all:?}"
        );
        open(&mut item, &cipher, bound_to, NOTE_FIELDS).expect("title");
        open_list(&mut item, &cipher, bound_to, &NOTE_LINE_TEXT).expect("lines");
        let back: DayNote = serde_dynamo::from_item(item).expect("a note");
        assert_eq!(back, note);
        // Two lines' texts swapped: neither opens.
        let mut item = sealed();
        let Some(AttributeValue::L(lines)) = item.get_mut("lines") else {
            panic!("lines");
        };
        let text = |line: &AttributeValue| line.as_m().expect("a map")["text_enc"].clone();
        let (first, second) = (text(&lines[0]), text(&lines[1]));
        if let AttributeValue::M(line) = &mut lines[0] {
            line.insert("text_enc".into(), second);
        }
        if let AttributeValue::M(line) = &mut lines[1] {
            line.insert("text_enc".into(), first);
        }
        assert_eq!(
            open_list(&mut item, &cipher, bound_to, &NOTE_LINE_TEXT),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn an_item_written_before_sealing_reads_as_it_is() {
        let cipher = KeyRing::from_master(b"master").content_cipher();
        let mut item: Item = serde_dynamo::to_item(message()).expect("an item");
        open(&mut item, &cipher, ITEM, MESSAGE_FIELDS).expect("nothing to open");
        let back: StoredMessage = serde_dynamo::from_item(item).expect("a message");
        assert_eq!(back, message());
        // Absent and null fields stay so.
        let bare = StoredMessage {
            media: None,
            contact_name: None,
            attachment: None,
            ..message()
        };
        let mut item: Item = serde_dynamo::to_item(&bare).expect("an item");
        seal(&mut item, &cipher, ITEM, MESSAGE_FIELDS);
        assert!(item.contains_key("text_enc"));
        assert!(!item.contains_key("contact_name_enc"));
        assert!(!item.contains_key("media_caption_enc"));
        open(&mut item, &cipher, ITEM, MESSAGE_FIELDS).expect("opens");
        let back: StoredMessage = serde_dynamo::from_item(item).expect("a message");
        assert_eq!(back, bare);
    }
}
