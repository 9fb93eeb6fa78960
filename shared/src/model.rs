//! The product's domain: workspaces, users, WhatsApp numbers, CRM
//! connections, chats, messages and day notes.

use serde::{Deserialize, Serialize};

use crate::phone::E164;
use crate::retention::Retention;
use crate::whatsapp::{Direction, Media};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    /// IANA zone used to cut the day of a day note.
    pub time_zone: String,
    pub created_at: i64,
    /// How long what holds message content is kept (workspaces from before
    /// the setting keep the 30 days every item had).
    #[serde(default, rename = "retention_days")]
    pub retention: Retention,
    /// When its owner asked for it to be deleted: from then on it accepts
    /// no work (its tokens authenticate no one, its numbers route nowhere)
    /// while the deletion job removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting_since: Option<i64>,
}

impl Workspace {
    /// Whether work for it may still be done: not while it is being deleted.
    pub fn accepts_work(&self) -> bool {
        self.deleting_since.is_none()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn manages_workspace(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub workspace_id: String,
    pub id: String,
    pub email: String,
    pub role: Role,
    pub created_at: i64,
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WhatsAppNumber {
    pub workspace_id: String,
    /// The Cloud API's stable id of the business number; webhooks route by it.
    pub phone_number_id: String,
    /// The business number in E.164 (`+447700900100`); numbers registered
    /// before registration normalised it are stored as typed (show them
    /// through `sync::business_number_display`).
    pub display_phone_number: String,
    /// The user who connected the number: the default owner of new records.
    pub owner_user_id: String,
    /// The Cloud API access token for this number (media downloads),
    /// encrypted like CRM tokens and bound to this number. Never returned.
    #[serde(default)]
    pub access_token_enc: Option<String>,
    /// The WhatsApp Business Account the number belongs to (its message
    /// templates live there), if the registration named it.
    #[serde(default)]
    pub waba_id: Option<String>,
}

/// Without the access token, not even encrypted.
impl std::fmt::Debug for WhatsAppNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsAppNumber")
            .field("workspace_id", &self.workspace_id)
            .field("phone_number_id", &self.phone_number_id)
            .field("owner_user_id", &self.owner_user_id)
            .field("has_access_token", &self.access_token_enc.is_some())
            .finish_non_exhaustive()
    }
}

impl WhatsAppNumber {
    /// The associated data that binds the number's encrypted token to it.
    pub fn token_binding(&self) -> String {
        format!("{}|whatsapp|{}", self.workspace_id, self.phone_number_id)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum CrmKind {
    /// The default only for items stored before there was a second CRM.
    #[default]
    Zoho,
    Pipedrive,
}

impl CrmKind {
    /// Every CRM the product syncs to.
    pub const ALL: [CrmKind; 2] = [CrmKind::Zoho, CrmKind::Pipedrive];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zoho => "zoho",
            Self::Pipedrive => "pipedrive",
        }
    }

    /// The CRM's name as people know it.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Zoho => "Zoho CRM",
            Self::Pipedrive => "Pipedrive",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "zoho" => Some(Self::Zoho),
            "pipedrive" => Some(Self::Pipedrive),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// The workspace's connection; all data exchange uses it.
    Organization,
    /// One user's own connection (live chat, sending from the CRM).
    Personal,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Active,
    /// The grant was revoked or refused: a person must reconnect.
    Broken,
}

/// A CRM connection. Tokens are only ever held encrypted here.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Connection {
    pub workspace_id: String,
    pub crm: CrmKind,
    pub kind: ConnectionKind,
    /// The workspace user who made it.
    pub user_id: String,
    pub location: String,
    pub accounts_server: String,
    pub api_domain: String,
    pub crm_user_id: String,
    pub crm_user_email: String,
    pub crm_org_id: String,
    pub access_token_enc: String,
    pub refresh_token_enc: String,
    pub access_expires_at: i64,
    /// When the access token was issued (0: unknown), to tell its lifetime.
    #[serde(default)]
    pub access_issued_at: i64,
    pub status: ConnectionStatus,
    pub connected_at: i64,
    /// Optimistic-concurrency version, bumped by every token write.
    pub version: u64,
    /// A worker refreshing the token holds this lease until the given time.
    #[serde(default)]
    pub refresh_lease_until: i64,
    /// A personal connection made together with the organization's: it
    /// holds the same grant, which is revoked with the organization's.
    #[serde(default)]
    pub shares_organization_grant: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("workspace_id", &self.workspace_id)
            .field("crm", &self.crm)
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("location", &self.location)
            .field("api_domain", &self.api_domain)
            .field("crm_user_id", &self.crm_user_id)
            .field("status", &self.status)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The associated data that binds a connection's encrypted tokens to it.
pub fn token_binding(workspace_id: &str, crm: CrmKind, kind: ConnectionKind, user: &str) -> String {
    format!("{workspace_id}|{}|{kind:?}|{user}", crm.as_str())
}

impl Connection {
    pub fn token_binding(&self) -> String {
        token_binding(&self.workspace_id, self.crm, self.kind, &self.user_id)
    }
}

/// A record in a CRM. Items stored before Pipedrive existed name no CRM:
/// they are Zoho's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordRef {
    #[serde(default)]
    pub crm: CrmKind,
    pub module: String,
    pub id: String,
}

impl RecordRef {
    pub fn new(crm: CrmKind, module: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            crm,
            module: module.into(),
            id: id.into(),
        }
    }
}

/// A 1:1 chat between a business number and one contact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Chat {
    pub workspace_id: String,
    pub key: String,
    pub phone_number_id: String,
    pub contact: E164,
    pub contact_name: Option<String>,
    pub record: Option<RecordRef>,
    #[serde(default)]
    pub record_created_by_us: bool,
    /// The name this product gave the record (only for records it created).
    #[serde(default)]
    pub record_name: Option<String>,
    /// The workspace user responsible for the chat: first choice as owner
    /// of a record created for it.
    #[serde(default)]
    pub responsible_user_id: Option<String>,
    /// Every record that held the number when several did, until a person
    /// chooses one; the chat syncs to the most recently modified meanwhile.
    #[serde(default)]
    pub ambiguous_candidates: Vec<RecordRef>,
    /// The workspace user who chose the record (a remembered choice).
    #[serde(default)]
    pub record_chosen_by: Option<String>,
    /// When the record was last checked for conversion (unix seconds).
    #[serde(default)]
    pub record_checked_at: i64,
    /// Why sync stopped for this chat (its lead was converted and the
    /// settings say stop), if it did.
    #[serde(default)]
    pub sync_stopped: Option<String>,
    /// The message whose worker claimed the record's creation; still set
    /// while no record is linked means an attempt may have created it.
    #[serde(default)]
    pub creating_by: Option<String>,
    /// The lead or deal this product made for the chat's record (as the
    /// settings ask), followed to the deal a converted lead became.
    #[serde(default)]
    pub follow_up: Option<RecordRef>,
    /// Set before the follow-up is created: while no follow-up is linked it
    /// means an attempt may have made one.
    #[serde(default)]
    pub follow_up_started: bool,
    /// When the follow-up was last checked for conversion (unix seconds).
    #[serde(default)]
    pub follow_up_checked_at: i64,
}

/// A change to a chat's item: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatPatch {
    pub record: Option<RecordRef>,
    pub record_created_by_us: Option<bool>,
    pub record_name: Option<Option<String>>,
    pub responsible_user_id: Option<Option<String>>,
    pub ambiguous_candidates: Option<Vec<RecordRef>>,
    pub record_chosen_by: Option<Option<String>>,
    pub record_checked_at: Option<i64>,
    pub sync_stopped: Option<Option<String>>,
    pub follow_up: Option<Option<RecordRef>>,
    pub follow_up_started: Option<bool>,
    pub follow_up_checked_at: Option<i64>,
    /// Forgets this record (it was deleted in the CRM) and everything about
    /// how it was found or made, so the next message links afresh — only if
    /// it is still the chat's record (the patch answers false otherwise).
    pub forget_record: Option<RecordRef>,
}

impl Chat {
    /// The chat as logs may show it: the contact's number redacted.
    pub fn log_id(&self) -> String {
        chat_label(&self.phone_number_id, &self.contact)
    }
}

fn chat_label(phone_number_id: &str, contact: &E164) -> String {
    format!("{phone_number_id}#{}", contact.redacted())
}

/// A chat key, as given in a request, the way logs and error messages may
/// name it: `170000000000001#+44********23`. Of something that is not a
/// chat key, nothing after the number id is shown: it may be a number.
pub fn chat_key_for_logs(chat_key: &str) -> String {
    let Some((phone_number_id, contact)) = chat_key.split_once('#') else {
        return "***".to_owned();
    };
    match E164::from_wa_id(contact) {
        Ok(contact) => chat_label(phone_number_id, &contact),
        Err(_) => format!("{phone_number_id}#***"),
    }
}

/// `<phone_number_id>#<contact digits>`: one chat per contact and number.
pub fn chat_key(phone_number_id: &str, contact: &E164) -> String {
    format!("{phone_number_id}#{}", contact.digits())
}

/// Why a message of a WhatsApp username that shares no number waits.
pub const NO_NUMBER_YET: &str = "no phone number yet";

/// `<phone_number_id>#user:<business-scoped user id>`: where the messages of
/// a username that shares no number wait (no chat, no record) until a
/// delivery tells its number.
pub fn held_chat_key(phone_number_id: &str, user_id: &str) -> String {
    format!("{phone_number_id}#user:{user_id}")
}

/// Whether a chat key is one of [`held_chat_key`]'s.
pub fn is_held_chat_key(key: &str) -> bool {
    key.contains("#user:")
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum MessageState {
    /// Stored, not yet on the sync queue.
    Received,
    Queued,
    /// Kept until the cause goes away (no CRM connection yet, …).
    Waiting {
        reason: String,
    },
    Appended {
        note_id: String,
    },
    /// Deliberately not synced (sync stopped for the chat, …).
    Skipped {
        reason: String,
    },
    /// Failed; the queue delivers it again at `next_attempt_at`.
    Retrying {
        reason: String,
        attempt: u32,
        next_attempt_at: i64,
    },
    /// Failed on its last attempt: it sits in the dead-letter queue until a
    /// person replays it.
    DeadLettered {
        reason: String,
    },
}

impl MessageState {
    /// Whether nothing more will happen to the message: only then may it
    /// expire from the ledger.
    pub fn is_finished(&self) -> bool {
        matches!(self, Self::Appended { .. } | Self::Skipped { .. })
    }

    /// The state's tag as stored (`appended`, `waiting`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Queued => "queued",
            Self::Waiting { .. } => "waiting",
            Self::Appended { .. } => "appended",
            Self::Skipped { .. } => "skipped",
            Self::Retrying { .. } => "retrying",
            Self::DeadLettered { .. } => "dead_lettered",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredMessage {
    pub workspace_id: String,
    pub message_id: String,
    pub chat_key: String,
    pub direction: Direction,
    pub timestamp: i64,
    pub kind: String,
    pub text: String,
    pub media: Option<Media>,
    pub contact_name: Option<String>,
    #[serde(flatten)]
    pub state: MessageState,
    pub received_at: i64,
    /// What became of a media message's file, once decided.
    #[serde(default)]
    pub attachment: Option<AttachmentOutcome>,
    /// When an upload of its file was first begun (unix seconds): a retry
    /// looks for what that upload left before uploading again.
    #[serde(default)]
    pub attachment_started_at: Option<i64>,
    /// Who sent it from the CRM (a message sent through live chat).
    #[serde(default)]
    pub sent_by: Option<String>,
    /// How far WhatsApp got delivering a message we sent.
    #[serde(default)]
    pub delivery: Option<Delivery>,
    /// The message of the chat this one quotes (a reply).
    #[serde(default)]
    pub reply_to: Option<String>,
    /// The message of the chat a reaction is on.
    #[serde(default)]
    pub reaction_to: Option<String>,
}

/// A media message's file: attached to the record, or why not.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum AttachmentOutcome {
    Attached {
        file_name: String,
        attachment_id: String,
    },
    NotAttached {
        file_name: String,
        reason: String,
    },
}

impl AttachmentOutcome {
    /// What the message's note line says about the file.
    pub fn line_suffix(&self) -> String {
        match self {
            Self::Attached { file_name, .. } => format!(" (attached: {file_name})"),
            Self::NotAttached { file_name, reason } => {
                format!(" (not attached: {file_name}, {reason})")
            }
        }
    }
}

/// How far WhatsApp got delivering a message we sent; it only moves on
/// (status webhooks arrive out of order).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Delivery {
    /// The Cloud API took it (it answered a message id).
    Accepted,
    Sent,
    Delivered,
    Read,
    Failed {
        code: Option<i64>,
        reason: String,
    },
}

impl Delivery {
    /// Later states rank higher; a failure ends it.
    pub fn rank(&self) -> u8 {
        match self {
            Self::Accepted => 1,
            Self::Sent => 2,
            Self::Delivered => 3,
            Self::Read => 4,
            Self::Failed { .. } => 5,
        }
    }

    /// A status webhook's `status` (and its error) as a delivery state.
    pub fn from_status(status: &str, code: Option<i64>, reason: Option<&str>) -> Option<Self> {
        Some(match status {
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" | "played" => Self::Read,
            "failed" => Self::Failed {
                code,
                reason: reason.unwrap_or("WhatsApp could not deliver it").to_owned(),
            },
            _ => return None,
        })
    }
}

/// The note that holds one chat's messages of one day (one part of it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DayNote {
    pub workspace_id: String,
    pub chat_key: String,
    /// `YYYY-MM-DD` in the workspace time zone.
    pub day: String,
    pub part: u32,
    pub record: RecordRef,
    /// The record the note is on too (a person's note on their deal).
    #[serde(default)]
    pub also: Option<RecordRef>,
    pub title: String,
    pub note_id: Option<String>,
    /// Set before the CRM is asked to create the note: if the worker dies
    /// before it stores the id, the retry looks for the note instead of
    /// creating a second one.
    #[serde(default)]
    pub create_started: bool,
    /// No more lines fit: the day continues in the next part.
    #[serde(default)]
    pub full: bool,
    /// In message-time order.
    pub lines: Vec<NoteLine>,
    pub version: u64,
}

/// One message's line in a day note.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NoteLine {
    pub message_id: String,
    pub timestamp: i64,
    /// `HH:MM ← Sender: text`
    pub text: String,
}

impl DayNote {
    pub fn holds(&self, message_id: &str) -> bool {
        self.lines.iter().any(|l| l.message_id == message_id)
    }

    /// Inserts a line in time order (Meta does not guarantee delivery order);
    /// a message already held is not added again.
    pub fn insert_line(&mut self, line: NoteLine) -> bool {
        if self.holds(&line.message_id) {
            return false;
        }
        let at = self
            .lines
            .partition_point(|l| l.timestamp <= line.timestamp);
        self.lines.insert(at, line);
        true
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OAuthState {
    pub nonce: String,
    pub workspace_id: String,
    pub user_id: String,
    pub crm: CrmKind,
    pub kind: ConnectionKind,
    pub expires_at: i64,
    /// PKCE verifier: only its challenge ever leaves the server.
    pub code_verifier: String,
    /// SHA-256 of the secret in the cookie given to the browser that started
    /// the flow: only that browser can complete it.
    #[serde(default)]
    pub browser_binding: String,
}

/// Without the verifier, and without the nonce that finds the state.
impl std::fmt::Debug for OAuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthState")
            .field("workspace_id", &self.workspace_id)
            .field("user_id", &self.user_id)
            .field("crm", &self.crm)
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A CRM user, as cached for owner matching.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CrmUser {
    pub id: String,
    pub email: String,
}

/// What happens to a chat whose Lead was converted.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnConverted {
    /// Follow the Lead to the record it became and keep syncing there.
    #[default]
    Continue,
    /// Stop syncing the chat (logged).
    Stop,
}

/// What a new chat's record gets besides itself, where the CRM keeps
/// opportunities apart from people (Pipedrive).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FollowUpRule {
    /// The person only.
    #[default]
    None,
    /// A lead linked to the person.
    Lead {
        title_template: String,
        #[serde(default)]
        label_id: Option<String>,
    },
    /// A deal linked to the person, in a pipeline (and stage).
    Deal {
        title_template: String,
        pipeline_id: String,
        #[serde(default)]
        stage_id: Option<String>,
    },
}

/// The default title of a lead or deal: `{name}` is the contact's name,
/// `{number}` their number.
pub const DEFAULT_FOLLOW_UP_TITLE: &str = "WhatsApp: {name}";

/// Zoho's part of the sync settings: the lead source written on new
/// records, and what happens when a Lead is converted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ZohoSettings {
    pub lead_source_field: Option<String>,
    pub lead_source_value: String,
    pub on_converted: OnConverted,
    /// Whether records of the destination can be converted (Zoho: Leads),
    /// as the metadata said at activation.
    #[serde(default)]
    pub destination_convertable: bool,
    pub converted_module: Option<String>,
    pub converted_number_field: Option<String>,
}

/// Pipedrive's part of the sync settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct PipedriveSettings {
    /// What a new chat creates besides the person.
    #[serde(default)]
    pub follow_up: FollowUpRule,
    /// Without a lead or deal of ours, a day note also goes on the person's
    /// most recently updated open deal…
    #[serde(default = "yes")]
    pub note_on_open_deal: bool,
    /// …of this pipeline only, if set.
    #[serde(default)]
    pub open_deal_pipeline_id: Option<String>,
}

fn yes() -> bool {
    true
}

/// A workspace's sync settings for one CRM. Field names are the CRM's API
/// names; labels are never stored (they change). The destination and its
/// number, name and chat-link fields, with the workspace's time zone and
/// `active`, are common to every CRM; the lead-source and conversion
/// settings are Zoho's, `pipedrive` is Pipedrive's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncSettings {
    pub workspace_id: String,
    pub crm: CrmKind,
    pub destination_module: Option<String>,
    pub number_field: Option<String>,
    pub name_field: Option<String>,
    /// The name field's length in the CRM, to cut names that would not fit.
    #[serde(default)]
    pub name_max_length: Option<u32>,
    pub chat_link_field: Option<String>,
    /// Zoho's part (stored and shown flat beside the common settings).
    #[serde(flatten)]
    pub zoho: ZohoSettings,
    #[serde(default)]
    pub pipedrive: PipedriveSettings,
    pub active: bool,
    pub activated_at: Option<i64>,
    pub updated_at: i64,
    /// Optimistic-concurrency version, bumped by every write.
    pub version: u64,
}

impl SyncSettings {
    /// Settings nobody has edited yet. Pipedrive's people are always
    /// persons, with a standard phone and name field: those are chosen.
    pub fn new(workspace_id: &str, crm: CrmKind, now: i64) -> Self {
        let pipedrive = crm == CrmKind::Pipedrive;
        let standard = |field: &str| pipedrive.then(|| field.to_owned());
        Self {
            workspace_id: workspace_id.to_owned(),
            crm,
            destination_module: standard("persons"),
            number_field: standard("phone"),
            name_field: standard("name"),
            name_max_length: None,
            chat_link_field: None,
            zoho: ZohoSettings {
                lead_source_field: None,
                lead_source_value: "WhatsApp".to_owned(),
                on_converted: OnConverted::Continue,
                destination_convertable: false,
                converted_module: None,
                converted_number_field: None,
            },
            pipedrive: PipedriveSettings {
                note_on_open_deal: true,
                ..PipedriveSettings::default()
            },
            active: false,
            activated_at: None,
            updated_at: now,
            version: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_keys_are_named_with_the_contacts_number_redacted() {
        assert_eq!(
            chat_key_for_logs("170000000000001#447700900123"),
            "170000000000001#+44********23"
        );
        // Not a chat key: nothing that may be a number is shown.
        assert_eq!(chat_key_for_logs("447700900123"), "***");
        assert_eq!(
            chat_key_for_logs("170000000000001#4477 00900123"),
            "170000000000001#***"
        );
        let chat = crate::testing::new_chat(
            "ws",
            "170000000000001#447700900123",
            "170000000000001",
            E164::from_wa_id("447700900123").expect("valid"),
        );
        assert_eq!(chat.log_id(), chat_key_for_logs(&chat.key));
    }

    #[test]
    fn states_and_numbers_show_no_secret_when_debugged() {
        let state = OAuthState {
            nonce: "nonce-secret".into(),
            workspace_id: "ws".into(),
            user_id: "u1".into(),
            crm: CrmKind::Zoho,
            kind: ConnectionKind::Organization,
            expires_at: 600,
            code_verifier: "verifier-secret".into(),
            browser_binding: "binding-secret".into(),
        };
        let shown = format!("{state:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("u1"), "{shown}");
        let number = WhatsAppNumber {
            workspace_id: "ws".into(),
            phone_number_id: "170000000000001".into(),
            display_phone_number: "447700900100".into(),
            owner_user_id: "u1".into(),
            access_token_enc: Some("sealed-token-secret".into()),
            waba_id: None,
        };
        let shown = format!("{number:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("has_access_token: true"), "{shown}");
    }
}
