//! The local runner: serves the template's HTTP routes on loopback, calling
//! the same handlers the Lambda mains call, and polls the queues the way the
//! SQS event source does for FIFO queues — batches of at most `BatchSize`,
//! `batchItemFailures` left on the queue for redelivery after their
//! visibility time-out, everything else deleted. Dead-lettering after
//! `maxReceiveCount` receives is the queue's own redrive policy (moto).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use axum::body::Body as AxumBody;
use axum::response::Response as AxumResponse;
use shared::deps::Deps;
use shared::handlers::{api, note_append, oauth, record_sync, webhook};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::provision::Stack;
use crate::template::FunctionDef;

/// Largest request body the runner reads (API Gateway's payload limit is 10 MB).
const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

pub struct Runner {
    pub base_url: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Runner {
    /// Serves HTTP on `listener` and starts one poller per queue trigger.
    pub fn start(
        stack: &Stack,
        deps: Arc<Deps>,
        listener: TcpListener,
        sqs: aws_sdk_sqs::Client,
    ) -> std::io::Result<Self> {
        let base_url = format!("http://{}", listener.local_addr()?);
        let routes: Arc<Vec<FunctionDef>> = Arc::new(
            stack
                .template
                .functions
                .iter()
                .filter(|f| !f.http_routes.is_empty())
                .cloned()
                .collect(),
        );
        let http_deps = deps.clone();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let deps = http_deps.clone();
            let routes = routes.clone();
            async move { serve_http(&deps, &routes, request).await }
        });
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "local HTTP server stopped");
            }
        })];
        for function in &stack.template.functions {
            let Some((queue, batch_size)) = &function.sqs_trigger else {
                continue;
            };
            let Some(url) = stack.queue_url(queue) else {
                continue;
            };
            tasks.push(tokio::spawn(poll(
                deps.clone(),
                sqs.clone(),
                function.clone(),
                url.to_owned(),
                (*batch_size).clamp(1, 10),
            )));
        }
        Ok(Self { base_url, tasks })
    }
}

/// Whether a route pattern (`/oauth/{crm}/start`, `/api/{proxy+}`) matches.
fn route_matches(pattern: &str, path: &str) -> bool {
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

async fn serve_http(
    deps: &Deps,
    routes: &[FunctionDef],
    request: axum::extract::Request,
) -> AxumResponse {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let method = parts.method.as_str().to_owned();
    let Some(function) = routes.iter().find(|f| {
        f.http_routes
            .iter()
            .any(|(m, p)| (m == "ANY" || *m == method) && route_matches(p, &path))
    }) else {
        return plain(404, "{\"message\":\"Not Found\"}");
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REQUEST_BYTES).await else {
        return plain(413, "{\"message\":\"Request Entity Too Large\"}");
    };
    let mut builder = http::Request::builder().method(parts.method).uri(parts.uri);
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let Ok(lambda_request) = builder.body(lambda_http::Body::Binary(bytes.to_vec())) else {
        return plain(400, "{\"message\":\"Bad Request\"}");
    };
    let result = match function.binary.as_str() {
        "webhook" => webhook::handle(deps, lambda_request).await,
        "oauth" => oauth::handle(deps, lambda_request).await,
        "api" => api::handle(deps, lambda_request).await,
        other => {
            tracing::error!(binary = other, "no local handler for this function");
            return plain(502, "{\"message\":\"Internal Server Error\"}");
        }
    };
    match result {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let bytes = match body {
                lambda_http::Body::Empty => Vec::new(),
                lambda_http::Body::Text(t) => t.into_bytes(),
                lambda_http::Body::Binary(b) => b,
                _ => Vec::new(),
            };
            AxumResponse::from_parts(parts, AxumBody::from(bytes))
        }
        // What API Gateway answers when the function itself fails.
        Err(e) => {
            tracing::error!(error = %e, "function failed");
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

async fn poll(
    deps: Arc<Deps>,
    sqs: aws_sdk_sqs::Client,
    function: FunctionDef,
    url: String,
    batch_size: i32,
) {
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
        // Each invocation is a task of its own, so a panic fails its batch
        // (as a crashed Lambda does) instead of silently ending this poller.
        let invocation = {
            let deps = deps.clone();
            let binary = function.binary.clone();
            tokio::spawn(async move {
                match binary.as_str() {
                    "record-sync" => Some(record_sync::handle(&deps, event, None).await),
                    "note-append" => Some(note_append::handle(&deps, event, None).await),
                    _ => None,
                }
            })
        };
        let response = match invocation.await {
            Ok(Some(Ok(response))) => Some(response),
            Ok(Some(Err(e))) => {
                tracing::error!(error = %e, queue = %url, "function failed");
                None
            }
            Ok(None) => {
                tracing::error!(binary = %function.binary, "no local handler for this queue function");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, queue = %url, "function panicked; its batch comes back after the visibility time-out");
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
