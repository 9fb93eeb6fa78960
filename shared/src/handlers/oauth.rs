//! The `oauth` function: connect a CRM through OAuth.
//!
//! `POST /oauth/{crm}/start` (bearer) → `{authorize_url}` with a `state` that
//! is random, signed, single-use, short-lived and bound to the user and the
//! connection kind. `GET /oauth/{crm}/callback` exchanges the code at the
//! accounts server the callback names (if it is a known one) and stores the
//! connection with its tokens encrypted.

use std::sync::Arc;

use lambda_http::Request;
use serde::Deserialize;
use serde_json::json;

use super::http::{
    ApiError, HttpResponse, caller, json_body, json_response, path_segments, query_params,
    text_response,
};
use crate::adapters::zoho::{ZohoApi, ZohoOAuth};
use crate::crm::CrmError;
use crate::crypto::random_token;
use crate::deps::Deps;
use crate::model::{
    Connection, ConnectionKind, ConnectionStatus, CrmKind, MessageState, OAuthState,
};
use crate::queue::{MessageRef, QueueName};
use crate::store::Insert;
use crate::tokens::FreshToken;

/// How long a user has to finish the consent screen.
const STATE_TTL_SECS: i64 = 600;

pub async fn handle(deps: &Deps, req: Request) -> Result<HttpResponse, lambda_http::Error> {
    Ok(route(deps, &req)
        .await
        .unwrap_or_else(ApiError::into_response))
}

async fn route(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let segments = path_segments(req);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (method, crm, action) = match segments.as_slice() {
        ["oauth", crm, action] => (req.method().as_str(), *crm, *action),
        _ => return Err(ApiError::NotFound(format!("no route {}", req.uri().path()))),
    };
    let crm = CrmKind::parse(crm)
        .ok_or_else(|| ApiError::NotFound(format!("`{crm}` is not a supported CRM")))?;
    match (method, action) {
        ("POST", "start") => start(deps, req, crm).await,
        ("GET", "callback") => callback(deps, req, crm).await,
        (_, "start" | "callback") => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound(format!("no route {}", req.uri().path()))),
    }
}

fn redirect_uri(deps: &Deps, crm: CrmKind) -> String {
    format!(
        "{}/oauth/{}/callback",
        deps.config.public_base_url,
        crm.as_str()
    )
}

async fn zoho_oauth(deps: &Deps) -> Result<ZohoOAuth, ApiError> {
    let client = deps.secrets.zoho_client().await?;
    Ok(ZohoOAuth::new(
        deps.http.clone(),
        client.client_id.clone(),
        client.client_secret.clone(),
    ))
}

#[derive(Deserialize)]
struct StartRequest {
    connection: ConnectionKind,
}

async fn start(deps: &Deps, req: &Request, crm: CrmKind) -> Result<HttpResponse, ApiError> {
    let user = caller(deps, req).await?;
    let input: StartRequest = json_body(req)?;
    if input.connection == ConnectionKind::Organization {
        if !user.role.manages_workspace() {
            return Err(ApiError::Forbidden(
                "only the workspace owner or an admin can connect the organization".into(),
            ));
        }
        if deps
            .store
            .connection(&user.workspace_id, crm, ConnectionKind::Organization, None)
            .await?
            .is_some()
        {
            return Err(ApiError::Conflict(
                "the organization is already connected; disconnect it first to reconnect".into(),
            ));
        }
    } else {
        return Err(ApiError::BadRequest(
            "personal connections are not available yet".into(),
        ));
    }
    let nonce = random_token();
    let expires_at = deps.clock.now() + STATE_TTL_SECS;
    let state = OAuthState {
        nonce: nonce.clone(),
        workspace_id: user.workspace_id.clone(),
        user_id: user.id.clone(),
        crm,
        kind: input.connection,
        expires_at,
    };
    deps.store.put_oauth_state(&state, expires_at).await?;
    let keys = deps.secrets.keys().await?;
    let signed_state = format!("{nonce}.{}", keys.sign_state(&state_message(&state)));
    let url = zoho_oauth(deps).await?.authorize_url(
        &deps.config.zoho.accounts_url,
        &redirect_uri(deps, crm),
        &signed_state,
    );
    Ok(json_response(200, &json!({ "authorize_url": url })))
}

/// What the state signature covers: everything the callback will trust.
fn state_message(state: &OAuthState) -> String {
    format!(
        "{}|{}|{}|{}|{:?}|{}",
        state.nonce,
        state.workspace_id,
        state.user_id,
        state.crm.as_str(),
        state.kind,
        state.expires_at
    )
}

async fn callback(deps: &Deps, req: &Request, crm: CrmKind) -> Result<HttpResponse, ApiError> {
    let params = query_params(req);
    if let Some(error) = params.get("error") {
        return Err(ApiError::BadRequest(format!(
            "the CRM did not grant access: {error}"
        )));
    }
    let (Some(raw_state), Some(code)) = (params.get("state"), params.get("code")) else {
        return Err(ApiError::BadRequest(
            "the callback needs `state` and `code`".into(),
        ));
    };
    let (nonce, signature) = raw_state
        .split_once('.')
        .ok_or_else(|| ApiError::BadRequest("the state is not valid".into()))?;
    // Taking the state deletes it: a replay finds nothing.
    let state = deps
        .store
        .take_oauth_state(nonce)
        .await?
        .ok_or_else(|| ApiError::BadRequest("the state is unknown, used or expired".into()))?;
    let keys = deps.secrets.keys().await?;
    if !keys.verify_state(&state_message(&state), signature) || state.crm != crm {
        return Err(ApiError::BadRequest("the state is not valid".into()));
    }
    if state.expires_at <= deps.clock.now() {
        return Err(ApiError::BadRequest(
            "the state has expired; start again".into(),
        ));
    }
    let location = params
        .get("location")
        .cloned()
        .unwrap_or_else(|| "us".into());
    let accounts_server = deps
        .config
        .zoho
        .accounts_servers
        .get(&location)
        .cloned()
        .ok_or_else(|| ApiError::BadRequest(format!("unknown Zoho data centre `{location}`")))?;
    if let Some(named) = params.get("accounts-server")
        && named.trim_end_matches('/') != accounts_server
    {
        return Err(ApiError::BadRequest(format!(
            "the accounts server does not belong to data centre `{location}`"
        )));
    }

    let oauth = zoho_oauth(deps).await?;
    let grant = oauth
        .exchange_code(&accounts_server, code, &redirect_uri(deps, crm))
        .await
        .map_err(|e| ApiError::BadGateway(format!("the code exchange failed: {e}")))?;
    if !deps.config.zoho.api_domains.contains(&grant.api_domain) {
        return Err(ApiError::BadGateway(format!(
            "the token response names an unknown API domain `{}`",
            grant.api_domain
        )));
    }
    let refresh_token = grant
        .refresh_token
        .clone()
        .ok_or_else(|| ApiError::BadGateway("the CRM issued no refresh token".into()))?;
    let api = ZohoApi::new(
        deps.http.clone(),
        &grant.api_domain,
        Arc::new(FreshToken(grant.access_token.clone())),
    );
    let identity = api
        .identify()
        .await
        .map_err(|e| ApiError::BadGateway(format!("could not read the CRM user: {e}")))?;

    let now = deps.clock.now();
    let cipher = keys.token_cipher();
    let mut connection = Connection {
        workspace_id: state.workspace_id.clone(),
        crm,
        kind: state.kind,
        user_id: state.user_id.clone(),
        location,
        accounts_server,
        api_domain: grant.api_domain.clone(),
        crm_user_id: identity.user_id,
        crm_user_email: identity.email,
        crm_org_id: identity.org_id,
        access_token_enc: String::new(),
        refresh_token_enc: String::new(),
        access_expires_at: now + grant.expires_in_secs,
        status: ConnectionStatus::Active,
        connected_at: now,
        version: 1,
        refresh_lease_until: 0,
    };
    let binding = connection.token_binding();
    connection.access_token_enc = cipher.encrypt(&grant.access_token, &binding);
    connection.refresh_token_enc = cipher.encrypt(&refresh_token, &binding);
    if let Insert::Exists(_) = deps.store.insert_connection(&connection).await? {
        // Lost a race with another callback: give the new grant back.
        if let Err(e) = oauth
            .revoke(&connection.accounts_server, &refresh_token)
            .await
        {
            tracing::warn!(error = %e, "could not revoke the surplus grant");
        }
        return Err(ApiError::Conflict(
            "the organization is already connected; disconnect it first to reconnect".into(),
        ));
    }
    tracing::info!(
        workspace_id = %connection.workspace_id,
        crm = crm.as_str(),
        location = %connection.location,
        "organization connection stored"
    );
    requeue_waiting(deps, &connection.workspace_id)
        .await
        .map_err(|e| ApiError::Internal(format!("re-queueing waiting messages: {e}")))?;
    Ok(text_response(
        200,
        "text/html; charset=utf-8",
        "<!doctype html><title>Connected</title><p>Zoho CRM is connected. You can close this window.</p>",
    ))
}

/// Messages that arrived before the connection existed are synced now, in
/// the order they were sent.
async fn requeue_waiting(deps: &Deps, workspace_id: &str) -> Result<(), CrmError> {
    let waiting = deps
        .store
        .waiting_messages(workspace_id)
        .await
        .map_err(|e| CrmError::Transport(e.to_string()))?;
    for message in waiting {
        let reference = MessageRef {
            workspace_id: workspace_id.to_owned(),
            message_id: message.message_id.clone(),
            chat_key: message.chat_key.clone(),
            resend: deps.clock.now(),
        };
        deps.queue
            .send(QueueName::Sync, &reference)
            .await
            .map_err(|e| CrmError::Transport(e.to_string()))?;
        deps.store
            .set_message_state(
                workspace_id,
                &message.message_id,
                &MessageState::Queued,
                Some(&["waiting"]),
            )
            .await
            .map_err(|e| CrmError::Transport(e.to_string()))?;
    }
    Ok(())
}
