//! Live chat through its HTTP API, as the page inside a CRM record calls
//! it: a session, the record's chats, sends.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use shared::crypto::KeyRing;
use shared::livechat::LiveSession;
use shared::model::CrmKind;

use crate::TestSystem;

/// The Pipedrive sandbox's company.
pub const PIPEDRIVE_COMPANY: u64 = 7_100_001;
/// The Pipedrive sandbox app's client secret: what Pipedrive signs
/// extension tokens with when the extension has no JWT secret of its own.
pub const PIPEDRIVE_APP_SECRET: &str = "pd-sandbox-secret";
/// Seeded Pipedrive users: Ana (an admin) and Bruno.
pub const PIPEDRIVE_ANA: u64 = 11_001;
pub const PIPEDRIVE_BRUNO: u64 = 11_002;

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// A Pipedrive extension token (`GET_SIGNED_TOKEN`) for `user_id`, signed
/// with `alg` and `secret`, expiring in `exp_in` seconds.
pub fn pipedrive_extension_token(
    alg: Algorithm,
    secret: &str,
    user_id: u64,
    exp_in: i64,
) -> String {
    let exp = unix_now() + exp_in;
    encode(
        &Header::new(alg),
        &json!({ "userId": user_id, "companyId": PIPEDRIVE_COMPANY, "exp": exp, "iat": exp - 300 }),
        &EncodingKey::from_secret(secret.as_bytes()).expect("an HMAC key"),
    )
    .expect("encodes")
}

impl TestSystem {
    /// A workspace of Ana's on Pipedrive (settings active, Ana the owner of
    /// its number), the Graph sandbox posting its status webhooks here.
    pub async fn pipedrive_workspace_of_ana(&self) -> crate::TestWorkspace {
        let workspace = self.workspace("ana@acme.example", "UTC").await;
        self.connect_pipedrive(&workspace, "ana@acme.example", json!({}))
            .await;
        self.graph
            .set_webhook(&self.url("/webhooks/whatsapp"), crate::META_APP_SECRET);
        workspace
    }

    /// `POST /api/live/pipedrive/session` with `token`; (status, body).
    pub async fn start_live_session(&self, token: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/api/live/pipedrive/session"))
            .json(&json!({ "token": token }))
            .send()
            .await
            .expect("answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// The live-chat session of the Pipedrive user `user_id` (who has a
    /// personal connection), from a good extension token.
    pub async fn pipedrive_live_session(&self, user_id: u64) -> String {
        let token = pipedrive_extension_token(Algorithm::HS256, PIPEDRIVE_APP_SECRET, user_id, 300);
        let (status, body) = self.start_live_session(&token).await;
        assert_eq!(status, 200, "{body}");
        body["session"].as_str().expect("a session").to_owned()
    }

    /// A live-chat session for a Zoho user of the workspace, sealed as the
    /// API seals them (with the stack's app key): it stands for the Zoho
    /// sign-in the page does, which is not what these tests are about.
    pub async fn zoho_live_session(&self, workspace_id: &str, user_id: &str) -> String {
        let id = self
            .local
            .stack
            .secret_ids
            .get("AppKeySecret")
            .expect("the template has an app key");
        let master = local_stack::provision::secret_value(&self.local.aws, id)
            .await
            .expect("the app key");
        LiveSession {
            workspace_id: workspace_id.to_owned(),
            user_id: user_id.to_owned(),
            crm: CrmKind::Zoho,
            expires_at: unix_now() + 600,
        }
        .seal(&KeyRing::from_master(master.as_bytes()))
    }

    /// `GET /api/live/chats?record=` with `session` (if any); (status, body).
    pub async fn live_record_chats(&self, session: Option<&str>, record: &str) -> (u16, Value) {
        let mut request = self
            .http
            .get(self.url(&format!("/api/live/chats?record={record}")));
        if let Some(session) = session {
            request = request.header("x-live-session", session);
        }
        let response = request.send().await.expect("answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// `POST /api/live/chats/{chat}/messages` to the chat with `wa_id` on
    /// the fixtures' first number; (status, body).
    pub async fn live_send(&self, session: &str, wa_id: &str, body: Value) -> (u16, Value) {
        self.live_post(
            session,
            &format!("/api/live/chats/{}/messages", crate::chat_key_param(wa_id)),
            body,
        )
        .await
    }

    /// `POST` of a live-chat call with `session`; (status, body).
    pub async fn live_post(&self, session: &str, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .header("x-live-session", session)
            .json(&body)
            .send()
            .await
            .expect("answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }
}

/// A delivery from Alice to the fixtures' first business number of
/// `messages` (Cloud API message objects of any type: reactions, media,
/// replies).
pub fn from_alice(messages: Vec<Value>) -> Vec<u8> {
    crate::delivery_to(
        crate::PHONE_NUMBER_ID,
        crate::BUSINESS_NUMBER,
        crate::ALICE_WA_ID,
        "Alice",
        messages,
    )
}

/// A Cloud API message object from Alice: `kind` and its payload, sent at
/// `timestamp`.
pub fn alice_message(id: &str, timestamp: i64, kind: &str, payload: Value) -> Value {
    let mut message = json!({
        "from": crate::ALICE_WA_ID, "id": id, "timestamp": timestamp.to_string(), "type": kind,
    });
    message[kind] = payload;
    message
}

/// The fixtures' second customer.
pub const BOB_WA_ID: &str = "447700900456";

impl TestSystem {
    /// Bob writes `text` as `wamid`, two days ago: his 24-hour window is
    /// closed.
    pub async fn bob_wrote_two_days_ago(&self, wamid: &str, text: &str) {
        self.post_webhook(&crate::text_delivery(
            BOB_WA_ID,
            "Bob",
            wamid,
            unix_now() - 2 * 24 * 3600,
            text,
        ))
        .await;
    }

    /// Registers the fixture business number again, now with its WhatsApp
    /// Business Account (what templates are read from).
    pub async fn give_the_number_its_business_account(&self, workspace: &crate::TestWorkspace) {
        let response = self
            .http
            .post(self.url("/api/whatsapp-numbers"))
            .bearer_auth(&workspace.owner_token)
            .json(&json!({
                "phone_number_id": crate::PHONE_NUMBER_ID,
                "display_phone_number": crate::BUSINESS_NUMBER,
                "access_token": graph_sandbox::DEFAULT_ACCESS_TOKEN,
                "waba_id": graph_sandbox::DEFAULT_WABA_ID,
            }))
            .send()
            .await
            .expect("registers");
        assert!(response.status().is_success(), "{}", response.status());
    }
}
