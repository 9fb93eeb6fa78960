//! The live-chat widget's sign-in through the CRM (Zoho): the popup starts
//! here and its callback finishes it.

use lambda_http::Request;

use crate::crypto::{random_token, sha256_hex};
use crate::deps::Deps;
use crate::handlers::http::{ApiError, HttpResponse, query_params, text_response};
use crate::livechat::zoho_signin::{self, SignInError};
use crate::model::CrmKind;

use super::start::{binding_cookie, binding_cookie_value};
use super::{crm_oauth, redirect_uri};

/// `GET /oauth/{crm}/live?nonce=…`: a live-chat sign-in begins, bound to
/// this browser by a cookie as a connection's flow is; 302 to the CRM.
pub(super) async fn live_sign_in(
    deps: &Deps,
    req: &Request,
    crm: CrmKind,
) -> Result<HttpResponse, ApiError> {
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
pub(super) async fn live_sign_in_callback(
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

pub(in crate::handlers) fn sign_in_refusal(e: SignInError) -> ApiError {
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
