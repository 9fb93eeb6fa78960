//! What every Graph endpoint shares: tokens, the request log, Graph's error
//! envelope and path checks.

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::{Store, random_alnum};
use crate::{Endpoint, RecordedRequest, Shared};

pub(crate) fn parse_query(raw: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The query as recorded: an `access_token` parameter's value is dropped.
pub(crate) fn recorded_query(raw: Option<&str>) -> String {
    let raw = raw.unwrap_or("");
    if !raw.contains("access_token") {
        return raw.to_owned();
    }
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if k == "access_token" {
            out.append_pair(&k, "REDACTED");
        } else {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Graph takes the token from the header or the `access_token` parameter.
pub(crate) fn token<'a>(
    headers: &'a HeaderMap,
    query: &'a HashMap<String, String>,
) -> Option<&'a str> {
    bearer(headers).or_else(|| query.get("access_token").map(String::as_str))
}

pub(crate) fn record(
    st: &mut Store,
    endpoint: Endpoint,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    status: StatusCode,
) {
    st.record(RecordedRequest {
        endpoint,
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: recorded_query(uri.query()),
        status: status.as_u16(),
        bearer_present: bearer(headers).is_some(),
    });
}

pub(crate) fn json_response(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// Graph's error envelope.
pub(crate) fn graph_error(
    status: u16,
    code: i64,
    error_type: &str,
    message: &str,
    subcode: Option<i64>,
) -> Response {
    let mut error = json!({
        "message": message,
        "type": error_type,
        "code": code,
        "fbtrace_id": random_alnum(23),
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    json_response(status, json!({ "error": error }))
}

/// A Cloud API error in Graph's envelope, with its HTTP status.
pub(crate) fn cloud_error(error: &crate::errors::CloudError) -> Response {
    let mut envelope = error.envelope();
    envelope["fbtrace_id"] = json!(random_alnum(23));
    json_response(error.http_status(), json!({ "error": envelope }))
}

pub(crate) fn invalid_token() -> Response {
    const MESSAGE: &str = "Invalid OAuth access token - Cannot parse access token";
    let mut response = graph_error(401, 190, "OAuthException", MESSAGE, None);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "OAuth \"Facebook Platform\" \"invalid_token\" \"Invalid OAuth access token - Cannot parse access token\"",
        ),
    );
    response
}

/// What Graph answers for an id it cannot load: HTTP 400, code 100,
/// subcode 33 (as seen in Graph answers for unknown object ids).
pub(crate) fn unknown_object(id: &str) -> Response {
    unknown_object_for(&Method::GET, id)
}

/// [`unknown_object`] for a request of another method (`Unsupported post
/// request. …`).
pub(crate) fn unknown_object_for(method: &Method, id: &str) -> Response {
    graph_error(
        400,
        100,
        "GraphMethodException",
        &format!(
            "Unsupported {} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
            method.as_str().to_ascii_lowercase()
        ),
        Some(33),
    )
}

/// The reference only says an expired download URL answers 404.
pub(crate) fn expired_url() -> Response {
    (StatusCode::NOT_FOUND, "URL signature expired").into_response()
}

pub(crate) fn fault(endpoint: Endpoint, status: u16) -> Response {
    match status {
        404 if endpoint == Endpoint::Download => expired_url(),
        401 => invalid_token(),
        429 => graph_error(
            429,
            4,
            "OAuthException",
            "(#4) Application request limit reached",
            None,
        ),
        503 => graph_error(
            503,
            2,
            "OAuthException",
            "(#2) Service temporarily unavailable",
            None,
        ),
        s => graph_error(s, 1, "OAuthException", "An unknown error occurred", None),
    }
}

pub(crate) fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        })
}

pub(crate) fn unknown_path(
    sh: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let response = graph_error(
        400,
        2500,
        "OAuthException",
        &format!("Unknown path components: {}", uri.path()),
        None,
    );
    record(
        &mut sh.store(),
        Endpoint::Unknown,
        method,
        uri,
        headers,
        response.status(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_look_like_graph_versions() {
        assert!(is_version("v25.0"));
        assert!(is_version("v3.2"));
        assert!(!is_version("v25"));
        assert!(!is_version("25.0"));
        assert!(!is_version("vX.0"));
        assert!(!is_version("whatsapp_business"));
    }

    #[test]
    fn recorded_query_drops_the_token() {
        assert_eq!(recorded_query(Some("a=1")), "a=1");
        assert_eq!(
            recorded_query(Some("access_token=secret&phone_number_id=9")),
            "access_token=REDACTED&phone_number_id=9"
        );
    }
}
