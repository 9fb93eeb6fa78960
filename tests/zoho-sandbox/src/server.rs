//! HTTP surface: accounts server (`/oauth/...`), CRM API (`/crm/v8/...`) and
//! the sandbox admin endpoints (`/__sandbox/...`).
//!
//! Cross-cutting behaviour (recording, concurrency limit, fault injection,
//! authentication, credits, contract checks) lives in one middleware so the
//! handlers only contain CRM semantics.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Multipart, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

mod accounts;
mod admin;

use crate::contract::{self, ContractViolation};
use crate::faults::{self, Injected};
use crate::store::{self, ApiResponse, error};
use crate::{RecordedRequest, Shared};

type AppState = Arc<Shared>;

/// The authenticated Zoho user a CRM call runs as.
#[derive(Debug, Clone)]
struct Caller(String);

/// Largest request body accepted (attachments are checked against their own
/// configurable limit; this only protects the process).
const MAX_BODY: usize = 110 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    let crm = Router::new()
        .route("/crm/v8/users", get(users))
        .route("/crm/v8/users/{id}", get(user))
        .route("/crm/v8/org", get(org))
        .route("/crm/v8/settings/modules", get(modules))
        .route("/crm/v8/settings/modules/{api_name}", get(module_one))
        .route("/crm/v8/settings/fields", get(fields))
        .route("/crm/v8/{module}/search", get(search))
        .route(
            "/crm/v8/{module}",
            get(list_records)
                .post(create_records)
                .put(update_records_bulk),
        )
        .route("/crm/v8/{module}/{id}", get(get_record).put(update_record))
        .route(
            "/crm/v8/{module}/{id}/Notes",
            get(related_notes).post(create_related_notes),
        )
        .route(
            "/crm/v8/{module}/{id}/Attachments",
            get(list_attachments).post(upload_attachment),
        )
        .route("/crm/v8/{module}/{id}/actions/convert", post(convert));
    let accounts = Router::new()
        .route("/oauth/v2/auth", get(accounts::authorize))
        .route("/oauth/v2/token", post(accounts::token))
        .route("/oauth/v2/token/revoke", post(accounts::revoke))
        .route("/oauth/serverinfo", get(accounts::serverinfo));
    let admin = Router::new()
        .route("/__sandbox/records/{module}", get(admin::records))
        .route("/__sandbox/notes", get(admin::notes))
        .route("/__sandbox/users", get(admin::users))
        .route(
            "/__sandbox/requests",
            get(admin::requests).delete(admin::clear_requests),
        )
        .route("/__sandbox/violations", get(admin::violations))
        .route("/__sandbox/expire-tokens", post(admin::expire))
        .route("/__sandbox/fail-next", post(admin::fail_next))
        .merge(state.faults.routes());
    crm.merge(accounts)
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state)
}

fn to_response(r: ApiResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match r.body {
        Some(b) => (
            status,
            [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
            b.to_string(),
        )
            .into_response(),
        None => status.into_response(),
    }
}

fn parse_query(raw: Option<&str>) -> HashMap<String, String> {
    // form_urlencoded decodes `+` as a space — exactly what Zoho does with an
    // unencoded `+` in a phone number.
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn parse_json(body: &Bytes) -> Result<Value, ApiResponse> {
    serde_json::from_slice(body).map_err(|_| {
        error(
            400,
            "INVALID_DATA",
            "invalid data",
            json!({"api_name": "data", "expected_data_type": "jsonobject"}),
        )
    })
}

struct InFlight(AppState);
impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

async fn observe(State(sh): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    if path.starts_with("/__sandbox/") {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return to_response(error(413, "INVALID_DATA", "invalid data", json!({})));
    };
    let body_json: Option<Value> = if bytes.is_empty() {
        None
    } else if is_form(&parts.headers) {
        let m: serde_json::Map<String, Value> = url::form_urlencoded::parse(&bytes)
            .into_owned()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        Some(Value::Object(m))
    } else {
        serde_json::from_slice(&bytes).ok()
    };
    let op = contract::classify(&method, &path);
    let mut violations: Vec<ContractViolation> = Vec::new();
    let violation = |direction: String, message: String| ContractViolation {
        method: method.clone(),
        path: path.clone(),
        direction,
        message,
    };
    if let (Some(c), Some(op), Some(b)) = (&sh.contract, op, &body_json)
        && is_json(&parts.headers)
        && let Some(msg) = c.check_request(op, b)
    {
        violations.push(violation("request".into(), msg));
    }

    let is_crm = path.starts_with("/crm/");
    let fault = is_crm
        .then(|| sh.faults.draw())
        .flatten()
        .map(|(kind, config)| (kind, faults::injected(kind, &config)));
    if let Some((_, Injected::Delay(wait))) = &fault {
        tokio::time::sleep(*wait).await;
    }
    let mut retry_after = None;
    let mut _guard = None;
    let mut injected = false;
    let early: Option<ApiResponse> = if is_crm {
        let n = sh.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        _guard = Some(InFlight(Arc::clone(&sh)));
        let mut st = sh.store();
        if n > st.max_concurrency {
            Some(error(
                429,
                "TOO_MANY_REQUESTS",
                "concurrency limit exceeded",
                json!({"limit": st.max_concurrency}),
            ))
        } else if let Some((answer, retry)) = faults::early_answer(
            fault.as_ref(),
            &mut st,
            parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        ) {
            injected = true;
            retry_after = retry;
            Some(answer)
        } else if let Some(f) = st.take_fault() {
            injected = true;
            Some(f)
        } else {
            let auth = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            match st.authenticate(auth) {
                None => Some(error(
                    401,
                    "INVALID_TOKEN",
                    "invalid oauth token",
                    json!({}),
                )),
                // A grant without the scope this call needs (§1.8): the
                // user must consent again, a refresh does not help. (A
                // call of no known operation gets its 404/405 instead.)
                Some((_, granted))
                    if op.is_some() && !crate::scopes::allows(&granted, &method, &path) =>
                {
                    Some(error(
                        401,
                        "OAUTH_SCOPE_MISMATCH",
                        "invalid oauth scope to access this URL",
                        json!({}),
                    ))
                }
                Some((uid, _)) => {
                    // Convert Lead costs 5 credits, everything else 1
                    // (the only costs the reference confirms).
                    let cost = if path.ends_with("/actions/convert") {
                        5
                    } else {
                        1
                    };
                    match st.charge(cost) {
                        Err(e) => Some(e),
                        Ok(()) => {
                            parts.extensions.insert(Caller(uid));
                            None
                        }
                    }
                }
            }
        }
    } else {
        None
    };

    let response = match early {
        Some(e) => to_response(e),
        None => {
            let done = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            let lost = sh.store().take_lost_response(&method, &path);
            match lost {
                Some(instead) => {
                    injected = true;
                    to_response(instead)
                }
                None => done,
            }
        }
    };
    let (mut rparts, rbody) = response.into_parts();
    let rbytes = axum::body::to_bytes(rbody, MAX_BODY)
        .await
        .unwrap_or_default();
    let resp_json: Option<Value> = serde_json::from_slice(&rbytes).ok();
    let status = rparts.status.as_u16();
    if is_crm && let (Some(c), Some(rj)) = (&sh.contract, &resp_json) {
        let msg = match op {
            // Injected faults carry test-chosen codes: only the generic
            // error shape applies.
            Some(_) if injected => c.check_generic_error(rj),
            Some(op) => c.check_response(op, status, rj),
            None if status >= 400 => c.check_generic_error(rj),
            None => None,
        };
        if let Some(m) = msg {
            violations.push(violation(format!("response {status}"), m));
        }
    }
    {
        let mut st = sh.store();
        for v in &violations {
            tracing::warn!(violation = %v, "Zoho contract violation");
        }
        st.violations.extend(violations);
        // Zoho sends this header once half of the day's credits are used.
        if is_crm
            && let Some(limit) = st.credit_limit
            && st.credits_used * 2 >= limit
            && let Ok(h) = HeaderValue::from_str(&limit.saturating_sub(st.credits_used).to_string())
        {
            rparts.headers.insert("X-API-CREDITS-REMAINING", h);
        }
        if let Some(secs) = retry_after {
            rparts
                .headers
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        st.requests.push(RecordedRequest {
            method,
            path,
            query,
            status,
            body: body_json,
            response_body: resp_json,
        });
    }
    if let Some((_, Injected::Hold(hold))) = &fault {
        // The work is done; the client times out before it hears so.
        tokio::time::sleep(*hold).await;
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

async fn not_found() -> Response {
    to_response(error(
        404,
        "INVALID_URL_PATTERN",
        "Please check if the URL trying to access is a correct one",
        json!({}),
    ))
}

async fn method_not_allowed() -> Response {
    to_response(error(
        405,
        "INVALID_REQUEST_METHOD",
        "The http request method type is not a valid one",
        json!({}),
    ))
}

// ----------------------------------------------------------------------- CRM

async fn users(
    State(sh): State<AppState>,
    Extension(c): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> Response {
    to_response(sh.store().list_users(&c.0, &parse_query(q.as_deref())))
}

async fn user(State(sh): State<AppState>, Path(id): Path<String>) -> Response {
    to_response(sh.store().get_user(&id))
}

async fn org(State(sh): State<AppState>, Extension(c): Extension<Caller>) -> Response {
    to_response(ApiResponse::json(
        200,
        json!({"org": [sh.store().org_json(&c.0)]}),
    ))
}

async fn modules(State(sh): State<AppState>) -> Response {
    to_response(ApiResponse::json(
        200,
        json!({"modules": sh.store().modules_json()}),
    ))
}

async fn module_one(State(sh): State<AppState>, Path(api_name): Path<String>) -> Response {
    let all = sh.store().modules_json();
    match all
        .into_iter()
        .find(|m| m.get("api_name").and_then(Value::as_str) == Some(api_name.as_str()))
    {
        Some(m) => to_response(ApiResponse::json(200, json!({"modules": [m]}))),
        None => to_response(ApiResponse::no_content()),
    }
}

async fn fields(State(sh): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let p = parse_query(q.as_deref());
    let Some(module) = p.get("module").filter(|m| !m.is_empty()) else {
        return to_response(error(
            400,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param_name": "module"}),
        ));
    };
    let st = sh.store();
    // fields.json: an unknown module is `INVALID_MODULE` naming the parameter.
    if !st.is_module(module) {
        return to_response(error(
            400,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            json!({"api_name": "module"}),
        ));
    }
    to_response(ApiResponse::json(
        200,
        json!({"fields": st.fields_of(module)}),
    ))
}

async fn search(
    State(sh): State<AppState>,
    Path(module): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    to_response(sh.store().search(&module, &parse_query(q.as_deref())))
}

async fn list_records(
    State(sh): State<AppState>,
    Path(module): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    to_response(sh.store().list_records(&module, &parse_query(q.as_deref())))
}

async fn create_records(
    State(sh): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(module): Path<String>,
    body: Bytes,
) -> Response {
    let r = match parse_json(&body) {
        Ok(b) => sh.store().create_records(&module, &b, &c.0),
        Err(e) => e,
    };
    to_response(r)
}

async fn update_records_bulk(
    State(sh): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(module): Path<String>,
    body: Bytes,
) -> Response {
    let r = match parse_json(&body) {
        Ok(b) => sh.store().update_records(&module, None, &b, &c.0),
        Err(e) => e,
    };
    to_response(r)
}

async fn get_record(
    State(sh): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((module, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = parse_query(q.as_deref());
    let fields = store::fields_param(&p);
    let st = sh.store();
    // A record the caller's sharing rules hide (reference §12).
    if !st.may_read(&c.0, &module, &id) {
        return to_response(error(
            403,
            "NO_PERMISSION",
            "permission denied",
            json!({"permissions": [format!("Crm_Implied_View_{module}")]}),
        ));
    }
    to_response(st.get_record(&module, &id, fields.as_deref()))
}

async fn update_record(
    State(sh): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((module, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let r = match parse_json(&body) {
        Ok(b) => sh.store().update_records(&module, Some(&id), &b, &c.0),
        Err(e) => e,
    };
    to_response(r)
}

async fn related_notes(
    State(sh): State<AppState>,
    Path((module, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    to_response(
        sh.store()
            .list_notes(Some((&module, &id)), &parse_query(q.as_deref())),
    )
}

async fn create_related_notes(
    State(sh): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((module, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let r = match parse_json(&body) {
        Ok(b) => sh.store().create_notes(Some((&module, &id)), &b, &c.0),
        Err(e) => e,
    };
    to_response(r)
}

async fn list_attachments(
    State(sh): State<AppState>,
    Path((module, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    to_response(
        sh.store()
            .list_attachments(&module, &id, &parse_query(q.as_deref())),
    )
}

async fn upload_attachment(
    State(sh): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((module, id)): Path<(String, String)>,
    mut multipart: Multipart,
) -> Response {
    let mut file: Option<(String, usize)> = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                if field.name() == Some("file") {
                    let name = field.file_name().unwrap_or("file").to_string();
                    match field.bytes().await {
                        Ok(b) => file = Some((name, b.len())),
                        Err(_) => break,
                    }
                }
            }
            Ok(None) => break,
            Err(_) => {
                return to_response(error(
                    400,
                    "INVALID_DATA",
                    "invalid data",
                    json!({"api_name": "file"}),
                ));
            }
        }
    }
    let Some((name, size)) = file else {
        return to_response(error(
            400,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param_name": "file"}),
        ));
    };
    to_response(sh.store().add_attachment(&module, &id, &name, size, &c.0))
}

async fn convert(
    State(sh): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((module, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if module != "Leads" {
        return not_found().await;
    }
    let parsed = if body.is_empty() {
        None
    } else {
        match parse_json(&body) {
            Ok(b) => Some(b),
            Err(e) => return to_response(e),
        }
    };
    to_response(sh.store().convert_lead(&id, parsed.as_ref(), &c.0))
}
