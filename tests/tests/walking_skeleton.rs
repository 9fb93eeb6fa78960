//! A signed WhatsApp message becomes a Zoho lead with a day note, end to end:
//! webhook → DynamoDB Local + SQS (moto) → record-sync → note-append → the
//! Zoho sandbox, with the OAuth connection made through the real flow.

use std::time::Duration;

use e2e::{
    BUSINESS_NUMBER, META_VERIFY_TOKEN, TestSystem, ZOHO_ADMIN_ID, ZOHO_BRUNO_ID, fixture,
    messages_delivery, text_delivery,
};
use serde_json::Value;
use zoho_sandbox::SandboxConfig;

const ALICE: &str = "+447700900123";
/// 2026-05-20 09:15:00 UTC, the fixtures' first message.
const MAY_20_0915: i64 = 1_779_268_500;
const DAY: i64 = 24 * 3600;

fn content(note: &Value) -> String {
    note["Note_Content"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_text_message_becomes_a_lead_owned_by_the_number_owner_with_a_day_note() {
    let system = TestSystem::start().await;
    // The owner's e-mail is a Zoho user's: that user owns new leads.
    let workspace = system.workspace("Bruno@Acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;

    let response = system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    assert_eq!(response.status(), 200);

    let (lead, notes) = system
        .wait_for_note_line(ALICE, "Hi, is the 3-bed flat on Elm Road still available?")
        .await;
    assert_eq!(lead["Last_Name"], "Alice Example");
    assert_eq!(lead["Mobile"], ALICE);
    assert_eq!(lead["Lead_Source"], "WhatsApp");
    assert_eq!(lead["Owner"]["id"], ZOHO_BRUNO_ID);
    assert_eq!(lead["WhatsApp_Chat"], "https://wa.me/447700900123");
    assert_eq!(notes.len(), 1);
    assert_eq!(
        notes[0]["Note_Title"],
        "WhatsApp Chat with Alice Example (20/05/2026)"
    );
    assert_eq!(
        content(&notes[0]),
        "WhatsApp chat: https://wa.me/447700900123 (with +447700900100)\n\n\
         09:15 ← Alice Example: Hi, is the 3-bed flat on Elm Road still available?"
    );
    assert_eq!(system.leads_with_mobile(ALICE).len(), 1);
    system.assert_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_is_owned_by_the_connecting_user_when_the_number_owner_is_not_a_zoho_user() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("owner@elsewhere.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    let (lead, _) = system.wait_for_note_line(ALICE, "Elm Road").await;
    // The sandbox's consenting user is the admin, Ana.
    assert_eq!(lead["Owner"]["id"], ZOHO_ADMIN_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_sent_three_times_gives_one_line() {
    let (system, _) = TestSystem::with_connected_workspace().await;

    let body = text_delivery(
        "447700900123",
        "Alice",
        "wamid.TRIPLE",
        MAY_20_0915,
        "only once please",
    );
    let mut duplicates = 0;
    for _ in 0..3 {
        let response = system.post_webhook(&body).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.expect("json");
        duplicates += answer["duplicates"].as_u64().unwrap_or_default();
    }
    assert_eq!(
        duplicates, 2,
        "the second and third deliveries are recognised"
    );
    // A later message of the same chat: once it is in, everything before it
    // has been processed (one chat is one FIFO group).
    system
        .post_webhook(&text_delivery(
            "447700900123",
            "Alice",
            "wamid.AFTER",
            MAY_20_0915 + 60,
            "next one",
        ))
        .await;
    let (_, notes) = system.wait_for_note_line(ALICE, "next one").await;
    assert_eq!(notes.len(), 1);
    let text = content(&notes[0]);
    assert_eq!(text.matches("only once please").count(), 1, "{text}");
    assert_eq!(
        text.lines().count(),
        4,
        "link, blank line, two messages: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_messages_of_a_new_chat_processed_back_to_back_create_one_lead() {
    // Zoho's search index lags behind writes: with a long lag, the second
    // message can only find the lead because the chat remembers it.
    let system = TestSystem::start_with(SandboxConfig {
        search_index_delay: Duration::from_secs(600),
        ..SandboxConfig::default()
    })
    .await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;

    // One delivery, so both messages land in the same worker batch.
    system
        .post_webhook(&messages_delivery(
            "447700900456",
            "Bob",
            &[
                ("wamid.BOB1", MAY_20_0915, "first"),
                ("wamid.BOB2", MAY_20_0915 + 1, "second"),
            ],
        ))
        .await;
    // And a third one on its own, after the first two were handled.
    system.wait_for_note_line("+447700900456", "second").await;
    system
        .post_webhook(&text_delivery(
            "447700900456",
            "Bob",
            "wamid.BOB3",
            MAY_20_0915 + 2,
            "third",
        ))
        .await;
    let (_, notes) = system.wait_for_note_line("+447700900456", "third").await;
    assert_eq!(system.leads_with_mobile("+447700900456").len(), 1);
    assert_eq!(notes.len(), 1);
    let text = content(&notes[0]);
    let first = text.find("first").expect("first line");
    let second = text.find("second").expect("second line");
    let third = text.find("third").expect("third line");
    assert!(
        first < second && second < third,
        "lines in message order: {text}"
    );
    let creates = system
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/crm/v8/Leads")
        .count();
    assert_eq!(
        creates, 2,
        "the activation's test record and the chat's lead"
    );
    assert_eq!(system.customer_leads().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_on_a_second_day_opens_a_second_note() {
    let (system, _) = TestSystem::with_connected_workspace().await;

    system
        .post_webhook(&messages_delivery(
            "447700900789",
            "Chloe",
            &[
                ("wamid.DAY1A", MAY_20_0915, "monday morning"),
                ("wamid.DAY1B", MAY_20_0915 + 3600, "monday later"),
                ("wamid.DAY2", MAY_20_0915 + DAY, "tuesday"),
            ],
        ))
        .await;
    system.wait_for_note_line("+447700900789", "tuesday").await;
    let (lead, notes) = system
        .wait_for_note_line("+447700900789", "monday later")
        .await;
    let titles: Vec<&str> = notes
        .iter()
        .filter_map(|n| n["Note_Title"].as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "WhatsApp Chat with Chloe (20/05/2026)",
            "WhatsApp Chat with Chloe (21/05/2026)"
        ],
        "lead {}",
        lead["id"]
    );
    assert!(content(&notes[0]).contains("10:15 ← Chloe: monday later"));
    assert!(!content(&notes[0]).contains("tuesday"));
    assert!(content(&notes[1]).ends_with("09:15 ← Chloe: tuesday"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_are_cut_in_the_workspace_time_zone() {
    let system = TestSystem::start().await;
    let workspace = system
        .workspace("bruno@acme.example", "America/Sao_Paulo")
        .await;
    system.connect_zoho(&workspace).await;
    // 2026-05-21 01:00 UTC is still the 20th, 22:00, in São Paulo (UTC-3).
    system
        .post_webhook(&text_delivery(
            "447700900123",
            "Alice",
            "wamid.TZ",
            MAY_20_0915 + 15 * 3600 + 45 * 60,
            "late",
        ))
        .await;
    let (_, notes) = system.wait_for_note_line(ALICE, "late").await;
    assert_eq!(
        notes[0]["Note_Title"],
        "WhatsApp Chat with Alice (20/05/2026)"
    );
    assert!(content(&notes[0]).ends_with("22:00 ← Alice: late"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_gets_401_and_leaves_no_item_and_no_queued_message() {
    let (system, _) = TestSystem::with_connected_workspace().await;
    let body = fixture("cloud-text-inbound.json");
    let forged = shared::crypto::meta_signature(b"not the app secret", &body);

    for signature in [Some(forged.as_str()), None, Some("sha256=xyz")] {
        let response = system.post_webhook_signed(&body, signature).await;
        assert_eq!(response.status(), 401, "{signature:?}");
        let answer: Value = response.json().await.expect("json error");
        assert_eq!(answer["error"]["code"], "unauthorized");
    }
    // Give a wrongly queued message the time to show up before checking.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        system.sort_keys("MSG#").await.is_empty(),
        "no message stored"
    );
    assert!(system.sort_keys("CHAT#").await.is_empty(), "no chat stored");
    assert_eq!(system.queue_depth("SyncQueue").await, 0);
    assert_eq!(system.queue_depth("SyncDeadLetterQueue").await, 0);
    assert!(system.leads_with_mobile(ALICE).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_deliveries_are_refused_before_anything_is_stored() {
    let system = TestSystem::start().await;
    system.workspace("bruno@acme.example", "UTC").await;
    for (name, status) in [
        ("malformed-truncated.json", 400),
        ("malformed-wrong-types.json", 400),
    ] {
        let response = system.post_webhook(&fixture(name)).await;
        assert_eq!(response.status(), status, "{name}");
        let answer: Value = response.json().await.expect("json error");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("webhook refused")),
            "{answer}"
        );
    }
    let oversized = vec![b' '; shared::handlers::webhook::MAX_BODY_BYTES + 1];
    assert_eq!(system.post_webhook(&oversized).await.status(), 413);
    assert!(system.sort_keys("MSG#").await.is_empty());
    assert_eq!(system.queue_depth("SyncQueue").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_messages_and_status_updates_are_acknowledged_and_not_synced() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    for name in ["cloud-group-message.json", "cloud-status-delivered.json"] {
        let response = system.post_webhook(&fixture(name)).await;
        assert_eq!(response.status(), 200, "{name}");
        let answer: Value = response.json().await.expect("json");
        assert_eq!(answer["queued"], 0, "{name}");
        assert_eq!(answer["skipped"], 1, "{name}");
    }
    assert!(system.sort_keys("MSG#").await.is_empty());
    assert!(system.customer_leads().is_empty());
    // The workspace can see why the group message is not in its CRM.
    let log = system.sync_log(&workspace.owner_token, "").await;
    let skipped: Vec<&Value> = log.iter().filter(|e| e["event"] == "skipped").collect();
    assert_eq!(skipped.len(), 1, "{log:?}");
    assert_eq!(skipped[0]["detail"]["reason"], "group_chat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_and_the_call_retried_once() {
    let (system, _) = TestSystem::with_connected_workspace().await;
    let refreshes_before = system.sandbox.token_refresh_count();
    system.sandbox.expire_access_tokens();

    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    system.wait_for_note_line(ALICE, "Elm Road").await;
    assert_eq!(system.sandbox.token_refresh_count() - refreshes_before, 1);
    let rejected = system
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert_eq!(
        rejected, 1,
        "one call was refused, then retried with the new token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_before_the_connection_wait_and_sync_once_connected() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    let message_id = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgURkFLRTAwMDAwMDAwMDAwMDAwMDEA";
    system.wait_for_message_state(message_id, "waiting").await;
    assert!(system.sandbox.requests().is_empty(), "nothing reached Zoho");
    // The ledger tells a waiting message from a lost one, and why it waits.
    let ledger_path = format!(
        "/api/chats/{}/messages",
        e2e::chat_key_param(e2e::ALICE_WA_ID)
    );
    let (code, ledger) = system
        .call(
            reqwest::Method::GET,
            &ledger_path,
            &workspace.owner_token,
            None,
        )
        .await;
    assert_eq!(code, 200, "{ledger}");
    assert_eq!(ledger["messages"][0]["message_id"], message_id);
    assert_eq!(ledger["messages"][0]["state"], "waiting");
    assert_eq!(ledger["messages"][0]["reason"], "no CRM connection");
    assert!(
        !ledger.to_string().contains("Elm Road"),
        "no message text in the ledger"
    );

    system.connect_zoho(&workspace).await;
    system.wait_for_note_line(ALICE, "Elm Road").await;
    // The state follows the note write.
    system.wait_for_message_state(message_id, "appended").await;
    let (_, ledger) = system
        .call(
            reqwest::Method::GET,
            &ledger_path,
            &workspace.owner_token,
            None,
        )
        .await;
    assert_eq!(ledger["messages"][0]["state"], "appended");
    assert!(
        ledger["messages"][0]["note_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscription_handshake_echoes_the_challenge_only_for_our_token() {
    let system = TestSystem::start().await;
    let url = |token: &str| {
        system.url(&format!(
            "/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={token}"
        ))
    };
    let ok = system
        .http
        .get(url(META_VERIFY_TOKEN))
        .send()
        .await
        .expect("handshake");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.expect("body"), "1158201444");
    let refused = system
        .http
        .get(url("guess"))
        .send()
        .await
        .expect("handshake");
    assert_eq!(refused.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_echoes_are_logged_as_sent_by_the_business() {
    let (system, _) = TestSystem::with_connected_workspace().await;
    system
        .post_webhook(&fixture("cloud-smb-message-echo.json"))
        .await;
    let (lead, notes) = system.wait_for_note_line(ALICE, "Floor plan").await;
    // The contact's profile name is unknown from an echo.
    assert_eq!(lead["Last_Name"], format!("New WhatsApp contact: {ALICE}"));
    let text = content(&notes[0]);
    assert!(
        text.contains(&format!(
            "→ Business +{BUSINESS_NUMBER}: Hi Alice, it's Sam"
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brazilian_mobile_matches_the_record_that_holds_it_without_the_ninth_digit() {
    let (system, _) = TestSystem::with_connected_workspace().await;
    let existing = system
        .sandbox
        .insert_record(
            "Leads",
            serde_json::json!({ "Last_Name": "Maria Silva", "Mobile": "+55 11 8765-4321" }),
        )
        .expect("seeded lead");

    system
        .post_webhook(&text_delivery(
            "5511987654321",
            "Maria",
            "wamid.BR1",
            MAY_20_0915,
            "Olá!",
        ))
        .await;
    system
        .wait_for("the note on the existing lead", || {
            let notes = system.notes_of("Leads", &existing);
            notes
                .iter()
                .any(|n| {
                    n["Note_Content"]
                        .as_str()
                        .is_some_and(|c| c.contains("Olá!"))
                })
                .then_some(())
        })
        .await;
    assert_eq!(system.customer_leads().len(), 1, "no duplicate lead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_renamed_in_whatsapp_renames_only_the_record_this_product_created() {
    let (system, _) = TestSystem::with_connected_workspace().await;
    let found = system
        .sandbox
        .insert_record(
            "Leads",
            serde_json::json!({ "Last_Name": "Bob (from the fair)", "Mobile": "+447700900456" }),
        )
        .expect("seeded lead");

    for (wa_id, name, id, text) in [
        ("447700900123", "Alice Example", "wamid.N1", "first"),
        ("447700900456", "Bob Sample", "wamid.N2", "first"),
        ("447700900123", "Alice Smith", "wamid.N3", "renamed"),
        ("447700900456", "Bobby", "wamid.N4", "renamed"),
    ] {
        system
            .post_webhook(&text_delivery(wa_id, name, id, MAY_20_0915, text))
            .await;
        system.wait_for_note_line(&format!("+{wa_id}"), text).await;
    }
    let alice = &system.leads_with_mobile(ALICE)[0];
    assert_eq!(alice["Last_Name"], "Alice Smith");
    let bob = system.sandbox.record("Leads", &found).expect("still there");
    assert_eq!(
        bob["Last_Name"], "Bob (from the fair)",
        "a record people made is theirs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_without_a_number_waits_and_syncs_once_a_delivery_tells_its_number() {
    let (system, _) = TestSystem::with_connected_workspace().await;
    // Evan writes with a WhatsApp username and shares no number.
    let held_id = "wamid.HBgMNDQ3NzAwOTAwNTU1FQIAEhgURkFLRTAwMDAwMDAwMDAwMDAwMTIA";
    let response = system
        .post_webhook(&e2e::fixture("cloud-text-username-bsuid.json"))
        .await;
    assert_eq!(response.status(), 200);
    system.wait_for_message_state(held_id, "waiting").await;
    assert!(
        system.customer_leads().is_empty(),
        "nothing can be matched by phone yet"
    );
    // A later delivery names both his user id and his number.
    let with_number = serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "190000000000001",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": e2e::BUSINESS_NUMBER, "phone_number_id": e2e::PHONE_NUMBER_ID },
                    "contacts": [{
                        "profile": { "name": "Evan Example", "username": "@evan.example" },
                        "user_id": "GB.13491208655300000001",
                        "wa_id": "447700900555"
                    }],
                    "messages": [{
                        "from": "447700900555",
                        "from_user_id": "GB.13491208655300000001",
                        "id": "wamid.EVAN2",
                        "timestamp": "1779268700",
                        "type": "text",
                        "text": { "body": "Here is my number" }
                    }]
                }
            }]
        }]
    }))
    .expect("JSON");
    assert_eq!(system.post_webhook(&with_number).await.status(), 200);
    let (lead, notes) = system
        .wait_for_note_line("+447700900555", "Here is my number")
        .await;
    assert_eq!(lead["Last_Name"], "Evan Example");
    assert_eq!(notes.len(), 1);
    let text = content(&notes[0]);
    let held = text
        .find("Hello, saw your ad - is parking included?")
        .expect("the kept message is in the note");
    let told = text.find("Here is my number").expect("the new one too");
    assert!(held < told, "in the order they were sent: {text}");
    system.wait_for_message_state(held_id, "appended").await;
    system
        .wait_for_message_state("wamid.EVAN2", "appended")
        .await;
    assert_eq!(system.customer_leads().len(), 1);
}
