//! Message content sealed inside DynamoDB items, so that a raw item (a
//! table export, a console read, a backup) holds none of it in clear: what
//! a customer or the business wrote, a media caption or file name, the
//! contact's name. Each such field is sealed with the content cipher
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
