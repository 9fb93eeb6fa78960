//! Status webhooks: the `statuses` payload of the fixtures
//! (`tests/fixtures/whatsapp/cloud-status-*.json`), serialised as Meta signs
//! it (non-ASCII escaped as `\uXXXX`), signed `X-Hub-Signature-256:
//! sha256=<hex HMAC-SHA256 of the body keyed with the app secret>` and
//! POSTed to the configured URL.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::chat::Outgoing;
use crate::errors::CloudError;
use crate::messaging::{
    DeliveryStatus, EmittedStatus, EmittedWebhook, StatusProgression, WebhookTarget,
};
use crate::{GraphSandboxError, Shared};

/// A status to post.
#[derive(Debug, Clone)]
pub struct Planned {
    pub status: DeliveryStatus,
    pub error: Option<CloudError>,
    /// Seconds after the send its `timestamp` says; `None`: the time of
    /// posting.
    pub offset_secs: Option<i64>,
}

impl Planned {
    /// A status stamped with the time it is posted.
    pub fn now(status: DeliveryStatus, error: Option<CloudError>) -> Self {
        Self {
            status,
            error,
            offset_secs: None,
        }
    }

    fn after_send(status: DeliveryStatus, offset_secs: i64) -> Self {
        Self {
            status,
            error: None,
            offset_secs: Some(offset_secs),
        }
    }
}

/// The statuses an accepted send posts by itself: its failure if it fails,
/// else `sent` → `delivered` → `read` up to `progression.until` (reactions
/// stop at `sent`).
pub fn plan(
    progression: &StatusProgression,
    reaction: bool,
    failure: Option<CloudError>,
) -> Vec<Planned> {
    if let Some(error) = failure {
        return vec![Planned {
            status: DeliveryStatus::Failed,
            error: Some(error),
            offset_secs: Some(0),
        }];
    }
    if !progression.enabled {
        return Vec::new();
    }
    let mut steps = vec![Planned::after_send(DeliveryStatus::Sent, 0)];
    if reaction || progression.until == DeliveryStatus::Sent {
        return steps;
    }
    let delivered = Planned::after_send(DeliveryStatus::Delivered, 1);
    if progression.until == DeliveryStatus::Read {
        let read = Planned::after_send(DeliveryStatus::Read, 2);
        if progression.read_before_delivered {
            steps.extend([read, delivered]);
        } else {
            steps.extend([delivered, read]);
        }
    } else {
        steps.push(delivered);
    }
    steps
}

/// Counts a planned sequence as pending until dropped (even by a panic).
struct PendingGuard(Arc<Shared>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0
            .pending_statuses
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Posts `planned` in the background, waiting `delay` before each.
pub fn spawn(shared: Arc<Shared>, message_id: String, planned: Vec<Planned>, delay: Duration) {
    if planned.is_empty() {
        return;
    }
    shared.pending_statuses.send_modify(|n| *n += 1);
    let guard = PendingGuard(shared);
    tokio::spawn(async move {
        for step in planned {
            tokio::time::sleep(delay).await;
            if let Err(e) = emit(&guard.0, &message_id, std::slice::from_ref(&step)).await {
                tracing::warn!(error = %e, message_id, "status webhook not built");
            }
        }
        drop(guard);
    });
}

/// Builds, records and (with a target) posts one webhook with `planned`
/// statuses of one message.
pub async fn emit(
    shared: &Shared,
    message_id: &str,
    planned: &[Planned],
) -> Result<EmittedWebhook, GraphSandboxError> {
    let (payload, target) = {
        let st = shared.store();
        let out = st
            .chat
            .outgoing
            .get(message_id)
            .ok_or_else(|| GraphSandboxError::UnknownMessage(message_id.to_owned()))?;
        let (display, waba) = match st.phone_numbers.get(&out.phone_number_id) {
            Some(number) => (number.display_digits(), st.waba_of(number)),
            None => (String::new(), st.chat.default_waba_id.clone()),
        };
        let now = st.now_secs();
        let statuses: Vec<Value> = planned
            .iter()
            .map(|p| status_json(message_id, out, p, now, st.chat.include_conversation))
            .collect();
        let payload = json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": waba,
                "changes": [{
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": display,
                            "phone_number_id": out.phone_number_id,
                        },
                        "statuses": statuses,
                    },
                    "field": "messages",
                }],
            }],
        });
        (payload, st.chat.webhook.clone())
    };
    let body = meta_json(&payload);
    let mut emitted = EmittedWebhook {
        statuses: planned
            .iter()
            .map(|p| EmittedStatus {
                message_id: message_id.to_owned(),
                status: p.status,
                error_code: p.error.as_ref().map(|e| e.code),
            })
            .collect(),
        signature: target
            .as_ref()
            .map(|t| meta_signature(t.app_secret.as_bytes(), body.as_bytes())),
        url: target.as_ref().map(|t| t.url.clone()),
        body,
        response_status: None,
        error: None,
    };
    if let Some(target) = &target {
        post(shared, target, &mut emitted).await;
    }
    shared.store().chat.webhooks.push(emitted.clone());
    Ok(emitted)
}

async fn post(shared: &Shared, target: &WebhookTarget, emitted: &mut EmittedWebhook) {
    let mut request = shared
        .http
        .post(&target.url)
        .header("Content-Type", "application/json")
        .header("User-Agent", "facebookexternalua")
        .body(emitted.body.clone());
    if let Some(signature) = &emitted.signature {
        request = request.header("X-Hub-Signature-256", signature);
    }
    match request.send().await {
        Ok(response) => emitted.response_status = Some(response.status().as_u16()),
        Err(e) => emitted.error = Some(e.to_string()),
    }
}

fn status_json(
    message_id: &str,
    out: &Outgoing,
    planned: &Planned,
    now: i64,
    include_conversation: bool,
) -> Value {
    let timestamp = planned.offset_secs.map_or(now, |o| out.sent_at + o);
    let mut status = json!({
        "id": message_id,
        "status": planned.status.as_str(),
        "timestamp": timestamp.to_string(),
        "recipient_id": out.wa_id,
    });
    if let Some(data) = &out.biz_opaque_callback_data {
        status["biz_opaque_callback_data"] = json!(data);
    }
    // Pricing comes with `sent` and with `delivered` (reference §4).
    if matches!(
        planned.status,
        DeliveryStatus::Sent | DeliveryStatus::Delivered
    ) {
        status["pricing"] = out.pricing.clone();
    }
    if include_conversation && planned.status != DeliveryStatus::Failed {
        let mut conversation = json!({
            "id": out.conversation_id,
            "origin": { "type": out.pricing["category"] },
        });
        if planned.status == DeliveryStatus::Sent {
            let expires = out.sent_at + crate::CUSTOMER_SERVICE_WINDOW.as_secs() as i64;
            conversation["expiration_timestamp"] = json!(expires.to_string());
        }
        status["conversation"] = conversation;
    }
    if let Some(error) = &planned.error {
        status["errors"] = json!([error.webhook_error()]);
    }
    status
}

/// JSON as Meta serialises webhook bodies: compact, every non-ASCII
/// character escaped as `\uXXXX` (lowercase hex, surrogate pairs beyond the
/// BMP). Non-ASCII only occurs inside JSON strings, so escaping it there
/// keeps the document valid.
pub fn meta_json(value: &Value) -> String {
    let raw = value.to_string();
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

/// `sha256=<lowercase hex HMAC-SHA256 of body keyed with app_secret>`: the
/// `X-Hub-Signature-256` value Meta sends (same as
/// `shared::crypto::meta_signature`).
pub fn meta_signature(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(app_secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_is_escaped_like_meta() {
        let v = json!({"text": "café 👍"});
        assert_eq!(meta_json(&v), r#"{"text":"caf\u00e9 \ud83d\udc4d"}"#);
        let back: Value = serde_json::from_str(&meta_json(&v)).expect("valid JSON");
        assert_eq!(back, v);
    }

    #[test]
    fn progression_plans() {
        let mut p = StatusProgression::default();
        let names = |v: Vec<Planned>| v.iter().map(|p| p.status.as_str()).collect::<Vec<_>>();
        assert_eq!(names(plan(&p, false, None)), ["sent", "delivered"]);
        assert_eq!(names(plan(&p, true, None)), ["sent"]);
        p.until = DeliveryStatus::Read;
        p.read_before_delivered = true;
        assert_eq!(names(plan(&p, false, None)), ["sent", "read", "delivered"]);
        p.enabled = false;
        assert!(plan(&p, false, None).is_empty());
        let failed = plan(&p, false, Some(CloudError::new(131047, "x")));
        assert_eq!(names(failed), ["failed"]);
    }
}
