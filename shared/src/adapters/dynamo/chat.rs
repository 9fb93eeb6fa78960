//! Chats with their live-chat read marks, and contacts' record-creation
//! claims (`CHAT#<chat key>`, `CONTACT#<digits>`; keys in the module's
//! table).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use crate::adapters::sealed::{self, CONTACT_NAME, RECORD_NAME};
use crate::error::StoreError;
use crate::model::{Chat, ChatPatch, RecordRef};
use crate::phone::E164;
use crate::store::{ChatStore, ContactClaim, ReadMark};

use super::{
    DynamoStore, READ_MESSAGE_ID, READ_UP_TO, chat_binding, condition_outcome, contact_sk, n,
    request_error, s, set_and_remove, ws_pk,
};

#[async_trait]
impl ChatStore for DynamoStore {
    async fn upsert_chat_contact(
        &self,
        workspace_id: &str,
        chat_key: &str,
        phone_number_id: &str,
        contact: &E164,
        contact_name: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut update = self
            .update_chat(workspace_id, chat_key)
            .expression_attribute_values(":ws", s(workspace_id))
            .expression_attribute_values(":key", s(chat_key))
            .expression_attribute_values(":pnid", s(phone_number_id))
            .expression_attribute_values(":contact", s(contact.as_str()));
        let mut expression =
            "SET workspace_id = :ws, #k = :key, phone_number_id = :pnid, contact = :contact"
                .to_owned();
        if let Some(name) = contact_name {
            // Sealed; a name an earlier version kept in clear goes.
            let (attribute, value) = sealed::seal_value(
                &self.content_cipher().await?,
                &chat_binding(workspace_id, chat_key),
                CONTACT_NAME,
                name,
            );
            expression.push_str(&format!(", {attribute} = :name REMOVE contact_name"));
            update = update.expression_attribute_values(":name", value);
        }
        update
            .update_expression(expression)
            .expression_attribute_names("#k", "key")
            .send()
            .await
            .map_err(request_error)?;
        Ok(())
    }

    async fn chat(&self, workspace_id: &str, chat_key: &str) -> Result<Option<Chat>, StoreError> {
        let item = self
            .get_raw(ws_pk(workspace_id), format!("CHAT#{chat_key}"))
            .await?;
        Ok(self.open_chats(item.into_iter().collect()).await?.pop())
    }

    async fn claim_record_creation(
        &self,
        workspace_id: &str,
        chat_key: &str,
        claimant: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        self.claim_creation(
            workspace_id,
            format!("CHAT#{chat_key}"),
            "attribute_exists(pk) AND attribute_not_exists(#r)",
            "",
            claimant,
            (now, until),
        )
        .await
    }

    async fn release_record_claim(
        &self,
        workspace_id: &str,
        chat_key: &str,
        claimant: &str,
    ) -> Result<(), StoreError> {
        self.release_creation(workspace_id, format!("CHAT#{chat_key}"), claimant)
            .await
    }

    async fn claim_contact_creation(
        &self,
        workspace_id: &str,
        contact: &E164,
        claimant: &str,
        now: i64,
        until: i64,
    ) -> Result<ContactClaim, StoreError> {
        let sk = contact_sk(contact);
        // A record made longer ago than its window is left to the search
        // (the CRM's index has it by then, unless it was deleted).
        let claimed = self
            .claim_creation(
                workspace_id,
                sk.clone(),
                "(attribute_not_exists(#r) OR record_until < :now)",
                " REMOVE #r, record_until",
                claimant,
                (now, until),
            )
            .await?;
        if claimed {
            return Ok(ContactClaim::Claimed);
        }
        let record = self
            .get_raw(ws_pk(workspace_id), sk)
            .await?
            .filter(|item| {
                item.get("record_until")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|until| until >= now)
            })
            .and_then(|mut item| item.remove("record"))
            .map(|value| {
                serde_dynamo::from_attribute_value::<_, RecordRef>(value)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .transpose()?;
        Ok(record.map_or(ContactClaim::Busy, ContactClaim::Created))
    }

    async fn set_contact_record(
        &self,
        workspace_id: &str,
        contact: &E164,
        record: &RecordRef,
        until: i64,
    ) -> Result<(), StoreError> {
        let value = serde_dynamo::to_attribute_value(record)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.update_in(workspace_id, contact_sk(contact))
            .update_expression(
                "SET #r = :r, record_until = :until REMOVE creating_until, creating_by",
            )
            .expression_attribute_names("#r", "record")
            .expression_attribute_values(":r", value)
            .expression_attribute_values(":until", n(until))
            .send()
            .await
            .map_err(request_error)?;
        Ok(())
    }

    async fn forget_contact_record(
        &self,
        workspace_id: &str,
        contact: &E164,
        record: &RecordRef,
    ) -> Result<(), StoreError> {
        let value = serde_dynamo::to_attribute_value(record)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let result = self
            .update_in(workspace_id, contact_sk(contact))
            .update_expression("REMOVE #r, record_until")
            .condition_expression("#r = :r")
            .expression_attribute_names("#r", "record")
            .expression_attribute_values(":r", value)
            .send()
            .await;
        condition_outcome(result).map(|_| ())
    }

    async fn release_contact_claim(
        &self,
        workspace_id: &str,
        contact: &E164,
        claimant: &str,
    ) -> Result<(), StoreError> {
        self.release_creation(workspace_id, contact_sk(contact), claimant)
            .await
    }

    async fn patch_chat(
        &self,
        workspace_id: &str,
        chat_key: &str,
        patch: &ChatPatch,
    ) -> Result<bool, StoreError> {
        fn value<T: Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
            serde_dynamo::to_attribute_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        let record_name_enc = sealed::sealed_name(RECORD_NAME);
        let mut sets: Vec<(&str, AttributeValue)> = Vec::new();
        let mut removes: Vec<&str> = Vec::new();
        let mut optional = |name: &'static str, v: &Option<Option<String>>| match v {
            Some(Some(text)) => sets.push((name, s(text.as_str()))),
            Some(None) => removes.push(name),
            None => {}
        };
        optional("responsible_user_id", &patch.responsible_user_id);
        optional("record_chosen_by", &patch.record_chosen_by);
        optional("sync_stopped", &patch.sync_stopped);
        // The record's name is the contact's: kept sealed (and a clear one
        // an earlier version wrote goes with any change of it).
        match &patch.record_name {
            Some(Some(name)) => {
                let (_, value) = sealed::seal_value(
                    &self.content_cipher().await?,
                    &chat_binding(workspace_id, chat_key),
                    RECORD_NAME,
                    name,
                );
                sets.push((record_name_enc.as_str(), value));
                removes.push("record_name");
            }
            Some(None) => removes.extend(["record_name", record_name_enc.as_str()]),
            None => {}
        }
        if let Some(record) = &patch.record {
            sets.push(("record", value(record)?));
        }
        if let Some(ours) = patch.record_created_by_us {
            sets.push(("record_created_by_us", AttributeValue::Bool(ours)));
        }
        if let Some(candidates) = &patch.ambiguous_candidates {
            sets.push(("ambiguous_candidates", value(candidates)?));
        }
        if let Some(at) = patch.record_checked_at {
            sets.push(("record_checked_at", n(at)));
        }
        match &patch.follow_up {
            Some(Some(follow_up)) => sets.push(("follow_up", value(follow_up)?)),
            Some(None) => removes.push("follow_up"),
            None => {}
        }
        if let Some(started) = patch.follow_up_started {
            sets.push(("follow_up_started", AttributeValue::Bool(started)));
        }
        if let Some(at) = patch.follow_up_checked_at {
            sets.push(("follow_up_checked_at", n(at)));
        }
        if patch.forget_record.is_some() {
            removes.extend([
                "follow_up",
                "follow_up_started",
                "follow_up_checked_at",
                "record",
                "record_created_by_us",
                "record_name",
                record_name_enc.as_str(),
                "ambiguous_candidates",
                "record_chosen_by",
                "creating_by",
                "creating_until",
            ]);
        }
        // One path may appear once per update expression: what is set
        // wins over a removal of the same attribute.
        removes.sort_unstable();
        removes.dedup();
        removes.retain(|r| !sets.iter().any(|(name, _)| name == r));
        if sets.is_empty() && removes.is_empty() {
            return Ok(self.chat(workspace_id, chat_key).await?.is_some());
        }
        let mut update = self.update_chat(workspace_id, chat_key);
        update = match &patch.forget_record {
            // Only the record the caller found gone: not one a person chose
            // or record-sync followed meanwhile.
            Some(gone) => update
                .condition_expression(
                    "attribute_exists(pk) AND #gone.#module = :gone_module AND #gone.#id = :gone_id",
                )
                .expression_attribute_names("#gone", "record")
                .expression_attribute_names("#module", "module")
                .expression_attribute_names("#id", "id")
                .expression_attribute_values(":gone_module", s(gone.module.as_str()))
                .expression_attribute_values(":gone_id", s(gone.id.as_str())),
            None => update.condition_expression("attribute_exists(pk)"),
        };
        condition_outcome(set_and_remove(update, sets, &removes).send().await)
    }

    async fn chats(&self, workspace_id: &str) -> Result<Vec<Chat>, StoreError> {
        let items = self
            .raw_items_with_prefix(workspace_id, "CHAT#", None)
            .await?;
        self.open_chats(items).await
    }

    async fn chat_and_read_mark(
        &self,
        workspace_id: &str,
        chat_key: &str,
    ) -> Result<Option<(Chat, Option<ReadMark>)>, StoreError> {
        let Some(item) = self
            .get_raw(ws_pk(workspace_id), format!("CHAT#{chat_key}"))
            .await?
        else {
            return Ok(None);
        };
        let mark = match (item.get(READ_UP_TO), item.get(READ_MESSAGE_ID)) {
            (Some(AttributeValue::N(up_to)), Some(AttributeValue::S(message_id))) => {
                Some(ReadMark {
                    up_to: up_to
                        .parse()
                        .map_err(|_| StoreError::Corrupt("a chat's read mark".into()))?,
                    message_id: message_id.clone(),
                })
            }
            _ => None,
        };
        let chat = self.open_chats(vec![item]).await?.pop();
        Ok(chat.map(|chat| (chat, mark)))
    }

    async fn advance_read_mark(
        &self,
        workspace_id: &str,
        chat_key: &str,
        mark: &ReadMark,
    ) -> Result<bool, StoreError> {
        let result = self
            .update_chat(workspace_id, chat_key)
            .update_expression("SET #up = :up, #id = :id")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#up) OR #up < :up)",
            )
            .expression_attribute_names("#up", READ_UP_TO)
            .expression_attribute_names("#id", READ_MESSAGE_ID)
            .expression_attribute_values(":up", n(mark.up_to))
            .expression_attribute_values(":id", s(mark.message_id.as_str()))
            .send()
            .await;
        condition_outcome(result)
    }
}
