//! `/api/live/…`: what the live-chat page inside a CRM record asks.
//!
//! - `POST /api/live/pipedrive/session` `{token}`: Pipedrive's signed
//!   extension token → a live-chat session for the user whose personal
//!   Pipedrive connection it names (else 403 `not_connected`, with where to
//!   connect).
//! - `GET /api/live/chats?record=<module>/<id>` (`X-Live-Session`): the
//!   chats the record shows its user, messages newest first.
//! - `POST /api/live/chats/{chat_key}/messages` (`X-Live-Session`)
//!   `{client_id, text, reply_to?}` or `{client_id, template: {name,
//!   language, parameters}}`: sends a text (window open) or an approved
//!   template (any time), once per `client_id`.
//! - `GET /api/live/chats/{chat_key}/templates[?record=<module>/<id>]`: the
//!   approved templates; with `record`, `parameters` is the list of the
//!   body's placeholders, each with a value from the record's fields (read
//!   with the user's own token) where names match.
//! - `GET /api/live/numbers/{phone_number_id}/templates[?record=…]`: the
//!   same for a business number of the workspace (a new chat).
//! - `POST /api/live/zoho/session` `{code}` or `{nonce}`: Zoho's sign-in
//!   popup's one-time code (or, polled, the widget's nonce) → a live-chat
//!   session, once; `202 {"pending": true}` while the popup has not come
//!   back from Zoho.

use lambda_http::Request;
use serde::Deserialize;
use serde_json::json;

use super::http::{ApiError, HttpResponse, json_response, no_route, query_params};
use crate::crm::CrmError;
use crate::deps::Deps;
use crate::error::WorkError;
use crate::livechat::LiveSession;
use crate::livechat::pipedrive_token::{self, TokenError};
use crate::livechat::send::{SendRefusal, SendRequest};
use crate::livechat::view::{ViewError, record_chats};
use crate::livechat::zoho_signin::{self, Redeemed, SessionAsk};
use crate::model::{CrmKind, RecordRef};

/// Messages per chat in one answer.
const PAGE_MESSAGES: usize = 50;

pub async fn route(deps: &Deps, req: &Request, rest: &[&str]) -> Result<HttpResponse, ApiError> {
    match (req.method().as_str(), rest) {
        ("POST", ["pipedrive", "session"]) => pipedrive_session(deps, req).await,
        ("POST", ["zoho", "session"]) => zoho_session(deps, req).await,
        ("GET", ["chats"]) => chats(deps, req).await,
        ("POST", ["chats", chat_key, "messages"]) => {
            let session = session(deps, req).await?;
            let asked: SendRequest = serde_json::from_slice(req.body().as_ref()).map_err(|e| {
                ApiError::BadRequest(format!(
                    "expected {{\"client_id\": \"…\", \"text\": \"…\"}}: {e}"
                ))
            })?;
            let sent = crate::livechat::send::send(deps, &session, chat_key, &asked)
                .await
                .map_err(send_refusal)?;
            Ok(json_response(if sent.duplicate { 200 } else { 201 }, &sent))
        }
        ("GET", ["chats", chat_key, "templates"]) => {
            let session = session(deps, req).await?;
            let templates = crate::livechat::templates::chat_templates(deps, &session, chat_key)
                .await
                .map_err(send_refusal)?;
            templates_answer(deps, req, &session, templates).await
        }
        ("GET", ["numbers", phone_number_id, "templates"]) => {
            let session = session(deps, req).await?;
            let templates =
                crate::livechat::templates::number_templates(deps, &session, phone_number_id)
                    .await
                    .map_err(send_refusal)?
                    .ok_or_else(|| {
                        ApiError::NotFound("the workspace has no such WhatsApp number".into())
                    })?;
            templates_answer(deps, req, &session, templates).await
        }
        (
            _,
            ["pipedrive" | "zoho", "session"]
            | ["chats"]
            | ["chats", _, "messages" | "templates"]
            | ["numbers", _, "templates"],
        ) => Err(ApiError::MethodNotAllowed),
        _ => Err(no_route(req)),
    }
}

#[derive(Deserialize)]
struct SessionRequest {
    token: String,
}

async fn pipedrive_session(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let asked: SessionRequest = serde_json::from_slice(req.body().as_ref())
        .map_err(|e| ApiError::BadRequest(format!("expected {{\"token\": \"…\"}}: {e}")))?;
    let secret = deps
        .secrets
        .pipedrive_client()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .client_secret
        .clone();
    let claims = pipedrive_token::verify(&asked.token, &secret).map_err(|e| match e {
        TokenError::Expired => ApiError::Unauthorized(e.to_string()),
        TokenError::Invalid(_) => ApiError::Unauthorized(e.to_string()),
    })?;
    let connection = crate::livechat::session::personal_connection_of(
        deps,
        CrmKind::Pipedrive,
        &claims.company_id,
        &claims.user_id,
    )
    .await?;
    let Some(connection) = connection else {
        return Ok(not_connected(CrmKind::Pipedrive));
    };
    let answer = crate::livechat::session::start(deps, &connection, None).await?;
    Ok(json_response(200, &answer))
}

/// 403 `not_connected`: live chat shows chats only to users with their own
/// connection to the CRM, made at its start route.
fn not_connected(crm: CrmKind) -> HttpResponse {
    let name = crm.display_name();
    json_response(
        403,
        &json!({ "error": {
            "code": "not_connected",
            "message": format!("Connect {name}: live chat shows chats to users with their own {name} connection"),
            "connect": format!("/oauth/{}/start", crm.as_str()),
        }}),
    )
}

/// `POST /api/live/zoho/session` `{code}` or `{nonce}`.
async fn zoho_session(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let asked: SessionAsk = serde_json::from_slice(req.body().as_ref()).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected {{\"code\": \"…\"}} or {{\"nonce\": \"…\"}}: {e}"
        ))
    })?;
    match zoho_signin::redeem(deps, &asked)
        .await
        .map_err(super::oauth::sign_in_refusal)?
    {
        Redeemed::Pending => Ok(json_response(202, &json!({ "pending": true }))),
        Redeemed::NotConnected { .. } => Ok(not_connected(CrmKind::Zoho)),
        Redeemed::Session(answer) => Ok(json_response(200, &answer)),
    }
}

fn send_refusal(e: SendRefusal) -> ApiError {
    match e {
        SendRefusal::Invalid(m) => ApiError::BadRequest(m),
        SendRefusal::NoSuchChat => ApiError::NotFound(e.to_string()),
        SendRefusal::ReadOnly => ApiError::Forbidden(e.to_string()),
        SendRefusal::WindowClosed | SendRefusal::InProgress | SendRefusal::NoToken => {
            ApiError::Conflict(e.to_string())
        }
        SendRefusal::WhatsApp(refused) if refused.transient => {
            ApiError::WhatsAppUnavailable(refused.to_string())
        }
        SendRefusal::WhatsApp(refused) => ApiError::Conflict(refused.to_string()),
        SendRefusal::Store(e) => ApiError::Internal(e.to_string()),
    }
}

/// The session the request carries.
async fn session(deps: &Deps, req: &Request) -> Result<LiveSession, ApiError> {
    let sealed = req
        .headers()
        .get("x-live-session")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized("no live-chat session (X-Live-Session)".into()))?;
    let keys = deps
        .secrets
        .keys()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    LiveSession::open(sealed, keys, deps.clock.now()).ok_or_else(|| {
        ApiError::Unauthorized("the live-chat session is not valid or has expired".into())
    })
}

async fn chats(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let session = session(deps, req).await?;
    let record = record_ref(
        &session,
        &query_params(req).remove("record").unwrap_or_default(),
    )?;
    match record_chats(deps, &session, &record, PAGE_MESSAGES).await {
        Ok(view) => Ok(json_response(200, &view)),
        Err(e) => view_refusal(e),
    }
}

/// `{"templates": […]}`: as they are, or with `?record=` prefilled from
/// that record.
async fn templates_answer(
    deps: &Deps,
    req: &Request,
    session: &LiveSession,
    templates: Vec<crate::business_numbers::Template>,
) -> Result<HttpResponse, ApiError> {
    let Some(record) = query_params(req).remove("record") else {
        return Ok(json_response(200, &json!({ "templates": templates })));
    };
    let record = record_ref(session, &record)?;
    match crate::livechat::templates::prefilled(deps, session, &record, templates).await {
        Ok(prefilled) => Ok(json_response(200, &json!({ "templates": prefilled }))),
        Err(e) => view_refusal(e),
    }
}

/// `<module>/<id>` in the session's CRM.
fn record_ref(session: &LiveSession, record: &str) -> Result<RecordRef, ApiError> {
    record
        .split_once('/')
        .filter(|(module, id)| !module.is_empty() && !id.is_empty())
        .map(|(module, id)| RecordRef::new(session.crm, module, id))
        .ok_or_else(|| ApiError::BadRequest("`record` must be <module>/<id>".into()))
}

/// Why a record's read shows nothing.
fn view_refusal(e: ViewError) -> Result<HttpResponse, ApiError> {
    match e {
        ViewError::NotConnected(crm) => Ok(json_response(
            403,
            &json!({ "error": {
                "code": "not_connected",
                "message": format!("Connect {crm}: live chat needs your own connection"),
            }}),
        )),
        e @ ViewError::NotVisible => Err(ApiError::NotFound(e.to_string())),
        // The user's grant turned out revoked during this very read (the
        // connection is marked broken now): as for one known broken.
        ViewError::Work(WorkError::Crm(CrmError::ConnectionBroken(_))) => Ok(json_response(
            403,
            &json!({ "error": {
                "code": "not_connected",
                "message": "Your CRM connection no longer works: connect again to use live chat",
            }}),
        )),
        ViewError::Work(e) => Err(ApiError::BadGateway(format!(
            "the CRM could not answer: {e}"
        ))),
    }
}
