//! Webhook → visible to the live-chat page, measured on the local stack:
//! 50 messages, one at a time, each timed from the start of its signed
//! webhook POST until `GET /api/live/chats` (what the page polls) shows it.
//! The page polls every 2 s while visible, so what a user sees adds up to
//! one poll interval to these figures.
//!
//! Run with the local stack up: `. .local/stack.env && cargo run -p e2e --bin live_latency`.

use std::time::{Duration, Instant};

use e2e::{ALICE_WA_ID, TestSystem, text_delivery};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

const MESSAGES: usize = 50;
/// How often this probe asks (the page asks every 2 s).
const PROBE_EVERY: Duration = Duration::from_millis(20);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let system = TestSystem::start().await;
    let (_, person) = system
        .pipedrive_chat_with_a_fresh_question("wamid.LAT0")
        .await;
    let token = encode(
        &Header::default(),
        &json!({ "userId": 11_001, "companyId": system.pipedrive.company_id(), "exp": now() + 300 }),
        &EncodingKey::from_secret(b"pd-sandbox-secret").expect("an HMAC key"),
    )
    .expect("encodes");
    let session: Value = system
        .http
        .post(system.url("/api/live/pipedrive/session"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("JSON");
    let session = session["session"].as_str().expect("a session").to_owned();
    let view = system.url(&format!("/api/live/chats?record=persons/{}", person["id"]));
    let mut latencies = Vec::new();
    for i in 1..=MESSAGES {
        let id = format!("wamid.LAT{i}");
        let started = Instant::now();
        system
            .post_webhook(&text_delivery(
                ALICE_WA_ID,
                "Alice",
                &id,
                now(),
                "latency probe",
            ))
            .await;
        loop {
            let shown: Value = system
                .http
                .get(&view)
                .header("x-live-session", &session)
                .send()
                .await
                .expect("view")
                .json()
                .await
                .unwrap_or_default();
            let visible = shown["chats"][0]["messages"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["message_id"] == id.as_str()));
            if visible {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{id} never showed"
            );
            tokio::time::sleep(PROBE_EVERY).await;
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "webhook → visible through GET /api/live/chats, {MESSAGES} messages: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms (the page adds up to its 2 s poll)",
        percentile(&latencies, 50.0).as_secs_f64() * 1000.0,
        percentile(&latencies, 95.0).as_secs_f64() * 1000.0,
        latencies
            .last()
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or_default()
    );
}
