//! A workspace's deletion: every item of its partition, page by page, the
//! connections and the workspace item last (`WorkspaceRemovalStore`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

use crate::error::StoreError;
use crate::store::{Swept, WorkspaceRemovalStore, WorkspaceStore};

use super::{
    ConditionalCheck, DynamoStore, Item, condition_outcome, item_kind, n, request_error, s, ws_pk,
};

/// BatchWriteItem takes at most 25 requests.
const BATCH_WRITE_MAX: usize = 25;
/// How often deletes DynamoDB left unprocessed (throttling) are sent again
/// before the page fails (and runs again).
const BATCH_WRITE_ATTEMPTS: u32 = 5;

impl DynamoStore {
    /// Deletes the lookup that routes a WhatsApp number to the workspace,
    /// if it still does.
    async fn remove_number_lookup(
        &self,
        workspace_id: &str,
        phone_number_id: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("WANUMBER#{phone_number_id}")))
            .key("sk", s("WANUMBER"))
            .condition_expression("workspace_id = :ws")
            .expression_attribute_values(":ws", s(workspace_id))
            .send()
            .await;
        condition_outcome(result).map(|_| ())
    }

    /// Deletes items by key, 25 to a request.
    async fn delete_all(&self, keys: &[(String, String)]) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
        for chunk in keys.chunks(BATCH_WRITE_MAX) {
            let mut requests = Vec::with_capacity(chunk.len());
            for (pk, sk) in chunk {
                let delete = DeleteRequest::builder()
                    .key("pk", s(pk.as_str()))
                    .key("sk", s(sk.as_str()))
                    .build()
                    .map_err(|e| StoreError::Request(e.to_string()))?;
                requests.push(WriteRequest::builder().delete_request(delete).build());
            }
            for attempt in 0..BATCH_WRITE_ATTEMPTS {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(request_error)?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut left| left.remove(&self.table))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
            if !requests.is_empty() {
                return Err(StoreError::Request(format!(
                    "DynamoDB left {} deletes unprocessed",
                    requests.len()
                )));
            }
        }
        Ok(())
    }

    /// Up to `limit` items of the workspace's partition after `after`, their
    /// `projection` only (`#name` placeholders stand for `names`); and where
    /// the next page starts.
    pub(super) async fn partition_page(
        &self,
        workspace_id: &str,
        after: Option<&str>,
        limit: usize,
        (projection, names): (&str, &[(&str, &str)]),
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .projection_expression(projection)
            .set_expression_attribute_names((!names.is_empty()).then(|| {
                names
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            }))
            .expression_attribute_values(":pk", s(ws_pk(workspace_id)))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        query = match after {
            Some(after) => query
                .key_condition_expression("pk = :pk AND sk > :after")
                .expression_attribute_values(":after", s(after)),
            None => query.key_condition_expression("pk = :pk"),
        };
        let out = query.send().await.map_err(request_error)?;
        let next = out
            .last_evaluated_key
            .and_then(|mut key| key.remove("sk"))
            .and_then(|sk| sk.as_s().ok().cloned());
        Ok((out.items.unwrap_or_default(), next))
    }
}

/// What a workspace's deletion keeps until the end: its connections (until
/// their grants are revoked: they hold the tokens to revoke them with) and
/// the workspace item (it says the workspace is being deleted).
fn kept_until_the_end(sk: &str) -> bool {
    sk == "WORKSPACE" || sk.starts_with("CONN#")
}

#[async_trait]
impl WorkspaceRemovalStore for DynamoStore {
    async fn mark_workspace_deleting(
        &self,
        workspace_id: &str,
        at: i64,
    ) -> Result<Option<i64>, StoreError> {
        let result = self
            .update_in(workspace_id, "WORKSPACE".into())
            .update_expression("SET deleting_since = if_not_exists(deleting_since, :at)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", n(at))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(ConditionalCheck::is_condition_failure) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(request_error(e)),
        };
        out.attributes
            .and_then(|mut item| item.remove("deleting_since"))
            .and_then(|since| since.as_n().ok().and_then(|v| v.parse().ok()))
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt("the deletion mark was not written".into()))
    }

    async fn remove_number_lookups(&self, workspace_id: &str) -> Result<usize, StoreError> {
        let numbers = self.whatsapp_numbers(workspace_id).await?;
        for number in &numbers {
            self.remove_number_lookup(workspace_id, &number.phone_number_id)
                .await?;
        }
        Ok(numbers.len())
    }

    async fn purge_workspace_page(
        &self,
        workspace_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Swept, StoreError> {
        let (items, next) = self
            .partition_page(workspace_id, after, limit, ("sk, token_hash", &[]))
            .await?;
        let mut lookups = Vec::new();
        let mut owned = Vec::new();
        for item in items {
            let Some(sk) = item.get("sk").and_then(|v| v.as_s().ok()) else {
                continue;
            };
            if kept_until_the_end(sk) {
                continue;
            }
            if let Some(phone_number_id) = sk.strip_prefix("WANUMBER#") {
                self.remove_number_lookup(workspace_id, phone_number_id)
                    .await?;
            }
            if sk.starts_with("USER#")
                && let Some(hash) = item.get("token_hash").and_then(|v| v.as_s().ok())
            {
                lookups.push((format!("TOKEN#{hash}"), "TOKEN".to_owned()));
            }
            if let Some(nonce) = sk.strip_prefix("OAUTHSTATE#") {
                lookups.push((format!("OAUTHSTATE#{nonce}"), "STATE".to_owned()));
            }
            owned.push((ws_pk(workspace_id), sk.clone()));
        }
        // The global lookups before the items that lead to them: a page cut
        // off half-way finds those items, and so the lookups, again.
        self.delete_all(&lookups).await?;
        self.delete_all(&owned).await?;
        Ok(Swept {
            count: owned.len(),
            next,
        })
    }

    async fn workspace_leftovers(&self, workspace_id: &str) -> Result<Vec<String>, StoreError> {
        // Ten besides the workspace item.
        let (items, _) = self
            .partition_page(workspace_id, None, 11, ("sk", &[]))
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| item.get("sk").and_then(|v| v.as_s().ok()))
            .filter(|sk| sk.as_str() != "WORKSPACE")
            .map(|sk| item_kind(sk))
            .collect())
    }

    async fn remove_workspace_item(&self, workspace_id: &str) -> Result<(), StoreError> {
        self.delete(ws_pk(workspace_id), "WORKSPACE".into()).await
    }
}
