//! Small helpers shared by the HTTP handlers: JSON answers, typed errors,
//! query strings, bearer authentication.

use std::collections::HashMap;

use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::crypto::hash_token;
use crate::deps::Deps;
use crate::error::{SecretsError, StoreError};
use crate::model::{User, chat_key_for_logs};

pub type HttpResponse = Response<Body>;

/// A refusal the caller can act on, or an internal fault (logged, not shown).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The path exists, not with this method: the ones it has, as the
    /// `Allow` header lists them (RFC 9110 §15.5.6).
    #[error("method not allowed; this path takes {0}")]
    MethodNotAllowed(&'static str),
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// Something to send that is over a limit: the message names it.
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    BadGateway(String),
    /// The WhatsApp Cloud API could not answer a check we need.
    #[error("{0}")]
    WhatsAppUnavailable(String),
    /// A sync setting that cannot be used; names the setting.
    #[error(transparent)]
    InvalidSetting(#[from] crate::settings::SettingError),
    /// A change that was made only in part: the message says what stands
    /// and what to retry (the fault behind it is logged where it happened).
    #[error("{0}")]
    Unfinished(String),
    /// Something this deployment cannot do yet (syncing to Pipedrive).
    #[error("{0}")]
    NotImplemented(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Self::BadRequest(_) => (400, "bad_request"),
            Self::Unauthorized(_) => (401, "unauthorized"),
            Self::Forbidden(_) => (403, "forbidden"),
            Self::NotFound(_) => (404, "not_found"),
            Self::MethodNotAllowed(_) => (405, "method_not_allowed"),
            Self::Conflict(_) => (409, "conflict"),
            Self::TooLarge(_) | Self::PayloadTooLarge(_) => (413, "payload_too_large"),
            Self::BadGateway(_) => (502, "crm_error"),
            Self::WhatsAppUnavailable(_) => (502, "whatsapp_error"),
            Self::InvalidSetting(_) => (422, "invalid_setting"),
            Self::Unfinished(_) => (500, "unfinished"),
            Self::Internal(_) => (500, "internal_error"),
            Self::NotImplemented(_) => (501, "not_implemented"),
        }
    }

    /// What logs say about the error: an internal fault's detail (which
    /// the caller is not shown), else the message.
    pub fn detail(&self) -> String {
        match self {
            Self::Internal(detail) => detail.clone(),
            other => other.to_string(),
        }
    }

    pub fn into_response(self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        if let Self::Internal(_) = &self {
            tracing::error!(error = %self.detail(), "request failed");
        } else {
            tracing::info!(status, code, message = %self, "request refused");
        }
        let mut error = json!({ "code": code, "message": self.to_string() });
        if let Self::InvalidSetting(invalid) = &self {
            error["setting"] = json!(invalid.setting);
        }
        let mut response = json_response(status, &json!({ "error": error }));
        if let Self::MethodNotAllowed(allowed) = self
            && let Ok(value) = http::HeaderValue::from_str(allowed)
        {
            response.headers_mut().insert(http::header::ALLOW, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<SecretsError> for ApiError {
    fn from(e: SecretsError) -> Self {
        Self::Internal(e.to_string())
    }
}

pub fn json_response(status: u16, value: &impl Serialize) -> HttpResponse {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

pub fn text_response(status: u16, content_type: &str, body: impl Into<String>) -> HttpResponse {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Body::Text(body.into()))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// Query parameters from the raw query string: names with dots
/// (`hub.mode`) stay as they are.
pub fn query_params(req: &Request) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// The path's segments, percent-decoded (a chat key carries a `#`).
pub fn path_segments(req: &Request) -> Vec<String> {
    req.uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// The request's path as messages and logs may show it: a chat key in it
/// (`/api/chats/{chat}/…`) names the chat with the contact's number redacted.
pub fn path_for_logs(req: &Request) -> String {
    let mut shown = Vec::new();
    let mut after_chats = false;
    for segment in path_segments(req) {
        shown.push(if after_chats {
            chat_key_for_logs(&segment)
        } else {
            segment.clone()
        });
        after_chats = segment == "chats";
    }
    format!("/{}", shown.join("/"))
}

/// The refusal of a path no handler serves.
pub fn no_route(req: &Request) -> ApiError {
    ApiError::NotFound(format!("no route {}", path_for_logs(req)))
}

pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    serde_json::from_slice(req.body().as_ref())
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid: {e}")))
}

pub fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The workspace user behind the request's bearer token.
pub async fn caller(deps: &Deps, req: &Request) -> Result<User, ApiError> {
    let token = bearer(req).ok_or_else(|| {
        ApiError::Unauthorized("an API token is required (Authorization: Bearer …)".into())
    })?;
    deps.store
        .user_for_token(&hash_token(token))
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the API token is not valid".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str) -> Request {
        lambda_http::http::Request::builder()
            .uri(path)
            .body(Body::Empty)
            .expect("a valid request")
    }

    #[test]
    fn a_method_the_path_lacks_is_answered_with_the_methods_it_has() {
        let refused = ApiError::MethodNotAllowed("GET, PUT").into_response();
        assert_eq!(refused.status(), 405);
        assert_eq!(refused.headers()[http::header::ALLOW], "GET, PUT");
        let other = ApiError::NotFound("no".into()).into_response();
        assert!(other.headers().get(http::header::ALLOW).is_none());
    }

    #[test]
    fn unknown_paths_name_chats_without_the_contacts_number() {
        let refusal = no_route(&request(
            "/api/chats/170000000000001%23447700900123/nothing-here",
        ));
        assert_eq!(
            refusal.to_string(),
            "no route /api/chats/170000000000001#+44********23/nothing-here"
        );
        assert_eq!(
            path_for_logs(&request("/api/users/u1")),
            "/api/users/u1",
            "other paths as they are"
        );
    }
}
