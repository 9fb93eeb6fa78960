//! Live chat inside the CRM record, as far as it goes today: who the user
//! in Pipedrive's frame is (its signed extension token, never the unsigned
//! query), and which chats a record shows them — read with their own
//! Pipedrive token, so a record they cannot see shows nothing.

use e2e::live::{
    PIPEDRIVE_APP_SECRET as APP_SECRET, pipedrive_extension_token as signed, unix_now,
};
use e2e::{ALICE_WA_ID, TestSystem, messages_delivery};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

/// 2026-05-20 09:15 UTC.
const MAY_20_0915: i64 = 1_779_268_500;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipedrive_user_sees_the_chats_of_a_person_they_can_see_and_nothing_else() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("ana@acme.example", "UTC").await;
    // Ana connects the organization (and so herself).
    system
        .connect_pipedrive(&workspace, "ana@acme.example", json!({}))
        .await;
    system
        .post_webhook(&messages_delivery(
            ALICE_WA_ID,
            "Alice",
            &[
                ("wamid.LIVE1", MAY_20_0915, "Hi, is it still for sale?"),
                ("wamid.LIVE2", MAY_20_0915 + 60, "I can come tomorrow 😊"),
            ],
        ))
        .await;
    let (person, _) = system
        .wait_for_pipedrive_note("+447700900123", "come tomorrow")
        .await;
    let record = format!("persons/{}", person["id"]);

    // Tokens Pipedrive did not sign as we expect are refused.
    for (what, token) in [
        (
            "expired",
            signed(Algorithm::HS256, APP_SECRET, 11_001, -120),
        ),
        (
            "forged",
            signed(Algorithm::HS256, "not-the-secret", 11_001, 300),
        ),
        ("HS512", signed(Algorithm::HS512, APP_SECRET, 11_001, 300)),
        ("garbage", "not.a.token".to_owned()),
    ] {
        let (status, body) = system.start_live_session(&token).await;
        assert_eq!(status, 401, "{what}: {body}");
    }
    // Bruno is a Pipedrive user of the company without a connection of his own.
    let (status, body) = system
        .start_live_session(&signed(Algorithm::HS256, APP_SECRET, 11_002, 300))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "not_connected", "{body}");

    let (status, body) = system
        .start_live_session(&signed(Algorithm::HS256, APP_SECRET, 11_001, 300))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["workspace_id"], workspace.id.as_str());
    let session = body["session"].as_str().expect("a session").to_owned();

    let (status, view) = system.live_record_chats(Some(&session), &record).await;
    assert_eq!(status, 200, "{view}");
    assert!(
        view["numbers"]
            .as_array()
            .is_some_and(|n| n.contains(&json!("+447700900123"))),
        "{view}"
    );
    let chat = &view["chats"][0];
    assert_eq!(chat["contact"], "+447700900123");
    assert_eq!(chat["contact_name"], "Alice");
    assert_eq!(
        chat["window_closes_at"],
        MAY_20_0915 + 60 + 24 * 3600,
        "24 h after her last message"
    );
    let texts: Vec<&str> = chat["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        ["I can come tomorrow 😊", "Hi, is it still for sale?"],
        "newest first"
    );
    assert_eq!(chat["messages"][0]["state"], "appended", "saved to the CRM");

    // No session, a tampered one, a record that is not there: nothing.
    let (status, _) = system.live_record_chats(None, &record).await;
    assert_eq!(status, 401);
    let (status, _) = system
        .live_record_chats(Some(&format!("{session}x")), &record)
        .await;
    assert_eq!(status, 401);
    let (status, body) = system
        .live_record_chats(Some(&session), "persons/987654")
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = system
        .live_record_chats(Some(&session), "organizations/1")
        .await;
    assert_eq!(status, 404, "a module with no chats: {body}");
    // A person with no chat shows the numbers and no chat ("start a chat").
    let other = system
        .pipedrive
        .insert_person(json!({ "name": "Nobody", "phones": [{ "value": "+447700900999" }] }))
        .expect("person");
    let (status, body) = system
        .live_record_chats(Some(&session), &format!("persons/{other}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["chats"], json!([]));
    system.assert_pipedrive_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unsigned_query_is_never_trusted() {
    let system = TestSystem::start().await;
    // What Pipedrive's iframe query carries (userId, companyId) is no token.
    let response = system
        .http
        .post(system.url("/api/live/pipedrive/session?userId=11001&companyId=7100001"))
        .json(&json!({}))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 400);
    let (status, _) = system.live_record_chats(None, "persons/1").await;
    assert_eq!(status, 401);
}

/// The delivery status the chat view shows for `message_id`.
async fn delivery_of(system: &TestSystem, session: &str, record: &str, message_id: &str) -> Value {
    let (_, view) = system.live_record_chats(Some(session), record).await;
    view["chats"][0]["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["message_id"] == message_id)
        .map(|m| m["delivery"]["status"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_from_pipedrive_is_sent_once_ticks_on_and_lands_in_the_day_note() {
    let system = TestSystem::start().await;
    let (workspace, person) = system
        .pipedrive_chat_with_a_fresh_question("wamid.ASK1")
        .await;
    let record = format!("persons/{}", person["id"]);
    let (_, body) = system
        .start_live_session(&signed(Algorithm::HS256, APP_SECRET, 11_001, 300))
        .await;
    let session = body["session"].as_str().expect("a session").to_owned();

    let reply = json!({ "client_id": "click-1", "text": "Yes, Friday 10:00 works 👍", "reply_to": "wamid.ASK1" });
    let (status, sent) = system.live_send(&session, ALICE_WA_ID, reply.clone()).await;
    assert_eq!(status, 201, "{sent}");
    let message_id = sent["message_id"].as_str().expect("an id").to_owned();
    // A double click sends once.
    let (status, again) = system.live_send(&session, ALICE_WA_ID, reply).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["message_id"], message_id.as_str());
    assert_eq!(again["duplicate"], true);
    let texts: Vec<Value> = system
        .graph
        .sent_messages()
        .into_iter()
        .map(|m| m.body)
        .filter(|b| b["type"] == "text")
        .collect();
    assert_eq!(texts.len(), 1, "{texts:#?}");
    assert_eq!(texts[0]["to"], "+447700900123");
    assert_eq!(texts[0]["context"]["message_id"], "wamid.ASK1");

    // Status webhooks, signed by the Graph sandbox, tick it on.
    system
        .eventually("the reply to show delivered", || async {
            match delivery_of(&system, &session, &record, &message_id).await {
                v if v == "delivered" => Ok(()),
                other => Err(format!("it shows {other}")),
            }
        })
        .await;
    // Out of order: read, then a late sent — it stays read.
    system
        .graph
        .emit_statuses(&message_id, &["read", "sent"])
        .await
        .expect("emitted");
    system
        .eventually("the reply to show read", || async {
            match delivery_of(&system, &session, &record, &message_id).await {
                v if v == "read" => Ok(()),
                other => Err(format!("it shows {other}")),
            }
        })
        .await;

    // The day note gets the outgoing line once, with who sent it.
    let (_, note) = system
        .wait_for_pipedrive_note("+447700900123", "Friday 10:00 works")
        .await;
    let content = note["content"].as_str().expect("content");
    assert_eq!(
        content.matches("Friday 10:00 works").count(),
        1,
        "{content}"
    );
    assert!(
        content.contains("→ ana@acme.example (Business +447700900100): Yes, Friday 10:00 works 👍"),
        "{content}"
    );

    // A chat whose window closed: free text is refused before Meta sees it.
    let old = unix_now() - 2 * 24 * 3600;
    system
        .post_webhook(&e2e::text_delivery(
            "447700900456",
            "Bob",
            "wamid.BOB1",
            old,
            "Hello?",
        ))
        .await;
    system
        .wait_for_message_state("wamid.BOB1", "appended")
        .await;
    let before = system.graph.sent_messages().len();
    let (status, refused) = system
        .live_send(
            &session,
            "447700900456",
            json!({ "client_id": "click-2", "text": "Sorry for the delay" }),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused.to_string().contains("template"), "{refused}");
    assert_eq!(system.graph.sent_messages().len(), before, "nothing sent");

    // Templates: the number names its business account, whose approved
    // templates the composer offers; one goes out with its parameters.
    system
        .give_the_number_its_business_account(&workspace)
        .await;
    let response = system
        .http
        .get(system.url(&format!(
            "/api/live/chats/{}/templates",
            e2e::chat_key_param("447700900456")
        )))
        .header("x-live-session", &session)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let listed: Value = response.json().await.expect("JSON");
    let templates = listed["templates"].as_array().cloned().unwrap_or_default();
    assert!(
        templates
            .iter()
            .any(|t| t["name"] == "order_update" && t["language"] == "en" && t["parameters"] == 2),
        "{listed}"
    );
    assert!(templates.iter().all(|t| t["name"] != ""), "{listed}");
    let wrong = system.live_send(
        &session,
        "447700900456",
        json!({ "client_id": "tpl-0", "template": { "name": "order_update", "language": "en", "parameters": ["Bob"] } }),
    )
    .await;
    assert_eq!(wrong.0, 409, "{}", wrong.1);
    assert!(
        wrong.1.to_string().contains("parameters do not match"),
        "{}",
        wrong.1
    );
    let (status, sent) = system.live_send(
        &session,
        "447700900456",
        json!({ "client_id": "tpl-1", "template": { "name": "order_update", "language": "en", "parameters": ["Bob", "#42"] } }),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    let last = system.graph.sent_messages().pop().expect("a send");
    assert_eq!(last.body["type"], "template");
    assert_eq!(
        last.body["template"]["components"][0]["parameters"][1]["text"],
        "#42"
    );
    system.assert_pipedrive_contract_kept();
}
