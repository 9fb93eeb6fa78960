//! `POST /{version}/{phone_number_id}/media`: Meta's type and size rules;
//! uploads are sent by id and downloaded like received media.

mod common;

use common::{Sandbox, answer, code};
use graph_sandbox::{DEFAULT_ACCESS_TOKEN, DEFAULT_PHONE_NUMBER_ID, Endpoint, SeedMedia};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

fn jpeg(size: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.resize(size, 7);
    bytes
}

fn webp(size: usize, animated: bool) -> Vec<u8> {
    let mut bytes = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0".to_vec();
    bytes.push(if animated { 0x02 } else { 0 });
    bytes.resize(size, 1);
    bytes
}

async fn upload(s: &Sandbox, bytes: Vec<u8>, mime: &str, product: Option<&str>) -> (u16, Value) {
    let part = Part::bytes(bytes)
        .file_name("file.bin")
        .mime_str(mime)
        .expect("mime");
    let mut form = Form::new().part("file", part).text("type", mime.to_owned());
    if let Some(product) = product {
        form = form.text("messaging_product", product.to_owned());
    }
    let response = s
        .http
        .post(s.url(&format!("{DEFAULT_PHONE_NUMBER_ID}/media")))
        .bearer_auth(DEFAULT_ACCESS_TOKEN)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    answer(response).await
}

#[tokio::test]
async fn an_upload_can_be_downloaded_and_sent_by_id() {
    let s = Sandbox::start().await;
    let bytes = jpeg(2048);
    let (status, body) = upload(&s, bytes.clone(), "image/jpeg", Some("whatsapp")).await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().expect("media id").to_owned();
    assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
    assert_eq!(s.sb.media_bytes(&id), Some(bytes.clone()));

    // Through the download endpoints, as a received media item.
    let (status, meta) = s
        .get(&format!("{id}?phone_number_id={DEFAULT_PHONE_NUMBER_ID}"))
        .await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["mime_type"], "image/jpeg");
    let downloaded = s
        .http
        .get(meta["url"].as_str().expect("url"))
        .bearer_auth(DEFAULT_ACCESS_TOKEN)
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(downloaded.to_vec(), bytes);

    let mut rx = s.listen().await;
    s.open_window();
    let (status, body) = s
        .send(
            json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "image",
                     "image": {"id": id, "caption": "The flat"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rx.next().await.statuses()[0].1, "sent");
    // Any file can go as a document, with its name.
    let (status, _) = s
        .send(
            json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "document",
                     "document": {"id": id, "filename": "flat.jpg"}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.sb.request_count(Endpoint::MediaUpload), 1);
}

#[tokio::test]
async fn types_and_sizes_are_checked() {
    let s = Sandbox::start().await;
    let cases: [(Vec<u8>, &str, Option<&str>, i64); 7] = [
        (jpeg(100), "image/jpeg", None, 100),
        (jpeg(100), "image/gif", Some("whatsapp"), 100),
        (jpeg(100), "application/zip", Some("whatsapp"), 100),
        (
            jpeg(5 * 1024 * 1024 + 1),
            "image/jpeg",
            Some("whatsapp"),
            131053,
        ),
        (
            b"not a jpeg".to_vec(),
            "image/jpeg",
            Some("whatsapp"),
            131053,
        ),
        (
            webp(100 * 1024 + 1, false),
            "image/webp",
            Some("whatsapp"),
            131053,
        ),
        (Vec::new(), "application/pdf", Some("whatsapp"), 131053),
    ];
    for (bytes, mime, product, expected) in cases {
        let (status, body) = upload(&s, bytes, mime, product).await;
        assert_eq!((status, code(&body)), (400, expected), "{mime}: {body}");
        assert!(body["error"]["error_data"]["details"].is_string());
    }
    let (_, body) = upload(&s, jpeg(10), "application/zip", Some("whatsapp")).await;
    let details = body["error"]["error_data"]["details"]
        .as_str()
        .unwrap_or("");
    assert!(
        details.contains("image/jpeg") && details.contains("application/zip"),
        "{details}"
    );
    // An animated sticker may reach 500 KB; a document 100 MB (not tried).
    let (status, body) = upload(&s, webp(400 * 1024, true), "image/webp", Some("whatsapp")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = upload(
        &s,
        b"%PDF-1.7 tiny".to_vec(),
        "application/pdf",
        Some("whatsapp"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = upload(
        &s,
        vec![1; 1024],
        "audio/ogg; codecs=opus",
        Some("whatsapp"),
    )
    .await;
    assert_eq!(status, 200);

    // Token, number, not multipart.
    let response = s
        .http
        .post(s.url(&format!("{DEFAULT_PHONE_NUMBER_ID}/media")))
        .bearer_auth("wrong")
        .multipart(Form::new().text("messaging_product", "whatsapp"))
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 401);
    let response = s
        .http
        .post(s.url(&format!("{DEFAULT_PHONE_NUMBER_ID}/media")))
        .bearer_auth(DEFAULT_ACCESS_TOKEN)
        .json(&json!({"messaging_product": "whatsapp"}))
        .send()
        .await
        .expect("upload");
    let (status, body) = answer(response).await;
    assert_eq!((status, code(&body)), (400, 100));
}

#[tokio::test]
async fn media_that_cannot_be_sent_fails_in_a_status_webhook() {
    let s = Sandbox::start().await;
    let mut rx = s.listen().await;
    s.open_window();
    let (_, body) = upload(
        &s,
        b"%PDF-1.7".to_vec(),
        "application/pdf",
        Some("whatsapp"),
    )
    .await;
    let pdf = body["id"].as_str().expect("id").to_owned();
    s.sb.seed_media(SeedMedia::bytes("777", "image/jpeg", jpeg(10)).with_phone_number_id("other"));
    for media in [
        json!({"type": "image", "image": {"id": "does-not-exist"}}),
        json!({"type": "image", "image": {"id": pdf}}),
        json!({"type": "image", "image": {"id": "777"}}),
    ] {
        let mut body = json!({"messaging_product": "whatsapp", "to": "+447700900123"});
        for (k, v) in media.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let (status, answer) = s.send(body).await;
        assert_eq!(status, 200, "{answer}");
        let hook = rx.next().await;
        assert_eq!(hook.status()["status"], "failed");
        assert_eq!(hook.status()["errors"][0]["code"], 131053);
    }
    // Links are taken as given.
    let (status, _) = s
        .send(
            json!({"messaging_product": "whatsapp", "to": "+447700900123", "type": "video",
                     "video": {"link": "https://example.com/tour.mp4", "caption": "Tour"}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(rx.next().await.status()["status"], "sent");
}
