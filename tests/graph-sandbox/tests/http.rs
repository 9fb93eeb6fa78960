//! Drives the sandbox over real HTTP, the way the production Graph client will.

use std::time::Duration;

use graph_sandbox::{
    DEFAULT_ACCESS_TOKEN, DEFAULT_API_VERSION, DEFAULT_DISPLAY_PHONE_NUMBER,
    DEFAULT_PHONE_NUMBER_ID, DEFAULT_VERIFIED_NAME, Endpoint, FileSizeFormat, GraphSandbox,
    GraphSandboxConfig, GraphSandboxHandle, SeedMedia, SeedPhoneNumber, generated_bytes,
};
use reqwest::StatusCode;
use serde_json::Value;

const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0 not really a jpeg";

async fn start(cfg: GraphSandboxConfig) -> GraphSandboxHandle {
    GraphSandbox::start(cfg).await.expect("sandbox starts")
}

async fn started_with_photo() -> GraphSandboxHandle {
    let sb = start(GraphSandboxConfig::default()).await;
    sb.seed_media(SeedMedia::bytes("1001", "image/jpeg", JPEG));
    sb
}

fn metadata_url(sb: &GraphSandboxHandle, id: &str) -> String {
    format!("{}/{DEFAULT_API_VERSION}/{id}", sb.base_url())
}

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request")
}

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("json body")
}

async fn media_url(sb: &GraphSandboxHandle, id: &str) -> String {
    let body = json(get(&metadata_url(sb, id), Some(DEFAULT_ACCESS_TOKEN)).await).await;
    body["url"].as_str().expect("url").to_owned()
}

#[tokio::test]
async fn metadata_has_meta_documented_shape() {
    let sb = started_with_photo().await;
    let response = get(&metadata_url(&sb, "1001"), Some(DEFAULT_ACCESS_TOKEN)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["id"], "1001");
    assert_eq!(body["mime_type"], "image/jpeg");
    assert_eq!(body["file_size"], JPEG.len().to_string());
    // base64 of a 32-byte digest.
    assert_eq!(body["sha256"].as_str().map(str::len), Some(44));
    let url = body["url"].as_str().expect("url");
    assert!(
        url.starts_with(&format!(
            "{}/whatsapp_business/attachments/?mid=1001&",
            sb.base_url()
        )),
        "{url}"
    );
    assert_eq!(sb.request_count(Endpoint::Metadata), 1);
}

#[tokio::test]
async fn file_size_can_be_a_number() {
    let sb = start(GraphSandboxConfig {
        file_size_format: FileSizeFormat::Number,
        ..GraphSandboxConfig::default()
    })
    .await;
    sb.seed_media(SeedMedia::generated("7", "video/mp4", 5000).with_declared_size(10));
    let body = json(get(&metadata_url(&sb, "7"), Some(DEFAULT_ACCESS_TOKEN)).await).await;
    assert_eq!(body["file_size"], 10);
}

#[tokio::test]
async fn the_url_serves_the_bytes_with_the_mime_type() {
    let sb = started_with_photo().await;
    let url = media_url(&sb, "1001").await;
    let response = get(&url, Some(DEFAULT_ACCESS_TOKEN)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("image/jpeg")
    );
    assert_eq!(response.content_length(), Some(JPEG.len() as u64));
    assert_eq!(response.bytes().await.expect("bytes").as_ref(), JPEG);
    assert_eq!(sb.request_count(Endpoint::Download), 1);
}

#[tokio::test]
async fn generated_content_streams_with_or_without_a_length() {
    let sb = start(GraphSandboxConfig::default()).await;
    let size = 300_000;
    sb.seed_media(SeedMedia::generated("big", "application/pdf", size));
    sb.seed_media(
        SeedMedia::generated("chunked", "application/pdf", size).without_content_length(),
    );
    for id in ["big", "chunked"] {
        let response = get(&media_url(&sb, id).await, Some(DEFAULT_ACCESS_TOKEN)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let length = response.content_length();
        if id == "big" {
            assert_eq!(length, Some(size));
        } else {
            assert_eq!(response.headers().get("content-length"), None);
        }
        let bytes = response.bytes().await.expect("bytes");
        assert_eq!(bytes.as_ref(), generated_bytes(size).as_slice(), "{id}");
    }
    assert_eq!(sb.media_bytes("big"), Some(generated_bytes(size)));
}

#[tokio::test]
async fn wrong_or_missing_token_is_a_graph_oauth_error() {
    let sb = started_with_photo().await;
    for token in [None, Some("someone-elses-token")] {
        let response = get(&metadata_url(&sb, "1001"), token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = json(response).await;
        assert_eq!(body["error"]["code"], 190);
        assert_eq!(body["error"]["type"], "OAuthException");
        assert!(body["error"]["fbtrace_id"].is_string());
        assert!(body["error"]["message"].is_string());
    }
    // The download URL needs the bearer too.
    let url = media_url(&sb, "1001").await;
    let response = get(&url, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(response).await["error"]["code"], 190);
    let recorded = sb.requests();
    assert!(!recorded[0].bearer_present);
    assert!(recorded[1].bearer_present);
}

#[tokio::test]
async fn accepted_tokens_can_be_replaced() {
    let sb = started_with_photo().await;
    sb.set_access_tokens(["rotated"]);
    let old = get(&metadata_url(&sb, "1001"), Some(DEFAULT_ACCESS_TOKEN)).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = get(&metadata_url(&sb, "1001"), Some("rotated")).await;
    assert_eq!(new.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_media_is_graphs_unknown_object_error() {
    let sb = started_with_photo().await;
    let response = get(&metadata_url(&sb, "404404"), Some(DEFAULT_ACCESS_TOKEN)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], 100);
    assert_eq!(body["error"]["error_subcode"], 33);
    assert_eq!(body["error"]["type"], "GraphMethodException");
    // Removed media (WhatsApp keeps them 7 days) is unknown as well.
    assert!(sb.remove_media("1001"));
    let response = get(&metadata_url(&sb, "1001"), Some(DEFAULT_ACCESS_TOKEN)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn phone_number_id_must_be_the_owner() {
    let sb = start(GraphSandboxConfig::default()).await;
    sb.seed_media(SeedMedia::bytes("5", "image/png", &b"png"[..]).with_phone_number_id("111"));
    let url = metadata_url(&sb, "5");
    let own = get(
        &format!("{url}?phone_number_id=111"),
        Some(DEFAULT_ACCESS_TOKEN),
    )
    .await;
    assert_eq!(own.status(), StatusCode::OK);
    let other = get(
        &format!("{url}?phone_number_id=222"),
        Some(DEFAULT_ACCESS_TOKEN),
    )
    .await;
    assert_eq!(other.status(), StatusCode::BAD_REQUEST);
    let none = get(&url, Some(DEFAULT_ACCESS_TOKEN)).await;
    assert_eq!(none.status(), StatusCode::OK);
}

#[tokio::test]
async fn urls_expire_after_their_lifetime() {
    let sb = started_with_photo().await;
    let url = media_url(&sb, "1001").await;
    sb.advance_clock(Duration::from_secs(299));
    assert_eq!(
        get(&url, Some(DEFAULT_ACCESS_TOKEN)).await.status(),
        StatusCode::OK
    );
    sb.advance_clock(Duration::from_secs(1));
    assert_eq!(
        get(&url, Some(DEFAULT_ACCESS_TOKEN)).await.status(),
        StatusCode::NOT_FOUND
    );
    // Asking for the id again gives a fresh URL.
    let fresh = media_url(&sb, "1001").await;
    assert_ne!(fresh, url);
    assert_eq!(
        get(&fresh, Some(DEFAULT_ACCESS_TOKEN)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn url_lifetime_is_configurable() {
    let sb = start(GraphSandboxConfig {
        url_lifetime: Duration::ZERO,
        ..GraphSandboxConfig::default()
    })
    .await;
    sb.seed_media(SeedMedia::bytes("1", "image/jpeg", JPEG));
    let url = media_url(&sb, "1").await;
    assert_eq!(
        get(&url, Some(DEFAULT_ACCESS_TOKEN)).await.status(),
        StatusCode::NOT_FOUND
    );
    sb.set_url_lifetime(Duration::from_secs(60));
    assert_eq!(
        get(&url, Some(DEFAULT_ACCESS_TOKEN)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn injected_failures_apply_to_the_next_requests() {
    let sb = started_with_photo().await;
    sb.fail_next(2, 503);
    for _ in 0..2 {
        let response = get(&metadata_url(&sb, "1001"), Some(DEFAULT_ACCESS_TOKEN)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json(response).await["error"]["code"], 2);
    }
    sb.fail_next(1, 429);
    let response = get(&metadata_url(&sb, "1001"), Some(DEFAULT_ACCESS_TOKEN)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json(response).await["error"]["code"], 4);
    // Only downloads: the metadata call goes through.
    sb.fail_next_at(Endpoint::Download, 1, 404);
    let url = media_url(&sb, "1001").await;
    assert_eq!(
        get(&url, Some(DEFAULT_ACCESS_TOKEN)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&url, Some(DEFAULT_ACCESS_TOKEN)).await.status(),
        StatusCode::OK
    );
    assert_eq!(sb.request_count(Endpoint::Metadata), 4);
    assert_eq!(sb.request_count(Endpoint::Download), 2);
    sb.clear_requests();
    assert!(sb.requests().is_empty());
}

#[tokio::test]
async fn unknown_paths_and_versions_are_graph_errors() {
    let sb = started_with_photo().await;
    let response = get(
        &format!("{}/latest/1001", sb.base_url()),
        Some(DEFAULT_ACCESS_TOKEN),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error"]["code"], 2500);
    assert_eq!(sb.request_count(Endpoint::Unknown), 1);
    // Unversioned paths work as in Graph.
    let response = get(
        &format!("{}/1001", sb.base_url()),
        Some(DEFAULT_ACCESS_TOKEN),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn webhook_media_agrees_with_the_metadata() {
    let sb = start(GraphSandboxConfig::default()).await;
    sb.seed_media(
        SeedMedia::bytes("d1", "application/pdf", &b"%PDF-1.4"[..]).with_filename("Quote.pdf"),
    );
    let hook = sb.webhook_media("d1").expect("seeded");
    assert_eq!(hook["filename"], "Quote.pdf");
    let body = json(get(&metadata_url(&sb, "d1"), Some(DEFAULT_ACCESS_TOKEN)).await).await;
    assert_eq!(hook["sha256"], body["sha256"]);
    assert_eq!(hook["mime_type"], body["mime_type"]);
    assert_eq!(sb.webhook_media("nope"), None);
}

#[tokio::test]
async fn admin_endpoints_seed_and_inspect() {
    let sb = start(GraphSandboxConfig::default()).await;
    let http = reqwest::Client::new();
    let seeded = http
        .post(format!("{}/__sandbox/media", sb.base_url()))
        .query(&[("id", "42"), ("mime_type", "audio/ogg"), ("size", "1000")])
        .send()
        .await
        .expect("seed");
    assert_eq!(seeded.status(), StatusCode::OK);
    let posted = http
        .post(format!("{}/__sandbox/media", sb.base_url()))
        .query(&[("id", "43"), ("mime_type", "text/plain")])
        .body("hello")
        .send()
        .await
        .expect("seed");
    assert_eq!(posted.status(), StatusCode::OK);
    assert_eq!(sb.media_bytes("42"), Some(generated_bytes(1000)));
    assert_eq!(sb.media_bytes("43"), Some(b"hello".to_vec()));
    http.post(format!("{}/__sandbox/fail-next", sb.base_url()))
        .query(&[("status", "500"), ("endpoint", "metadata")])
        .send()
        .await
        .expect("fail-next");
    let failed = get(&metadata_url(&sb, "42"), Some(DEFAULT_ACCESS_TOKEN)).await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let listed = json(
        http.get(format!("{}/__sandbox/requests", sb.base_url()))
            .send()
            .await
            .expect("requests"),
    )
    .await;
    assert_eq!(listed["requests"][0]["endpoint"], "metadata");
    assert_eq!(listed["requests"][0]["status"], 500);
    assert_eq!(listed["requests"].as_array().map(Vec::len), Some(1));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_held_endpoint_answers_only_once_released() {
    let sb = started_with_photo().await;
    let held = sb.hold(Endpoint::Metadata);
    let url = metadata_url(&sb, "1001");
    let in_flight = tokio::spawn(async move { get(&url, Some(DEFAULT_ACCESS_TOKEN)).await });
    tokio::time::timeout(Duration::from_secs(10), async {
        while held.arrived() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the request reached the gate");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!in_flight.is_finished(), "held at the gate");
    assert_eq!(sb.request_count(Endpoint::Metadata), 0, "not answered yet");
    held.release();
    let response = in_flight.await.expect("joined");
    assert_eq!(response.status(), StatusCode::OK);
    // Released for good: later requests pass straight through.
    let again = get(&metadata_url(&sb, "1001"), Some(DEFAULT_ACCESS_TOKEN)).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(sb.request_count(Endpoint::Metadata), 2);
}

fn phone_number_url(sb: &GraphSandboxHandle, id: &str) -> String {
    format!(
        "{}/{DEFAULT_API_VERSION}/{id}?fields=display_phone_number,verified_name",
        sb.base_url()
    )
}

#[tokio::test]
async fn the_fixture_number_is_seeded_and_answered_as_graph_shows_it() {
    let sb = start(GraphSandboxConfig::default()).await;
    let response = get(
        &phone_number_url(&sb, DEFAULT_PHONE_NUMBER_ID),
        Some(DEFAULT_ACCESS_TOKEN),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json(response).await,
        serde_json::json!({
            "display_phone_number": DEFAULT_DISPLAY_PHONE_NUMBER,
            "verified_name": DEFAULT_VERIFIED_NAME,
            "id": DEFAULT_PHONE_NUMBER_ID,
        })
    );
    assert_eq!(DEFAULT_DISPLAY_PHONE_NUMBER, "+44 7700 900100");
    assert_eq!(sb.request_count(Endpoint::PhoneNumber), 1);
    assert_eq!(sb.request_count(Endpoint::Metadata), 0);
    // Without `fields`, every field the sandbox knows.
    let all = json(
        get(
            &format!("{}/{DEFAULT_PHONE_NUMBER_ID}", sb.base_url()),
            Some(DEFAULT_ACCESS_TOKEN),
        )
        .await,
    )
    .await;
    assert_eq!(all["quality_rating"], "GREEN");
    // A field the node does not have is Graph's code 100.
    let unknown = get(
        &format!(
            "{}/{DEFAULT_API_VERSION}/{DEFAULT_PHONE_NUMBER_ID}?fields=colour",
            sb.base_url()
        ),
        Some(DEFAULT_ACCESS_TOKEN),
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(unknown).await["error"]["code"], 100);
}

#[tokio::test]
async fn a_phone_number_needs_a_valid_token_and_one_of_its_business() {
    let sb = start(GraphSandboxConfig::default()).await;
    for token in [None, Some("someone-elses-token")] {
        let response = get(&phone_number_url(&sb, DEFAULT_PHONE_NUMBER_ID), token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(json(response).await["error"]["code"], 190);
    }
    sb.seed_phone_number(
        SeedPhoneNumber::new("170000000000009", "+44 7700 900999", "Other Ltd")
            .readable_only_with(["other-business-token"]),
    );
    // A valid token of another business cannot load it.
    let response = get(
        &phone_number_url(&sb, "170000000000009"),
        Some(DEFAULT_ACCESS_TOKEN),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], 100);
    assert_eq!(body["error"]["error_subcode"], 33);
    let own = get(
        &phone_number_url(&sb, "170000000000009"),
        Some("other-business-token"),
    )
    .await;
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(json(own).await["display_phone_number"], "+44 7700 900999");
}

#[tokio::test]
async fn media_faults_and_gates_leave_phone_numbers_alone() {
    let sb = started_with_photo().await;
    sb.fail_next(1, 503);
    let held = sb.hold(Endpoint::Metadata);
    let number = get(
        &phone_number_url(&sb, DEFAULT_PHONE_NUMBER_ID),
        Some(DEFAULT_ACCESS_TOKEN),
    )
    .await;
    assert_eq!(number.status(), StatusCode::OK);
    held.release();
    let media = get(&metadata_url(&sb, "1001"), Some(DEFAULT_ACCESS_TOKEN)).await;
    assert_eq!(
        media.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the media fault waited"
    );
    sb.fail_next_at(Endpoint::PhoneNumber, 1, 503);
    let number = get(
        &phone_number_url(&sb, DEFAULT_PHONE_NUMBER_ID),
        Some(DEFAULT_ACCESS_TOKEN),
    )
    .await;
    assert_eq!(number.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn phone_numbers_can_be_seeded_over_http() {
    let sb = start(GraphSandboxConfig::default()).await;
    let seeded = reqwest::Client::new()
        .post(format!("{}/__sandbox/phone-numbers", sb.base_url()))
        .query(&[
            ("id", "170000000000002"),
            ("display_phone_number", "+44 7700 900200"),
            ("token", "second-token"),
        ])
        .send()
        .await
        .expect("seed");
    assert_eq!(seeded.status(), StatusCode::OK);
    let read = get(
        &phone_number_url(&sb, "170000000000002"),
        Some("second-token"),
    )
    .await;
    assert_eq!(json(read).await["display_phone_number"], "+44 7700 900200");
}
