//! The CRM port: what sync logic asks of a CRM, whichever CRM it is.

use async_trait::async_trait;

use crate::model::{CrmUser, RecordRef};
use crate::phone::E164;

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
}

impl CrmError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::Unavailable(_) | Self::Transport(_)
        )
    }
}

/// A record as found by a search, with what is needed to pick among several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRecord {
    pub record: RecordRef,
    /// Every phone value the record holds, as stored.
    pub phones: Vec<String>,
    pub modified_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub module: String,
    pub name: String,
    pub phone: E164,
    pub lead_source: String,
    pub chat_link: String,
    pub owner_id: Option<String>,
}

#[async_trait]
pub trait Crm: Send + Sync {
    /// Records of `module` with a phone field holding `phone` as written.
    async fn search_by_phone(
        &self,
        module: &str,
        phone: &str,
    ) -> Result<Vec<FoundRecord>, CrmError>;
    async fn create_record(&self, record: &NewRecord) -> Result<RecordRef, CrmError>;
    async fn rename_record(&self, record: &RecordRef, name: &str) -> Result<(), CrmError>;
    async fn create_note(
        &self,
        parent: &RecordRef,
        title: &str,
        content: &str,
    ) -> Result<String, CrmError>;
    async fn update_note(&self, note_id: &str, title: &str, content: &str) -> Result<(), CrmError>;
    /// The id of the parent's note with exactly this title whose content
    /// starts with `header`, if there is one.
    async fn find_note(
        &self,
        parent: &RecordRef,
        title: &str,
        header: &str,
    ) -> Result<Option<String>, CrmError>;
    async fn active_users(&self) -> Result<Vec<CrmUser>, CrmError>;
}
