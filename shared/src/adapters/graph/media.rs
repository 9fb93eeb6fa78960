//! WhatsApp media: a media item's metadata, then its bytes from a Meta host.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::media::{MediaError, MediaFile, MediaSource};

use super::{Graph, call_timeout, graph_error, transport};

pub struct GraphMedia {
    graph: Graph,
}

#[derive(Deserialize)]
struct Metadata {
    url: String,
    mime_type: String,
    #[serde(default)]
    file_size: Option<FileSize>,
}

/// Meta's documented example quotes `file_size`; client libraries report it
/// as a number too. Both are read.
#[derive(Deserialize)]
#[serde(untagged)]
enum FileSize {
    Number(u64),
    Text(String),
}

impl FileSize {
    fn bytes(&self) -> Option<u64> {
        match self {
            Self::Number(n) => Some(*n),
            Self::Text(s) => s.trim().parse().ok(),
        }
    }
}

/// Meta's own domains, the only hosts (besides Graph's) a media download
/// URL may send the WhatsApp token to.
const META_DOMAINS: [&str; 4] = ["fbsbx.com", "facebook.com", "fbcdn.net", "whatsapp.net"];

impl GraphMedia {
    /// `base_url`: `https://graph.facebook.com` (or a sandbox);
    /// `api_version`: e.g. `v25.0`.
    pub fn new(http: reqwest::Client, base_url: &str, api_version: &str) -> Self {
        Self {
            graph: Graph::new(http, base_url, api_version),
        }
    }

    async fn metadata(&self, token: &str, media_id: &str) -> Result<Metadata, MediaError> {
        let response = self
            .graph
            .node(media_id, token)
            .timeout(call_timeout()?)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let body = response.text().await.map_err(transport)?;
        tracing::debug!(media_id, status = status.as_u16(), "graph media metadata");
        if !status.is_success() {
            return Err(graph_error(status, &body, token));
        }
        let metadata: Metadata = serde_json::from_str(&body)
            .map_err(|e| MediaError::Invalid(format!("media metadata: {e}")))?;
        self.check_url(&metadata.url)?;
        Ok(metadata)
    }

    /// The token goes with the download, so the metadata's URL must point
    /// at Meta (its download host is `lookaside.fbsbx.com`) or at the Graph
    /// host itself, and must not be clear text when Graph is TLS: a forged
    /// or hijacked answer cannot make us hand the number's token elsewhere.
    fn check_url(&self, url: &str) -> Result<(), MediaError> {
        let parsed = url::Url::parse(url)
            .map_err(|_| MediaError::Invalid("the media URL is not a URL".into()))?;
        match parsed.scheme() {
            "https" => {}
            "http" if !self.graph.base_url.starts_with("https:") => {}
            other => {
                return Err(MediaError::Invalid(format!(
                    "refusing to send the token to a {other} media URL"
                )));
            }
        }
        let host = parsed.host_str().unwrap_or_default();
        let on_meta = META_DOMAINS
            .iter()
            .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")));
        let on_graph = url::Url::parse(&self.graph.base_url)
            .is_ok_and(|graph| graph.origin() == parsed.origin());
        if on_meta || on_graph {
            Ok(())
        } else {
            Err(MediaError::Invalid(format!(
                "refusing to send the token to {host}, which is not a Meta host"
            )))
        }
    }

    /// The bytes at a download URL, at most `max_bytes` of them. A 404
    /// (the URL expired) is `NotFound`.
    async fn download(
        &self,
        token: &str,
        media_id: &str,
        url: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, MediaError> {
        let mut response = self
            .graph
            .http
            .get(url)
            .bearer_auth(token)
            .timeout(call_timeout()?)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        tracing::debug!(media_id, status = status.as_u16(), "graph media download");
        if status == StatusCode::NOT_FOUND {
            return Err(MediaError::NotFound);
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(graph_error(status, &body, token));
        }
        let announced = response.content_length();
        if let Some(size) = announced.filter(|size| *size > max_bytes) {
            return Err(MediaError::TooLarge {
                size,
                max: max_bytes,
            });
        }
        let capacity = usize::try_from(announced.unwrap_or(0)).unwrap_or(0);
        let mut bytes = Vec::with_capacity(capacity);
        // Counted while reading: a chunked answer announces nothing, and the
        // metadata's size may be wrong.
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            let size = bytes.len() as u64 + chunk.len() as u64;
            if size > max_bytes {
                return Err(MediaError::TooLarge {
                    size,
                    max: max_bytes,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

#[async_trait]
impl MediaSource for GraphMedia {
    async fn fetch(
        &self,
        access_token: &str,
        media_id: &str,
        max_bytes: u64,
    ) -> Result<MediaFile, MediaError> {
        // A download URL lives 5 minutes and answers 404 once expired (e.g.
        // after a slow first attempt): one fresh URL is worth one more try.
        for attempt in 0..2 {
            let metadata = self.metadata(access_token, media_id).await?;
            let announced = metadata.file_size.as_ref().and_then(FileSize::bytes);
            if let Some(size) = announced.filter(|size| *size > max_bytes) {
                tracing::info!(
                    media_id,
                    size,
                    max_bytes,
                    "media over the size limit; not downloaded"
                );
                return Err(MediaError::TooLarge {
                    size,
                    max: max_bytes,
                });
            }
            match self
                .download(access_token, media_id, &metadata.url, max_bytes)
                .await
            {
                Ok(bytes) => {
                    return Ok(MediaFile {
                        file_size: bytes.len() as u64,
                        bytes,
                        mime_type: metadata.mime_type,
                    });
                }
                Err(MediaError::NotFound) if attempt == 0 => {
                    tracing::info!(media_id, "media URL expired; asking Graph for a new one");
                }
                Err(e) => return Err(e),
            }
        }
        Err(MediaError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_size_reads_numbers_and_strings() {
        let read = |json: &str| {
            serde_json::from_str::<Metadata>(json)
                .expect("metadata")
                .file_size
                .and_then(|s| s.bytes())
        };
        assert_eq!(
            read(r#"{"url":"https://x","mime_type":"a/b","file_size":12}"#),
            Some(12)
        );
        assert_eq!(
            read(r#"{"url":"https://x","mime_type":"a/b","file_size":"12"}"#),
            Some(12)
        );
        assert_eq!(
            read(r#"{"url":"https://x","mime_type":"a/b","file_size":"?"}"#),
            None
        );
        assert_eq!(read(r#"{"url":"https://x","mime_type":"a/b"}"#), None);
    }

    #[test]
    fn the_token_never_goes_to_a_clear_text_url_from_tls_graph() {
        let http = reqwest::Client::new();
        let tls = GraphMedia::new(http.clone(), "https://graph.facebook.com/", "/v25.0/");
        assert_eq!(tls.graph.base_url, "https://graph.facebook.com");
        assert_eq!(tls.graph.api_version, "v25.0");
        assert!(tls.check_url("https://lookaside.fbsbx.com/x?mid=1").is_ok());
        assert!(tls.check_url("http://lookaside.fbsbx.com/x").is_err());
        assert!(tls.check_url("ftp://x/y").is_err());
        assert!(tls.check_url("not a url").is_err());
        let local = GraphMedia::new(http, "http://127.0.0.1:9", "v25.0");
        assert!(local.check_url("http://127.0.0.1:9/x").is_ok());
    }

    #[test]
    fn the_token_goes_only_to_meta_hosts_or_graph_itself() {
        let graph = GraphMedia::new(
            reqwest::Client::new(),
            "https://graph.facebook.com",
            "v25.0",
        );
        for allowed in [
            "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
            "https://graph.facebook.com/v25.0/media/1",
            "https://mmg.whatsapp.net/d/f/x.enc",
            "https://scontent.xx.fbcdn.net/v/x.jpg",
        ] {
            assert!(graph.check_url(allowed).is_ok(), "{allowed}");
        }
        for refused in [
            "https://attacker.example/x",
            "https://fbsbx.com.attacker.example/x",
            "https://evilfbsbx.com/x",
            "https://lookaside.fbsbx.com.evil/x",
        ] {
            let error = graph.check_url(refused).expect_err(refused).to_string();
            assert!(error.contains("not a Meta host"), "{refused}: {error}");
        }
        let local = GraphMedia::new(reqwest::Client::new(), "http://127.0.0.1:9", "v25.0");
        assert!(
            local.check_url("http://127.0.0.1:10/x").is_err(),
            "another port is another host"
        );
    }
}
