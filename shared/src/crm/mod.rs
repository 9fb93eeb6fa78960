//! The CRM port: what sync logic asks of a CRM, whichever CRM it is.

use async_trait::async_trait;

use crate::model::{CrmUser, RecordRef};
use crate::phone::E164;

pub mod oauth;
pub mod provider;

pub use oauth::{CrmIdentity, CrmOAuth, NoticeError, TokenGrant, TokenServer, UninstallNotice};
pub use provider::CrmProvider;

#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// The access token was refused even after one refresh.
    #[error("the CRM refused the access token")]
    Unauthorized,
    /// The grant itself is gone (revoked, or the refresh token is invalid).
    #[error("the CRM connection is broken: {0}")]
    ConnectionBroken(String),
    #[error("the CRM is rate-limiting us")]
    RateLimited,
    /// The CRM's daily API budget is spent (Pipedrive: a 429 that outlasts
    /// its burst window): nothing goes through until `resets_at` (unix
    /// seconds).
    #[error("the CRM's daily API budget is spent until {resets_at}")]
    BudgetSpent { resets_at: i64 },
    #[error("the CRM is unavailable (HTTP {0})")]
    Unavailable(u16),
    #[error("could not reach the CRM: {0}")]
    Transport(String),
    /// The CRM understood and refused the request.
    #[error("the CRM refused the request: HTTP {status} {code}: {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
    },
    #[error("the CRM answered something we cannot read: {0}")]
    Decode(String),
    /// A create refused because a record with the same value in a unique
    /// field (`field`; an org may mark phone fields unique) exists: this one.
    #[error("the CRM already holds a record with this {}: {}/{}", field.as_deref().unwrap_or("value"), record.module, record.id)]
    Duplicate {
        record: RecordRef,
        field: Option<String>,
    },
}

impl CrmError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::Unavailable(_) | Self::Transport(_)
        )
    }
}

/// Where a CRM client reports what its calls cost, so that a workspace's
/// use of its CRM's daily budget is known (Pipedrive: tokens per company per
/// day, each operation priced by its `x-token-cost`).
#[async_trait]
pub trait UsageMeter: Send + Sync {
    /// One call made, costing `tokens` (0 where the CRM prices nothing).
    async fn spent(&self, tokens: u32);
}

/// A meter that keeps nothing (metadata reads for settings, tests).
pub struct NoMeter;

#[async_trait]
impl UsageMeter for NoMeter {
    async fn spent(&self, _tokens: u32) {}
}

/// A record as found by a search, with what is needed to pick among several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRecord {
    pub record: RecordRef,
    /// Every phone value the record holds, as stored.
    pub phones: Vec<String>,
    pub modified_time: Option<String>,
}

/// A record to create: its module, field values by API name, and owner.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    pub module: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub owner_id: Option<String>,
}

/// What became of a record that may have been converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversion {
    NotConverted,
    /// Converted; `into` is the record of the asked module it became, if the
    /// conversion made one.
    Converted {
        into: Option<RecordRef>,
    },
}

/// What a new chat's record gets besides itself, in CRMs that track
/// opportunities apart from people (Pipedrive: a lead or a deal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFollowUp {
    pub kind: FollowUpKind,
    pub title: String,
    /// The record (person) it belongs to.
    pub person: RecordRef,
    pub owner_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUpKind {
    Lead {
        label_id: Option<String>,
    },
    Deal {
        pipeline_id: String,
        stage_id: Option<String>,
    },
}

/// One day note as the CRM is to show it. The CRM renders it in its own
/// format (Zoho: plain text with a separate title; Pipedrive: HTML with the
/// title in bold inside).
#[derive(Debug, Clone, Copy)]
pub struct NoteDraft<'a> {
    pub title: &'a str,
    /// The chat's link and the business number (first line).
    pub header: &'a str,
    /// The message lines, in order.
    pub lines: &'a [&'a str],
}

/// A named choice the CRM offers (a stage, a lead label).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Choice {
    pub id: String,
    pub name: String,
}

/// A sales pipeline and its stages, in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pipeline {
    pub id: String,
    pub name: String,
    pub stages: Vec<Choice>,
}

/// A module as the CRM's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModuleMeta {
    pub api_name: String,
    pub label: String,
    pub api_supported: bool,
    pub creatable: bool,
    /// `default`, `custom`, `linking`, `subform`, `web`.
    pub generated_type: String,
    /// Whether records of the module can be converted (Zoho: Leads).
    pub convertable: bool,
    /// The modules a converted record of this one may become.
    pub converts_into: Vec<String>,
}

/// A field as the CRM's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldMeta {
    pub api_name: String,
    pub label: String,
    pub data_type: String,
    /// `string`, `integer`, …, `jsonarray` (multi-value).
    pub json_type: String,
    pub length: Option<u32>,
    /// Read-only for everyone, or for the connected user.
    pub read_only: bool,
    pub virtual_field: bool,
    /// Whether the field can be set when a record is created through the API.
    pub api_create: bool,
    pub picklist_values: Vec<String>,
}

#[async_trait]
pub trait Crm: Send + Sync {
    /// Records of `module` whose `field` may hold `number`: the adapter
    /// searches the forms its CRM needs (the number's national equivalents
    /// included); the caller confirms each by normalising what came back.
    async fn find_by_phone(
        &self,
        module: &str,
        field: &str,
        number: &E164,
    ) -> Result<Vec<FoundRecord>, CrmError>;
    async fn create_record(&self, record: &NewRecord) -> Result<RecordRef, CrmError>;
    /// Whether the record still exists (a person may have deleted it).
    async fn record_exists(&self, record: &RecordRef) -> Result<bool, CrmError>;
    /// The most recently created records of `module` with `field`, read
    /// without the search index's delay: what an interrupted create may
    /// have made.
    async fn recently_created(
        &self,
        module: &str,
        field: &str,
    ) -> Result<Vec<FoundRecord>, CrmError>;
    /// Sets one field of a record (a rename).
    async fn update_field(
        &self,
        record: &RecordRef,
        field: &str,
        value: &str,
    ) -> Result<(), CrmError>;
    /// Whether the record was converted and, if so, into which record of
    /// `into_module`. `person`: the record it belongs to, where the CRM
    /// finds what a converted one became through it (Pipedrive's leads).
    async fn conversion(
        &self,
        record: &RecordRef,
        into_module: &str,
        person: Option<&RecordRef>,
    ) -> Result<Conversion, CrmError>;
    /// Creates a lead or deal for a person.
    async fn create_follow_up(&self, follow_up: &NewFollowUp) -> Result<RecordRef, CrmError>;
    /// The person's lead or deal titled `title`, if there is one: what a
    /// create whose answer was lost left behind.
    async fn find_follow_up(
        &self,
        person: &RecordRef,
        title: &str,
    ) -> Result<Option<RecordRef>, CrmError>;
    /// The person's most recently updated open deal (in `pipeline_id` if
    /// given), for CRMs whose notes may sit on a deal too; `None` elsewhere.
    async fn latest_open_deal(
        &self,
        person: &RecordRef,
        pipeline_id: Option<&str>,
    ) -> Result<Option<RecordRef>, CrmError>;
    /// Attaches a file to a record; the attachment's id.
    async fn attach_file(
        &self,
        parent: &RecordRef,
        file_name: &str,
        mime_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, CrmError>;
    /// The id of an attachment of `parent` named `file_name`, of `size`
    /// bytes, made at `since` (unix seconds) or later: what an upload whose
    /// answer was lost left behind.
    async fn find_attachment(
        &self,
        parent: &RecordRef,
        file_name: &str,
        size: u64,
        since: i64,
    ) -> Result<Option<String>, CrmError>;
    async fn modules(&self) -> Result<Vec<ModuleMeta>, CrmError>;
    async fn fields(&self, module: &str) -> Result<Vec<FieldMeta>, CrmError>;
    /// The note's content as this CRM stores it.
    fn render_note(&self, note: &NoteDraft<'_>) -> String;
    /// The size of rendered content as the CRM's note limit counts it, and
    /// that limit (the configured one may be lower).
    fn note_size(&self, content: &str) -> usize;
    fn note_limit(&self) -> usize;
    /// Creates a note on `parent`, and on `also` in the same call (a
    /// person's note shown on their deal too), where the CRM can.
    async fn create_note(
        &self,
        parent: &RecordRef,
        also: Option<&RecordRef>,
        title: &str,
        content: &str,
    ) -> Result<String, CrmError>;
    async fn update_note(&self, note_id: &str, title: &str, content: &str) -> Result<(), CrmError>;
    /// The id of the parent's note rendered from `note`'s title and header
    /// (whatever its lines), if there is one.
    async fn find_note(
        &self,
        parent: &RecordRef,
        note: &NoteDraft<'_>,
    ) -> Result<Option<String>, CrmError>;
    async fn active_users(&self) -> Result<Vec<CrmUser>, CrmError>;
    /// The phone numbers a record holds, as stored (a deal's or lead's: its
    /// person's), read with this client's token; `None` when the record does
    /// not exist or its user may not see it.
    async fn record_phones(&self, record: &RecordRef) -> Result<Option<Vec<String>>, CrmError>;
    /// The record's field values as text, by the CRM's own field names
    /// (Zoho: `First_Name`, `Full_Name`, `Company`, `Email`, lookups by
    /// their name; Pipedrive: the person's `first_name`, `name`, `email`,
    /// `phone` and `org_name`, a deal's or lead's `title` beside its
    /// person's), read with this client's token; `None` as for
    /// [`Self::record_phones`]. Empty values are left out.
    async fn record_fields(
        &self,
        record: &RecordRef,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, CrmError>;
    /// The CRM's sales pipelines with their stages, for settings that make
    /// deals (Pipedrive); none where the sync makes no deals.
    async fn pipelines(&self) -> Result<Vec<Pipeline>, CrmError>;
    /// The labels a new lead may carry (Pipedrive); none elsewhere.
    async fn lead_labels(&self) -> Result<Vec<Choice>, CrmError>;
}
