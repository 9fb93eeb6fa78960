//! `GET /{version}/{waba_id}/message_templates` (live-chat reference §3.1):
//! `fields`, `limit`, `after` cursor, filters `status` (comma-separated),
//! `name` (exact), `category` and `language`; answers
//! `{"data":[…],"paging":{"cursors":{"before","after"},"next"?}}`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use super::AppState;
use super::http::{
    cloud_error, fault, invalid_token, is_version, json_response, parse_query, record, token,
    unknown_object, unknown_path,
};
use crate::Endpoint;
use crate::errors::CloudError;
use crate::store::Store;
use crate::templates::SeedTemplate;

/// The fields a template node has here.
const TEMPLATE_FIELDS: [&str; 7] = [
    "name",
    "parameter_format",
    "components",
    "language",
    "status",
    "category",
    "id",
];
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 1000;

pub async fn message_templates(
    State(sh): State<AppState>,
    Path((version, waba_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !is_version(&version) {
        return unknown_path(&sh, &Method::GET, &uri, &headers);
    }
    sh.pass_gate(Endpoint::Templates).await;
    let query = parse_query(uri.query());
    let mut st = sh.store();
    let response = answer(&mut st, &waba_id, &query, token(&headers, &query), &uri);
    let status = response.status();
    record(
        &mut st,
        Endpoint::Templates,
        &Method::GET,
        &uri,
        &headers,
        status,
    );
    response
}

fn answer(
    st: &mut Store,
    waba_id: &str,
    query: &HashMap<String, String>,
    token: Option<&str>,
    uri: &Uri,
) -> Response {
    if let Some(status) = st.take_fault(Endpoint::Templates) {
        return fault(Endpoint::Templates, status);
    }
    if !st.accepts(token) {
        return invalid_token();
    }
    if !st.knows_waba(waba_id) {
        return unknown_object(waba_id);
    }
    match page(st, waba_id, query, uri) {
        Ok(body) => json_response(200, body),
        Err(e) => cloud_error(&e),
    }
}

fn page(
    st: &Store,
    waba_id: &str,
    query: &HashMap<String, String>,
    uri: &Uri,
) -> Result<Value, CloudError> {
    let fields = fields(query.get("fields"))?;
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n.min(MAX_LIMIT),
            _ => {
                return Err(CloudError::invalid_parameter(format!(
                    "Param limit must be a positive integer - got \"{v}\"."
                )));
            }
        },
    };
    let upper_list = |key: &str| {
        query.get(key).map(|v| {
            v.split(',')
                .map(|s| s.trim().to_ascii_uppercase())
                .collect::<Vec<_>>()
        })
    };
    let statuses = upper_list("status");
    let categories = upper_list("category");
    let matching: Vec<&SeedTemplate> = st
        .chat
        .templates_of(waba_id)
        .filter(|t| statuses.as_ref().is_none_or(|s| s.contains(&t.status)))
        .filter(|t| categories.as_ref().is_none_or(|c| c.contains(&t.category)))
        .filter(|t| query.get("name").is_none_or(|n| *n == t.name))
        .filter(|t| query.get("language").is_none_or(|l| *l == t.language))
        .collect();
    let start = match query.get("after") {
        None => 0,
        Some(cursor) => decode_cursor(cursor)
            .and_then(|id| matching.iter().position(|t| t.id == id))
            .map(|i| i + 1)
            .ok_or_else(|| {
                CloudError::invalid_parameter(format!("Invalid cursor (after={cursor})."))
            })?,
    };
    let shown: Vec<&SeedTemplate> = matching.iter().skip(start).take(limit).copied().collect();
    let data: Vec<Value> = shown.iter().map(|t| select(t, &fields)).collect();
    let mut body = json!({ "data": data });
    if let (Some(first), Some(last)) = (shown.first(), shown.last()) {
        let after = encode_cursor(&last.id);
        body["paging"] = json!({
            "cursors": { "before": encode_cursor(&first.id), "after": after },
        });
        if start + shown.len() < matching.len() {
            body["paging"]["next"] = json!(next_url(&st.base_url, uri, query, &after));
        }
    }
    Ok(body)
}

fn fields(requested: Option<&String>) -> Result<Vec<&'static str>, CloudError> {
    let Some(requested) = requested else {
        return Ok(TEMPLATE_FIELDS.to_vec());
    };
    let mut out = vec!["id"];
    for field in requested
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        let known = TEMPLATE_FIELDS
            .iter()
            .find(|f| **f == field)
            .ok_or_else(|| {
                CloudError::invalid_parameter(format!(
                    "Tried accessing nonexisting field ({field}) on node type (WhatsAppBusinessHSM)"
                ))
            })?;
        if !out.contains(known) {
            out.push(known);
        }
    }
    Ok(out)
}

/// The template with only `fields` (Graph always adds `id`).
fn select(template: &SeedTemplate, fields: &[&str]) -> Value {
    let full = template.to_json();
    let mut out = serde_json::Map::new();
    for field in TEMPLATE_FIELDS.iter().filter(|f| fields.contains(f)) {
        out.insert((*field).to_owned(), full[*field].clone());
    }
    Value::Object(out)
}

/// Cursors are opaque to clients; here base64 (URL-safe) of a template id.
fn encode_cursor(id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The same request with `after` moved on (the token parameter kept, as
/// Graph does).
fn next_url(base: &str, uri: &Uri, query: &HashMap<String, String>, after: &str) -> String {
    let mut pairs: Vec<(&String, &String)> = query.iter().filter(|(k, _)| *k != "after").collect();
    pairs.sort();
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.append_pair("after", after);
    format!("{base}{}?{}", uri.path(), q.finish())
}
