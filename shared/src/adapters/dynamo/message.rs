//! The message ledger (`MSG#<wamid>`, with the `ByChat` and `ByState`
//! indexes) and live-chat sends (`SEND#…`); keys in the module's table.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::adapters::sealed::{self, ATTACHMENT_FILE_NAME, MESSAGE_FIELDS};
use crate::error::StoreError;
use crate::model::{AttachmentOutcome, Delivery, MessageState, StoredMessage};
use crate::retention::Expiry;
use crate::store::{Insert, MessageStore, Page, SendClaim};

use super::{
    BY_CHAT, BY_STATE, DynamoStore, Item, RETAINED_FROM, add_expiry, chat_index_pk,
    condition_outcome, expired, message_order_key, n, now, open_item, request_error, s,
    set_and_remove, state_index_pk, ws_pk,
};

/// Every field a [`MessageState`] variant may write into a message item
/// (with its index key and its expiry).
const MESSAGE_STATE_FIELDS: [&str; 8] = [
    "state",
    "reason",
    "note_id",
    "attempt",
    "next_attempt_at",
    "state_pk",
    "ttl",
    RETAINED_FROM,
];

#[async_trait]
impl MessageStore for DynamoStore {
    async fn advance_delivery(
        &self,
        workspace_id: &str,
        message_id: &str,
        delivery: &Delivery,
    ) -> Result<bool, StoreError> {
        let value = serde_dynamo::to_attribute_value(delivery)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let update = self
            .update_in(workspace_id, format!("MSG#{message_id}"))
            .update_expression("SET delivery = :d, delivery_rank = :r")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(delivery_rank) OR delivery_rank < :r)",
            )
            .expression_attribute_values(":d", value)
            .expression_attribute_values(":r", n(i64::from(delivery.rank())));
        condition_outcome(update.send().await)
    }

    async fn claim_send(
        &self,
        workspace_id: &str,
        send_key: &str,
        now: i64,
    ) -> Result<SendClaim, StoreError> {
        let sk = format!("SEND#{send_key}");
        let mut item = Item::new();
        item.insert("pk".into(), s(ws_pk(workspace_id)));
        item.insert("sk".into(), s(sk.as_str()));
        item.insert("started_at".into(), n(now));
        // A week: longer than any client retries the same send.
        item.insert("ttl".into(), n(now + 7 * 86_400));
        if self.put_if(item, "attribute_not_exists(pk)", None).await? {
            return Ok(SendClaim::Claimed);
        }
        let existing = self
            .get_raw(ws_pk(workspace_id), sk)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a send claim vanished".into()))?;
        if let Some(id) = existing.get("message_id").and_then(|v| v.as_s().ok()) {
            return Ok(SendClaim::Sent {
                message_id: id.clone(),
            });
        }
        let started_at = existing
            .get("started_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        Ok(SendClaim::InProgress { started_at })
    }

    async fn finish_send(
        &self,
        workspace_id: &str,
        send_key: &str,
        message_id: &str,
    ) -> Result<(), StoreError> {
        self.update_in(workspace_id, format!("SEND#{send_key}"))
            .update_expression("SET message_id = :m")
            .expression_attribute_values(":m", s(message_id))
            .send()
            .await
            .map_err(request_error)?;
        Ok(())
    }

    async fn release_send(&self, workspace_id: &str, send_key: &str) -> Result<(), StoreError> {
        self.delete(ws_pk(workspace_id), format!("SEND#{send_key}"))
            .await
    }

    async fn insert_message(
        &self,
        message: &StoredMessage,
    ) -> Result<Insert<StoredMessage>, StoreError> {
        let item = self.message_item(message, &self.content_cipher().await?)?;
        if self.put_if(item, "attribute_not_exists(pk)", None).await? {
            return Ok(Insert::Inserted);
        }
        let existing = self
            .message(&message.workspace_id, &message.message_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("item vanished after a failed insert".into()))?;
        Ok(Insert::Exists(existing))
    }

    async fn message(
        &self,
        workspace_id: &str,
        message_id: &str,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let item = self
            .get_raw(ws_pk(workspace_id), format!("MSG#{message_id}"))
            .await?;
        Ok(self.open_messages(item.into_iter().collect()).await?.pop())
    }

    async fn chat_messages(
        &self,
        workspace_id: &str,
        chat_key: &str,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let items = self
            .index_items(
                BY_CHAT,
                "chat_pk = :k AND begins_with(chat_sk, :msg)",
                &[
                    (":k", chat_index_pk(workspace_id, chat_key)),
                    (":msg", "MSG#".to_owned()),
                ],
            )
            .await?;
        // A message past its retention is gone, whether or not TTL has
        // removed it yet.
        let now = now();
        self.open_messages(
            items
                .into_iter()
                .filter(|item| !expired(item, now))
                .collect(),
        )
        .await
    }

    async fn move_message_to_chat(
        &self,
        workspace_id: &str,
        message: &StoredMessage,
        from: &str,
        to: &str,
    ) -> Result<bool, StoreError> {
        let result = self
            .update_message(workspace_id, &message.message_id)
            .update_expression("SET chat_key = :to, chat_pk = :pk, chat_sk = :sk")
            .condition_expression("chat_key = :from")
            .expression_attribute_values(":to", s(to))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":pk", s(chat_index_pk(workspace_id, to)))
            .expression_attribute_values(":sk", s(format!("MSG#{}", message_order_key(message))))
            .send()
            .await;
        condition_outcome(result)
    }

    async fn mark_attachment_started(
        &self,
        workspace_id: &str,
        message_id: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        // A new message holds the attribute as NULL (serde's None), which
        // `if_not_exists` takes for a value: the condition looks at its type.
        let result = self
            .update_message(workspace_id, message_id)
            .update_expression("SET attachment_started_at = :at")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(attachment_started_at) OR attribute_type(attachment_started_at, :null))",
            )
            .expression_attribute_values(":at", n(at))
            .expression_attribute_values(":null", s("NULL"))
            .send()
            .await;
        // Not written: an earlier start is kept.
        condition_outcome(result).map(|_| ())
    }

    async fn set_message_attachment(
        &self,
        workspace_id: &str,
        message_id: &str,
        outcome: &AttachmentOutcome,
    ) -> Result<(), StoreError> {
        // The file name (a document's own) is content: sealed as the
        // message's `attachment.file_name`, beside the outcome.
        let mut outcome: Item =
            serde_dynamo::to_item(outcome).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let key = ATTACHMENT_FILE_NAME[1];
        let (attribute, sealed_file_name) = match outcome.get(key) {
            Some(AttributeValue::S(name)) => sealed::seal_value(
                &self.content_cipher().await?,
                &sealed::item_binding(&ws_pk(workspace_id), &format!("MSG#{message_id}")),
                ATTACHMENT_FILE_NAME,
                name,
            ),
            _ => return Err(StoreError::Refused("an attachment outcome names its file")),
        };
        outcome.insert(key.to_owned(), AttributeValue::Null(true));
        self.update_message(workspace_id, message_id)
            .update_expression(format!("SET attachment = :a, {attribute} = :f"))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":a", AttributeValue::M(outcome))
            .expression_attribute_values(":f", sealed_file_name)
            .send()
            .await
            .map_err(request_error)?;
        Ok(())
    }

    async fn waiting_messages(
        &self,
        workspace_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredMessage>, StoreError> {
        let mut messages: Vec<StoredMessage> = Vec::new();
        let mut start = None;
        let cipher = self.content_cipher().await?;
        let mut values = vec![(":k", state_index_pk(workspace_id, "waiting"))];
        let condition = match after {
            Some(after) => {
                values.push((":after", after.to_owned()));
                "state_pk = :k AND state_sk > :after"
            }
            None => "state_pk = :k",
        };
        loop {
            let wanted = limit.saturating_sub(messages.len());
            let (items, next) = self
                .index_page(
                    BY_STATE,
                    condition,
                    &values,
                    start,
                    Some(i32::try_from(wanted).unwrap_or(i32::MAX)),
                    false,
                )
                .await?;
            for item in items {
                messages.push(open_item(&cipher, item, MESSAGE_FIELDS)?);
            }
            start = next;
            if start.is_none() || messages.len() >= limit {
                let cursor = match (&start, messages.last()) {
                    (Some(_), Some(last)) => Some(message_order_key(last)),
                    _ => None,
                };
                return Ok(Page {
                    items: messages,
                    next: cursor,
                });
            }
        }
    }

    async fn set_message_state(
        &self,
        workspace_id: &str,
        message_id: &str,
        state: &MessageState,
        only_from: Option<&[&str]>,
    ) -> Result<bool, StoreError> {
        if state.is_finished() {
            return Err(StoreError::Refused(
                "a finished state is written with its expiry (finish_message)",
            ));
        }
        self.write_message_state(workspace_id, message_id, state, only_from, None)
            .await
    }

    async fn finish_message(
        &self,
        workspace_id: &str,
        message_id: &str,
        state: &MessageState,
        expiry: Expiry,
    ) -> Result<(), StoreError> {
        if !state.is_finished() {
            return Err(StoreError::Refused(
                "only a finished state expires (set_message_state)",
            ));
        }
        self.write_message_state(workspace_id, message_id, state, None, Some(expiry))
            .await
            .map(|_| ())
    }
}

impl DynamoStore {
    /// Writes a message's state, and its expiry (a finished state's) or none.
    async fn write_message_state(
        &self,
        workspace_id: &str,
        message_id: &str,
        state: &MessageState,
        only_from: Option<&[&str]>,
        expiry: Option<Expiry>,
    ) -> Result<bool, StoreError> {
        // The state is a tagged enum flattened into the item: one update
        // writes the new variant's fields and drops the old one's. It is a
        // single conditional write, not a read then a put: a worker's state
        // must not be lost to the webhook marking the message queued at the
        // same moment (that left skipped messages showing `queued`).
        if only_from.is_some_and(<[&str]>::is_empty) {
            return Ok(false);
        }
        let mut state_item: Item =
            serde_dynamo::to_item(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The ByState index follows the state; only a finished message may
        // expire (a state without an expiry drops the one it had).
        state_item.insert(
            "state_pk".into(),
            s(state_index_pk(workspace_id, state.name())),
        );
        if let Some(expiry) = expiry {
            add_expiry(&mut state_item, expiry);
        }
        let removes: Vec<String> = MESSAGE_STATE_FIELDS
            .iter()
            .filter(|field| !state_item.contains_key(**field))
            .map(|field| (*field).to_owned())
            .collect();
        let sets: Vec<(String, AttributeValue)> = state_item.into_iter().collect();
        let mut update = self.update_message(workspace_id, message_id);
        let mut condition = "attribute_exists(pk)".to_owned();
        if let Some(allowed) = only_from {
            let names: Vec<String> = (0..allowed.len()).map(|i| format!(":from{i}")).collect();
            condition.push_str(&format!(" AND #state IN ({})", names.join(", ")));
            update = update.expression_attribute_names("#state", "state");
            for (name, from) in names.into_iter().zip(allowed) {
                update = update.expression_attribute_values(name, s(*from));
            }
        }
        let update = set_and_remove(update.condition_expression(condition), sets, &removes);
        let written = condition_outcome(update.send().await)?;
        if !written && self.message(workspace_id, message_id).await?.is_none() {
            return Err(StoreError::Corrupt(format!(
                "message {message_id} is not stored"
            )));
        }
        Ok(written)
    }
}
