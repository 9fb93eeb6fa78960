//! Webhook → visible, measured on the local stack: 50 messages, one at a
//! time, each timed from the start of its signed webhook POST until
//! (1) `GET /api/live/chats` (what the page polls) shows it, and (2) it is on
//! screen in the live-chat page open in headless Chromium, framed by a
//! stand-in Pipedrive host (the page polls every 2 s while visible).
//!
//! Run with the local stack up: `. .local/stack.env && cargo run -p e2e --bin live_latency`.

use std::time::{Duration, Instant};

use e2e::live::{PIPEDRIVE_ANA, PIPEDRIVE_APP_SECRET, pipedrive_extension_token, unix_now};
use e2e::{ALICE_WA_ID, TestSystem, text_delivery};
use serde_json::{Value, json};

const MESSAGES: usize = 50;
/// How often this probe asks (the page asks every 2 s).
const PROBE_EVERY: Duration = Duration::from_millis(20);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let host = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let host_origin = format!("http://{}", host.local_addr().expect("addr"));
    let system =
        TestSystem::start_with_env(&[("LIVE_EXTRA_FRAME_ANCESTORS", host_origin.as_str())]).await;
    let (_, person) = system
        .pipedrive_chat_with_a_fresh_question("wamid.LAT0")
        .await;
    let token = pipedrive_extension_token(
        jsonwebtoken::Algorithm::HS256,
        PIPEDRIVE_APP_SECRET,
        PIPEDRIVE_ANA,
        300,
    );
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
    let panel_origin = system.url("").trim_end_matches('/').to_owned();
    let panel_url = format!(
        "{panel_origin}/live/pipedrive?id=latency&resource=person&selectedIds={}",
        person["id"]
    );
    e2e::browser::serve_host(
        host,
        vec![(
            "/",
            e2e::browser::pipedrive_host_page(&panel_url, &panel_origin, &token),
        )],
    );
    let (browser, driver) = e2e::browser::browser().await;
    browser
        .goto(&format!("{host_origin}/"))
        .await
        .expect("host page");
    browser.enter_frame(0).await.expect("the panel");
    browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(fantoccini::Locator::Css("li[data-id='wamid.LAT0']"))
        .await
        .expect("the page shows the chat");
    let mut latencies = Vec::new();
    let mut on_screen = Vec::new();
    for i in 1..=MESSAGES {
        let id = format!("wamid.LAT{i}");
        // A pause of 0–2 s (a fixed pseudo-random walk) so the messages do
        // not arrive in step with the page's poll.
        let pause = (i as u64 * 7919 + 104_729) % 2000;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let started = Instant::now();
        system
            .post_webhook(&text_delivery(
                ALICE_WA_ID,
                "Alice",
                &id,
                unix_now(),
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
        let probe = format!("return !!document.querySelector(\"li[data-id='{id}']\");");
        loop {
            let shown = browser.execute(&probe, vec![]).await.expect("script runs");
            if shown == json!(true) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{id} never showed in the page"
            );
            tokio::time::sleep(PROBE_EVERY).await;
        }
        on_screen.push(started.elapsed());
    }
    let _ = browser.close().await;
    drop(driver);
    latencies.sort();
    on_screen.sort();
    println!(
        "webhook → on screen in the open page (headless Chromium, 1.5 s poll), {MESSAGES} messages: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        percentile(&on_screen, 50.0).as_secs_f64() * 1000.0,
        percentile(&on_screen, 95.0).as_secs_f64() * 1000.0,
        on_screen
            .last()
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or_default()
    );
    println!(
        "webhook → visible through GET /api/live/chats, {MESSAGES} messages: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms ",
        percentile(&latencies, 50.0).as_secs_f64() * 1000.0,
        percentile(&latencies, 95.0).as_secs_f64() * 1000.0,
        latencies
            .last()
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or_default()
    );
}
