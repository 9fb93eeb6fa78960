//! The state port on one DynamoDB table (single-table design, `pk`/`sk`).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | workspace | `WS#<ws>` | `WORKSPACE` |
//! | user | `WS#<ws>` | `USER#<user>` |
//! | WhatsApp number | `WS#<ws>` | `WANUMBER#<phone_number_id>` |
//! | connection | `WS#<ws>` | `CONN#<crm>#ORG` / `CONN#<crm>#USER#<user>` |
//! | CRM users cache | `WS#<ws>` | `CRMUSERS#<crm>` |
//! | chat (with its live-chat read mark, `read_up_to`) | `WS#<ws>` | `CHAT#<chat key>` |
//! | contact (its record's creation, across business numbers) | `WS#<ws>` | `CONTACT#<digits>` |
//! | message | `WS#<ws>` | `MSG#<wamid>` |
//! | day note | `WS#<ws>` | `NOTE#<chat key>#<day>#<record id>#<part>` |
//! | sync-log entry | `WS#<ws>` | `LOG#<id>` |
//! | sync settings | `WS#<ws>` | `SETTINGS#<crm>` |
//! | a CRM's API budget is spent until (`until_at`) | `WS#<ws>` | `BUDGET#<crm>` |
//! | a live-chat send, by its client's id (`message_id` once sent) | `WS#<ws>` | `SEND#<sha256 of chat key and client id>` |
//! | CRM calls and tokens spent on a day (UTC) | `WS#<ws>` | `USAGE#<crm>#<YYYY-MM-DD>` |
//! | the workspace's API plan with a CRM (edition, seats, budget) | `WS#<ws>` | `APIPLAN#<crm>` |
//! | "conserving the API budget" logged that day (two days' TTL) | `WS#<ws>` | `PACING#<crm>#<YYYY-MM-DD>` |
//! | OAuth state of the workspace (finds the global one) | `WS#<ws>` | `OAUTHSTATE#<nonce>` |
//! | token lookup (found from its user: `token_hash`) | `TOKEN#<sha256>` | `TOKEN` |
//! | number lookup (found from the workspace's number) | `WANUMBER#<phone_number_id>` | `WANUMBER` |
//! | OAuth state | `OAUTHSTATE#<nonce>` | `STATE` |
//!
//! Everything of a workspace is under `WS#<ws>` or found from there, so its
//! deletion (`purge_workspace_page`) finds it all with queries of its
//! partition; the workspace item carries `deleting_since` meanwhile.
//!
//! Three global secondary indexes: two so that a ledger read touches only
//! its chat or its state, however large the workspace grows; one that finds
//! the connections a CRM user made, in whichever workspace, when the CRM
//! says that user uninstalled the app:
//!
//! | index | item | partition | sort |
//! |---|---|---|---|
//! | `ByChat` | message | `chat_pk` = `WS#<ws>#CHAT#<chat key>` | `chat_sk` = `MSG#<timestamp:012>#<wamid>` |
//! | `ByChat` | sync-log entry of a chat | `chat_pk` (as above) | `chat_sk` = `LOG#<id>` |
//! | `ByState` | message | `state_pk` = `WS#<ws>#STATE#<state>` | `state_sk` = `<timestamp:012>#<wamid>` |
//! | `ByCrmUser` | connection | `crm_user_pk` = `<crm>#<crm org id>#<crm user id>` | — |
//!
//! A connection gets its `crm_user_pk` whenever its item is written (made,
//! or its tokens refreshed): one stored before the index existed is not in
//! it until then.
//!
//! TTL (`ttl`, epoch seconds) deletes lazily, so reads of TTL'd items also
//! check the expiry themselves. What holds message content expires after
//! its workspace's retention (`crate::retention`): a message only once it
//! is finished (appended or skipped; nothing still to be synced expires),
//! counted from then; a day note once its day is over (or from its last
//! write, if later); a sync-log entry from when it was written (`at`).
//! Messages and day notes keep that start in `retained_from`, so a new
//! retention can be applied to them (`reapply_retention_page`). OAuth
//! states (and their workspace pointers) expire with the state, the CRM
//! users cache after an hour.
//!
//! Message content is sealed in its items (`super::sealed`): a message's
//! text, contact name, media caption and file name, its attachment's file
//! name, a chat's contact and record names, a day note's title and each of
//! its lines are kept only encrypted (`…_enc`), bound to their item (and a
//! line to its message); items from before read as stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnConsumedCapacity, ReturnValue, TransactWriteItem,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::sealed::{
    self, ATTACHMENT_FILE_NAME, CHAT_FIELDS, CONTACT_NAME, MESSAGE_FIELDS, NOTE_FIELDS,
    NOTE_LINE_TEXT, RECORD_NAME,
};
use crate::crypto::{ContentKeys, TokenCipher};
use crate::error::StoreError;
use crate::model::{
    AttachmentOutcome, Chat, ChatPatch, Connection, ConnectionKind, CrmKind, CrmUser, DayNote,
    Delivery, MessageState, OAuthState, RecordRef, StoredMessage, SyncSettings, User,
    WhatsAppNumber, Workspace,
};
use crate::phone::E164;
use crate::retention::{Expiry, LEGACY_RETENTION_SECS, Retention, day_note_anchor};
use crate::store::{
    ChatStore, ConnectionStore, ContactClaim, CrmUsage, Insert, LogEntry, MessageStore, NoteStore,
    Page, ReadMark, SendClaim, SettingsStore, Swept, SyncLogStore, WorkspaceRemovalStore,
    WorkspaceStore,
};

type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Read capacity the index queries (the ledger's, mostly) consumed, in
    /// hundredths of a unit (DynamoDB's own figure): what tests measure the
    /// read cost with.
    ledger_read_units: Arc<AtomicU64>,
    /// Where the message-content key comes from (read on first use).
    content_keys: Arc<dyn ContentKeys>,
}

/// The indexes of the module doc's second table.
const BY_CHAT: &str = "ByChat";
const BY_STATE: &str = "ByState";
const BY_CRM_USER: &str = "ByCrmUser";

fn contact_sk(contact: &E164) -> String {
    format!("CONTACT#{}", contact.digits())
}

fn chat_index_pk(workspace_id: &str, chat_key: &str) -> String {
    format!("WS#{workspace_id}#CHAT#{chat_key}")
}

fn state_index_pk(workspace_id: &str, state: &str) -> String {
    format!("WS#{workspace_id}#STATE#{state}")
}

/// Oldest first within a chat or a state: the timestamp, zero-padded.
fn message_order_key(message: &StoredMessage) -> String {
    format!("{:012}#{}", message.timestamp.max(0), message.message_id)
}

fn ws_pk(workspace_id: &str) -> String {
    format!("WS#{workspace_id}")
}

/// A chat's read mark (`crate::store::ReadMark`), beside the chat's own
/// attributes.
const READ_UP_TO: &str = "read_up_to";
const READ_MESSAGE_ID: &str = "read_message_id";

/// A day note's sort key (one part of a chat's day, on one record).
fn note_sk(chat_key: &str, day: &str, record: &RecordRef, part: u32) -> String {
    format!("NOTE#{chat_key}#{day}#{}#{part}", record.id)
}

/// What a chat item's sealed fields are bound to.
fn chat_binding(workspace_id: &str, chat_key: &str) -> String {
    sealed::item_binding(&ws_pk(workspace_id), &format!("CHAT#{chat_key}"))
}

fn connection_sk(crm: CrmKind, kind: ConnectionKind, user_id: Option<&str>) -> String {
    match (kind, user_id) {
        (ConnectionKind::Organization, _) => format!("CONN#{}#ORG", crm.as_str()),
        (ConnectionKind::Personal, user) => {
            format!("CONN#{}#USER#{}", crm.as_str(), user.unwrap_or_default())
        }
    }
}

fn crm_user_index_pk(crm: CrmKind, crm_org_id: &str, crm_user_id: &str) -> String {
    format!("{}#{crm_org_id}#{crm_user_id}", crm.as_str())
}

/// A connection's item: its keys, and its place in `ByCrmUser`.
fn connection_item(connection: &Connection) -> Result<Item, StoreError> {
    let mut item = to_item(
        ws_pk(&connection.workspace_id),
        connection_sk(connection.crm, connection.kind, Some(&connection.user_id)),
        connection,
        None,
    )?;
    item.insert(
        "crm_user_pk".into(),
        s(crm_user_index_pk(
            connection.crm,
            &connection.crm_org_id,
            &connection.crm_user_id,
        )),
    );
    Ok(item)
}

fn request_error<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Request(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// `update` with an expression that sets `sets` and removes `removes`, one
/// atomic write. Attribute names go through placeholders: several of ours
/// (`record`, `state`) are reserved words.
fn set_and_remove<N: AsRef<str>>(
    mut update: UpdateItemFluentBuilder,
    sets: Vec<(N, AttributeValue)>,
    removes: &[N],
) -> UpdateItemFluentBuilder {
    let mut expression = String::new();
    if !sets.is_empty() {
        let parts: Vec<String> = (0..sets.len()).map(|i| format!("#a{i} = :v{i}")).collect();
        expression.push_str(&format!("SET {}", parts.join(", ")));
    }
    for (i, (name, v)) in sets.into_iter().enumerate() {
        update = update
            .expression_attribute_names(format!("#a{i}"), name.as_ref())
            .expression_attribute_values(format!(":v{i}"), v);
    }
    if !removes.is_empty() {
        let parts: Vec<String> = (0..removes.len()).map(|i| format!("#r{i}")).collect();
        expression.push_str(&format!(" REMOVE {}", parts.join(", ")));
    }
    for (i, name) in removes.iter().enumerate() {
        update = update.expression_attribute_names(format!("#r{i}"), name.as_ref());
    }
    update.update_expression(expression)
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn to_item<T: Serialize>(
    pk: String,
    sk: String,
    value: &T,
    ttl: Option<i64>,
) -> Result<Item, StoreError> {
    let mut item: Item =
        serde_dynamo::to_item(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    item.insert("pk".into(), s(pk));
    item.insert("sk".into(), s(sk));
    if let Some(ttl) = ttl {
        item.insert("ttl".into(), n(ttl));
    }
    Ok(item)
}

/// A conditional write's outcome: `Ok(false)` when only the condition failed.
fn condition_outcome<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: std::error::Error + ConditionalCheck + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(ConditionalCheck::is_condition_failure) =>
        {
            Ok(false)
        }
        Err(e) => Err(request_error(e)),
    }
}

/// The operations whose condition can fail.
trait ConditionalCheck {
    fn is_condition_failure(&self) -> bool;
}

impl ConditionalCheck for aws_sdk_dynamodb::operation::put_item::PutItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionalCheck for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionalCheck for aws_sdk_dynamodb::operation::delete_item::DeleteItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// An item whose `fields` were sealed, opened and read. A sealed value
/// that does not open (altered, or copied from another item) makes the item
/// unreadable, as any corrupt item is: its content is never guessed.
fn open_item<T: DeserializeOwned>(
    cipher: &TokenCipher,
    mut item: Item,
    fields: &[sealed::Field],
) -> Result<T, StoreError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let (pk, sk) = (text("pk"), text("sk"));
    sealed::open(&mut item, cipher, &sealed::item_binding(&pk, &sk), fields).map_err(|e| {
        // The kind only: a chat's key holds the contact's number.
        StoreError::Corrupt(format!("a {} item: {e}", item_kind(&sk)))
    })?;
    from_item(item)
}

fn expired(item: &Item, now: i64) -> bool {
    item.get("ttl")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|ttl| ttl <= now)
}

impl DynamoStore {
    /// The store on `table`; message content is sealed with the cipher
    /// `content_keys` gives.
    pub fn new(
        client: Client,
        table: impl Into<String>,
        content_keys: Arc<dyn ContentKeys>,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            ledger_read_units: Arc::new(AtomicU64::new(0)),
            content_keys,
        }
    }

    /// The message-content cipher. Its key comes from Secrets Manager:
    /// not reading it now is an outage, which a retry gets past.
    async fn content_cipher(&self) -> Result<TokenCipher, StoreError> {
        self.content_keys.content_cipher().await.map_err(|e| {
            StoreError::Request(format!("the message-content key could not be read: {e}"))
        })
    }

    /// Stored items whose `fields` are sealed, opened and read (the cipher
    /// is asked for only when there is something to open).
    async fn open_all<T: DeserializeOwned>(
        &self,
        items: Vec<Item>,
        fields: &[sealed::Field],
    ) -> Result<Vec<T>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let cipher = self.content_cipher().await?;
        items
            .into_iter()
            .map(|item| open_item(&cipher, item, fields))
            .collect()
    }

    /// Stored messages, their content opened.
    async fn open_messages(&self, items: Vec<Item>) -> Result<Vec<StoredMessage>, StoreError> {
        self.open_all(items, MESSAGE_FIELDS).await
    }

    /// Stored chats, their contact's names opened.
    async fn open_chats(&self, items: Vec<Item>) -> Result<Vec<Chat>, StoreError> {
        self.open_all(items, CHAT_FIELDS).await
    }

    /// Read capacity units the index reads (the ledger's: a chat's
    /// messages, messages of a state, a chat's sync log; and a CRM user's
    /// connections) have consumed so far.
    pub fn ledger_read_units(&self) -> f64 {
        self.ledger_read_units.load(Ordering::Relaxed) as f64 / 100.0
    }

    /// A query on an index, its consumed capacity counted.
    fn index_query(&self, index: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
    }

    fn count_read(&self, consumed: Option<&aws_sdk_dynamodb::types::ConsumedCapacity>) {
        if let Some(units) = consumed.and_then(|c| c.capacity_units) {
            self.ledger_read_units
                .fetch_add((units * 100.0).round() as u64, Ordering::Relaxed);
        }
    }

    /// One page of an index query (`key` names the partition `#k` and its
    /// value `:k`), oldest first unless `newest_first`.
    async fn index_page(
        &self,
        index: &str,
        key_condition: &str,
        values: &[(&str, String)],
        start: Option<Item>,
        limit: Option<i32>,
        newest_first: bool,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let mut query = self
            .index_query(index)
            .key_condition_expression(key_condition)
            .scan_index_forward(!newest_first)
            .set_exclusive_start_key(start)
            .set_limit(limit);
        for (name, value) in values {
            query = query.expression_attribute_values(*name, s(value.clone()));
        }
        let out = query.send().await.map_err(request_error)?;
        self.count_read(out.consumed_capacity.as_ref());
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }

    /// Every item an index query finds, all pages, in index order.
    async fn index_items(
        &self,
        index: &str,
        key_condition: &str,
        values: &[(&str, String)],
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let (page, next) = self
                .index_page(index, key_condition, values, start, None, false)
                .await?;
            items.extend(page);
            start = next;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// A message's item: its keys, its places in both indexes, and its
    /// content sealed.
    fn message_item(
        &self,
        message: &StoredMessage,
        cipher: &TokenCipher,
    ) -> Result<Item, StoreError> {
        let (pk, sk) = (
            ws_pk(&message.workspace_id),
            format!("MSG#{}", message.message_id),
        );
        let bound_to = sealed::item_binding(&pk, &sk);
        let mut item = to_item(pk, sk, message, None)?;
        sealed::seal(&mut item, cipher, &bound_to, MESSAGE_FIELDS);
        let order = message_order_key(message);
        item.insert(
            "chat_pk".into(),
            s(chat_index_pk(&message.workspace_id, &message.chat_key)),
        );
        item.insert("chat_sk".into(), s(format!("MSG#{order}")));
        item.insert(
            "state_pk".into(),
            s(state_index_pk(&message.workspace_id, message.state.name())),
        );
        item.insert("state_sk".into(), s(order));
        Ok(item)
    }

    async fn get_raw(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(request_error)?;
        Ok(out.item)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        pk: String,
        sk: String,
    ) -> Result<Option<T>, StoreError> {
        self.get_raw(pk, sk).await?.map(from_item).transpose()
    }

    async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(request_error)?;
        Ok(())
    }

    async fn delete(&self, pk: String, sk: String) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(request_error)?;
        Ok(())
    }

    /// Puts the item only if the condition holds; false when it does not.
    async fn put_if(
        &self,
        item: Item,
        condition: &str,
        values: Option<Item>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(values)
            .send()
            .await;
        condition_outcome(result)
    }

    /// Puts an item of optimistic-concurrency `version`: version 1 only if
    /// none exists (or only an expired one TTL has not removed yet), later
    /// ones only over `version - 1`. False when another writer got there
    /// first.
    async fn put_versioned(&self, item: Item, version: u64) -> Result<bool, StoreError> {
        if version <= 1 {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":now", n(now()))
                .send()
                .await;
            condition_outcome(result)
        } else {
            self.put_if(
                item,
                "version = :v",
                Some(HashMap::from([(":v".to_owned(), n(version - 1))])),
            )
            .await
        }
    }

    /// Claims the right to create a record, on a chat or contact item, for
    /// `claimant` until `until`: when `precondition` holds and no one else
    /// holds an unexpired claim (the claimant may claim again). `also` adds
    /// to the update (`#r` names `record`).
    async fn claim_creation(
        &self,
        workspace_id: &str,
        sk: String,
        precondition: &str,
        also: &str,
        claimant: &str,
        (now, until): (i64, i64),
    ) -> Result<bool, StoreError> {
        let result = self
            .update_in(workspace_id, sk)
            .update_expression(format!(
                "SET creating_until = :until, creating_by = :me{also}"
            ))
            .condition_expression(format!(
                "{precondition} AND (attribute_not_exists(creating_until) OR creating_until < :now OR creating_by = :me)"
            ))
            .expression_attribute_names("#r", "record")
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":me", s(claimant))
            .send()
            .await;
        condition_outcome(result)
    }

    /// Gives a claim back, if it is still the claimant's.
    async fn release_creation(
        &self,
        workspace_id: &str,
        sk: String,
        claimant: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .update_in(workspace_id, sk)
            .update_expression("REMOVE creating_until, creating_by")
            .condition_expression("creating_by = :me")
            .expression_attribute_values(":me", s(claimant))
            .send()
            .await;
        condition_outcome(result).map(|_| ())
    }

    /// An update of one item of a workspace.
    fn update_in(&self, workspace_id: &str, sk: String) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(ws_pk(workspace_id)))
            .key("sk", s(sk))
    }

    /// An update of one chat's item.
    fn update_chat(&self, workspace_id: &str, chat_key: &str) -> UpdateItemFluentBuilder {
        self.update_in(workspace_id, format!("CHAT#{chat_key}"))
    }

    /// An update of one message's item.
    fn update_message(&self, workspace_id: &str, message_id: &str) -> UpdateItemFluentBuilder {
        self.update_in(workspace_id, format!("MSG#{message_id}"))
    }

    /// Every item of a workspace whose sort key starts with `prefix`, all
    /// pages, optionally filtered on one attribute (`filter` names it `#a`
    /// and compares it with `:value`).
    async fn items_with_prefix<T: DeserializeOwned>(
        &self,
        workspace_id: &str,
        prefix: &str,
        filter: Option<(&str, &str, &str)>,
    ) -> Result<Vec<T>, StoreError> {
        self.raw_items_with_prefix(workspace_id, prefix, filter)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    /// [`Self::items_with_prefix`], the items as stored.
    async fn raw_items_with_prefix(
        &self,
        workspace_id: &str,
        prefix: &str,
        filter: Option<(&str, &str, &str)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items: Vec<Item> = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(ws_pk(workspace_id)))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            if let Some((expression, attribute, value)) = filter {
                query = query
                    .filter_expression(expression)
                    .expression_attribute_names("#a", attribute)
                    .expression_attribute_values(":value", s(value));
            }
            let out = query.send().await.map_err(request_error)?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// A workspace's messages whose `attribute` equals `value`, oldest first.
    /// Puts the item (`pk`, `sk`: its keys) unless one with its key exists;
    /// returns the existing one then.
    async fn insert_once<T: DeserializeOwned>(
        &self,
        item: Item,
        pk: String,
        sk: String,
    ) -> Result<Insert<T>, StoreError> {
        if self.put_if(item, "attribute_not_exists(pk)", None).await? {
            return Ok(Insert::Inserted);
        }
        let existing = self
            .get(pk, sk)
            .await?
            .ok_or_else(|| StoreError::Corrupt("item vanished after a failed insert".into()))?;
        Ok(Insert::Exists(existing))
    }

    fn put_in_transaction(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Request(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn user_with_token(&self, user: &User, token_hash: &str) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .transact_items(self.put_in_transaction(user_item(user, token_hash)?)?)
            .transact_items(self.put_in_transaction(token_lookup_item(user, token_hash)?)?)
            .send()
            .await
            .map_err(request_error)?;
        Ok(())
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A user's item carries the hash of their current API token, so that
/// removing the user or rotating the token can drop the token's lookup.
fn user_item(user: &User, token_hash: &str) -> Result<Item, StoreError> {
    let mut item = to_item(
        ws_pk(&user.workspace_id),
        format!("USER#{}", user.id),
        user,
        None,
    )?;
    item.insert("token_hash".into(), s(token_hash));
    Ok(item)
}

/// The global lookup from an API token's hash to its user.
fn token_lookup_item(user: &User, token_hash: &str) -> Result<Item, StoreError> {
    let token = HashMap::from([
        ("workspace_id", user.workspace_id.as_str()),
        ("user_id", user.id.as_str()),
    ]);
    to_item(format!("TOKEN#{token_hash}"), "TOKEN".into(), &token, None)
}

fn delete_token_lookup(table: &str, token_hash: &str) -> Result<TransactWriteItem, StoreError> {
    delete_in_transaction(table, format!("TOKEN#{token_hash}"), "TOKEN".into())
}

fn delete_in_transaction(
    table: &str,
    pk: String,
    sk: String,
) -> Result<TransactWriteItem, StoreError> {
    let delete = aws_sdk_dynamodb::types::Delete::builder()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .build()
        .map_err(|e| StoreError::Request(e.to_string()))?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

#[async_trait]
impl WorkspaceStore for DynamoStore {
    async fn create_workspace(
        &self,
        workspace: &Workspace,
        owner: &User,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        let created = self
            .put_if(
                to_item(ws_pk(&workspace.id), "WORKSPACE".into(), workspace, None)?,
                "attribute_not_exists(pk)",
                None,
            )
            .await?;
        if !created {
            return Err(StoreError::Request(format!(
                "workspace {} exists already",
                workspace.id
            )));
        }
        self.user_with_token(owner, token_hash).await
    }

    async fn workspace(&self, id: &str) -> Result<Option<Workspace>, StoreError> {
        self.get(ws_pk(id), "WORKSPACE".into()).await
    }

    async fn add_user(&self, user: &User, token_hash: &str) -> Result<(), StoreError> {
        self.user_with_token(user, token_hash).await
    }

    async fn user(&self, workspace_id: &str, user_id: &str) -> Result<Option<User>, StoreError> {
        self.get(ws_pk(workspace_id), format!("USER#{user_id}"))
            .await
    }

    async fn remove_user(&self, workspace_id: &str, user_id: &str) -> Result<bool, StoreError> {
        let Some(item) = self
            .get_raw(ws_pk(workspace_id), format!("USER#{user_id}"))
            .await?
        else {
            return Ok(false);
        };
        let mut transaction =
            self.client
                .transact_write_items()
                .transact_items(delete_in_transaction(
                    &self.table,
                    ws_pk(workspace_id),
                    format!("USER#{user_id}"),
                )?);
        if let Some(hash) = item.get("token_hash").and_then(|v| v.as_s().ok()) {
            transaction = transaction.transact_items(delete_token_lookup(&self.table, hash)?);
        }
        transaction.send().await.map_err(request_error)?;
        Ok(true)
    }

    async fn replace_token(&self, user: &User, new_hash: &str) -> Result<(), StoreError> {
        // The user is written only if the token it held is still the one
        // whose lookup this transaction deletes: two rotations at once would
        // otherwise leave the loser's lookup behind, a token that still
        // authenticates. The loser reads again and rotates after the winner.
        for _ in 0..ROTATION_ATTEMPTS {
            let Some(stored) = self
                .get_raw(ws_pk(&user.workspace_id), format!("USER#{}", user.id))
                .await?
            else {
                return Err(StoreError::Corrupt(format!(
                    "user {} is not stored",
                    user.id
                )));
            };
            let old = stored
                .get("token_hash")
                .and_then(|v| v.as_s().ok())
                .cloned();
            let mut user_put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(user_item(user, new_hash)?));
            user_put = match &old {
                Some(old) => user_put
                    .condition_expression("token_hash = :old")
                    .expression_attribute_values(":old", s(old.as_str())),
                None => user_put.condition_expression(
                    "attribute_exists(pk) AND attribute_not_exists(token_hash)",
                ),
            };
            let user_put = user_put
                .build()
                .map_err(|e| StoreError::Request(e.to_string()))?;
            let mut transaction = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(user_put).build())
                .transact_items(self.put_in_transaction(token_lookup_item(user, new_hash)?)?);
            if let Some(old) = &old {
                transaction = transaction.transact_items(delete_token_lookup(&self.table, old)?);
            }
            match transaction.send().await {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_transaction_canceled_exception()) =>
                {
                    continue;
                }
                Err(e) => return Err(request_error(e)),
            }
        }
        Err(StoreError::Request(
            "the token kept changing while it was being replaced".into(),
        ))
    }

    async fn user_for_token(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        let Some(item) = self
            .get_raw(format!("TOKEN#{token_hash}"), "TOKEN".into())
            .await?
        else {
            return Ok(None);
        };
        let field = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let (Some(ws), Some(user_id)) = (field("workspace_id"), field("user_id")) else {
            return Err(StoreError::Corrupt("token lookup without its user".into()));
        };
        let Some(user) = self.get_raw(ws_pk(&ws), format!("USER#{user_id}")).await? else {
            return Ok(None);
        };
        // Only the user's current token: a lookup left over from a rotation
        // must not authenticate.
        let current = user.get("token_hash").and_then(|v| v.as_s().ok());
        if current.map(String::as_str) != Some(token_hash) {
            return Ok(None);
        }
        // Nor a token of a workspace being deleted: they all stop at once,
        // however long removing their lookups takes.
        let workspace: Option<Workspace> = self.get(ws_pk(&ws), "WORKSPACE".into()).await?;
        if !workspace.as_ref().is_some_and(Workspace::accepts_work) {
            return Ok(None);
        }
        from_item(user).map(Some)
    }

    async fn put_whatsapp_number(&self, number: &WhatsAppNumber) -> Result<(), StoreError> {
        // The lookup is written first and only if the number id is free, so
        // one business number can never route to two workspaces.
        let lookup = to_item(
            format!("WANUMBER#{}", number.phone_number_id),
            "WANUMBER".into(),
            number,
            None,
        )?;
        let values = HashMap::from([(":ws".to_owned(), s(&number.workspace_id))]);
        if !self
            .put_if(
                lookup,
                "attribute_not_exists(pk) OR workspace_id = :ws",
                Some(values),
            )
            .await?
        {
            return Err(StoreError::Request(
                "this WhatsApp number belongs to another workspace".into(),
            ));
        }
        self.put(to_item(
            ws_pk(&number.workspace_id),
            format!("WANUMBER#{}", number.phone_number_id),
            number,
            None,
        )?)
        .await
    }

    async fn whatsapp_number(
        &self,
        phone_number_id: &str,
    ) -> Result<Option<WhatsAppNumber>, StoreError> {
        self.get(format!("WANUMBER#{phone_number_id}"), "WANUMBER".into())
            .await
    }

    async fn whatsapp_numbers(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<WhatsAppNumber>, StoreError> {
        self.items_with_prefix(workspace_id, "WANUMBER#", None)
            .await
    }

    async fn set_retention(
        &self,
        workspace_id: &str,
        retention: Retention,
    ) -> Result<bool, StoreError> {
        let result = self
            .update_in(workspace_id, "WORKSPACE".into())
            .update_expression("SET retention_days = :days")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(deleting_since)")
            .expression_attribute_values(":days", n(retention.days()))
            .send()
            .await;
        condition_outcome(result)
    }

    async fn reapply_retention_page(
        &self,
        workspace_id: &str,
        after: Option<&str>,
        limit: usize,
        retention: Retention,
        tz: chrono_tz::Tz,
    ) -> Result<Swept, StoreError> {
        let (items, next) = self
            .partition_page(
                workspace_id,
                after,
                limit,
                (
                    "sk, #ttl, retained_from, #at, #day",
                    &[("#ttl", "ttl"), ("#at", "at"), ("#day", "day")],
                ),
            )
            .await?;
        let mut count = 0;
        for item in &items {
            let Some(start) = retention_start(item, tz) else {
                continue;
            };
            let expiry = retention.counted_from(start.anchor);
            let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).cloned();
            if number("ttl") == Some(expiry.expires_at.to_string())
                && number(RETAINED_FROM).is_some()
            {
                continue; // already so
            }
            let mut update = self
                .update_in(workspace_id, start.sk.to_owned())
                .update_expression("SET #ttl = :ttl, retained_from = :anchor")
                .condition_expression(start.unchanged)
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":ttl", n(expiry.expires_at))
                .expression_attribute_values(":anchor", n(start.anchor));
            if let Some(old) = start.old_ttl {
                update = update.expression_attribute_values(":old", n(old));
            }
            if condition_outcome(update.send().await)? {
                count += 1;
            }
        }
        Ok(Swept { count, next })
    }
}

/// Where a stored item's retention began, and what must still hold when
/// its new expiry is written (the item not changed meanwhile).
struct RetentionStart<'a> {
    sk: &'a str,
    anchor: i64,
    unchanged: &'static str,
    /// The expiry the condition expects (`:old`), if it names one.
    old_ttl: Option<i64>,
}

/// The retention start of an item that expires with its workspace's
/// retention; none for any other item (and for a message not finished).
fn retention_start(item: &Item, tz: chrono_tz::Tz) -> Option<RetentionStart<'_>> {
    let sk = item.get("sk")?.as_s().ok()?;
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    let start = |anchor, unchanged| {
        Some(RetentionStart {
            sk,
            anchor,
            unchanged,
            old_ttl: None,
        })
    };
    if sk.starts_with("LOG#") {
        return start(number("at")?, "attribute_exists(pk)");
    }
    let is_message = sk.starts_with("MSG#");
    if !is_message && !sk.starts_with("NOTE#") {
        return None;
    }
    if let Some(anchor) = number(RETAINED_FROM) {
        return start(anchor, "retained_from = :anchor");
    }
    if is_message {
        // Finished before anchors were stored: its 30 days ran from when it
        // finished. (Without an expiry it is not finished: it never expires.)
        let ttl = number("ttl")?;
        return Some(RetentionStart {
            sk,
            anchor: ttl - LEGACY_RETENTION_SECS,
            unchanged: "attribute_not_exists(retained_from) AND #ttl = :old",
            old_ttl: Some(ttl),
        });
    }
    // A day note from before day notes expired: from the end of its day.
    let day = item.get("day")?.as_s().ok()?;
    start(
        day_note_anchor(day, tz, 0),
        "attribute_exists(pk) AND attribute_not_exists(retained_from)",
    )
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn insert_connection(
        &self,
        connection: &Connection,
    ) -> Result<Insert<Connection>, StoreError> {
        let sk = connection_sk(connection.crm, connection.kind, Some(&connection.user_id));
        self.insert_once(
            connection_item(connection)?,
            ws_pk(&connection.workspace_id),
            sk,
        )
        .await
    }

    async fn connection(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        kind: ConnectionKind,
        user_id: Option<&str>,
    ) -> Result<Option<Connection>, StoreError> {
        self.get(ws_pk(workspace_id), connection_sk(crm, kind, user_id))
            .await
    }

    async fn connections(
        &self,
        workspace_id: &str,
        crm: CrmKind,
    ) -> Result<Vec<Connection>, StoreError> {
        self.items_with_prefix(workspace_id, &format!("CONN#{}#", crm.as_str()), None)
            .await
    }

    async fn connections_of_crm_user(
        &self,
        crm: CrmKind,
        crm_org_id: &str,
        crm_user_id: &str,
    ) -> Result<Vec<Connection>, StoreError> {
        self.index_items(
            BY_CRM_USER,
            "crm_user_pk = :k",
            &[(":k", crm_user_index_pk(crm, crm_org_id, crm_user_id))],
        )
        .await?
        .into_iter()
        .map(from_item)
        .collect()
    }

    async fn delete_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.delete(
            ws_pk(&connection.workspace_id),
            connection_sk(connection.crm, connection.kind, Some(&connection.user_id)),
        )
        .await
    }

    async fn replace_connection(
        &self,
        connection: &Connection,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let item = connection_item(connection)?;
        // The connection time too: a reconnect starts again at version 1, and
        // a refresh begun before it must not overwrite the new tokens.
        self.put_if(
            item,
            "version = :v AND connected_at = :connected",
            Some(HashMap::from([
                (":v".to_owned(), n(expected_version)),
                (":connected".to_owned(), n(connection.connected_at)),
            ])),
        )
        .await
    }

    async fn take_refresh_lease(
        &self,
        connection: &Connection,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .update_in(
                &connection.workspace_id,
                connection_sk(connection.crm, connection.kind, Some(&connection.user_id)),
            )
            .update_expression("SET refresh_lease_until = :until")
            .condition_expression(
                "version = :v AND connected_at = :connected AND (attribute_not_exists(refresh_lease_until) OR refresh_lease_until < :now)",
            )
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":v", n(connection.version))
            .expression_attribute_values(":connected", n(connection.connected_at))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        condition_outcome(result)
    }

    async fn put_oauth_state(&self, state: &OAuthState, ttl: i64) -> Result<(), StoreError> {
        // The workspace's pointer first: a state is never there without the
        // item its workspace's deletion finds it by.
        let pointer = HashMap::from([("workspace_id", state.workspace_id.as_str())]);
        self.put(to_item(
            ws_pk(&state.workspace_id),
            format!("OAUTHSTATE#{}", state.nonce),
            &pointer,
            Some(ttl),
        )?)
        .await?;
        self.put(to_item(
            format!("OAUTHSTATE#{}", state.nonce),
            "STATE".into(),
            state,
            Some(ttl),
        )?)
        .await
    }

    async fn take_oauth_state(&self, nonce: &str) -> Result<Option<OAuthState>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("OAUTHSTATE#{nonce}")))
            .key("sk", s("STATE"))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(request_error)?;
        let Some(item) = out.attributes else {
            return Ok(None);
        };
        let state: OAuthState = from_item(item.clone())?;
        self.delete(ws_pk(&state.workspace_id), format!("OAUTHSTATE#{nonce}"))
            .await?;
        Ok((!expired(&item, now())).then_some(state))
    }

    async fn cached_crm_users(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        now: i64,
    ) -> Result<Option<Vec<CrmUser>>, StoreError> {
        let Some(mut item) = self
            .get_raw(ws_pk(workspace_id), format!("CRMUSERS#{}", crm.as_str()))
            .await?
        else {
            return Ok(None);
        };
        if expired(&item, now) {
            return Ok(None);
        }
        let users = item
            .remove("users")
            .ok_or_else(|| StoreError::Corrupt("user cache without users".into()))?;
        serde_dynamo::from_attribute_value(users)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn cache_crm_users(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        users: &[CrmUser],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        #[derive(Serialize)]
        struct Cache<'a> {
            users: &'a [CrmUser],
        }
        self.put(to_item(
            ws_pk(workspace_id),
            format!("CRMUSERS#{}", crm.as_str()),
            &Cache { users },
            Some(expires_at),
        )?)
        .await
    }
}

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

#[async_trait]
impl SettingsStore for DynamoStore {
    async fn sync_settings(
        &self,
        workspace_id: &str,
        crm: CrmKind,
    ) -> Result<Option<SyncSettings>, StoreError> {
        self.get(ws_pk(workspace_id), format!("SETTINGS#{}", crm.as_str()))
            .await
    }

    async fn save_sync_settings(&self, settings: &SyncSettings) -> Result<bool, StoreError> {
        let item = to_item(
            ws_pk(&settings.workspace_id),
            format!("SETTINGS#{}", settings.crm.as_str()),
            settings,
            None,
        )?;
        self.put_versioned(item, settings.version).await
    }

    async fn add_crm_usage(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        day: &str,
        tokens: u32,
    ) -> Result<(), StoreError> {
        // Kept for a month: enough for a usage report, then gone by itself.
        let expires = crate::usage::day_start(day) + 32 * 86_400;
        self.update_in(workspace_id, format!("USAGE#{}#{day}", crm.as_str()))
            .update_expression("ADD calls :one, tokens :tokens SET #ttl = :ttl")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":tokens", n(i64::from(tokens)))
            .expression_attribute_values(":ttl", n(expires))
            .send()
            .await
            .map_err(request_error)?;
        Ok(())
    }

    async fn crm_usage(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        day: &str,
    ) -> Result<CrmUsage, StoreError> {
        Ok(self
            .get::<CrmUsage>(ws_pk(workspace_id), format!("USAGE#{}#{day}", crm.as_str()))
            .await?
            .unwrap_or_default())
    }

    async fn mark_budget_wait(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        until: i64,
    ) -> Result<bool, StoreError> {
        let update = self
            .update_in(workspace_id, format!("BUDGET#{}", crm.as_str()))
            .update_expression("SET until_at = :until, #ttl = :ttl")
            .condition_expression("attribute_not_exists(until_at) OR until_at < :until")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":until", n(until))
            // Kept a day past the wait, then gone by itself.
            .expression_attribute_values(":ttl", n(until + 86_400));
        condition_outcome(update.send().await)
    }

    async fn set_time_zone(&self, workspace_id: &str, time_zone: &str) -> Result<(), StoreError> {
        self.update_in(workspace_id, "WORKSPACE".into())
            .update_expression("SET time_zone = :tz")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":tz", s(time_zone))
            .send()
            .await
            .map_err(request_error)?;
        Ok(())
    }
}

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

/// How often a token rotation is tried against concurrent rotations.
const ROTATION_ATTEMPTS: usize = 5;

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

/// When an item's retention began: a new retention is counted from it.
const RETAINED_FROM: &str = "retained_from";

fn add_expiry(item: &mut Item, expiry: Expiry) {
    item.insert("ttl".into(), n(expiry.expires_at));
    item.insert(RETAINED_FROM.into(), n(expiry.retained_from));
}

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
    async fn partition_page(
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

/// A sort key's kind, as logs may show it (a chat key holds a number).
fn item_kind(sk: &str) -> String {
    sk.split('#').next().unwrap_or_default().to_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sk: &str, numbers: &[(&str, i64)], texts: &[(&str, &str)]) -> Item {
        let mut item = Item::from([("sk".to_owned(), s(sk))]);
        item.extend(numbers.iter().map(|(k, v)| ((*k).to_owned(), n(v))));
        item.extend(texts.iter().map(|(k, v)| ((*k).to_owned(), s(*v))));
        item
    }

    /// 2026-05-20 09:15 UTC.
    const MAY_20_0915: i64 = 1_779_268_500;

    fn anchor(item: &Item) -> Option<(i64, &'static str, Option<i64>)> {
        retention_start(item, chrono_tz::Tz::UTC).map(|s| (s.anchor, s.unchanged, s.old_ttl))
    }

    #[test]
    fn an_item_with_its_anchor_is_counted_from_it_if_still_the_same() {
        let message = item(
            "MSG#wamid.1",
            &[("ttl", MAY_20_0915 + 99), (RETAINED_FROM, MAY_20_0915)],
            &[],
        );
        assert_eq!(
            anchor(&message),
            Some((MAY_20_0915, "retained_from = :anchor", None))
        );
        let note = item(
            "NOTE#1#44#2026-05-20#9#1",
            &[(RETAINED_FROM, MAY_20_0915)],
            &[("day", "2026-05-20")],
        );
        assert_eq!(anchor(&note).map(|a| a.0), Some(MAY_20_0915));
    }

    #[test]
    fn items_stored_before_anchors_count_from_what_they_were_given() {
        // A message finished under the fixed 30 days.
        let ttl = MAY_20_0915 + LEGACY_RETENTION_SECS;
        let message = item("MSG#wamid.1", &[("ttl", ttl)], &[]);
        assert_eq!(
            anchor(&message),
            Some((
                MAY_20_0915,
                "attribute_not_exists(retained_from) AND #ttl = :old",
                Some(ttl)
            ))
        );
        // A day note that never expired: from the end of its day.
        let note = item("NOTE#1#44#2026-05-20#9#1", &[], &[("day", "2026-05-20")]);
        assert_eq!(anchor(&note).map(|a| a.0), Some(1_779_321_600));
        // A sync-log entry: from when it was written.
        let entry = item("LOG#000001779268500000000-ab", &[("at", MAY_20_0915)], &[]);
        assert_eq!(anchor(&entry).map(|a| a.0), Some(MAY_20_0915));
    }

    #[test]
    fn what_does_not_expire_with_the_retention_is_left_alone() {
        // A message not finished has no expiry: it keeps none.
        assert!(anchor(&item("MSG#wamid.1", &[], &[])).is_none());
        for sk in [
            "CHAT#1#44",
            "USER#u1",
            "WORKSPACE",
            "CONN#zoho#ORG",
            "OAUTHSTATE#n",
        ] {
            assert!(anchor(&item(sk, &[("ttl", 1)], &[])).is_none(), "{sk}");
        }
    }
}

/// Live-chat sign-in items (their own table of keys is there).
mod live_signin;
/// API plans and pacing notices.
mod pacing;
