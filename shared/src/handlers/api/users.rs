//! The workspace's users and their API tokens.

use lambda_http::Request;
use serde::Deserialize;
use serde_json::json;

use crate::crypto::{hash_token, random_token};
use crate::deps::Deps;
use crate::handlers::http::{ApiError, HttpResponse, caller, json_body, json_response};
use crate::model::{ConnectionKind, CrmKind, Role, User};

#[derive(Deserialize)]
struct NewUser {
    email: String,
    role: Role,
}

pub(super) async fn add_user(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let input: NewUser = json_body(req)?;
    let allowed = match input.role {
        Role::Owner => false,
        Role::Admin => me.role == Role::Owner,
        Role::Member => me.role.manages_workspace(),
    };
    if !allowed {
        return Err(ApiError::Forbidden(format!(
            "a {:?} cannot add a user with role {:?}",
            me.role, input.role
        )));
    }
    let user = User {
        workspace_id: me.workspace_id.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        email: valid_email(&input.email)?,
        role: input.role,
        created_at: deps.clock.now(),
    };
    let token = random_token();
    deps.store.add_user(&user, &hash_token(&token)).await?;
    tracing::info!(workspace_id = %user.workspace_id, user_id = %user.id, "user added");
    Ok(json_response(
        201,
        &json!({ "user": user, "api_token": token }),
    ))
}

/// The owner removes anyone but themselves; an admin removes members. A user
/// of another workspace is simply not found.
pub(super) async fn remove_user(
    deps: &Deps,
    req: &Request,
    user_id: &str,
) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let target = deps
        .store
        .user(&me.workspace_id, user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {user_id} in this workspace")))?;
    let allowed = match (me.role, target.role) {
        (_, Role::Owner) => false,
        (Role::Owner, _) => true,
        (Role::Admin, Role::Member) => true,
        _ => false,
    };
    if !allowed || target.id == me.id {
        return Err(ApiError::Forbidden(format!(
            "a {:?} cannot remove a {:?}",
            me.role, target.role
        )));
    }
    // Their personal CRM connections go with them, and so do their grants
    // at the CRM (unless shared with the organization's, which stays). A
    // grant the CRM would not revoke is logged; the user goes all the same.
    for crm in CrmKind::ALL {
        if let Some(own) = deps
            .store
            .connection(
                &me.workspace_id,
                crm,
                ConnectionKind::Personal,
                Some(&target.id),
            )
            .await?
        {
            crate::handlers::oauth::remove_personal(deps, &own, None).await?;
        }
    }
    deps.store.remove_user(&me.workspace_id, &target.id).await?;
    tracing::info!(workspace_id = %me.workspace_id, user_id = %target.id, "user removed");
    Ok(json_response(200, &json!({ "removed": target.id })))
}

/// A new token for the caller; the old one stops working at once.
pub(super) async fn rotate_token(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let token = random_token();
    deps.store.replace_token(&me, &hash_token(&token)).await?;
    Ok(json_response(200, &json!({ "api_token": token })))
}

pub(super) fn valid_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => Ok(email),
        _ => Err(ApiError::BadRequest(format!(
            "`{raw}` is not an e-mail address"
        ))),
    }
}
