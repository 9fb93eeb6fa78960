//! OAuth server, authentication and scopes, users, the uninstall notice.

use std::time::Duration;

use base64::Engine;
use pipedrive_sandbox::{PipedriveSandboxConfig, PipedriveSandboxHandle, SeedUser};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Answer, Pd, client};

const REDIRECT: &str = "https://app.example/pipedrive/callback";

pub fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

pub fn default_basic() -> String {
    let cfg = PipedriveSandboxConfig::default();
    basic(&cfg.client_id, &cfg.client_secret)
}

/// The browser step: returns the callback's query parameters.
async fn authorize(sb: &PipedriveSandboxHandle, state: &str) -> Vec<(String, String)> {
    let cfg = PipedriveSandboxConfig::default();
    let resp = client()
        .get(format!("{}/oauth/authorize", sb.base_url()))
        .query(&[
            ("client_id", cfg.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("state", state),
        ])
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let loc = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    url::Url::parse(&loc)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

async fn token_request(
    sb: &PipedriveSandboxHandle,
    path: &str,
    auth: Option<&str>,
    form: &[(&str, &str)],
) -> Answer {
    let mut req = client().post(format!("{}{path}", sb.base_url())).form(form);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("token");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        headers,
    }
}

async fn exchange_code(sb: &PipedriveSandboxHandle, code: &str) -> Answer {
    token_request(
        sb,
        "/oauth/token",
        Some(&default_basic()),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await
}

fn description(a: &Answer) -> &str {
    a.body["error_description"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn code_flow_issues_tokens_for_the_authorizing_user() {
    let cfg = PipedriveSandboxConfig {
        redirect_uri: Some(REDIRECT.into()),
        ..Default::default()
    };
    let pd = Pd::with(cfg).await;
    pd.sb
        .set_authorizing_user("bruno@acme.example")
        .expect("user");
    let cb = authorize(&pd.sb, "st 1").await;
    assert_eq!(param(&cb, "state"), Some("st 1"));
    let code = param(&cb, "code").expect("code").to_string();
    let a = exchange_code(&pd.sb, &code).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["token_type"], "Bearer");
    assert_eq!(a.body["expires_in"], 3599);
    assert_eq!(a.body["api_domain"], pd.sb.base_url().as_str());
    let scope = a.body["scope"].as_str().expect("scope");
    assert!(
        scope.split(',').any(|s| s == "base") && scope.contains("contacts:full"),
        "{scope}"
    );
    let access = a.body["access_token"].as_str().expect("access");
    let me = pd.call_as(access, Method::GET, "/v1/users/me", None).await;
    assert_eq!(me.body["data"]["email"], "bruno@acme.example");
    // Codes are single-use.
    let again = exchange_code(&pd.sb, &code).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        description(&again),
        "Invalid grant: authorization_code is invalid"
    );
    // A callback other than the registered one is refused without redirect.
    let bad = client()
        .get(pd.url("/oauth/authorize"))
        .query(&[
            ("client_id", "pd-sandbox-client"),
            ("redirect_uri", "https://evil.example/cb"),
        ])
        .send()
        .await
        .expect("authorize");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    pd.sb.deny_next_authorization();
    let denied = authorize(&pd.sb, "s2").await;
    assert_eq!(param(&denied, "error"), Some("user_denied"));
    assert_eq!(param(&denied, "state"), Some("s2"));
    assert_eq!(param(&denied, "code"), None);
    pd.assert_clean();
}

#[tokio::test]
async fn token_endpoint_errors_use_the_documented_messages() {
    let cfg = PipedriveSandboxConfig {
        code_ttl: Duration::from_millis(50),
        ..Default::default()
    };
    let pd = Pd::with(cfg).await;
    let json_body = client()
        .post(pd.url("/oauth/token"))
        .header("authorization", default_basic())
        .json(&json!({"grant_type": "refresh_token", "refresh_token": "x"}))
        .send()
        .await
        .expect("token");
    assert_eq!(json_body.status(), StatusCode::BAD_REQUEST);
    let b: Value = json_body.json().await.expect("json");
    assert_eq!(
        b["error_description"],
        "Invalid request: content must be application/x-www-form-urlencoded"
    );
    let in_body = token_request(
        &pd.sb,
        "/oauth/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", "pd-sandbox-client"),
            ("client_secret", "pd-sandbox-secret"),
        ],
    )
    .await;
    assert_eq!(
        description(&in_body),
        "Invalid client: cannot retrieve client credentials"
    );
    let wrong = token_request(
        &pd.sb,
        "/oauth/token",
        Some(&basic("pd-sandbox-client", "nope")),
        &[("grant_type", "refresh_token")],
    )
    .await;
    assert_eq!(description(&wrong), "Invalid client: client is invalid");
    let missing = token_request(
        &pd.sb,
        "/oauth/token/",
        Some(&default_basic()),
        &[("code", "x")],
    )
    .await;
    assert_eq!(description(&missing), "Missing parameter: grant_type");
    let unsupported = token_request(
        &pd.sb,
        "/oauth/token",
        Some(&default_basic()),
        &[("grant_type", "password")],
    )
    .await;
    assert_eq!(
        description(&unsupported),
        "Unsupported grant type: grant_type is invalid"
    );
    let cb = authorize(&pd.sb, "s").await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    let expired = exchange_code(&pd.sb, param(&cb, "code").expect("code")).await;
    assert_eq!(
        description(&expired),
        "Invalid grant: authorization_code has expired"
    );
    // The JSON token request is the client's contract violation, nothing else.
    let v = pd.sb.contract_violations();
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(
        v.iter()
            .all(|x| x.contains("/oauth/token") && x.contains("request")),
        "{v:#?}"
    );
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let pd = Pd::new().await;
    let cb = authorize(&pd.sb, "s").await;
    let first = exchange_code(&pd.sb, param(&cb, "code").expect("code"))
        .await
        .body;
    let rt1 = first["refresh_token"].as_str().expect("rt").to_string();
    let refresh = |rt: String| {
        let sb = pd.sb.clone();
        async move {
            token_request(
                &sb,
                "/oauth/token",
                Some(&default_basic()),
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            )
            .await
        }
    };
    let second = refresh(rt1.clone()).await;
    assert_eq!(second.status, StatusCode::OK);
    let rt2 = second.body["refresh_token"]
        .as_str()
        .expect("rt2")
        .to_string();
    assert_ne!(rt1, rt2, "refresh rotates the refresh token");
    assert_eq!(second.body["api_domain"], pd.sb.base_url().as_str());
    let reused = refresh(rt1).await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        description(&reused),
        "Invalid grant: refresh_token is invalid"
    );
    assert_eq!(refresh(rt2).await.status, StatusCode::OK);
    assert_eq!(pd.sb.token_refresh_count(), 2);
    let new_access = second.body["access_token"].as_str().expect("at");
    assert_eq!(
        pd.call_as(new_access, Method::GET, "/v1/users/me", None)
            .await
            .status,
        StatusCode::OK
    );
    pd.assert_clean();
}

#[tokio::test]
async fn revoking_the_refresh_token_uninstalls_for_the_user() {
    let pd = Pd::new().await;
    let t = pd.sb.issue_tokens("bruno@acme.example").expect("tokens");
    let other = pd
        .sb
        .issue_tokens("bruno@acme.example")
        .expect("second install");
    let revoke = |token: String, hint: &'static str| {
        let sb = pd.sb.clone();
        async move {
            client()
                .post(format!("{}/oauth/revoke", sb.base_url()))
                .header("authorization", default_basic())
                .form(&[("token", token.as_str()), ("token_type_hint", hint)])
                .send()
                .await
                .expect("revoke")
                .status()
        }
    };
    // Revoking an access token kills only that token.
    assert_eq!(
        revoke(other.access_token.clone(), "access_token").await,
        StatusCode::OK
    );
    assert_eq!(
        pd.call_as(&other.access_token, Method::GET, "/v1/users/me", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        pd.call_as(&t.access_token, Method::GET, "/v1/users/me", None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        revoke(t.refresh_token.clone(), "refresh_token").await,
        StatusCode::OK
    );
    assert_eq!(
        pd.call_as(&t.access_token, Method::GET, "/v1/users/me", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = token_request(
        &pd.sb,
        "/oauth/token",
        Some(&default_basic()),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &other.refresh_token),
        ],
    )
    .await;
    assert_eq!(
        description(&r),
        "Invalid grant: refresh_token is invalid",
        "all of the user's tokens die"
    );
    // Ana is unaffected.
    assert_eq!(pd.get("/v1/users/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn api_authentication_and_scopes() {
    let pd = Pd::new().await;
    let none = pd
        .http
        .get(pd.url("/api/v2/persons"))
        .send()
        .await
        .expect("send");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let body: Value = none.json().await.expect("json");
    assert_eq!(
        body,
        json!({"success": false, "error": "unauthorized access", "errorCode": 401})
    );
    let malformed = pd
        .http
        .get(pd.url("/v1/users/me"))
        .header("authorization", "Token abc")
        .send()
        .await
        .expect("send");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    pd.sb.expire_access_tokens();
    assert_eq!(
        pd.get("/v1/users/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    pd.sb.set_app_scopes(&["base", "contacts:full"]);
    let narrow = pd
        .sb
        .issue_tokens("ana@acme.example")
        .expect("tokens")
        .access_token;
    let users = pd.call_as(&narrow, Method::GET, "/v1/users", None).await;
    assert_eq!(users.status, StatusCode::FORBIDDEN);
    assert_eq!(users.body["error"], "Scope and URL mismatch");
    assert_eq!(
        pd.call_as(&narrow, Method::GET, "/api/v2/persons", None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        pd.call_as(&narrow, Method::GET, "/v1/users/me", None)
            .await
            .status,
        StatusCode::OK,
        "base is always granted"
    );
    pd.assert_clean();
}

#[tokio::test]
async fn users_me_and_users_per_company() {
    let pd = Pd::new().await;
    for prefix in ["/v1", "/api/v1"] {
        let me = pd.get(&format!("{prefix}/users/me")).await;
        assert_eq!(me.status, StatusCode::OK);
        let d = &me.body["data"];
        assert_eq!(d["company_id"], pd.sb.company_id());
        assert_eq!(d["company_domain"], "acme-sales");
        assert_eq!(d["is_you"], true);
    }
    pd.sb.add_user(SeedUser {
        deleted: true,
        ..SeedUser::regular("Eva Gone", "eva@acme.example")
    });
    let users = pd.get("/v1/users").await;
    let list = users.body["data"].as_array().expect("users");
    assert!(list.iter().all(|u| {
        u["email"]
            .as_str()
            .is_some_and(|e| e.ends_with("@acme.example"))
    }));
    let ana = list
        .iter()
        .find(|u| u["email"] == "ana@acme.example")
        .expect("ana");
    assert_eq!(ana["access"][0]["admin"], true);
    let diego = list
        .iter()
        .find(|u| u["email"] == "diego@acme.example")
        .expect("diego");
    assert_eq!(diego["active_flag"], false);
    let eva = list
        .iter()
        .find(|u| u["email"] == "eva@acme.example")
        .expect("eva");
    assert_eq!(eva["is_deleted"], true);
    assert_eq!(pd.sb.users().len(), list.len());
    let found = pd
        .get("/v1/users/find?term=BRUNO%40acme.example&search_by_email=1")
        .await;
    assert_eq!(found.body["data"][0]["email"], "bruno@acme.example");
    let by_name = pd.get("/v1/users/find?term=sales").await;
    assert_eq!(by_name.body["data"].as_array().map(Vec::len), Some(2));
    // A user of another company sees that company.
    let greta = pd
        .sb
        .issue_tokens("greta@globex.example")
        .expect("tokens")
        .access_token;
    let me = pd.call_as(&greta, Method::GET, "/v1/users/me", None).await;
    assert_ne!(me.body["data"]["company_id"], pd.sb.company_id());
    assert_eq!(me.body["data"]["company_name"], "Globex Trading");
    let theirs = pd.call_as(&greta, Method::GET, "/v1/users", None).await;
    assert_eq!(theirs.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        pd.call_as(&greta, Method::GET, "/api/v2/persons", None)
            .await
            .status,
        StatusCode::OK
    );
    assert!(pd.sb.tokens_used_by_company(7_200_002) > 0);
    pd.assert_clean();
}

#[tokio::test]
async fn uninstall_notice_reaches_the_callback() {
    use axum::routing::delete;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Value)>();
    let app = axum::Router::new().route(
        "/pipedrive/uninstall",
        delete(
            move |headers: axum::http::HeaderMap, body: axum::Json<Value>| {
                let tx = tx.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send((auth, body.0));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let pd = Pd::new().await;
    let bruno = pd.sb.issue_tokens("bruno@acme.example").expect("tokens");
    let status = pd
        .sb
        .send_uninstall(
            &format!("http://{addr}/pipedrive/uninstall"),
            "bruno@acme.example",
        )
        .await
        .expect("sent");
    assert_eq!(status, 200);
    let (auth, body) = rx.recv().await.expect("notice");
    assert_eq!(auth, default_basic());
    assert_eq!(body["client_id"], "pd-sandbox-client");
    assert_eq!(body["company_id"], pd.sb.company_id());
    assert_eq!(body["user_id"], bruno.user_id);
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        pd.call_as(&bruno.access_token, Method::GET, "/v1/users/me", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}
