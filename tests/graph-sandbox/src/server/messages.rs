//! `POST /{version}/{phone_number_id}/messages`: sends (WhatsApp reference
//! §8) and mark-as-read / typing indicator (live-chat reference §3.4–3.5).
//!
//! Checked in Graph's order: injected HTTP faults, token, business number,
//! body parameters (code 100), injected send errors, template (132000 /
//! 132001 / 132015 / 132016); then the send is accepted, or — outside the
//! 24-hour window with [`WindowErrorMode::HttpError`] — refused with 131047.
//! Failures Meta reports later (131047 by default, media that cannot be
//! used, injected delivery failures) come as a `failed` status webhook.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::AppState;
use super::http::{
    cloud_error, fault, invalid_token, is_version, json_response, parse_query, record, token,
    unknown_object_for, unknown_path,
};
use super::send_request::{Content, parse_message, required_str};
use crate::chat::Outgoing;
use crate::errors::{CloudError, code_info};
use crate::media_rules::{MediaKind, max_size, webp_animated};
use crate::messaging::{SendOutcome, SentMessage, WindowErrorMode};
use crate::statuses::{self, Planned};
use crate::store::{Store, random_alnum};
use crate::{Endpoint, MediaContent, SeedPhoneNumber, templates};

/// How long after receipt a message can be marked read.
const MARK_READ_MAX_AGE_SECS: i64 = 30 * 24 * 60 * 60;

/// Status webhooks a send leaves to post.
struct FollowUp {
    message_id: String,
    planned: Vec<Planned>,
    delay: Duration,
}

pub async fn messages(
    State(sh): State<AppState>,
    Path((version, phone_number_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_version(&version) {
        return unknown_path(&sh, &Method::POST, &uri, &headers);
    }
    sh.pass_gate(Endpoint::Messages).await;
    let query = parse_query(uri.query());
    let (response, follow_up) = {
        let mut st = sh.store();
        let (response, follow_up) =
            answer(&mut st, &phone_number_id, token(&headers, &query), &body);
        let status = response.status();
        record(
            &mut st,
            Endpoint::Messages,
            &Method::POST,
            &uri,
            &headers,
            status,
        );
        (response, follow_up)
    };
    if let Some(f) = follow_up {
        statuses::spawn(Arc::clone(&sh), f.message_id, f.planned, f.delay);
    }
    response
}

/// What a valid request asks for.
enum Handled {
    Read {
        message_id: String,
    },
    Sent {
        to: String,
        wa_id: String,
        message_id: String,
        failure: Option<CloudError>,
        reaction: bool,
    },
}

fn answer(
    st: &mut Store,
    phone_number_id: &str,
    token: Option<&str>,
    raw: &[u8],
) -> (Response, Option<FollowUp>) {
    if let Some(status) = st.take_fault(Endpoint::Messages) {
        return (fault(Endpoint::Messages, status), None);
    }
    if !st.accepts(token) {
        return (invalid_token(), None);
    }
    let Some(number) = st.phone_numbers.get(phone_number_id).cloned() else {
        return (unknown_object_for(&Method::POST, phone_number_id), None);
    };
    let body: Value = serde_json::from_slice(raw)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into_owned()));
    let now = st.now_secs();
    let mut sent = SentMessage {
        phone_number_id: phone_number_id.to_owned(),
        kind: body["type"].as_str().unwrap_or("").to_owned(),
        to: body["to"].as_str().map(str::to_owned),
        body: body.clone(),
        wa_id: None,
        message_id: None,
        outcome: SendOutcome::MarkedRead,
        timestamp: now,
    };
    let (response, follow_up) = match handle(st, &number, &body, now) {
        Ok(Handled::Read { message_id }) => {
            sent.kind = "read".to_owned();
            sent.message_id = Some(message_id);
            (json_response(200, json!({"success": true})), None)
        }
        Ok(Handled::Sent {
            to,
            wa_id,
            message_id,
            failure,
            reaction,
        }) => {
            let response = json_response(
                200,
                json!({
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": wa_id}],
                    "messages": [{"id": message_id}],
                }),
            );
            sent.outcome = match &failure {
                Some(e) => SendOutcome::AcceptedThenFailed { code: e.code },
                None => SendOutcome::Accepted,
            };
            if sent.kind.is_empty() {
                sent.kind = "text".to_owned();
            }
            sent.wa_id = Some(wa_id);
            sent.message_id = Some(message_id.clone());
            let progression = &st.chat.progression;
            let follow_up = FollowUp {
                message_id,
                planned: statuses::plan(progression, reaction, failure),
                delay: progression.step_delay,
            };
            (response, Some(follow_up))
        }
        Err(e) => {
            sent.outcome = SendOutcome::Refused {
                status: e.http_status(),
                code: e.code,
            };
            (cloud_error(&e), None)
        }
    };
    st.chat.sent.push(sent);
    (response, follow_up)
}

fn handle(
    st: &mut Store,
    number: &SeedPhoneNumber,
    body: &Value,
    now: i64,
) -> Result<Handled, CloudError> {
    let obj = body
        .as_object()
        .ok_or_else(|| CloudError::invalid_parameter("The request body must be a JSON object."))?;
    match obj.get("messaging_product").and_then(Value::as_str) {
        Some("whatsapp") => {}
        Some(other) => {
            return Err(CloudError::invalid_parameter(format!(
                "Param messaging_product must be one of {{WHATSAPP}} - got \"{other}\"."
            )));
        }
        None => {
            return Err(CloudError::invalid_parameter(
                "The parameter messaging_product is required.",
            ));
        }
    }
    if obj.contains_key("status") {
        return mark_read(st, obj, now);
    }
    let request = parse_message(obj, number)?;
    if let Some(code) = st.chat.send_faults.pop_front() {
        return Err(CloudError::new(code, code_info(code).default_details));
    }
    let window_open = st.chat.window_open(&number.id, &request.wa_id, now);
    let mut failure = None;
    let pricing = match &request.content {
        Content::Template {
            name,
            language,
            components,
        } => {
            let waba = st.waba_of(number);
            let template =
                templates::check_send(st.chat.templates_of(&waba), name, language, components)?;
            let category = template.category.to_ascii_lowercase();
            // Utility templates are free inside an open window (reference §3.6).
            pricing(&category, !(window_open && category == "utility"))
        }
        content => {
            if !window_open {
                let error = CloudError::new(131047, code_info(131047).default_details);
                match st.chat.window_mode {
                    WindowErrorMode::HttpError => return Err(error),
                    WindowErrorMode::StatusWebhook => failure = Some(error),
                }
            }
            if let (None, Content::Media { kind, id: Some(id) }) = (&failure, content) {
                failure = media_failure(st, &number.id, *kind, id);
            }
            pricing("service", false)
        }
    };
    if failure.is_none() {
        failure = st
            .chat
            .delivery_faults
            .pop_front()
            .map(|code| CloudError::new(code, code_info(code).default_details));
    }
    let message_id = new_wamid(&request.wa_id);
    st.chat.outgoing.insert(
        message_id.clone(),
        Outgoing {
            phone_number_id: number.id.clone(),
            wa_id: request.wa_id.clone(),
            pricing,
            conversation_id: conversation_id(&number.id, &request.wa_id),
            biz_opaque_callback_data: request.biz_opaque_callback_data,
            sent_at: now,
        },
    );
    Ok(Handled::Sent {
        reaction: matches!(request.content, Content::Reaction),
        to: request.to,
        wa_id: request.wa_id,
        message_id,
        failure,
    })
}

/// `{"status":"read","message_id":…[,"typing_indicator":{"type":"text"}]}`.
fn mark_read(st: &Store, obj: &Map<String, Value>, now: i64) -> Result<Handled, CloudError> {
    let status = obj.get("status").and_then(Value::as_str).unwrap_or("");
    if status != "read" {
        return Err(CloudError::invalid_parameter(format!(
            "Param status must be one of {{READ}} - got \"{status}\"."
        )));
    }
    let message_id = required_str(obj, "message_id", "message_id")?;
    if let Some(indicator) = obj.get("typing_indicator")
        && indicator["type"].as_str() != Some("text")
    {
        return Err(CloudError::invalid_parameter(
            "Param typing_indicator['type'] must be one of {TEXT}.",
        ));
    }
    let invalid = |why: &str| CloudError::new(131009, format!("message_id {message_id}: {why}"));
    if !message_id.starts_with("wamid.") {
        return Err(invalid("not a WhatsApp message id"));
    }
    if st.chat.outgoing.contains_key(message_id) {
        return Err(invalid("outgoing messages cannot be marked as read"));
    }
    if let Some(received) = st.chat.inbound_ids.get(message_id)
        && now - received > MARK_READ_MAX_AGE_SECS
    {
        return Err(invalid("received more than 30 days ago"));
    }
    Ok(Handled::Read {
        message_id: message_id.to_owned(),
    })
}

/// Why a media id cannot be sent (Meta reports it in a `failed` status):
/// unknown here, of another business number, of a type the message type
/// does not take, or a static sticker over 100 KB.
fn media_failure(
    st: &Store,
    phone_number_id: &str,
    kind: MediaKind,
    id: &str,
) -> Option<CloudError> {
    let fail = |details: String| Some(CloudError::new(131053, details));
    let Some(media) = st.media.get(id).map(|m| &m.seed) else {
        return fail(format!("Media id {id} does not exist or has expired."));
    };
    if media
        .phone_number_id
        .as_deref()
        .is_some_and(|owner| owner != phone_number_id)
    {
        return fail(format!("Media id {id} belongs to another business number."));
    }
    if !kind.accepts(&media.mime_type) {
        return fail(format!(
            "Media of type {} cannot be sent as {}.",
            media.mime_type,
            kind.as_str()
        ));
    }
    if kind == MediaKind::Sticker {
        let animated = matches!(&media.content, MediaContent::Bytes(b) if webp_animated(b));
        let limit = max_size(kind, animated);
        if media.content.len() > limit {
            return fail(format!("Sticker file size exceeds {limit} bytes."));
        }
    }
    None
}

/// `pricing` of the statuses (`PMP`: per-message pricing since July 2025).
fn pricing(category: &str, billable: bool) -> Value {
    let kind = if billable {
        "regular"
    } else {
        "free_customer_service"
    };
    json!({"billable": billable, "pricing_model": "PMP", "type": kind, "category": category})
}

fn conversation_id(phone_number_id: &str, wa_id: &str) -> String {
    let digest = Sha256::digest(format!("{phone_number_id}/{wa_id}").as_bytes());
    hex::encode(&digest[..16])
}

/// A wamid shaped like Meta's: base64 of a length-prefixed wa_id and an
/// opaque tail.
fn new_wamid(wa_id: &str) -> String {
    let mut raw = vec![0x1c, 0x18, u8::try_from(wa_id.len()).unwrap_or(0)];
    raw.extend(wa_id.as_bytes());
    raw.extend([0x15, 0x02, 0x00, 0x11, 0x18, 0x14]);
    raw.extend(random_alnum(20).to_ascii_uppercase().as_bytes());
    raw.push(0);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wamids_look_like_meta_ones() {
        let id = new_wamid("447700900123");
        assert!(id.starts_with("wamid.HBgMNDQ3NzAwOTAwMTIz"), "{id}");
    }
}
