//! Builds each CRM's clients, so that domain code never names a CRM.

use std::sync::Arc;

use async_trait::async_trait;

use super::Crm;
use super::oauth::CrmOAuth;
use crate::error::SecretsError;
use crate::model::CrmKind;
use crate::tokens::AccessTokens;

#[async_trait]
pub trait CrmProvider: Send + Sync {
    /// The CRM's OAuth with this deployment's client credentials (read from
    /// Secrets Manager on first use).
    async fn oauth(&self, crm: CrmKind) -> Result<Arc<dyn CrmOAuth>, SecretsError>;
    /// The CRM's API on `api_domain`, calling with `tokens`; `None` for a
    /// CRM this deployment connects to but cannot sync to yet (none today:
    /// Zoho and Pipedrive both have one).
    fn api(
        &self,
        crm: CrmKind,
        api_domain: &str,
        tokens: Arc<dyn AccessTokens>,
        meter: Arc<dyn super::UsageMeter>,
    ) -> Option<Arc<dyn Crm>>;
}
