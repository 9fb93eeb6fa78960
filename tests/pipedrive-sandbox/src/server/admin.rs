//! `/__sandbox/...`: inspection and fault hooks over HTTP, for the demo
//! binary (tests use the handle).

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{AppState, json_response, ok_json, query_pairs};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/__sandbox/requests", get(requests).delete(clear_requests))
        .route("/__sandbox/violations", get(violations))
        .route("/__sandbox/usage", get(usage))
        .route("/__sandbox/expire-tokens", post(expire_tokens))
        .route("/__sandbox/fail-next", post(fail_next))
        .route("/__sandbox/reset-day", post(reset_day))
        .route("/__sandbox/budget", post(budget))
        .route("/__sandbox/authorizing-user", post(authorizing_user))
        .route("/__sandbox/deny-next-authorization", post(deny_next))
        .route("/__sandbox/leads/{id}/convert", post(convert_lead))
        .route("/__sandbox/persons", get(persons))
}

fn param(q: &Option<String>, k: &str) -> Option<String> {
    query_pairs(q.as_deref().unwrap_or(""))
        .into_iter()
        .find(|(name, _)| name == k)
        .map(|(_, v)| v)
}

fn bad(msg: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"success": false, "error": msg}),
    )
}

async fn requests(State(sh): State<AppState>) -> Response {
    let list: Vec<Value> = sh
        .store()
        .requests
        .iter()
        .map(|r| {
            json!({"method": r.method, "path": r.path, "query": r.query, "status": r.status,
                   "token_cost": r.token_cost, "body": r.body, "response_body": r.response_body})
        })
        .collect();
    axum::Json(json!({"requests": list})).into_response()
}

async fn clear_requests(State(sh): State<AppState>) -> Response {
    sh.store().requests.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn violations(State(sh): State<AppState>) -> Response {
    sandbox_kit::contract::violations_answer(&sh.store().violations)
}

async fn usage(State(sh): State<AppState>) -> Response {
    let st = sh.store();
    let home = st.home_company();
    axum::Json(
        json!({"company_id": home, "tokens_used": st.limits.used(home),
        "daily_budget": st.daily_budget(home)}),
    )
    .into_response()
}

async fn expire_tokens(State(sh): State<AppState>) -> Response {
    sh.store().expire_access_tokens();
    ok_json()
}

async fn fail_next(State(sh): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let n = param(&q, "n").and_then(|v| v.parse().ok()).unwrap_or(1);
    let status = param(&q, "status")
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    sh.store().faults.fail = Some((n, status));
    ok_json()
}

async fn reset_day(State(sh): State<AppState>) -> Response {
    sh.store().limits.reset_day();
    ok_json()
}

async fn budget(State(sh): State<AppState>, RawQuery(q): RawQuery) -> Response {
    match param(&q, "tokens").and_then(|v| v.parse().ok()) {
        Some(n) => {
            sh.store().set_daily_budget(n);
            ok_json()
        }
        None => bad("tokens=<n> required"),
    }
}

async fn authorizing_user(State(sh): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let email = param(&q, "email").unwrap_or_default();
    match sh.store().set_authorizing_user(&email) {
        Ok(()) => ok_json(),
        Err(e) => bad(&e.to_string()),
    }
}

async fn deny_next(State(sh): State<AppState>) -> Response {
    sh.store().oauth.deny_next = true;
    ok_json()
}

async fn convert_lead(State(sh): State<AppState>, Path(id): Path<String>) -> Response {
    match sh.store().convert_lead_in_ui(&id) {
        Ok(deal) => axum::Json(json!({"success": true, "deal_id": deal})).into_response(),
        Err(e) => bad(&e.to_string()),
    }
}

async fn persons(State(sh): State<AppState>) -> Response {
    let st = sh.store();
    axum::Json(json!({"persons": st.persons_json(st.home_company())})).into_response()
}
