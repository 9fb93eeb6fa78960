//! `POST /webhooks/whatsapp`: arbitrary bodies and signature headers,
//! signed bodies that are not deliveries, and generated valid deliveries of
//! every message type.

use std::collections::BTreeSet;

use lambda_http::Body;
use proptest::prelude::*;
use serde_json::{Value, json};
use shared::crypto::meta_signature;
use shared::handlers::webhook;

use super::{
    APP_SECRET, Checked, PHONE_NUMBER_ID, Violation, answer, clear_refusal, ensure, harness,
};

/// How a request's signature header is made.
#[derive(Debug, Clone)]
pub enum Signature {
    /// No header at all.
    Missing,
    /// Whatever bytes (a header value that HTTP cannot carry is dropped,
    /// as API Gateway would never deliver it).
    Raw(Vec<u8>),
    /// A well-formed signature of the body with another secret.
    OtherSecret(String),
    /// The body's true signature with one hex digit changed.
    Tampered(usize),
    /// The true signature of a different body.
    OtherBody(Vec<u8>),
    /// The true signature cut short.
    Truncated(usize),
}

/// A request without a valid signature.
#[derive(Debug, Clone)]
pub struct Unsigned {
    pub body: Vec<u8>,
    pub signature: Signature,
}

fn post(body: Vec<u8>, signature: Option<Vec<u8>>) -> lambda_http::Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://hostile.test/webhooks/whatsapp");
    if let Some(value) = signature.and_then(|v| lambda_http::http::HeaderValue::from_bytes(&v).ok())
    {
        builder = builder.header("x-hub-signature-256", value);
    }
    builder
        .body(Body::Binary(body))
        .expect("a request of a method, a URI and a body")
}

fn true_signature(body: &[u8]) -> String {
    meta_signature(APP_SECRET.as_bytes(), body)
}

fn header_of(body: &[u8], signature: &Signature) -> Option<Vec<u8>> {
    match signature {
        Signature::Missing => None,
        Signature::Raw(bytes) => Some(bytes.clone()),
        Signature::OtherSecret(secret) => {
            // The one secret that would sign it validly is not "other".
            let secret = if secret == APP_SECRET { "x" } else { secret };
            Some(meta_signature(secret.as_bytes(), body).into_bytes())
        }
        Signature::Tampered(at) => {
            let mut sig = true_signature(body).into_bytes();
            let at = "sha256=".len() + at % 64;
            sig[at] = if sig[at] == b'0' { b'1' } else { b'0' };
            Some(sig)
        }
        Signature::OtherBody(other) => {
            let other = if other.as_slice() == body {
                [other.as_slice(), b" "].concat()
            } else {
                other.clone()
            };
            Some(true_signature(&other).into_bytes())
        }
        Signature::Truncated(keep) => {
            let sig = true_signature(body);
            Some(sig.as_bytes()[..keep % sig.len()].to_vec())
        }
    }
}

/// Without a valid signature: 401, a clear message, and not one call to
/// the store or the queue.
pub fn check_unsigned(input: &Unsigned) -> Checked {
    let h = harness();
    let case = h.case();
    let header = header_of(&input.body, &input.signature);
    // Bytes that are the true signature after all (a raw header may be
    // anything) are not this property's input.
    if let Some(header) = &header
        && std::str::from_utf8(header)
            .is_ok_and(|h| h.trim().eq_ignore_ascii_case(&true_signature(&input.body)))
    {
        return Ok(());
    }
    let request = post(input.body.clone(), header);
    let response = h
        .block_on(webhook::handle(&case.deps, request))
        .map_err(|e| Violation::Property(format!("the handler failed: {e}")))?;
    let (status, body) = answer(&response);
    let writes = case.store.writes();
    if !writes.is_empty() || case.store.reads() > 0 || case.queue.sends() > 0 {
        return Err(Violation::StoredWithoutSignature(
            writes
                .iter()
                .map(|w| (*w).to_owned())
                .chain((case.store.reads() > 0).then(|| "(a store read)".to_owned()))
                .chain((case.queue.sends() > 0).then(|| "(a queue send)".to_owned()))
                .collect(),
        ));
    }
    ensure(status == 401, || {
        format!("answered {status}, not 401: {body}")
    })?;
    clear_refusal(status, &body)
}

/// A signed body: read as a delivery (200) or refused whole with a clear
/// 400 and nothing stored or queued.
pub fn check_signed(body: &[u8]) -> Checked {
    let h = harness();
    let case = h.case();
    let request = post(body.to_vec(), Some(true_signature(body).into_bytes()));
    let response = h
        .block_on(webhook::handle(&case.deps, request))
        .map_err(|e| Violation::Property(format!("the handler failed: {e}")))?;
    let (status, text) = answer(&response);
    match status {
        200 => Ok(()),
        400 => {
            let writes = case.store.writes();
            ensure(writes.is_empty() && case.queue.sends() == 0, || {
                format!("a refused delivery stored {writes:?}")
            })?;
            clear_refusal(status, &text)
        }
        _ => Err(Violation::NotClearRefusal {
            status,
            body: text.chars().take(300).collect(),
        }),
    }
}

/// One generated message of a delivery.
#[derive(Debug, Clone)]
pub struct GenMessage {
    pub id: String,
    /// Digits of the contact's number (`from`).
    pub from: String,
    pub kind: String,
    pub value: Value,
    /// Sent to the seeded number (else to one no workspace registered).
    pub to_known_number: bool,
    pub echo: bool,
}

/// A valid delivery: the JSON Meta would send, and what must come of it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub messages: Vec<GenMessage>,
    pub names: Vec<String>,
    pub statuses: usize,
    pub errors: bool,
    /// Non-ASCII escaped as `\uXXXX`, as Meta serialises.
    pub escape_unicode: bool,
    /// Each message sent twice in the same delivery.
    pub repeat: bool,
}

const KINDS: &[&str] = &[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "interactive",
    "button",
    "unsupported",
];

/// Text: mostly short, any Unicode (controls, RTL, emoji, `<script>`).
pub fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => any::<String>(),
        2 => "[a-zA-Z0-9 <>&\"'/\\\\]{0,40}",
        1 => Just("<script>alert(1)</script> & \"quotes\" 'too'".to_owned()),
        1 => Just("שלום 👋🏽 مرحبا 𝕏 \u{202e}evil\u{202c} \u{0}\u{7}".to_owned()),
        1 => proptest::collection::vec(any::<char>(), 500..5000)
            .prop_map(|c| c.into_iter().collect()),
    ]
}

/// A contact's number as WhatsApp writes it: digits without `+`.
pub fn wa_id() -> impl Strategy<Value = String> {
    "[1-9][0-9]{7,14}"
}

fn media(kind: &str, caption: String, filename: String) -> Value {
    let mut m = json!({ "id": format!("media-{kind}"), "mime_type": "application/octet-stream", "sha256": "x" });
    if matches!(kind, "image" | "video" | "document") {
        m["caption"] = json!(caption);
    }
    if kind == "document" {
        m["filename"] = json!(filename);
    }
    m
}

fn message_body(kind: &str, a: String, b: String, n: (f64, f64), id: String) -> Value {
    match kind {
        "text" => json!({ "text": { "body": a } }),
        "image" | "video" | "audio" | "document" | "sticker" => {
            json!({ kind: media(kind, a, b) })
        }
        "location" => {
            json!({ "location": { "latitude": n.0, "longitude": n.1, "name": a, "address": b } })
        }
        "contacts" => json!({ "contacts": [
            { "name": { "formatted_name": a, "first_name": "x" }, "phones": [{ "phone": b, "type": "CELL" }] },
            { "name": { "formatted_name": "" }, "phones": [] },
        ] }),
        "reaction" => json!({ "reaction": { "message_id": id, "emoji": a } }),
        "interactive" => {
            json!({ "interactive": { "type": "button_reply", "button_reply": { "id": b, "title": a } } })
        }
        "button" => json!({ "button": { "text": a, "payload": b } }),
        _ => {
            json!({ "unsupported": { "type": a }, "errors": [{ "code": 131051, "title": "Message type unknown" }] })
        }
    }
}

fn gen_message() -> impl Strategy<Value = GenMessage> {
    (
        proptest::sample::select(KINDS),
        any_text(),
        any_text(),
        (-90.0f64..90.0, -180.0f64..180.0),
        wa_id(),
        "[A-Za-z0-9+/=_.-]{1,40}",
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.15),
        prop::option::of("[A-Za-z0-9.=]{4,20}"),
    )
        .prop_map(|(kind, a, b, n, from, id, to_known_number, echo, reply)| {
            let mut value = message_body(kind, a, b, n, format!("wamid.{id}.orig"));
            if let Some(reply) = reply {
                value["context"] = json!({ "from": from, "id": format!("wamid.{reply}") });
            }
            GenMessage {
                id: format!("wamid.{id}"),
                from,
                kind: kind.to_owned(),
                value,
                to_known_number,
                echo,
            }
        })
}

pub fn delivery() -> impl Strategy<Value = Delivery> {
    (
        proptest::collection::vec(gen_message(), 1..8),
        proptest::collection::vec(any_text(), 1..3),
        0usize..3,
        prop::bool::weighted(0.1),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(mut messages, names, statuses, errors, escape_unicode, repeat)| {
                // Ids are unique within a delivery (a repeat is deliberate).
                for (i, m) in messages.iter_mut().enumerate() {
                    m.id = format!("{}.{i}", m.id);
                }
                Delivery {
                    messages,
                    names,
                    statuses,
                    errors,
                    escape_unicode,
                    repeat,
                }
            },
        )
}

impl Delivery {
    /// The delivery as Meta would send it: one change per business number.
    pub fn body(&self) -> Vec<u8> {
        let value = |known: bool| {
            let phone_number_id = if known {
                PHONE_NUMBER_ID
            } else {
                "999000111222333"
            };
            let pick: Vec<&GenMessage> = self
                .messages
                .iter()
                .filter(|m| m.to_known_number == known)
                .collect();
            let wire = |m: &GenMessage| {
                let mut v = m.value.clone();
                v["id"] = json!(m.id);
                v["timestamp"] = json!("1749999000");
                v["type"] = json!(m.kind);
                if m.echo {
                    v["from"] = json!("15550253483");
                    v["to"] = json!(m.from);
                } else {
                    v["from"] = json!(m.from);
                }
                v
            };
            let times = if self.repeat { 2 } else { 1 };
            let inbound: Vec<Value> = pick
                .iter()
                .filter(|m| !m.echo)
                .flat_map(|m| std::iter::repeat_n(wire(m), times))
                .collect();
            let echoes: Vec<Value> = pick
                .iter()
                .filter(|m| m.echo)
                .flat_map(|m| std::iter::repeat_n(wire(m), times))
                .collect();
            let contacts: Vec<Value> = pick
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    json!({ "profile": { "name": self.names[i % self.names.len()] }, "wa_id": m.from })
                })
                .collect();
            const STATES: [&str; 5] = ["sent", "delivered", "read", "failed", "deleted"];
            let statuses: Vec<Value> = (0..self.statuses)
                .map(|i| {
                    json!({
                        "id": format!("wamid.sent.{i}"),
                        "status": STATES[i % 5],
                        "timestamp": "1749999001",
                        "recipient_id": "447700900123",
                        "errors": [{ "code": 131047, "title": "Re-engagement message" }],
                    })
                })
                .collect();
            let mut value = json!({
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550253483", "phone_number_id": phone_number_id },
                "contacts": contacts,
                "messages": inbound,
                "statuses": statuses,
            });
            if !echoes.is_empty() {
                value["message_echoes"] = json!(echoes);
            }
            if self.errors {
                value["errors"] = json!([{ "code": 131000, "title": "Something went wrong" }]);
            }
            json!({ "field": if echoes.is_empty() { "messages" } else { "smb_message_echoes" }, "value": value })
        };
        let envelope = json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "102290129340398", "changes": [value(true), value(false)] }],
        });
        let text = serde_json::to_string(&envelope).expect("JSON values serialise");
        if self.escape_unicode {
            escape_non_ascii(&text).into_bytes()
        } else {
            text.into_bytes()
        }
    }

    /// The ids the seeded workspace must store: its number's messages.
    pub fn expected_ids(&self) -> BTreeSet<String> {
        self.messages
            .iter()
            .filter(|m| m.to_known_number)
            .map(|m| m.id.clone())
            .collect()
    }
}

/// `é` → `\u00e9`, astral characters as surrogate pairs: Meta's form.
pub fn escape_non_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// A valid delivery: 200; each of the seeded number's messages stored and
/// queued exactly once, on one line, whatever it says; delivered again, it
/// stores and queues nothing more.
pub fn check_delivery(delivery: &Delivery) -> Checked {
    let h = harness();
    let case = h.case();
    let body = delivery.body();
    let send = || {
        let request = post(body.clone(), Some(true_signature(&body).into_bytes()));
        h.block_on(webhook::handle(&case.deps, request))
            .map_err(|e| Violation::Property(format!("the handler failed: {e}")))
    };
    let (status, text) = answer(&send()?);
    ensure(status == 200, || {
        format!("a valid delivery answered {status}: {text}")
    })?;
    let expected = delivery.expected_ids();
    let stored: BTreeSet<String> = case.store.message_ids().into_iter().collect();
    ensure(stored == expected, || {
        format!("stored {stored:?}, expected {expected:?}")
    })?;
    let queued: Vec<String> = case
        .queue
        .sent()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    let queued_set: BTreeSet<String> = queued.iter().cloned().collect();
    ensure(
        queued.len() == queued_set.len() && queued_set == expected,
        || format!("queued {queued:?}, expected each of {expected:?} once"),
    )?;
    let answer_json: Value = serde_json::from_str(&text).unwrap_or_default();
    ensure(answer_json["queued"] == json!(expected.len()), || {
        format!("answered {text} for {} messages", expected.len())
    })?;
    for id in &expected {
        let message = h
            .block_on(shared::store::MessageStore::message(
                case.store.as_ref(),
                super::WORKSPACE_ID,
                id,
            ))
            .map_err(|e| Violation::Property(e.to_string()))?
            .ok_or_else(|| Violation::Property(format!("{id} not readable")))?;
        ensure(!message.text.contains(['\n', '\r']), || {
            format!("{id}'s note text spans lines: {:?}", message.text)
        })?;
    }
    // Meta delivers again when it misses our answer.
    let (status, text) = answer(&send()?);
    ensure(status == 200, || {
        format!("a redelivery answered {status}: {text}")
    })?;
    ensure(case.queue.sent().len() == expected.len(), || {
        format!("a redelivery queued again: {text}")
    })?;
    ensure(case.store.message_ids().len() == expected.len(), || {
        "a redelivery stored more messages".to_owned()
    })
}

/// Bodies for the signed check: bytes, JSON of any shape, and valid
/// deliveries with one field given a wrong type.
pub fn signed_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => proptest::collection::vec(any::<u8>(), 0..300),
        2 => super::api::any_json().prop_map(|v| v.to_string().into_bytes()),
        3 => (delivery(), 0usize..64, super::api::any_json()).prop_map(|(d, at, wrong)| {
            mutate(&d.body(), at, wrong)
        }),
        1 => delivery().prop_map(|d| {
            // Cut short: not JSON any more.
            let body = d.body();
            body[..body.len() / 2].to_vec()
        }),
    ]
}

/// Replaces the `at`-th value of the delivery's JSON tree by `wrong`.
fn mutate(body: &[u8], at: usize, wrong: Value) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let mut seen = 0usize;
    replace_nth(&mut value, at, &wrong, &mut seen);
    value.to_string().into_bytes()
}

fn replace_nth(value: &mut Value, at: usize, wrong: &Value, seen: &mut usize) -> bool {
    if *seen == at {
        *value = wrong.clone();
        return true;
    }
    *seen += 1;
    match value {
        Value::Object(map) => map.values_mut().any(|v| replace_nth(v, at, wrong, seen)),
        Value::Array(items) => items.iter_mut().any(|v| replace_nth(v, at, wrong, seen)),
        _ => false,
    }
}

pub fn unsigned() -> impl Strategy<Value = Unsigned> {
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        delivery().prop_map(|d| d.body()),
    ];
    let signature = prop_oneof![
        Just(Signature::Missing),
        proptest::collection::vec(any::<u8>(), 0..80).prop_map(Signature::Raw),
        "sha256=[0-9a-fA-F]{0,70}".prop_map(|s| Signature::Raw(s.into_bytes())),
        any::<String>().prop_map(Signature::OtherSecret),
        any::<usize>().prop_map(Signature::Tampered),
        proptest::collection::vec(any::<u8>(), 0..50).prop_map(Signature::OtherBody),
        any::<usize>().prop_map(Signature::Truncated),
    ];
    (body, signature).prop_map(|(body, signature)| Unsigned { body, signature })
}
