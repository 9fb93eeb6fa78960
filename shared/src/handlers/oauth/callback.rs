//! `GET /oauth/{crm}/callback`: the code exchanged at the callback's
//! accounts server, and the organization or personal connection stored
//! under the connection rules.

use lambda_http::Request;
use serde_json::json;

use crate::crm::{CrmIdentity, TokenGrant, TokenServer};
use crate::crypto::{secrets_equal, sha256_hex};
use crate::deps::Deps;
use crate::handlers::http::{ApiError, HttpResponse, query_params, text_response};
use crate::livechat::zoho_signin::{self};
use crate::model::{Connection, ConnectionKind, ConnectionStatus, CrmKind, User};
use crate::store::Insert;
use crate::synclog::{self, SyncEvent};

use super::disconnect::{revoke_connection, revoke_quietly};
use super::live::live_sign_in_callback;
use super::start::{binding_cookie, binding_cookie_value, state_message};
use super::{connect_refusal, crm_oauth, organization, redirect_uri};

pub(super) async fn callback(
    deps: &Deps,
    req: &Request,
    crm: CrmKind,
) -> Result<HttpResponse, ApiError> {
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
