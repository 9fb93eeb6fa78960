//! Sync settings, a CRM's spent API budget and its daily use
//! (`SETTINGS#<crm>`, `BUDGET#<crm>`, `USAGE#<crm>#<day>`; keys in the
//! module's table).

use async_trait::async_trait;

use crate::error::StoreError;
use crate::model::{CrmKind, SyncSettings};
use crate::store::{CrmUsage, SettingsStore};

use super::{DynamoStore, condition_outcome, n, request_error, s, to_item, ws_pk};

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
