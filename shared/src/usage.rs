//! A workspace's use of its CRM's API, counted per day in DynamoDB as the
//! CRM clients report each call (Pipedrive prices each in tokens against
//! the company's daily budget).

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::crm::UsageMeter;
use crate::model::CrmKind;
use crate::store::Store;

/// Counts a workspace's calls to one CRM in the store.
pub struct StoredUsage {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    workspace_id: String,
    crm: CrmKind,
}

impl StoredUsage {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        workspace_id: &str,
        crm: CrmKind,
    ) -> Self {
        Self {
            store,
            clock,
            workspace_id: workspace_id.to_owned(),
            crm,
        }
    }
}

/// `YYYY-MM-DD` (UTC) of a unix time.
pub fn utc_day(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Unix seconds of a UTC day's (`YYYY-MM-DD`) midnight; 0 for no day.
pub fn day_start(day: &str) -> i64 {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
        .unwrap_or_default()
}

#[async_trait]
impl UsageMeter for StoredUsage {
    async fn spent(&self, tokens: u32) {
        let day = utc_day(self.clock.now());
        // Counting must never hold up a sync: a failed count is logged.
        if let Err(error) = self
            .store
            .add_crm_usage(&self.workspace_id, self.crm, &day, tokens)
            .await
        {
            tracing::warn!(workspace_id = %self.workspace_id, crm = self.crm.as_str(), %error, "could not count a CRM call");
        }
    }
}
