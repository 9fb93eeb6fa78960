//! The Graph adapter's live-chat sends beyond text and templates, against
//! the Graph sandbox: a file is uploaded (multipart), sent by its id, and
//! can be fetched back by that id as note-append fetches received media;
//! reactions go out as WhatsApp's `reaction` type.

use graph_sandbox::{
    DEFAULT_ACCESS_TOKEN, DEFAULT_API_VERSION, DEFAULT_PHONE_NUMBER_ID, Endpoint, GraphSandbox,
    GraphSandboxConfig, GraphSandboxHandle,
};
use shared::adapters::graph::{GraphBusinessNumbers, GraphMedia};
use shared::business_numbers::{BusinessNumbers, MediaMessage, MediaUpload, OutboundMediaKind};
use shared::media::MediaSource;

const ALICE: &str = "+447700900123";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// A sandbox in which Alice wrote a minute ago (her window is open), and
/// the adapter pointed at it.
async fn alice_wrote() -> (GraphSandboxHandle, GraphBusinessNumbers) {
    let sb = GraphSandbox::start(GraphSandboxConfig::default())
        .await
        .expect("sandbox starts");
    sb.record_inbound(DEFAULT_PHONE_NUMBER_ID, "447700900123", now() - 60);
    let numbers =
        GraphBusinessNumbers::new(reqwest::Client::new(), &sb.base_url(), DEFAULT_API_VERSION);
    (sb, numbers)
}

#[tokio::test]
async fn a_photo_is_uploaded_sent_by_id_and_fetched_back_by_id() {
    let (sb, numbers) = alice_wrote().await;
    let photo = b"\xFF\xD8\xFF\xE0 a kitchen".to_vec();

    let media_id = numbers
        .upload_media(
            DEFAULT_ACCESS_TOKEN,
            DEFAULT_PHONE_NUMBER_ID,
            MediaUpload {
                bytes: photo.clone(),
                mime_type: "image/jpeg".into(),
                file_name: "kitchen.jpg".into(),
            },
        )
        .await
        .expect("uploaded");
    assert_eq!(sb.request_count(Endpoint::MediaUpload), 1);
    assert_eq!(sb.media_bytes(&media_id), Some(photo.clone()));

    let wamid = numbers
        .send_media(
            DEFAULT_ACCESS_TOKEN,
            DEFAULT_PHONE_NUMBER_ID,
            ALICE,
            &MediaMessage {
                kind: OutboundMediaKind::Image,
                media_id: &media_id,
                caption: Some("The damp patch"),
                file_name: None,
            },
        )
        .await
        .expect("sent");
    let sent = sb.sent_messages().pop().expect("a send");
    assert_eq!(sent.message_id.as_deref(), Some(wamid.as_str()));
    assert_eq!(sent.body["type"], "image");
    assert_eq!(sent.body["image"]["id"], media_id.as_str());
    assert_eq!(sent.body["image"]["caption"], "The damp patch");
    assert!(sent.body["image"].get("filename").is_none());

    // What note-append does with a message's media id.
    let fetched = GraphMedia::new(reqwest::Client::new(), &sb.base_url(), DEFAULT_API_VERSION)
        .fetch(DEFAULT_ACCESS_TOKEN, &media_id, 1 << 20)
        .await
        .expect("fetched back");
    assert_eq!(fetched.bytes, photo);
    assert_eq!(fetched.mime_type, "image/jpeg");
}

#[tokio::test]
async fn documents_keep_their_name_reactions_name_their_target_and_refusals_say_why() {
    let (sb, numbers) = alice_wrote().await;
    let upload = |bytes: &[u8], mime: &str| MediaUpload {
        bytes: bytes.to_vec(),
        mime_type: mime.into(),
        file_name: "lease.pdf".into(),
    };
    let media_id = numbers
        .upload_media(
            DEFAULT_ACCESS_TOKEN,
            DEFAULT_PHONE_NUMBER_ID,
            upload(b"%PDF-1.7 lease", "application/pdf"),
        )
        .await
        .expect("uploaded");
    numbers
        .send_media(
            DEFAULT_ACCESS_TOKEN,
            DEFAULT_PHONE_NUMBER_ID,
            ALICE,
            &MediaMessage {
                kind: OutboundMediaKind::Document,
                media_id: &media_id,
                caption: None,
                file_name: Some("lease.pdf"),
            },
        )
        .await
        .expect("sent");
    let sent = sb.sent_messages().pop().expect("a send");
    assert_eq!(sent.body["document"]["filename"], "lease.pdf");
    assert!(sent.body["document"].get("caption").is_none());

    numbers
        .send_reaction(
            DEFAULT_ACCESS_TOKEN,
            DEFAULT_PHONE_NUMBER_ID,
            ALICE,
            "wamid.ASK1",
            "👍",
        )
        .await
        .expect("reacted");
    let sent = sb.sent_messages().pop().expect("a send");
    assert_eq!(sent.body["type"], "reaction");
    assert_eq!(sent.body["reaction"]["message_id"], "wamid.ASK1");
    assert_eq!(sent.body["reaction"]["emoji"], "👍");

    // Meta's refusals come back in words, and as final.
    let refused = numbers
        .upload_media(
            DEFAULT_ACCESS_TOKEN,
            DEFAULT_PHONE_NUMBER_ID,
            upload(b"GIF89a", "image/gif"),
        )
        .await
        .expect_err("refused");
    assert!(!refused.transient);
    assert!(
        refused.explanation.contains("Param file must be a file"),
        "{refused}"
    );
    let mismatched = numbers
        .upload_media(
            DEFAULT_ACCESS_TOKEN,
            DEFAULT_PHONE_NUMBER_ID,
            upload(b"not a pdf", "application/pdf"),
        )
        .await
        .expect_err("refused");
    assert_eq!(mismatched.code, Some(131053));
    assert!(
        mismatched.explanation.contains("attached file"),
        "{mismatched}"
    );
    sb.fail_next_at(Endpoint::MediaUpload, 1, 503);
    let unavailable = numbers
        .upload_media(
            DEFAULT_ACCESS_TOKEN,
            DEFAULT_PHONE_NUMBER_ID,
            upload(b"%PDF-1.7", "application/pdf"),
        )
        .await
        .expect_err("unavailable");
    assert!(unavailable.transient, "{unavailable}");
}
