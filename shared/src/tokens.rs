//! Access tokens of a CRM connection: decrypted on use, refreshed before
//! expiry or after a rejection, with one refresh at a time per connection
//! across every worker (a lease taken by a conditional write in the store),
//! and the new token shared through the store.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::clock::Clock;
use crate::crm::{CrmError, CrmOAuth};
use crate::crypto::TokenCipher;
use crate::model::{Connection, ConnectionKind, ConnectionStatus, CrmKind};
use crate::store::Store;
use crate::synclog::{LogEntryDraft, SyncEvent};

/// Refresh this long before the token's stated expiry.
const REFRESH_MARGIN_SECS: i64 = 300;
/// How long a refresher may hold the lease before others may take over.
const LEASE_SECS: i64 = 30;
/// How long a worker waits for another worker's refresh before giving up.
const LEASE_WAIT: Duration = Duration::from_secs(15);

#[async_trait]
pub trait AccessTokens: Send + Sync {
    async fn current(&self) -> Result<String, CrmError>;
    /// Called after the CRM refused `rejected`: returns a token that is not it.
    async fn refresh_after_rejection(&self, rejected: &str) -> Result<String, CrmError>;
}

/// A token just obtained (e.g. by the code exchange), used as is.
pub struct FreshToken(pub String);

#[async_trait]
impl AccessTokens for FreshToken {
    async fn current(&self) -> Result<String, CrmError> {
        Ok(self.0.clone())
    }

    async fn refresh_after_rejection(&self, _rejected: &str) -> Result<String, CrmError> {
        Err(CrmError::Unauthorized)
    }
}

/// A connection's tokens, as kept in the store: the organization
/// connection's, or a personal connection's own. A personal connection made
/// on the organization's grant (its maker's) uses the organization's item:
/// it is the same grant, refreshed in one place (a CRM that rotates refresh
/// tokens would otherwise kill one copy by refreshing the other).
pub struct ConnectionTokens {
    store: Arc<dyn Store>,
    cipher: TokenCipher,
    oauth: Arc<dyn CrmOAuth>,
    clock: Arc<dyn Clock>,
    workspace_id: String,
    crm: CrmKind,
    /// Which item holds the grant: never another user's, so a personal
    /// token refused or expired is never replaced by the organization's
    /// (whose user may see more).
    kind: ConnectionKind,
    user_id: Option<String>,
    cached: Mutex<Option<Connection>>,
}

fn store_failure(e: crate::error::StoreError) -> CrmError {
    CrmError::Transport(format!("token store: {e}"))
}

impl ConnectionTokens {
    pub fn new(
        store: Arc<dyn Store>,
        cipher: TokenCipher,
        oauth: Arc<dyn CrmOAuth>,
        clock: Arc<dyn Clock>,
        connection: Connection,
    ) -> Self {
        let own_grant =
            connection.kind == ConnectionKind::Personal && !connection.shares_organization_grant;
        let (kind, user_id) = if own_grant {
            (ConnectionKind::Personal, Some(connection.user_id.clone()))
        } else {
            (ConnectionKind::Organization, None)
        };
        Self {
            store,
            cipher,
            oauth,
            clock,
            workspace_id: connection.workspace_id.clone(),
            crm: connection.crm,
            kind,
            user_id,
            // A shared grant's tokens are read from the organization's item.
            cached: Mutex::new(
                (own_grant || connection.kind == ConnectionKind::Organization)
                    .then_some(connection),
            ),
        }
    }

    async fn load(&self) -> Result<Connection, CrmError> {
        self.store
            .connection(
                &self.workspace_id,
                self.crm,
                self.kind,
                self.user_id.as_deref(),
            )
            .await
            .map_err(store_failure)?
            .ok_or_else(|| CrmError::ConnectionBroken("the connection was removed".into()))
    }

    /// The stored access token, if it is valid for `margin` seconds more.
    fn usable_token(
        &self,
        connection: &Connection,
        margin: i64,
    ) -> Result<Option<String>, CrmError> {
        if connection.status == ConnectionStatus::Broken {
            return Err(CrmError::ConnectionBroken(
                "the organization must reconnect".into(),
            ));
        }
        if connection.access_expires_at - margin <= self.clock.now() {
            return Ok(None);
        }
        self.cipher
            .decrypt(&connection.access_token_enc, &connection.token_binding())
            .map(Some)
            .map_err(|_| CrmError::ConnectionBroken("stored token does not decrypt".into()))
    }

    /// Refreshes under the lease, or waits for whoever holds it.
    async fn refresh(&self, mut connection: Connection) -> Result<Connection, CrmError> {
        let deadline = tokio::time::Instant::now() + LEASE_WAIT;
        loop {
            let now = self.clock.now();
            let leased = self
                .store
                .take_refresh_lease(&connection, now, now + LEASE_SECS)
                .await
                .map_err(store_failure)?;
            if leased {
                return self.refresh_holding_lease(connection).await;
            }
            // Someone else is refreshing (or just did): wait for their token.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let latest = self.load().await?;
            if latest.version != connection.version && self.usable_token(&latest, 0)?.is_some() {
                return Ok(latest);
            }
            connection = latest;
            if tokio::time::Instant::now() > deadline {
                return Err(CrmError::Transport(
                    "timed out waiting for another worker's token refresh".into(),
                ));
            }
        }
    }

    async fn refresh_holding_lease(&self, connection: Connection) -> Result<Connection, CrmError> {
        let binding = connection.token_binding();
        let refresh_token = self
            .cipher
            .decrypt(&connection.refresh_token_enc, &binding)
            .map_err(|_| CrmError::ConnectionBroken("stored token does not decrypt".into()))?;
        let mut next = connection.clone();
        next.version += 1;
        next.refresh_lease_until = 0;
        match self
            .oauth
            .refresh(&connection.accounts_server, &refresh_token)
            .await
        {
            Ok(grant) => {
                next.access_token_enc = self.cipher.encrypt(&grant.access_token, &binding);
                // A CRM that rotates refresh tokens (Pipedrive) invalidates
                // the old one now: the new one must be kept.
                if let Some(rotated) = &grant.refresh_token {
                    next.refresh_token_enc = self.cipher.encrypt(rotated, &binding);
                }
                // The company's API host may move; every grant names it.
                if !grant.api_domain.is_empty() {
                    next.api_domain = grant.api_domain.clone();
                }
                next.access_issued_at = self.clock.now();
                next.access_expires_at = next.access_issued_at + grant.expires_in_secs;
                tracing::info!(
                    workspace_id = %self.workspace_id,
                    crm = self.crm.as_str(),
                    "access token refreshed"
                );
            }
            Err(CrmError::ConnectionBroken(reason)) => {
                next.status = ConnectionStatus::Broken;
                tracing::warn!(
                    workspace_id = %self.workspace_id,
                    crm = self.crm.as_str(),
                    reason,
                    "refresh refused: connection marked broken"
                );
                if !self
                    .store
                    .replace_connection(&next, connection.version)
                    .await
                    .map_err(store_failure)?
                {
                    // Reconnected meanwhile: the refused token was the old one.
                    return self.load().await;
                }
                crate::synclog::write(
                    self.store.as_ref(),
                    self.clock.now(),
                    LogEntryDraft {
                        workspace_id: &self.workspace_id,
                        event: SyncEvent::ConnectionBroken,
                        chat_key: None,
                        message_id: None,
                        detail: serde_json::json!({ "crm": self.crm.as_str(), "error": reason }),
                    },
                )
                .await;
                return Err(CrmError::ConnectionBroken(reason));
            }
            Err(other) => return Err(other),
        }
        if !self
            .store
            .replace_connection(&next, connection.version)
            .await
            .map_err(store_failure)?
        {
            // Replaced meanwhile (a reconnect): use whatever is stored now.
            return self.load().await;
        }
        Ok(next)
    }
}

/// How long before expiry a token is refreshed.
fn refresh_margin(connection: &Connection) -> i64 {
    margin_for(connection.access_issued_at, connection.access_expires_at)
}

fn margin_for(issued_at: i64, expires_at: i64) -> i64 {
    if issued_at <= 0 {
        return REFRESH_MARGIN_SECS;
    }
    REFRESH_MARGIN_SECS.min((expires_at - issued_at) / 2)
}

#[async_trait]
impl AccessTokens for ConnectionTokens {
    async fn current(&self) -> Result<String, CrmError> {
        let mut cached = self.cached.lock().await;
        let connection = match cached.take() {
            Some(c) => c,
            None => self.load().await?,
        };
        // Refreshed a little before expiry: five minutes, or half the
        // token's lifetime for short-lived grants, so that those are not
        // refreshed on every call.
        let connection = match self.usable_token(&connection, refresh_margin(&connection))? {
            Some(_) => connection,
            None => self.refresh(connection).await?,
        };
        let token = self
            .usable_token(&connection, 0)?
            .ok_or_else(|| CrmError::Transport("the refreshed token has expired already".into()))?;
        *cached = Some(connection);
        Ok(token)
    }

    async fn refresh_after_rejection(&self, rejected: &str) -> Result<String, CrmError> {
        let mut cached = self.cached.lock().await;
        let stored = self.load().await?;
        let connection = match self.usable_token(&stored, 0)? {
            Some(token) if token != rejected => stored,
            _ => self.refresh(stored).await?,
        };
        let token = self
            .usable_token(&connection, 0)?
            .ok_or_else(|| CrmError::Transport("the refreshed token has expired already".into()))?;
        *cached = Some(connection);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::margin_for;

    #[test]
    fn tokens_are_refreshed_five_minutes_early_or_at_half_life_if_short_lived() {
        // Zoho's usual one-hour token: five minutes before expiry.
        assert_eq!(margin_for(1_000, 1_000 + 3600), 300);
        // A four-minute token would always be "about to expire": half-life.
        assert_eq!(margin_for(1_000, 1_000 + 240), 120);
        // Issue time unknown (stored before it was recorded).
        assert_eq!(margin_for(0, 5_000), 300);
    }
}
