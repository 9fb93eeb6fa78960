//! The Meta Graph API. WhatsApp media (WhatsApp reference §7): the
//! metadata call `GET /{version}/{media_id}` gives the MIME type, the size and
//! a download URL that lives 5 minutes; the URL gives the bytes. Business
//! numbers: `GET /{version}/{phone_number_id}?fields=display_phone_number,
//! verified_name` reads a number, for a token of the business that owns it.
//! Every call carries the bearer token, which is never logged.

use async_trait::async_trait;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use serde::Deserialize;

use crate::business_numbers::{
    BusinessNumber, BusinessNumberError, BusinessNumbers, MediaMessage, MediaUpload, SendError,
    Template, TemplateSend, explain_send_error, placeholder_count,
};
use crate::media::{MediaError, MediaFile, MediaSource};

/// Longest Graph error message kept in [`MediaError::Rejected`].
const MESSAGE_MAX_CHARS: usize = 300;

/// Where Graph is and the version we speak.
#[derive(Clone)]
struct Graph {
    http: reqwest::Client,
    base_url: String,
    api_version: String,
}

impl Graph {
    /// `base_url`: `https://graph.facebook.com` (or a sandbox);
    /// `api_version`: e.g. `v25.0`.
    fn new(http: reqwest::Client, base_url: &str, api_version: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_version: api_version.trim_matches('/').to_owned(),
        }
    }

    /// `{base}/{version}/{id}/{edge}`: an edge of a node (a number's
    /// messages, a business account's templates).
    fn edge_url(&self, id: &str, edge: &str) -> String {
        format!(
            "{}/{}/{}/{edge}",
            self.base_url,
            self.api_version,
            utf8_percent_encode(id, NON_ALPHANUMERIC)
        )
    }

    /// `GET /{version}/{id}`: a node (media item, phone number) by its id.
    fn node(&self, id: &str, token: &str) -> reqwest::RequestBuilder {
        let url = format!(
            "{}/{}/{}",
            self.base_url,
            self.api_version,
            utf8_percent_encode(id, NON_ALPHANUMERIC)
        );
        self.http.get(url).bearer_auth(token)
    }
}

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

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    message: String,
    code: Option<i64>,
    /// What exactly was wrong (`message` is often only "Invalid parameter").
    #[serde(default)]
    error_data: Option<GraphErrorData>,
}

#[derive(Deserialize)]
struct GraphErrorData {
    #[serde(default)]
    details: Option<String>,
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

/// Business numbers, read through Graph's phone-number node.
pub struct GraphBusinessNumbers {
    graph: Graph,
}

#[derive(Deserialize)]
struct PhoneNumberNode {
    display_phone_number: String,
    #[serde(default)]
    verified_name: Option<String>,
}

impl GraphBusinessNumbers {
    /// As [`GraphMedia::new`].
    pub fn new(http: reqwest::Client, base_url: &str, api_version: &str) -> Self {
        Self {
            graph: Graph::new(http, base_url, api_version),
        }
    }
}

#[async_trait]
impl BusinessNumbers for GraphBusinessNumbers {
    async fn read(
        &self,
        access_token: &str,
        phone_number_id: &str,
    ) -> Result<BusinessNumber, BusinessNumberError> {
        let response = self
            .graph
            .node(phone_number_id, access_token)
            .query(&[("fields", "display_phone_number,verified_name")])
            .send()
            .await
            .map_err(|e| BusinessNumberError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| BusinessNumberError::Unavailable(e.without_url().to_string()))?;
        tracing::debug!(
            phone_number_id,
            status = status.as_u16(),
            "graph phone number"
        );
        if !status.is_success() {
            return Err(number_error(graph_error(status, &body, access_token)));
        }
        let node: PhoneNumberNode = serde_json::from_str(&body)
            .map_err(|e| BusinessNumberError::Invalid(format!("phone number: {e}")))?;
        Ok(BusinessNumber {
            display_phone_number: node.display_phone_number,
            verified_name: node.verified_name,
        })
    }

    async fn send_text(
        &self,
        access_token: &str,
        phone_number_id: &str,
        to: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<String, SendError> {
        let mut body = serde_json::json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": { "body": text, "preview_url": false },
        });
        if let Some(quoted) = reply_to {
            body["context"] = serde_json::json!({ "message_id": quoted });
        }
        self.post_message(access_token, phone_number_id, &body)
            .await
    }

    async fn send_reaction(
        &self,
        access_token: &str,
        phone_number_id: &str,
        to: &str,
        message_id: &str,
        emoji: &str,
    ) -> Result<String, SendError> {
        let body = serde_json::json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "reaction",
            "reaction": { "message_id": message_id, "emoji": emoji },
        });
        self.post_message(access_token, phone_number_id, &body)
            .await
    }

    async fn upload_media(
        &self,
        access_token: &str,
        phone_number_id: &str,
        file: MediaUpload,
    ) -> Result<String, SendError> {
        const WHAT: &str = "the file could not be uploaded to WhatsApp";
        let part = reqwest::multipart::Part::bytes(file.bytes)
            .file_name(file.file_name)
            .mime_str(&file.mime_type)
            .map_err(|e| SendError {
                code: None,
                explanation: format!("{WHAT}: its type is not a MIME type ({e})"),
                transient: false,
            })?;
        // `type` names the MIME type again: Meta's examples send it, and
        // Graph reads the file's type from it.
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", file.mime_type)
            .part("file", part);
        let request = self
            .graph
            .http
            .post(self.graph.edge_url(phone_number_id, "media"))
            .bearer_auth(access_token)
            .multipart(form);
        let (status, text) = status_and_text(request, WHAT).await?;
        tracing::info!(
            phone_number_id,
            status = status.as_u16(),
            "graph media upload"
        );
        if !status.is_success() {
            return Err(send_failure(status, &text, access_token));
        }
        #[derive(Deserialize)]
        struct Uploaded {
            id: String,
        }
        serde_json::from_str::<Uploaded>(&text)
            .map(|u| u.id)
            .map_err(|e| unreachable(WHAT, format!("unreadable answer: {e}")))
    }

    async fn send_media(
        &self,
        access_token: &str,
        phone_number_id: &str,
        to: &str,
        media: &MediaMessage<'_>,
    ) -> Result<String, SendError> {
        let kind = media.kind.as_str();
        let mut object = serde_json::json!({ "id": media.media_id });
        if let Some(caption) = media.caption {
            object["caption"] = caption.into();
        }
        if let Some(file_name) = media.file_name {
            object["filename"] = file_name.into();
        }
        let mut body = serde_json::json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": kind,
        });
        body[kind] = object;
        self.post_message(access_token, phone_number_id, &body)
            .await
    }

    async fn approved_templates(
        &self,
        access_token: &str,
        waba_id: &str,
    ) -> Result<Vec<Template>, SendError> {
        const WHAT: &str = "WhatsApp's templates could not be read";
        let url = self.graph.edge_url(waba_id, "message_templates");
        let mut templates = Vec::new();
        let mut after: Option<String> = None;
        // A business has at most a few hundred templates: a few pages.
        for _ in 0..20 {
            let mut query = vec![
                (
                    "fields",
                    "name,language,status,category,components".to_owned(),
                ),
                ("status", "APPROVED".to_owned()),
                ("limit", "100".to_owned()),
            ];
            if let Some(cursor) = &after {
                query.push(("after", cursor.clone()));
            }
            let request = self
                .graph
                .http
                .get(&url)
                .bearer_auth(access_token)
                .query(&query);
            let (status, text) = status_and_text(request, WHAT).await?;
            if !status.is_success() {
                return Err(unreachable(WHAT, format!("HTTP {status}")));
            }
            let page: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| unreachable(WHAT, format!("unreadable answer: {e}")))?;
            for t in page["data"].as_array().into_iter().flatten() {
                if t["status"] != "APPROVED" {
                    continue;
                }
                let body = t["components"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == "BODY")
                    .and_then(|c| c["text"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                templates.push(Template {
                    name: t["name"].as_str().unwrap_or_default().to_owned(),
                    language: t["language"].as_str().unwrap_or_default().to_owned(),
                    category: t["category"].as_str().unwrap_or_default().to_owned(),
                    parameters: placeholder_count(&body),
                    body,
                });
            }
            after = page["paging"]["next"]
                .as_str()
                .and(page["paging"]["cursors"]["after"].as_str())
                .map(str::to_owned);
            if after.is_none() {
                break;
            }
        }
        Ok(templates)
    }

    async fn send_template(
        &self,
        access_token: &str,
        phone_number_id: &str,
        to: &str,
        template: &TemplateSend,
    ) -> Result<String, SendError> {
        let mut body = serde_json::json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "template",
            "template": {
                "name": template.name,
                "language": { "code": template.language },
            },
        });
        if !template.parameters.is_empty() {
            let parameters: Vec<serde_json::Value> = template
                .parameters
                .iter()
                .map(|p| serde_json::json!({ "type": "text", "text": p }))
                .collect();
            body["template"]["components"] =
                serde_json::json!([{ "type": "body", "parameters": parameters }]);
        }
        self.post_message(access_token, phone_number_id, &body)
            .await
    }

    async fn mark_read(
        &self,
        access_token: &str,
        phone_number_id: &str,
        message_id: &str,
    ) -> Result<(), SendError> {
        const WHAT: &str = "WhatsApp could not be reached";
        // The live-chat reference §3.4: the same edge as sends, answered
        // `{"success": true}` rather than a message id.
        let body = serde_json::json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
        });
        let request = self
            .graph
            .http
            .post(self.graph.edge_url(phone_number_id, "messages"))
            .bearer_auth(access_token)
            .json(&body);
        let (status, text) = status_and_text(request, WHAT).await?;
        tracing::info!(phone_number_id, status = status.as_u16(), "graph mark read");
        if status.is_success() {
            return Ok(());
        }
        let code = serde_json::from_str::<GraphErrorBody>(&text)
            .ok()
            .and_then(|b| b.error.code);
        Err(SendError {
            code,
            explanation: match code {
                Some(131009) => {
                    "WhatsApp does not take this message as read (unknown, or older than 30 days)"
                        .to_owned()
                }
                _ => explain_send_error(code, &format!("HTTP {status}")),
            },
            transient: graph_error(status, &text, access_token).is_transient(),
        })
    }
}

/// A WhatsApp call that could not be made or its answer read (`what`
/// says which): trying again later may work.
fn unreachable(what: &str, reason: impl std::fmt::Display) -> SendError {
    SendError {
        code: None,
        explanation: format!("{what}: {reason}"),
        transient: true,
    }
}

/// Sends `request` within the time the invocation has left; the answer's
/// status and text.
async fn status_and_text(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<(StatusCode, String), SendError> {
    let timeout = call_timeout().map_err(|e| unreachable(what, e))?;
    let response = request
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| unreachable(what, e.without_url()))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| unreachable(what, e.without_url()))?;
    Ok((status, text))
}

/// Graph's send answer: the new message's id.
#[derive(Deserialize)]
struct SendAnswer {
    messages: Vec<SentId>,
}

#[derive(Deserialize)]
struct SentId {
    id: String,
}

impl GraphBusinessNumbers {
    async fn post_message(
        &self,
        access_token: &str,
        phone_number_id: &str,
        body: &serde_json::Value,
    ) -> Result<String, SendError> {
        const WHAT: &str = "WhatsApp could not be reached";
        let request = self
            .graph
            .http
            .post(self.graph.edge_url(phone_number_id, "messages"))
            .bearer_auth(access_token)
            .json(body);
        let (status, text) = status_and_text(request, WHAT).await?;
        tracing::info!(phone_number_id, status = status.as_u16(), "graph send");
        if status.is_success() {
            let answer: SendAnswer = serde_json::from_str(&text)
                .map_err(|e| unreachable(WHAT, format!("unreadable answer: {e}")))?;
            return answer
                .messages
                .into_iter()
                .next()
                .map(|m| m.id)
                .ok_or_else(|| unreachable(WHAT, "no message id in the answer"));
        }
        Err(send_failure(status, &text, access_token))
    }
}

/// A refused send or upload in words, and whether trying again may work.
fn send_failure(status: StatusCode, text: &str, access_token: &str) -> SendError {
    let error = serde_json::from_str::<GraphErrorBody>(text)
        .ok()
        .map(|b| b.error);
    let code = error.as_ref().and_then(|e| e.code);
    let fallback: String = error
        .map(|e| {
            let details = e.error_data.and_then(|d| d.details).unwrap_or_default();
            let said = if details.is_empty() {
                e.message
            } else {
                format!("{} ({details})", e.message)
            };
            said.replace(access_token, "[token]")
        })
        .unwrap_or_else(|| format!("HTTP {status}"))
        .chars()
        .take(MESSAGE_MAX_CHARS)
        .collect();
    let transient = matches!(
        graph_error(status, text, access_token),
        MediaError::RateLimited | MediaError::Unavailable(_) | MediaError::Transport(_)
    ) || matches!(code, Some(131056 | 130429));
    SendError {
        code,
        explanation: explain_send_error(code, &fallback),
        transient,
    }
}

/// Graph's error answers mean the same whatever the node: [`graph_error`]
/// reads them; here is what each means for reading a number.
fn number_error(error: MediaError) -> BusinessNumberError {
    match error {
        MediaError::Unauthorized => BusinessNumberError::TokenRefused,
        MediaError::NotFound => BusinessNumberError::NotReadable,
        MediaError::RateLimited => BusinessNumberError::Unavailable("rate-limited".into()),
        MediaError::Unavailable(status) => {
            BusinessNumberError::Unavailable(format!("HTTP {status}"))
        }
        MediaError::Transport(reason) => BusinessNumberError::Unavailable(reason),
        MediaError::Rejected {
            status,
            code,
            message,
        } => BusinessNumberError::Rejected(format!("HTTP {status} (code {code:?}): {message}")),
        other @ (MediaError::TooLarge { .. } | MediaError::Invalid(_)) => {
            BusinessNumberError::Invalid(other.to_string())
        }
    }
}

fn transport(e: reqwest::Error) -> MediaError {
    // Without the URL: a download URL is a signed link.
    MediaError::Transport(e.without_url().to_string())
}

/// This call's timeout within the invocation's time left (a transient
/// failure when none is left).
fn call_timeout() -> Result<std::time::Duration, MediaError> {
    crate::budget::call_timeout(crate::deps::HTTP_CALL_TIMEOUT)
        .map_err(|e| MediaError::Transport(e.to_string()))
}

/// Maps a Graph error answer by HTTP status and Graph `code` (reference §8
/// "Error codes worth handling"; code 100 is Graph's "cannot load this id").
fn graph_error(status: StatusCode, body: &str, token: &str) -> MediaError {
    let error = serde_json::from_str::<GraphErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let code = error.as_ref().and_then(|e| e.code);
    match (status.as_u16(), code) {
        // 190: token invalid/expired; 102: session; 3, 10, 200–299: missing
        // permission. None of these is fixed by retrying.
        (401 | 403, _) | (_, Some(190 | 102 | 3 | 10 | 200..=299)) => MediaError::Unauthorized,
        (429, _) | (_, Some(4 | 17 | 32 | 613 | 80007 | 130429)) => MediaError::RateLimited,
        (s, _) if s >= 500 => MediaError::Unavailable(s),
        // Graph's "unknown/temporary" codes: retry with back-off.
        (s, Some(1 | 2 | 131000 | 131016)) => MediaError::Unavailable(s),
        (404, _) | (_, Some(100)) => MediaError::NotFound,
        (s, code) => {
            // Some Graph messages quote the token they refused.
            let message = error
                .map(|e| e.message)
                .unwrap_or_default()
                .replace(token, "[token]")
                .chars()
                .take(MESSAGE_MAX_CHARS)
                .collect();
            MediaError::Rejected {
                status: s,
                code,
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(status: u16, body: &str) -> MediaError {
        graph_error(
            StatusCode::from_u16(status).expect("valid status"),
            body,
            "EAAtoken",
        )
    }

    fn envelope(code: i64, message: &str) -> String {
        serde_json::json!({"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "x"}})
            .to_string()
    }

    #[test]
    fn graph_errors_map_by_status_and_code() {
        assert_eq!(error(401, &envelope(190, "bad")), MediaError::Unauthorized);
        assert_eq!(error(400, &envelope(190, "bad")), MediaError::Unauthorized);
        assert_eq!(error(403, "<html>"), MediaError::Unauthorized);
        assert_eq!(error(400, &envelope(200, "perm")), MediaError::Unauthorized);
        assert_eq!(error(429, ""), MediaError::RateLimited);
        assert_eq!(error(400, &envelope(4, "limit")), MediaError::RateLimited);
        assert_eq!(
            error(400, &envelope(130429, "tput")),
            MediaError::RateLimited
        );
        assert_eq!(
            error(503, &envelope(2, "down")),
            MediaError::Unavailable(503)
        );
        assert_eq!(error(502, "bad gateway"), MediaError::Unavailable(502));
        assert_eq!(
            error(400, &envelope(1, "unknown")),
            MediaError::Unavailable(400)
        );
        assert_eq!(
            error(400, &envelope(100, "no such id")),
            MediaError::NotFound
        );
        assert_eq!(error(404, ""), MediaError::NotFound);
        assert_eq!(
            error(400, &envelope(131052, "Media download error")),
            MediaError::Rejected {
                status: 400,
                code: Some(131052),
                message: "Media download error".into()
            }
        );
    }

    #[test]
    fn rejections_never_carry_the_token() {
        let MediaError::Rejected { message, .. } =
            error(400, &envelope(12345, "Malformed access token EAAtoken"))
        else {
            panic!("expected a rejection");
        };
        assert_eq!(message, "Malformed access token [token]");
    }

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
