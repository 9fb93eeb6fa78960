//! Messages and their states.

use crate::error::StoreError;
use crate::model::{AttachmentOutcome, Delivery, MessageState, StoredMessage};
use crate::retention::Expiry;
use crate::store::{Insert, MessageStore, Page, SendClaim};
use async_trait::async_trait;

use super::MemoryStore;

#[async_trait]
impl MessageStore for MemoryStore {
    async fn advance_delivery(
        &self,
        workspace_id: &str,
        message_id: &str,
        delivery: &Delivery,
    ) -> Result<bool, StoreError> {
        self.write("advance_delivery");
        let mut state = self.state();
        let Some(message) = state
            .messages
            .get_mut(&(workspace_id.to_owned(), message_id.to_owned()))
        else {
            return Ok(false);
        };
        if message
            .delivery
            .as_ref()
            .is_some_and(|d| d.rank() >= delivery.rank())
        {
            return Ok(false);
        }
        message.delivery = Some(delivery.clone());
        Ok(true)
    }

    async fn claim_send(
        &self,
        _workspace_id: &str,
        _send_key: &str,
        now: i64,
    ) -> Result<SendClaim, StoreError> {
        self.write("claim_send");
        // Never lets a generated request send anything.
        Ok(SendClaim::InProgress { started_at: now })
    }

    async fn finish_send(
        &self,
        _workspace_id: &str,
        _send_key: &str,
        _message_id: &str,
    ) -> Result<(), StoreError> {
        self.write("finish_send");
        Ok(())
    }

    async fn release_send(&self, _workspace_id: &str, _send_key: &str) -> Result<(), StoreError> {
        self.write("release_send");
        Ok(())
    }

    async fn insert_message(
        &self,
        message: &StoredMessage,
    ) -> Result<Insert<StoredMessage>, StoreError> {
        self.write("insert_message");
        let mut state = self.state();
        let key = (message.workspace_id.clone(), message.message_id.clone());
        if let Some(existing) = state.messages.get(&key) {
            return Ok(Insert::Exists(existing.clone()));
        }
        state.messages.insert(key, message.clone());
        Ok(Insert::Inserted)
    }

    async fn message(
        &self,
        workspace_id: &str,
        message_id: &str,
    ) -> Result<Option<StoredMessage>, StoreError> {
        self.read();
        Ok(self
            .state()
            .messages
            .get(&(workspace_id.to_owned(), message_id.to_owned()))
            .cloned())
    }

    async fn chat_messages(
        &self,
        workspace_id: &str,
        chat_key: &str,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.read();
        let mut messages: Vec<StoredMessage> = self
            .state()
            .messages
            .values()
            .filter(|m| m.workspace_id == workspace_id && m.chat_key == chat_key)
            .cloned()
            .collect();
        messages.sort_by_key(|m| m.timestamp);
        Ok(messages)
    }

    async fn move_message_to_chat(
        &self,
        workspace_id: &str,
        message: &StoredMessage,
        from: &str,
        to: &str,
    ) -> Result<bool, StoreError> {
        self.write("move_message_to_chat");
        let mut state = self.state();
        match state
            .messages
            .get_mut(&(workspace_id.to_owned(), message.message_id.clone()))
        {
            Some(stored) if stored.chat_key == from => {
                stored.chat_key = to.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn mark_attachment_started(
        &self,
        _workspace_id: &str,
        _message_id: &str,
        _at: i64,
    ) -> Result<(), StoreError> {
        self.write("mark_attachment_started");
        Ok(())
    }

    async fn set_message_attachment(
        &self,
        _workspace_id: &str,
        _message_id: &str,
        _outcome: &AttachmentOutcome,
    ) -> Result<(), StoreError> {
        self.write("set_message_attachment");
        Ok(())
    }

    async fn finish_message(
        &self,
        workspace_id: &str,
        message_id: &str,
        state: &MessageState,
        _expiry: Expiry,
    ) -> Result<(), StoreError> {
        self.write("finish_message");
        if let Some(m) = self
            .state()
            .messages
            .get_mut(&(workspace_id.to_owned(), message_id.to_owned()))
        {
            m.state = state.clone();
        }
        Ok(())
    }

    async fn waiting_messages(
        &self,
        _workspace_id: &str,
        _after: Option<&str>,
        _limit: usize,
    ) -> Result<Page<StoredMessage>, StoreError> {
        self.read();
        Ok(Page {
            items: Vec::new(),
            next: None,
        })
    }

    async fn set_message_state(
        &self,
        workspace_id: &str,
        message_id: &str,
        state: &MessageState,
        only_from: Option<&[&str]>,
    ) -> Result<bool, StoreError> {
        self.write("set_message_state");
        if state.is_finished() {
            return Err(StoreError::Refused("a finished state needs its expiry"));
        }
        let mut stored = self.state();
        let Some(m) = stored
            .messages
            .get_mut(&(workspace_id.to_owned(), message_id.to_owned()))
        else {
            return Ok(false);
        };
        if only_from.is_some_and(|from| !from.contains(&m.state.name())) {
            return Ok(false);
        }
        m.state = state.clone();
        Ok(true)
    }
}
