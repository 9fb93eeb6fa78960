//! Test doubles shared by the CRM clients' tests.

use async_trait::async_trait;
use shared::crm::CrmError;
use shared::tokens::AccessTokens;

/// Hands out a token the CRM will refuse, then a good one on refresh.
pub struct StaleThenFresh {
    pub stale: String,
    pub fresh: String,
}

#[async_trait]
impl AccessTokens for StaleThenFresh {
    async fn current(&self) -> Result<String, CrmError> {
        Ok(self.stale.clone())
    }

    async fn refresh_after_rejection(&self, rejected: &str) -> Result<String, CrmError> {
        assert_eq!(rejected, self.stale);
        Ok(self.fresh.clone())
    }
}
