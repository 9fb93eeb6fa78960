//! The local runner: serves the template's HTTP routes on loopback the way
//! API Gateway (HTTP API, payload format 2.0) does, and polls the queues the
//! way the SQS event source does for FIFO queues — batches of at most
//! `BatchSize`, `batchItemFailures` left on the queue for redelivery after
//! their visibility time-out, everything else deleted; a batch whose
//! invocation failed or timed out is left whole. Dead-lettering after
//! `maxReceiveCount` receives is the queue's own redrive policy (moto).
//! Every invocation goes to the function's own process ([`LocalFunction`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use axum::body::Body as AxumBody;
use axum::response::Response as AxumResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::lambda::{InvokeError, LocalFunction};
use crate::provision::Stack;
use crate::template::FunctionDef;

/// Largest request body the runner reads (API Gateway's payload limit is 10 MB).
const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

pub struct Runner {
    pub base_url: String,
    tasks: Vec<JoinHandle<()>>,
    observers: Observers,
}

/// One request to the HTTP API and the answer it got, as a client saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    /// The request's path, as sent (percent-encoded).
    pub path: String,
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
}

/// Sees every answer the HTTP API gives (the end-to-end harness checks
/// them against infra/openapi.yaml).
pub trait HttpObserver: Send + Sync {
    fn observe(&self, exchange: &Exchange);
}

type Observers = Arc<RwLock<Vec<Arc<dyn HttpObserver>>>>;

impl Drop for Runner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A function of the template and its running instances.
#[derive(Clone)]
pub struct Deployed {
    pub def: FunctionDef,
    pub function: Arc<LocalFunction>,
}

impl Runner {
    /// Serves HTTP on `listener` and starts one poller per queue trigger.
    pub fn start(
        stack: &Stack,
        functions: BTreeMap<String, Deployed>,
        listener: TcpListener,
        sqs: aws_sdk_sqs::Client,
    ) -> std::io::Result<Self> {
        let base_url = format!("http://{}", listener.local_addr()?);
        let routes: Arc<Vec<Deployed>> = Arc::new(
            functions
                .values()
                .filter(|f| !f.def.http_routes.is_empty())
                .cloned()
                .collect(),
        );
        let observers: Observers = Arc::default();
        let seen_by = observers.clone();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let routes = routes.clone();
            let observers = seen_by.clone();
            async move { observed(&observers, request, |r| serve_http(&routes, r)).await }
        });
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "local HTTP server stopped");
            }
        })];
        for deployed in functions.values() {
            let Some((queue, batch_size)) = &deployed.def.sqs_trigger else {
                continue;
            };
            let Some(url) = stack.queue_url(queue) else {
                continue;
            };
            tasks.push(tokio::spawn(poll(
                deployed.clone(),
                sqs.clone(),
                url.to_owned(),
                (*batch_size).clamp(1, 10),
            )));
        }
        Ok(Self {
            base_url,
            tasks,
            observers,
        })
    }

    /// Shows every answer of the HTTP API from now on to `observer` too.
    pub fn observe_http(&self, observer: Arc<dyn HttpObserver>) {
        self.observers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(observer);
    }
}

/// Serves `request` with `serve`, and shows the answer to the observers
/// (buffered: every answer here is a buffer already).
async fn observed<F>(
    observers: &Observers,
    request: axum::extract::Request,
    serve: impl FnOnce(axum::extract::Request) -> F,
) -> AxumResponse
where
    F: std::future::Future<Output = AxumResponse>,
{
    let watching: Vec<Arc<dyn HttpObserver>> =
        observers.read().unwrap_or_else(|e| e.into_inner()).clone();
    if watching.is_empty() {
        return serve(request).await;
    }
    let (method, path) = (
        request.method().as_str().to_owned(),
        request.uri().path().to_owned(),
    );
    let (parts, body) = serve(request).await.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let exchange = Exchange {
        method,
        path,
        status: parts.status.as_u16(),
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    for observer in &watching {
        observer.observe(&exchange);
    }
    AxumResponse::from_parts(parts, AxumBody::from(body))
}

/// Whether a route pattern (`/oauth/{crm}/start`, `/api/{proxy+}`) matches.
pub fn route_matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/').filter(|s| !s.is_empty());
    let mut have = path.split('/').filter(|s| !s.is_empty());
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some(w), Some(_)) if w.starts_with('{') && w.ends_with("+}") => return true,
            (Some(w), Some(_)) if w.starts_with('{') && w.ends_with('}') => {}
            (Some(w), Some(h)) if w == h => {}
            _ => return false,
        }
    }
}

/// The route pattern a request matches, and its path parameters.
fn route_for<'a>(
    routes: &'a [Deployed],
    method: &str,
    path: &str,
) -> Option<(&'a Deployed, String, BTreeMap<String, String>)> {
    routes.iter().find_map(|deployed| {
        deployed.def.http_routes.iter().find_map(|(m, pattern)| {
            ((m == "ANY" || m == method) && route_matches(pattern, path)).then(|| {
                (
                    deployed,
                    format!("{m} {pattern}"),
                    path_parameters(pattern, path),
                )
            })
        })
    })
}

fn path_parameters(pattern: &str, path: &str) -> BTreeMap<String, String> {
    let mut parameters = BTreeMap::new();
    let have: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, want) in pattern.split('/').filter(|s| !s.is_empty()).enumerate() {
        if let Some(name) = want.strip_prefix('{').and_then(|w| w.strip_suffix("+}")) {
            parameters.insert(name.to_owned(), have.get(i..).unwrap_or_default().join("/"));
            break;
        }
        if let Some(name) = want.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            parameters.insert(
                name.to_owned(),
                have.get(i).copied().unwrap_or_default().to_owned(),
            );
        }
    }
    parameters
}

/// The API Gateway HTTP API event (payload format 2.0) for a request.
/// The API Gateway HTTP API (payload 2.0) event of a request.
pub fn http_event(
    parts: &http::request::Parts,
    body: &[u8],
    route_key: &str,
    path_parameters: &BTreeMap<String, String>,
) -> Value {
    let path = parts.uri.path();
    let raw_query = parts.uri.query().unwrap_or_default();
    // Repeated headers and query parameters are joined with commas; cookies
    // travel on their own.
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        query
            .entry(key.into_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let (body, encoded) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (Value::String(BASE64.encode(body)), true),
    };
    let now = chrono::Utc::now();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": headers.get("host").cloned().unwrap_or_else(|| "localhost".into()),
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": encoded,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
    }
    if !path_parameters.is_empty() {
        event["pathParameters"] = json!(path_parameters);
    }
    if !body.is_null() {
        event["body"] = body;
    }
    event
}

/// The HTTP response API Gateway makes of a function's payload-2.0 answer.
fn http_response(answer: &[u8]) -> Option<AxumResponse> {
    let answer: Value = serde_json::from_slice(answer).ok()?;
    let status = answer["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())?;
    let mut builder = AxumResponse::builder().status(status);
    for (name, value) in answer["headers"].as_object().into_iter().flatten() {
        builder = builder.header(name, value.as_str()?);
    }
    for (name, values) in answer["multiValueHeaders"]
        .as_object()
        .into_iter()
        .flatten()
    {
        for value in values.as_array().into_iter().flatten() {
            builder = builder.header(name, value.as_str()?);
        }
    }
    for cookie in answer["cookies"].as_array().into_iter().flatten() {
        builder = builder.header(http::header::SET_COOKIE, cookie.as_str()?);
    }
    let body = answer["body"].as_str().unwrap_or_default();
    let body = if answer["isBase64Encoded"].as_bool() == Some(true) {
        BASE64.decode(body).ok()?
    } else {
        body.as_bytes().to_vec()
    };
    builder.body(AxumBody::from(body)).ok()
}

async fn serve_http(routes: &[Deployed], request: axum::extract::Request) -> AxumResponse {
    let (parts, body) = request.into_parts();
    let Some((deployed, route_key, parameters)) =
        route_for(routes, parts.method.as_str(), parts.uri.path())
    else {
        return plain(404, "{\"message\":\"Not Found\"}");
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REQUEST_BYTES).await else {
        return plain(413, "{\"message\":\"Request Entity Too Large\"}");
    };
    let event = http_event(&parts, &bytes, &route_key, &parameters);
    match deployed.function.invoke(event.to_string().into_bytes()).await {
        Ok(answer) => http_response(&answer).unwrap_or_else(|| {
            tracing::error!(function = %deployed.function.name(), "malformed Lambda proxy response");
            plain(502, "{\"message\":\"Internal Server Error\"}")
        }),
        // What API Gateway answers when the integration times out.
        Err(InvokeError::Timeout(_)) => plain(503, "{\"message\":\"Service Unavailable\"}"),
        // ... and when the function itself fails.
        Err(e) => {
            tracing::error!(function = %deployed.function.name(), error = %e, "function failed");
            plain(500, "{\"message\":\"Internal Server Error\"}")
        }
    }
}

fn plain(status: u16, body: &'static str) -> AxumResponse {
    AxumResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(AxumBody::from(body))
        .unwrap_or_default()
}

async fn poll(deployed: Deployed, sqs: aws_sdk_sqs::Client, url: String, batch_size: i32) {
    let function = &deployed.def;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(batch_size)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), queue = %url, "receive failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let mut event = SqsEvent::default();
        for m in &messages {
            let mut message = SqsMessage::default();
            message.message_id = m.message_id.clone();
            message.receipt_handle = m.receipt_handle.clone();
            message.body = m.body.clone();
            message.md5_of_body = m.md5_of_body.clone();
            message.event_source = Some("aws:sqs".into());
            message.attributes = m
                .attributes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect();
            event.records.push(message);
        }
        let payload = match serde_json::to_vec(&event) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::error!(error = %e, "SQS event not serialisable");
                continue;
            }
        };
        let response: Option<SqsBatchResponse> = match deployed.function.invoke(payload).await {
            Ok(answer) => serde_json::from_slice(&answer)
                .map_err(|e| tracing::error!(error = %e, queue = %url, "unreadable batch response"))
                .ok(),
            Err(e) => {
                tracing::error!(error = %e, queue = %url, "invocation failed; its batch comes back after the visibility time-out");
                None
            }
        };
        // Like the event source: an error retries the whole batch; without
        // ReportBatchItemFailures any failure does too.
        let failed: HashSet<String> = match response {
            Some(response) if function.reports_batch_item_failures => response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
            Some(response) if response.batch_item_failures.is_empty() => HashSet::new(),
            _ => messages
                .iter()
                .filter_map(|m| m.message_id.clone())
                .collect(),
        };
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| !m.message_id.as_ref().is_some_and(|id| failed.contains(id)))
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone()?)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        // A message not deleted comes back after its visibility time-out, and
        // holds its FIFO group until then: worth a loud line.
        match sqs
            .delete_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) if !out.failed.is_empty() => {
                tracing::warn!(queue = %url, failed = ?out.failed, "some deletes were refused");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), queue = %url, "delete failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::route_matches;

    #[test]
    fn routes_match_like_http_api_paths() {
        assert!(route_matches("/webhooks/whatsapp", "/webhooks/whatsapp"));
        assert!(!route_matches("/webhooks/whatsapp", "/webhooks/whatsapp/x"));
        assert!(route_matches("/oauth/{crm}/start", "/oauth/zoho/start"));
        assert!(!route_matches("/oauth/{crm}/start", "/oauth/zoho/callback"));
        assert!(route_matches("/api/{proxy+}", "/api/users/1"));
        assert!(!route_matches("/api/{proxy+}", "/api"));
    }
}
