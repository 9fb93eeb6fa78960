//! The OAuth server's endpoints.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, content_type, json_response, query_pairs};

fn page(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!(
            "<!doctype html><html><body><h1>Pipedrive sandbox</h1><p>{message}</p></body></html>"
        ),
    )
        .into_response()
}

/// `GET /oauth/authorize`: the user "logs in and approves" at once, so the
/// answer is the redirect to the callback (or the denial).
pub async fn authorize(State(sh): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let p: HashMap<String, String> = query_pairs(q.as_deref().unwrap_or(""))
        .into_iter()
        .collect();
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let mut st = sh.store();
    if !st.known_client(get("client_id")) {
        return page(StatusCode::BAD_REQUEST, "Invalid client: client is invalid");
    }
    let Ok(mut url) = url::Url::parse(get("redirect_uri")) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid request: redirect_uri is not a valid URI",
        );
    };
    if !st.redirect_allowed(get("redirect_uri")) {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid request: redirect_uri is invalid",
        );
    }
    let denied = std::mem::take(&mut st.oauth.deny_next);
    {
        let mut qp = url.query_pairs_mut();
        if denied {
            qp.append_pair("error", "user_denied");
        } else {
            let code = st.issue_code(get("redirect_uri"));
            qp.append_pair("code", &code);
        }
        if let Some(state) = p.get("state") {
            qp.append_pair("state", state);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

fn form_of(body: &Bytes) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// `POST /oauth/token` and `/oauth/token/`.
pub async fn token(State(sh): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = sh.store().token(
        content_type(&headers),
        authorization(&headers),
        &form_of(&body),
    );
    match result {
        Ok(v) => json_response(StatusCode::OK, v),
        Err(e) => json_response(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.body(),
        ),
    }
}

/// `POST /oauth/revoke` (RFC 7009): 200 with an empty body.
pub async fn revoke(State(sh): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match sh.store().revoke(authorization(&headers), &form_of(&body)) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => json_response(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.body(),
        ),
    }
}
