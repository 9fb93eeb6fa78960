//! Handler CPU per message, with criterion: what the webhook does with one
//! delivery (signature, parse, the item it stores and the queue message it
//! sends) and what note-append does with one batch (each message's line, the
//! note rendered for each CRM and measured against its limit), for a
//! 1-message and a 10-message delivery.
//!
//! The store and the queue are in-memory doubles: each keeps the item or the
//! body the real adapter would send (DynamoDB's attribute map through
//! `serde_dynamo`, the SQS body as JSON), so their serialisation is counted
//! and the network is not. `infra/local/bench.sh` prints the figures.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use shared::adapters::pipedrive::PipedriveApi;
use shared::adapters::zoho::ZohoApi;
use shared::crm::{Crm, CrmError, NoteDraft};
use shared::crypto::{meta_signature, verify_meta_signature};
use shared::day_notes::{note_header, note_line_text};
use shared::handlers::webhook::to_store;
use shared::model::{MessageState, StoredMessage, chat_key};
use shared::queue::MessageRef;
use shared::time_zone::{local_times, zone};
use shared::tokens::AccessTokens;
use shared::whatsapp::{Counterpart, WebhookItem, parse_delivery, status_updates};

const APP_SECRET: &[u8] = b"bench-app-secret";
const SIZES: [usize; 2] = [1, 10];

/// A Cloud API delivery of `n` text messages from one contact, as Meta
/// sends it.
fn delivery(n: usize) -> Vec<u8> {
    let messages: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "from": "447700900123",
                "id": format!("wamid.HBgLNDQ3NzAwOTAwMTIzFQIAEhgU{i:06}"),
                "timestamp": (1_767_261_600 + i as i64 * 37).to_string(),
                "type": "text",
                "text": { "body": format!("Hello, is the flat on Baker Street still free? Message {i} <b>&</b>") }
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "190000000000001",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "447700900100", "phone_number_id": "106540352242922" },
                    "contacts": [{ "profile": { "name": "Alice Example" }, "wa_id": "447700900123" }],
                    "messages": messages
                }
            }]
        }]
    }))
    .expect("a JSON delivery")
}

/// The store and queue doubles: what the adapters would have sent.
#[derive(Default)]
struct Sent {
    items: Vec<HashMap<String, AttributeValue>>,
    bodies: Vec<String>,
}

/// The webhook's work on one delivery, store and queue in memory.
fn webhook(body: &[u8], signature: &str, sent: &mut Sent) -> Vec<StoredMessage> {
    verify_meta_signature(APP_SECRET, body, Some(signature)).expect("signed");
    let items = parse_delivery(body).expect("a delivery");
    let statuses = status_updates(body).expect("statuses");
    black_box(statuses);
    let mut stored = Vec::new();
    for item in items {
        let WebhookItem::Message(message) = item else {
            continue;
        };
        let Counterpart::Number { contact, .. } = &message.counterpart else {
            continue;
        };
        let chat = chat_key(&message.phone_number_id, contact);
        let message = to_store(
            *message,
            "ws-bench",
            chat.clone(),
            MessageState::Received,
            1_767_261_700,
        );
        sent.items
            .push(serde_dynamo::to_item(&message).expect("an item"));
        let reference = MessageRef {
            workspace_id: message.workspace_id.clone(),
            message_id: message.message_id.clone(),
            chat_key: chat,
            resend: 0,
        };
        sent.bodies
            .push(serde_json::to_string(&reference).expect("a body"));
        stored.push(message);
    }
    stored
}

/// note-append's CPU on one batch: each line, then the note as each CRM
/// stores it, measured against that CRM's limit.
fn note_append(messages: &[StoredMessage], crms: &[&dyn Crm]) -> usize {
    let tz = zone("Europe/London");
    let lines: Vec<String> = messages
        .iter()
        .map(|m| {
            let (_, _, time) = local_times(m.timestamp, &tz);
            note_line_text(m, "Alice Example", "+447700900100", &time)
        })
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let header = note_header("https://wa.me/447700900123", "+447700900100");
    crms.iter()
        .map(|crm| {
            let content = crm.render_note(&NoteDraft {
                title: "WhatsApp Chat with Alice Example (01/01/2026)",
                header: &header,
                lines: &lines,
            });
            let size = crm.note_size(&content);
            assert!(size <= crm.note_limit(), "the note fits");
            size
        })
        .sum()
}

/// The CRM clients are only asked to render: they never call out.
struct NoTokens;

#[async_trait]
impl AccessTokens for NoTokens {
    async fn current(&self) -> Result<String, CrmError> {
        Err(CrmError::Transport("the benchmark makes no call".into()))
    }
    async fn refresh_after_rejection(&self, _: &str) -> Result<String, CrmError> {
        self.current().await
    }
}

fn handlers(c: &mut Criterion) {
    let http = shared::deps::http_client().expect("the functions' HTTP client");
    let zoho = ZohoApi::new(http.clone(), "http://127.0.0.1:9", Arc::new(NoTokens));
    let pipedrive = PipedriveApi::new(http, "http://127.0.0.1:9", Arc::new(NoTokens));
    let crms: [&dyn Crm; 2] = [&zoho, &pipedrive];

    let mut group = c.benchmark_group("webhook");
    for n in SIZES {
        let body = delivery(n);
        let signature = meta_signature(APP_SECRET, &body);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &body, |b, body| {
            b.iter(|| {
                let mut sent = Sent::default();
                let stored = webhook(black_box(body), &signature, &mut sent);
                assert_eq!(stored.len(), n);
                black_box((stored, sent))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("note-append");
    for n in SIZES {
        let body = delivery(n);
        let signature = meta_signature(APP_SECRET, &body);
        let messages = webhook(&body, &signature, &mut Sent::default());
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &messages, |b, messages| {
            b.iter(|| black_box(note_append(black_box(messages), &crms)))
        });
    }
    group.finish();
}

criterion_group!(benches, handlers);
criterion_main!(benches);
