//! HTTP surface: the Graph media endpoints and the sandbox admin endpoints
//! (`/__sandbox/...`, for the demo scripts; not recorded).

mod http;
mod media_upload;
mod messages;
mod send_request;
mod templates;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::store::{CHUNK, Store};
use crate::{Endpoint, MediaContent, SeedMedia, SeedPhoneNumber, Shared, pattern_chunk};
use http::{
    expired_url, fault, graph_error, invalid_token, is_version, json_response, parse_query, record,
    token, unknown_object, unknown_path,
};

pub(crate) type AppState = Arc<Shared>;

/// Largest body the admin seeding endpoint takes (WhatsApp's largest media
/// is 100 MB; larger test items use `size=`).
const ADMIN_BODY_MAX: usize = 110 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/whatsapp_business/attachments/", get(download))
        .route(
            "/__sandbox/media",
            post(admin_seed).layer(DefaultBodyLimit::max(ADMIN_BODY_MAX)),
        )
        .route("/__sandbox/fail-next", post(admin_fail_next))
        .route("/__sandbox/requests", get(admin_requests))
        .route("/__sandbox/phone-numbers", post(admin_seed_phone_number))
        .route("/__sandbox/inbound", post(admin_inbound))
        .route("/__sandbox/sent-messages", get(admin_sent_messages))
        .route("/{version}/{id}", get(node_versioned))
        .route("/{version}/{id}/messages", post(messages::messages))
        .route(
            "/{version}/{id}/media",
            post(media_upload::upload).layer(DefaultBodyLimit::max(media_upload::UPLOAD_BODY_MAX)),
        )
        .route(
            "/{version}/{id}/message_templates",
            get(templates::message_templates),
        )
        // Graph also serves unversioned paths (at the app's default version).
        .route("/{id}", get(node_unversioned))
        .fallback(unknown)
        .with_state(state)
}

async fn node_versioned(
    State(sh): State<AppState>,
    Path((version, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !is_version(&version) {
        return unknown_path(&sh, &Method::GET, &uri, &headers);
    }
    node(&sh, &id, &uri, &headers).await
}

async fn node_unversioned(
    State(sh): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    node(&sh, &id, &uri, &headers).await
}

/// `GET /{id}`: Graph tells a phone number from a media item by the object
/// the id names, not by the path.
async fn node(sh: &Shared, id: &str, uri: &Uri, headers: &HeaderMap) -> Response {
    let is_phone_number = sh.store().phone_numbers.contains_key(id);
    let (endpoint, answer): (Endpoint, NodeAnswer) = if is_phone_number {
        (Endpoint::PhoneNumber, phone_number_answer)
    } else {
        (Endpoint::Metadata, metadata_answer)
    };
    sh.pass_gate(endpoint).await;
    let query = parse_query(uri.query());
    let mut st = sh.store();
    let response = answer(&mut st, id, &query, token(headers, &query));
    record(
        &mut st,
        endpoint,
        &Method::GET,
        uri,
        headers,
        response.status(),
    );
    response
}

/// What a node's id answers, given the query and the token.
type NodeAnswer = fn(&mut Store, &str, &HashMap<String, String>, Option<&str>) -> Response;

/// The fields of a phone-number node the sandbox knows.
const PHONE_NUMBER_FIELDS: [&str; 4] = [
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "id",
];

fn phone_number_answer(
    st: &mut Store,
    id: &str,
    query: &HashMap<String, String>,
    token: Option<&str>,
) -> Response {
    if let Some(status) = st.take_fault(Endpoint::PhoneNumber) {
        return fault(Endpoint::PhoneNumber, status);
    }
    let Some(number) = st.phone_numbers.get(id) else {
        return unknown_object(id);
    };
    let owners_token = |t: &str| {
        number
            .readable_with
            .as_ref()
            .is_some_and(|tokens| tokens.iter().any(|ok| ok == t))
    };
    if !st.accepts(token) && !token.is_some_and(owners_token) {
        return invalid_token();
    }
    // A valid token of another business cannot see the number.
    if number.readable_with.is_some() && !token.is_some_and(owners_token) {
        return unknown_object(id);
    }
    let requested: Vec<&str> = match query.get("fields") {
        Some(fields) => fields.split(',').map(str::trim).collect(),
        None => PHONE_NUMBER_FIELDS.to_vec(),
    };
    let mut body = json!({ "id": number.id });
    for field in requested {
        body[field] = match field {
            "display_phone_number" => json!(number.display_phone_number),
            "verified_name" => json!(number.verified_name),
            "quality_rating" => json!("GREEN"),
            "id" => json!(number.id),
            other => {
                return graph_error(
                    400,
                    100,
                    "OAuthException",
                    &format!(
                        "(#100) Tried accessing nonexisting field ({other}) on node type (WhatsAppBusinessPhoneNumber)"
                    ),
                    None,
                );
            }
        };
    }
    json_response(200, body)
}

fn metadata_answer(
    st: &mut Store,
    media_id: &str,
    query: &HashMap<String, String>,
    token: Option<&str>,
) -> Response {
    if let Some(status) = st.take_fault(Endpoint::Metadata) {
        return fault(Endpoint::Metadata, status);
    }
    if !st.accepts(token) {
        return invalid_token();
    }
    // With `phone_number_id`, the call only succeeds for the number the media
    // belongs to (reference §7).
    let visible = st.media.get(media_id).is_some_and(|m| {
        match (&m.seed.phone_number_id, query.get("phone_number_id")) {
            (Some(owner), Some(asked)) => owner == asked,
            _ => true,
        }
    });
    if !visible {
        return unknown_object(media_id);
    }
    match st.metadata(media_id) {
        Some(body) => json_response(200, body),
        None => unknown_object(media_id),
    }
}

async fn download(State(sh): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    sh.pass_gate(Endpoint::Download).await;
    let query = parse_query(uri.query());
    let mut st = sh.store();
    let response = download_answer(&mut st, &query, token(&headers, &query));
    record(
        &mut st,
        Endpoint::Download,
        &Method::GET,
        &uri,
        &headers,
        response.status(),
    );
    response
}

fn download_answer(
    st: &mut Store,
    query: &HashMap<String, String>,
    token: Option<&str>,
) -> Response {
    if let Some(status) = st.take_fault(Endpoint::Download) {
        return fault(Endpoint::Download, status);
    }
    // The download needs the same bearer as the metadata call.
    if !st.accepts(token) {
        return invalid_token();
    }
    let Some(media) = query.get("hash").and_then(|h| st.resolve_url(h)) else {
        return expired_url();
    };
    if query.get("mid") != Some(&media.id) {
        return expired_url();
    }
    media_body(media)
}

fn media_body(media: &SeedMedia) -> Response {
    let body = match (&media.content, media.send_content_length) {
        (MediaContent::Bytes(b), true) => Body::from(b.clone()),
        // Streamed: generated content is never held whole, and a stream has
        // no length of its own, so without the header the answer is chunked.
        (content, _) => Body::from_stream(chunks(content.clone())),
    };
    let mut response = Response::new(body);
    let content_type = HeaderValue::from_str(&media.mime_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    if media.send_content_length {
        response.headers_mut().insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(media.content.len()),
        );
    }
    response
}

fn chunks(
    content: MediaContent,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let len = content.len();
    futures_util::stream::iter((0..len.div_ceil(CHUNK)).map(move |i| {
        let offset = i * CHUNK;
        let n = CHUNK.min(len - offset);
        Ok(match &content {
            // In range: offset + n <= len, the length of `b`.
            MediaContent::Bytes(b) => b.slice(offset as usize..(offset + n) as usize),
            MediaContent::Generated { .. } => Bytes::from(pattern_chunk(offset, n)),
        })
    }))
}

async fn unknown(
    State(sh): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    unknown_path(&sh, &method, &uri, &headers)
}

// --------------------------------------------------------------------- admin

fn endpoint_name(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Metadata => "metadata",
        Endpoint::Download => "download",
        Endpoint::PhoneNumber => "phone_number",
        Endpoint::Messages => "messages",
        Endpoint::MediaUpload => "media_upload",
        Endpoint::Templates => "templates",
        Endpoint::Unknown => "unknown",
    }
}

/// `POST /__sandbox/media?id=…&mime_type=…[&filename=…][&phone_number_id=…]
/// [&size=N]`: the body is the content, or `size=N` generates N bytes.
async fn admin_seed(State(sh): State<AppState>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let p = parse_query(q.as_deref());
    let (Some(id), Some(mime_type)) = (p.get("id"), p.get("mime_type")) else {
        return json_response(400, json!({"error": "id and mime_type are required"}));
    };
    let mut media = match p.get("size") {
        Some(size) => match size.parse() {
            Ok(size) => SeedMedia::generated(id, mime_type, size),
            Err(_) => return json_response(400, json!({"error": "size must be a number"})),
        },
        None => SeedMedia::bytes(id, mime_type, body),
    };
    if let Some(filename) = p.get("filename") {
        media = media.with_filename(filename);
    }
    if let Some(number) = p.get("phone_number_id") {
        media = media.with_phone_number_id(number);
    }
    sh.store().seed(media);
    json_response(200, json!({"status": "success"}))
}

/// `POST /__sandbox/phone-numbers?id=…&display_phone_number=…[&verified_name=…]
/// [&token=…]…`: a business number; with `token`s, only they may read it.
async fn admin_seed_phone_number(State(sh): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(id), Some(display)) = (value("id"), value("display_phone_number")) else {
        return json_response(
            400,
            json!({"error": "id and display_phone_number are required"}),
        );
    };
    let mut number = SeedPhoneNumber::new(id, display, value("verified_name").unwrap_or(""));
    let tokens: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .collect();
    if !tokens.is_empty() {
        number = number.readable_only_with(tokens);
    }
    sh.store().seed_phone_number(number);
    json_response(200, json!({"status": "success"}))
}

/// `POST /__sandbox/inbound?phone_number_id=…&wa_id=…&timestamp=…`: the user
/// wrote at `timestamp` (opens the 24-hour window).
async fn admin_inbound(State(sh): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let p = parse_query(q.as_deref());
    let timestamp = p.get("timestamp").and_then(|t| t.parse::<i64>().ok());
    let (Some(number), Some(wa_id), Some(timestamp)) =
        (p.get("phone_number_id"), p.get("wa_id"), timestamp)
    else {
        return json_response(
            400,
            json!({"error": "phone_number_id, wa_id and a numeric timestamp are required"}),
        );
    };
    sh.store().chat.record_inbound(number, wa_id, timestamp);
    json_response(200, json!({"status": "success"}))
}

/// `GET /__sandbox/sent-messages`: every `POST …/messages` so far.
async fn admin_sent_messages(State(sh): State<AppState>) -> Response {
    let list: Vec<Value> = sh
        .store()
        .chat
        .sent
        .iter()
        .map(|m| {
            json!({"phone_number_id": m.phone_number_id, "kind": m.kind, "to": m.to,
                   "wa_id": m.wa_id, "message_id": m.message_id,
                   "outcome": format!("{:?}", m.outcome), "timestamp": m.timestamp,
                   "body": m.body})
        })
        .collect();
    json_response(200, json!({ "sent_messages": list }))
}

/// `POST /__sandbox/fail-next?n=1&status=503[&endpoint=metadata|download|phone_number|messages|media_upload|templates]`.
async fn admin_fail_next(State(sh): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let p = parse_query(q.as_deref());
    let n = p.get("n").and_then(|v| v.parse().ok()).unwrap_or(1);
    let status = p.get("status").and_then(|v| v.parse().ok()).unwrap_or(503);
    let endpoint = match p.get("endpoint").map(String::as_str) {
        Some("metadata") => Some(Endpoint::Metadata),
        Some("download") => Some(Endpoint::Download),
        Some("phone_number") => Some(Endpoint::PhoneNumber),
        Some("messages") => Some(Endpoint::Messages),
        Some("media_upload") => Some(Endpoint::MediaUpload),
        Some("templates") => Some(Endpoint::Templates),
        _ => None,
    };
    sh.store().add_fault(endpoint, n, status);
    json_response(200, json!({"status": "success"}))
}

async fn admin_requests(State(sh): State<AppState>) -> Response {
    let list: Vec<Value> = sh
        .store()
        .requests
        .iter()
        .map(|r| {
            json!({"endpoint": endpoint_name(r.endpoint), "method": r.method, "path": r.path,
                   "query": r.query, "status": r.status, "bearer_present": r.bearer_present})
        })
        .collect();
    json_response(200, json!({ "requests": list }))
}
