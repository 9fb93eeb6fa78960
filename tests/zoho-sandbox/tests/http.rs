//! Drives the sandbox over real HTTP, the way the production Zoho client will.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use zoho_sandbox::{SandboxConfig, SandboxHandle, ZohoSandbox};

const REDIRECT: &str = "https://app.example/oauth/callback";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

async fn start(cfg: SandboxConfig) -> SandboxHandle {
    ZohoSandbox::start(cfg).await.expect("sandbox starts")
}

/// Every scope the calls below need.
const SCOPES: &str = "ZohoCRM.modules.ALL,ZohoSearch.securesearch.READ,ZohoCRM.users.READ,ZohoCRM.org.READ,ZohoCRM.settings.ALL";

/// Runs the browser step; returns the callback query parameters.
async fn authorize(sb: &SandboxHandle, access_type: &str) -> Vec<(String, String)> {
    authorize_for(sb, access_type, SCOPES).await
}

/// The same, asking for `scope`.
async fn authorize_for(
    sb: &SandboxHandle,
    access_type: &str,
    scope: &str,
) -> Vec<(String, String)> {
    let cfg = SandboxConfig::default();
    let resp = client()
        .get(format!("{}/oauth/v2/auth", sb.base_url()))
        .query(&[
            ("response_type", "code"),
            ("client_id", cfg.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("access_type", access_type),
            ("prompt", "consent"),
            ("state", "xyz 123"),
        ])
        .send()
        .await
        .expect("auth");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let loc = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_string();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    url::Url::parse(&loc)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], k: &str) -> &'a str {
    pairs
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

async fn exchange(sb: &SandboxHandle, form: &[(&str, &str)]) -> Value {
    let resp = client()
        .post(format!("{}/oauth/v2/token", sb.base_url()))
        .form(form)
        .send()
        .await
        .expect("token");
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "token endpoint always answers 200"
    );
    resp.json().await.expect("json")
}

async fn login(sb: &SandboxHandle) -> (String, String) {
    let v = grant(sb, SCOPES).await;
    (
        v["access_token"].as_str().expect("access").to_string(),
        v["refresh_token"].as_str().expect("refresh").to_string(),
    )
}

/// An offline grant of `scope`: the token endpoint's answer.
async fn grant(sb: &SandboxHandle, scope: &str) -> Value {
    let cfg = SandboxConfig::default();
    let cb = authorize_for(sb, "offline", scope).await;
    exchange(
        sb,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &cfg.client_id),
            ("client_secret", &cfg.client_secret),
            ("redirect_uri", REDIRECT),
            ("code", param(&cb, "code")),
        ],
    )
    .await
}

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn new(sb: &SandboxHandle) -> Self {
        let (token, _) = login(sb).await;
        Self {
            base: sb.base_url(),
            token,
            http: client(),
        }
    }
    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, format!("{}{}", self.base, path))
            .header("Authorization", format!("Zoho-oauthtoken {}", self.token))
    }
    async fn get(&self, path: &str) -> (StatusCode, Option<Value>) {
        done(self.req(reqwest::Method::GET, path).send().await).await
    }
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Option<Value>) {
        done(
            self.req(reqwest::Method::POST, path)
                .json(&body)
                .send()
                .await,
        )
        .await
    }
    async fn put(&self, path: &str, body: Value) -> (StatusCode, Option<Value>) {
        done(
            self.req(reqwest::Method::PUT, path)
                .json(&body)
                .send()
                .await,
        )
        .await
    }
}

async fn done(r: Result<reqwest::Response, reqwest::Error>) -> (StatusCode, Option<Value>) {
    let r = r.expect("request");
    let s = r.status();
    let text = r.text().await.expect("body");
    (
        s,
        if text.is_empty() {
            None
        } else {
            Some(serde_json::from_str(&text).expect("json body"))
        },
    )
}

fn assert_clean(sb: &SandboxHandle) {
    let v = sb.contract_violations();
    assert!(v.is_empty(), "contract violations:\n{}", v.join("\n"));
}

#[tokio::test]
async fn oauth_code_flow_single_use_code_and_refresh() {
    let sb = start(SandboxConfig::default()).await;
    let cfg = SandboxConfig::default();
    let cb = authorize(&sb, "offline").await;
    assert_eq!(param(&cb, "state"), "xyz 123");
    assert_eq!(param(&cb, "location"), "us");
    assert_eq!(param(&cb, "accounts-server"), sb.base_url());
    let code = param(&cb, "code").to_string();
    assert!(code.starts_with("1000."));
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", cfg.client_id.as_str()),
        ("client_secret", cfg.client_secret.as_str()),
        ("redirect_uri", REDIRECT),
        ("code", code.as_str()),
    ];
    let v = exchange(&sb, &form).await;
    assert_eq!(v["api_domain"], json!(sb.base_url()));
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    let refresh = v["refresh_token"]
        .as_str()
        .expect("offline gives refresh")
        .to_string();
    // Codes are single use.
    assert_eq!(exchange(&sb, &form).await, json!({"error": "invalid_code"}));
    // Wrong secret.
    let bad = [
        ("client_secret", "nope"),
        ("grant_type", "refresh_token"),
        ("client_id", cfg.client_id.as_str()),
        ("refresh_token", refresh.as_str()),
    ];
    assert_eq!(
        exchange(&sb, &bad).await,
        json!({"error": "invalid_client"})
    );
    // Refresh: no new refresh token.
    let rf = [
        ("grant_type", "refresh_token"),
        ("client_id", cfg.client_id.as_str()),
        ("client_secret", cfg.client_secret.as_str()),
        ("refresh_token", refresh.as_str()),
    ];
    let v2 = exchange(&sb, &rf).await;
    assert!(v2["access_token"].is_string());
    assert!(v2.get("refresh_token").is_none());
    assert_eq!(sb.token_refresh_count(), 1);
    // The new token works as the authorizing user (admin).
    let api = Api {
        base: sb.base_url(),
        token: v2["access_token"].as_str().unwrap_or("").into(),
        http: client(),
    };
    let (s, b) = api.get("/crm/v8/users?type=CurrentUser").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b.expect("body")["users"][0]["email"], "ana@acme.example");
    // Online access: no refresh token.
    let cb = authorize(&sb, "online").await;
    let v3 = exchange(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", cfg.client_id.as_str()),
            ("client_secret", cfg.client_secret.as_str()),
            ("redirect_uri", REDIRECT),
            ("code", param(&cb, "code")),
        ],
    )
    .await;
    assert!(v3.get("refresh_token").is_none());
    // Revoke kills refresh and its access tokens.
    let r = client()
        .post(format!(
            "{}/oauth/v2/token/revoke?token={}",
            sb.base_url(),
            refresh
        ))
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(exchange(&sb, &rf).await, json!({"error": "invalid_code"}));
    let (s, _) = api.get("/crm/v8/org").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let r = client()
        .post(format!(
            "{}/oauth/v2/token/revoke?token=bogus",
            sb.base_url()
        ))
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Unknown client: 400 page, no redirect.
    let r = client()
        .get(format!(
            "{}/oauth/v2/auth?response_type=code&client_id=nope&redirect_uri=https://x/cb&scope=a",
            sb.base_url()
        ))
        .send()
        .await
        .expect("auth");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_clean(&sb);
    sb.shutdown().await;
}

#[tokio::test]
async fn authorizing_user_and_refresh_rate_limit() {
    let sb = start(SandboxConfig::default()).await;
    sb.set_authorizing_user("bruno@acme.example").expect("user");
    let api = Api::new(&sb).await;
    let (_, b) = api.get("/crm/v8/users?type=CurrentUser").await;
    assert_eq!(b.expect("body")["users"][0]["email"], "bruno@acme.example");
    sb.set_refresh_limit(2);
    let cfg = SandboxConfig::default();
    let (_, refresh) = login(&sb).await;
    let rf = [
        ("grant_type", "refresh_token"),
        ("client_id", cfg.client_id.as_str()),
        ("client_secret", cfg.client_secret.as_str()),
        ("refresh_token", refresh.as_str()),
    ];
    assert!(exchange(&sb, &rf).await["access_token"].is_string());
    assert!(exchange(&sb, &rf).await["access_token"].is_string());
    let denied = exchange(&sb, &rf).await;
    assert_eq!(denied["error"], "Access Denied");
    assert_eq!(denied["status"], "failure");
    sb.shutdown().await;
}

#[tokio::test]
async fn expired_token_gives_401_invalid_token() {
    let sb = start(SandboxConfig::default()).await;
    let api = Api::new(&sb).await;
    assert_eq!(api.get("/crm/v8/org").await.0, StatusCode::OK);
    sb.expire_access_tokens();
    let (s, b) = api.get("/crm/v8/org").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        b,
        Some(
            json!({"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"})
        )
    );
    let (s, _) = done(
        client()
            .get(format!("{}/crm/v8/org", sb.base_url()))
            .send()
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_clean(&sb);
    sb.shutdown().await;
}

#[tokio::test]
async fn users_org_and_metadata() {
    let sb = start(SandboxConfig::default()).await;
    let api = Api::new(&sb).await;
    let (s, b) = api.get("/crm/v8/users?type=ActiveUsers").await;
    assert_eq!(s, StatusCode::OK);
    let b = b.expect("body");
    let emails: Vec<&str> = b["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["email"].as_str())
        .collect();
    assert_eq!(
        emails,
        [
            "ana@acme.example",
            "bruno@acme.example",
            "carla@acme.example"
        ]
    );
    assert_eq!(b["info"]["count"], 3);
    let (_, all) = api
        .get("/crm/v8/users?type=AllUsers&per_page=2&page=2")
        .await;
    let all = all.expect("body");
    assert_eq!(all["users"][0]["status"], "active");
    assert_eq!(all["users"][1]["status"], "disabled");
    let (_, admins) = api.get("/crm/v8/users?type=AdminUsers").await;
    assert_eq!(
        admins.expect("body")["users"][0]["profile"]["name"],
        "Administrator"
    );
    let (s, org) = api.get("/crm/v8/org").await;
    assert_eq!(s, StatusCode::OK);
    let org = org.expect("org");
    assert_eq!(org["org"][0]["company_name"], "Acme Ltd");
    assert_eq!(org["org"][0]["type"], "production");
    let (_, m) = api.get("/crm/v8/settings/modules").await;
    let m = m.expect("modules");
    let leads = m["modules"]
        .as_array()
        .expect("list")
        .iter()
        .find(|x| x["api_name"] == "Leads")
        .expect("Leads");
    assert_eq!(leads["api_supported"], true);
    assert!(
        m["modules"]
            .as_array()
            .expect("list")
            .iter()
            .any(|x| x["api_supported"] == false)
    );
    let (_, f) = api.get("/crm/v8/settings/fields?module=Leads").await;
    let f = f.expect("fields");
    let field = |n: &str| {
        f["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|x| x["api_name"] == n)
            .cloned()
            .expect(n)
    };
    assert_eq!(field("Last_Name")["length"], 80);
    assert_eq!(field("Last_Name")["system_mandatory"], true);
    assert_eq!(field("Mobile")["data_type"], "phone");
    assert_eq!(field("Tag")["json_type"], "jsonarray");
    assert_eq!(field("Converted_Contact")["field_read_only"], true);
    assert!(
        field("Lead_Source")["pick_list_values"]
            .as_array()
            .expect("picks")
            .iter()
            .any(|p| p["actual_value"] == "WhatsApp")
    );
    sb.add_field(
        "Leads",
        json!({"api_name": "WhatsApp_Id", "data_type": "text", "length": 50}),
    )
    .expect("add");
    let (_, f2) = api.get("/crm/v8/settings/fields?module=Leads").await;
    assert!(
        f2.expect("fields")["fields"]
            .as_array()
            .expect("f")
            .iter()
            .any(|x| x["api_name"] == "WhatsApp_Id" && x["custom_field"] == true)
    );
    let (s, _) = api.get("/crm/v8/settings/fields").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for m in ["Contacts", "Accounts", "Deals", "Notes"] {
        let (s, _) = api
            .get(&format!("/crm/v8/settings/fields?module={m}"))
            .await;
        assert_eq!(s, StatusCode::OK, "{m}");
    }
    let (s, b) = api.get("/crm/v8/settings/modules/Contacts").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b.expect("b")["modules"][0]["api_name"], "Contacts");
    let (s, b) = api.get("/crm/v8/users/5725767000000411002").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b.expect("b")["users"][0]["email"], "bruno@acme.example");
    assert_clean(&sb);
    sb.shutdown().await;
}

#[tokio::test]
async fn search_by_phone_plus_encoding_and_204() {
    let sb = start(SandboxConfig::default()).await;
    let api = Api::new(&sb).await;
    let (s, b) = api.get("/crm/v8/Leads/search?phone=%2B4915112345678").await;
    assert_eq!((s, b), (StatusCode::NO_CONTENT, None));
    let (s, b) = api
        .post("/crm/v8/Leads", json!({"data": [{"Last_Name": "Maria Silva", "Mobile": "+49 151 1234-5678", "Lead_Source": "WhatsApp"}], "trigger": []}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b:?}");
    let id = b.expect("body")["data"][0]["details"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (s, b) = api.get("/crm/v8/Leads/search?phone=%2B4915112345678").await;
    assert_eq!(s, StatusCode::OK);
    let b = b.expect("hit");
    assert_eq!(b["data"][0]["id"], json!(id));
    assert_eq!(b["info"]["more_records"], false);
    // A literal `+` decodes to a space: no match.
    let (s, _) = api.get("/crm/v8/Leads/search?phone=+4915112345678").await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = api.get("/crm/v8/Leads/search?criteria=((Phone:equals:%2B4915112345678)or(Mobile:equals:%2B4915112345678))").await;
    assert_eq!(s, StatusCode::OK, "{b:?}");
    let (s, b) = api.get("/crm/v8/Leads/search?phone=1").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b.expect("err")["code"], "INVALID_QUERY");
    let (s, _) = api
        .get("/crm/v8/Leads/search?criteria=(Nope:equals:12)")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api.get("/crm/v8/Leads/search").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api.get("/crm/v8/Leads/search?word=maria").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .get("/crm/v8/Contacts/search?phone=%2B4915112345678")
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_clean(&sb);
    sb.shutdown().await;
}

#[tokio::test]
async fn search_honours_index_delay() {
    let cfg = SandboxConfig {
        search_index_delay: Duration::from_millis(400),
        ..SandboxConfig::default()
    };
    let sb = start(cfg).await;
    let api = Api::new(&sb).await;
    let (s, _) = api
        .post(
            "/crm/v8/Contacts",
            json!({"data": [{"Last_Name": "Rui", "Phone": "+351912345678"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        api.get("/crm/v8/Contacts/search?phone=%2B351912345678")
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        api.get("/crm/v8/Contacts/search?phone=%2B351912345678")
            .await
            .0,
        StatusCode::OK
    );
    assert_clean(&sb);
    sb.shutdown().await;
}

#[tokio::test]
async fn create_validation_and_update() {
    let sb = start(SandboxConfig::default()).await;
    let api = Api::new(&sb).await;
    let (s, b) = api
        .post(
            "/crm/v8/Leads",
            json!({"data": [{"First_Name": "No last"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let b = b.expect("body");
    assert_eq!(b["data"][0]["code"], "MANDATORY_NOT_FOUND");
    assert_eq!(b["data"][0]["details"]["api_name"], "Last_Name");
    assert_eq!(b["data"][0]["details"]["json_path"], "$.data[0].Last_Name");
    let long = "x".repeat(81);
    let (s, b) = api
        .post(
            "/crm/v8/Leads",
            json!({"data": [
                {"Last_Name": "Ok", "Unknown_Field": 1, "Owner": {"id": "5725767000000411002"}},
                {"Last_Name": long},
                {"Last_Name": "Inactive owner", "Owner": {"id": "5725767000000411004"}}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::MULTI_STATUS);
    let b = b.expect("body");
    assert_eq!(b["data"][0]["code"], "SUCCESS");
    assert_eq!(b["data"][0]["details"]["Created_By"]["name"], "Ana Souza");
    assert_eq!(b["data"][1]["code"], "INVALID_DATA");
    assert_eq!(b["data"][1]["details"]["maximum_length"], "80");
    assert_eq!(b["data"][2]["code"], "INVALID_DATA");
    assert_eq!(b["data"][2]["details"]["api_name"], "Owner");
    let id = b["data"][0]["details"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(id.len() >= 18 && id.chars().all(|c| c.is_ascii_digit()));
    let rec = sb.record("Leads", &id).expect("stored");
    assert_eq!(rec["Owner"]["id"], "5725767000000411002");
    assert!(rec.get("Unknown_Field").is_none());
    let (s, b) = api
        .put(
            &format!("/crm/v8/Leads/{id}"),
            json!({"data": [{"Last_Name": "Renamed"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b:?}");
    assert_eq!(b.expect("b")["data"][0]["message"], "record updated");
    let (s, b) = api.get(&format!("/crm/v8/Leads/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    let b = b.expect("b");
    assert_eq!(b["data"][0]["Last_Name"], "Renamed");
    assert_eq!(b["data"][0]["Converted__s"], false);
    assert_eq!(b["data"][0]["Converted_Contact"], Value::Null);
    let (s, _) = api
        .put(
            "/crm/v8/Leads",
            json!({"data": [{"id": id, "Mobile": "+5511987654321"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        api.get("/crm/v8/Leads/1234567890123456789").await.0,
        StatusCode::NO_CONTENT
    );
    let (s, b) = api
        .post("/crm/v8/Nope", json!({"data": [{"Last_Name": "x"}]}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b.expect("b")["code"], "INVALID_MODULE");
    assert_clean(&sb);
    sb.shutdown().await;
}

#[tokio::test]
async fn notes_create_update_and_limits() {
    let cfg = SandboxConfig {
        note_content_max: 50,
        ..SandboxConfig::default()
    };
    let sb = start(cfg).await;
    let api = Api::new(&sb).await;
    let (_, b) = api
        .post(
            "/crm/v8/Leads",
            json!({"data": [{"Last_Name": "Silva", "First_Name": "Maria"}]}),
        )
        .await;
    let lead = b.expect("b")["data"][0]["details"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (s, b) = api
        .post(
            "/crm/v8/Notes",
            json!({"data": [{"Note_Title": "WhatsApp Chat with Maria", "Note_Content": "09:14 Hello",
                             "Parent_Id": {"module": {"api_name": "Leads"}, "id": lead}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b:?}");
    let note = b.expect("b")["data"][0]["details"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (s, _) = api
        .post(
            &format!("/crm/v8/Leads/{lead}/Notes"),
            json!({"data": [{"Note_Content": "second"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = api
        .put(
            &format!("/crm/v8/Notes/{note}"),
            json!({"data": [{"Note_Content": "09:14 Hello\n09:15 Hi!"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b:?}");
    let (s, b) = api
        .put(
            &format!("/crm/v8/Notes/{note}"),
            json!({"data": [{"Note_Content": "y".repeat(51)}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let b = b.expect("b");
    assert_eq!(b["data"][0]["code"], "INVALID_DATA");
    assert_eq!(
        b["data"][0]["details"],
        json!({"api_name": "Note_Content", "maximum_length": 50})
    );
    let (s, b) = api
        .post("/crm/v8/Notes", json!({"data": [{"Note_Content": "x", "Parent_Id": {"module": {"api_name": "Leads"}, "id": "111111111111111111"}}]}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b.expect("b")["data"][0]["code"], "INVALID_DATA");
    let (s, _) = api.get(&format!("/crm/v8/Leads/{lead}/Notes")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "fields is mandatory");
    let (s, b) = api
        .get(&format!(
            "/crm/v8/Leads/{lead}/Notes?fields=Note_Title,Note_Content,Parent_Id"
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    let b = b.expect("b");
    assert_eq!(b["data"].as_array().expect("a").len(), 2);
    assert_eq!(b["data"][0]["Note_Content"], "09:14 Hello\n09:15 Hi!");
    assert_eq!(b["data"][0]["Parent_Id"]["module"]["api_name"], "Leads");
    let (s, b) = api.get(&format!("/crm/v8/Notes/{note}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b.expect("b")["data"][0]["Note_Title"],
        "WhatsApp Chat with Maria"
    );
    assert_eq!(sb.notes_of("Leads", &lead).len(), 2);
    assert_eq!(sb.notes().len(), 2);
    assert_clean(&sb);
    sb.shutdown().await;
}

#[tokio::test]
async fn credit_limit_faults_concurrency_and_routing() {
    let sb = start(SandboxConfig::default()).await;
    let api = Api::new(&sb).await;
    sb.set_credit_limit(2);
    assert_eq!(api.get("/crm/v8/org").await.0, StatusCode::OK);
    assert_eq!(api.get("/crm/v8/org").await.0, StatusCode::OK);
    let (s, b) = api.get("/crm/v8/org").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(b.expect("b")["code"], "TOO_MANY_REQUESTS");
    assert_eq!(sb.credits_used(), 2);
    sb.clear_credit_limit();
    sb.fail_next(2, 500, "INTERNAL_ERROR");
    assert_eq!(
        api.get("/crm/v8/org").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let (s, b) = api.get("/crm/v8/org").await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(b.expect("b")["code"], "INTERNAL_ERROR");
    assert_eq!(api.get("/crm/v8/org").await.0, StatusCode::OK);
    sb.set_max_concurrency(0);
    assert_eq!(
        api.get("/crm/v8/org").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    sb.set_max_concurrency(20);
    let (s, b) = api.get("/crm/v8/Leads/1/2/3/4").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b.expect("b")["code"], "INVALID_URL_PATTERN");
    let (s, b) = done(api.req(reqwest::Method::DELETE, "/crm/v8/org").send().await).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(b.expect("b")["code"], "INVALID_REQUEST_METHOD");
    let reqs = sb.requests();
    assert!(reqs.iter().filter(|r| r.path == "/crm/v8/org").count() >= 7);
    sb.clear_requests();
    assert!(sb.requests().is_empty());
    assert_clean(&sb);
    sb.shutdown().await;
}

#[tokio::test]
async fn lead_conversion() {
    let sb = start(SandboxConfig::default()).await;
    let api = Api::new(&sb).await;
    let (_, b) = api
        .post("/crm/v8/Leads", json!({"data": [{"Last_Name": "Silva", "Mobile": "+5511987654321", "Phone": "+551133334444"}]}))
        .await;
    let lead = b.expect("b")["data"][0]["details"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (s, b) = api
        .post(
            &format!("/crm/v8/Leads/{lead}/actions/convert"),
            json!({"data": [{"overwrite": false}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b:?}");
    let contact = b.expect("b")["data"][0]["details"]["Contacts"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let c = sb.record("Contacts", &contact).expect("contact");
    assert_eq!(c["Mobile"], "+5511987654321");
    assert_eq!(c["Phone"], "+551133334444");
    let l = sb.record("Leads", &lead).expect("lead");
    assert_eq!(l["Converted__s"], true);
    assert_eq!(l["Converted_Contact"]["id"], json!(contact));
    let (s, b) = api
        .post(
            &format!("/crm/v8/Leads/{lead}/actions/convert"),
            json!({"data": [{}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b.expect("b")["code"], "ID_ALREADY_CONVERTED");
    // Converted leads are hidden from search unless asked for.
    assert_eq!(
        api.get("/crm/v8/Leads/search?phone=%2B5511987654321")
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get("/crm/v8/Leads/search?phone=%2B5511987654321&converted=both")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        api.get("/crm/v8/Contacts/search?phone=%2B5511987654321")
            .await
            .0,
        StatusCode::OK
    );
    // Library helper.
    let lead2 = sb
        .insert_record(
            "Leads",
            json!({"Last_Name": "Costa", "Company": "Costa Lda"}),
        )
        .expect("seed");
    let c2 = sb.convert_lead(&lead2).expect("converted");
    assert!(sb.record("Contacts", &c2).is_some());
    assert!(sb.convert_lead(&lead2).is_err());
    assert_clean(&sb);
    sb.shutdown().await;
}

#[tokio::test]
async fn attachments_upload_and_list() {
    let cfg = SandboxConfig {
        attachment_max_bytes: 10,
        ..SandboxConfig::default()
    };
    let sb = start(cfg).await;
    let api = Api::new(&sb).await;
    let lead = sb
        .insert_record("Leads", json!({"Last_Name": "Files"}))
        .expect("seed");
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("a.txt"),
    );
    let (s, b) = done(
        api.req(
            reqwest::Method::POST,
            &format!("/crm/v8/Leads/{lead}/Attachments"),
        )
        .multipart(form)
        .send()
        .await,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b:?}");
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![0u8; 11]).file_name("b.bin"),
    );
    let (s, _) = done(
        api.req(
            reqwest::Method::POST,
            &format!("/crm/v8/Leads/{lead}/Attachments"),
        )
        .multipart(form)
        .send()
        .await,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, b) = api
        .get(&format!(
            "/crm/v8/Leads/{lead}/Attachments?fields=id,File_Name,Size"
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b.expect("b")["data"][0]["File_Name"], "a.txt");
    assert_clean(&sb);
    sb.shutdown().await;
}

#[tokio::test]
async fn contract_catches_a_bad_client_body() {
    let sb = start(SandboxConfig::default()).await;
    let api = Api::new(&sb).await;
    // Parent_Id as a number is outside the Notes contract.
    let _ = api
        .post(
            "/crm/v8/Notes",
            json!({"data": [{"Note_Content": "x", "Parent_Id": 5}]}),
        )
        .await;
    let v = sb.contract_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].starts_with("POST /crm/v8/Notes request"), "{v:?}");
    sb.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints() {
    let sb = start(SandboxConfig::default()).await;
    sb.insert_record("Leads", json!({"Last_Name": "Admin view"}))
        .expect("seed");
    let (s, b) = done(
        client()
            .get(format!("{}/__sandbox/records/Leads", sb.base_url()))
            .send()
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b.expect("b")["data"][0]["Last_Name"], "Admin view");
    let (s, _) = done(
        client()
            .post(format!("{}/__sandbox/expire-tokens", sb.base_url()))
            .send()
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = done(
        client()
            .get(format!("{}/__sandbox/requests", sb.base_url()))
            .send()
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b.expect("b")["requests"],
        json!([]),
        "admin calls are not recorded"
    );
    let (s, _) = done(
        client()
            .get(format!("{}/__sandbox/notes", sb.base_url()))
            .send()
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    sb.shutdown().await;
}

#[tokio::test]
async fn binary_prints_listening_line() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_zoho-sandbox"))
        .args([
            "--port",
            "0",
            "--client-id",
            "cid",
            "--client-secret",
            "sec",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("in time")
        .expect("read")
        .expect("a line");
    let url = line
        .strip_prefix("zoho-sandbox listening on ")
        .expect("prefix")
        .to_string();
    let r = client()
        .get(format!("{url}/crm/v8/org"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    child.start_kill().expect("kill");
    let _ = child.wait().await;
}

/// A grant reaches only what its scopes cover: the rest is
/// `401 OAUTH_SCOPE_MISMATCH`, which no refresh cures.
#[tokio::test]
async fn a_grant_calls_only_what_its_scopes_cover() {
    let sb = start(SandboxConfig::default()).await;
    let v = grant(&sb, "ZohoCRM.users.READ,ZohoCRM.org.READ").await;
    assert_eq!(v["scope"], "ZohoCRM.users.READ ZohoCRM.org.READ");
    let api = Api {
        base: sb.base_url(),
        token: v["access_token"].as_str().expect("access").to_owned(),
        http: client(),
    };
    let (status, _) = api.get("/crm/v8/users?type=CurrentUser").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.get("/crm/v8/org").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get("/crm/v8/Leads?fields=Last_Name").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body.expect("an error body")["code"], "OAUTH_SCOPE_MISMATCH");
    let grants = sb.grants_of("ana@acme.example");
    assert_eq!(grants.len(), 1);
    assert!(!grants[0].revoked);
    assert_eq!(sb.revoke_grants_of("ana@acme.example"), 1);
    assert!(sb.grants_of("ana@acme.example")[0].revoked);
    assert!(
        sb.contract_violations().is_empty(),
        "{:?}",
        sb.contract_violations()
    );
}

/// A private sharing rule: a Standard user reads only their own records.
#[tokio::test]
async fn an_owner_only_module_hides_others_records_from_standard_users() {
    let sb = start(SandboxConfig::default()).await;
    sb.restrict_to_owners("Leads");
    let anas = sb
        .insert_record("Leads", json!({"Last_Name": "Ana's lead"}))
        .expect("seeded");
    sb.set_authorizing_user("bruno@acme.example")
        .expect("Bruno");
    let api = Api::new(&sb).await;
    let (status, body) = api.get(&format!("/crm/v8/Leads/{anas}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body.expect("an error body")["code"], "NO_PERMISSION");
    let (status, body) = api
        .post("/crm/v8/Leads", json!({"data": [{"Last_Name": "Bruno's"}]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body:?}");
    let own = body.expect("a body")["data"][0]["details"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let (status, _) = api.get(&format!("/crm/v8/Leads/{own}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        sb.contract_violations().is_empty(),
        "{:?}",
        sb.contract_violations()
    );
}
