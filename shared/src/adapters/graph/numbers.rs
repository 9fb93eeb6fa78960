//! Business numbers: reading one, its message templates, and sending
//! messages, templates and media from it.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::business_numbers::{
    BusinessNumber, BusinessNumberError, BusinessNumbers, MediaMessage, MediaUpload, SendError,
    Template, TemplateSend, explain_send_error, placeholder_count,
};
use crate::media::MediaError;

use super::{Graph, GraphErrorBody, MESSAGE_MAX_CHARS, call_timeout, graph_error};

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
