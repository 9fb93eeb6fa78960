//! Drives the sandbox over real HTTP, the way the production Pipedrive
//! client will. Helpers here; the tests by area in `http/`.

#[path = "http/limits.rs"]
mod limits;
#[path = "http/oauth.rs"]
mod oauth;
#[path = "http/persons.rs"]
mod persons;
#[path = "http/records.rs"]
mod records;

use pipedrive_sandbox::{PipedriveSandbox, PipedriveSandboxConfig, PipedriveSandboxHandle};
use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// A sandbox and a token of Ana (admin of the home company).
pub struct Pd {
    pub sb: PipedriveSandboxHandle,
    pub token: String,
    pub http: reqwest::Client,
}

pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Pd {
    pub async fn with(cfg: PipedriveSandboxConfig) -> Self {
        let sb = PipedriveSandbox::start(cfg).await.expect("sandbox starts");
        let token = sb
            .issue_tokens("ana@acme.example")
            .expect("tokens")
            .access_token;
        Self {
            sb,
            token,
            http: client(),
        }
    }

    pub async fn new() -> Self {
        Self::with(PipedriveSandboxConfig::default()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sb.base_url())
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            body,
            headers,
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as(&self.token.clone(), method, path, body).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    pub fn assert_clean(&self) {
        let v = self.sb.contract_violations();
        assert!(v.is_empty(), "contract violations: {v:#?}");
    }
}

pub fn id_of(v: &Value) -> u64 {
    v["data"]["id"].as_u64().expect("id")
}

/// Creates a person with one phone; returns its id.
pub async fn person(pd: &Pd, name: &str, phone: &str) -> u64 {
    let a = pd
        .post(
            "/api/v2/persons",
            json!({"name": name, "phones": [{"value": phone, "primary": true, "label": "mobile"}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    id_of(&a.body)
}
