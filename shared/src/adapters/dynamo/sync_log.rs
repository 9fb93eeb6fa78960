//! Sync-log entries (`LOG#<id>`, with a chat's in the `ByChat` index; keys in
//! the module's table).

use async_trait::async_trait;

use crate::error::StoreError;
use crate::store::{LogEntry, SyncLogStore};

use super::{
    BY_CHAT, DynamoStore, chat_index_pk, expired, from_item, request_error, s, to_item, ws_pk,
};

#[async_trait]
impl SyncLogStore for DynamoStore {
    async fn append_log(&self, entry: &LogEntry, ttl: i64) -> Result<(), StoreError> {
        let mut item = to_item(
            ws_pk(&entry.workspace_id),
            format!("LOG#{}", entry.id),
            entry,
            Some(ttl),
        )?;
        if let Some(chat_key) = &entry.chat_key {
            item.insert(
                "chat_pk".into(),
                s(chat_index_pk(&entry.workspace_id, chat_key)),
            );
            item.insert("chat_sk".into(), s(format!("LOG#{}", entry.id)));
        }
        self.put(item).await
    }

    async fn log_entries(
        &self,
        workspace_id: &str,
        chat_key: Option<&str>,
        before: Option<&str>,
        limit: usize,
        now: i64,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let mut entries = Vec::new();
        let mut start = None;
        // Newest first: ids start with a zero-padded timestamp. One chat's
        // entries come from the ByChat index, the workspace's from the table.
        let (from, to) = (
            "LOG#".to_owned(),
            match before {
                Some(before) => format!("LOG#{before}"),
                None => "LOG$".to_owned(), // just past every `LOG#…`
            },
        );
        loop {
            let (items, next) = match chat_key {
                Some(chat_key) => {
                    self.index_page(
                        BY_CHAT,
                        "chat_pk = :k AND chat_sk BETWEEN :from AND :to",
                        &[
                            (":k", chat_index_pk(workspace_id, chat_key)),
                            (":from", from.clone()),
                            (":to", to.clone()),
                        ],
                        start,
                        None,
                        true,
                    )
                    .await?
                }
                None => {
                    let out = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .scan_index_forward(false)
                        .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                        .expression_attribute_values(":pk", s(ws_pk(workspace_id)))
                        .expression_attribute_values(":from", s(from.clone()))
                        .expression_attribute_values(":to", s(to.clone()))
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(request_error)?;
                    (out.items.unwrap_or_default(), out.last_evaluated_key)
                }
            };
            for item in items {
                if expired(&item, now) {
                    continue;
                }
                let entry: LogEntry = from_item(item)?;
                if before == Some(entry.id.as_str()) {
                    continue;
                }
                entries.push(entry);
                if entries.len() == limit {
                    return Ok(entries);
                }
            }
            start = next;
            if start.is_none() {
                return Ok(entries);
            }
        }
    }
}
