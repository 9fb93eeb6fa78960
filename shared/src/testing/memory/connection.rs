//! CRM connections and live-chat sign-ins.

use crate::error::StoreError;
use crate::livechat::zoho_signin::{SignIn, SignInState, SignInStore};
use crate::model::{Connection, ConnectionKind, CrmKind, CrmUser, OAuthState};
use crate::store::{ConnectionStore, Insert};
use async_trait::async_trait;

use super::{MemoryStore, connection_key};

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn insert_connection(
        &self,
        connection: &Connection,
    ) -> Result<Insert<Connection>, StoreError> {
        self.write("insert_connection");
        let mut state = self.state();
        let key = connection_key(connection);
        if let Some(existing) = state.connections.get(&key) {
            return Ok(Insert::Exists(existing.clone()));
        }
        state.connections.insert(key, connection.clone());
        Ok(Insert::Inserted)
    }

    async fn connection(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        kind: ConnectionKind,
        user_id: Option<&str>,
    ) -> Result<Option<Connection>, StoreError> {
        self.read();
        let user = match kind {
            ConnectionKind::Organization => String::new(),
            ConnectionKind::Personal => user_id.unwrap_or_default().to_owned(),
        };
        Ok(self
            .state()
            .connections
            .get(&(
                workspace_id.to_owned(),
                crm.as_str(),
                kind == ConnectionKind::Organization,
                user,
            ))
            .cloned())
    }

    async fn connections(
        &self,
        workspace_id: &str,
        crm: CrmKind,
    ) -> Result<Vec<Connection>, StoreError> {
        self.read();
        Ok(self
            .state()
            .connections
            .values()
            .filter(|c| c.workspace_id == workspace_id && c.crm == crm)
            .cloned()
            .collect())
    }

    async fn connections_of_crm_user(
        &self,
        crm: CrmKind,
        crm_org_id: &str,
        crm_user_id: &str,
    ) -> Result<Vec<Connection>, StoreError> {
        self.read();
        Ok(self
            .state()
            .connections
            .values()
            .filter(|c| c.crm == crm && c.crm_org_id == crm_org_id && c.crm_user_id == crm_user_id)
            .cloned()
            .collect())
    }

    async fn delete_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.write("delete_connection");
        self.state().connections.remove(&connection_key(connection));
        Ok(())
    }

    async fn replace_connection(
        &self,
        connection: &Connection,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        self.write("replace_connection");
        let mut state = self.state();
        let key = connection_key(connection);
        match state.connections.get(&key) {
            Some(c) if c.version == expected_version => {
                state.connections.insert(key, connection.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn take_refresh_lease(
        &self,
        _connection: &Connection,
        _now: i64,
        _until: i64,
    ) -> Result<bool, StoreError> {
        self.write("take_refresh_lease");
        Ok(false)
    }

    async fn put_oauth_state(&self, state: &OAuthState, _ttl: i64) -> Result<(), StoreError> {
        self.write("put_oauth_state");
        self.state()
            .oauth_states
            .insert(state.nonce.clone(), state.clone());
        Ok(())
    }

    async fn take_oauth_state(&self, nonce: &str) -> Result<Option<OAuthState>, StoreError> {
        // A delete: counted as a write, though it stores nothing.
        self.write("take_oauth_state");
        Ok(self.state().oauth_states.remove(nonce))
    }

    async fn cached_crm_users(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        now: i64,
    ) -> Result<Option<Vec<CrmUser>>, StoreError> {
        self.read();
        Ok(self
            .state()
            .crm_users
            .get(&(workspace_id.to_owned(), crm.as_str()))
            .filter(|(_, until)| *until > now)
            .map(|(users, _)| users.clone()))
    }

    async fn cache_crm_users(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        users: &[CrmUser],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.write("cache_crm_users");
        self.state().crm_users.insert(
            (workspace_id.to_owned(), crm.as_str()),
            (users.to_vec(), expires_at),
        );
        Ok(())
    }
}

/// No live-chat sign-in is ever begun here: every lookup finds nothing.
#[async_trait]
impl SignInStore for MemoryStore {
    async fn begin_sign_in(&self, _state: &SignInState, _nonce: &str) -> Result<(), StoreError> {
        self.write("begin_sign_in");
        Ok(())
    }
    async fn take_sign_in_state(&self, _nonce: &str) -> Result<Option<SignInState>, StoreError> {
        self.read();
        Ok(None)
    }
    async fn settle_sign_in(&self, _nonce: &str, _sign_in: &SignIn) -> Result<(), StoreError> {
        self.write("settle_sign_in");
        Ok(())
    }
    async fn take_ready_sign_in(
        &self,
        _nonce: &str,
        _code: &str,
    ) -> Result<Option<SignIn>, StoreError> {
        self.read();
        Ok(None)
    }
}
