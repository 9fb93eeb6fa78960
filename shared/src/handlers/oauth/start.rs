//! `POST /oauth/{crm}/start`: the authorize URL, with a signed single-use
//! state bound to the user (and the browser, by a cookie) and a PKCE challenge.

use lambda_http::Request;
use serde_json::json;

use crate::crypto::{pkce_challenge, random_token, sha256_hex};
use crate::deps::Deps;
use crate::handlers::http::{ApiError, HttpResponse, caller, json_body, json_response};
use crate::model::{CrmKind, OAuthState};

use super::{ConnectionRequest, connect_refusal, crm_oauth, redirect_uri};

pub(super) async fn start(
    deps: &Deps,
    req: &Request,
    crm: CrmKind,
) -> Result<HttpResponse, ApiError> {
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
pub(super) fn binding_cookie(deps: &Deps, nonce: &str, value: &str, max_age: i64) -> String {
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
pub(super) fn binding_cookie_value(req: &Request, nonce: &str) -> Option<String> {
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
pub(super) fn state_message(state: &OAuthState) -> String {
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
