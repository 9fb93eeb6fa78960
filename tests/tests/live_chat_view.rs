//! The reading side of live chat, through the HTTP API as the page uses
//! it: a chat as the page draws it (a reply with an excerpt of what it
//! quotes, reactions on their message, media described and shown), what is
//! unread until the user marks it read (WhatsApp told once), the 2-second
//! poll's `ETag`, paging back; and the content at rest: encrypted in the
//! table, gone from the view with the workspace's retention, and with the
//! workspace when it is deleted.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::live::{PIPEDRIVE_ANA, alice_message, from_alice, unix_now as now};
use e2e::{ALICE_WA_ID, PHONE_NUMBER_ID, TestSystem, TestWorkspace};
use graph_sandbox::{SeedMedia, SeedPhoneNumber};
use reqwest::Method;
use serde_json::{Value, json};

const DAY: i64 = 24 * 3600;
const BOB_WA_ID: &str = "447700900456";
const SECOND_NUMBER_ID: &str = "170000000000002";
const SECOND_NUMBER: &str = "447700900200";
const PHOTO_MEDIA_ID: &str = "1300000000000001";
const PLAN_MEDIA_ID: &str = "1300000000000002";

type Item = HashMap<String, AttributeValue>;

/// Alice's chat on the fixtures' first number, as the chat view names it.
fn alice_chat() -> String {
    format!("{PHONE_NUMBER_ID}#{ALICE_WA_ID}")
}

/// The record's chat with `chat_key` in a view answer.
fn chat_in<'a>(view: &'a Value, chat_key: &str) -> &'a Value {
    view["chats"]
        .as_array()
        .and_then(|chats| chats.iter().find(|c| c["chat_key"] == chat_key))
        .unwrap_or_else(|| panic!("the view shows chat {chat_key}: {view}"))
}

/// A message of a chat view, by id.
fn message_in<'a>(chat: &'a Value, message_id: &str) -> &'a Value {
    chat["messages"]
        .as_array()
        .and_then(|messages| messages.iter().find(|m| m["message_id"] == message_id))
        .unwrap_or_else(|| panic!("the chat shows {message_id}: {chat}"))
}

fn ids(chat: &Value) -> Vec<String> {
    chat["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["message_id"].as_str().map(str::to_owned))
        .collect()
}

/// Alice's chat as the record shows it, once `ready` says it shows what
/// the test waits for.
async fn alice_chat_when(
    system: &TestSystem,
    session: &str,
    record: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    system
        .eventually(what, || async {
            let (status, view) = system.live_record_chats(Some(session), record).await;
            if status != 200 {
                return Err(format!("{status}: {view}"));
            }
            let chat = chat_in(&view, &alice_chat()).clone();
            if ready(&chat) {
                Ok(chat)
            } else {
                Err(chat.to_string())
            }
        })
        .await
}

async fn mark_read(system: &TestSystem, session: &str, chat_key: &str, id: &str) -> (u16, Value) {
    let path = format!("/api/live/chats/{}/read", e2e::urlencode(chat_key));
    system
        .live_post(session, &path, json!({ "message_id": id }))
        .await
}

/// `GET …/media/{id}` of a chat: status, content type and bytes.
async fn media(
    system: &TestSystem,
    session: &str,
    chat_key: &str,
    id: &str,
) -> (u16, String, Vec<u8>) {
    let response = system
        .http
        .get(system.url(&format!(
            "/api/live/chats/{}/media/{id}",
            e2e::urlencode(chat_key)
        )))
        .header("x-live-session", session)
        .send()
        .await
        .expect("answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.bytes().await.expect("a body").to_vec();
    (status, content_type, bytes)
}

/// The view with `If-None-Match`: status, `ETag` and body.
async fn view_if_changed(
    system: &TestSystem,
    session: &str,
    record: &str,
    etag: Option<&str>,
) -> (u16, String, String) {
    let mut request = system
        .http
        .get(system.url(&format!("/api/live/chats?record={record}")))
        .header("x-live-session", session);
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    let response = request.send().await.expect("answers");
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, etag, response.text().await.unwrap_or_default())
}

/// The mark-as-read calls the Graph sandbox took, by message id.
fn read_calls(system: &TestSystem) -> Vec<String> {
    system
        .graph
        .sent_messages()
        .into_iter()
        .filter(|m| m.kind == "read")
        .filter_map(|m| m.message_id)
        .collect()
}

/// A workspace's item as DynamoDB holds it.
async fn raw_item(system: &TestSystem, workspace: &TestWorkspace, sk: &str) -> Item {
    aws_sdk_dynamodb::Client::new(&system.local.aws)
        .get_item()
        .table_name(&system.local.stack.table_name)
        .key("pk", AttributeValue::S(format!("WS#{}", workspace.id)))
        .key("sk", AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .unwrap_or_else(|| panic!("{sk} is stored"))
}

/// Every string an item holds, however deep.
fn strings_of(item: &Item) -> Vec<String> {
    fn walk(value: &AttributeValue, out: &mut Vec<String>) {
        match value {
            AttributeValue::S(s) => out.push(s.clone()),
            AttributeValue::M(m) => m.values().for_each(|v| walk(v, out)),
            AttributeValue::L(l) => l.iter().for_each(|v| walk(v, out)),
            AttributeValue::Ss(ss) => out.extend(ss.iter().cloned()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    item.values().for_each(|v| walk(v, &mut out));
    out
}

/// Fails unless the stored item holds none of `clear` in any attribute,
/// and holds each of `sealed` (`<field>_enc`).
async fn assert_sealed(
    system: &TestSystem,
    workspace: &TestWorkspace,
    sk: &str,
    clear: &[&str],
    sealed: &[&str],
) {
    let item = raw_item(system, workspace, sk).await;
    let strings = strings_of(&item);
    for text in clear {
        assert!(
            strings.iter().all(|s| !s.contains(text)),
            "{sk} holds `{text}` in clear: {item:?}"
        );
    }
    for attribute in sealed {
        assert!(
            item.get(*attribute).and_then(|v| v.as_s().ok()).is_some(),
            "{sk} has its sealed {attribute}: {item:?}"
        );
    }
}

/// The usual start: Ana's Pipedrive workspace, Alice asking a minute ago
/// as `question`; the workspace, Alice's person (as a record) and Ana's
/// live-chat session.
async fn alice_asks(system: &TestSystem, question: &str) -> (TestWorkspace, String, String) {
    let (workspace, person) = system.pipedrive_chat_with_a_fresh_question(question).await;
    let session = system.pipedrive_live_session(PIPEDRIVE_ANA).await;
    (workspace, format!("persons/{}", person["id"]), session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_reads_as_the_page_draws_it_and_its_content_is_encrypted_at_rest() {
    let system = TestSystem::start().await;
    let (workspace, record, session) = alice_asks(&system, "wamid.ASK1").await;

    // Ana answers, quoting the question.
    let (status, sent) = system.live_send(&session,
        ALICE_WA_ID,
        json!({ "client_id": "c1", "text": "Yes, Friday 10:00 works", "reply_to": "wamid.ASK1" }),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    let answer = sent["message_id"].as_str().expect("an id").to_owned();

    // Alice reacts to it, changes her reaction, and sends a photo and a
    // floor plan too large for a preview.
    let photo: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 256) as u8).collect();
    system.graph.seed_media(SeedMedia::bytes(
        PHOTO_MEDIA_ID,
        "image/jpeg",
        photo.clone(),
    ));
    system.graph.seed_media(
        SeedMedia::generated(PLAN_MEDIA_ID, "application/pdf", 5_000_000)
            .with_filename("Floor plan.pdf"),
    );
    let t = now();
    system
        .post_webhook(&from_alice(vec![
            alice_message("wamid.R1", t + 1, "reaction", json!({ "message_id": answer, "emoji": "👍" })),
            alice_message("wamid.R2", t + 2, "reaction", json!({ "message_id": answer, "emoji": "❤️" })),
            alice_message(
                "wamid.PHOTO",
                t + 3,
                "image",
                json!({ "id": PHOTO_MEDIA_ID, "mime_type": "image/jpeg", "sha256": "x", "caption": "The damp patch" }),
            ),
            alice_message(
                "wamid.PLAN",
                t + 4,
                "document",
                json!({ "id": PLAN_MEDIA_ID, "mime_type": "application/pdf", "sha256": "x", "filename": "Floor plan.pdf" }),
            ),
        ]))
        .await;
    let chat = alice_chat_when(&system, &session, &record, "the floor plan", |chat| {
        ids(chat).first().map(String::as_str) == Some("wamid.PLAN")
    })
    .await;

    // Reactions are on the answer, not bubbles of their own.
    assert_eq!(
        ids(&chat),
        ["wamid.PLAN", "wamid.PHOTO", answer.as_str(), "wamid.ASK1"],
        "newest first, no reaction bubbles: {chat}"
    );
    let shown = message_in(&chat, &answer);
    assert_eq!(
        shown["reply_to"],
        json!({ "message_id": "wamid.ASK1", "excerpt": "Can I visit on Friday?", "direction": "inbound" })
    );
    assert_eq!(
        shown["reactions"],
        json!([{ "emoji": "❤️", "direction": "inbound", "timestamp": t + 2 }]),
        "her latest reaction only"
    );
    assert_eq!(
        message_in(&chat, "wamid.PHOTO")["media"],
        json!({ "kind": "image", "mime_type": "image/jpeg", "file_name": format!("image-{PHOTO_MEDIA_ID}.jpg"), "caption": "The damp patch" })
    );
    assert_eq!(
        message_in(&chat, "wamid.PLAN")["media"]["file_name"],
        "Floor plan.pdf"
    );
    assert_eq!(chat["can_send"], true, "Ana owns the number");
    assert_eq!(chat["unread"], 3, "her question, photo and plan: {chat}");
    assert_eq!(chat["read_up_to"], Value::Null);
    assert_eq!(chat["next_before"], Value::Null, "one page");

    // She takes her reaction back: the answer has none.
    system
        .post_webhook(&from_alice(vec![alice_message(
            "wamid.R3",
            t + 5,
            "reaction",
            json!({ "message_id": answer }),
        )]))
        .await;
    alice_chat_when(&system, &session, &record, "the reaction removed", |chat| {
        message_in(chat, &answer)["reactions"] == json!([])
    })
    .await;

    // The photo's bytes are the Graph API's; the plan is too large to show.
    let chat_key = alice_chat();
    let (status, content_type, bytes) = media(&system, &session, &chat_key, "wamid.PHOTO").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "image/jpeg");
    assert_eq!(bytes, photo, "the file WhatsApp holds");
    assert_eq!(
        system.graph.media_bytes(PHOTO_MEDIA_ID).as_deref(),
        Some(photo.as_slice())
    );
    let (status, _, body) = media(&system, &session, &chat_key, "wamid.PLAN").await;
    assert_eq!(status, 413);
    let refusal: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(refusal["error"]["code"], "payload_too_large", "{refusal}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("5.0 MB") && m.contains("4.5 MB")),
        "{refusal}"
    );
    // A message without a file, another chat's, another workspace's: 404.
    let (status, ..) = media(&system, &session, &chat_key, "wamid.ASK1").await;
    assert_eq!(status, 404, "no file");
    system
        .post_webhook(&e2e::text_delivery(
            BOB_WA_ID,
            "Bob",
            "wamid.BOB1",
            now(),
            "Hello?",
        ))
        .await;
    system
        .wait_for_message_state("wamid.BOB1", "appended")
        .await;
    let (status, ..) = media(&system, &session, &chat_key, "wamid.BOB1").await;
    assert_eq!(status, 404, "Bob's message is not in Alice's chat");
    system.graph.seed_phone_number(SeedPhoneNumber::new(
        SECOND_NUMBER_ID,
        "+44 7700 900200",
        "Lettings Co",
    ));
    system
        .workspace_with_number("erin@other.example", "UTC", SECOND_NUMBER_ID, SECOND_NUMBER)
        .await;
    system
        .post_webhook(&e2e::delivery_to(
            SECOND_NUMBER_ID,
            SECOND_NUMBER,
            ALICE_WA_ID,
            "Alice",
            vec![alice_message(
                "wamid.ELSEWHERE",
                now(),
                "image",
                json!({ "id": PHOTO_MEDIA_ID, "mime_type": "image/jpeg", "sha256": "x" }),
            )],
        ))
        .await;
    system
        .wait_for_message_state("wamid.ELSEWHERE", "waiting")
        .await;
    let elsewhere = format!("{SECOND_NUMBER_ID}#{ALICE_WA_ID}");
    for (chat, id) in [
        (&elsewhere, "wamid.ELSEWHERE"),
        (&chat_key, "wamid.ELSEWHERE"),
    ] {
        let (status, ..) = media(&system, &session, chat, id).await;
        assert_eq!(status, 404, "another workspace's message in {chat}");
    }

    // At rest, the table holds none of it in clear.
    assert_sealed(
        &system,
        &workspace,
        "MSG#wamid.ASK1",
        &["visit on Friday", "Alice"],
        &["text_enc", "contact_name_enc"],
    )
    .await;
    assert_sealed(
        &system,
        &workspace,
        &format!("MSG#{answer}"),
        &["Friday 10:00 works"],
        &["text_enc"],
    )
    .await;
    assert_sealed(
        &system,
        &workspace,
        "MSG#wamid.PHOTO",
        &["damp patch"],
        &["text_enc", "media_caption_enc"],
    )
    .await;
    system
        .wait_for_message_state("wamid.PLAN", "appended")
        .await;
    assert_sealed(
        &system,
        &workspace,
        "MSG#wamid.PLAN",
        &["Floor plan"],
        &["text_enc", "media_filename_enc", "attachment_file_name_enc"],
    )
    .await;
    assert_sealed(
        &system,
        &workspace,
        &format!("CHAT#{chat_key}"),
        &["Alice"],
        &["contact_name_enc", "record_name_enc"],
    )
    .await;

    // The day note's title names Alice, its lines hold what was written.
    let notes = system.sort_keys("NOTE#").await;
    assert!(!notes.is_empty(), "Alice's day note");
    for note in notes {
        assert_sealed(
            &system,
            &workspace,
            &note,
            &["visit on Friday", "Friday 10:00 works", "Alice"],
            &["title_enc"],
        )
        .await;
    }

    // A message stored in clear before content was encrypted still reads.
    let mut legacy = aws_sdk_dynamodb::Client::new(&system.local.aws)
        .put_item()
        .table_name(&system.local.stack.table_name);
    let text = |v: &str| AttributeValue::S(v.to_owned());
    let number = |v: i64| AttributeValue::N(v.to_string());
    for (name, value) in [
        ("pk", text(&format!("WS#{}", workspace.id))),
        ("sk", text("MSG#wamid.LEGACY")),
        ("workspace_id", text(&workspace.id)),
        ("message_id", text("wamid.LEGACY")),
        ("chat_key", text(&chat_key)),
        ("direction", text("inbound")),
        ("timestamp", number(t - 600)),
        ("kind", text("text")),
        ("text", text("Written before encryption")),
        ("media", AttributeValue::Null(true)),
        ("contact_name", text("Alice")),
        ("state", text("queued")),
        ("received_at", number(t - 600)),
        (
            "chat_pk",
            text(&format!("WS#{}#CHAT#{chat_key}", workspace.id)),
        ),
        (
            "chat_sk",
            text(&format!("MSG#{:012}#wamid.LEGACY", t - 600)),
        ),
    ] {
        legacy = legacy.item(name, value);
    }
    legacy.send().await.expect("a legacy item");
    let chat = alice_chat_when(&system, &session, &record, "the legacy message", |chat| {
        ids(chat).contains(&"wamid.LEGACY".to_owned())
    })
    .await;
    assert_eq!(
        message_in(&chat, "wamid.LEGACY")["text"],
        "Written before encryption"
    );
    system.assert_pipedrive_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_messages_are_read_once_marked_and_whatsapp_is_told_once() {
    let system = TestSystem::start().await;
    let (_, record, session) = alice_asks(&system, "wamid.Q1").await;
    let t = now();
    system
        .post_webhook(&from_alice(vec![
            alice_message("wamid.Q2", t, "text", json!({ "body": "Or Saturday?" })),
            alice_message(
                "wamid.Q3",
                t + 1,
                "text",
                json!({ "body": "Either is fine" }),
            ),
        ]))
        .await;
    let chat = alice_chat_when(&system, &session, &record, "three unread", |chat| {
        chat["unread"] == 3
    })
    .await;
    assert_eq!(chat["read_up_to"], Value::Null);
    let chat_key = alice_chat();

    // Read up to her second message: one is left unread.
    let (status, marked) = mark_read(&system, &session, &chat_key, "wamid.Q2").await;
    assert_eq!(status, 200, "{marked}");
    assert_eq!(marked["changed"], true);
    assert_eq!(marked["marked_on_whatsapp"], true);
    assert_eq!(marked["read_up_to"], t);
    assert_eq!(read_calls(&system), ["wamid.Q2"], "WhatsApp told");
    let (_, view) = system.live_record_chats(Some(&session), &record).await;
    let chat = chat_in(&view, &chat_key);
    assert_eq!(chat["unread"], 1, "{chat}");
    assert_eq!(chat["read_up_to"], t);

    // Again, or an earlier message: nothing moves, WhatsApp is not asked.
    for id in ["wamid.Q2", "wamid.Q1"] {
        let (status, marked) = mark_read(&system, &session, &chat_key, id).await;
        assert_eq!(status, 200, "{marked}");
        assert_eq!(marked["changed"], false, "{id}: {marked}");
        assert_eq!(marked["read_up_to"], t, "never back");
    }
    assert_eq!(read_calls(&system), ["wamid.Q2"], "one call");

    // Only the customer's messages of this chat can be marked.
    let (status, sent) = system
        .live_send(
            &session,
            ALICE_WA_ID,
            json!({ "client_id": "r1", "text": "Saturday then" }),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let ours = sent["message_id"].as_str().expect("an id");
    let (status, refused) = mark_read(&system, &session, &chat_key, ours).await;
    assert_eq!(status, 400, "{refused}");
    let (status, _) = mark_read(&system, &session, &chat_key, "wamid.NOPE").await;
    assert_eq!(status, 404);
    let bobs = format!("{PHONE_NUMBER_ID}#{BOB_WA_ID}");
    let (status, _) = mark_read(&system, &session, &bobs, "wamid.Q3").await;
    assert_eq!(status, 404, "not a message of that chat");

    let (status, marked) = mark_read(&system, &session, &chat_key, "wamid.Q3").await;
    assert_eq!(status, 200, "{marked}");
    assert_eq!(marked["changed"], true);
    assert_eq!(read_calls(&system), ["wamid.Q2", "wamid.Q3"]);
    let (_, view) = system.live_record_chats(Some(&session), &record).await;
    assert_eq!(chat_in(&view, &chat_key)["unread"], 0);

    // The poll: the same answer is a 304 without a body; news is a 200.
    // (Ticks and sync states move on for a moment after a send: the check
    // holds once the chat is still.)
    let (etag, again, body) = system
        .eventually("the same answer twice", || async {
            let (status, etag, body) = view_if_changed(&system, &session, &record, None).await;
            if status != 200 || !etag.starts_with('"') {
                return Err(format!("{status} {etag}: {body}"));
            }
            match view_if_changed(&system, &session, &record, Some(&etag)).await {
                (304, again, body) => Ok((etag, again, body)),
                (status, _, body) => Err(format!("{status}: {body}")),
            }
        })
        .await;
    assert_eq!(again, etag, "a 304 names its ETag");
    assert!(body.is_empty(), "{body}");
    system
        .post_webhook(&from_alice(vec![alice_message(
            "wamid.Q4",
            t + 2,
            "text",
            json!({ "body": "See you then" }),
        )]))
        .await;
    let newer = system
        .eventually("the poll to see her new message", || async {
            match view_if_changed(&system, &session, &record, Some(&etag)).await {
                (200, newer, body) if body.contains("See you then") => Ok(newer),
                (status, _, body) => Err(format!("{status}: {body}")),
            }
        })
        .await;
    assert_ne!(newer, etag);
    let (_, view) = system.live_record_chats(Some(&session), &record).await;
    assert_eq!(chat_in(&view, &chat_key)["unread"], 1, "her new message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_chat_pages_back_from_its_newest_messages() {
    let system = TestSystem::start().await;
    let (_, _, session) = alice_asks(&system, "wamid.HI").await;
    let t = now() - 3600;
    let texts: Vec<(String, i64, String)> = (0..53)
        .map(|i| (format!("wamid.BOB{i:02}"), t + i, format!("Line {i}")))
        .collect();
    let messages: Vec<(&str, i64, &str)> = texts
        .iter()
        .map(|(id, at, text)| (id.as_str(), *at, text.as_str()))
        .collect();
    system
        .post_webhook(&e2e::messages_delivery(BOB_WA_ID, "Bob", &messages))
        .await;
    system
        .wait_for_message_state("wamid.BOB52", "appended")
        .await;
    let bob = system
        .pipedrive_persons_with_phone("+447700900456")
        .into_iter()
        .next()
        .expect("Bob's person");
    let record = format!("persons/{}", bob["id"]);
    let chat_key = format!("{PHONE_NUMBER_ID}#{BOB_WA_ID}");

    let (status, view) = system.live_record_chats(Some(&session), &record).await;
    assert_eq!(status, 200, "{view}");
    let first = chat_in(&view, &chat_key);
    let shown = ids(first);
    assert_eq!(shown.len(), 50, "a page of 50");
    assert_eq!(shown.first().map(String::as_str), Some("wamid.BOB52"));
    assert_eq!(shown.last().map(String::as_str), Some("wamid.BOB03"));
    assert_eq!(first["next_before"], "wamid.BOB03");
    assert_eq!(first["unread"], 53, "the whole chat, not the page");

    // As the page asks for older messages: that chat, before its oldest.
    let older_page = format!(
        "{record}&chat={}&before=wamid.BOB03",
        e2e::urlencode(&chat_key)
    );
    let (status, view) = system.live_record_chats(Some(&session), &older_page).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["chats"].as_array().map(Vec::len), Some(1), "{view}");
    let older = chat_in(&view, &chat_key);
    assert_eq!(ids(older), ["wamid.BOB02", "wamid.BOB01", "wamid.BOB00"]);
    assert_eq!(older["next_before"], Value::Null, "the oldest page");

    let (status, body) = system
        .live_record_chats(Some(&session), &format!("{record}&before=wamid.HI"))
        .await;
    assert_eq!(
        status, 404,
        "Alice's message is in none of Bob's chats: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_past_the_retention_leave_the_view_when_the_retention_job_runs() {
    let system = TestSystem::start().await;
    let (workspace, record, session) = alice_asks(&system, "wamid.OLD").await;
    system.wait_for_message_state("wamid.OLD", "appended").await;
    let mut reply = alice_message("wamid.NEW", now(), "text", json!({ "body": "Any news?" }));
    reply["context"] = json!({ "from": ALICE_WA_ID, "id": "wamid.OLD" });
    system.post_webhook(&from_alice(vec![reply])).await;
    system.wait_for_message_state("wamid.NEW", "appended").await;

    // The question finished three days ago (as the table would say had it).
    aws_sdk_dynamodb::Client::new(&system.local.aws)
        .update_item()
        .table_name(&system.local.stack.table_name)
        .key("pk", AttributeValue::S(format!("WS#{}", workspace.id)))
        .key("sk", AttributeValue::S("MSG#wamid.OLD".into()))
        .update_expression("SET retained_from = :then")
        .expression_attribute_values(":then", AttributeValue::N((now() - 3 * DAY).to_string()))
        .send()
        .await
        .expect("backdated");
    let chat = alice_chat_when(&system, &session, &record, "both messages", |chat| {
        ids(chat) == ["wamid.NEW", "wamid.OLD"]
    })
    .await;
    assert_eq!(
        message_in(&chat, "wamid.NEW")["reply_to"]["excerpt"],
        "Can I visit on Friday?"
    );

    // A day's retention: the job gives the question its expiry, long past.
    let (status, body) = system
        .call(
            Method::PUT,
            "/api/workspace/retention",
            &workspace.owner_token,
            Some(json!({ "days": 1 })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let chat = alice_chat_when(&system, &session, &record, "the question gone", |chat| {
        ids(chat) == ["wamid.NEW"]
    })
    .await;
    assert_eq!(
        message_in(&chat, "wamid.NEW")["reply_to"],
        json!({ "message_id": "wamid.OLD", "excerpt": null, "direction": null }),
        "the quote stays, its text went with the question"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_workspace_shows_nothing_at_once_and_its_messages_go() {
    let system = TestSystem::start_with_env(&[("WORKSPACE_DELETION_SETTLE_SECS", "2")]).await;
    let (workspace, record, session) = alice_asks(&system, "wamid.BYE").await;
    let (status, view) = system.live_record_chats(Some(&session), &record).await;
    assert_eq!(status, 200, "{view}");
    assert!(!system.sort_keys("MSG#").await.is_empty());

    let (status, body) = system
        .call(
            Method::DELETE,
            "/api/workspace",
            &workspace.owner_token,
            Some(json!({ "confirm_workspace_id": workspace.id })),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // The session outlives the deletion's start, but shows nothing.
    let (status, body) = system.live_record_chats(Some(&session), &record).await;
    assert_eq!(status, 401, "{body}");
    let (status, ..) = media(&system, &session, &alice_chat(), "wamid.BYE").await;
    assert_eq!(status, 404);

    system
        .eventually("nothing of the workspace left", || async {
            let left: Vec<String> = system
                .items_of_workspace(&workspace.id)
                .await
                .iter()
                .filter_map(|item| item.get("sk").and_then(|v| v.as_s().ok()).cloned())
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("left: {left:?}"))
            }
        })
        .await;
    assert!(system.sort_keys("MSG#").await.is_empty(), "no message left");
    assert!(system.sort_keys("CHAT#").await.is_empty(), "no chat left");
}

/// The view polled with its `X-Live-Record-Pass`: status and body.
async fn view_with_pass(
    system: &TestSystem,
    session: &str,
    record: &str,
    pass: &str,
) -> (u16, Value) {
    let response = system
        .http
        .get(system.url(&format!("/api/live/chats?record={record}")))
        .header("x-live-session", session)
        .header("x-live-record-pass", pass)
        .send()
        .await
        .expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_ask_the_crm_about_the_record_once_per_pass() {
    let system = TestSystem::start().await;
    let (workspace, record, session) = alice_asks(&system, "wamid.PASS1").await;
    let (status, first) = system.live_record_chats(Some(&session), &record).await;
    assert_eq!(status, 200, "{first}");
    let pass = first["record_pass"].as_str().expect("a pass").to_owned();
    let crm_calls = system.pipedrive.requests().len();

    // Polls with the pass: the same answer, and not one call to Pipedrive.
    for _ in 0..5 {
        let (status, polled) = view_with_pass(&system, &session, &record, &pass).await;
        assert_eq!(status, 200, "{polled}");
        assert_eq!(polled, first);
    }
    assert_eq!(system.pipedrive.requests().len(), crm_calls);

    // An altered pass, or one for another record, is no pass: the record
    // is read again with Ana's token.
    let altered = format!("{}x", &pass[..pass.len() - 1]);
    let (status, _) = view_with_pass(&system, &session, &record, &altered).await;
    assert_eq!(status, 200);
    assert_eq!(system.pipedrive.requests().len(), crm_calls + 1);
    let (status, body) = view_with_pass(&system, &session, "persons/999999", &pass).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(system.pipedrive.requests().len(), crm_calls + 2);

    // Her connection gone, the pass shows nothing at once.
    let (code, body) = system
        .call(
            reqwest::Method::POST,
            "/oauth/pipedrive/disconnect",
            &workspace.owner_token,
            Some(json!({ "connection": "organization" })),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let (status, body) = view_with_pass(&system, &session, &record, &pass).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "not_connected");
}
