//! Finding the record: the remembered one, the destination by its number
//! field, the converted destination; converted leads followed or stopped;
//! ambiguous matches listed and settled by a person; owner rules; and the
//! message ledger's retrying / dead-lettered states with replay.

use std::time::Duration;

use e2e::{TestSystem, chat_key_param, default_settings, text_delivery};
use reqwest::Method;
use serde_json::{Value, json};
use zoho_sandbox::{SandboxConfig, SeedUser};

const ALICE_WA: &str = "447700900123";
const ALICE: &str = "+447700900123";
const MAY_20_0915: i64 = 1_779_268_500;
/// The workspace's second business number.
const SECOND_NUMBER_ID: &str = "170000000000002";
const SECOND_NUMBER: &str = "447700900200";

/// A system whose workers check remembered Leads for conversion on every
/// message (the product does it hourly).
async fn checking_conversions() -> TestSystem {
    TestSystem::start_custom(
        vec![SandboxConfig::default()],
        None,
        vec![("CONVERSION_CHECK_SECS".into(), "0".into())],
    )
    .await
}

async fn say(system: &TestSystem, id: &str, minute: i64, text: &str) {
    let response = system
        .post_webhook(&text_delivery(
            ALICE_WA,
            "Alice Example",
            id,
            MAY_20_0915 + minute * 60,
            text,
        ))
        .await;
    assert_eq!(response.status(), 200);
}

/// Waits for a note of `module`/`id` holding `text`; returns its content.
async fn note_with(system: &TestSystem, module: &str, id: &str, text: &str) -> String {
    system
        .wait_for(&format!("`{text}` in a note of {module}/{id}"), || {
            system
                .notes_of(module, id)
                .iter()
                .filter_map(|n| n["Note_Content"].as_str())
                .find(|c| c.contains(text))
                .map(str::to_owned)
        })
        .await
}

/// `?chat=` for Alice's chat.
fn chat_filter() -> String {
    format!("?chat={}", chat_key_param(ALICE_WA))
}

fn searches(system: &TestSystem) -> usize {
    system
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/search"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_stored_with_formatting_matches_and_the_record_is_remembered() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    let existing = system
        .sandbox
        .insert_record(
            "Leads",
            json!({ "Last_Name": "Alice (fair)", "Mobile": "0044 (7700) 900-123" }),
        )
        .expect("seeded");
    say(&system, "wamid.M1", 0, "first").await;
    note_with(&system, "Leads", &existing, "first").await;
    let after_first = searches(&system);
    assert_eq!(after_first, 1, "every form of the number in one search");

    say(&system, "wamid.M2", 1, "second").await;
    note_with(&system, "Leads", &existing, "second").await;
    assert_eq!(
        searches(&system),
        after_first,
        "the remembered record is not searched for"
    );
    assert_eq!(system.customer_leads().len(), 1, "no lead created");
    let matched = system
        .log_entry(&workspace.owner_token, &chat_filter(), "matched")
        .await;
    assert_eq!(matched["detail"]["by"], "Leads.Mobile");
    assert_eq!(matched["detail"]["record"]["id"], existing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_in_the_converted_destination_is_found_before_creating_a_lead() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    let contact = system
        .sandbox
        .insert_record("Contacts", json!({ "Last_Name": "Alice", "Mobile": ALICE }))
        .expect("seeded");
    say(&system, "wamid.C1", 0, "hello contact").await;
    note_with(&system, "Contacts", &contact, "hello contact").await;
    assert!(system.customer_leads().is_empty(), "no lead created");
    let matched = system
        .log_entry(&workspace.owner_token, &chat_filter(), "matched")
        .await;
    assert_eq!(matched["detail"]["by"], "Contacts.Mobile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converted_lead_is_followed_to_its_contact_with_continue() {
    let system = checking_conversions().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    say(&system, "wamid.V1", 0, "before conversion").await;
    let (lead, _) = system.wait_for_note_line(ALICE, "before conversion").await;
    let lead_id = lead["id"].as_str().expect("lead id");
    let contact_id = system.sandbox.convert_lead(lead_id).expect("converted");

    say(&system, "wamid.V2", 1, "after conversion").await;
    let content = note_with(&system, "Contacts", &contact_id, "after conversion").await;
    assert!(
        !content.contains("before conversion"),
        "a new note on the contact"
    );
    let on_lead = system.notes_of("Leads", lead_id).iter().any(|n| {
        n["Note_Content"]
            .as_str()
            .is_some_and(|c| c.contains("after conversion"))
    });
    assert!(!on_lead, "nothing more on the converted lead");
    let followed = system
        .log_entry(&workspace.owner_token, &chat_filter(), "converted_followed")
        .await;
    assert_eq!(followed["detail"]["from"]["id"], lead_id);
    assert_eq!(
        followed["detail"]["to"],
        json!({ "crm": "zoho", "module": "Contacts", "id": contact_id })
    );
    assert_eq!(system.customer_leads().len(), 1, "no new lead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converted_lead_stops_the_chat_with_stop_and_says_so() {
    let system = checking_conversions().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho_only(&workspace).await;
    let mut settings = default_settings();
    settings["on_converted"] = json!("stop");
    system.activate_settings(&workspace, settings).await;
    say(&system, "wamid.S1", 0, "before conversion").await;
    let (lead, _) = system.wait_for_note_line(ALICE, "before conversion").await;
    // Note-append is done with it (its log entries written) before S2.
    system.wait_for_message_state("wamid.S1", "appended").await;
    let lead_id = lead["id"].as_str().expect("lead id");
    let contact_id = system.sandbox.convert_lead(lead_id).expect("converted");

    say(&system, "wamid.S2", 1, "after conversion").await;
    system.wait_for_message_state("wamid.S2", "skipped").await;
    let state = system.ledger(&workspace.owner_token, ALICE_WA).await[1].clone();
    assert_eq!(state["message_id"], "wamid.S2");
    assert_eq!(state["state"], "skipped", "{state}");
    assert_eq!(
        state["reason"],
        "the lead was converted and the settings say stop"
    );
    assert!(system.notes_of("Contacts", &contact_id).is_empty());
    let events: Vec<String> = system
        .sync_log(&workspace.owner_token, &chat_filter())
        .await
        .iter()
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(events[..2], ["skipped", "sync_stopped"], "{events:?}");

    // Later messages of the chat are skipped without asking Zoho.
    let calls = system.sandbox.requests().len();
    say(&system, "wamid.S3", 2, "still there?").await;
    system.wait_for_message_state("wamid.S3", "skipped").await;
    assert_eq!(system.sandbox.requests().len(), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_stop_a_number_found_only_on_a_converted_record_stops_instead_of_creating_a_lead() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho_only(&workspace).await;
    let mut settings = default_settings();
    settings["on_converted"] = json!("stop");
    system.activate_settings(&workspace, settings).await;
    system
        .sandbox
        .insert_record("Contacts", json!({ "Last_Name": "Alice", "Mobile": ALICE }))
        .expect("seeded");
    say(&system, "wamid.X1", 0, "hello again").await;
    system.wait_for_message_state("wamid.X1", "skipped").await;
    let state = system.ledger(&workspace.owner_token, ALICE_WA).await[0].clone();
    assert_eq!(
        state["reason"],
        "the number belongs to a Contacts record (where converted leads go) and the settings say stop"
    );
    assert!(
        system.customer_leads().is_empty(),
        "no new lead for a converted person"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_matching_records_are_listed_and_a_persons_choice_is_remembered() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    let older = system
        .sandbox
        .insert_record(
            "Leads",
            json!({ "Last_Name": "Alice old", "Mobile": ALICE }),
        )
        .expect("seeded");
    // Modified times have one-second resolution.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let newer = system
        .sandbox
        .insert_record(
            "Leads",
            json!({ "Last_Name": "Alice new", "Mobile": "+44 7700 900123" }),
        )
        .expect("seeded");

    say(&system, "wamid.A1", 0, "which one?").await;
    note_with(&system, "Leads", &newer, "which one?").await;
    let token = &workspace.owner_token;
    let (status, listed) = system
        .call(Method::GET, "/api/chats?ambiguous=true", token, None)
        .await;
    assert_eq!(status, 200);
    let chats = listed["chats"].as_array().cloned().unwrap_or_default();
    assert_eq!(chats.len(), 1, "{listed}");
    assert_eq!(
        chats[0]["record"]["id"], newer,
        "most recently modified first"
    );
    let candidates: Vec<&str> = chats[0]["ambiguous_candidates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(candidates, [newer.as_str(), older.as_str()]);
    let matched = system
        .log_entry(&workspace.owner_token, &chat_filter(), "matched")
        .await;
    assert_eq!(matched["detail"]["rule"], "most recently modified");
    assert_eq!(
        matched["detail"]["candidates"].as_array().map(Vec::len),
        Some(2)
    );

    // A record that did not match is refused; the older one is chosen.
    let chat_path = format!("/api/chats/{}/record", chat_key_param(ALICE_WA));
    let (status, _) = system
        .call(
            Method::PUT,
            &chat_path,
            token,
            Some(json!({ "module": "Leads", "id": "123" })),
        )
        .await;
    assert_eq!(status, 400);
    let (status, chosen) = system
        .call(
            Method::PUT,
            &chat_path,
            token,
            Some(json!({ "module": "Leads", "id": older })),
        )
        .await;
    assert_eq!(status, 200, "{chosen}");
    assert_eq!(chosen["record"]["id"], older);
    let (_, listed) = system
        .call(Method::GET, "/api/chats?ambiguous=true", token, None)
        .await;
    assert_eq!(listed["chats"], json!([]), "settled");

    say(&system, "wamid.A2", 1, "this one").await;
    note_with(&system, "Leads", &older, "this one").await;
    assert_eq!(system.customer_leads().len(), 2, "no third record");
    let events: Vec<Value> = system
        .sync_log(&workspace.owner_token, &chat_filter())
        .await;
    assert!(events.iter().any(|e| e["event"] == "record_chosen"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chats_responsible_user_owns_the_new_record() {
    let system = TestSystem::start().await;
    let erin_crm_id =
        system
            .sandbox
            .add_user(SeedUser::sales("erin@acme.example", "Erin", "Costa"));
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    let (erin, _) = system
        .add_user(&workspace, "Erin@Acme.example", "member")
        .await;
    // Connected, not yet active: the chat exists and waits.
    system.connect_zoho_only(&workspace).await;
    say(&system, "wamid.R1", 0, "hello").await;
    let responsible = format!("/api/chats/{}/responsible", chat_key_param(ALICE_WA));
    // Answered once the webhook has stored the chat.
    system
        .eventually("the responsible user to be set", || async {
            let (status, body) = system
                .call(
                    Method::PUT,
                    &responsible,
                    &workspace.owner_token,
                    Some(json!({ "user_id": erin })),
                )
                .await;
            if status == 200 {
                Ok(())
            } else {
                Err(format!("{status} {body}"))
            }
        })
        .await;
    system
        .activate_settings(&workspace, default_settings())
        .await;
    let (lead, _) = system.wait_for_note_line(ALICE, "hello").await;
    // Bruno owns the WhatsApp number, but Erin is responsible for the chat
    // (her e-mail matched case-insensitively).
    assert_eq!(lead["Owner"]["id"], erin_crm_id);
    let created = system
        .log_entry(&workspace.owner_token, &chat_filter(), "created")
        .await;
    assert_eq!(created["detail"]["owner_reason"], "chat_responsible_user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_shows_retrying_then_dead_lettered_and_a_replay_appends_it_once() {
    let system = TestSystem::start_with_fast_retries(SandboxConfig::default(), 1).await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    let token = &workspace.owner_token;
    system.sandbox.fail_next(1000, 400, "INVALID_DATA");
    say(&system, "wamid.D1", 0, "lost?").await;
    let ledger_path = format!("/api/chats/{}/messages", chat_key_param(ALICE_WA));
    let seen_retrying = std::sync::Mutex::new(None);
    let last = system
        .eventually("the message to be dead-lettered", || async {
            let (_, ledger) = system.call(Method::GET, &ledger_path, token, None).await;
            let now = ledger["messages"][0].clone();
            let mut seen = seen_retrying.lock().expect("not poisoned");
            if now["state"] == "retrying" && seen.is_none() {
                *seen = Some(now.clone());
            }
            if now["state"] == "dead_lettered" {
                Ok(now)
            } else {
                Err(now.to_string())
            }
        })
        .await;
    let retrying = seen_retrying
        .into_inner()
        .expect("not poisoned")
        .expect("the ledger showed the retries");
    assert!(retrying["next_attempt_at"].as_i64().is_some(), "{retrying}");
    assert!(
        retrying["attempt"].as_u64().is_some_and(|a| a >= 1),
        "{retrying}"
    );
    assert_eq!(last["state"], "dead_lettered", "{last}");
    assert!(
        last["reason"]
            .as_str()
            .is_some_and(|r| r.contains("INVALID_DATA")),
        "the CRM's error: {last}"
    );
    system
        .log_entry(&workspace.owner_token, &chat_filter(), "dead_lettered")
        .await;
    let events: Vec<String> = system
        .sync_log(&workspace.owner_token, &chat_filter())
        .await
        .iter()
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(events[0], "dead_lettered", "{events:?}");
    assert_eq!(
        events.iter().filter(|e| *e == "retrying").count(),
        4,
        "{events:?}"
    );

    // Only a dead-lettered message can be replayed; once the cause is gone,
    // the replay syncs it, and a second replay is refused.
    let replay = format!(
        "/api/chats/{}/messages/wamid.D1/replay",
        chat_key_param(ALICE_WA)
    );
    system.sandbox.fail_next(0, 400, "INVALID_DATA");
    let (status, body) = system.call(Method::POST, &replay, token, None).await;
    assert_eq!(status, 202, "{body}");
    let (_, notes) = system.wait_for_note_line(ALICE, "lost?").await;
    let content = notes[0]["Note_Content"].as_str().unwrap_or_default();
    assert_eq!(content.matches("lost?").count(), 1);
    let (status, body) = system.call(Method::POST, &replay, token, None).await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_stranded_as_queued_can_be_replayed_once_it_is_15_minutes_old() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    let token = &workspace.owner_token;
    say(&system, "wamid.Q1", 0, "first").await;
    system.wait_for_message_state("wamid.Q1", "appended").await;
    // Two more whose function died between marking them queued and sending
    // them: shown as queued, on no queue. One arrived 16 minutes ago, the
    // other just now.
    let store = &system.local.deps.store;
    let first = store
        .message(&workspace.id, "wamid.Q1")
        .await
        .expect("read")
        .expect("stored");
    let now = system.local.deps.clock.now();
    for (id, minute, received_at) in [("wamid.Q2", 1, now - 16 * 60), ("wamid.Q3", 2, now)] {
        let mut stranded = first.clone();
        stranded.message_id = id.into();
        stranded.text = format!("stranded {id}");
        stranded.timestamp = first.timestamp + minute * 60;
        stranded.state = shared::model::MessageState::Queued;
        stranded.received_at = received_at;
        store.insert_message(&stranded).await.expect("inserted");
    }
    let replay = |id: &str| {
        format!(
            "/api/chats/{}/messages/{id}/replay",
            chat_key_param(ALICE_WA)
        )
    };

    let (status, body) = system
        .call(Method::POST, &replay("wamid.Q3"), token, None)
        .await;
    assert_eq!(status, 409, "too fresh to call stranded: {body}");
    let (status, body) = system
        .call(Method::POST, &replay("wamid.Q2"), token, None)
        .await;
    assert_eq!(status, 202, "{body}");
    system.wait_for_note_line(ALICE, "stranded wamid.Q2").await;
    system.wait_for_message_state("wamid.Q2", "appended").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_deleted_in_the_crm_is_forgotten_and_the_chat_links_afresh() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    say(&system, "wamid.G1", 0, "before the deletion").await;
    let (lead, _) = system
        .wait_for_note_line(ALICE, "before the deletion")
        .await;
    let old_id = lead["id"].as_str().expect("lead id").to_owned();
    assert!(system.sandbox.delete_record("Leads", &old_id));

    say(&system, "wamid.G2", 1, "after the deletion").await;
    let (lead, notes) = system.wait_for_note_line(ALICE, "after the deletion").await;
    assert_ne!(lead["id"], old_id.as_str(), "a new lead");
    assert_eq!(notes.len(), 1);
    assert_eq!(system.customer_leads().len(), 1);
    let events = system
        .sync_log(&workspace.owner_token, &chat_filter())
        .await;
    let gone = events
        .iter()
        .find(|e| e["event"] == "record_gone")
        .expect("record_gone entry");
    assert_eq!(gone["detail"]["record"]["id"], old_id.as_str());
    assert!(
        !events.iter().any(|e| e["event"] == "dead_lettered"),
        "nothing dead-lettered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_contact_writing_to_two_business_numbers_at_once_gets_one_lead() {
    // Zoho's search cannot see a lead seconds old: each chat would create
    // its own without a claim per contact.
    let system = TestSystem::start_with(SandboxConfig {
        search_index_delay: Duration::from_secs(600),
        ..SandboxConfig::default()
    })
    .await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    system
        .graph
        .seed_phone_number(graph_sandbox::SeedPhoneNumber::new(
            SECOND_NUMBER_ID,
            "+44 7700 900200",
            "Acme Lettings",
        ));
    let (status, body) = system
        .call(
            Method::POST,
            "/api/whatsapp-numbers",
            &workspace.owner_token,
            Some(json!({
                "phone_number_id": SECOND_NUMBER_ID,
                "display_phone_number": SECOND_NUMBER,
                "owner_user_id": workspace.owner_id,
                "access_token": graph_sandbox::DEFAULT_ACCESS_TOKEN,
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let to_first = e2e::messages_delivery(
        ALICE_WA,
        "Alice",
        &[("wamid.TWO1", MAY_20_0915, "to the first number")],
    );
    let to_second = e2e::messages_delivery_to(
        SECOND_NUMBER_ID,
        SECOND_NUMBER,
        ALICE_WA,
        "Alice",
        &[("wamid.TWO2", MAY_20_0915 + 1, "to the second number")],
    );
    let (first, second) = tokio::join!(
        system.post_webhook(&to_first),
        system.post_webhook(&to_second)
    );
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    system
        .wait_for_message_state("wamid.TWO1", "appended")
        .await;
    system
        .wait_for_message_state("wamid.TWO2", "appended")
        .await;
    assert_eq!(
        system.leads_with_mobile(ALICE).len(),
        1,
        "one lead for the contact, whichever number they wrote to"
    );
    assert_eq!(system.customer_leads().len(), 1);
    let lead = &system.leads_with_mobile(ALICE)[0];
    let lead_id = lead["id"].as_str().unwrap_or_default();
    let notes = system.notes_of("Leads", lead_id);
    assert_eq!(
        notes.len(),
        2,
        "each chat its own day note, on the one lead"
    );
}
