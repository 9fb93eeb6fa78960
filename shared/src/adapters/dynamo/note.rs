//! Day notes (`NOTE#<chat key>#<day>#<record id>#<part>`; keys in the
//! module's table).

use async_trait::async_trait;

use crate::adapters::sealed::{self, NOTE_FIELDS, NOTE_LINE_TEXT};
use crate::error::StoreError;
use crate::model::{DayNote, RecordRef};
use crate::retention::Expiry;
use crate::store::NoteStore;

use super::{DynamoStore, add_expiry, expired, note_sk, now, open_item, to_item, ws_pk};

#[async_trait]
impl NoteStore for DynamoStore {
    async fn day_note(
        &self,
        workspace_id: &str,
        chat_key: &str,
        record: &RecordRef,
        day: &str,
        part: u32,
    ) -> Result<Option<DayNote>, StoreError> {
        // An expired note is gone, whether or not TTL has removed it yet.
        let Some(mut item) = self
            .get_raw(
                ws_pk(workspace_id),
                format!("NOTE#{chat_key}#{day}#{}#{part}", record.id),
            )
            .await?
            .filter(|item| !expired(item, now()))
        else {
            return Ok(None);
        };
        let cipher = self.content_cipher().await?;
        let bound_to =
            sealed::item_binding(&ws_pk(workspace_id), &note_sk(chat_key, day, record, part));
        sealed::open_list(&mut item, &cipher, &bound_to, &NOTE_LINE_TEXT)
            .map_err(|e| StoreError::Corrupt(format!("a NOTE item's lines: {e}")))?;
        open_item(&cipher, item, NOTE_FIELDS).map(Some)
    }

    async fn save_day_note(&self, note: &DayNote, expiry: Expiry) -> Result<bool, StoreError> {
        let (pk, sk) = (
            ws_pk(&note.workspace_id),
            note_sk(&note.chat_key, &note.day, &note.record, note.part),
        );
        let bound_to = sealed::item_binding(&pk, &sk);
        let mut item = to_item(pk, sk, note, None)?;
        // Its title names the contact and its lines hold the messages' text.
        let cipher = self.content_cipher().await?;
        sealed::seal(&mut item, &cipher, &bound_to, NOTE_FIELDS);
        sealed::seal_list(&mut item, &cipher, &bound_to, &NOTE_LINE_TEXT);
        add_expiry(&mut item, expiry);
        self.put_versioned(item, note.version).await
    }
}
