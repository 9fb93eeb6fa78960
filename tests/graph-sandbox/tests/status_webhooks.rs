//! Status webhooks: the fixtures' shape, Meta's signature (checked by an
//! independent HMAC in the receiver), automatic progression, manual and
//! out-of-order emission.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{APP_SECRET, CUSTOMER, Received, Sandbox, text, wamid};
use graph_sandbox::{
    DEFAULT_PHONE_NUMBER_ID, DEFAULT_WABA_ID, DeliveryStatus, GraphSandboxConfig,
    GraphSandboxError, StatusProgression, meta_signature,
};
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../fixtures/whatsapp/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn fixture_status(name: &str) -> Value {
    let v: Value = serde_json::from_slice(&fixture(name)).expect("fixture JSON");
    v["entry"][0]["changes"][0]["value"]["statuses"][0].clone()
}

/// The envelope around the statuses is the fixtures'.
fn assert_envelope(hook: &Received) {
    let fixture: Value =
        serde_json::from_slice(&fixture("cloud-status-delivered.json")).expect("fixture");
    assert_eq!(hook.json["object"], "whatsapp_business_account");
    assert_eq!(hook.json["entry"][0]["id"], DEFAULT_WABA_ID);
    let change = &hook.json["entry"][0]["changes"][0];
    assert_eq!(change["field"], "messages");
    assert_eq!(
        change["value"]["metadata"],
        fixture["entry"][0]["changes"][0]["value"]["metadata"]
    );
    assert_eq!(change["value"]["messaging_product"], "whatsapp");
    assert_eq!(hook.content_type.as_deref(), Some("application/json"));
}

#[test]
fn the_signature_matches_the_fixture_vectors() {
    // README of the fixtures: app secret and X-Hub-Signature-256 per file.
    assert_eq!(
        meta_signature(
            APP_SECRET.as_bytes(),
            &fixture("cloud-status-delivered.json")
        ),
        "sha256=e1d212e8e5bfe150c62f00ebc6b73c3d755d846787a78bdd26bdb0a70c8f57ea"
    );
    assert_eq!(
        meta_signature(
            APP_SECRET.as_bytes(),
            &fixture("cloud-text-unicode-escaped.json")
        ),
        "sha256=624d72fb5ddc38de3af6704ae4fe732003a520b0896e1d141f4cf2129b0f41e9"
    );
}

#[tokio::test]
async fn a_send_progresses_sent_then_delivered_signed_like_meta() {
    let s = Sandbox::start().await;
    let mut rx = s.listen().await;
    s.open_window();
    let (_, body) = s.send(text("+447700900123", "hi")).await;
    let id = wamid(&body);

    let sent = rx.next().await;
    assert!(sent.signature_valid, "{:?}", sent.signature);
    assert_envelope(&sent);
    assert_eq!(sent.statuses(), vec![(id.clone(), "sent".to_owned())]);
    let status = sent.status();
    assert_eq!(status["recipient_id"], CUSTOMER);
    assert!(
        status["timestamp"]
            .as_str()
            .is_some_and(|t| t.parse::<i64>().is_ok())
    );
    assert_eq!(
        status["pricing"],
        json!({"billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"})
    );
    assert!(status.get("conversation").is_none(), "v24+ shape");

    let delivered = rx.next().await;
    assert!(delivered.signature_valid);
    assert_eq!(
        delivered.statuses(),
        vec![(id.clone(), "delivered".to_owned())]
    );
    assert_eq!(
        keys(delivered.status()),
        keys(&fixture_status("cloud-status-delivered.json"))
    );
    rx.assert_quiet(Duration::from_millis(150)).await;

    // Manual statuses, any order.
    let read = s.sb.emit_status(&id, "read").await.expect("emitted");
    assert_eq!(read.response_status, Some(200));
    let hook = rx.next().await;
    assert!(hook.signature_valid);
    assert_eq!(
        keys(hook.status()),
        keys(&fixture_status("cloud-status-read.json"))
    );
    assert_eq!(hook.raw.as_ref(), read.body.as_bytes());
    assert_eq!(hook.signature, read.signature);

    let failed = s.sb.emit_failure(&id, 131026).await.expect("emitted");
    assert_eq!(failed.statuses[0].error_code, Some(131026));
    let hook = rx.next().await;
    assert_eq!(
        keys(hook.status()),
        keys(&fixture_status("cloud-status-failed.json"))
    );
    assert_eq!(
        keys(&hook.status()["errors"][0]),
        keys(&fixture_status("cloud-status-failed.json")["errors"][0])
    );
    assert_eq!(s.sb.emitted_webhooks().len(), 4);
}

#[tokio::test]
async fn out_of_order_and_batched_statuses() {
    let s = Sandbox::with(GraphSandboxConfig {
        status_progression: StatusProgression {
            until: DeliveryStatus::Read,
            read_before_delivered: true,
            step_delay: Duration::from_millis(5),
            ..StatusProgression::default()
        },
        ..GraphSandboxConfig::default()
    })
    .await;
    let mut rx = s.listen().await;
    s.open_window();
    let (_, body) = s.send(text("+447700900123", "hi")).await;
    let id = wamid(&body);
    let hooks = [rx.next().await, rx.next().await, rx.next().await];
    let order: Vec<String> = hooks.iter().map(|h| h.statuses()[0].1.clone()).collect();
    assert_eq!(order, ["sent", "read", "delivered"]);
    // Timestamps keep the true order.
    let ts = |h: &Received| {
        h.status()["timestamp"]
            .as_str()
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(0)
    };
    assert!(
        ts(&hooks[2]) < ts(&hooks[1]),
        "delivered before read in time"
    );

    let batch =
        s.sb.emit_statuses(&id, &["read", "delivered"])
            .await
            .expect("emitted");
    assert_eq!(batch.statuses.len(), 2);
    let hook = rx.next().await;
    assert!(hook.signature_valid);
    assert_eq!(
        hook.statuses(),
        vec![
            (id.clone(), "read".to_owned()),
            (id.clone(), "delivered".to_owned())
        ]
    );

    assert!(matches!(
        s.sb.emit_status("wamid.unknown", "read").await,
        Err(GraphSandboxError::UnknownMessage(_))
    ));
    assert!(matches!(
        s.sb.emit_status(&id, "seen").await,
        Err(GraphSandboxError::UnknownStatus(_))
    ));
}

#[tokio::test]
async fn progression_off_conversation_on_and_unicode_escaped_bodies() {
    let s = Sandbox::with(GraphSandboxConfig {
        status_progression: StatusProgression {
            enabled: false,
            ..StatusProgression::default()
        },
        include_conversation: true,
        ..GraphSandboxConfig::default()
    })
    .await;
    let mut rx = s.listen().await;
    s.open_window();
    let mut body = text("+447700900123", "hi");
    body["biz_opaque_callback_data"] = json!("café 👍");
    let (_, answer) = s.send(body).await;
    let id = wamid(&answer);
    rx.assert_quiet(Duration::from_millis(150)).await;
    assert!(s.sb.settle_statuses(Duration::from_secs(1)).await);

    s.sb.emit_status(&id, "sent").await.expect("emitted");
    let hook = rx.next().await;
    assert!(hook.signature_valid);
    let raw = String::from_utf8(hook.raw.to_vec()).expect("ASCII body");
    assert!(raw.is_ascii(), "{raw}");
    assert!(raw.contains(r"caf\u00e9 \ud83d\udc4d"), "{raw}");
    assert_eq!(hook.status()["biz_opaque_callback_data"], "café 👍");
    let conversation = &hook.status()["conversation"];
    assert_eq!(conversation["origin"]["type"], "service");
    assert!(conversation["id"].is_string());
    assert!(conversation["expiration_timestamp"].is_string());

    // Without a target the webhook is only recorded; a dead target is
    // recorded with its error.
    s.sb.clear_webhook();
    let quiet = s.sb.emit_status(&id, "delivered").await.expect("recorded");
    assert_eq!((quiet.url, quiet.signature), (None, None));
    s.sb.set_webhook("http://127.0.0.1:9/nowhere", APP_SECRET);
    let dead = s.sb.emit_status(&id, "read").await.expect("recorded");
    assert!(dead.error.is_some() && dead.response_status.is_none());
    let _ = DEFAULT_PHONE_NUMBER_ID;
}
