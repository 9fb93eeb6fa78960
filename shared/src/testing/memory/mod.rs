//! In-memory doubles of the state, queue and secret ports, counting every
//! call, so a property can say "nothing was stored or queued" exactly.
//!
//! The store keeps what the handlers under test read back (workspaces,
//! users and their tokens, numbers, OAuth states, connections, chats,
//! messages, settings, the sync log) and behaves like the DynamoDB adapter
//! where a handler's or rule's answer depends on it (insert once, take a
//! state once, conditional state changes, chat patches, record-creation
//! claims by chat and by contact, cached CRM users); the rest answers
//! "nothing there". `State` and the seeding are here; each port's
//! implementation is in its own file, by aggregate as in `adapters::dynamo`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::model::{
    Chat, Connection, ConnectionKind, CrmUser, DayNote, MessageState, OAuthState, RecordRef,
    StoredMessage, SyncSettings, User, WhatsAppNumber, Workspace,
};
use crate::phone::E164;
use crate::store::LogEntry;

mod chat;
mod connection;
mod message;
mod note;
mod queue;
mod settings;
mod workspace;

pub use queue::{MemoryQueue, MemorySecrets};

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
