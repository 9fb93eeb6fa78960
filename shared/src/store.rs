//! The state port: small traits, one per aggregate, that the DynamoDB adapter
//! implements. Every workspace item is keyed under its workspace; the only
//! global items are lookups that lead *to* a workspace (a token, a WhatsApp
//! number id, an OAuth state), and each is found from an item of its
//! workspace, so that deleting a workspace finds them all.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::model::{
    AttachmentOutcome, Chat, ChatPatch, Connection, ConnectionKind, CrmKind, CrmUser, DayNote,
    Delivery, MessageState, OAuthState, RecordRef, StoredMessage, SyncSettings, User,
    WhatsAppNumber, Workspace,
};
use crate::phone::E164;
use crate::retention::{Expiry, Retention};

/// The outcome of a write that must happen at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insert<T> {
    Inserted,
    /// Something was there already; here it is.
    Exists(T),
}

#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    async fn create_workspace(
        &self,
        workspace: &Workspace,
        owner: &User,
        token_hash: &str,
    ) -> Result<(), StoreError>;
    async fn workspace(&self, id: &str) -> Result<Option<Workspace>, StoreError>;
    async fn add_user(&self, user: &User, token_hash: &str) -> Result<(), StoreError>;
    async fn user(&self, workspace_id: &str, user_id: &str) -> Result<Option<User>, StoreError>;
    /// The user a token belongs to; none for a token of a workspace that is
    /// being deleted.
    async fn user_for_token(&self, token_hash: &str) -> Result<Option<User>, StoreError>;
    /// Removes a user and their token; false if there was no such user.
    async fn remove_user(&self, workspace_id: &str, user_id: &str) -> Result<bool, StoreError>;
    /// Makes `new_hash` the user's only valid token.
    async fn replace_token(&self, user: &User, new_hash: &str) -> Result<(), StoreError>;
    async fn put_whatsapp_number(&self, number: &WhatsAppNumber) -> Result<(), StoreError>;
    async fn whatsapp_number(
        &self,
        phone_number_id: &str,
    ) -> Result<Option<WhatsAppNumber>, StoreError>;
    /// Every WhatsApp number of the workspace.
    async fn whatsapp_numbers(&self, workspace_id: &str)
    -> Result<Vec<WhatsAppNumber>, StoreError>;
    /// Sets how long the workspace keeps message content; false if there is
    /// no such workspace, or it is being deleted.
    async fn set_retention(
        &self,
        workspace_id: &str,
        retention: Retention,
    ) -> Result<bool, StoreError>;
    /// Gives up to `limit` of the workspace's items after the cursor the
    /// expiry `retention` gives them: finished messages, day notes (their
    /// days cut in `tz`) and sync-log entries, each counted from when its
    /// retention began.
    async fn reapply_retention_page(
        &self,
        workspace_id: &str,
        after: Option<&str>,
        limit: usize,
        retention: Retention,
        tz: &crate::time_zone::TimeZone,
    ) -> Result<Swept, StoreError>;
}

/// What a page of a job over a workspace's items did to how many, and
/// where the next page starts (none: it was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    pub count: usize,
    pub next: Option<String>,
}

/// What deleting a workspace needs (see `crate::deletion`).
#[async_trait]
pub trait WorkspaceRemovalStore: Send + Sync {
    /// Marks the workspace as being deleted, so that it accepts no more
    /// work (its tokens stop authenticating at once); when it was first
    /// marked, or none if there is no such workspace.
    async fn mark_workspace_deleting(
        &self,
        workspace_id: &str,
        at: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Removes the lookups that route the workspace's WhatsApp numbers to
    /// it, so deliveries for them are no longer stored; how many.
    async fn remove_number_lookups(&self, workspace_id: &str) -> Result<usize, StoreError>;
    /// Removes up to `limit` items of the workspace after the cursor, with
    /// the global lookups they lead to (a user's token, a number's routing,
    /// an OAuth state); its connections stay until their grants are revoked,
    /// and the workspace item until the very end.
    async fn purge_workspace_page(
        &self,
        workspace_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Swept, StoreError>;
    /// The kinds (`MSG`, `CONN`, …) of up to ten items the workspace still
    /// has besides the workspace item: empty once nothing else is left.
    async fn workspace_leftovers(&self, workspace_id: &str) -> Result<Vec<String>, StoreError>;
    /// Removes the workspace item, the last of it.
    async fn remove_workspace_item(&self, workspace_id: &str) -> Result<(), StoreError>;
}

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Stores a new connection unless one of the same key exists.
    async fn insert_connection(
        &self,
        connection: &Connection,
    ) -> Result<Insert<Connection>, StoreError>;
    async fn connection(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        kind: ConnectionKind,
        user_id: Option<&str>,
    ) -> Result<Option<Connection>, StoreError>;
    /// The organization and every personal connection of a workspace to `crm`.
    async fn connections(
        &self,
        workspace_id: &str,
        crm: CrmKind,
    ) -> Result<Vec<Connection>, StoreError>;
    /// Every connection, in any workspace, made with the CRM user
    /// `crm_user_id` of the CRM organization `crm_org_id`. Read from an
    /// index: eventually consistent, so read a connection again before
    /// acting on it.
    async fn connections_of_crm_user(
        &self,
        crm: CrmKind,
        crm_org_id: &str,
        crm_user_id: &str,
    ) -> Result<Vec<Connection>, StoreError>;
    async fn delete_connection(&self, connection: &Connection) -> Result<(), StoreError>;
    /// Replaces a connection if it still has `expected_version` and its
    /// connection time (a reconnect starts again at version 1); false if
    /// another writer got there first.
    async fn replace_connection(
        &self,
        connection: &Connection,
        expected_version: u64,
    ) -> Result<bool, StoreError>;
    /// Takes `connection`'s refresh lease (the organization's, or a personal
    /// connection's own) if it is free (or expired) and the stored
    /// connection is still `connection` (its version and connection time).
    async fn take_refresh_lease(
        &self,
        connection: &Connection,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError>;
    async fn put_oauth_state(&self, state: &OAuthState, ttl: i64) -> Result<(), StoreError>;
    /// Removes and returns the state: a state can be used once.
    async fn take_oauth_state(&self, nonce: &str) -> Result<Option<OAuthState>, StoreError>;
    async fn cached_crm_users(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        now: i64,
    ) -> Result<Option<Vec<CrmUser>>, StoreError>;
    async fn cache_crm_users(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        users: &[CrmUser],
        expires_at: i64,
    ) -> Result<(), StoreError>;
}

/// The outcome of [`ChatStore::claim_contact_creation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactClaim {
    /// The claimant may create the record.
    Claimed,
    /// This product already made the contact's record (for another chat).
    Created(RecordRef),
    /// Another chat of the contact is creating it now.
    Busy,
}

#[async_trait]
pub trait ChatStore: Send + Sync {
    /// Creates the chat or refreshes its contact name; never touches the
    /// record it is linked to.
    async fn upsert_chat_contact(
        &self,
        workspace_id: &str,
        chat_key: &str,
        phone_number_id: &str,
        contact: &E164,
        contact_name: Option<&str>,
    ) -> Result<(), StoreError>;
    async fn chat(&self, workspace_id: &str, chat_key: &str) -> Result<Option<Chat>, StoreError>;
    /// Claims, for `claimant` (a message id), the right to create the chat's
    /// record until `until`; false if the chat has a record or another
    /// message holds an unexpired claim. The claimant may claim again.
    async fn claim_record_creation(
        &self,
        workspace_id: &str,
        chat_key: &str,
        claimant: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError>;
    async fn release_record_claim(
        &self,
        workspace_id: &str,
        chat_key: &str,
        claimant: &str,
    ) -> Result<(), StoreError>;
    /// Claims the right to create the record of a *contact* (one number,
    /// whatever business number it writes to) for `claimant` until `until`.
    /// A contact writing to two numbers of the workspace has two chats; the
    /// CRM's search cannot see a record seconds old, so without this both
    /// would create one.
    async fn claim_contact_creation(
        &self,
        workspace_id: &str,
        contact: &E164,
        claimant: &str,
        now: i64,
        until: i64,
    ) -> Result<ContactClaim, StoreError>;
    /// The contact's record is made: its other chats link to it until
    /// `until` (past the CRM's search-index delay; then they search).
    async fn set_contact_record(
        &self,
        workspace_id: &str,
        contact: &E164,
        record: &RecordRef,
        until: i64,
    ) -> Result<(), StoreError>;
    /// The contact's record was deleted in the CRM: its chats no longer
    /// link to it (only if it is still that record).
    async fn forget_contact_record(
        &self,
        workspace_id: &str,
        contact: &E164,
        record: &RecordRef,
    ) -> Result<(), StoreError>;
    async fn release_contact_claim(
        &self,
        workspace_id: &str,
        contact: &E164,
        claimant: &str,
    ) -> Result<(), StoreError>;
    /// Changes the fields the patch sets; false if the chat does not exist
    /// (or, with `forget_record`, no longer has that record).
    async fn patch_chat(
        &self,
        workspace_id: &str,
        chat_key: &str,
        patch: &ChatPatch,
    ) -> Result<bool, StoreError>;
    /// Every chat of the workspace.
    async fn chats(&self, workspace_id: &str) -> Result<Vec<Chat>, StoreError>;
    /// The chat and how far its user-facing side is read (live chat), in
    /// one read: what the 2-second poll of the chat view needs per chat.
    async fn chat_and_read_mark(
        &self,
        workspace_id: &str,
        chat_key: &str,
    ) -> Result<Option<(Chat, Option<ReadMark>)>, StoreError>;
    /// Moves the chat's read mark on to `mark`, never back: false if it is
    /// as far already (or further), or there is no such chat.
    async fn advance_read_mark(
        &self,
        workspace_id: &str,
        chat_key: &str,
        mark: &ReadMark,
    ) -> Result<bool, StoreError>;
}

/// How far a chat is read from the CRM: the customer's newest message a
/// user marked read (WhatsApp takes earlier ones as read with it), and
/// when it was sent; later inbound messages are unread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMark {
    pub up_to: i64,
    pub message_id: String,
}

#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn sync_settings(
        &self,
        workspace_id: &str,
        crm: CrmKind,
    ) -> Result<Option<SyncSettings>, StoreError>;
    /// Writes the settings if the stored version is `settings.version - 1`
    /// (or there are none and this is version 1); false when another writer
    /// changed them meanwhile.
    async fn save_sync_settings(&self, settings: &SyncSettings) -> Result<bool, StoreError>;
    async fn set_time_zone(&self, workspace_id: &str, time_zone: &str) -> Result<(), StoreError>;
    /// Adds one call costing `tokens` to the workspace's use of its CRM on
    /// `day` (UTC, `YYYY-MM-DD`).
    async fn add_crm_usage(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        day: &str,
        tokens: u32,
    ) -> Result<(), StoreError>;
    /// The calls and tokens spent on `day`.
    async fn crm_usage(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        day: &str,
    ) -> Result<CrmUsage, StoreError>;
    /// Remembers that the CRM's API budget keeps sync waiting until `until`
    /// (unix seconds); true if that is news (no wait that long was known),
    /// so that it is logged and scheduled once.
    async fn mark_budget_wait(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        until: i64,
    ) -> Result<bool, StoreError>;
}

/// What a workspace spent of its CRM's API on one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrmUsage {
    pub calls: u64,
    pub tokens: u64,
}

/// What claiming a send found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendClaim {
    /// Nobody sent it yet: this caller sends it.
    Claimed,
    /// Sent already, as this message.
    Sent { message_id: String },
    /// Being sent (or its outcome unknown) since `started_at`.
    InProgress { started_at: i64 },
}

/// One page of a longer read, and where the next one starts (none: done).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Moves a sent message's delivery state on, never back: false if it is
    /// not stored or already as far.
    async fn advance_delivery(
        &self,
        workspace_id: &str,
        message_id: &str,
        delivery: &Delivery,
    ) -> Result<bool, StoreError>;
    /// Claims the send a client asked for under `send_key` (its own id for
    /// the send), recorded before anything is sent.
    async fn claim_send(
        &self,
        workspace_id: &str,
        send_key: &str,
        now: i64,
    ) -> Result<SendClaim, StoreError>;
    /// Records the message id WhatsApp gave a claimed send.
    async fn finish_send(
        &self,
        workspace_id: &str,
        send_key: &str,
        message_id: &str,
    ) -> Result<(), StoreError>;
    /// Gives up a claim whose send was refused (nothing was sent), so the
    /// client may try again.
    async fn release_send(&self, workspace_id: &str, send_key: &str) -> Result<(), StoreError>;
    /// Stores a new message (it expires only once finished).
    async fn insert_message(
        &self,
        message: &StoredMessage,
    ) -> Result<Insert<StoredMessage>, StoreError>;
    async fn message(
        &self,
        workspace_id: &str,
        message_id: &str,
    ) -> Result<Option<StoredMessage>, StoreError>;
    /// A chat's messages, oldest first, with their states.
    async fn chat_messages(
        &self,
        workspace_id: &str,
        chat_key: &str,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    /// Moves a message from chat `from` to chat `to` (its sender's number
    /// became known); false if it is no longer in `from`.
    async fn move_message_to_chat(
        &self,
        workspace_id: &str,
        message: &StoredMessage,
        from: &str,
        to: &str,
    ) -> Result<bool, StoreError>;
    /// Records that an upload of a media message's file is about to begin
    /// (kept if one began before).
    async fn mark_attachment_started(
        &self,
        workspace_id: &str,
        message_id: &str,
        at: i64,
    ) -> Result<(), StoreError>;
    /// Records what became of a media message's file.
    async fn set_message_attachment(
        &self,
        workspace_id: &str,
        message_id: &str,
        outcome: &AttachmentOutcome,
    ) -> Result<(), StoreError>;
    /// Finishes a message (`appended`, `skipped`: a finished state) in one
    /// unconditional write, as [`Self::set_message_state`] does without
    /// `only_from`; the message expires as `expiry` says (its workspace's
    /// retention after it finished).
    async fn finish_message(
        &self,
        workspace_id: &str,
        message_id: &str,
        state: &MessageState,
        expiry: Expiry,
    ) -> Result<(), StoreError>;
    /// Up to `limit` messages of a workspace in the `waiting` state, oldest
    /// first, after the cursor of an earlier page.
    async fn waiting_messages(
        &self,
        workspace_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredMessage>, StoreError>;
    /// Sets the state in one atomic write; with `only_from`, only if the
    /// current state is one of those (`received`, `queued`, `waiting`,
    /// `appended`), else false. Without it the write always happens: a state
    /// a worker reached is never lost to a concurrent writer. A state not
    /// finished never expires; a finished one is refused here (it needs its
    /// expiry: [`Self::finish_message`]).
    async fn set_message_state(
        &self,
        workspace_id: &str,
        message_id: &str,
        state: &MessageState,
        only_from: Option<&[&str]>,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait NoteStore: Send + Sync {
    /// One part of a chat's day note on `record` (a chat whose record
    /// changes mid-day starts that day's note afresh on the new record).
    async fn day_note(
        &self,
        workspace_id: &str,
        chat_key: &str,
        record: &RecordRef,
        day: &str,
        part: u32,
    ) -> Result<Option<DayNote>, StoreError>;
    /// Writes the note if its stored version is `note.version - 1` (or it is
    /// new at version 1); false when another writer changed it meanwhile.
    /// Its lines hold message text: it expires as `expiry` says.
    async fn save_day_note(&self, note: &DayNote, expiry: Expiry) -> Result<bool, StoreError>;
}

/// One decision of the sync, as the workspace reads it in its sync log.
/// Never holds a token or message text.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct LogEntry {
    /// `<unix µs, zero-padded to 18>-<random>` (older entries: ms, 15):
    /// sorts by time.
    pub id: String,
    pub workspace_id: String,
    pub at: i64,
    /// A `crate::synclog::SyncEvent`'s name (`created`, `matched`, …):
    /// kept as read, so that an entry of a name no longer written still
    /// reads.
    pub event: String,
    pub chat_key: Option<String>,
    pub message_id: Option<String>,
    pub detail: serde_json::Value,
}

#[async_trait]
pub trait SyncLogStore: Send + Sync {
    async fn append_log(&self, entry: &LogEntry, ttl: i64) -> Result<(), StoreError>;
    /// Newest first, optionally one chat's, strictly older than `before`.
    async fn log_entries(
        &self,
        workspace_id: &str,
        chat_key: Option<&str>,
        before: Option<&str>,
        limit: usize,
        now: i64,
    ) -> Result<Vec<LogEntry>, StoreError>;
}

/// Everything the handlers need from state.
pub trait Store:
    WorkspaceStore
    + ConnectionStore
    + ChatStore
    + MessageStore
    + NoteStore
    + SyncLogStore
    + SettingsStore
    + WorkspaceRemovalStore
    + SignInStore
    + PacingStore
{
}

impl<T> Store for T where
    T: WorkspaceStore
        + ConnectionStore
        + ChatStore
        + MessageStore
        + NoteStore
        + SyncLogStore
        + SettingsStore
        + WorkspaceRemovalStore
        + SignInStore
        + PacingStore
{
}

/// Live-chat sign-ins (Zoho's popup): their port lives beside their logic.
pub use crate::livechat::zoho_signin::SignInStore;
/// API plans and pacing notices: their port lives beside their logic.
pub use crate::pacing::PacingStore;
