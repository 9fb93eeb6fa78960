//! Day notes beyond the first message: parts when a day outgrows the CRM's
//! note limit, and the number of Zoho calls each message costs.

use e2e::{ALICE_WA_ID, TestSystem, messages_delivery, text_delivery};
use zoho_sandbox::SandboxConfig;

const MAY_20_0915: i64 = 1_779_268_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_that_outgrows_the_note_limit_continues_in_numbered_parts() {
    let system = TestSystem::start_custom(
        vec![SandboxConfig::default()],
        None,
        vec![("NOTE_CONTENT_MAX".into(), "300".into())],
    )
    .await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    let ids: Vec<String> = (1..=12).map(|i| format!("wamid.PART{i:02}")).collect();
    let texts: Vec<String> = (1..=12)
        .map(|i| format!("message number {i:02} of a long day"))
        .collect();
    let messages: Vec<(&str, i64, &str)> = ids
        .iter()
        .zip(&texts)
        .enumerate()
        .map(|(i, (id, text))| (id.as_str(), MAY_20_0915 + 60 * i as i64, text.as_str()))
        .collect();
    system
        .post_webhook(&messages_delivery(ALICE_WA_ID, "Alice", &messages[..7]))
        .await;
    system
        .wait_for_note_line("+447700900123", "number 07")
        .await;
    system
        .post_webhook(&messages_delivery(ALICE_WA_ID, "Alice", &messages[7..]))
        .await;
    let (_, notes) = system
        .wait_for_note_line("+447700900123", "number 12")
        .await;

    let titles: Vec<&str> = notes
        .iter()
        .filter_map(|n| n["Note_Title"].as_str())
        .collect();
    assert!(titles.len() >= 3, "{titles:?}");
    assert_eq!(titles[0], "WhatsApp Chat with Alice (20/05/2026)");
    for (i, title) in titles.iter().enumerate().skip(1) {
        assert_eq!(
            *title,
            format!("WhatsApp Chat with Alice (20/05/2026) (part {})", i + 1)
        );
    }
    let mut all_lines = Vec::new();
    for note in &notes {
        let content = note["Note_Content"].as_str().unwrap_or_default();
        assert!(
            content.chars().count() <= 300,
            "{} chars: {content}",
            content.chars().count()
        );
        assert!(content.starts_with("WhatsApp chat: https://wa.me/447700900123"));
        all_lines.extend(content.lines().skip(2).map(str::to_owned));
    }
    let expected: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{:02}:{:02} ← Alice: {t}", 9 + (15 + i) / 60, (15 + i) % 60))
        .collect();
    assert_eq!(
        all_lines, expected,
        "every message once, in order, across the parts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_calls_per_message_for_a_realistic_mix() {
    let (system, _) = TestSystem::with_connected_workspace().await;
    let contacts = ["447700900123", "447700900456", "447700900789"];

    // New chats: the first message of each.
    let before = system.zoho_api_calls();
    for (i, wa_id) in contacts.iter().enumerate() {
        system
            .post_webhook(&text_delivery(
                wa_id,
                "Contact",
                &format!("wamid.NEW{i}"),
                MAY_20_0915,
                "hello",
            ))
            .await;
        system
            .wait_for_note_line(&format!("+{wa_id}"), "hello")
            .await;
    }
    let new_chat = (system.zoho_api_calls() - before) as f64 / contacts.len() as f64;

    // Steady state: known chats, the day's note exists, one message at a time.
    let before = system.zoho_api_calls();
    let mut steady = 0;
    for round in 0..5 {
        for (i, wa_id) in contacts.iter().enumerate() {
            let text = format!("steady {round} {i}");
            system
                .post_webhook(&text_delivery(
                    wa_id,
                    "Contact",
                    &format!("wamid.S{round}{i}"),
                    MAY_20_0915 + 60 + round,
                    &text,
                ))
                .await;
            system.wait_for_note_line(&format!("+{wa_id}"), &text).await;
            steady += 1;
        }
    }
    let steady_state = (system.zoho_api_calls() - before) as f64 / steady as f64;

    // A photo in a known chat: the upload, then the note update.
    system.graph.seed_media(graph_sandbox::SeedMedia::generated(
        "1200000000000001",
        "image/jpeg",
        48_213,
    ));
    let before = system.zoho_api_calls();
    // Sent under the name the chat already has (a new name would rename).
    let mut photo: serde_json::Value =
        serde_json::from_slice(&e2e::fixture("cloud-image-inbound.json")).expect("fixture");
    photo["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = "Contact".into();
    system
        .post_webhook(&serde_json::to_vec(&photo).expect("serialisable"))
        .await;
    system
        .wait_for_note_line("+447700900123", "(attached: image-1200000000000001.jpg)")
        .await;
    let media_calls = system.zoho_api_calls() - before;

    // A burst: ten messages of one chat in one delivery.
    let before = system.zoho_api_calls();
    let burst: Vec<(String, i64, String)> = (0..10)
        .map(|i| {
            (
                format!("wamid.B{i}"),
                MAY_20_0915 + 600 + i,
                format!("burst {i}"),
            )
        })
        .collect();
    let burst_refs: Vec<(&str, i64, &str)> = burst
        .iter()
        .map(|(a, b, c)| (a.as_str(), *b, c.as_str()))
        .collect();
    system
        .post_webhook(&messages_delivery(contacts[0], "Contact", &burst_refs))
        .await;
    system.wait_for_note_line("+447700900123", "burst 9").await;
    let burst_calls = system.zoho_api_calls() - before;

    let mix_messages = contacts.len() + steady + 1 + 10;
    let mix_calls =
        (new_chat * contacts.len() as f64) as usize + steady + media_calls + burst_calls;
    println!(
        "Zoho calls per message: new chat {new_chat:.2}, steady state {steady_state:.2}, media message {media_calls}.00, burst of 10 in one delivery {:.2} ({burst_calls} calls); the whole mix {:.2} ({mix_calls} calls for {mix_messages} messages)",
        burst_calls as f64 / 10.0,
        mix_calls as f64 / mix_messages as f64
    );
    assert_eq!(
        media_calls, 2,
        "a photo costs its upload and the note update"
    );
    assert_eq!(
        steady_state, 1.0,
        "a known chat's message costs one note update"
    );
    assert!(
        burst_calls < 10,
        "a burst shares note updates: {burst_calls}"
    );
    system.assert_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_number_registered_as_whatsapp_manager_shows_it_heads_notes_in_e164() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    // Registered again, typed as WhatsApp Manager shows it.
    let (status, body) = system
        .call(
            reqwest::Method::POST,
            "/api/whatsapp-numbers",
            &workspace.owner_token,
            Some(serde_json::json!({
                "phone_number_id": e2e::PHONE_NUMBER_ID,
                "display_phone_number": "+44 7700 900100",
                "access_token": graph_sandbox::DEFAULT_ACCESS_TOKEN,
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["whatsapp_number"]["display_phone_number"],
        "+447700900100"
    );
    system.connect_zoho(&workspace).await;
    system
        .post_webhook(&text_delivery(
            ALICE_WA_ID,
            "Alice",
            "wamid.SPACED",
            MAY_20_0915,
            "hello",
        ))
        .await;
    let (_, notes) = system.wait_for_note_line("+447700900123", "hello").await;
    let content = notes[0]["Note_Content"].as_str().unwrap_or_default();
    assert!(
        content.starts_with("WhatsApp chat: https://wa.me/447700900123 (with +447700900100)\n"),
        "{content}"
    );
}
