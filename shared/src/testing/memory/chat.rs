//! Chats, their links to records and the claims to create one.

use crate::error::StoreError;
use crate::model::{Chat, ChatPatch, RecordRef};
use crate::phone::E164;
use crate::store::{ChatStore, ContactClaim, ReadMark};
use async_trait::async_trait;

use super::{Claim, MemoryStore, new_chat};

#[async_trait]
impl ChatStore for MemoryStore {
    async fn chat_and_read_mark(
        &self,
        workspace_id: &str,
        chat_key: &str,
    ) -> Result<Option<(Chat, Option<ReadMark>)>, StoreError> {
        Ok(self.chat(workspace_id, chat_key).await?.map(|c| (c, None)))
    }

    async fn advance_read_mark(
        &self,
        _workspace_id: &str,
        _chat_key: &str,
        _mark: &ReadMark,
    ) -> Result<bool, StoreError> {
        self.write("advance_read_mark");
        Ok(true)
    }

    async fn upsert_chat_contact(
        &self,
        workspace_id: &str,
        chat_key: &str,
        phone_number_id: &str,
        contact: &E164,
        contact_name: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write("upsert_chat_contact");
        let mut state = self.state();
        let chat = state
            .chats
            .entry((workspace_id.to_owned(), chat_key.to_owned()))
            .or_insert_with(|| new_chat(workspace_id, chat_key, phone_number_id, contact.clone()));
        if let Some(name) = contact_name {
            chat.contact_name = Some(name.to_owned());
        }
        Ok(())
    }

    async fn chat(&self, workspace_id: &str, chat_key: &str) -> Result<Option<Chat>, StoreError> {
        self.read();
        Ok(self
            .state()
            .chats
            .get(&(workspace_id.to_owned(), chat_key.to_owned()))
            .cloned())
    }

    async fn claim_record_creation(
        &self,
        workspace_id: &str,
        chat_key: &str,
        claimant: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        self.write("claim_record_creation");
        let mut state = self.state();
        let key = (workspace_id.to_owned(), chat_key.to_owned());
        // As the table's condition: the chat exists, has no record, and no
        // one else holds a claim that has not run out.
        let unlinked = state.chats.get(&key).is_some_and(|c| c.record.is_none());
        if !unlinked || !Claim::free_for(state.chat_claims.get(&key), claimant, now) {
            return Ok(false);
        }
        state
            .chat_claims
            .insert(key.clone(), Claim::new(claimant, until));
        if let Some(chat) = state.chats.get_mut(&key) {
            chat.creating_by = Some(claimant.to_owned());
        }
        Ok(true)
    }

    async fn release_record_claim(
        &self,
        workspace_id: &str,
        chat_key: &str,
        claimant: &str,
    ) -> Result<(), StoreError> {
        self.write("release_record_claim");
        let mut state = self.state();
        let key = (workspace_id.to_owned(), chat_key.to_owned());
        if state
            .chat_claims
            .get(&key)
            .is_some_and(|c| c.by == claimant)
        {
            state.chat_claims.remove(&key);
            if let Some(chat) = state.chats.get_mut(&key) {
                chat.creating_by = None;
            }
        }
        Ok(())
    }

    async fn claim_contact_creation(
        &self,
        workspace_id: &str,
        contact: &E164,
        claimant: &str,
        now: i64,
        until: i64,
    ) -> Result<ContactClaim, StoreError> {
        self.write("claim_contact_creation");
        let mut state = self.state();
        let entry = state
            .contacts
            .entry((workspace_id.to_owned(), contact.to_string()))
            .or_default();
        // A record made longer ago than its window is left to the search.
        let record = entry
            .record
            .clone()
            .filter(|(_, record_until)| *record_until >= now);
        if record.is_none() && Claim::free_for(entry.claim.as_ref(), claimant, now) {
            entry.record = None;
            entry.claim = Some(Claim::new(claimant, until));
            return Ok(ContactClaim::Claimed);
        }
        Ok(record.map_or(ContactClaim::Busy, |(record, _)| {
            ContactClaim::Created(record)
        }))
    }

    async fn set_contact_record(
        &self,
        workspace_id: &str,
        contact: &E164,
        record: &RecordRef,
        until: i64,
    ) -> Result<(), StoreError> {
        self.write("set_contact_record");
        let mut state = self.state();
        let entry = state
            .contacts
            .entry((workspace_id.to_owned(), contact.to_string()))
            .or_default();
        entry.record = Some((record.clone(), until));
        entry.claim = None;
        Ok(())
    }

    async fn forget_contact_record(
        &self,
        workspace_id: &str,
        contact: &E164,
        record: &RecordRef,
    ) -> Result<(), StoreError> {
        self.write("forget_contact_record");
        let mut state = self.state();
        if let Some(entry) = state
            .contacts
            .get_mut(&(workspace_id.to_owned(), contact.to_string()))
            && entry.record.as_ref().is_some_and(|(r, _)| r == record)
        {
            entry.record = None;
        }
        Ok(())
    }

    async fn release_contact_claim(
        &self,
        workspace_id: &str,
        contact: &E164,
        claimant: &str,
    ) -> Result<(), StoreError> {
        self.write("release_contact_claim");
        let mut state = self.state();
        if let Some(entry) = state
            .contacts
            .get_mut(&(workspace_id.to_owned(), contact.to_string()))
            && entry.claim.as_ref().is_some_and(|c| c.by == claimant)
        {
            entry.claim = None;
        }
        Ok(())
    }

    async fn patch_chat(
        &self,
        workspace_id: &str,
        chat_key: &str,
        patch: &ChatPatch,
    ) -> Result<bool, StoreError> {
        self.write("patch_chat");
        let mut state = self.state();
        let key = (workspace_id.to_owned(), chat_key.to_owned());
        if let Some(gone) = &patch.forget_record {
            // Only the record the caller found gone, as the table's condition.
            if state.chats.get(&key).and_then(|c| c.record.as_ref()) != Some(gone) {
                return Ok(false);
            }
            state.chat_claims.remove(&key);
        }
        let Some(chat) = state.chats.get_mut(&key) else {
            return Ok(false);
        };
        if patch.forget_record.is_some() {
            chat.record = None;
            chat.record_created_by_us = false;
            chat.record_name = None;
            chat.ambiguous_candidates = Vec::new();
            chat.record_chosen_by = None;
            chat.creating_by = None;
            chat.follow_up = None;
            chat.follow_up_started = false;
            chat.follow_up_checked_at = 0;
        }
        // What is set wins over what forgetting removed.
        if let Some(record) = &patch.record {
            chat.record = Some(record.clone());
        }
        if let Some(ours) = patch.record_created_by_us {
            chat.record_created_by_us = ours;
        }
        if let Some(name) = &patch.record_name {
            chat.record_name = name.clone();
        }
        if let Some(responsible) = &patch.responsible_user_id {
            chat.responsible_user_id = responsible.clone();
        }
        if let Some(candidates) = &patch.ambiguous_candidates {
            chat.ambiguous_candidates = candidates.clone();
        }
        if let Some(chosen_by) = &patch.record_chosen_by {
            chat.record_chosen_by = chosen_by.clone();
        }
        if let Some(at) = patch.record_checked_at {
            chat.record_checked_at = at;
        }
        if let Some(stopped) = &patch.sync_stopped {
            chat.sync_stopped = stopped.clone();
        }
        if let Some(follow_up) = &patch.follow_up {
            chat.follow_up = follow_up.clone();
        }
        if let Some(started) = patch.follow_up_started {
            chat.follow_up_started = started;
        }
        if let Some(at) = patch.follow_up_checked_at {
            chat.follow_up_checked_at = at;
        }
        Ok(true)
    }

    async fn chats(&self, workspace_id: &str) -> Result<Vec<Chat>, StoreError> {
        self.read();
        Ok(self
            .state()
            .chats
            .values()
            .filter(|c| c.workspace_id == workspace_id)
            .cloned()
            .collect())
    }
}
