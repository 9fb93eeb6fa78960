//! The `oauth` function: CRM connections.
//!
//! - `POST /oauth/{crm}/start` (bearer) `{"connection": "organization"|"personal"}`
//!   → `{authorize_url}`, with a `state` that is random, signed, single-use,
//!   short-lived and bound to the user and the connection kind, and a PKCE
//!   challenge whose verifier never leaves the server.
//! - `GET /oauth/{crm}/callback`: exchanges the code at the accounts server of
//!   the data centre the callback names (only known ones) and stores the
//!   connection, tokens encrypted — or, for a live-chat sign-in's state,
//!   finishes the sign-in (`crate::livechat::zoho_signin`).
//! - `GET /oauth/{crm}/live?nonce=…` (Zoho; no bearer: the user is who Zoho
//!   says): the live-chat widget's sign-in popup starts here and is sent on
//!   to Zoho.
//! - `DELETE /oauth/{crm}/callback`: the CRM's uninstall notice (Pipedrive
//!   sends one, with our client credentials in HTTP Basic): the connections
//!   its user made go, as disconnecting them would.
//! - `POST /oauth/{crm}/disconnect` (bearer) `{"connection": …}`.
//! - `GET /oauth/{crm}/status` (bearer): what is connected and what the caller may do.
//!
//! Rules: the organization connection is made by the owner or an admin, once
//! (reconnect = disconnect + connect), and gives its maker a personal
//! connection too. Personal connections need the organization connection and
//! must be to the same CRM organization. Disconnecting the organization (its
//! maker, the owner, or an admin without a personal connection) removes every
//! personal connection and revokes the grants at the CRM.
//!
//! Routing and what the routes share are here; each route's code is in its
//! own file (`start`, `callback`, `live`, `disconnect` with the uninstall
//! notice, `status`).

use std::sync::Arc;

use lambda_http::Request;
use serde::Deserialize;

use super::http::{ApiError, HttpResponse, no_route, path_segments};
use crate::crm::CrmOAuth;
use crate::deps::Deps;
use crate::model::{Connection, ConnectionKind, CrmKind, User};

mod callback;
mod disconnect;
mod live;
mod start;
mod status;

use callback::callback;
pub(super) use disconnect::remove_personal;
use disconnect::{disconnect, uninstall};
use live::live_sign_in;
pub(super) use live::sign_in_refusal;
use start::start;
use status::status;

pub async fn handle(deps: &Deps, req: Request) -> Result<HttpResponse, lambda_http::Error> {
    Ok(route(deps, &req)
        .await
        .unwrap_or_else(ApiError::into_response))
}

async fn route(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let segments = path_segments(req);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (crm, action) = match segments.as_slice() {
        ["oauth", crm, action] => (*crm, *action),
        _ => return Err(no_route(req)),
    };
    let crm = CrmKind::parse(crm)
        .ok_or_else(|| ApiError::NotFound(format!("`{crm}` is not a supported CRM")))?;
    match (req.method().as_str(), action) {
        ("POST", "start") => start(deps, req, crm).await,
        ("GET", "live") => live_sign_in(deps, req, crm).await,
        ("GET", "callback") => callback(deps, req, crm).await,
        ("DELETE", "callback") => uninstall(deps, req, crm).await,
        ("POST", "disconnect") => disconnect(deps, req, crm).await,
        ("GET", "status") => status(deps, req, crm).await,
        (_, "start" | "disconnect") => Err(ApiError::MethodNotAllowed("POST")),
        (_, "callback") => Err(ApiError::MethodNotAllowed("GET, DELETE")),
        (_, "status" | "live") => Err(ApiError::MethodNotAllowed("GET")),
        _ => Err(no_route(req)),
    }
}

fn redirect_uri(deps: &Deps, crm: CrmKind) -> Result<String, ApiError> {
    let base =
        deps.config.public_base_url.as_deref().ok_or_else(|| {
            ApiError::Internal("PUBLIC_BASE_URL is not set for this function".into())
        })?;
    Ok(format!("{base}/oauth/{}/callback", crm.as_str()))
}

async fn crm_oauth(deps: &Deps, crm: CrmKind) -> Result<Arc<dyn CrmOAuth>, ApiError> {
    Ok(deps.crms.oauth(crm).await?)
}

async fn organization(
    deps: &Deps,
    workspace_id: &str,
    crm: CrmKind,
) -> Result<Option<Connection>, ApiError> {
    Ok(deps
        .store
        .connection(workspace_id, crm, ConnectionKind::Organization, None)
        .await?)
}

async fn personal(deps: &Deps, user: &User, crm: CrmKind) -> Result<Option<Connection>, ApiError> {
    Ok(deps
        .store
        .connection(
            &user.workspace_id,
            crm,
            ConnectionKind::Personal,
            Some(&user.id),
        )
        .await?)
}

#[derive(Deserialize)]
struct ConnectionRequest {
    connection: ConnectionKind,
}

/// Why `user` may not connect `kind` now, if they may not.
async fn connect_refusal(
    deps: &Deps,
    user: &User,
    crm: CrmKind,
    kind: ConnectionKind,
) -> Result<Option<ApiError>, ApiError> {
    let org = organization(deps, &user.workspace_id, crm).await?;
    Ok(match kind {
        ConnectionKind::Organization if !user.role.manages_workspace() => Some(ApiError::Forbidden(
            "only the workspace owner or an admin can connect the organization".into(),
        )),
        ConnectionKind::Organization if org.is_some() => Some(ApiError::Conflict(
            "the organization is already connected; to reconnect, disconnect it first".into(),
        )),
        ConnectionKind::Personal if org.is_none() => Some(ApiError::Conflict(
            "the organization is not connected yet: an owner or admin must connect it before personal connections".into(),
        )),
        ConnectionKind::Personal if personal(deps, user, crm).await?.is_some() => {
            Some(ApiError::Conflict(
                "you are already connected; disconnect your personal connection first".into(),
            ))
        }
        _ => None,
    })
}
