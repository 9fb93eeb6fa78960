//! Disconnecting (`POST /oauth/{crm}/disconnect`) and the CRM's uninstall
//! notice (`DELETE /oauth/{crm}/callback`): who may, and the grants given
//! back at the CRM.

use lambda_http::Request;
use serde_json::json;

use crate::crm::{CrmOAuth, NoticeError, UninstallNotice};
use crate::deps::Deps;
use crate::handlers::http::{ApiError, HttpResponse, caller, json_body, json_response};
use crate::model::{Connection, ConnectionKind, CrmKind, Role, User};
use crate::synclog::{self, SyncEvent};

use super::{ConnectionRequest, crm_oauth, organization, personal};

pub(super) async fn revoke_quietly(
    oauth: &dyn CrmOAuth,
    accounts_server: &str,
    refresh_token: &str,
) {
    if let Err(e) = oauth.revoke(accounts_server, refresh_token).await {
        tracing::warn!(error = %e, "could not revoke a grant at the CRM");
    }
}

/// Revokes a stored connection's grant at the CRM (best effort: a grant the
/// CRM no longer knows is as revoked as it gets); whether it was revoked.
/// What stood in the way is logged.
pub(super) async fn revoke_connection(deps: &Deps, connection: &Connection) -> bool {
    match crate::grants::revoke(deps, connection).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                workspace_id = %connection.workspace_id,
                user_id = %connection.user_id,
                kind = ?connection.kind,
                error = %e,
                "could not revoke a grant at the CRM"
            );
            false
        }
    }
}

/// Why `user` may not disconnect the organization, if they may not.
pub(super) fn disconnect_refusal(
    user: &User,
    org: &Connection,
    own: Option<&Connection>,
) -> Option<ApiError> {
    let made_it = org.user_id == user.id;
    match user.role {
        _ if made_it => None,
        Role::Owner => None,
        Role::Admin if own.is_some() => Some(ApiError::Conflict(
            "you have a personal connection: disconnect it first (\"connection\": \"personal\"), then the organization".into(),
        )),
        Role::Admin => None,
        Role::Member => Some(ApiError::Forbidden(
            "only the workspace owner or an admin can disconnect the organization".into(),
        )),
    }
}

pub(super) async fn disconnect(
    deps: &Deps,
    req: &Request,
    crm: CrmKind,
) -> Result<HttpResponse, ApiError> {
    let user = caller(deps, req).await?;
    let input: ConnectionRequest = json_body(req)?;
    let own = personal(deps, &user, crm).await?;
    match input.connection {
        ConnectionKind::Personal => {
            let own =
                own.ok_or_else(|| ApiError::NotFound("you have no personal connection".into()))?;
            let revoked = remove_personal(deps, &own, None).await?;
            Ok(json_response(
                200,
                &json!({ "disconnected": "personal", "revoked": revoked }),
            ))
        }
        ConnectionKind::Organization => {
            let org = organization(deps, &user.workspace_id, crm)
                .await?
                .ok_or_else(|| ApiError::NotFound("the organization is not connected".into()))?;
            if let Some(refusal) = disconnect_refusal(&user, &org, own.as_ref()) {
                return Err(refusal);
            }
            let all = deps.store.connections(&user.workspace_id, crm).await?;
            let (personal_removed, revoked) = remove_organization(deps, &org, &all, None).await?;
            tracing::info!(workspace_id = %user.workspace_id, personal_removed, revoked, "organization disconnected");
            synclog::workspace_event(deps, &user.workspace_id, SyncEvent::OrganizationDisconnected, json!({ "crm": crm.as_str(), "by_user": user.id, "personal_connections_removed": personal_removed, "grants_revoked": revoked })).await;
            Ok(json_response(
                200,
                &json!({
                    "disconnected": "organization",
                    "personal_connections_removed": personal_removed,
                    "grants_revoked": revoked,
                }),
            ))
        }
    }
}

/// Gives a removed connection's grant back at the CRM, unless the CRM took
/// it back already (`taken_back`: an uninstall notice naming its CRM
/// user); whether it was revoked.
async fn give_back(
    deps: &Deps,
    connection: &Connection,
    taken_back: Option<&UninstallNotice>,
) -> bool {
    let gone = taken_back.is_some_and(|notice| notice_names(notice, connection));
    !gone && revoke_connection(deps, connection).await
}

/// Whether the connection was made with the CRM user an uninstall notice names.
fn notice_names(notice: &UninstallNotice, connection: &Connection) -> bool {
    connection.crm_org_id == notice.org_id && connection.crm_user_id == notice.user_id
}

/// Removes a personal connection and gives its grant back (unless the
/// organization connection holds the same grant, or `taken_back` says the
/// CRM has it already); whether it was revoked.
pub(in crate::handlers) async fn remove_personal(
    deps: &Deps,
    connection: &Connection,
    taken_back: Option<&UninstallNotice>,
) -> Result<bool, ApiError> {
    deps.store.delete_connection(connection).await?;
    Ok(!connection.shares_organization_grant && give_back(deps, connection, taken_back).await)
}

/// Removes the organization connection `org` and, first (so that none
/// outlives it), every personal connection among `all` (the workspace's
/// connections to its CRM), giving their grants back as
/// [`remove_personal`] does; (personal connections removed, grants revoked).
async fn remove_organization(
    deps: &Deps,
    org: &Connection,
    all: &[Connection],
    taken_back: Option<&UninstallNotice>,
) -> Result<(usize, usize), ApiError> {
    let (mut personal_removed, mut revoked) = (0, 0);
    for connection in all.iter().filter(|c| c.kind == ConnectionKind::Personal) {
        personal_removed += 1;
        if remove_personal(deps, connection, taken_back).await? {
            revoked += 1;
        }
    }
    deps.store.delete_connection(org).await?;
    if give_back(deps, org, taken_back).await {
        revoked += 1;
    }
    Ok((personal_removed, revoked))
}

/// `DELETE /oauth/{crm}/callback`: the CRM's notice that one of its users
/// uninstalled the app (Pipedrive's, reference §1), checked by the CRM's
/// adapter (our client credentials in HTTP Basic). Every connection made
/// with that CRM user goes, in whichever workspace holds one: an
/// organization connection with its personal ones (as disconnecting it
/// does), else the user's personal connection. Their own grants are not
/// revoked (the CRM has taken them back); the cascade's are. A notice for
/// nothing stored (again, or a user who never connected) answers 200 too:
/// the CRM ignores the answer and there is nothing left to do.
pub(super) async fn uninstall(
    deps: &Deps,
    req: &Request,
    crm: CrmKind,
) -> Result<HttpResponse, ApiError> {
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let notice = crm_oauth(deps, crm)
        .await?
        .uninstall_notice(authorization, req.body().as_ref())
        .map_err(|e| match e {
            // The CRM sends no uninstall notices: its callback is only GET.
            NoticeError::Unsupported => ApiError::MethodNotAllowed("GET"),
            NoticeError::Unauthenticated => ApiError::Unauthorized(e.to_string()),
            NoticeError::Malformed(_) => ApiError::BadRequest(e.to_string()),
        })?;
    let found = deps
        .store
        .connections_of_crm_user(crm, &notice.org_id, &notice.user_id)
        .await?;
    let mut workspaces: Vec<&str> = found.iter().map(|c| c.workspace_id.as_str()).collect();
    workspaces.sort_unstable();
    workspaces.dedup();
    let mut removed = 0;
    for workspace_id in &workspaces {
        removed += uninstall_in(deps, workspace_id, crm, &notice).await?;
    }
    tracing::info!(
        crm = crm.as_str(),
        crm_org_id = %notice.org_id,
        workspaces = workspaces.len(),
        connections_removed = removed,
        "uninstall notice handled"
    );
    Ok(json_response(
        200,
        &json!({ "connections_removed": removed }),
    ))
}

/// Removes, in one workspace, the connections the uninstall notice's CRM
/// user made (read again here: the index that found them lags); how many
/// connections went.
async fn uninstall_in(
    deps: &Deps,
    workspace_id: &str,
    crm: CrmKind,
    notice: &UninstallNotice,
) -> Result<usize, ApiError> {
    let all = deps.store.connections(workspace_id, crm).await?;
    let org = all
        .iter()
        .find(|c| c.kind == ConnectionKind::Organization && notice_names(notice, c));
    let (connection, user_id, personal_removed, revoked, removed) = match org {
        Some(org) => {
            let (personal_removed, revoked) =
                remove_organization(deps, org, &all, Some(notice)).await?;
            let removed = personal_removed + 1;
            (
                "organization",
                &org.user_id,
                personal_removed,
                revoked,
                removed,
            )
        }
        None => {
            let theirs: Vec<&Connection> = all.iter().filter(|c| notice_names(notice, c)).collect();
            let Some(first) = theirs.first() else {
                return Ok(0);
            };
            let mut revoked = 0;
            for own in &theirs {
                if remove_personal(deps, own, Some(notice)).await? {
                    revoked += 1;
                }
            }
            let removed = theirs.len();
            ("personal", &first.user_id, removed, revoked, removed)
        }
    };
    tracing::info!(workspace_id, user_id = %user_id, connection, personal_removed, revoked, "connection removed: its CRM user uninstalled the app");
    synclog::workspace_event(
        deps,
        workspace_id,
        SyncEvent::CrmAppUninstalled,
        json!({
            "crm": crm.as_str(),
            "connection": connection,
            "user_id": user_id,
            "personal_connections_removed": personal_removed,
            "grants_revoked": revoked,
        }),
    )
    .await;
    Ok(removed)
}
