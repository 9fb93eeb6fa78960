//! The API: routing by the OpenAPI operation table, then fault injection,
//! authentication, scopes and rate limits, then the store's handler.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::faults::{self, Injected};
use super::{AppState, Observed, content_type, query_pairs, to_response};
use crate::contract::Body as CheckedBody;
use crate::spec::{self, Operation, Version};
use crate::store::{
    Answer, AuthFailure, Ctx, Input, RateHeaders, Refusal, Reply, Store, Upload, error,
    status_message,
};

type Handler = fn(&mut Store, &Ctx) -> Answer;

/// The operations the sandbox implements.
fn route(op: &Operation) -> Option<Handler> {
    use Version::{V1, V2};
    let h: Handler = match (op.version, op.method.as_str(), op.template.as_str()) {
        (V1, "GET", "/users/me") => Store::get_users_me,
        (V1, "GET", "/users") => Store::get_users,
        (V1, "GET", "/users/find") => Store::find_users,
        (V1, "GET", "/users/{id}") => Store::get_user,
        (V2, "POST", "/persons") => Store::post_person,
        (V2, "GET", "/persons") => Store::list_persons,
        (V2, "GET", "/persons/{id}") => Store::get_person,
        (V2, "PATCH", "/persons/{id}") => Store::patch_person,
        (V2, "DELETE", "/persons/{id}") => Store::delete_person,
        (V2, "GET", "/persons/search") => Store::search_persons,
        (V2, "GET", "/organizations/{id}") => Store::get_organization,
        (V2, "GET", "/itemSearch/field") => Store::item_search_field,
        (V1, "POST", "/leads") => Store::post_lead,
        (V1, "GET", "/leads") => Store::list_leads,
        (V1, "GET", "/leads/archived") => Store::list_archived_leads,
        (V1, "GET", "/leads/{id}") => Store::get_lead,
        (V1, "PATCH", "/leads/{id}") => Store::patch_lead,
        (V1, "DELETE", "/leads/{id}") => Store::delete_lead,
        (V1, "GET", "/leadLabels") => Store::list_lead_labels,
        (V1, "GET", "/leadSources") => Store::list_lead_sources,
        (V2, "POST", "/leads/{id}/convert/deal") => Store::post_convert_lead,
        (V2, "GET", "/leads/{id}/convert/status/{conversion_id}") => Store::get_conversion_status,
        (V2, "POST", "/deals") => Store::post_deal,
        (V2, "GET", "/deals") => Store::list_deals,
        (V2, "GET", "/deals/{id}") => Store::get_deal,
        (V2, "PATCH", "/deals/{id}") => Store::patch_deal,
        (V2, "DELETE", "/deals/{id}") => Store::delete_deal,
        (V2, "GET", "/pipelines") => Store::list_pipelines,
        (V2, "GET", "/pipelines/{id}") => Store::get_pipeline,
        (V2, "GET", "/stages") => Store::list_stages,
        (V2, "GET", "/stages/{id}") => Store::get_stage,
        (V1, "POST", "/notes") => Store::post_note,
        (V1, "GET", "/notes") => Store::list_notes,
        (V1, "GET", "/notes/{id}") => Store::get_note,
        (V1, "PUT", "/notes/{id}") => Store::put_note,
        (V1, "DELETE", "/notes/{id}") => Store::delete_note,
        (V1, "POST", "/files") => Store::post_file,
        (V1, "GET", "/files") => Store::list_files,
        (V1, "GET", "/files/{id}") => Store::get_file,
        (V1, "DELETE", "/files/{id}") => Store::delete_file,
        (V1, "GET", "/files/{id}/download") => Store::download_file,
        (V1, "GET", "/persons/{id}/files") => Store::person_files,
        (V1, "GET", "/deals/{id}/files") => Store::deal_files,
        (V1, "GET", "/organizations/{id}/files") => Store::org_files,
        (V1, "GET", "/personFields") => Store::get_person_fields,
        (V1, "GET", "/dealFields") => Store::get_deal_fields,
        (V1, "GET", "/leadFields") => Store::get_lead_fields,
        (V2, "GET", "/personFields") => Store::get_person_fields_v2,
        (V2, "GET", "/personFields/{field_code}") => Store::get_person_field_v2,
        (V2, "GET", "/dealFields") => Store::get_deal_fields_v2,
        (V2, "GET", "/dealFields/{field_code}") => Store::get_deal_field_v2,
        _ => return None,
    };
    Some(h)
}

/// Labels of every implemented operation (for docs and the demo).
pub fn implemented() -> Vec<String> {
    spec::spec()
        .map(|s| {
            s.operations
                .iter()
                .filter(|op| !op.is_oauth() && route(op).is_some())
                .map(Operation::label)
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn with_rate_headers(
    mut resp: Response,
    h: RateHeaders,
    retry_after: Option<u64>,
) -> Response {
    let headers = resp.headers_mut();
    for (k, v) in [
        ("x-ratelimit-limit", u64::from(h.limit)),
        ("x-ratelimit-remaining", u64::from(h.remaining)),
        ("x-ratelimit-reset", h.reset),
    ] {
        headers.insert(k, HeaderValue::from(v));
    }
    if let Some(s) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

fn observed(mut resp: Response, o: Observed) -> Response {
    resp.extensions_mut().insert(o);
    resp
}

/// Pipedrive's 401 for a missing, expired or revoked token (reference §10).
pub(super) fn unauthorized() -> Response {
    to_response(Reply::json(
        401,
        json!({"success": false, "error": "unauthorized access", "errorCode": 401}),
    ))
}

/// Parses the body into the handler's input (and, for multipart, the form
/// the contract check and the record use).
async fn read_input(req: Request) -> (Input, Option<CheckedBody>) {
    let ct = content_type(req.headers())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("multipart/form-data") {
        return read_multipart(req).await;
    }
    let bytes = match axum::body::to_bytes(req.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(_) => {
            return (
                Input::Invalid("Request body could not be read".into()),
                None,
            );
        }
    };
    let input = if bytes.is_empty() {
        Input::None
    } else if ct.starts_with("application/json") {
        match serde_json::from_slice(&bytes) {
            Ok(v) => Input::Json(v),
            Err(e) => Input::Invalid(format!("Request body is not valid JSON: {e}")),
        }
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        Input::Form
    } else {
        Input::Invalid(format!("Unsupported Content-Type {ct:?}"))
    };
    (input, None)
}

async fn read_multipart(req: Request) -> (Input, Option<CheckedBody>) {
    let invalid = |m: &str| (Input::Invalid(m.to_string()), None);
    let Ok(mut mp) = Multipart::from_request(req, &()).await else {
        return invalid("Malformed multipart/form-data body");
    };
    let mut fields = BTreeMap::new();
    let mut file = None;
    loop {
        match mp.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_string();
                let file_name = field.file_name().map(str::to_string);
                let ct = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let Ok(bytes) = field.bytes().await else {
                    return invalid("Malformed multipart/form-data body");
                };
                match (name.as_str(), file_name) {
                    ("file", Some(file_name)) => {
                        file = Some(Upload {
                            file_name,
                            content_type: ct,
                            bytes: bytes.to_vec(),
                        });
                    }
                    _ => {
                        fields.insert(name, String::from_utf8_lossy(&bytes).into_owned());
                    }
                }
            }
            Ok(None) => break,
            Err(_) => return invalid("Malformed multipart/form-data body"),
        }
    }
    let mut checked: Map<String, Value> =
        fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    if let Some(f) = &file {
        checked.insert("file".into(), json!(f.file_name));
    }
    let body = CheckedBody::Fields {
        media_type: "multipart/form-data".into(),
        fields: checked,
    };
    (Input::Multipart { fields, file }, Some(body))
}

fn path_matches(wanted: &str, actual: &str, op: &Operation) -> bool {
    let norm = |p: &str| {
        spec::split_path(p).map_or_else(|| p.to_string(), |(v, rest)| format!("{v:?}{rest}"))
    };
    wanted == actual
        || norm(wanted) == norm(actual)
        || (wanted.contains('{') && norm(wanted) == format!("{:?}{}", op.version, op.template))
}

/// The fallback handler: every API request.
pub async fn api(State(sh): State<AppState>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let Some(m) = spec::spec().ok().and_then(|s| s.find(&method, &path)) else {
        let msg = if spec::split_path(&path).is_some() {
            "Unknown method ."
        } else {
            "Not found"
        };
        return to_response(error(404, msg));
    };
    let Some(handler) = route(m.op) else {
        return to_response(error(
            501,
            &format!(
                "{} is not implemented by the Pipedrive sandbox",
                m.op.label()
            ),
        ));
    };
    let auth_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let token = auth_header
        .as_deref()
        .and_then(|h| h.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    let mut hold = None;
    match sh
        .faults
        .draw()
        .map(|(kind, config)| faults::injected(kind, &config, &mut sh.store(), &token))
    {
        Some(Injected::Answer(answer)) => return answer,
        Some(Injected::Delay(wait)) => tokio::time::sleep(wait).await,
        Some(Injected::Hold(held)) => hold = Some(held),
        None => {}
    }
    let delay = sh.store().faults.take_slow();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if let Some(status) = sh.store().faults.take_fail() {
        return to_response(error(status, status_message(status)));
    }
    let (caller, rate) = {
        let mut st = sh.store();
        let (caller, scopes) = match st.authenticate(auth_header.as_deref()) {
            Ok(c) => c,
            Err(AuthFailure::Malformed) => {
                return to_response(error(
                    400,
                    "Invalid request: malformed authorization header",
                ));
            }
            Err(AuthFailure::Invalid) => return unauthorized(),
        };
        if !m.op.scopes.is_empty() && !m.op.scopes.iter().any(|s| scopes.contains(s)) {
            return to_response(error(403, "Scope and URL mismatch"));
        }
        let (headers, admitted) = st.admit(&token, caller.company_id, m.op);
        if let Err(refusal) = admitted {
            let retry = match refusal {
                Refusal::Budget { retry_after } | Refusal::Burst { retry_after } => retry_after,
            };
            let retry = st.cfg.retry_after_header.then_some(retry);
            let mut body = crate::store::error_body("Request over limit");
            body["errorCode"] = json!(429);
            return with_rate_headers(to_response(Reply::json(429, body)), headers, retry);
        }
        (caller, headers)
    };
    let query = query_pairs(req.uri().query().unwrap_or(""));
    let (input, checked) = read_input(req).await;
    let ctx = Ctx {
        caller,
        params: m.params.clone(),
        query,
        input,
    };
    let reply = {
        let mut st = sh.store();
        let reply = handler(&mut st, &ctx).unwrap_or_else(|e| e);
        match st
            .faults
            .take_lost(&method, |wanted| path_matches(wanted, &path, m.op))
        {
            Some(status) => error(status, status_message(status)),
            None => reply,
        }
    };
    let resp = with_rate_headers(to_response(reply), rate, None);
    observed(
        resp,
        Observed {
            token_cost: m.op.token_cost,
            body: checked,
            hold,
        },
    )
}
