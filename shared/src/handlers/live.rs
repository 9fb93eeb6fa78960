//! `/api/live/…`: what the live-chat page inside a CRM record asks.
//!
//! - `POST /api/live/pipedrive/session` `{token}`: Pipedrive's signed
//!   extension token → a live-chat session for the user whose personal
//!   Pipedrive connection it names (else 403 `not_connected`, with where to
//!   connect).
//! - `GET /api/live/chats?record=<module>/<id>[&chat=<chat_key>]
//!   [&before=<message_id>]` (`X-Live-Session`): the chats the record shows
//!   its user (or that one), messages newest first a page at a time, with
//!   an `ETag` (`If-None-Match` → 304: see `crate::livechat::read` for why
//!   the page polls).
//! - `GET /api/live/chats/{chat_key}/media/{message_id}`: a media message's
//!   file, as WhatsApp has it (413 over what an answer can carry).
//! - `POST /api/live/chats/{chat_key}/read` `{message_id}`: marks the
//!   customer's messages read up to that one.
//! - `POST /api/live/chats/{chat_key}/messages` (`X-Live-Session`)
//!   `{client_id, text, reply_to?}` or `{client_id, template: {name,
//!   language, parameters}}`: sends a text (window open) or an approved
//!   template (any time), once per `client_id`; also `{client_id,
//!   reaction: {message_id, emoji}}` and `{client_id, media: {kind,
//!   file_name, mime_type, data_base64, caption?}}` (window open).
//! - `POST /api/live/chats` `{client_id, record, contact, phone_number_id,
//!   template}`: starts a chat from a record with a template (201
//!   `{chat_key, message_id}`).
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

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;

use super::http::{ApiError, HttpResponse, json_response, no_route, query_params};
use crate::crm::CrmError;
use crate::deps::Deps;
use crate::error::WorkError;
use crate::livechat::LiveSession;
use crate::livechat::pipedrive_token::{self, TokenError};
use crate::livechat::read::{self, ReadRefusal};
use crate::livechat::send::{SendRefusal, SendRequest};
use crate::livechat::start::{StartRefusal, StartRequest};
use crate::livechat::view::{Paging, ViewError, record_chats_page};
use crate::livechat::zoho_signin::{self, Redeemed, SessionAsk};
use crate::model::{CrmKind, RecordRef};

/// Messages per chat in one answer.
const PAGE_MESSAGES: usize = 50;

pub async fn route(deps: &Deps, req: &Request, rest: &[&str]) -> Result<HttpResponse, ApiError> {
    match (req.method().as_str(), rest) {
        ("POST", ["pipedrive", "session"]) => pipedrive_session(deps, req).await,
        ("POST", ["zoho", "session"]) => zoho_session(deps, req).await,
        ("GET", ["chats"]) => chats(deps, req).await,
        ("POST", ["chats"]) => start_chat(deps, req).await,
        ("POST", ["chats", chat_key, "messages"]) => {
            let session = session(deps, req).await?;
            let asked: SendRequest = serde_json::from_slice(req.body().as_ref()).map_err(|e| {
                ApiError::BadRequest(format!(
                    "expected {{\"client_id\": \"…\"}} and one of `text`, `template`, `reaction`, `media`: {e}"
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
        ("GET", ["chats", chat_key, "media", message_id]) => {
            media(deps, req, chat_key, message_id).await
        }
        ("POST", ["chats", chat_key, "read"]) => mark_read(deps, req, chat_key).await,
        (_, ["chats", _, "read"]) => Err(ApiError::MethodNotAllowed("POST")),
        (_, ["chats", _, "media", _]) => Err(ApiError::MethodNotAllowed("GET")),
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
        (_, ["pipedrive" | "zoho", "session"] | ["chats", _, "messages"]) => {
            Err(ApiError::MethodNotAllowed("POST"))
        }
        (_, ["chats"]) => Err(ApiError::MethodNotAllowed("GET, POST")),
        (_, ["chats", _, "templates"] | ["numbers", _, "templates"]) => {
            Err(ApiError::MethodNotAllowed("GET"))
        }
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
        .await?
        .extension_token_secret()
        .to_owned();
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

/// `POST /api/live/zoho/session` `{code, nonce}`.
async fn zoho_session(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let asked: SessionAsk = serde_json::from_slice(req.body().as_ref()).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected {{\"code\": \"…\", \"nonce\": \"…\"}}: {e}"
        ))
    })?;
    match zoho_signin::redeem(deps, &asked)
        .await
        .map_err(super::oauth::sign_in_refusal)?
    {
        Redeemed::NotConnected { .. } => Ok(not_connected(CrmKind::Zoho)),
        Redeemed::Session(answer) => Ok(json_response(200, &answer)),
    }
}

fn send_refusal(e: SendRefusal) -> ApiError {
    match e {
        SendRefusal::Invalid(m) => ApiError::BadRequest(m),
        SendRefusal::NoSuchChat | SendRefusal::UnknownTarget => ApiError::NotFound(e.to_string()),
        SendRefusal::TooLarge(m) => ApiError::PayloadTooLarge(m),
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

async fn start_chat(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let session = session(deps, req).await?;
    let asked: StartRequest = serde_json::from_slice(req.body().as_ref()).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected {{\"client_id\", \"record\", \"contact\", \"phone_number_id\", \"template\": {{\"name\", \"language\", \"parameters\"}}}}: {e}"
        ))
    })?;
    match crate::livechat::start::start(deps, &session, &asked).await {
        Ok(started) => Ok(json_response(
            if started.duplicate { 200 } else { 201 },
            &started,
        )),
        Err(StartRefusal::Send(e)) => Err(send_refusal(e)),
        Err(StartRefusal::Record(e)) => view_refusal(e),
        Err(e @ StartRefusal::NoSuchNumber) => Err(ApiError::NotFound(e.to_string())),
        Err(e) => Err(ApiError::BadRequest(e.to_string())),
    }
}

/// A record the user's own CRM token cannot read, as the page is told.
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
        e @ ViewError::NoSuchMessage => Err(ApiError::NotFound(e.to_string())),
        e @ ViewError::WorkspaceDeleted => Err(ApiError::Unauthorized(e.to_string())),
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

/// The session the request carries.
async fn session(deps: &Deps, req: &Request) -> Result<LiveSession, ApiError> {
    let sealed = req
        .headers()
        .get("x-live-session")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized("no live-chat session (X-Live-Session)".into()))?;
    let keys = deps.secrets.keys().await?;
    LiveSession::open(sealed, keys, deps.clock.now()).ok_or_else(|| {
        ApiError::Unauthorized("the live-chat session is not valid or has expired".into())
    })
}

async fn chats(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let session = session(deps, req).await?;
    let mut params = query_params(req);
    let paging = Paging {
        limit: PAGE_MESSAGES,
        before: params.remove("before").filter(|b| !b.is_empty()),
        chat: params.remove("chat").filter(|c| !c.is_empty()),
    };
    let record = record_ref(&session, &params.remove("record").unwrap_or_default())?;
    let pass = req
        .headers()
        .get("x-live-record-pass")
        .and_then(|v| v.to_str().ok());
    match record_chats_page(deps, &session, &record, &paging, pass).await {
        Ok(view) => Ok(unless_unchanged(req, &view)),
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

/// The answer as JSON with its `ETag`, or `304` without a body when the
/// page's `If-None-Match` names it (the page has this answer already).
fn unless_unchanged(req: &Request, answer: &impl serde::Serialize) -> HttpResponse {
    let body = serde_json::to_string(answer).unwrap_or_else(|_| "{}".to_owned());
    let tag = read::etag(&body);
    let known = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok());
    let builder = Response::builder()
        .header("etag", &tag)
        // Kept, but asked again each time: the poll is the change check.
        .header("cache-control", "private, no-cache");
    let response = if read::unchanged(known, &tag) {
        builder.status(304).body(Body::Empty)
    } else {
        builder
            .status(200)
            .header("content-type", "application/json")
            .body(Body::Text(body))
    };
    response.unwrap_or_else(|_| Response::new(Body::Empty))
}

/// `GET /api/live/chats/{chat_key}/media/{message_id}`: the file's bytes
/// (base64 through API Gateway, as lambda_http sends a binary body).
async fn media(
    deps: &Deps,
    req: &Request,
    chat_key: &str,
    message_id: &str,
) -> Result<HttpResponse, ApiError> {
    let session = session(deps, req).await?;
    let file = match read::media_preview(deps, &session, chat_key, message_id).await {
        Ok(file) => file,
        Err(e) => return read_refusal(e),
    };
    let name: String = url::form_urlencoded::byte_serialize(file.file_name.as_bytes()).collect();
    Response::builder()
        .status(200)
        .header("content-type", &file.mime_type)
        // Shown by the page, never run: a document is no page of ours.
        .header("x-content-type-options", "nosniff")
        .header("content-security-policy", "sandbox; default-src 'none'")
        .header(
            "content-disposition",
            format!("inline; filename*=UTF-8''{name}"),
        )
        .header("cache-control", "private, max-age=300")
        .body(Body::Binary(file.bytes))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[derive(Deserialize)]
struct MarkReadRequest {
    message_id: String,
}

/// `POST /api/live/chats/{chat_key}/read` `{message_id}`.
async fn mark_read(deps: &Deps, req: &Request, chat_key: &str) -> Result<HttpResponse, ApiError> {
    let session = session(deps, req).await?;
    let asked: MarkReadRequest = serde_json::from_slice(req.body().as_ref())
        .map_err(|e| ApiError::BadRequest(format!("expected {{\"message_id\": \"…\"}}: {e}")))?;
    match read::mark_read(deps, &session, chat_key, &asked.message_id).await {
        Ok(marked) => Ok(json_response(200, &marked)),
        Err(e) => read_refusal(e),
    }
}

/// A refusal of the reading side as an answer: 413 and 410 (a file too
/// large to preview, or gone from WhatsApp) say so in words of their own.
fn read_refusal(e: ReadRefusal) -> Result<HttpResponse, ApiError> {
    let (status, code) = match &e {
        ReadRefusal::TooLarge { .. } => (413, "payload_too_large"),
        ReadRefusal::Gone => (410, "gone"),
        ReadRefusal::NotFound | ReadRefusal::NoFile => {
            return Err(ApiError::NotFound(e.to_string()));
        }
        ReadRefusal::NotInbound => return Err(ApiError::BadRequest(e.to_string())),
        ReadRefusal::NotAUser => return Err(ApiError::Forbidden(e.to_string())),
        ReadRefusal::NoToken | ReadRefusal::TokenRefused => {
            return Err(ApiError::Conflict(e.to_string()));
        }
        ReadRefusal::WhatsApp(refused) if !refused.transient => {
            return Err(ApiError::Conflict(e.to_string()));
        }
        ReadRefusal::WhatsApp(_) | ReadRefusal::Media(_) => {
            return Err(ApiError::WhatsAppUnavailable(e.to_string()));
        }
        ReadRefusal::Store(_) => return Err(ApiError::Internal(e.to_string())),
    };
    tracing::info!(status, code, message = %e, "request refused");
    Ok(json_response(
        status,
        &json!({ "error": { "code": code, "message": e.to_string() } }),
    ))
}
