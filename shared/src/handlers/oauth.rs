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

use std::sync::Arc;

use lambda_http::Request;
use serde::Deserialize;
use serde_json::json;

use super::http::{
    ApiError, HttpResponse, caller, json_body, json_response, no_route, path_segments,
    query_params, text_response,
};
use crate::crm::{CrmIdentity, CrmOAuth, NoticeError, TokenGrant, TokenServer, UninstallNotice};
use crate::crypto::{pkce_challenge, random_token, secrets_equal, sha256_hex};
use crate::deps::Deps;
use crate::livechat::zoho_signin::{self, SignInError};
use crate::model::{Connection, ConnectionKind, ConnectionStatus, CrmKind, OAuthState, Role, User};
use crate::store::Insert;
use crate::synclog::{self, SyncEvent};

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

async fn start(deps: &Deps, req: &Request, crm: CrmKind) -> Result<HttpResponse, ApiError> {
    let user = caller(deps, req).await?;
    let input: ConnectionRequest = json_body(req)?;
    if let Some(refusal) = connect_refusal(deps, &user, crm, input.connection).await? {
        return Err(refusal);
    }
    let nonce = random_token();
    let expires_at = deps.clock.now() + deps.config.oauth_state_ttl_secs;
    let browser_secret = random_token();
    let state = OAuthState {
        nonce: nonce.clone(),
        workspace_id: user.workspace_id.clone(),
        user_id: user.id.clone(),
        crm,
        kind: input.connection,
        expires_at,
        code_verifier: random_token(),
        browser_binding: sha256_hex(&browser_secret),
    };
    deps.store.put_oauth_state(&state, expires_at).await?;
    let keys = deps.secrets.keys().await?;
    let signed_state = format!("{nonce}.{}", keys.sign_state(&state_message(&state)));
    let url = crm_oauth(deps, crm).await?.authorize_url(
        &redirect_uri(deps, crm)?,
        &signed_state,
        &pkce_challenge(&state.code_verifier),
    );
    // The flow belongs to the browser that started it: an authorize URL
    // sent to someone else cannot store their grant in this workspace.
    let cookie = binding_cookie(
        deps,
        &nonce,
        &browser_secret,
        deps.config.oauth_state_ttl_secs,
    );
    let mut response = json_response(200, &json!({ "authorize_url": url }));
    if let Ok(value) = http::HeaderValue::from_str(&cookie) {
        response
            .headers_mut()
            .append(http::header::SET_COOKIE, value);
    }
    Ok(response)
}

/// The cookie that binds a flow to its browser: one per flow (named after
/// its nonce), sent only back to `/oauth/`, never to scripts, and to the
/// CRM's redirect (a top-level navigation, which `SameSite=Lax` allows).
fn binding_cookie(deps: &Deps, nonce: &str, value: &str, max_age: i64) -> String {
    let secure = deps
        .config
        .public_base_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    format!(
        "{}={value}; Path=/oauth/; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        binding_cookie_name(nonce),
        if secure { "; Secure" } else { "" }
    )
}

fn binding_cookie_name(nonce: &str) -> String {
    format!("oauth_flow_{}", &sha256_hex(nonce)[..16])
}

/// The flow's cookie as the browser sent it back, if it did.
fn binding_cookie_value(req: &Request, nonce: &str) -> Option<String> {
    let name = binding_cookie_name(nonce);
    req.headers()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// What the state signature covers: everything the callback will trust.
fn state_message(state: &OAuthState) -> String {
    format!(
        "{}|{}|{}|{}|{:?}|{}|{}",
        state.nonce,
        state.workspace_id,
        state.user_id,
        state.crm.as_str(),
        state.kind,
        state.expires_at,
        state.browser_binding
    )
}

/// `GET /oauth/{crm}/live?nonce=…`: a live-chat sign-in begins, bound to
/// this browser by a cookie as a connection's flow is; 302 to the CRM.
async fn live_sign_in(deps: &Deps, req: &Request, crm: CrmKind) -> Result<HttpResponse, ApiError> {
    let page_nonce = query_params(req).remove("nonce").unwrap_or_default();
    let browser_secret = random_token();
    let (url, state_nonce) = zoho_signin::begin(
        deps,
        crm_oauth(deps, crm).await?.as_ref(),
        crm,
        &redirect_uri(deps, crm)?,
        &page_nonce,
        sha256_hex(&browser_secret),
    )
    .await
    .map_err(sign_in_refusal)?;
    let mut response = text_response(302, "text/plain; charset=utf-8", "");
    let cookie = binding_cookie(
        deps,
        &state_nonce,
        &browser_secret,
        deps.config.oauth_state_ttl_secs,
    );
    for (name, value) in [
        (http::header::LOCATION, url),
        (http::header::SET_COOKIE, cookie),
        (http::header::CACHE_CONTROL, "no-store".to_owned()),
    ] {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

/// The callback of a live-chat sign-in: the popup's page, with the
/// one-time code for the widget or why there is none.
async fn live_sign_in_callback(
    deps: &Deps,
    req: &Request,
    crm: CrmKind,
    state_nonce: &str,
    signature: &str,
    code: &str,
    params: &std::collections::HashMap<String, String>,
) -> Result<HttpResponse, ApiError> {
    let browser_secret = binding_cookie_value(req, state_nonce);
    let popup = zoho_signin::complete(
        deps,
        crm_oauth(deps, crm).await?.as_ref(),
        crm,
        &redirect_uri(deps, crm)?,
        zoho_signin::Callback {
            state_nonce,
            signature,
            code,
            params,
            browser_secret: browser_secret.as_deref(),
        },
    )
    .await
    .map_err(sign_in_refusal)?;
    let mut response = zoho_signin::popup::page(&popup);
    // The flow is over: its cookie goes.
    if let Ok(value) = http::HeaderValue::from_str(&binding_cookie(deps, state_nonce, "", 0)) {
        response
            .headers_mut()
            .append(http::header::SET_COOKIE, value);
    }
    Ok(response)
}

pub(super) fn sign_in_refusal(e: SignInError) -> ApiError {
    match e {
        SignInError::Invalid(m) => ApiError::BadRequest(m),
        SignInError::OtherBrowser => ApiError::Forbidden(e.to_string()),
        SignInError::Unsupported(_) => ApiError::NotFound(e.to_string()),
        SignInError::Expired => ApiError::Unauthorized(e.to_string()),
        SignInError::Crm(_) => ApiError::BadGateway(e.to_string()),
        SignInError::Store(e) => e.into(),
        SignInError::Secrets(e) => e.into(),
    }
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
    if let Some((nonce, signature)) = zoho_signin::split_state(raw_state) {
        return live_sign_in_callback(deps, req, crm, nonce, signature, code, &params).await;
    }
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
    let same_browser = binding_cookie_value(req, nonce)
        .is_some_and(|secret| secrets_equal(&sha256_hex(&secret), &state.browser_binding));
    if !same_browser {
        tracing::warn!(workspace_id = %state.workspace_id, user_id = %state.user_id, "OAuth callback from another browser than the one that started the flow");
        return Err(ApiError::Forbidden(
            "this connection was started in another browser: start it again from your own".into(),
        ));
    }
    let oauth = crm_oauth(deps, crm).await?;
    let server = oauth.token_server(&params).map_err(ApiError::BadRequest)?;
    // The user may have lost the right meanwhile (removed, demoted, someone
    // else connected): check again before exchanging anything.
    let user = deps
        .store
        .user(&state.workspace_id, &state.user_id)
        .await?
        .ok_or_else(|| ApiError::Forbidden("the user who started this no longer exists".into()))?;
    if let Some(refusal) = connect_refusal(deps, &user, crm, state.kind).await? {
        return Err(refusal);
    }

    let grant = oauth
        .exchange_code(
            &server,
            code,
            &redirect_uri(deps, crm)?,
            &state.code_verifier,
        )
        .await
        .map_err(|e| ApiError::BadGateway(format!("the code exchange failed: {e}")))?;
    let refresh_token = grant
        .refresh_token
        .clone()
        .ok_or_else(|| ApiError::BadGateway("the CRM issued no refresh token".into()))?;
    let identity = match oauth.identify(&grant).await {
        Ok(identity) => identity,
        Err(e) => {
            revoke_quietly(oauth.as_ref(), &server.accounts_server, &refresh_token).await;
            return Err(ApiError::BadGateway(format!(
                "could not read the CRM user: {e}"
            )));
        }
    };
    let granted = Granted {
        grant,
        refresh_token,
        identity,
        server,
    };
    let stored = match state.kind {
        ConnectionKind::Organization => connect_organization(deps, &user, crm, &granted).await,
        ConnectionKind::Personal => connect_personal(deps, &user, crm, &granted).await,
    };
    match stored {
        Ok(()) => {}
        Err(ConnectFailure::NothingStored(refusal)) => {
            // No stored connection holds the new grant: give it back.
            revoke_quietly(
                oauth.as_ref(),
                &granted.server.accounts_server,
                &granted.refresh_token,
            )
            .await;
            return Err(refusal);
        }
        // A stored connection holds the grant: revoking it would leave that
        // connection dead. It stays; the caller is told what to retry.
        Err(ConnectFailure::GrantStored(failure)) => return Err(failure),
    }
    let mut response = text_response(
        200,
        "text/html; charset=utf-8",
        format!(
            "<!doctype html><title>Connected</title><p>{} is connected. You can close this window.</p>",
            crm.display_name()
        ),
    );
    // The flow is over: its cookie goes.
    if let Ok(value) = http::HeaderValue::from_str(&binding_cookie(deps, nonce, "", 0)) {
        response
            .headers_mut()
            .append(http::header::SET_COOKIE, value);
    }
    Ok(response)
}

/// What a successful code exchange yields.
struct Granted {
    grant: TokenGrant,
    refresh_token: String,
    identity: CrmIdentity,
    server: TokenServer,
}

impl Granted {
    fn connection(
        &self,
        deps: &Deps,
        user: &User,
        crm: CrmKind,
        kind: ConnectionKind,
    ) -> Connection {
        let now = deps.clock.now();
        Connection {
            workspace_id: user.workspace_id.clone(),
            crm,
            kind,
            user_id: user.id.clone(),
            location: self.server.location.clone(),
            accounts_server: self.server.accounts_server.clone(),
            api_domain: self.grant.api_domain.clone(),
            crm_user_id: self.identity.user_id.clone(),
            crm_user_email: self.identity.email.clone(),
            crm_org_id: self.identity.org_id.clone(),
            access_token_enc: String::new(),
            refresh_token_enc: String::new(),
            access_expires_at: now + self.grant.expires_in_secs,
            access_issued_at: now,
            status: ConnectionStatus::Active,
            connected_at: now,
            version: 1,
            refresh_lease_until: 0,
            shares_organization_grant: false,
        }
    }

    /// The connection with its tokens sealed for its own item.
    async fn sealed(
        &self,
        deps: &Deps,
        mut connection: Connection,
    ) -> Result<Connection, ApiError> {
        let cipher = deps.secrets.keys().await?.token_cipher();
        let binding = connection.token_binding();
        connection.access_token_enc = cipher.encrypt(&self.grant.access_token, &binding);
        connection.refresh_token_enc = cipher.encrypt(&self.refresh_token, &binding);
        Ok(connection)
    }
}

/// Why storing a new connection failed, and whether its grant is held by
/// what was stored anyway: only a grant nothing holds may be revoked.
enum ConnectFailure {
    /// Nothing holds the new grant.
    NothingStored(ApiError),
    /// The organization connection was stored with the grant; a later step
    /// failed.
    GrantStored(ApiError),
}

impl From<ApiError> for ConnectFailure {
    /// Errors raised before anything is stored.
    fn from(refusal: ApiError) -> Self {
        Self::NothingStored(refusal)
    }
}

impl From<crate::error::StoreError> for ConnectFailure {
    fn from(e: crate::error::StoreError) -> Self {
        Self::NothingStored(e.into())
    }
}

async fn connect_organization(
    deps: &Deps,
    user: &User,
    crm: CrmKind,
    granted: &Granted,
) -> Result<(), ConnectFailure> {
    let connection = granted
        .sealed(
            deps,
            granted.connection(deps, user, crm, ConnectionKind::Organization),
        )
        .await?;
    if let Insert::Exists(_) = deps.store.insert_connection(&connection).await? {
        return Err(ApiError::Conflict(
            "the organization is already connected; to reconnect, disconnect it first".into(),
        )
        .into());
    }
    // From here on the organization connection holds the grant: nothing
    // below may make the callback give it back.
    tracing::info!(
        workspace_id = %connection.workspace_id,
        crm = crm.as_str(),
        location = %connection.location,
        "organization connection stored"
    );
    let makers_own = connect_maker_personally(deps, user, crm, granted).await;
    synclog::workspace_event(
        deps,
        &connection.workspace_id,
        SyncEvent::OrganizationConnected,
        json!({ "crm": crm.as_str(), "by_user": user.id, "location": connection.location }),
    )
    .await;
    // Messages that waited for the connection (a job: see `requeue`); one
    // left waiting is queued by the next activation or connection, so a
    // failure here fails nothing.
    if let Err(e) = crate::requeue::request(deps, &connection.workspace_id).await {
        tracing::error!(workspace_id = %connection.workspace_id, error = %e, "could not request the re-queue of the waiting messages after connecting");
    }
    makers_own.map_err(|e| {
        tracing::error!(workspace_id = %user.workspace_id, user_id = %user.id, error = %e.detail(), "organization connected, but its maker's personal connection could not be stored");
        ConnectFailure::GrantStored(ApiError::Unfinished(
            "the organization is connected, but your personal connection could not be stored; connect personally to add it".into(),
        ))
    })
}

/// The organization's maker is connected personally too, on the same grant.
async fn connect_maker_personally(
    deps: &Deps,
    user: &User,
    crm: CrmKind,
    granted: &Granted,
) -> Result<(), ApiError> {
    let mut own = granted.connection(deps, user, crm, ConnectionKind::Personal);
    own.shares_organization_grant = true;
    let own = granted.sealed(deps, own).await?;
    if let Insert::Exists(previous) = deps.store.insert_connection(&own).await? {
        // A personal connection from before: this one supersedes it.
        deps.store.delete_connection(&previous).await?;
        deps.store.insert_connection(&own).await?;
        if !previous.shares_organization_grant {
            revoke_connection(deps, &previous).await;
        }
    }
    Ok(())
}

async fn connect_personal(
    deps: &Deps,
    user: &User,
    crm: CrmKind,
    granted: &Granted,
) -> Result<(), ConnectFailure> {
    let org = organization(deps, &user.workspace_id, crm)
        .await?
        .ok_or_else(|| ApiError::Conflict("the organization was disconnected meanwhile".into()))?;
    if org.crm_org_id != granted.identity.org_id {
        let crm_name = crm.display_name();
        return Err(ApiError::Forbidden(format!(
            "this {crm_name} account belongs to another {crm_name} organization than the workspace's; sign in with an account of the connected organization"
        ))
        .into());
    }
    let connection = granted
        .sealed(
            deps,
            granted.connection(deps, user, crm, ConnectionKind::Personal),
        )
        .await?;
    if let Insert::Exists(_) = deps.store.insert_connection(&connection).await? {
        return Err(ApiError::Conflict(
            "you are already connected; disconnect your personal connection first".into(),
        )
        .into());
    }
    tracing::info!(workspace_id = %user.workspace_id, user_id = %user.id, "personal connection stored");
    Ok(())
}

async fn revoke_quietly(oauth: &dyn CrmOAuth, accounts_server: &str, refresh_token: &str) {
    if let Err(e) = oauth.revoke(accounts_server, refresh_token).await {
        tracing::warn!(error = %e, "could not revoke a grant at the CRM");
    }
}

/// Revokes a stored connection's grant at the CRM (best effort: a grant the
/// CRM no longer knows is as revoked as it gets); whether it was revoked.
/// What stood in the way is logged.
async fn revoke_connection(deps: &Deps, connection: &Connection) -> bool {
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
fn disconnect_refusal(user: &User, org: &Connection, own: Option<&Connection>) -> Option<ApiError> {
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

async fn disconnect(deps: &Deps, req: &Request, crm: CrmKind) -> Result<HttpResponse, ApiError> {
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
pub(super) async fn remove_personal(
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
async fn uninstall(deps: &Deps, req: &Request, crm: CrmKind) -> Result<HttpResponse, ApiError> {
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

async fn status(deps: &Deps, req: &Request, crm: CrmKind) -> Result<HttpResponse, ApiError> {
    let user = caller(deps, req).await?;
    let org = organization(deps, &user.workspace_id, crm).await?;
    let own = personal(deps, &user, crm).await?;
    let connected_by = match &org {
        Some(c) => deps
            .store
            .user(&user.workspace_id, &c.user_id)
            .await?
            .map(|u| json!({ "user_id": u.id, "email": u.email })),
        None => None,
    };
    let describe = |c: &Connection| {
        json!({
            "status": c.status,
            "since": c.connected_at,
            "crm_user_email": c.crm_user_email,
            "data_centre": c.location,
        })
    };
    let can_connect_org = connect_refusal(deps, &user, crm, ConnectionKind::Organization)
        .await?
        .is_none();
    let can_connect_personal = connect_refusal(deps, &user, crm, ConnectionKind::Personal)
        .await?
        .is_none();
    let can_disconnect_org = org
        .as_ref()
        .is_some_and(|o| disconnect_refusal(&user, o, own.as_ref()).is_none());
    Ok(json_response(
        200,
        &json!({
            "crm": crm.as_str(),
            "organization": org.as_ref().map(|c| {
                let mut d = describe(c);
                d["connected_by"] = json!(connected_by);
                d
            }),
            "personal": own.as_ref().map(describe),
            "you_may": {
                "connect_organization": can_connect_org,
                "connect_personal": can_connect_personal,
                "disconnect_organization": can_disconnect_org,
                "disconnect_personal": own.is_some(),
            },
        }),
    ))
}
