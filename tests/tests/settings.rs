//! Sync settings: choices read live from Zoho's metadata, refusals that name
//! the setting, activation with a test record, no edits while active, and
//! messages kept until activation.

use e2e::{
    ALICE_WA_ID, TEST_RECORD_NUMBER, TestSystem, TestWorkspace, default_settings, text_delivery,
};
use reqwest::Method;
use serde_json::{Value, json};

const ALICE: &str = "+447700900123";

async fn connected() -> (TestSystem, TestWorkspace) {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho_only(&workspace).await;
    (system, workspace)
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["api_name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choices_come_from_live_metadata_and_a_new_custom_field_shows_up_without_reconnecting() {
    let (system, workspace) = connected().await;
    let token = &workspace.owner_token;

    let (status, modules) = system
        .call(Method::GET, "/api/settings/zoho/modules", token, None)
        .await;
    assert_eq!(status, 200, "{modules}");
    // Deals and Notes have no phone field; Visits is not in the API; the
    // linking module is not a real destination.
    assert_eq!(
        names(&modules["modules"]),
        ["Leads", "Contacts", "Accounts"]
    );
    assert_eq!(
        modules["modules"][0]["number_fields"],
        json!(["Phone", "Mobile"])
    );
    assert_eq!(modules["modules"][0]["convertable"], true);

    let (status, fields) = system
        .call(
            Method::GET,
            "/api/settings/zoho/fields?module=Leads",
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{fields}");
    let fields = &fields["fields"];
    assert_eq!(names(&fields["number_field"]), ["Phone", "Mobile"]);
    let name_fields = names(&fields["name_field"]);
    assert!(name_fields.contains(&"Last_Name".to_owned()));
    assert!(
        !name_fields.contains(&"Full_Name".to_owned()),
        "read-only fields are not offered"
    );
    let sources = names(&fields["lead_source_field"]);
    assert!(sources.contains(&"Lead_Source".to_owned()));
    assert!(
        !sources.contains(&"Product_Interest".to_owned()),
        "multi-select picklists are never offered"
    );
    let links = names(&fields["chat_link_field"]);
    assert!(links.contains(&"WhatsApp_Chat".to_owned()));
    assert!(
        !links.contains(&"Lead_Photo".to_owned()),
        "image uploads are never offered"
    );
    let lead_source = fields["lead_source_field"]
        .as_array()
        .and_then(|l| l.iter().find(|f| f["api_name"] == "Lead_Source"))
        .expect("Lead_Source offered");
    assert!(
        lead_source["values"]
            .as_array()
            .is_some_and(|v| v.contains(&json!("WhatsApp"))),
        "{lead_source}"
    );

    // Someone adds a custom phone field in Zoho: the next read offers it,
    // without a new OAuth grant.
    let refreshes = system.sandbox.token_refresh_count();
    system
        .sandbox
        .add_field(
            "Leads",
            json!({ "api_name": "WhatsApp_Number", "data_type": "phone", "length": 30 }),
        )
        .expect("custom field added");
    let (_, fields) = system
        .call(
            Method::GET,
            "/api/settings/zoho/fields?module=Leads",
            token,
            None,
        )
        .await;
    assert_eq!(
        names(&fields["fields"]["number_field"]),
        ["Phone", "Mobile", "WhatsApp_Number"]
    );
    assert_eq!(system.sandbox.token_refresh_count(), refreshes);
    let (status, saved) = system
        .call(
            Method::PUT,
            "/api/settings/zoho",
            token,
            Some(json!({ "destination_module": "Leads", "number_field": "WhatsApp_Number" })),
        )
        .await;
    assert_eq!(status, 200, "the new field can be chosen: {saved}");
    system.assert_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_value_and_wrong_fields_are_refused_naming_the_setting_the_field_and_its_type() {
    let (system, workspace) = connected().await;
    let token = &workspace.owner_token;
    let cases = [
        (
            json!({ "destination_module": "Leads", "lead_source_field": "Product_Interest" }),
            "lead_source_field",
            "`Product_Interest` is a multiselectpicklist field",
        ),
        (
            json!({ "destination_module": "Leads", "chat_link_field": "Lead_Photo" }),
            "chat_link_field",
            "`Lead_Photo` is a imageupload field",
        ),
        (
            json!({ "destination_module": "Leads", "number_field": "Email" }),
            "number_field",
            "`Email` is a email field; number_field takes a phone field",
        ),
        (
            json!({ "destination_module": "Deals" }),
            "destination_module",
            "`Deals` has no phone field",
        ),
        (
            json!({ "destination_module": "Leads", "lead_source_field": "Lead_Source", "lead_source_value": "Carrier pigeon" }),
            "lead_source_value",
            "`Carrier pigeon` is not a value of the picklist `Lead_Source`",
        ),
        (
            json!({ "destination_module": "Leads", "colour": "green" }),
            "colour",
            "is not a sync setting",
        ),
    ];
    for (patch, setting, message) in cases {
        let (status, body) = system
            .call(
                Method::PUT,
                "/api/settings/zoho",
                token,
                Some(patch.clone()),
            )
            .await;
        assert_eq!(status, 422, "{patch}: {body}");
        assert_eq!(body["error"]["setting"], setting, "{patch}: {body}");
        let text = body["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{patch}: {text}");
    }
    let (_, stored) = system
        .call(Method::GET, "/api/settings/zoho", token, None)
        .await;
    assert_eq!(
        stored["settings"]["destination_module"],
        Value::Null,
        "nothing saved"
    );

    // Members do not manage settings.
    let (_, member) = system
        .add_user(&workspace, "carla@acme.example", "member")
        .await;
    let (status, _) = system
        .call(
            Method::PUT,
            "/api/settings/zoho",
            &member,
            Some(default_settings()),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_names_a_bad_setting_then_creates_a_test_record_and_locks_the_settings() {
    let (system, workspace) = connected().await;
    let token = &workspace.owner_token;
    let activate = || system.call(Method::POST, "/api/settings/zoho/activate", token, None);

    // Nothing chosen yet.
    let (status, body) = activate().await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["setting"], "destination_module");

    // First_Name is a fine text field, but Zoho requires Last_Name on Leads.
    let mut settings = default_settings();
    settings["name_field"] = json!("First_Name");
    let (status, _) = system
        .call(Method::PUT, "/api/settings/zoho", token, Some(settings))
        .await;
    assert_eq!(status, 200);
    let (status, body) = activate().await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["setting"], "name_field");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`Last_Name`") && m.contains("MANDATORY_NOT_FOUND")),
        "{body}"
    );
    assert!(
        system.sandbox.records("Leads").is_empty(),
        "Zoho created nothing"
    );

    let (status, _) = system
        .call(
            Method::PUT,
            "/api/settings/zoho",
            token,
            Some(json!({ "name_field": "Last_Name" })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = activate().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["active"], true);
    let test_id = body["test_record"]["id"].as_str().expect("test record id");
    let test_record = system.sandbox.record("Leads", test_id).expect("in Zoho");
    assert_eq!(test_record["Mobile"], TEST_RECORD_NUMBER);
    assert_eq!(test_record["Last_Name"], "WhatsApp sync test record");
    assert_eq!(test_record["Lead_Source"], "WhatsApp");
    assert_eq!(test_record["WhatsApp_Chat"], "https://wa.me/15555550100");

    // Active settings are locked.
    let (status, body) = system
        .call(
            Method::PUT,
            "/api/settings/zoho",
            token,
            Some(json!({ "destination_module": "Contacts" })),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("deactivate them first")),
        "{body}"
    );

    // Deactivated, a new destination clears the old module's fields.
    let (status, _) = system
        .call(Method::POST, "/api/settings/zoho/deactivate", token, None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = system
        .call(
            Method::PUT,
            "/api/settings/zoho",
            token,
            Some(json!({ "destination_module": "Contacts" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let settings = &body["settings"];
    assert_eq!(settings["destination_module"], "Contacts");
    for cleared in [
        "number_field",
        "name_field",
        "chat_link_field",
        "lead_source_field",
    ] {
        assert_eq!(settings[cleared], Value::Null, "{cleared} cleared");
    }
    assert_eq!(
        settings["lead_source_value"], "WhatsApp",
        "a value, not a field: kept"
    );
    assert_eq!(settings["active"], false);

    let log = system.sync_log(token, "").await;
    let events: Vec<&str> = log.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        events[..2],
        ["settings_deactivated", "settings_activated"],
        "{events:?}"
    );
    system.assert_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_before_activation_are_kept_and_synced_once_activated() {
    let (system, workspace) = connected().await;
    let token = &workspace.owner_token;
    let texts = ["first before activation", "second", "third"];
    for (i, text) in texts.iter().enumerate() {
        system
            .post_webhook(&text_delivery(
                ALICE_WA_ID,
                "Alice Example",
                &format!("wamid.PRE{i}"),
                1_779_268_500 + i as i64,
                text,
            ))
            .await;
    }
    for i in 0..texts.len() {
        system
            .wait_for_message_state(&format!("wamid.PRE{i}"), "waiting")
            .await;
    }
    let ledger = system.ledger(token, ALICE_WA_ID).await;
    assert_eq!(ledger.len(), 3);
    for message in &ledger {
        assert_eq!(message["state"], "waiting", "{message}");
        assert_eq!(
            message["reason"],
            "sync settings are not active; activate them"
        );
    }
    // They stay waiting: not retried into the dead-letter queue.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        system.ledger(token, ALICE_WA_ID).await,
        ledger,
        "nothing moved"
    );
    assert!(
        system.sandbox.records("Leads").is_empty(),
        "nothing synced before activation"
    );

    let activated = system
        .activate_settings(&workspace, default_settings())
        .await;
    assert_eq!(activated["requeue_requested"], true);
    let (lead, notes) = system.wait_for_note_line(ALICE, "third").await;
    assert_eq!(lead["Last_Name"], "Alice Example");
    assert_eq!(notes.len(), 1);
    let content = notes[0]["Note_Content"].as_str().unwrap_or_default();
    for text in texts {
        assert_eq!(content.matches(text).count(), 1, "{content}");
    }
    // The states follow the note write.
    for i in 0..texts.len() {
        system
            .wait_for_message_state(&format!("wamid.PRE{i}"), "appended")
            .await;
    }
    for message in system.ledger(token, ALICE_WA_ID).await {
        assert_eq!(message["state"], "appended", "{message}");
        assert_eq!(message["note_id"], notes[0]["id"]);
    }
    assert_eq!(system.customer_leads().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_obvious_first_settings_activate_and_converted_leads_default_to_contacts() {
    let (system, workspace) = connected().await;
    let token = &workspace.owner_token;
    // What a person naturally picks: nothing about converted leads.
    let obvious = json!({
        "destination_module": "Leads",
        "number_field": "Mobile",
        "name_field": "Last_Name",
        "chat_link_field": "WhatsApp_Chat",
        "lead_source_field": "Lead_Source",
    });
    let (status, saved) = system
        .call(Method::PUT, "/api/settings/zoho", token, Some(obvious))
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["settings"]["on_converted"], "continue");
    assert_eq!(saved["settings"]["converted_module"], Value::Null);
    let (_, contacts) = system
        .call(
            Method::GET,
            "/api/settings/zoho/fields?module=Contacts",
            token,
            None,
        )
        .await;
    // Zoho's conversion copies a Lead's Mobile into the Contact's Mobile:
    // the Contacts field of the Leads number field's name is the one searched.
    let contact_phone_fields = names(&contacts["fields"]["number_field"]);
    assert!(
        contact_phone_fields.iter().any(|f| f == "Mobile"),
        "{contact_phone_fields:?}"
    );
    let same_named_field = "Mobile".to_owned();

    let (status, body) = system
        .call(Method::POST, "/api/settings/zoho/activate", token, None)
        .await;
    assert_eq!(status, 200, "{body}");
    let defaults = json!({
        "converted_module": "Contacts",
        "converted_number_field": same_named_field,
    });
    assert_eq!(body["defaults_applied"], defaults);
    assert_eq!(body["settings"]["active"], true);
    assert_eq!(body["settings"]["converted_module"], "Contacts");
    assert_eq!(
        body["settings"]["converted_number_field"],
        same_named_field.as_str()
    );
    let activated = system.log_entry(token, "", "settings_activated").await;
    assert_eq!(activated["detail"]["defaults_applied"], defaults);

    // New chats are looked for in Contacts by that field too.
    let contact = system
        .sandbox
        .insert_record(
            "Contacts",
            json!({ "Last_Name": "Alice", same_named_field.as_str(): ALICE }),
        )
        .expect("seeded");
    system
        .post_webhook(&text_delivery(
            ALICE_WA_ID,
            "Alice",
            "wamid.OBVIOUS",
            1_779_268_500,
            "hello contact",
        ))
        .await;
    system
        .wait_for("the line on the contact", || {
            system
                .notes_of("Contacts", &contact)
                .iter()
                .any(|n| {
                    n["Note_Content"]
                        .as_str()
                        .is_some_and(|c| c.contains("hello contact"))
                })
                .then_some(())
        })
        .await;
    assert!(system.customer_leads().is_empty(), "no lead created");
}
