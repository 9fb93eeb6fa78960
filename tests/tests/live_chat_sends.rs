//! Sending from the live chat beyond text and templates, through the HTTP
//! API as the page calls it: reactions, photos and documents (their files
//! attached to the record, in Pipedrive and in Zoho), and a chat started
//! from a record with a template.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use e2e::live::{BOB_WA_ID, PIPEDRIVE_ANA, PIPEDRIVE_BRUNO, unix_now};
use e2e::{ALICE_WA_ID, PHONE_NUMBER_ID, TestSystem};
use graph_sandbox::Endpoint;
use serde_json::{Value, json};

const ALICE: &str = "+447700900123";
const JPEG_HEAD: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F'];
const MB: usize = 1024 * 1024;

/// A JPEG-looking file of `size` bytes.
fn jpeg(size: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    bytes[..JPEG_HEAD.len()].copy_from_slice(JPEG_HEAD);
    bytes
}

fn media(kind: &str, file_name: &str, mime: &str, bytes: &[u8], caption: Option<&str>) -> Value {
    let mut media = json!({
        "kind": kind, "file_name": file_name, "mime_type": mime,
        "data_base64": STANDARD.encode(bytes),
    });
    if let Some(caption) = caption {
        media["caption"] = caption.into();
    }
    media
}

/// The sends of `kind` the Graph sandbox took.
fn sent_of(system: &TestSystem, kind: &str) -> Vec<Value> {
    system
        .graph
        .sent_messages()
        .into_iter()
        .filter(|m| m.kind == kind)
        .map(|m| m.body)
        .collect()
}

/// Bob's chat, two days old (window closed), synced.
async fn bob_wrote_two_days_ago(system: &TestSystem) {
    system.bob_wrote_two_days_ago("wamid.BOB1", "Hello?").await;
    system
        .wait_for_message_state("wamid.BOB1", "appended")
        .await;
}

/// A stored attribute of a message, as the table holds it.
async fn stored_attribute(system: &TestSystem, message_id: &str, name: &str) -> Option<String> {
    let sk = format!("MSG#{message_id}");
    system.table_items().await.into_iter().find_map(|item| {
        (item.get("sk")?.as_s().ok()? == &sk)
            .then(|| item.get(name)?.as_s().ok().cloned())
            .flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaction_goes_once_to_a_message_the_contact_sent_and_lands_in_the_day_note() {
    let system = TestSystem::start().await;
    let (_, person) = system
        .pipedrive_chat_with_a_fresh_question("wamid.ASK1")
        .await;
    let record = format!("persons/{}", person["id"]);
    let session = system.pipedrive_live_session(PIPEDRIVE_ANA).await;

    let thumbs = json!({ "client_id": "react-1", "reaction": { "message_id": "wamid.ASK1", "emoji": "👍" } });
    let (status, sent) = system
        .live_send(&session, ALICE_WA_ID, thumbs.clone())
        .await;
    assert_eq!(status, 201, "{sent}");
    let reaction_id = sent["message_id"].as_str().expect("an id").to_owned();
    // A double click reacts once.
    let (status, again) = system.live_send(&session, ALICE_WA_ID, thumbs).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["message_id"], reaction_id.as_str());
    assert_eq!(again["duplicate"], true);
    let reactions = sent_of(&system, "reaction");
    assert_eq!(reactions.len(), 1, "{reactions:#?}");
    assert_eq!(reactions[0]["to"], ALICE);
    assert_eq!(reactions[0]["reaction"]["message_id"], "wamid.ASK1");
    assert_eq!(reactions[0]["reaction"]["emoji"], "👍");
    assert_eq!(
        stored_attribute(&system, &reaction_id, "reaction_to")
            .await
            .as_deref(),
        Some("wamid.ASK1")
    );

    // Its line, once, with who reacted; only `sent` follows a reaction.
    let (_, note) = system.wait_for_pipedrive_note(ALICE, "[Reacted 👍").await;
    let content = note["content"].as_str().expect("content");
    assert_eq!(content.matches("[Reacted 👍").count(), 1, "{content}");
    assert!(
        content.contains(
            "→ ana@acme.example (Business +447700900100): [Reacted 👍 to \"Can I visit on Friday?\"]"
        ),
        "{content}"
    );
    system
        .eventually("the reaction to show on Alice's message", || async {
            let (_, view) = system.live_record_chats(Some(&session), &record).await;
            // Reactions are no bubbles of their own: they show on the
            // message they are on.
            let shown = view["chats"][0]["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["message_id"] == "wamid.ASK1")
                .map(|m| m["reactions"].clone());
            match shown {
                Some(r)
                    if r.as_array().is_some_and(|r| {
                        r.iter()
                            .any(|r| r["emoji"] == "👍" && r["direction"] == "outbound")
                    }) =>
                {
                    Ok(())
                }
                other => Err(format!("it shows {other:?}")),
            }
        })
        .await;

    // Taking it back is a reaction with no emoji.
    let (status, removed) = system
        .live_send(
            &session,
            ALICE_WA_ID,
            json!({ "client_id": "react-2", "reaction": { "message_id": "wamid.ASK1", "emoji": "" } }),
        )
        .await;
    assert_eq!(status, 201, "{removed}");
    assert_eq!(sent_of(&system, "reaction")[1]["reaction"]["emoji"], "");
    system
        .wait_for_pipedrive_note(ALICE, "[Removed a reaction to \"Can I visit on Friday?\"]")
        .await;

    // Targets that are not the contact's messages in this chat, and what is
    // not one emoji, are refused before WhatsApp sees them.
    bob_wrote_two_days_ago(&system).await;
    let before = system.graph.sent_messages().len();
    for (client_id, target, emoji, expected) in [
        ("bad-1", "wamid.NOPE", "👍", 404),
        ("bad-2", "wamid.BOB1", "👍", 404),
        ("bad-3", reaction_id.as_str(), "👍", 400),
        ("bad-4", "wamid.ASK1", "ok", 400),
    ] {
        let (status, body) = system
            .live_send(
                &session,
                ALICE_WA_ID,
                json!({ "client_id": client_id, "reaction": { "message_id": target, "emoji": emoji } }),
            )
            .await;
        assert_eq!(status, expected, "{client_id}: {body}");
    }
    // The window is closed in Bob's chat: reactions wait for him.
    let (status, refused) = system
        .live_send(
            &session,
            BOB_WA_ID,
            json!({ "client_id": "bob-1", "reaction": { "message_id": "wamid.BOB1", "emoji": "👍" } }),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused.to_string().contains("template"), "{refused}");
    assert_eq!(system.graph.sent_messages().len(), before, "nothing sent");
    system.assert_pipedrive_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_and_a_document_reach_whatsapp_once_and_their_files_land_on_the_person() {
    let system = TestSystem::start().await;
    let (_, person) = system
        .pipedrive_chat_with_a_fresh_question("wamid.ASK1")
        .await;
    let session = system.pipedrive_live_session(PIPEDRIVE_ANA).await;
    let photo = jpeg(48_000);

    let send = json!({ "client_id": "photo-1", "media": media("image", "front-door.jpg", "image/jpeg", &photo, Some("The front door")) });
    let (status, sent) = system.live_send(&session, ALICE_WA_ID, send.clone()).await;
    assert_eq!(status, 201, "{sent}");
    let (status, again) = system.live_send(&session, ALICE_WA_ID, send).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["message_id"], sent["message_id"]);
    assert_eq!(
        system.graph.request_count(Endpoint::MediaUpload),
        1,
        "uploaded once"
    );
    let images = sent_of(&system, "image");
    assert_eq!(images.len(), 1, "{images:#?}");
    assert_eq!(images[0]["image"]["caption"], "The front door");
    let media_id = images[0]["image"]["id"].as_str().expect("sent by id");
    assert_eq!(system.graph.media_bytes(media_id), Some(photo.clone()));

    // The note line names the file, attached to the person as a received
    // photo would be.
    let (_, note) = system
        .wait_for_pipedrive_note(ALICE, "(attached: front-door.jpg)")
        .await;
    let content = note["content"].as_str().expect("content");
    assert!(
        content.contains(
            "→ ana@acme.example (Business +447700900100): [Image] The front door (attached: front-door.jpg)"
        ),
        "{content}"
    );
    let files = system.pipedrive.files();
    let file = files
        .iter()
        .find(|f| f["file_name"] == "front-door.jpg")
        .unwrap_or_else(|| panic!("the photo is on the person: {files:#?}"));
    assert_eq!(file["person_id"], person["id"]);
    assert_eq!(file["file_size"], photo.len());

    // A document goes with its name.
    let lease = b"%PDF-1.7\n% the lease\n".to_vec();
    let (status, sent) = system
        .live_send(
            &session,
            ALICE_WA_ID,
            json!({ "client_id": "doc-1", "media": media("document", "lease.pdf", "application/pdf", &lease, None) }),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let documents = sent_of(&system, "document");
    assert_eq!(documents.len(), 1, "{documents:#?}");
    assert_eq!(documents[0]["document"]["filename"], "lease.pdf");
    system
        .wait_for_pipedrive_note(ALICE, "[Document: lease.pdf] (attached: lease.pdf)")
        .await;
    assert!(
        system
            .pipedrive
            .files()
            .iter()
            .any(|f| f["file_name"] == "lease.pdf" && f["file_size"] == lease.len()),
        "the document is on the person"
    );

    // Limits and types are refused with what they are, before any upload.
    let uploads = system.graph.request_count(Endpoint::MediaUpload);
    for (client_id, body, status, says) in [
        (
            "big-1",
            media("image", "big.jpg", "image/jpeg", &jpeg(4 * MB + 1), None),
            413,
            "up to 4 MB",
        ),
        (
            "big-2",
            media("image", "huge.jpg", "image/jpeg", &jpeg(5 * MB + 1), None),
            413,
            "images up to 5 MB",
        ),
        (
            "type-1",
            media("image", "cat.gif", "image/gif", b"GIF89a....", None),
            400,
            "JPEG, PNG",
        ),
        (
            "type-2",
            media(
                "document",
                "x.zip",
                "application/zip",
                b"PK\x03\x04..",
                None,
            ),
            400,
            "PDF",
        ),
        (
            "type-3",
            media("image", "fake.jpg", "image/jpeg", b"%PDF-1.7", None),
            400,
            "not of its type",
        ),
    ] {
        let (code, refused) = system
            .live_send(
                &session,
                ALICE_WA_ID,
                json!({ "client_id": client_id, "media": body }),
            )
            .await;
        assert_eq!(code, status, "{client_id}: {refused}");
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{client_id}: {refused}");
    }
    assert_eq!(
        system.graph.request_count(Endpoint::MediaUpload),
        uploads,
        "nothing uploaded"
    );

    // Files are free-form too: not while the window is closed.
    bob_wrote_two_days_ago(&system).await;
    let (status, refused) = system
        .live_send(
            &session,
            BOB_WA_ID,
            json!({ "client_id": "bob-1", "media": media("image", "a.jpg", "image/jpeg", &photo, None) }),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(system.graph.request_count(Endpoint::MediaUpload), uploads);
    system.assert_pipedrive_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_sent_from_a_zoho_lead_is_attached_to_the_lead() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    system
        .graph
        .set_webhook(&system.url("/webhooks/whatsapp"), e2e::META_APP_SECRET);
    let asked_at = unix_now() - 60;
    system
        .post_webhook(&e2e::text_delivery(
            ALICE_WA_ID,
            "Alice",
            "wamid.Z1",
            asked_at,
            "Photos of the flat?",
        ))
        .await;
    system
        .graph
        .record_inbound(PHONE_NUMBER_ID, ALICE_WA_ID, asked_at);
    let (lead, _) = system
        .wait_for_note_line(ALICE, "Photos of the flat?")
        .await;
    let lead_id = lead["id"].as_str().expect("lead id").to_owned();
    let session = system
        .zoho_live_session(&workspace.id, &workspace.owner_id)
        .await;
    let png = b"\x89PNG\r\n\x1a\n a living room".to_vec();
    let (status, sent) = system
        .live_send(
            &session,
            ALICE_WA_ID,
            json!({ "client_id": "z-photo", "media": media("image", "living-room.png", "image/png", &png, Some("The living room")) }),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let (_, notes) = system
        .wait_for_note_line(ALICE, "(attached: living-room.png)")
        .await;
    assert!(
        notes.iter().any(|n| n["Note_Content"].as_str().is_some_and(|c| c.contains(
            "→ bruno@acme.example (Business +447700900100): [Image] The living room (attached: living-room.png)"
        ))),
        "{notes:#?}"
    );
    let attached: Vec<Value> = system
        .sandbox
        .attachments()
        .into_iter()
        .filter(|a| a["Parent_Id"]["id"] == lead_id.as_str())
        .collect();
    assert_eq!(attached.len(), 1, "{attached:#?}");
    assert_eq!(attached[0]["File_Name"], "living-room.png");
    assert_eq!(attached[0]["Size"], png.len().to_string());
    system.assert_contract_kept();
}

/// `POST /api/live/chats` as `session`; (status, body).
async fn start_chat(system: &TestSystem, session: &str, body: Value) -> (u16, Value) {
    system.live_post(session, "/api/live/chats", body).await
}

fn start(client_id: &str, record: &str, contact: &str) -> Value {
    json!({
        "client_id": client_id,
        "record": record,
        "contact": contact,
        "phone_number_id": PHONE_NUMBER_ID,
        "template": { "name": "order_update", "language": "en", "parameters": ["Carol", "#7"] },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_starts_from_a_person_with_a_template_and_links_to_that_person() {
    let system = TestSystem::start().await;
    let workspace = system.pipedrive_workspace_of_ana().await;
    let carol = system
        .pipedrive
        .insert_person(
            json!({ "name": "Carol", "phones": [{ "value": "+447700900777", "primary": true }] }),
        )
        .expect("person");
    let record = format!("persons/{carol}");
    let session = system.pipedrive_live_session(PIPEDRIVE_ANA).await;

    let (status, started) = start_chat(
        &system,
        &session,
        start("start-1", &record, "+447700900777"),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["chat_key"], "170000000000001#447700900777");
    let message_id = started["message_id"].as_str().expect("an id").to_owned();
    let (status, again) = start_chat(
        &system,
        &session,
        start("start-1", &record, "+447700900777"),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message_id"], message_id.as_str());
    let templates = sent_of(&system, "template");
    assert_eq!(templates.len(), 1, "{templates:#?}");
    assert_eq!(templates[0]["to"], "+447700900777");
    assert_eq!(templates[0]["template"]["name"], "order_update");

    // The record shows the chat, and the chat is linked to that person
    // through the usual sync, its template in the day note.
    let (status, view) = system.live_record_chats(Some(&session), &record).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["chats"][0]["chat_key"], "170000000000001#447700900777");
    // Ana owns the business number: a new chat may start from it.
    assert_eq!(
        view["senders"],
        json!([{ "phone_number_id": e2e::PHONE_NUMBER_ID, "business_number": "+447700900100" }]),
        "{view}"
    );
    assert_eq!(
        view["chats"][0]["messages"][0]["message_id"],
        message_id.as_str()
    );
    let (_, note) = system
        .wait_for_pipedrive_note("+447700900777", "[Template order_update: Carol, #7]")
        .await;
    assert!(
        note["content"]
            .as_str()
            .is_some_and(|c| c.contains("→ ana@acme.example (Business +447700900100)")),
        "{note}"
    );
    assert_eq!(
        system.pipedrive_persons_with_phone("+447700900777").len(),
        1,
        "no second person"
    );
    let (_, ledger) = system
        .call(
            reqwest::Method::GET,
            &format!(
                "/api/chats/{}/messages",
                e2e::chat_key_param("447700900777")
            ),
            &workspace.owner_token,
            None,
        )
        .await;
    assert_eq!(ledger["record"]["module"], "persons", "{ledger}");
    assert_eq!(ledger["record"]["id"], carol.to_string(), "{ledger}");

    // A chat that exists just gets the next template.
    let (status, next) = start_chat(
        &system,
        &session,
        start("start-2", &record, "+447700900777"),
    )
    .await;
    assert_eq!(status, 201, "{next}");
    assert_eq!(next["chat_key"], started["chat_key"]);
    assert_eq!(sent_of(&system, "template").len(), 2);

    // Not the record's number, not the workspace's business number, not a
    // record: refused, nothing sent.
    let (status, refused) = start_chat(
        &system,
        &session,
        start("start-3", &record, "+447700900888"),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("not one of the record's numbers"),
        "{refused}"
    );
    let mut elsewhere = start("start-4", &record, "+447700900777");
    elsewhere["phone_number_id"] = "170000000000999".into();
    let (status, refused) = start_chat(&system, &session, elsewhere).await;
    assert_eq!(status, 404, "{refused}");
    let (status, refused) = start_chat(
        &system,
        &session,
        start("start-5", "persons/987654", "+447700900777"),
    )
    .await;
    assert_eq!(status, 404, "a record the user cannot see: {refused}");

    // A member who neither owns the number nor answers for the chat may
    // read it, not write.
    let (_, bruno_token) = system
        .add_user(&workspace, "bruno@acme.example", "member")
        .await;
    system
        .pipedrive
        .set_authorizing_user("bruno@acme.example")
        .expect("seeded");
    let (code, body) = system
        .crm_oauth("pipedrive", &bruno_token, "personal")
        .await;
    assert_eq!(code, 200, "{body}");
    let bruno = system.pipedrive_live_session(PIPEDRIVE_BRUNO).await;
    let (status, refused) =
        start_chat(&system, &bruno, start("start-6", &record, "+447700900777")).await;
    assert_eq!(status, 403, "{refused}");
    let (_, view) = system.live_record_chats(Some(&bruno), &record).await;
    assert_eq!(
        view["senders"],
        json!([]),
        "no number to start from: {view}"
    );
    assert_eq!(sent_of(&system, "template").len(), 2, "nothing more sent");
    system.assert_pipedrive_contract_kept();
}
