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

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnConsumedCapacity, TransactWriteItem};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::sealed::{self, CHAT_FIELDS, MESSAGE_FIELDS};
use crate::crypto::{ContentKeys, TokenCipher};
use crate::error::StoreError;
use crate::model::{Chat, Connection, ConnectionKind, CrmKind, RecordRef, StoredMessage, User};
use crate::phone::E164;
use crate::retention::Expiry;
use crate::store::Insert;

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

/// When an item's retention began: a new retention is counted from it.
const RETAINED_FROM: &str = "retained_from";

fn add_expiry(item: &mut Item, expiry: Expiry) {
    item.insert("ttl".into(), n(expiry.expires_at));
    item.insert(RETAINED_FROM.into(), n(expiry.retained_from));
}

/// A sort key's kind, as logs may show it (a chat key holds a number).
fn item_kind(sk: &str) -> String {
    sk.split('#').next().unwrap_or_default().to_owned()
}

// Each aggregate's items in its own file; every item's keys are in the
// table above.
mod chat;
mod connection;
/// Live-chat sign-in items (their own table of keys is there).
mod live_signin;
mod message;
mod note;
/// API plans and pacing notices.
mod pacing;
mod removal;
mod settings;
mod sync_log;
mod workspace;
