//! Live-chat sign-ins (`crate::livechat::zoho_signin`) on the table:
//!
//! | item | pk | sk |
//! |---|---|---|
//! | sign-in state (taken by the callback) | `LIVESTATE#<state nonce>` | `STATE` |
//! | sign-in, by the widget's nonce (`status`: pending, ready, used; a ready one holds its code's SHA-256) | `LIVESIGNIN#<sha256 of the nonce>` | `SIGNIN` |
//!
//! Not under a workspace, unlike everything else: a sign-in begins before
//! anyone knows whose it is, and none of them holds content or a token.
//! All expire within minutes (`ttl`, checked on read too); a ready one
//! names a workspace and user, which are read again when it is redeemed,
//! so one left by a deleted workspace leads nowhere.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

use super::{DynamoStore, condition_outcome, expired, from_item, now, request_error, s, to_item};
use crate::error::StoreError;
use crate::livechat::zoho_signin::{SignIn, SignInState, SignInStatus, SignInStore};

fn state_pk(nonce: &str) -> String {
    format!("LIVESTATE#{nonce}")
}

fn sign_in_pk(nonce_hash: &str) -> String {
    format!("LIVESIGNIN#{nonce_hash}")
}

/// What a ready sign-in says about whom it is for (and its code): gone
/// once it is used.
const WHO: &[&str] = &[
    "code_hash",
    "workspace_id",
    "user_id",
    "crm",
    "crm_org_id",
    "crm_user_id",
    "crm_user_email",
    "crm_user_name",
];

#[async_trait]
impl SignInStore for DynamoStore {
    async fn begin_sign_in(&self, state: &SignInState, nonce_hash: &str) -> Result<(), StoreError> {
        // A widget that begins again with the same nonce starts afresh.
        self.put(to_item(
            sign_in_pk(nonce_hash),
            "SIGNIN".into(),
            &SignIn {
                status: SignInStatus::Pending,
                expires_at: state.expires_at,
            },
            Some(state.expires_at),
        )?)
        .await?;
        self.put(to_item(
            state_pk(&state.nonce),
            "STATE".into(),
            state,
            Some(state.expires_at),
        )?)
        .await
    }

    async fn take_sign_in_state(&self, nonce: &str) -> Result<Option<SignInState>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(state_pk(nonce)))
            .key("sk", s("STATE"))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(request_error)?;
        match out.attributes {
            Some(item) if !expired(&item, now()) => Ok(Some(from_item(item)?)),
            _ => Ok(None),
        }
    }

    async fn settle_sign_in(&self, nonce_hash: &str, sign_in: &SignIn) -> Result<(), StoreError> {
        self.put(to_item(
            sign_in_pk(nonce_hash),
            "SIGNIN".into(),
            sign_in,
            Some(sign_in.expires_at),
        )?)
        .await
    }

    async fn take_ready_sign_in(
        &self,
        nonce_hash: &str,
        code_hash: &str,
    ) -> Result<Option<SignIn>, StoreError> {
        // Used, not deleted, so that a second try finds it spent; who it
        // was for goes with the code.
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(sign_in_pk(nonce_hash)))
            .key("sk", s("SIGNIN"))
            .condition_expression("#status = :ready AND code_hash = :code")
            .expression_attribute_names("#status", "status");
        // Names through placeholders: some may be reserved words.
        let mut removed = Vec::new();
        for (i, name) in WHO.iter().enumerate() {
            update = update.expression_attribute_names(format!("#r{i}"), *name);
            removed.push(format!("#r{i}"));
        }
        let result = update
            .update_expression(format!("SET #status = :used REMOVE {}", removed.join(", ")))
            .expression_attribute_values(":ready", s("ready"))
            .expression_attribute_values(":used", s("used"))
            .expression_attribute_values(":code", s(code_hash))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let attributes = match result {
            Ok(out) => out.attributes,
            Err(e) => {
                // Someone else took it (or it never was ready with this code).
                condition_outcome::<(), _, _>(Err(e))?;
                return Ok(None);
            }
        };
        attributes.map(from_item).transpose()
    }
}
