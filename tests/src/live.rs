//! Live chat as Pipedrive's panel drives it: the extension token Pipedrive
//! signs for the app, the live-chat session our API makes of it, and the
//! chats a record shows.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::{ALICE_WA_ID, BUSINESS_NUMBER, PHONE_NUMBER_ID, TestSystem};

/// The Pipedrive sandbox's company.
pub const PIPEDRIVE_COMPANY: u64 = 7_100_001;
/// The sandbox app's client secret: what Pipedrive signs extension tokens
/// with when the extension has no JWT secret of its own.
pub const PIPEDRIVE_APP_SECRET: &str = "pd-sandbox-secret";
/// Ana (ana@acme.example), the seeded Pipedrive user who connects the
/// usual Pipedrive workspace.
pub const ANA_PIPEDRIVE_ID: u64 = 11_001;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// An extension token for `user_id` of the sandbox company, signed with
/// `alg` and `secret`, expiring `exp_in` seconds from now.
pub fn signed(alg: Algorithm, secret: &str, user_id: u64, exp_in: i64) -> String {
    let exp = now() + exp_in;
    encode(
        &Header::new(alg),
        &json!({ "userId": user_id, "companyId": PIPEDRIVE_COMPANY, "exp": exp, "iat": exp - 300 }),
        &EncodingKey::from_secret(secret.as_bytes()).expect("an HMAC key"),
    )
    .expect("encodes")
}

/// `POST /api/live/pipedrive/session` with `token`; (status, body).
pub async fn start_session(system: &TestSystem, token: &str) -> (u16, Value) {
    let response = system
        .http
        .post(system.url("/api/live/pipedrive/session"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// A live-chat session of the Pipedrive user `user_id`, who has a
/// personal connection.
pub async fn session_of(system: &TestSystem, user_id: u64) -> String {
    let token = signed(Algorithm::HS256, PIPEDRIVE_APP_SECRET, user_id, 300);
    let (status, body) = start_session(system, &token).await;
    assert_eq!(status, 200, "a session: {body}");
    body["session"].as_str().expect("a session").to_owned()
}

/// `GET /api/live/chats?record=…` (`record` with any further query);
/// (status, body).
pub async fn record_chats(
    system: &TestSystem,
    session: Option<&str>,
    record: &str,
) -> (u16, Value) {
    let mut request = system
        .http
        .get(system.url(&format!("/api/live/chats?record={record}")));
    if let Some(session) = session {
        request = request.header("x-live-session", session);
    }
    let response = request.send().await.expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// A delivery from Alice to the fixtures' first business number of
/// `messages` (Cloud API message objects of any type).
pub fn from_alice(messages: Vec<Value>) -> Vec<u8> {
    crate::delivery_to(
        PHONE_NUMBER_ID,
        BUSINESS_NUMBER,
        ALICE_WA_ID,
        "Alice",
        messages,
    )
}

/// A Cloud API message object from Alice: `kind` and its payload, sent at
/// `timestamp`.
pub fn alice_message(id: &str, timestamp: i64, kind: &str, payload: Value) -> Value {
    let mut message = json!({
        "from": ALICE_WA_ID, "id": id, "timestamp": timestamp.to_string(), "type": kind,
    });
    message[kind] = payload;
    message
}
