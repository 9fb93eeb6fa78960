//! The production [`CrmProvider`]: each CRM's adapters on the shared HTTP
//! client, with this deployment's OAuth client credentials.

use std::sync::Arc;

use async_trait::async_trait;

use super::pipedrive::{PipedriveApi, PipedriveOAuth};
use super::zoho::{ZohoApi, ZohoOAuth};
use crate::config::Config;
use crate::crm::{Crm, CrmOAuth, CrmProvider, UsageMeter};
use crate::error::SecretsError;
use crate::model::CrmKind;
use crate::secrets::Secrets;
use crate::tokens::AccessTokens;

pub struct CrmClients {
    http: reqwest::Client,
    secrets: Arc<Secrets>,
    config: Config,
}

impl CrmClients {
    pub fn new(http: reqwest::Client, secrets: Arc<Secrets>, config: Config) -> Self {
        Self {
            http,
            secrets,
            config,
        }
    }
}

#[async_trait]
impl CrmProvider for CrmClients {
    async fn oauth(&self, crm: CrmKind) -> Result<Arc<dyn CrmOAuth>, SecretsError> {
        match crm {
            CrmKind::Zoho => {
                let client = self.secrets.zoho_client().await?;
                Ok(Arc::new(ZohoOAuth::new(
                    self.http.clone(),
                    client.client_id.clone(),
                    client.client_secret.clone(),
                    self.config.zoho.clone(),
                )))
            }
            CrmKind::Pipedrive => {
                let client = self.secrets.pipedrive_client().await?;
                Ok(Arc::new(PipedriveOAuth::new(
                    self.http.clone(),
                    client.client_id.clone(),
                    client.client_secret.clone(),
                    self.config.pipedrive.clone(),
                )))
            }
        }
    }

    fn api(
        &self,
        crm: CrmKind,
        api_domain: &str,
        tokens: Arc<dyn AccessTokens>,
        meter: Arc<dyn UsageMeter>,
    ) -> Option<Arc<dyn Crm>> {
        match crm {
            CrmKind::Zoho => Some(Arc::new(
                ZohoApi::new(self.http.clone(), api_domain, tokens).with_meter(meter),
            )),
            CrmKind::Pipedrive => Some(Arc::new(
                PipedriveApi::new(self.http.clone(), api_domain, tokens).with_meter(meter),
            )),
        }
    }
}
