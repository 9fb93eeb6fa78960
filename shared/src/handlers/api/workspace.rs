//! A workspace: creating it, who am I, its retention, its deletion and its
//! sync log.

use lambda_http::Request;
use serde::Deserialize;
use serde_json::json;

use crate::crypto::{hash_token, random_token, secrets_equal};
use crate::deps::Deps;
use crate::handlers::http::{
    ApiError, HttpResponse, bearer, caller, json_body, json_response, query_params,
};
use crate::model::{Role, User, Workspace};
use crate::retention::{self, Retention};
use crate::synclog::{self, SyncEvent};

use super::users::valid_email;

#[derive(Deserialize)]
struct NewWorkspace {
    name: String,
    owner_email: String,
    time_zone: Option<String>,
}

/// Operator only: a new business and its owner. The owner's API token is in
/// the answer and nowhere else: only its hash is stored.
pub(super) async fn create_workspace(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let operator_key = deps.secrets.operator_key().await?;
    let presented = bearer(req).unwrap_or_default();
    if presented.is_empty() || !secrets_equal(presented, operator_key) {
        return Err(ApiError::Unauthorized(
            "creating a workspace needs the operator key".into(),
        ));
    }
    let input: NewWorkspace = json_body(req)?;
    let time_zone = input.time_zone.unwrap_or_else(|| "UTC".to_owned());
    if !crate::time_zone::is_known(&time_zone) {
        return Err(ApiError::BadRequest(format!(
            "time_zone `{time_zone}` is not an IANA time zone"
        )));
    }
    let email = valid_email(&input.owner_email)?;
    let now = deps.clock.now();
    let workspace = Workspace {
        id: uuid::Uuid::new_v4().to_string(),
        name: input.name,
        time_zone,
        created_at: now,
        retention: Retention::default(),
        deleting_since: None,
    };
    let owner = User {
        workspace_id: workspace.id.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        email,
        role: Role::Owner,
        created_at: now,
    };
    let token = random_token();
    deps.store
        .create_workspace(&workspace, &owner, &hash_token(&token))
        .await?;
    tracing::info!(workspace_id = %workspace.id, "workspace created");
    Ok(json_response(
        201,
        &json!({ "workspace": workspace, "owner": owner, "api_token": token }),
    ))
}

pub(super) async fn me(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let user = caller(deps, req).await?;
    let workspace = deps.store.workspace(&user.workspace_id).await?;
    Ok(json_response(
        200,
        &json!({ "user": user, "workspace": workspace }),
    ))
}

/// How long the workspace keeps message content, and the bounds a change
/// must keep to.
fn retention_answer(retention: Retention) -> serde_json::Value {
    json!({
        "days": retention.days(),
        "default_days": retention::DEFAULT_DAYS,
        "min_days": retention::MIN_DAYS,
        "max_days": retention::MAX_DAYS,
    })
}

pub(super) async fn retention(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let workspace = deps
        .store
        .workspace(&me.workspace_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("the workspace is gone".into()))?;
    Ok(json_response(200, &retention_answer(workspace.retention)))
}

#[derive(Deserialize)]
struct RetentionChange {
    /// Read as any JSON value, so that every wrong one gets the same clear
    /// refusal.
    #[serde(default)]
    days: serde_json::Value,
}

/// The owner or an admin sets how long message content is kept. Items
/// written from now on get it, and a job gives it to those stored.
pub(super) async fn set_retention(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    if !me.role.manages_workspace() {
        return Err(ApiError::Forbidden(
            "only the workspace owner or an admin can change how long message content is kept"
                .into(),
        ));
    }
    let change: RetentionChange = json_body(req)?;
    let retention =
        Retention::from_json(&change.days).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if !deps
        .store
        .set_retention(&me.workspace_id, retention)
        .await?
    {
        return Err(ApiError::NotFound("the workspace is gone".into()));
    }
    tracing::info!(workspace_id = %me.workspace_id, days = retention.days(), "retention set");
    synclog::workspace_event(
        deps,
        &me.workspace_id,
        SyncEvent::RetentionSet,
        json!({ "days": retention.days(), "by_user": me.id }),
    )
    .await;
    if let Err(e) = retention::request(deps, &me.workspace_id, retention).await {
        tracing::error!(workspace_id = %me.workspace_id, error = %e, "could not request the retention's job for stored items");
        return Err(ApiError::Unfinished(
            "the retention is set for what is written from now on, but could not be applied to the stored items yet: set it again".into(),
        ));
    }
    Ok(json_response(200, &retention_answer(retention)))
}

#[derive(Deserialize)]
struct DeletionConfirmation {
    #[serde(default)]
    confirm_workspace_id: Option<String>,
}

/// The owner deletes the workspace: it accepts no work from now on, and a
/// job revokes its CRM grants and removes every item of it (`deletion`).
pub(super) async fn delete_workspace(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    if me.role != Role::Owner {
        return Err(ApiError::Forbidden(
            "only the workspace owner can delete the workspace".into(),
        ));
    }
    let confirmation: DeletionConfirmation = json_body(req)?;
    if confirmation.confirm_workspace_id.as_deref() != Some(me.workspace_id.as_str()) {
        return Err(ApiError::BadRequest(
            "to delete the workspace, confirm it: {\"confirm_workspace_id\": \"<this workspace's id>\"}"
                .into(),
        ));
    }
    // The job first: should the writes below fail, it makes them itself,
    // and the owner (whose token stops working with the mark) need not
    // retry.
    let job_id = crate::deletion::request(deps, &me.workspace_id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let since = deps
        .store
        .mark_workspace_deleting(&me.workspace_id, deps.clock.now())
        .await?
        .ok_or_else(|| ApiError::NotFound("the workspace is gone".into()))?;
    // Deliveries for its numbers are acknowledged and dropped from now on.
    let numbers = deps.store.remove_number_lookups(&me.workspace_id).await?;
    tracing::info!(workspace_id = %me.workspace_id, user_id = %me.id, %job_id, numbers, "workspace deletion begun");
    Ok(json_response(
        202,
        &json!({
            "workspace_id": me.workspace_id,
            "deleting_since": since,
            "job_id": job_id,
        }),
    ))
}

/// The workspace's sync log, newest first: `?chat=<chat key>&before=<id>&limit=`.
pub(super) async fn sync_log(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let params = query_params(req);
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 200);
    let entries = deps
        .store
        .log_entries(
            &me.workspace_id,
            params.get("chat").map(String::as_str),
            params.get("before").map(String::as_str),
            limit,
            deps.clock.now(),
        )
        .await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    Ok(json_response(
        200,
        &json!({ "entries": entries, "next_before": next }),
    ))
}
