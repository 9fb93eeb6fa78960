//! Sync settings, CRM usage and pacing.

use crate::error::StoreError;
use crate::model::{CrmKind, SyncSettings};
use crate::pacing::{ApiPlan, PacingStore};
use crate::store::{CrmUsage, SettingsStore};
use async_trait::async_trait;

use super::MemoryStore;

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
