//! `POST /{version}/{phone_number_id}/messages`: sends, the 24-hour window,
//! injected errors, mark-as-read and what the handle records.

mod common;

use std::time::Duration;

use common::{CUSTOMER, Sandbox, code, hello_world, text, unix_now, wamid};
use graph_sandbox::{
    DEFAULT_PHONE_NUMBER_ID, Endpoint, GraphSandboxConfig, SendOutcome, StatusProgression,
    WindowErrorMode,
};
use serde_json::json;

#[tokio::test]
async fn a_text_inside_the_window_is_accepted_like_meta_answers() {
    let s = Sandbox::start().await;
    s.open_window();
    let (status, body) = s.send(text("+447700900123", "Hello 👋")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["contacts"][0]["input"], "+447700900123");
    assert_eq!(body["contacts"][0]["wa_id"], CUSTOMER);
    let id = body["messages"][0]["id"].as_str().expect("wamid");
    assert!(id.starts_with("wamid."), "{id}");

    let sent = s.sb.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, "text");
    assert_eq!(sent[0].wa_id.as_deref(), Some(CUSTOMER));
    assert_eq!(sent[0].message_id.as_deref(), Some(id));
    assert_eq!(sent[0].outcome, SendOutcome::Accepted);
    assert_eq!(sent[0].body["text"]["body"], "Hello 👋");
    assert_eq!(s.sb.request_count(Endpoint::Messages), 1);
}

#[tokio::test]
async fn a_number_without_plus_gets_the_business_country_code() {
    let s = Sandbox::start().await;
    s.open_window();
    let (status, body) = s.send(text("07700 900123", "hi")).await;
    // `0` is kept: Meta prefixes 44 to what it is given (reference §8).
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["contacts"][0]["wa_id"], "4407700900123");
    let (_, body) = s.send(text("7700900123", "hi")).await;
    assert_eq!(body["contacts"][0]["wa_id"], CUSTOMER);
}

#[tokio::test]
async fn token_number_and_parameters_are_checked() {
    let s = Sandbox::start().await;
    s.open_window();
    let (status, body) = s
        .send_as(DEFAULT_PHONE_NUMBER_ID, "wrong", text("+447700900123", "x"))
        .await;
    assert_eq!((status, code(&body)), (401, 190));

    let (status, body) = s
        .send_as(
            "999",
            graph_sandbox::DEFAULT_ACCESS_TOKEN,
            text("+447700900123", "x"),
        )
        .await;
    assert_eq!((status, code(&body)), (400, 100));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Unsupported post request")),
        "{body}"
    );

    let cases = [
        json!({"to": "+447700900123", "type": "text", "text": {"body": "x"}}),
        json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}),
        json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "poll"}),
        json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "text"}),
        json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "text", "text": {"body": ""}}),
        json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "text", "text": {"body": "x", "preview_url": "yes"}}),
        json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "image", "image": {}}),
        json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "image", "image": {"link": "ftp://x/y.jpg"}}),
        json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "image", "image": {"id": "1", "link": "https://x/y.jpg"}}),
        json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "audio", "audio": {"link": "https://x/a.ogg", "caption": "no"}}),
        json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "image", "image": {"link": "https://x/a.jpg", "filename": "a.jpg"}}),
        json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "reaction", "reaction": {"message_id": "wamid.X"}}),
        json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "text", "text": {"body": "x"}, "context": {}}),
        json!({"messaging_product": "whatsapp", "to": "not a number", "type": "text", "text": {"body": "x"}}),
        json!("not an object"),
    ];
    for case in cases {
        let (status, body) = s.send(case.clone()).await;
        assert_eq!((status, code(&body)), (400, 100), "{case} → {body}");
        assert!(body["error"]["fbtrace_id"].is_string());
        assert!(body["error"]["error_data"]["details"].is_string(), "{body}");
        assert_eq!(body["error"]["type"], "OAuthException");
    }
    let (status, _) = s
        .send(
            json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "text",
                     "text": {"body": "x".repeat(4097)}}),
        )
        .await;
    assert_eq!(status, 400);
    // Sending to the business's own number.
    let (status, body) = s.send(text("+447700900100", "me")).await;
    assert_eq!((status, code(&body)), (400, 131021));
    assert!(
        s.sb.sent_messages()
            .iter()
            .all(|m| matches!(m.outcome, SendOutcome::Refused { .. }))
    );
}

#[tokio::test]
async fn outside_the_window_free_form_fails_in_a_status_webhook_by_default() {
    let s = Sandbox::start().await;
    let mut rx = s.listen().await;
    // Never wrote: accepted, then `failed` with 131047 and nothing else.
    let (status, body) = s.send(text("+447700900456", "hello?")).await;
    assert_eq!(status, 200, "{body}");
    let id = wamid(&body);
    let hook = rx.next().await;
    assert_eq!(hook.statuses(), vec![(id.clone(), "failed".to_owned())]);
    let error = &hook.status()["errors"][0];
    assert_eq!(error["code"], 131047);
    assert_eq!(error["title"], "Re-engagement message");
    assert!(error["error_data"]["details"].is_string());
    assert_eq!(hook.status()["recipient_id"], "447700900456");
    rx.assert_quiet(Duration::from_millis(150)).await;
    assert_eq!(
        s.sb.sent_messages()[0].outcome,
        SendOutcome::AcceptedThenFailed { code: 131047 }
    );

    // Wrote 25 hours ago: closed too.
    s.sb.record_inbound(
        DEFAULT_PHONE_NUMBER_ID,
        "447700900456",
        unix_now() - 25 * 3600,
    );
    let (status, _) = s.send(text("+447700900456", "late")).await;
    assert_eq!(status, 200);
    assert_eq!(rx.next().await.status()["errors"][0]["code"], 131047);

    // Wrote now: open, until the clock passes 24 hours.
    s.sb.record_inbound(DEFAULT_PHONE_NUMBER_ID, "+447700900456", unix_now());
    let (_, body) = s.send(text("+447700900456", "in time")).await;
    let id = wamid(&body);
    assert_eq!(rx.next().await.statuses(), vec![(id, "sent".to_owned())]);
    assert_eq!(rx.next().await.statuses()[0].1, "delivered");
    s.sb.advance_clock(Duration::from_secs(24 * 3600 + 1));
    s.send(text("+447700900456", "too late")).await;
    assert_eq!(rx.next().await.status()["status"], "failed");
    assert!(s.sb.settle_statuses(Duration::from_secs(2)).await);
}

#[tokio::test]
async fn outside_the_window_can_be_an_http_error() {
    let s = Sandbox::with(GraphSandboxConfig {
        window_error_mode: WindowErrorMode::HttpError,
        ..GraphSandboxConfig::default()
    })
    .await;
    let (status, body) = s.send(text("+447700900456", "hello?")).await;
    assert_eq!((status, code(&body)), (400, 131047));
    assert_eq!(body["error"]["message"], "(#131047) Re-engagement message");
    assert_eq!(body["error"]["error_data"]["messaging_product"], "whatsapp");
    assert!(body["error"].get("error_subcode").is_none());
    // Templates go whatever the window.
    let (status, body) = s.send(hello_world("+447700900456")).await;
    assert_eq!(status, 200, "{body}");
    s.sb.set_window_error_mode(WindowErrorMode::StatusWebhook);
    let (status, _) = s.send(text("+447700900456", "again")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn injected_send_errors_answer_graph_errors_once_each() {
    let s = Sandbox::start().await;
    s.open_window();
    for (code_, status) in [(130429, 400), (131056, 400), (131026, 400), (131000, 500)] {
        s.sb.fail_next_send(code_);
        let (got, body) = s.send(text("+447700900123", "x")).await;
        assert_eq!((got, code(&body)), (status, code_), "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&format!("(#{code_})")))
        );
    }
    let (status, _) = s.send(text("+447700900123", "x")).await;
    assert_eq!(status, 200, "faults are used up");
    // Plain HTTP faults of the endpoint (Graph code 1/2).
    s.sb.fail_next_at(Endpoint::Messages, 1, 503);
    let (status, body) = s.send(text("+447700900123", "x")).await;
    assert_eq!((status, code(&body)), (503, 2));
    let refused: Vec<_> =
        s.sb.sent_messages()
            .into_iter()
            .filter_map(|m| match m.outcome {
                SendOutcome::Refused { code, .. } => Some(code),
                _ => None,
            })
            .collect();
    assert_eq!(refused, vec![130429, 131056, 131026, 131000]);
}

#[tokio::test]
async fn an_injected_delivery_failure_comes_as_a_failed_status() {
    let s = Sandbox::start().await;
    let mut rx = s.listen().await;
    s.open_window();
    s.sb.fail_next_delivery(131026);
    let (status, body) = s.send(text("+447700900123", "x")).await;
    assert_eq!(status, 200);
    let hook = rx.next().await;
    assert_eq!(
        hook.statuses()[0],
        (
            body["messages"][0]["id"].as_str().unwrap_or("").to_owned(),
            "failed".to_owned()
        )
    );
    assert_eq!(hook.status()["errors"][0]["code"], 131026);
    assert_eq!(hook.status()["errors"][0]["title"], "Message undeliverable");
}

#[tokio::test]
async fn reactions_replies_and_other_types() {
    let s = Sandbox::with(GraphSandboxConfig {
        status_progression: StatusProgression {
            until: graph_sandbox::DeliveryStatus::Read,
            ..StatusProgression::default()
        },
        ..GraphSandboxConfig::default()
    })
    .await;
    let mut rx = s.listen().await;
    s.open_window();
    let inbound = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0VCMDRBQTA1RjA0OEQ5MjJCQjcA";
    // Removing a reaction: empty emoji.
    for emoji in ["👍", ""] {
        let (status, body) = s
            .send(
                json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                         "to": "+447700900123", "type": "reaction",
                         "reaction": {"message_id": inbound, "emoji": emoji}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        // Reactions only ever get `sent`.
        assert_eq!(rx.next().await.statuses()[0].1, "sent");
    }
    rx.assert_quiet(Duration::from_millis(150)).await;

    let (status, body) = s
        .send(
            json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "text",
                     "context": {"message_id": inbound}, "text": {"body": "quoted"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<String> = [rx.next().await, rx.next().await, rx.next().await]
        .iter()
        .map(|h| h.statuses()[0].1.clone())
        .collect();
    assert_eq!(statuses, ["sent", "delivered", "read"]);
    let reply = s.sb.sent_messages().pop().expect("recorded");
    assert_eq!(reply.body["context"]["message_id"], inbound);

    let (status, _) = s
        .send(
            json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "location",
                     "location": {"latitude": 51.5, "longitude": -0.12}}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn mark_as_read_and_typing_indicator() {
    let s = Sandbox::start().await;
    let mut rx = s.listen().await;
    let inbound = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0VCMDRBQTA1RjA0OEQ5MjJCQjcA";
    s.sb.record_inbound_message(DEFAULT_PHONE_NUMBER_ID, CUSTOMER, inbound, unix_now());
    let read = json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound});
    let (status, body) = s.send(read.clone()).await;
    assert_eq!((status, body.clone()), (200, json!({"success": true})));
    let mut typing = read.clone();
    typing["typing_indicator"] = json!({"type": "text"});
    let (status, body) = s.send(typing).await;
    assert_eq!((status, body), (200, json!({"success": true})));
    // No webhook for reads.
    rx.assert_quiet(Duration::from_millis(100)).await;

    let (status, body) = s
        .send(json!({"messaging_product": "whatsapp", "status": "read"}))
        .await;
    assert_eq!((status, code(&body)), (400, 100));
    let (status, body) = s
        .send(json!({"messaging_product": "whatsapp", "status": "read", "message_id": "nope"}))
        .await;
    assert_eq!((status, code(&body)), (400, 131009));
    // Outgoing messages cannot be marked.
    let (_, sent) = s.send(text("+447700900123", "hi")).await;
    let own = sent["messages"][0]["id"].clone();
    let (status, body) = s
        .send(json!({"messaging_product": "whatsapp", "status": "read", "message_id": own}))
        .await;
    assert_eq!((status, code(&body)), (400, 131009));
    // 30 days on, too old.
    s.sb.advance_clock(Duration::from_secs(31 * 24 * 3600));
    let (status, body) = s.send(read).await;
    assert_eq!((status, code(&body)), (400, 131009));
    let kinds: Vec<String> = s.sb.sent_messages().into_iter().map(|m| m.kind).collect();
    assert_eq!(kinds[..2], ["read", "read"]);
}
