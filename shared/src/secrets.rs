//! App secrets from Secrets Manager, read on first use and kept for the life
//! of the container. Each function reads only the secrets it uses (and its
//! IAM policy allows only those).

use async_trait::async_trait;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::config::{Config, MissingVar};
use crate::crypto::KeyRing;
use crate::error::SecretsError;

#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn secret_string(&self, id: &str) -> Result<String, SecretsError>;
}

#[derive(Clone, Deserialize)]
pub struct MetaAppCredentials {
    pub app_secret: String,
    pub verify_token: String,
}

#[derive(Clone, Deserialize)]
pub struct OAuthClientCredentials {
    pub client_id: String,
    pub client_secret: String,
    /// Pipedrive: the JWT secret given to the app's extensions in Developer
    /// Hub, if one was (empty counts as none).
    #[serde(default)]
    pub extension_jwt_secret: Option<String>,
}

impl OAuthClientCredentials {
    /// What signs the app's extension tokens: Pipedrive uses the
    /// extension's own JWT secret when one is set, else the client secret.
    pub fn extension_token_secret(&self) -> &str {
        self.extension_jwt_secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.client_secret)
    }
}

/// The variable that names a secret, and its value if the function has it.
type SecretId = (&'static str, Option<String>);

pub struct Secrets {
    source: Box<dyn SecretSource>,
    // (variable, secret id if the function was given one)
    app_key_id: SecretId,
    operator_key_id: SecretId,
    meta_id: SecretId,
    zoho_id: SecretId,
    pipedrive_id: SecretId,
    keys: OnceCell<KeyRing>,
    operator_key: OnceCell<String>,
    meta: OnceCell<MetaAppCredentials>,
    zoho: OnceCell<OAuthClientCredentials>,
    pipedrive: OnceCell<OAuthClientCredentials>,
}

impl Secrets {
    pub fn new(source: Box<dyn SecretSource>, config: &Config) -> Self {
        Self {
            source,
            app_key_id: ("APP_KEY_SECRET_ID", config.app_key_secret_id.clone()),
            operator_key_id: (
                "OPERATOR_KEY_SECRET_ID",
                config.operator_key_secret_id.clone(),
            ),
            meta_id: ("META_APP_SECRET_ID", config.meta_app_secret_id.clone()),
            zoho_id: (
                "ZOHO_CLIENT_SECRET_ID",
                config.zoho_client_secret_id.clone(),
            ),
            pipedrive_id: (
                "PIPEDRIVE_CLIENT_SECRET_ID",
                config.pipedrive_client_secret_id.clone(),
            ),
            keys: OnceCell::new(),
            operator_key: OnceCell::new(),
            meta: OnceCell::new(),
            zoho: OnceCell::new(),
            pipedrive: OnceCell::new(),
        }
    }

    pub async fn keys(&self) -> Result<&KeyRing, SecretsError> {
        self.keys
            .get_or_try_init(|| async {
                let master = self.read(&self.app_key_id).await?;
                Ok(KeyRing::from_master(master.as_bytes()))
            })
            .await
    }

    pub async fn operator_key(&self) -> Result<&str, SecretsError> {
        self.operator_key
            .get_or_try_init(|| self.read(&self.operator_key_id))
            .await
            .map(String::as_str)
    }

    pub async fn meta(&self) -> Result<&MetaAppCredentials, SecretsError> {
        self.meta.get_or_try_init(|| self.json(&self.meta_id)).await
    }

    pub async fn zoho_client(&self) -> Result<&OAuthClientCredentials, SecretsError> {
        self.zoho.get_or_try_init(|| self.json(&self.zoho_id)).await
    }

    pub async fn pipedrive_client(&self) -> Result<&OAuthClientCredentials, SecretsError> {
        self.pipedrive
            .get_or_try_init(|| self.json(&self.pipedrive_id))
            .await
    }

    async fn read(&self, (variable, id): &SecretId) -> Result<String, SecretsError> {
        let id = id
            .as_deref()
            .ok_or(SecretsError::NotConfigured(MissingVar(variable)))?;
        self.source.secret_string(id).await
    }

    async fn json<T: DeserializeOwned>(&self, secret: &SecretId) -> Result<T, SecretsError> {
        let raw = self.read(secret).await?;
        serde_json::from_str(&raw).map_err(|e| SecretsError::Malformed {
            id: secret.1.clone().unwrap_or_default(),
            reason: e.to_string(),
        })
    }
}

/// Message content is sealed under a key derived from the app master key,
/// read on first use like the token key: a function that stores or reads
/// messages needs the app key secret (`APP_KEY_SECRET_ID` and its grant).
#[async_trait]
impl crate::crypto::ContentKeys for Secrets {
    async fn content_cipher(&self) -> Result<crate::crypto::TokenCipher, SecretsError> {
        Ok(self.keys().await?.content_cipher())
    }
}

/// Secrets Manager as the source.
pub struct SecretsManagerSource(pub aws_sdk_secretsmanager::Client);

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn secret_string(&self, id: &str) -> Result<String, SecretsError> {
        let out = self
            .0
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| SecretsError::Unavailable {
                id: id.to_owned(),
                reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
            })?;
        out.secret_string.ok_or_else(|| SecretsError::Malformed {
            id: id.to_owned(),
            reason: "no SecretString".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::OAuthClientCredentials;

    #[test]
    fn extension_tokens_are_checked_with_the_jwt_secret_when_one_is_set() {
        let stored = |json: &str| -> OAuthClientCredentials {
            serde_json::from_str(json).expect("credentials parse")
        };
        let plain = stored(r#"{"client_id":"a","client_secret":"cs"}"#);
        assert_eq!(plain.extension_token_secret(), "cs");
        let empty = stored(r#"{"client_id":"a","client_secret":"cs","extension_jwt_secret":""}"#);
        assert_eq!(empty.extension_token_secret(), "cs");
        let own = stored(r#"{"client_id":"a","client_secret":"cs","extension_jwt_secret":"jwt"}"#);
        assert_eq!(own.extension_token_secret(), "jwt");
    }
}
