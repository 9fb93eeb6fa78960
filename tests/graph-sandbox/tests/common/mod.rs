//! What the graph-sandbox tests share: a started sandbox with a client, and
//! a tiny webhook receiver that checks `X-Hub-Signature-256` on its own
//! (HMAC-SHA256 computed here, not by the sandbox).

#![allow(dead_code)]

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use graph_sandbox::{
    DEFAULT_ACCESS_TOKEN, DEFAULT_API_VERSION, DEFAULT_PHONE_NUMBER_ID, GraphSandbox,
    GraphSandboxConfig, GraphSandboxHandle,
};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::mpsc;

pub const APP_SECRET: &str = "fake_app_secret_for_tests_only";
pub const CUSTOMER: &str = "447700900123";

pub struct Sandbox {
    pub sb: GraphSandboxHandle,
    pub http: reqwest::Client,
}

impl Sandbox {
    pub async fn start() -> Self {
        Self::with(GraphSandboxConfig::default()).await
    }

    pub async fn with(config: GraphSandboxConfig) -> Self {
        let sb = GraphSandbox::start(config).await.expect("sandbox starts");
        Self {
            sb,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{DEFAULT_API_VERSION}/{path}", self.sb.base_url())
    }

    /// `POST /{v}/{default number}/messages` with the default token.
    pub async fn send(&self, body: Value) -> (u16, Value) {
        self.send_as(DEFAULT_PHONE_NUMBER_ID, DEFAULT_ACCESS_TOKEN, body)
            .await
    }

    pub async fn send_as(&self, number: &str, token: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(&format!("{number}/messages")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("send request");
        answer(response).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(DEFAULT_ACCESS_TOKEN)
            .send()
            .await
            .expect("get request");
        answer(response).await
    }

    /// A webhook receiver the sandbox posts its statuses to.
    pub async fn listen(&self) -> Receiver {
        let rx = receiver().await;
        self.sb.set_webhook(&rx.url, APP_SECRET);
        rx
    }

    /// The customer wrote a minute ago: the window is open.
    pub fn open_window(&self) {
        let now = unix_now();
        self.sb
            .record_inbound(DEFAULT_PHONE_NUMBER_ID, CUSTOMER, now - 60);
    }
}

pub async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

pub fn text(to: &str, body: &str) -> Value {
    serde_json::json!({
        "messaging_product": "whatsapp", "recipient_type": "individual",
        "to": to, "type": "text", "text": {"body": body, "preview_url": false},
    })
}

/// The approved `hello_world` template, to `to`.
pub fn hello_world(to: &str) -> Value {
    serde_json::json!({
        "messaging_product": "whatsapp", "to": to, "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    })
}

/// The wamid of a send answer.
pub fn wamid(answer: &Value) -> String {
    answer["messages"][0]["id"]
        .as_str()
        .expect("a wamid in the answer")
        .to_owned()
}

/// The `error.code` of a Graph error answer.
pub fn code(body: &Value) -> i64 {
    body["error"]["code"].as_i64().unwrap_or(-1)
}

/// One webhook POST as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub raw: Bytes,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    /// The HMAC of the raw body with [`APP_SECRET`] matched the header.
    pub signature_valid: bool,
    pub json: Value,
}

impl Received {
    /// `(id, status)` of every status in the webhook.
    pub fn statuses(&self) -> Vec<(String, String)> {
        self.json["entry"][0]["changes"][0]["value"]["statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s["id"].as_str().unwrap_or("").to_owned(),
                    s["status"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    pub fn status(&self) -> &Value {
        &self.json["entry"][0]["changes"][0]["value"]["statuses"][0]
    }
}

pub struct Receiver {
    pub url: String,
    rx: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    /// The next webhook, within 5 s.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .expect("a webhook within 5 s")
            .expect("receiver open")
    }

    /// Nothing more arrives within `wait`.
    pub async fn assert_quiet(&mut self, wait: Duration) {
        if let Ok(Some(extra)) = tokio::time::timeout(wait, self.rx.recv()).await {
            panic!("unexpected webhook: {}", extra.json);
        }
    }
}

fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn receive(
    State(tx): State<mpsc::UnboundedSender<Received>>,
    headers: HeaderMap,
    raw: Bytes,
) -> &'static str {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let signature = header("x-hub-signature-256");
    let expected = format!("sha256={}", hmac_hex(APP_SECRET.as_bytes(), &raw));
    let _ = tx.send(Received {
        signature_valid: signature.as_deref() == Some(expected.as_str()),
        json: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        content_type: header("content-type"),
        signature,
        raw,
    });
    "EVENT_RECEIVED"
}

/// A webhook endpoint on a loopback port.
pub async fn receiver() -> Receiver {
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("receiver address");
    let app = Router::new()
        .route("/webhooks/whatsapp", post(receive))
        .with_state(tx);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://{addr}/webhooks/whatsapp"),
        rx,
    }
}
