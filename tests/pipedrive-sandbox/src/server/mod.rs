//! HTTP surface: the OAuth server (`/oauth/...`), the API (`/v1/...`,
//! `/api/v1/...`, `/api/v2/...`) and the sandbox's admin endpoints
//! (`/__sandbox/...`).
//!
//! The `observe` middleware records every request (admin calls excluded)
//! and checks it and its answer against the OpenAPI files; the API handler
//! (`api.rs`) does authentication, scopes, rate limits and fault injection
//! before dispatching to the store.

mod admin;
mod api;
mod faults;
mod oauth;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::contract::{self, Body as CheckedBody, ContractViolation};
use crate::store::{Reply, ReplyBody, error_body};
use crate::{RecordedRequest, Shared};

pub(crate) type AppState = Arc<Shared>;

pub use api::implemented;

/// What the API handler tells the recorder: tokens charged and, for
/// multipart uploads, the body as the checker and the record see it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    pub token_cost: u64,
    pub body: Option<CheckedBody>,
    /// An injected time-out: the answer is held this long after it is
    /// recorded (the client has given up by then).
    pub hold: Option<std::time::Duration>,
}

pub fn router(state: AppState, max_body: usize) -> Router {
    let oauth = Router::new()
        .route("/oauth/authorize", get(oauth::authorize))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/token/", post(oauth::token))
        .route("/oauth/revoke", post(oauth::revoke));
    oauth
        .merge(admin::routes())
        .merge(state.faults.routes())
        .fallback(api::api)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

pub(crate) fn to_response(r: Reply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match r.body {
        ReplyBody::Json(b) => (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            b.to_string(),
        )
            .into_response(),
        ReplyBody::Bytes {
            content_type,
            bytes,
        } => (status, [(header::CONTENT_TYPE, content_type)], bytes).into_response(),
    }
}

pub(crate) fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

pub(crate) fn query_pairs(raw: &str) -> Vec<(String, String)> {
    // form_urlencoded decodes `+` as a space, as Pipedrive's servers do with
    // an unencoded `+` in a phone number.
    url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect()
}

async fn observe(State(sh): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    if path.starts_with("/__sandbox/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, sh.max_body).await else {
        let r = Reply::json(413, error_body("Request body is too large"));
        return to_response(r);
    };
    let checked = contract::classify_body(content_type(&parts.headers).unwrap_or(""), &bytes);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (rparts, rbody) = response.into_parts();
    let rbytes = axum::body::to_bytes(rbody, usize::MAX)
        .await
        .unwrap_or_default();
    let resp_json: Option<Value> = serde_json::from_slice(&rbytes).ok();
    let status = rparts.status.as_u16();
    let observed = rparts
        .extensions
        .get::<Observed>()
        .cloned()
        .unwrap_or_default();
    let checked = observed.body.unwrap_or(checked);

    let mut violations = Vec::new();
    if sh.contract_checks
        && let Ok(spec) = crate::spec::spec()
        && let Some(m) = spec.find(&method, &path)
    {
        let v = |direction: String, message: String| ContractViolation {
            method: method.clone(),
            path: path.clone(),
            direction,
            message,
        };
        for p in contract::check_parameters(&m, &query_pairs(&query)) {
            violations.push(v("request".into(), p));
        }
        if let Some(msg) = contract::check_request_body(m.op, &checked) {
            violations.push(v("request".into(), msg));
        }
        let response_msg = if m.op.template == "/oauth/authorize" || (300..400).contains(&status) {
            // The consent page is replaced by an immediate redirect.
            None
        } else if m.op.is_oauth() && status >= 400 {
            check_oauth_error(resp_json.as_ref())
        } else {
            contract::check_response(m.op, status, resp_json.as_ref())
        };
        if let Some(msg) = response_msg {
            violations.push(v(format!("response {status}"), msg));
        }
    }
    {
        let mut st = sh.store();
        for v in &violations {
            tracing::warn!(violation = %v, "Pipedrive contract violation");
        }
        st.violations.extend(violations);
        st.requests.push(RecordedRequest {
            method,
            path,
            query,
            body: checked.recorded(),
            token_cost: observed.token_cost,
            status,
            response_body: resp_json,
        });
    }
    if let Some(hold) = observed.hold {
        tokio::time::sleep(hold).await;
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

/// OAuth errors are RFC 6749 bodies, not API envelopes.
fn check_oauth_error(body: Option<&Value>) -> Option<String> {
    let ok = body
        .and_then(|b| b.get("error"))
        .is_some_and(Value::is_string);
    (!ok).then(|| "OAuth error without an `error` string".to_string())
}

pub(crate) fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

pub(crate) fn ok_json() -> Response {
    json_response(StatusCode::OK, json!({"success": true}))
}
