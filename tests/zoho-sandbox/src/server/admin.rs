//! `/__sandbox/...`: inspection and fault hooks over HTTP, for the demo
//! binary (tests use the handle).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AppState, parse_query};

pub(super) async fn records(State(sh): State<AppState>, Path(module): Path<String>) -> Response {
    axum::Json(json!({"data": sh.store().records_json(&module)})).into_response()
}

pub(super) async fn notes(State(sh): State<AppState>) -> Response {
    axum::Json(json!({"data": sh.store().records_json("Notes")})).into_response()
}

pub(super) async fn users(State(sh): State<AppState>) -> Response {
    axum::Json(json!({"users": sh.store().users_json()})).into_response()
}

pub(super) async fn requests(State(sh): State<AppState>) -> Response {
    let list: Vec<Value> = sh
        .store()
        .requests
        .iter()
        .map(|r| {
            json!({"method": r.method, "path": r.path, "query": r.query, "status": r.status,
                   "body": r.body, "response_body": r.response_body})
        })
        .collect();
    axum::Json(json!({"requests": list})).into_response()
}

pub(super) async fn clear_requests(State(sh): State<AppState>) -> Response {
    sh.store().requests.clear();
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn violations(State(sh): State<AppState>) -> Response {
    sandbox_kit::contract::violations_answer(&sh.store().violations)
}

pub(super) async fn expire(State(sh): State<AppState>) -> Response {
    sh.store().expire_access_tokens();
    axum::Json(json!({"status": "success"})).into_response()
}

pub(super) async fn fail_next(State(sh): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let p = parse_query(q.as_deref());
    let n = p.get("n").and_then(|v| v.parse().ok()).unwrap_or(1);
    let status = p.get("status").and_then(|v| v.parse().ok()).unwrap_or(500);
    let code = p
        .get("code")
        .cloned()
        .unwrap_or_else(|| "INTERNAL_ERROR".into());
    sh.store().set_fault(n, status, &code);
    axum::Json(json!({"status": "success"})).into_response()
}
