//! CRM connections (and the `ByCrmUser` index), the CRM users cache and OAuth
//! states (`CONN#…`, `CRMUSERS#<crm>`, `OAUTHSTATE#<nonce>`; keys in the
//! module's table).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use serde::Serialize;

use crate::error::StoreError;
use crate::model::{Connection, ConnectionKind, CrmKind, CrmUser, OAuthState};
use crate::store::{ConnectionStore, Insert};

use super::{
    BY_CRM_USER, DynamoStore, condition_outcome, connection_item, connection_sk, crm_user_index_pk,
    expired, from_item, n, now, request_error, s, to_item, ws_pk,
};

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn insert_connection(
        &self,
        connection: &Connection,
    ) -> Result<Insert<Connection>, StoreError> {
        let sk = connection_sk(connection.crm, connection.kind, Some(&connection.user_id));
        self.insert_once(
            connection_item(connection)?,
            ws_pk(&connection.workspace_id),
            sk,
        )
        .await
    }

    async fn connection(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        kind: ConnectionKind,
        user_id: Option<&str>,
    ) -> Result<Option<Connection>, StoreError> {
        self.get(ws_pk(workspace_id), connection_sk(crm, kind, user_id))
            .await
    }

    async fn connections(
        &self,
        workspace_id: &str,
        crm: CrmKind,
    ) -> Result<Vec<Connection>, StoreError> {
        self.items_with_prefix(workspace_id, &format!("CONN#{}#", crm.as_str()), None)
            .await
    }

    async fn connections_of_crm_user(
        &self,
        crm: CrmKind,
        crm_org_id: &str,
        crm_user_id: &str,
    ) -> Result<Vec<Connection>, StoreError> {
        self.index_items(
            BY_CRM_USER,
            "crm_user_pk = :k",
            &[(":k", crm_user_index_pk(crm, crm_org_id, crm_user_id))],
        )
        .await?
        .into_iter()
        .map(from_item)
        .collect()
    }

    async fn delete_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.delete(
            ws_pk(&connection.workspace_id),
            connection_sk(connection.crm, connection.kind, Some(&connection.user_id)),
        )
        .await
    }

    async fn replace_connection(
        &self,
        connection: &Connection,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let item = connection_item(connection)?;
        // The connection time too: a reconnect starts again at version 1, and
        // a refresh begun before it must not overwrite the new tokens.
        self.put_if(
            item,
            "version = :v AND connected_at = :connected",
            Some(HashMap::from([
                (":v".to_owned(), n(expected_version)),
                (":connected".to_owned(), n(connection.connected_at)),
            ])),
        )
        .await
    }

    async fn take_refresh_lease(
        &self,
        connection: &Connection,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .update_in(
                &connection.workspace_id,
                connection_sk(connection.crm, connection.kind, Some(&connection.user_id)),
            )
            .update_expression("SET refresh_lease_until = :until")
            .condition_expression(
                "version = :v AND connected_at = :connected AND (attribute_not_exists(refresh_lease_until) OR refresh_lease_until < :now)",
            )
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":v", n(connection.version))
            .expression_attribute_values(":connected", n(connection.connected_at))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        condition_outcome(result)
    }

    async fn put_oauth_state(&self, state: &OAuthState, ttl: i64) -> Result<(), StoreError> {
        // The workspace's pointer first: a state is never there without the
        // item its workspace's deletion finds it by.
        let pointer = HashMap::from([("workspace_id", state.workspace_id.as_str())]);
        self.put(to_item(
            ws_pk(&state.workspace_id),
            format!("OAUTHSTATE#{}", state.nonce),
            &pointer,
            Some(ttl),
        )?)
        .await?;
        self.put(to_item(
            format!("OAUTHSTATE#{}", state.nonce),
            "STATE".into(),
            state,
            Some(ttl),
        )?)
        .await
    }

    async fn take_oauth_state(&self, nonce: &str) -> Result<Option<OAuthState>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("OAUTHSTATE#{nonce}")))
            .key("sk", s("STATE"))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(request_error)?;
        let Some(item) = out.attributes else {
            return Ok(None);
        };
        let state: OAuthState = from_item(item.clone())?;
        self.delete(ws_pk(&state.workspace_id), format!("OAUTHSTATE#{nonce}"))
            .await?;
        Ok((!expired(&item, now())).then_some(state))
    }

    async fn cached_crm_users(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        now: i64,
    ) -> Result<Option<Vec<CrmUser>>, StoreError> {
        let Some(mut item) = self
            .get_raw(ws_pk(workspace_id), format!("CRMUSERS#{}", crm.as_str()))
            .await?
        else {
            return Ok(None);
        };
        if expired(&item, now) {
            return Ok(None);
        }
        let users = item
            .remove("users")
            .ok_or_else(|| StoreError::Corrupt("user cache without users".into()))?;
        serde_dynamo::from_attribute_value(users)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn cache_crm_users(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        users: &[CrmUser],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        #[derive(Serialize)]
        struct Cache<'a> {
            users: &'a [CrmUser],
        }
        self.put(to_item(
            ws_pk(workspace_id),
            format!("CRMUSERS#{}", crm.as_str()),
            &Cache { users },
            Some(expires_at),
        )?)
        .await
    }
}
