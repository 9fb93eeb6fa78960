//! In-memory doubles of the state, queue and secret ports, counting every
//! call, so a property can say "nothing was stored or queued" exactly.
//!
//! The store keeps what the handlers under test read back (workspaces,
//! users and their tokens, numbers, OAuth states, connections, chats,
//! messages, settings, the sync log) and behaves like the DynamoDB adapter
//! where a handler's or rule's answer depends on it (insert once, take a
//! state once, conditional state changes, chat patches, record-creation
//! claims by chat and by contact, cached CRM users); the rest answers
//! "nothing there".

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{QueueError, SecretsError, StoreError};
use crate::livechat::zoho_signin::{SignIn, SignInState, SignInStore};
use crate::model::{
    AttachmentOutcome, Chat, ChatPatch, Connection, ConnectionKind, CrmKind, CrmUser, DayNote,
    Delivery, MessageState, OAuthState, RecordRef, StoredMessage, SyncSettings, User,
    WhatsAppNumber, Workspace,
};
use crate::pacing::{ApiPlan, PacingStore};
use crate::phone::E164;
use crate::queue::{Job, MessageRef, Queue, QueueName};
use crate::retention::{Expiry, Retention};
use crate::secrets::SecretSource;
use crate::store::{
    ChatStore, ConnectionStore, ContactClaim, CrmUsage, Insert, LogEntry, MessageStore, NoteStore,
    Page, ReadMark, SendClaim, SettingsStore, Swept, SyncLogStore, WorkspaceRemovalStore,
    WorkspaceStore,
};
use async_trait::async_trait;

/// Workspace, CRM, organization or personal, and the user (personal only).
type ConnectionKey = (String, &'static str, bool, String);

#[derive(Default)]
struct State {
    workspaces: BTreeMap<String, Workspace>,
    users: BTreeMap<(String, String), User>,
    tokens: BTreeMap<String, (String, String)>,
    numbers: BTreeMap<String, WhatsAppNumber>,
    connections: BTreeMap<ConnectionKey, Connection>,
    oauth_states: BTreeMap<String, OAuthState>,
    chats: BTreeMap<(String, String), Chat>,
    messages: BTreeMap<(String, String), StoredMessage>,
    settings: BTreeMap<(String, &'static str), SyncSettings>,
    notes: BTreeMap<(String, String, String, String, u32), DayNote>,
    /// Record-creation claims by chat.
    chat_claims: BTreeMap<(String, String), Claim>,
    /// By contact (E.164): the record made for them, until when other
    /// chats link to it, and the claim to make one.
    contacts: BTreeMap<(String, String), ContactEntry>,
    /// Cached CRM users by workspace and CRM, until when.
    crm_users: BTreeMap<(String, &'static str), (Vec<CrmUser>, i64)>,
    log: Vec<LogEntry>,
}

/// Who may create a record, until when.
#[derive(Debug, Clone)]
struct Claim {
    by: String,
    until: i64,
}

impl Claim {
    fn new(claimant: &str, until: i64) -> Self {
        Self {
            by: claimant.to_owned(),
            until,
        }
    }

    /// No claim, one run out at `now`, or the claimant's own.
    fn free_for(claim: Option<&Self>, claimant: &str, now: i64) -> bool {
        claim.is_none_or(|c| c.until < now || c.by == claimant)
    }
}

#[derive(Debug, Clone, Default)]
struct ContactEntry {
    record: Option<(RecordRef, i64)>,
    claim: Option<Claim>,
}

/// Every call is counted; writes also by name, so a failing property says
/// which write happened.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    reads: AtomicUsize,
    writes: Mutex<Vec<&'static str>>,
}

impl MemoryStore {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while the lock was held leaves the data as it
        // was; the property that panicked is reported by its own check.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self, what: &'static str) {
        self.writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(what);
    }

    /// The writes made since the store was built (seeding is not counted).
    pub fn writes(&self) -> Vec<&'static str> {
        self.writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }

    /// Whether anything was written but the given harmless ones.
    pub fn writes_other_than(&self, allowed: &[&str]) -> Vec<&'static str> {
        self.writes()
            .into_iter()
            .filter(|w| !allowed.contains(w))
            .collect()
    }

    pub fn message_ids(&self) -> Vec<String> {
        self.state()
            .messages
            .keys()
            .map(|(_, id)| id.clone())
            .collect()
    }

    pub fn connection_count(&self) -> usize {
        self.state().connections.len()
    }

    pub fn seed_workspace(&self, workspace: Workspace) {
        self.state()
            .workspaces
            .insert(workspace.id.clone(), workspace);
    }

    pub fn seed_user(&self, user: User, token_hash: &str) {
        let mut state = self.state();
        state.tokens.insert(
            token_hash.to_owned(),
            (user.workspace_id.clone(), user.id.clone()),
        );
        state
            .users
            .insert((user.workspace_id.clone(), user.id.clone()), user);
    }

    pub fn seed_number(&self, number: WhatsAppNumber) {
        self.state()
            .numbers
            .insert(number.phone_number_id.clone(), number);
    }

    pub fn seed_oauth_state(&self, state: OAuthState) {
        self.state().oauth_states.insert(state.nonce.clone(), state);
    }

    pub fn seed_chat(&self, chat: Chat) {
        self.state()
            .chats
            .insert((chat.workspace_id.clone(), chat.key.clone()), chat);
    }

    pub fn seed_message(&self, message: StoredMessage) {
        self.state().messages.insert(
            (message.workspace_id.clone(), message.message_id.clone()),
            message,
        );
    }

    pub fn seed_connection(&self, connection: Connection) {
        self.state()
            .connections
            .insert(connection_key(&connection), connection);
    }

    pub fn seed_sync_settings(&self, settings: SyncSettings) {
        self.state().settings.insert(
            (settings.workspace_id.clone(), settings.crm.as_str()),
            settings,
        );
    }

    /// The chat's day notes, in day and part order.
    pub fn day_notes(&self, workspace_id: &str, chat_key: &str) -> Vec<DayNote> {
        self.state()
            .notes
            .iter()
            .filter(|((w, c, ..), _)| w == workspace_id && c == chat_key)
            .map(|(_, note)| note.clone())
            .collect()
    }

    pub fn message_state(&self, workspace_id: &str, message_id: &str) -> Option<MessageState> {
        self.state()
            .messages
            .get(&(workspace_id.to_owned(), message_id.to_owned()))
            .map(|m| m.state.clone())
    }
}

/// A chat as a first message makes it: no record, no one responsible.
pub fn new_chat(workspace_id: &str, key: &str, phone_number_id: &str, contact: E164) -> Chat {
    Chat {
        workspace_id: workspace_id.to_owned(),
        key: key.to_owned(),
        phone_number_id: phone_number_id.to_owned(),
        contact,
        contact_name: None,
        record: None,
        record_created_by_us: false,
        record_name: None,
        responsible_user_id: None,
        ambiguous_candidates: Vec::new(),
        record_chosen_by: None,
        record_checked_at: 0,
        sync_stopped: None,
        creating_by: None,
        follow_up: None,
        follow_up_started: false,
        follow_up_checked_at: 0,
    }
}

fn connection_key(c: &Connection) -> ConnectionKey {
    let user = match c.kind {
        ConnectionKind::Organization => String::new(),
        ConnectionKind::Personal => c.user_id.clone(),
    };
    (
        c.workspace_id.clone(),
        c.crm.as_str(),
        c.kind == ConnectionKind::Organization,
        user,
    )
}

#[async_trait]
impl WorkspaceStore for MemoryStore {
    async fn create_workspace(
        &self,
        workspace: &Workspace,
        owner: &User,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        self.write("create_workspace");
        self.state()
            .workspaces
            .insert(workspace.id.clone(), workspace.clone());
        let mut state = self.state();
        state.tokens.insert(
            token_hash.to_owned(),
            (owner.workspace_id.clone(), owner.id.clone()),
        );
        state.users.insert(
            (owner.workspace_id.clone(), owner.id.clone()),
            owner.clone(),
        );
        Ok(())
    }

    async fn workspace(&self, id: &str) -> Result<Option<Workspace>, StoreError> {
        self.read();
        Ok(self.state().workspaces.get(id).cloned())
    }

    async fn add_user(&self, user: &User, token_hash: &str) -> Result<(), StoreError> {
        self.write("add_user");
        let mut state = self.state();
        state.tokens.insert(
            token_hash.to_owned(),
            (user.workspace_id.clone(), user.id.clone()),
        );
        state
            .users
            .insert((user.workspace_id.clone(), user.id.clone()), user.clone());
        Ok(())
    }

    async fn user(&self, workspace_id: &str, user_id: &str) -> Result<Option<User>, StoreError> {
        self.read();
        Ok(self
            .state()
            .users
            .get(&(workspace_id.to_owned(), user_id.to_owned()))
            .cloned())
    }

    async fn user_for_token(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        self.read();
        let state = self.state();
        let Some(key) = state.tokens.get(token_hash) else {
            return Ok(None);
        };
        let deleting = state
            .workspaces
            .get(&key.0)
            .is_none_or(|w| !w.accepts_work());
        Ok(if deleting {
            None
        } else {
            state.users.get(key).cloned()
        })
    }

    async fn remove_user(&self, workspace_id: &str, user_id: &str) -> Result<bool, StoreError> {
        self.write("remove_user");
        let mut state = self.state();
        let key = (workspace_id.to_owned(), user_id.to_owned());
        state.tokens.retain(|_, k| *k != key);
        Ok(state.users.remove(&key).is_some())
    }

    async fn replace_token(&self, user: &User, new_hash: &str) -> Result<(), StoreError> {
        self.write("replace_token");
        let mut state = self.state();
        let key = (user.workspace_id.clone(), user.id.clone());
        state.tokens.retain(|_, k| *k != key);
        state.tokens.insert(new_hash.to_owned(), key);
        Ok(())
    }

    async fn put_whatsapp_number(&self, number: &WhatsAppNumber) -> Result<(), StoreError> {
        self.write("put_whatsapp_number");
        self.state()
            .numbers
            .insert(number.phone_number_id.clone(), number.clone());
        Ok(())
    }

    async fn whatsapp_number(
        &self,
        phone_number_id: &str,
    ) -> Result<Option<WhatsAppNumber>, StoreError> {
        self.read();
        Ok(self.state().numbers.get(phone_number_id).cloned())
    }

    async fn whatsapp_numbers(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<WhatsAppNumber>, StoreError> {
        self.read();
        Ok(self
            .state()
            .numbers
            .values()
            .filter(|n| n.workspace_id == workspace_id)
            .cloned()
            .collect())
    }

    async fn set_retention(
        &self,
        workspace_id: &str,
        retention: Retention,
    ) -> Result<bool, StoreError> {
        self.write("set_retention");
        Ok(match self.state().workspaces.get_mut(workspace_id) {
            Some(w) if w.accepts_work() => {
                w.retention = retention;
                true
            }
            _ => false,
        })
    }

    async fn reapply_retention_page(
        &self,
        _workspace_id: &str,
        _after: Option<&str>,
        _limit: usize,
        _retention: Retention,
        _tz: &crate::time_zone::TimeZone,
    ) -> Result<Swept, StoreError> {
        self.write("reapply_retention_page");
        Ok(Swept {
            count: 0,
            next: None,
        })
    }
}

#[async_trait]
impl WorkspaceRemovalStore for MemoryStore {
    async fn mark_workspace_deleting(
        &self,
        workspace_id: &str,
        at: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.write("mark_workspace_deleting");
        Ok(self
            .state()
            .workspaces
            .get_mut(workspace_id)
            .map(|w| *w.deleting_since.get_or_insert(at)))
    }

    async fn remove_number_lookups(&self, workspace_id: &str) -> Result<usize, StoreError> {
        self.write("remove_number_lookups");
        let mut state = self.state();
        let before = state.numbers.len();
        state.numbers.retain(|_, n| n.workspace_id != workspace_id);
        Ok(before - state.numbers.len())
    }

    async fn purge_workspace_page(
        &self,
        _workspace_id: &str,
        _after: Option<&str>,
        _limit: usize,
    ) -> Result<Swept, StoreError> {
        self.write("purge_workspace_page");
        Ok(Swept {
            count: 0,
            next: None,
        })
    }

    async fn workspace_leftovers(&self, _workspace_id: &str) -> Result<Vec<String>, StoreError> {
        self.read();
        Ok(Vec::new())
    }

    async fn remove_workspace_item(&self, workspace_id: &str) -> Result<(), StoreError> {
        self.write("remove_workspace_item");
        self.state().workspaces.remove(workspace_id);
        Ok(())
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn insert_connection(
        &self,
        connection: &Connection,
    ) -> Result<Insert<Connection>, StoreError> {
        self.write("insert_connection");
        let mut state = self.state();
        let key = connection_key(connection);
        if let Some(existing) = state.connections.get(&key) {
            return Ok(Insert::Exists(existing.clone()));
        }
        state.connections.insert(key, connection.clone());
        Ok(Insert::Inserted)
    }

    async fn connection(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        kind: ConnectionKind,
        user_id: Option<&str>,
    ) -> Result<Option<Connection>, StoreError> {
        self.read();
        let user = match kind {
            ConnectionKind::Organization => String::new(),
            ConnectionKind::Personal => user_id.unwrap_or_default().to_owned(),
        };
        Ok(self
            .state()
            .connections
            .get(&(
                workspace_id.to_owned(),
                crm.as_str(),
                kind == ConnectionKind::Organization,
                user,
            ))
            .cloned())
    }

    async fn connections(
        &self,
        workspace_id: &str,
        crm: CrmKind,
    ) -> Result<Vec<Connection>, StoreError> {
        self.read();
        Ok(self
            .state()
            .connections
            .values()
            .filter(|c| c.workspace_id == workspace_id && c.crm == crm)
            .cloned()
            .collect())
    }

    async fn connections_of_crm_user(
        &self,
        crm: CrmKind,
        crm_org_id: &str,
        crm_user_id: &str,
    ) -> Result<Vec<Connection>, StoreError> {
        self.read();
        Ok(self
            .state()
            .connections
            .values()
            .filter(|c| c.crm == crm && c.crm_org_id == crm_org_id && c.crm_user_id == crm_user_id)
            .cloned()
            .collect())
    }

    async fn delete_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.write("delete_connection");
        self.state().connections.remove(&connection_key(connection));
        Ok(())
    }

    async fn replace_connection(
        &self,
        connection: &Connection,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        self.write("replace_connection");
        let mut state = self.state();
        let key = connection_key(connection);
        match state.connections.get(&key) {
            Some(c) if c.version == expected_version => {
                state.connections.insert(key, connection.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn take_refresh_lease(
        &self,
        _connection: &Connection,
        _now: i64,
        _until: i64,
    ) -> Result<bool, StoreError> {
        self.write("take_refresh_lease");
        Ok(false)
    }

    async fn put_oauth_state(&self, state: &OAuthState, _ttl: i64) -> Result<(), StoreError> {
        self.write("put_oauth_state");
        self.state()
            .oauth_states
            .insert(state.nonce.clone(), state.clone());
        Ok(())
    }

    async fn take_oauth_state(&self, nonce: &str) -> Result<Option<OAuthState>, StoreError> {
        // A delete: counted as a write, though it stores nothing.
        self.write("take_oauth_state");
        Ok(self.state().oauth_states.remove(nonce))
    }

    async fn cached_crm_users(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        now: i64,
    ) -> Result<Option<Vec<CrmUser>>, StoreError> {
        self.read();
        Ok(self
            .state()
            .crm_users
            .get(&(workspace_id.to_owned(), crm.as_str()))
            .filter(|(_, until)| *until > now)
            .map(|(users, _)| users.clone()))
    }

    async fn cache_crm_users(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        users: &[CrmUser],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.write("cache_crm_users");
        self.state().crm_users.insert(
            (workspace_id.to_owned(), crm.as_str()),
            (users.to_vec(), expires_at),
        );
        Ok(())
    }
}

/// No live-chat sign-in is ever begun here: every lookup finds nothing.
#[async_trait]
impl SignInStore for MemoryStore {
    async fn begin_sign_in(&self, _state: &SignInState, _nonce: &str) -> Result<(), StoreError> {
        self.write("begin_sign_in");
        Ok(())
    }
    async fn take_sign_in_state(&self, _nonce: &str) -> Result<Option<SignInState>, StoreError> {
        self.read();
        Ok(None)
    }
    async fn settle_sign_in(&self, _nonce: &str, _sign_in: &SignIn) -> Result<(), StoreError> {
        self.write("settle_sign_in");
        Ok(())
    }
    async fn take_ready_sign_in(
        &self,
        _nonce: &str,
        _code: &str,
    ) -> Result<Option<SignIn>, StoreError> {
        self.read();
        Ok(None)
    }
}

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
        let Some(chat) = state.chats.get_mut(&key) else {
            return Ok(false);
        };
        if let Some(gone) = &patch.forget_record {
            // Only the record the caller found gone, as the table's condition.
            if chat.record.as_ref() != Some(gone) {
                return Ok(false);
            }
            chat.record = None;
            chat.record_created_by_us = false;
            chat.record_name = None;
            chat.ambiguous_candidates = Vec::new();
            chat.record_chosen_by = None;
            chat.creating_by = None;
            chat.follow_up = None;
            chat.follow_up_started = false;
            chat.follow_up_checked_at = 0;
            state.chat_claims.remove(&key);
        }
        let Some(chat) = state.chats.get_mut(&key) else {
            return Ok(false);
        };
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

#[async_trait]
impl SettingsStore for MemoryStore {
    async fn sync_settings(
        &self,
        workspace_id: &str,
        crm: CrmKind,
    ) -> Result<Option<SyncSettings>, StoreError> {
        self.read();
        Ok(self
            .state()
            .settings
            .get(&(workspace_id.to_owned(), crm.as_str()))
            .cloned())
    }

    async fn save_sync_settings(&self, settings: &SyncSettings) -> Result<bool, StoreError> {
        self.write("save_sync_settings");
        self.state().settings.insert(
            (settings.workspace_id.clone(), settings.crm.as_str()),
            settings.clone(),
        );
        Ok(true)
    }

    async fn set_time_zone(&self, workspace_id: &str, time_zone: &str) -> Result<(), StoreError> {
        self.write("set_time_zone");
        if let Some(w) = self.state().workspaces.get_mut(workspace_id) {
            w.time_zone = time_zone.to_owned();
        }
        Ok(())
    }

    async fn add_crm_usage(
        &self,
        _workspace_id: &str,
        _crm: CrmKind,
        _day: &str,
        _tokens: u32,
    ) -> Result<(), StoreError> {
        self.write("add_crm_usage");
        Ok(())
    }

    async fn crm_usage(
        &self,
        _workspace_id: &str,
        _crm: CrmKind,
        _day: &str,
    ) -> Result<CrmUsage, StoreError> {
        self.read();
        Ok(CrmUsage::default())
    }

    async fn mark_budget_wait(
        &self,
        _workspace_id: &str,
        _crm: CrmKind,
        _until: i64,
    ) -> Result<bool, StoreError> {
        self.write("mark_budget_wait");
        Ok(false)
    }
}

/// Counts what was sent on either queue.
#[derive(Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<MessageRef>>,
    jobs: AtomicUsize,
}

impl MemoryQueue {
    pub fn sent(&self) -> Vec<MessageRef> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Messages and jobs sent.
    pub fn sends(&self) -> usize {
        self.sent().len() + self.jobs.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, _queue: QueueName, message: &MessageRef) -> Result<(), QueueError> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(message.clone());
        Ok(())
    }

    async fn send_all(&self, _queue: QueueName, messages: &[MessageRef]) -> Result<(), QueueError> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(messages);
        Ok(())
    }

    async fn send_job(&self, _queue: QueueName, _job: &Job) -> Result<(), QueueError> {
        self.jobs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn retry_after(
        &self,
        _queue: QueueName,
        _receipt_handle: &str,
        _seconds: i32,
    ) -> Result<(), QueueError> {
        Ok(())
    }
}

/// Secrets by id, as Secrets Manager would hold them.
pub struct MemorySecrets(pub BTreeMap<String, String>);

#[async_trait]
impl SecretSource for MemorySecrets {
    async fn secret_string(&self, id: &str) -> Result<String, SecretsError> {
        self.0
            .get(id)
            .cloned()
            .ok_or_else(|| SecretsError::Unavailable {
                id: id.to_owned(),
                reason: "no such secret".into(),
            })
    }
}

/// No plan is ever set here: the assumed one applies, and a notice is news.
#[async_trait]
impl PacingStore for MemoryStore {
    async fn api_plan(
        &self,
        _workspace_id: &str,
        _crm: CrmKind,
    ) -> Result<Option<ApiPlan>, StoreError> {
        self.read();
        Ok(None)
    }
    async fn save_api_plan(&self, _workspace_id: &str, _plan: &ApiPlan) -> Result<(), StoreError> {
        self.write("save_api_plan");
        Ok(())
    }
    async fn first_conserve_notice(
        &self,
        _workspace_id: &str,
        _crm: CrmKind,
        _day: &str,
    ) -> Result<bool, StoreError> {
        self.write("first_conserve_notice");
        Ok(true)
    }
}
