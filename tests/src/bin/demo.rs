//! The whole flow, locally, as a newcomer would see it: a workspace, the
//! Zoho connection through OAuth, a handful of signed WhatsApp webhooks
//! (several chats, two days, a duplicate delivery, a group message), then the
//! leads and notes the sandbox CRM now holds.
//!
//! Run through `infra/local/demo.sh`, which starts DynamoDB Local and moto.

use std::time::Duration;

use e2e::{TestSystem, fixture, messages_delivery_to, text_delivery};
use serde_json::{Value, json};

/// 2026-05-21 10:00 UTC: the day after the fixtures' messages.
const NEXT_DAY: i64 = 1_779_357_600;

#[tokio::main]
async fn main() {
    let system = TestSystem::start().await;
    println!(
        "Local system at {} (Zoho sandbox at {})",
        system.local.base_url(),
        system.sandbox.base_url()
    );

    let workspace = system
        .workspace("bruno@acme.example", "Europe/London")
        .await;
    println!(
        "Workspace {} created; its owner bruno@acme.example owns WhatsApp number +447700900100",
        workspace.id
    );
    // The fixtures' second business number, owned by the same user; the
    // Graph API must know it, as registration reads it to prove control.
    system
        .graph
        .seed_phone_number(graph_sandbox::SeedPhoneNumber::new(
            "170000000000002",
            "+44 7700 900200",
            "Acme Lettings (sales)",
        ));
    let response = system
        .http
        .post(system.url("/api/whatsapp-numbers"))
        .bearer_auth(&workspace.owner_token)
        .json(
            &json!({ "phone_number_id": "170000000000002", "display_phone_number": "447700900200",
                       "access_token": graph_sandbox::DEFAULT_ACCESS_TOKEN }),
        )
        .send()
        .await
        .expect("register the second number");
    assert_eq!(response.status(), 201);

    system.connect_zoho_only(&workspace).await;
    println!("Zoho CRM connected through OAuth (consent by the sandbox's admin, ana@acme.example)");
    let activated = system
        .activate_settings(&workspace, e2e::default_settings())
        .await;
    println!(
        "Sync settings saved and activated: {}\n  (activation created the test record {})\n",
        activated["settings"], activated["test_record"]
    );

    // The photos the fixtures refer to, as the Graph API would serve them.
    for (media_id, bytes) in [
        ("1200000000000001", 48_213),
        ("1200000000000006", 35_120),
        ("1200000000000007", 61_004),
    ] {
        system.graph.seed_media(graph_sandbox::SeedMedia::generated(
            media_id,
            "image/jpeg",
            bytes,
        ));
    }

    let deliveries: Vec<(&str, Vec<u8>)> = vec![
        ("Alice: a question", fixture("cloud-text-inbound.json")),
        (
            "Alice again: the same delivery, retried by Meta",
            fixture("cloud-text-inbound.json"),
        ),
        (
            "Alice (now called Zoë): non-English text",
            fixture("cloud-text-unicode-escaped.json"),
        ),
        ("Alice sends a photo", fixture("cloud-image-inbound.json")),
        (
            "a batch: Alice, Bob, and Chloe on the second number",
            fixture("cloud-batch-two-messages.json"),
        ),
        (
            "the business answers from the WhatsApp Business app",
            fixture("cloud-smb-message-echo.json"),
        ),
        (
            "a group chat message (never synced)",
            fixture("cloud-group-message.json"),
        ),
        (
            "a status update (ignored)",
            fixture("cloud-status-read.json"),
        ),
        (
            "Alice, the next day",
            text_delivery(
                "447700900123",
                "Alice Example",
                "wamid.DEMO-NEXT-DAY",
                NEXT_DAY,
                "Can we move the viewing to Friday?",
            ),
        ),
    ];
    post_deliveries(&system, &deliveries).await;

    // Everything is in once the last message of each chat is.
    for (number, text) in [
        ("+447700900123", "move the viewing to Friday"),
        ("+447700900456", "[Image]"),
        ("+447700900789", "← Chloe Test:"),
    ] {
        system.wait_for_note_line(number, text).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!("\n=== Leads in the Zoho sandbox ===");
    for lead in system.sandbox.records("Leads") {
        let owner = lead["Owner"]["name"].as_str().unwrap_or("?");
        println!(
            "- {} | {} | source {} | owner {} | {}",
            lead["Last_Name"].as_str().unwrap_or("?"),
            lead["Mobile"].as_str().unwrap_or("?"),
            lead["Lead_Source"].as_str().unwrap_or("?"),
            owner,
            lead["WhatsApp_Chat"].as_str().unwrap_or("")
        );
        for attachment in system
            .sandbox
            .attachments()
            .iter()
            .filter(|a| a["Parent_Id"]["id"] == lead["id"])
        {
            println!(
                "  Attachment: {} ({} bytes)",
                attachment["File_Name"].as_str().unwrap_or("?"),
                attachment["Size"].as_str().unwrap_or("?")
            );
        }
        for note in system.notes_of("Leads", lead["id"].as_str().unwrap_or_default()) {
            println!("\n  Note: {}", note["Note_Title"].as_str().unwrap_or("?"));
            for line in note["Note_Content"].as_str().unwrap_or_default().lines() {
                println!("    {line}");
            }
        }
        println!();
    }
    println!("=== Sync log (newest first, as GET /api/sync-log shows it) ===");
    let (_, log) = system
        .call(
            reqwest::Method::GET,
            "/api/sync-log?limit=12",
            &workspace.owner_token,
            None,
        )
        .await;
    for entry in log["entries"].as_array().into_iter().flatten() {
        let chat = entry["chat_key"].as_str().unwrap_or("-");
        println!(
            "- {:<24} chat {:<29} {}",
            entry["event"].as_str().unwrap_or("?"),
            chat,
            entry["detail"]
        );
    }
    println!();
    let calls = system.sandbox.requests();
    println!(
        "Zoho API calls made: {}",
        calls.iter().filter(|r| r.path.starts_with("/crm/")).count()
    );
    let violations = system.sandbox.contract_violations();
    println!(
        "OpenAPI contract violations seen by the sandbox: {}",
        violations.len()
    );
    for v in violations {
        println!("  {v}");
    }
    pipedrive_section(&system).await;
}

/// The same product on Pipedrive: another workspace (another business
/// number) syncing new chats to persons with a deal each.
async fn pipedrive_section(system: &TestSystem) {
    const NUMBER_ID: &str = "170000000000003";
    const NUMBER: &str = "447700900300";
    println!("\n\n######## Pipedrive ########\n");
    system
        .graph
        .seed_phone_number(graph_sandbox::SeedPhoneNumber::new(
            NUMBER_ID,
            "+44 7700 900300",
            "Acme Tours",
        ));
    let workspace = system
        .workspace_with_number("ana@acme.example", "Europe/Lisbon", NUMBER_ID, NUMBER)
        .await;
    println!(
        "Workspace {} created; its owner ana@acme.example owns WhatsApp number +{NUMBER}",
        workspace.id
    );
    system
        .connect_pipedrive_only(&workspace, "ana@acme.example")
        .await;
    println!(
        "Pipedrive connected through OAuth (company {}, consent by ana@acme.example)",
        system.pipedrive.company_id()
    );
    let (_, offered) = system
        .call(
            reqwest::Method::GET,
            "/api/settings/pipedrive/pipelines",
            &workspace.owner_token,
            None,
        )
        .await;
    let pipeline = offered["pipelines"][0].clone();
    let link_field = system
        .pipedrive
        .field_key("person", "WhatsApp chat")
        .unwrap_or_default();
    let activated = system
        .activate_pipedrive(
            &workspace,
            json!({
                "chat_link_field": link_field,
                "follow_up": { "kind": "deal", "pipeline_id": pipeline["id"], "title_template": "WhatsApp: {name}" },
            }),
        )
        .await;
    println!(
        "Sync settings saved and activated: {}\n  (activation created the test person {})\n",
        activated["settings"], activated["test_record"]
    );
    let delivery = |wa_id: &str, name: &str, messages: &[(&str, i64, &str)]| {
        messages_delivery_to(NUMBER_ID, NUMBER, wa_id, name, messages)
    };
    let marta = delivery(
        "351912345678",
        "Marta",
        &[
            (
                "wamid.PD-DEMO-1",
                NEXT_DAY,
                "Olá! Is the boat tour on Saturday still available?",
            ),
            (
                "wamid.PD-DEMO-2",
                NEXT_DAY + 30,
                "We are <4> people & a dog",
            ),
        ],
    );
    let deliveries: Vec<(&str, Vec<u8>)> = vec![
        ("Marta: two messages in one delivery", marta.clone()),
        ("Marta again: the same delivery, retried by Meta", marta),
        (
            "João, Brazil (WhatsApp drops the ninth digit)",
            delivery(
                "551187654321",
                "João",
                &[(
                    "wamid.PD-DEMO-3",
                    NEXT_DAY + 60,
                    "Bom dia, do you take groups?",
                )],
            ),
        ),
        (
            "Marta, the next day",
            delivery(
                "351912345678",
                "Marta",
                &[("wamid.PD-DEMO-4", NEXT_DAY + 86_400, "Booked, thank you!")],
            ),
        ),
    ];
    // João is in Pipedrive already, typed with the ninth digit his
    // WhatsApp id lacks: matched, not duplicated.
    system
        .pipedrive
        .insert_person(json!({
            "name": "João Pereira",
            "phones": [{ "value": "+5511987654321", "primary": true, "label": "work" }],
        }))
        .expect("a person in the sandbox");
    system.pipedrive.clear_requests();
    let tokens_before = system.pipedrive.tokens_used();
    post_deliveries(system, &deliveries).await;
    for (number, text) in [
        ("+351912345678", "Booked, thank you!"),
        ("+5511987654321", "do you take groups"),
    ] {
        system.wait_for_pipedrive_note(number, text).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!("\n=== Persons in the Pipedrive sandbox ===");
    for person in system.pipedrive.persons() {
        let phones: Vec<&str> = person["phones"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["value"].as_str())
            .collect();
        println!(
            "- {} (person {}) | {} | owner {} | {}",
            person["name"].as_str().unwrap_or("?"),
            person["id"],
            phones.join(", "),
            person["owner_id"],
            person["custom_fields"][&link_field].as_str().unwrap_or("")
        );
        for deal in system
            .pipedrive
            .deals()
            .iter()
            .filter(|d| d["person_id"] == person["id"])
        {
            println!(
                "  Deal {}: {} (pipeline {}, stage {})",
                deal["id"],
                deal["title"].as_str().unwrap_or("?"),
                deal["pipeline_id"],
                deal["stage_id"]
            );
        }
        for note in system
            .pipedrive
            .notes_of("person", &person["id"].to_string())
        {
            println!("\n  Note {} (on deal {}):", note["id"], note["deal_id"]);
            let content = note["content"].as_str().unwrap_or_default();
            for line in content.split("<br>") {
                println!("    {line}");
            }
        }
        println!();
    }
    let calls = system.pipedrive.requests();
    let api_calls = calls
        .iter()
        .filter(|r| r.path.contains("/v1/") || r.path.contains("/v2/"))
        .count();
    println!(
        "Pipedrive API calls for {} messages (and a delivery of 2 redelivered): {api_calls}, tokens: {}",
        4,
        system.pipedrive.tokens_used() - tokens_before
    );
    let violations = system.pipedrive.contract_violations();
    println!(
        "OpenAPI contract violations seen by the Pipedrive sandbox: {}",
        violations.len()
    );
    for v in violations {
        println!("  {v}");
    }
}

/// Posts each signed delivery, printing what it was and the answer.
async fn post_deliveries(system: &TestSystem, deliveries: &[(&str, Vec<u8>)]) {
    for (what, body) in deliveries {
        let response = system.post_webhook(body).await;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_default();
        println!("POST /webhooks/whatsapp  {what:<55} → {status} {answer}");
    }
}
