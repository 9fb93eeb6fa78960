//! The accounts server: OAuth consent (answered at once with a redirect),
//! the token endpoint, revocation and `serverinfo`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, is_form, parse_query};

fn html_error(msg: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<html><body><h1>Invalid request</h1><p>{msg}</p></body></html>"),
    )
        .into_response()
}

pub(super) async fn authorize(State(sh): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let p = parse_query(q.as_deref());
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    for k in ["response_type", "client_id", "redirect_uri", "scope"] {
        if get(k).is_empty() {
            return html_error(&format!("missing parameter {k}"));
        }
    }
    if get("response_type") != "code" {
        return html_error("unsupported response_type");
    }
    let mut st = sh.store();
    if !st.known_client(get("client_id")) {
        return html_error("Invalid Client");
    }
    if !st.redirect_allowed(get("redirect_uri")) {
        return html_error("Invalid Redirect Uri");
    }
    let Ok(mut url) = url::Url::parse(get("redirect_uri")) else {
        return html_error("Invalid Redirect Uri");
    };
    let challenge = match (p.get("code_challenge"), get("code_challenge_method")) {
        (None, _) => None,
        (Some(c), "S256") => Some(c.clone()),
        (Some(_), _) => return html_error("unsupported code_challenge_method"),
    };
    let code = st.issue_code(
        get("client_id"),
        get("redirect_uri"),
        get("access_type") == "offline",
        challenge,
        crate::scopes::parse(get("scope")),
    );
    {
        let mut qp = url.query_pairs_mut();
        if let Some(state) = p.get("state") {
            qp.append_pair("state", state);
        }
        qp.append_pair("code", &code);
        qp.append_pair("location", &st.cfg.location);
        qp.append_pair("accounts-server", &st.base_url);
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

pub(super) async fn token(
    State(sh): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    // Zoho accepts the parameters in the query string or a form body.
    let mut p = parse_query(q.as_deref());
    if is_form(&headers) || !body.is_empty() {
        for (k, v) in url::form_urlencoded::parse(&body).into_owned() {
            p.insert(k, v);
        }
    }
    let v = sh.store().token(&p);
    (StatusCode::OK, axum::Json(v)).into_response()
}

pub(super) async fn revoke(
    State(sh): State<AppState>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let mut p = parse_query(q.as_deref());
    for (k, v) in url::form_urlencoded::parse(&body).into_owned() {
        p.insert(k, v);
    }
    if sh.store().revocation_outage {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "failure", "error": "service_unavailable"})),
        )
            .into_response();
    }
    let ok = p.get("token").is_some_and(|t| sh.store().revoke(t));
    if ok {
        (StatusCode::OK, axum::Json(json!({"status": "success"}))).into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status": "failure", "error": "invalid_token"})),
        )
            .into_response()
    }
}

pub(super) async fn serverinfo(State(sh): State<AppState>) -> Response {
    let st = sh.store();
    let loc = st.cfg.location.clone();
    axum::Json(json!({"result": "success", "locations": {loc: st.base_url}})).into_response()
}
