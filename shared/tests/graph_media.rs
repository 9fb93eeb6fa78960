//! The Graph media adapter against the Graph sandbox.

use graph_sandbox::{
    DEFAULT_ACCESS_TOKEN, DEFAULT_API_VERSION, Endpoint, FileSizeFormat, GraphSandbox,
    GraphSandboxConfig, GraphSandboxHandle, SeedMedia, generated_bytes,
};
use shared::adapters::graph::GraphMedia;
use shared::media::{MediaError, MediaSource};

const MAX: u64 = 64 * 1024;

async fn sandbox(config: GraphSandboxConfig) -> (GraphSandboxHandle, GraphMedia) {
    let sb = GraphSandbox::start(config).await.expect("sandbox starts");
    let media = GraphMedia::new(reqwest::Client::new(), &sb.base_url(), DEFAULT_API_VERSION);
    (sb, media)
}

async fn default_sandbox() -> (GraphSandboxHandle, GraphMedia) {
    sandbox(GraphSandboxConfig::default()).await
}

#[tokio::test]
async fn downloads_the_seeded_bytes_and_mime_type() {
    let (sb, media) = default_sandbox().await;
    let photo = b"\xFF\xD8\xFF\xE0 a photo".to_vec();
    sb.seed_media(SeedMedia::bytes("1001", "image/jpeg", photo.clone()));
    sb.seed_media(SeedMedia::generated(
        "1002",
        "audio/ogg; codecs=opus",
        40_000,
    ));

    let file = media
        .fetch(DEFAULT_ACCESS_TOKEN, "1001", MAX)
        .await
        .expect("download");
    assert_eq!(file.bytes, photo);
    assert_eq!(file.mime_type, "image/jpeg");
    assert_eq!(file.file_size, photo.len() as u64);

    let voice = media
        .fetch(DEFAULT_ACCESS_TOKEN, "1002", MAX)
        .await
        .expect("download");
    assert_eq!(voice.bytes, generated_bytes(40_000));
    assert_eq!(voice.mime_type, "audio/ogg; codecs=opus");
    assert_eq!(sb.request_count(Endpoint::Metadata), 2);
    assert_eq!(sb.request_count(Endpoint::Download), 2);
    // The token travelled as a bearer header, never in the query.
    assert!(sb.requests().iter().all(|r| r.bearer_present));
    assert!(
        sb.requests()
            .iter()
            .all(|r| !r.query.contains(DEFAULT_ACCESS_TOKEN))
    );
}

#[tokio::test]
async fn a_file_exactly_at_the_limit_is_fine() {
    let (sb, media) = default_sandbox().await;
    sb.seed_media(SeedMedia::generated("1", "video/mp4", MAX));
    let file = media
        .fetch(DEFAULT_ACCESS_TOKEN, "1", MAX)
        .await
        .expect("download");
    assert_eq!(file.file_size, MAX);
}

#[tokio::test]
async fn too_large_is_refused_without_fetching_the_bytes() {
    for format in [FileSizeFormat::String, FileSizeFormat::Number] {
        let (sb, media) = sandbox(GraphSandboxConfig {
            file_size_format: format,
            ..GraphSandboxConfig::default()
        })
        .await;
        sb.seed_media(SeedMedia::generated("big", "video/mp4", MAX + 1));
        let err = media
            .fetch(DEFAULT_ACCESS_TOKEN, "big", MAX)
            .await
            .expect_err("too large");
        assert_eq!(
            err,
            MediaError::TooLarge {
                size: MAX + 1,
                max: MAX
            },
            "{format:?}"
        );
        assert!(!err.is_transient());
        assert_eq!(sb.request_count(Endpoint::Metadata), 1);
        assert_eq!(sb.request_count(Endpoint::Download), 0, "{format:?}");
    }
}

#[tokio::test]
async fn a_lying_file_size_is_caught_while_downloading() {
    let (sb, media) = default_sandbox().await;
    // Announced small; Content-Length tells the truth.
    sb.seed_media(SeedMedia::generated("cl", "application/pdf", 3 * MAX).with_declared_size(10));
    // Announced small and sent chunked: only counting the bytes tells.
    sb.seed_media(
        SeedMedia::generated("chunked", "application/pdf", 3 * MAX)
            .with_declared_size(10)
            .without_content_length(),
    );
    let err = media
        .fetch(DEFAULT_ACCESS_TOKEN, "cl", MAX)
        .await
        .expect_err("too large");
    assert_eq!(
        err,
        MediaError::TooLarge {
            size: 3 * MAX,
            max: MAX
        }
    );
    let err = media
        .fetch(DEFAULT_ACCESS_TOKEN, "chunked", MAX)
        .await
        .expect_err("too large");
    match err {
        MediaError::TooLarge { size, max } => {
            assert_eq!(max, MAX);
            assert!(size > MAX && size <= 3 * MAX, "{size}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(sb.request_count(Endpoint::Download), 2);
}

#[tokio::test]
async fn a_refused_token_is_unauthorized() {
    let (sb, media) = default_sandbox().await;
    sb.seed_media(SeedMedia::bytes("1", "image/png", &b"png"[..]));
    let err = media
        .fetch("not-the-token", "1", MAX)
        .await
        .expect_err("refused");
    assert_eq!(err, MediaError::Unauthorized);
    assert!(!err.is_transient());
    // Refused on the download URL too (e.g. the token was revoked between
    // the two calls).
    sb.fail_next_at(Endpoint::Download, 1, 401);
    let err = media
        .fetch(DEFAULT_ACCESS_TOKEN, "1", MAX)
        .await
        .expect_err("refused");
    assert_eq!(err, MediaError::Unauthorized);
}

#[tokio::test]
async fn an_unknown_id_is_not_found() {
    let (sb, media) = default_sandbox().await;
    let err = media
        .fetch(DEFAULT_ACCESS_TOKEN, "999", MAX)
        .await
        .expect_err("unknown");
    assert_eq!(err, MediaError::NotFound);
    assert!(!err.is_transient());
    assert_eq!(sb.request_count(Endpoint::Download), 0);
}

#[tokio::test]
async fn an_expired_url_is_asked_for_again_once() {
    let (sb, media) = default_sandbox().await;
    sb.seed_media(SeedMedia::bytes("1", "image/png", &b"png"[..]));
    sb.fail_next_at(Endpoint::Download, 1, 404);
    let file = media
        .fetch(DEFAULT_ACCESS_TOKEN, "1", MAX)
        .await
        .expect("second URL works");
    assert_eq!(file.bytes, b"png");
    assert_eq!(sb.request_count(Endpoint::Metadata), 2);
    assert_eq!(sb.request_count(Endpoint::Download), 2);

    // Expiring every time is as good as gone.
    sb.clear_requests();
    sb.fail_next_at(Endpoint::Download, 2, 404);
    let err = media
        .fetch(DEFAULT_ACCESS_TOKEN, "1", MAX)
        .await
        .expect_err("gone");
    assert_eq!(err, MediaError::NotFound);
    assert_eq!(sb.request_count(Endpoint::Download), 2);
}

#[tokio::test]
async fn outages_are_transient() {
    let (sb, media) = default_sandbox().await;
    sb.seed_media(SeedMedia::bytes("1", "image/png", &b"png"[..]));

    sb.fail_next(1, 503);
    let err = media
        .fetch(DEFAULT_ACCESS_TOKEN, "1", MAX)
        .await
        .expect_err("down");
    assert_eq!(err, MediaError::Unavailable(503));
    assert!(err.is_transient());

    sb.fail_next_at(Endpoint::Download, 1, 503);
    let err = media
        .fetch(DEFAULT_ACCESS_TOKEN, "1", MAX)
        .await
        .expect_err("down");
    assert_eq!(err, MediaError::Unavailable(503));

    sb.fail_next(1, 429);
    let err = media
        .fetch(DEFAULT_ACCESS_TOKEN, "1", MAX)
        .await
        .expect_err("throttled");
    assert_eq!(err, MediaError::RateLimited);
    assert!(err.is_transient());

    // Once the outage is over, the same fetch works.
    let file = media
        .fetch(DEFAULT_ACCESS_TOKEN, "1", MAX)
        .await
        .expect("back up");
    assert_eq!(file.bytes, b"png");
}

#[tokio::test]
async fn an_unreachable_host_is_a_transient_transport_error() {
    let (sb, media) = default_sandbox().await;
    sb.shutdown().await;
    let err = media
        .fetch(DEFAULT_ACCESS_TOKEN, "1", MAX)
        .await
        .expect_err("no server");
    assert!(matches!(err, MediaError::Transport(_)), "{err:?}");
    assert!(err.is_transient());
}
