//! Media messages: the file is downloaded through the Graph API media
//! endpoint, attached to the record in Zoho, and named in the note line; a
//! file that cannot be attached gets a line that says why, and the message
//! is still synced.

use e2e::{TestSystem, fixture};
use graph_sandbox::{Endpoint, SeedMedia};
use zoho_sandbox::SandboxConfig;

const ALICE: &str = "+447700900123";

/// Registers the business number again, now with the token Meta accepts.
async fn register_newer_token(system: &TestSystem, owner_token: &str) -> serde_json::Value {
    let (status, body) = system
        .call(
            reqwest::Method::POST,
            "/api/whatsapp-numbers",
            owner_token,
            Some(serde_json::json!({
                "phone_number_id": e2e::PHONE_NUMBER_ID,
                "display_phone_number": e2e::BUSINESS_NUMBER,
                "access_token": "a-newer-token",
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// (fixture, media id, mime type, file size, the file name the CRM gets)
const MEDIA: [(&str, &str, &str, u64, &str); 5] = [
    (
        "cloud-image-inbound.json",
        "1200000000000001",
        "image/jpeg",
        48_213,
        "image-1200000000000001.jpg",
    ),
    (
        "cloud-video-inbound.json",
        "1200000000000005",
        "video/mp4",
        310_000,
        "video-1200000000000005.mp4",
    ),
    (
        "cloud-audio-inbound.json",
        "1200000000000003",
        "audio/ogg; codecs=opus",
        9_876,
        "audio-1200000000000003.ogg",
    ),
    (
        "cloud-document-inbound.json",
        "1200000000000002",
        "application/pdf",
        120_004,
        "tenancy-form-signed.pdf",
    ),
    (
        "cloud-sticker-inbound.json",
        "1200000000000004",
        "image/webp",
        21_000,
        "sticker-1200000000000004.webp",
    ),
];

async fn note_of_alice_with(system: &TestSystem, needles: &[String]) -> (String, String) {
    system
        .wait_for("every media line", || {
            let lead = system.leads_with_mobile(ALICE).into_iter().next()?;
            let id = lead["id"].as_str()?.to_owned();
            system
                .notes_of("Leads", &id)
                .iter()
                .filter_map(|n| n["Note_Content"].as_str())
                .find(|c| needles.iter().all(|n| c.contains(n.as_str())))
                .map(|c| (id.clone(), c.to_owned()))
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_media_type_is_downloaded_attached_to_the_record_and_named_in_its_line() {
    let system = TestSystem::start_with_fast_retries(SandboxConfig::default(), 1).await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    for (_, id, mime, size, _) in MEDIA {
        system
            .graph
            .seed_media(SeedMedia::generated(id, mime, size));
    }
    // The Graph API is briefly unavailable: the message waits, nothing is lost.
    system.graph.fail_next(1, 503);
    for (name, ..) in MEDIA {
        let response = system.post_webhook(&fixture(name)).await;
        assert_eq!(response.status(), 200, "{name}");
    }
    let needles: Vec<String> = MEDIA
        .iter()
        .map(|(.., file)| format!("(attached: {file})"))
        .collect();
    let (lead_id, content) = note_of_alice_with(&system, &needles).await;
    for line in [
        "← Alice Example: [Image] Damp patch in the kitchen (attached: image-1200000000000001.jpg)",
        "← Alice Example: [Document: tenancy-form-signed.pdf] Signed tenancy form (attached: tenancy-form-signed.pdf)",
        "← Alice Example: [Voice message] (attached: audio-1200000000000003.ogg)",
    ] {
        assert!(content.contains(line), "`{line}` in:\n{content}");
    }
    let mut attached: Vec<(String, String)> = system
        .sandbox
        .attachments()
        .iter()
        .filter(|a| a["Parent_Id"]["id"] == lead_id.as_str())
        .map(|a| {
            (
                a["File_Name"].as_str().unwrap_or_default().to_owned(),
                a["Size"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    attached.sort();
    let mut expected: Vec<(String, String)> = MEDIA
        .iter()
        .map(|(.., size, file)| ((*file).to_owned(), size.to_string()))
        .collect();
    expected.sort();
    assert_eq!(attached, expected, "each file once, whole");
    system.assert_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_limit_or_gone_gets_a_line_that_says_so_and_the_message_still_syncs() {
    let system = TestSystem::start_custom(
        vec![SandboxConfig::default()],
        None,
        vec![("ATTACHMENT_MAX_BYTES".into(), "1000000".into())],
    )
    .await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    // A 2 MB video over a 1 MB limit; the image was never seeded (gone).
    system.graph.seed_media(SeedMedia::generated(
        "1200000000000005",
        "video/mp4",
        2_000_000,
    ));
    for name in ["cloud-video-inbound.json", "cloud-image-inbound.json"] {
        system.post_webhook(&fixture(name)).await;
    }
    let needles = [
        "[Video] Walk-through of the garden (not attached: video-1200000000000005.mp4, too large to attach (2.0 MB; files up to 1.0 MB are attached))".to_owned(),
        "[Image] Damp patch in the kitchen (not attached: image-1200000000000001.jpg, WhatsApp no longer has the file)".to_owned(),
    ];
    note_of_alice_with(&system, &needles).await;
    assert_eq!(
        system.graph.request_count(Endpoint::Download),
        0,
        "the oversized file was refused from its size, never downloaded"
    );
    assert!(system.sandbox.attachments().is_empty());
    let log = system.sync_log(&workspace.owner_token, "").await;
    let events: Vec<&str> = log.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(!events.contains(&"dead_lettered"), "{events:?}");
    assert!(!events.contains(&"attached"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_whatsapp_token_parks_the_media_message_until_a_new_token_is_registered() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    let token = &workspace.owner_token;
    system.graph.seed_media(SeedMedia::generated(
        "1200000000000001",
        "image/jpeg",
        48_213,
    ));
    // The token we hold has been revoked at Meta.
    system.graph.set_access_tokens(["a-newer-token"]);
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    system
        .post_webhook(&fixture("cloud-image-inbound.json"))
        .await;
    // The text goes on; the photo waits, and the ledger says why.
    system.wait_for_note_line(ALICE, "Elm Road").await;
    let photo_id = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgURkFLRTAwMDAwMDAwMDAwMDAwMDQA";
    system.wait_for_message_state(photo_id, "waiting").await;
    let photo = system.ledger(token, e2e::ALICE_WA_ID).await[1].clone();
    assert_eq!(photo["message_id"], photo_id);
    assert_eq!(photo["kind"], "image");
    assert_eq!(photo["state"], "waiting", "{photo}");
    assert_eq!(
        photo["reason"],
        "the WhatsApp number has no usable access token for media; register it again with one"
    );

    // Registering the number again with the new token fetches the photo.
    let body = register_newer_token(&system, token).await;
    assert_eq!(body["whatsapp_number"]["has_access_token"], true);
    assert!(
        !body.to_string().contains("a-newer-token"),
        "never returned"
    );
    let (_, notes) = system
        .wait_for_note_line(ALICE, "(attached: image-1200000000000001.jpg)")
        .await;
    let content = notes[0]["Note_Content"].as_str().unwrap_or_default();
    assert_eq!(content.matches("Elm Road").count(), 1, "{content}");
    assert!(
        content.find("Elm Road") < content.find("Damp patch"),
        "lines stay in message order: {content}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_registered_while_a_refused_fetch_is_in_flight_still_gets_the_photo() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    system.graph.seed_media(SeedMedia::generated(
        "1200000000000001",
        "image/jpeg",
        48_213,
    ));
    // The token we hold has been revoked at Meta; the fetch made with it is
    // held in flight while the owner registers the new one.
    system.graph.set_access_tokens(["a-newer-token"]);
    let held = system.graph.hold(Endpoint::Metadata);
    system
        .post_webhook(&fixture("cloud-image-inbound.json"))
        .await;
    system
        .wait_for("the fetch to be in flight", || {
            (held.arrived() > 0).then_some(())
        })
        .await;
    register_newer_token(&system, &workspace.owner_token).await;
    // Not waiting yet when the token came, so its re-queue passed it by.
    let photo_id = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgURkFLRTAwMDAwMDAwMDAwMDAwMDQA";
    assert_eq!(
        system.message_state(photo_id).await.as_deref(),
        Some("queued")
    );
    held.release();

    // The refused fetch parks the photo, sees the token changed meanwhile,
    // and tries again with it rather than waiting for a registration that
    // already happened.
    system
        .wait_for_note_line(ALICE, "(attached: image-1200000000000001.jpg)")
        .await;
    system.wait_for_message_state(photo_id, "appended").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_outage_on_a_photo_after_two_texts_of_one_delivery_loses_neither_text() {
    let system = TestSystem::start_with_fast_retries(SandboxConfig::default(), 1).await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    system.graph.seed_media(SeedMedia::generated(
        "1200000000000001",
        "image/jpeg",
        48_213,
    ));
    // One delivery: two texts, then the photo; the photo's download fails
    // once, after the texts were read but before anything was written.
    let mut delivery: serde_json::Value =
        serde_json::from_slice(&fixture("cloud-image-inbound.json")).expect("fixture");
    let value = &mut delivery["entry"][0]["changes"][0]["value"];
    let photo = value["messages"][0].clone();
    let text = |id: &str, ts: i64, body: &str| {
        serde_json::json!({ "from": "447700900123", "id": id, "timestamp": ts.to_string(),
            "type": "text", "text": { "body": body } })
    };
    value["messages"] = serde_json::json!([
        text("wamid.T1", 1_779_268_500, "first text"),
        text("wamid.T2", 1_779_268_530, "second text"),
        photo
    ]);
    system.graph.fail_next(1, 503);
    system
        .post_webhook(&serde_json::to_vec(&delivery).expect("serialisable"))
        .await;
    let needles = [
        "first text".to_owned(),
        "second text".to_owned(),
        "(attached: image-1200000000000001.jpg)".to_owned(),
    ];
    let (_, content) = note_of_alice_with(&system, &needles).await;
    for needle in &needles {
        assert_eq!(content.matches(needle.as_str()).count(), 1, "{content}");
    }
    for id in ["wamid.T1", "wamid.T2"] {
        system.wait_for_message_state(id, "appended").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_answer_was_lost_is_found_not_uploaded_again() {
    let system = TestSystem::start_with_fast_retries(SandboxConfig::default(), 1).await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    // Alice's lead exists first (her text), so the upload's path is known.
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    let lead = system
        .wait_for("Alice's lead", || {
            system.leads_with_mobile(ALICE).into_iter().next()
        })
        .await;
    let lead_id = lead["id"].as_str().expect("lead id").to_owned();
    let upload_path = format!("/crm/v8/Leads/{lead_id}/Attachments");
    system.graph.seed_media(SeedMedia::generated(
        "1200000000000001",
        "image/jpeg",
        48_213,
    ));
    // Zoho stores the file, then the answer is lost (a 500 in its place).
    system.sandbox.lose_next_response("POST", &upload_path, 500);
    system
        .post_webhook(&fixture("cloud-image-inbound.json"))
        .await;
    system
        .wait_for_note_line(ALICE, "(attached: image-1200000000000001.jpg)")
        .await;
    let uploads = system
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == upload_path)
        .count();
    assert_eq!(
        uploads, 1,
        "the retry found the file instead of sending it again"
    );
    let attached = system
        .sandbox
        .attachments()
        .iter()
        .filter(|a| a["Parent_Id"]["id"] == lead_id.as_str())
        .count();
    assert_eq!(attached, 1, "one attachment on the lead");
    system.assert_contract_kept();
}
