//! Day notes and the sync log.

use crate::error::StoreError;
use crate::model::{DayNote, RecordRef};
use crate::retention::Expiry;
use crate::store::{LogEntry, NoteStore, SyncLogStore};
use async_trait::async_trait;

use super::MemoryStore;

#[async_trait]
impl NoteStore for MemoryStore {
    async fn day_note(
        &self,
        workspace_id: &str,
        chat_key: &str,
        record: &RecordRef,
        day: &str,
        part: u32,
    ) -> Result<Option<DayNote>, StoreError> {
        self.read();
        Ok(self
            .state()
            .notes
            .get(&(
                workspace_id.to_owned(),
                chat_key.to_owned(),
                record.id.clone(),
                day.to_owned(),
                part,
            ))
            .cloned())
    }

    async fn save_day_note(&self, note: &DayNote, _expiry: Expiry) -> Result<bool, StoreError> {
        self.write("save_day_note");
        let key = (
            note.workspace_id.clone(),
            note.chat_key.clone(),
            note.record.id.clone(),
            note.day.clone(),
            note.part,
        );
        let mut state = self.state();
        let stored = state.notes.get(&key).map_or(0, |n| n.version);
        if stored + 1 != note.version {
            return Ok(false);
        }
        state.notes.insert(key, note.clone());
        Ok(true)
    }
}

#[async_trait]
impl SyncLogStore for MemoryStore {
    async fn append_log(&self, entry: &LogEntry, _ttl: i64) -> Result<(), StoreError> {
        self.write("append_log");
        self.state().log.push(entry.clone());
        Ok(())
    }

    async fn log_entries(
        &self,
        workspace_id: &str,
        chat_key: Option<&str>,
        _before: Option<&str>,
        limit: usize,
        _now: i64,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.read();
        Ok(self
            .state()
            .log
            .iter()
            .rev()
            .filter(|e| e.workspace_id == workspace_id)
            .filter(|e| chat_key.is_none_or(|k| e.chat_key.as_deref() == Some(k)))
            .take(limit)
            .cloned()
            .collect())
    }
}
