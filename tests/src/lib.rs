//! End-to-end harness: one isolated system per test (its own table, queues
//! and secrets on DynamoDB Local and moto, its own Zoho sandbox, its own
//! runner), driven only through HTTP like a user, Meta and Zoho would.

use std::time::Duration;

use graph_sandbox::{GraphSandbox, GraphSandboxConfig, GraphSandboxHandle};
use local_stack::{LocalOptions, LocalSystem};
use pipedrive_sandbox::{PipedriveSandbox, PipedriveSandboxConfig, PipedriveSandboxHandle};
use serde_json::{Value, json};
use shared::crypto::meta_signature;
use zoho_sandbox::{SandboxConfig, SandboxHandle, ZohoSandbox};

pub mod browser;
pub mod contract;
pub mod live;
pub mod soak;

/// A copy of the project's template with `edit` applied, written to a file
/// of its own (for tests that run an altered template).
pub fn altered_template(edit: impl FnOnce(String) -> String) -> std::path::PathBuf {
    let original = std::fs::read_to_string(local_stack::template_path()).expect("the template");
    let altered = edit(original.clone());
    assert!(
        altered != original,
        "the edit changes the template (its text was not found)"
    );
    let path = std::env::temp_dir().join(format!("template-{}.yaml", uuid_like()));
    std::fs::write(&path, altered).expect("write the altered template");
    path
}

/// The fixtures' fake Meta app secret (their signature vectors use it).
pub const META_APP_SECRET: &str = "fake_app_secret_for_tests_only";
pub const META_VERIFY_TOKEN: &str = "local-verify-token";
/// Fixture business number 1 and its Cloud API id.
pub const PHONE_NUMBER_ID: &str = "170000000000001";
pub const BUSINESS_NUMBER: &str = "447700900100";
/// The fixtures' first customer, Alice, as WhatsApp identifies her.
pub const ALICE_WA_ID: &str = "447700900123";
/// The seeded sandbox users.
pub const ZOHO_ADMIN_ID: &str = "5725767000000411001";
pub const ZOHO_BRUNO_ID: &str = "5725767000000411002";

/// The number on the test record that activating the settings creates.
pub const TEST_RECORD_NUMBER: &str = "+15555550100";

/// Settings every test starts from unless it sets its own: new chats become
/// Leads, converted Leads continue in their Contact.
pub fn default_settings() -> Value {
    json!({
        "destination_module": "Leads",
        "number_field": "Mobile",
        "name_field": "Last_Name",
        "chat_link_field": "WhatsApp_Chat",
        "lead_source_field": "Lead_Source",
        "lead_source_value": "WhatsApp",
        "on_converted": "continue",
        "converted_module": "Contacts",
        "converted_number_field": "Mobile",
    })
}

const WAIT_LIMIT: Duration = Duration::from_secs(40);

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/whatsapp/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

pub struct TestSystem {
    pub local: LocalSystem,
    /// The data centre authorization starts at.
    pub sandbox: SandboxHandle,
    /// Other data centres, if the system was started with several.
    pub other_sandboxes: Vec<SandboxHandle>,
    /// The Graph API (WhatsApp media).
    pub graph: GraphSandboxHandle,
    /// Pipedrive (OAuth and API, one origin).
    pub pipedrive: PipedriveSandboxHandle,
    pub http: reqwest::Client,
    pub operator_key: String,
    /// Every answer of our API checked against infra/openapi.yaml: a
    /// violation fails the test when the system is dropped.
    pub api_contract: std::sync::Arc<contract::ContractCheck>,
}

impl TestSystem {
    /// Fails the test if an answer of our API broke infra/openapi.yaml.
    pub fn assert_api_contract_kept(&self) {
        let violations = self.api_contract.violations();
        assert!(
            violations.is_empty(),
            "answers outside infra/openapi.yaml ({} checked): {violations:#?}",
            self.api_contract.checked()
        );
    }
}

impl Drop for TestSystem {
    /// The contract check cannot be forgotten: every test's system makes it
    /// (unless the test failed already, which then says why).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_api_contract_kept();
        }
    }
}

/// A workspace made through the API, with its owner's token.
#[derive(Debug, Clone)]
pub struct TestWorkspace {
    pub id: String,
    pub owner_id: String,
    pub owner_token: String,
}

impl TestSystem {
    pub async fn start() -> Self {
        Self::start_with(SandboxConfig::default()).await
    }

    pub async fn start_with(sandbox_config: SandboxConfig) -> Self {
        Self::start_custom(vec![sandbox_config], None, Vec::new()).await
    }

    /// A system whose queues redeliver after `visibility_secs` (a message
    /// its function failed on without saying so comes back that soon).
    pub async fn start_with_fast_retries(
        sandbox_config: SandboxConfig,
        visibility_secs: i64,
    ) -> Self {
        Self::start_custom(vec![sandbox_config], Some(visibility_secs), Vec::new()).await
    }

    /// One sandbox per data centre (the first is where authorization starts),
    /// optional fast retries, and extra function environment.
    pub async fn start_custom(
        data_centres: Vec<SandboxConfig>,
        visibility_secs: Option<i64>,
        extra_env: Vec<(String, String)>,
    ) -> Self {
        Self::start_full(data_centres, visibility_secs, extra_env, None).await
    }

    /// A system whose functions get `env` beside the template's environment
    /// (test knobs such as `CONVERSION_CHECK_SECS`).
    pub async fn start_with_env(env: &[(&str, &str)]) -> Self {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self::start_custom(vec![SandboxConfig::default()], None, env).await
    }

    /// A system that runs `template` (an altered copy of the project's)
    /// instead of the project's own.
    pub async fn start_with_template(
        template: std::path::PathBuf,
        visibility_secs: Option<i64>,
    ) -> Self {
        Self::start_full(
            vec![SandboxConfig::default()],
            visibility_secs,
            Vec::new(),
            Some(template),
        )
        .await
    }

    async fn start_full(
        data_centres: Vec<SandboxConfig>,
        visibility_secs: Option<i64>,
        mut extra_env: Vec<(String, String)>,
        template: Option<std::path::PathBuf>,
    ) -> Self {
        shared::deps::init_tracing();
        let graph = GraphSandbox::start(GraphSandboxConfig::default())
            .await
            .expect("the Graph sandbox starts");
        extra_env.push(("GRAPH_API_URL".into(), graph.base_url()));
        extra_env.push((
            "GRAPH_API_VERSION".into(),
            graph_sandbox::DEFAULT_API_VERSION.into(),
        ));
        let pipedrive_config = PipedriveSandboxConfig::default();
        let (pipedrive_id, pipedrive_secret) = (
            pipedrive_config.client_id.clone(),
            pipedrive_config.client_secret.clone(),
        );
        let pipedrive = PipedriveSandbox::start(pipedrive_config)
            .await
            .expect("the Pipedrive sandbox starts");
        let first = data_centres.first().cloned().unwrap_or_default();
        let mut sandboxes = Vec::new();
        for config in data_centres {
            let location = config.location.clone();
            let sandbox = ZohoSandbox::start(config)
                .await
                .expect("the Zoho sandbox starts");
            sandboxes.push((location, sandbox));
        }
        let servers: Vec<String> = sandboxes
            .iter()
            .map(|(location, s)| format!("{location}={}", s.base_url()))
            .collect();
        let domains: Vec<String> = sandboxes.iter().map(|(_, s)| s.base_url()).collect();
        let mut handles = sandboxes.into_iter().map(|(_, s)| s);
        let sandbox = handles.next().expect("at least one data centre");
        let prefix = format!("t{}", &uuid_like());
        let local = LocalSystem::start(LocalOptions {
            template,
            prefix,
            meta_app_secret: META_APP_SECRET.into(),
            meta_verify_token: META_VERIFY_TOKEN.into(),
            zoho_client_id: first.client_id,
            zoho_client_secret: first.client_secret,
            zoho_accounts_url: sandbox.base_url(),
            zoho_accounts_servers: servers.join(","),
            zoho_api_domains: domains.join(","),
            pipedrive_client_id: pipedrive_id,
            pipedrive_client_secret: pipedrive_secret,
            pipedrive_oauth_url: pipedrive.base_url(),
            public_base_url: None,
            port: 0,
            visibility_timeout_secs: visibility_secs,
            // Retries come back after 1 s, 2 s, 4 s … rather than 10 s, 20 s …:
            // the behaviour is the same, and a transient error costs a test
            // seconds, not a good part of its wait limit.
            retry_backoff_base_secs: Some(1),
            extra_env,
        })
        .await
        .unwrap_or_else(|e| panic!("the local system starts: {e}"));
        let api_contract = std::sync::Arc::new(
            contract::ContractCheck::new()
                .unwrap_or_else(|e| panic!("infra/openapi.yaml is usable: {e}")),
        );
        local.runner.observe_http(api_contract.clone());
        let operator_key = local.operator_key().await.expect("operator key");
        // Keeps cookies like the user's browser: an OAuth flow is bound to
        // the browser that started it.
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        Self {
            local,
            sandbox,
            other_sandboxes: handles.collect(),
            graph,
            pipedrive,
            http,
            operator_key,
            api_contract,
        }
    }

    /// The usual start: a system, a workspace owned by bruno@acme.example
    /// (UTC), the organization connected and the default settings active.
    pub async fn with_connected_workspace() -> (Self, TestWorkspace) {
        let system = Self::start().await;
        let workspace = system.workspace("bruno@acme.example", "UTC").await;
        system.connect_zoho(&workspace).await;
        (system, workspace)
    }

    /// The newest sync-log entry of `event` (`query` as for
    /// [`Self::sync_log`]), waited for: entries may land just after the
    /// state a test waited for.
    pub async fn log_entry(&self, token: &str, query: &str, event: &str) -> Value {
        self.eventually(&format!("a `{event}` entry in the sync log"), || async {
            let entries = self.sync_log(token, query).await;
            match entries.iter().find(|e| e["event"] == event) {
                Some(entry) => Ok(entry.clone()),
                None => Err(format!(
                    "entries {:?}",
                    entries.iter().map(|e| &e["event"]).collect::<Vec<_>>()
                )),
            }
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.local.base_url())
    }

    /// Operator creates a workspace; its owner registers the fixtures'
    /// business number, owned by the owner.
    pub async fn workspace(&self, owner_email: &str, time_zone: &str) -> TestWorkspace {
        self.workspace_with_number(owner_email, time_zone, PHONE_NUMBER_ID, BUSINESS_NUMBER)
            .await
    }

    /// The same with another business number (one the Graph sandbox knows).
    pub async fn workspace_with_number(
        &self,
        owner_email: &str,
        time_zone: &str,
        phone_number_id: &str,
        display_phone_number: &str,
    ) -> TestWorkspace {
        let response = self
            .http
            .post(self.url("/api/workspaces"))
            .bearer_auth(&self.operator_key)
            .json(&json!({ "name": "Acme", "owner_email": owner_email, "time_zone": time_zone }))
            .send()
            .await
            .expect("create workspace");
        assert_eq!(response.status(), 201, "workspace created");
        let body: Value = response.json().await.expect("json");
        let workspace = TestWorkspace {
            id: body["workspace"]["id"].as_str().expect("id").to_owned(),
            owner_id: body["owner"]["id"].as_str().expect("owner id").to_owned(),
            owner_token: body["api_token"].as_str().expect("token").to_owned(),
        };
        let response = self
            .http
            .post(self.url("/api/whatsapp-numbers"))
            .bearer_auth(&workspace.owner_token)
            .json(&json!({
                "phone_number_id": phone_number_id,
                "display_phone_number": display_phone_number,
                "access_token": graph_sandbox::DEFAULT_ACCESS_TOKEN,
            }))
            .send()
            .await
            .expect("register number");
        assert_eq!(response.status(), 201, "number registered");
        workspace
    }

    /// The organization connection, through the whole OAuth dance: start,
    /// the sandbox's consent redirect, our callback.
    /// Then configures and activates the default sync settings
    /// ([`default_settings`]) unless the workspace has active ones.
    pub async fn connect_zoho(&self, workspace: &TestWorkspace) {
        self.connect_zoho_only(workspace).await;
        let (status, current) = self
            .call(
                reqwest::Method::GET,
                "/api/settings/zoho",
                &workspace.owner_token,
                None,
            )
            .await;
        assert_eq!(status, 200, "settings readable: {current}");
        if current["settings"]["active"] != true {
            self.activate_settings(workspace, default_settings()).await;
        }
    }

    /// The organization connection alone: sync settings stay as they are.
    pub async fn connect_zoho_only(&self, workspace: &TestWorkspace) {
        let (status, text) = self.oauth(&workspace.owner_token, "organization").await;
        assert_eq!(status, 200, "callback stored the connection: {text}");
    }

    /// Saves `settings` and activates them; the activation's answer.
    pub async fn activate_settings(&self, workspace: &TestWorkspace, settings: Value) -> Value {
        self.activate_crm_settings("zoho", workspace, settings)
            .await
    }

    /// Saves `settings` (a patch) for the CRM named `crm` in routes and
    /// activates them; the activation's answer.
    pub async fn activate_crm_settings(
        &self,
        crm: &str,
        workspace: &TestWorkspace,
        settings: Value,
    ) -> Value {
        let token = &workspace.owner_token;
        let (status, saved) = self
            .call(
                reqwest::Method::PUT,
                &format!("/api/settings/{crm}"),
                token,
                Some(settings),
            )
            .await;
        assert_eq!(status, 200, "settings saved: {saved}");
        let (status, activated) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/settings/{crm}/activate"),
                token,
                None,
            )
            .await;
        assert_eq!(status, 200, "settings activated: {activated}");
        activated
    }

    /// Leads other than the activation's test record.
    pub fn customer_leads(&self) -> Vec<Value> {
        self.sandbox
            .records("Leads")
            .into_iter()
            .filter(|r| r["Mobile"] != TEST_RECORD_NUMBER)
            .collect()
    }

    /// Starts an OAuth flow and returns the callback URL the CRM sends the
    /// browser to (not yet followed).
    pub async fn oauth_callback_url(
        &self,
        token: &str,
        connection: &str,
    ) -> Result<String, (u16, Value)> {
        self.crm_oauth_callback_url("zoho", token, connection).await
    }

    /// As [`Self::oauth_callback_url`], for the CRM named `crm` in routes.
    pub async fn crm_oauth_callback_url(
        &self,
        crm: &str,
        token: &str,
        connection: &str,
    ) -> Result<String, (u16, Value)> {
        let response = self
            .http
            .post(self.url(&format!("/oauth/{crm}/start")))
            .bearer_auth(token)
            .json(&json!({ "connection": connection }))
            .send()
            .await
            .expect("start OAuth");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_default();
        if status != 200 {
            return Err((status, body));
        }
        let authorize_url = body["authorize_url"].as_str().expect("authorize_url");
        let consent = self.http.get(authorize_url).send().await.expect("consent");
        assert_eq!(consent.status(), 302, "the sandbox approves and redirects");
        Ok(consent
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .expect("redirect location")
            .to_owned())
    }

    /// The whole flow for `connection`; the callback's status and body (or
    /// the start's refusal).
    pub async fn oauth(&self, token: &str, connection: &str) -> (u16, String) {
        self.crm_oauth("zoho", token, connection).await
    }

    /// As [`Self::oauth`], for the CRM named `crm` in routes.
    pub async fn crm_oauth(&self, crm: &str, token: &str, connection: &str) -> (u16, String) {
        match self.crm_oauth_callback_url(crm, token, connection).await {
            Ok(callback) => {
                let done = self.http.get(&callback).send().await.expect("callback");
                let status = done.status().as_u16();
                (status, done.text().await.unwrap_or_default())
            }
            Err((status, body)) => (status, body.to_string()),
        }
    }

    /// Adds a user through the API; returns (user id, token).
    pub async fn add_user(
        &self,
        workspace: &TestWorkspace,
        email: &str,
        role: &str,
    ) -> (String, String) {
        let response = self
            .http
            .post(self.url("/api/users"))
            .bearer_auth(&workspace.owner_token)
            .json(&json!({ "email": email, "role": role }))
            .send()
            .await
            .expect("add user");
        assert_eq!(response.status(), 201, "user added");
        let body: Value = response.json().await.expect("json");
        (
            body["user"]["id"].as_str().expect("id").to_owned(),
            body["api_token"].as_str().expect("token").to_owned(),
        )
    }

    /// A member of the workspace, connected personally to Zoho as the
    /// sandbox user `email` (who goes on authorizing the flows that
    /// follow); (user id, token).
    pub async fn personally_connected_member(
        &self,
        workspace: &TestWorkspace,
        email: &str,
    ) -> (String, String) {
        let (id, token) = self.add_user(workspace, email, "member").await;
        self.sandbox
            .set_authorizing_user(email)
            .expect("a seeded sandbox user");
        let (code, body) = self.oauth(&token, "personal").await;
        assert_eq!(code, 200, "personal connection stored: {body}");
        (id, token)
    }

    /// An authenticated JSON call; (status, body).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    pub async fn post_webhook(&self, body: &[u8]) -> reqwest::Response {
        let signature = meta_signature(META_APP_SECRET.as_bytes(), body);
        self.post_webhook_signed(body, Some(&signature)).await
    }

    pub async fn post_webhook_signed(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url("/webhooks/whatsapp"))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        request.send().await.expect("webhook delivery")
    }

    /// Polls until `probe` (an in-process check, such as the sandbox's
    /// records) yields something, or fails the test naming `what`.
    pub async fn wait_for<T>(&self, what: &str, probe: impl Fn() -> Option<T>) -> T {
        self.eventually(what, || {
            std::future::ready(probe().ok_or_else(|| "nothing yet".to_owned()))
        })
        .await
    }

    /// Polls a probe that asks the stack (DynamoDB, SQS, the API) until it
    /// answers `Ok`, or fails the test with what the last `Err` said things
    /// were instead.
    pub async fn eventually<T, F>(&self, what: &str, probe: impl Fn() -> F) -> T
    where
        F: std::future::Future<Output = Result<T, String>>,
    {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            let last = match probe().await {
                Ok(found) => return found,
                Err(instead) => instead,
            };
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; instead: {last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Leads whose Mobile is `e164`.
    /// The Zoho API calls (not OAuth) the sandbox has answered so far.
    pub fn zoho_api_calls(&self) -> usize {
        self.sandbox
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/crm/"))
            .count()
    }

    pub fn leads_with_mobile(&self, e164: &str) -> Vec<Value> {
        self.sandbox
            .records("Leads")
            .into_iter()
            .filter(|r| r["Mobile"] == e164)
            .collect()
    }

    /// The notes of a record, oldest first.
    pub fn notes_of(&self, module: &str, record_id: &str) -> Vec<Value> {
        self.sandbox.notes_of(module, record_id)
    }

    /// Waits until some note of the lead holding `e164` contains `text`.
    pub async fn wait_for_note_line(&self, e164: &str, text: &str) -> (Value, Vec<Value>) {
        self.wait_for(&format!("a note line containing `{text}`"), || {
            let lead = self.leads_with_mobile(e164).into_iter().next()?;
            let id = lead["id"].as_str()?.to_owned();
            let notes = self.notes_of("Leads", &id);
            notes
                .iter()
                .any(|n| n["Note_Content"].as_str().is_some_and(|c| c.contains(text)))
                .then_some((lead, notes))
        })
        .await
    }

    /// Every item of this system's table.
    pub async fn table_items(
        &self,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let client = aws_sdk_dynamodb::Client::new(&self.local.aws);
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = client
                .scan()
                .table_name(&self.local.stack.table_name)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }

    /// Every item of a workspace: those under its key, and the global ones
    /// that name it (token, number and OAuth-state lookups).
    pub async fn items_of_workspace(
        &self,
        workspace_id: &str,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let pk = format!("WS#{workspace_id}");
        self.table_items()
            .await
            .into_iter()
            .filter(|item| {
                let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
                text("pk") == Some(&pk)
                    || text("workspace_id").map(String::as_str) == Some(workspace_id)
            })
            .collect()
    }

    /// Writes an item straight to this system's table, bypassing the store:
    /// with only `attributes`, it stands for an item the store cannot read,
    /// so a flow that reads it fails there (as a throttled or failing
    /// DynamoDB call would).
    pub async fn put_unreadable_item(
        &self,
        workspace_id: &str,
        sk: &str,
        attributes: &[(&str, &str)],
    ) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let mut put = aws_sdk_dynamodb::Client::new(&self.local.aws)
            .put_item()
            .table_name(&self.local.stack.table_name)
            .item("pk", AttributeValue::S(format!("WS#{workspace_id}")))
            .item("sk", AttributeValue::S(sk.to_owned()));
        for (name, value) in attributes {
            put = put.item(*name, AttributeValue::S((*value).to_owned()));
        }
        put.send().await.expect("put the item");
    }

    /// Fails the test unless the workspace holds exactly two connections:
    /// the organization's and its maker's personal one.
    pub async fn assert_organization_and_makers_connection_only(&self, workspace: &TestWorkspace) {
        let mut connections = self.sort_keys("CONN#").await;
        connections.sort();
        assert_eq!(
            connections,
            [
                "CONN#zoho#ORG".to_owned(),
                format!("CONN#zoho#USER#{}", workspace.owner_id)
            ],
            "the organization connection and its maker's personal one, nothing more"
        );
    }

    /// Sort keys of this system's items that start with `prefix`.
    pub async fn sort_keys(&self, prefix: &str) -> Vec<String> {
        self.table_items()
            .await
            .into_iter()
            .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned())
            .filter(|sk| sk.starts_with(prefix))
            .collect()
    }

    /// The stored state of a message (`received`, `queued`, `waiting`, `appended`).
    pub async fn message_state(&self, message_id: &str) -> Option<String> {
        let sk = format!("MSG#{message_id}");
        self.table_items().await.into_iter().find_map(|item| {
            (item.get("sk")?.as_s().ok()? == &sk)
                .then(|| item.get("state")?.as_s().ok().cloned())
                .flatten()
        })
    }

    /// Waits until the stored message is in `state` (`waiting`, `appended`,
    /// `skipped`, …), or fails the test naming the state it is in.
    pub async fn wait_for_message_state(&self, message_id: &str, state: &str) {
        let what = format!("message {message_id} to reach `{state}`");
        self.eventually(&what, || async {
            match self.message_state(message_id).await {
                Some(now) if now == state => Ok(()),
                other => Err(format!("it is {other:?}")),
            }
        })
        .await;
    }

    /// The sync log through the API, newest first; `query` such as
    /// `?chat=…` or empty.
    pub async fn sync_log(&self, token: &str, query: &str) -> Vec<Value> {
        self.sync_log_page(token, query).await["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// One page of the sync log as the API answers it
    /// (`{"entries", "next_before"}`).
    pub async fn sync_log_page(&self, token: &str, query: &str) -> Value {
        let (code, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/api/sync-log{query}"),
                token,
                None,
            )
            .await;
        assert_eq!(code, 200, "{body}");
        body
    }

    /// The message ledger of the chat with `wa_id` on the fixtures' first
    /// number, through the API, oldest first.
    pub async fn ledger(&self, token: &str, wa_id: &str) -> Vec<Value> {
        let path = format!("/api/chats/{}/messages", chat_key_param(wa_id));
        let (code, body) = self.call(reqwest::Method::GET, &path, token, None).await;
        assert_eq!(code, 200, "{body}");
        body["messages"].as_array().cloned().unwrap_or_default()
    }

    /// Messages on a queue, visible or in flight.
    pub async fn queue_depth(&self, logical_id: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName;
        let url = self.local.stack.queue_url(logical_id).expect("queue");
        let out = aws_sdk_sqs::Client::new(&self.local.aws)
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        let attributes = out.attributes.unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .filter_map(|k| attributes.get(k).and_then(|v| v.parse::<u64>().ok()))
        .sum()
    }

    /// Connects the workspace's organization to Pipedrive as `email` (a
    /// seeded Pipedrive user), saves `settings` (a patch) and activates
    /// them; the activation's answer.
    pub async fn connect_pipedrive(
        &self,
        workspace: &TestWorkspace,
        email: &str,
        settings: Value,
    ) -> Value {
        self.connect_pipedrive_only(workspace, email).await;
        self.activate_pipedrive(workspace, settings).await
    }

    /// The organization connection to Pipedrive alone, made by `email`.
    pub async fn connect_pipedrive_only(&self, workspace: &TestWorkspace, email: &str) {
        self.pipedrive
            .set_authorizing_user(email)
            .expect("a seeded Pipedrive user");
        let (status, text) = self
            .crm_oauth("pipedrive", &workspace.owner_token, "organization")
            .await;
        assert_eq!(status, 200, "callback stored the connection: {text}");
    }

    /// Saves `settings` (a patch) for Pipedrive and activates them.
    pub async fn activate_pipedrive(&self, workspace: &TestWorkspace, settings: Value) -> Value {
        self.activate_crm_settings("pipedrive", workspace, settings)
            .await
    }

    /// A workspace of Ana's on Pipedrive (settings active), the Graph
    /// sandbox sending its status webhooks here, and Alice asking, a minute
    /// ago, "Can I visit on Friday?" as `message_id` (the 24-hour window is
    /// open); the workspace and Alice's person once her note is written.
    pub async fn pipedrive_chat_with_a_fresh_question(
        &self,
        message_id: &str,
    ) -> (TestWorkspace, Value) {
        let workspace = self.pipedrive_workspace_of_ana().await;
        let asked_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
            - 60;
        self.post_webhook(&text_delivery(
            ALICE_WA_ID,
            "Alice",
            message_id,
            asked_at,
            "Can I visit on Friday?",
        ))
        .await;
        self.graph
            .record_inbound(PHONE_NUMBER_ID, ALICE_WA_ID, asked_at);
        let (person, _) = self
            .wait_for_pipedrive_note("+447700900123", "visit on Friday")
            .await;
        (workspace, person)
    }

    /// Pipedrive persons (not deleted) with `e164` among their phones, other
    /// than the activation's test person.
    pub fn pipedrive_persons_with_phone(&self, e164: &str) -> Vec<Value> {
        self.pipedrive
            .persons()
            .into_iter()
            .filter(|p| p["is_deleted"] != true)
            .filter(|p| {
                p["phones"]
                    .as_array()
                    .is_some_and(|phones| phones.iter().any(|ph| ph["value"] == e164))
            })
            .collect()
    }

    /// Waits until a Pipedrive note of the person holding `e164` contains
    /// `text`; the person and the note.
    pub async fn wait_for_pipedrive_note(&self, e164: &str, text: &str) -> (Value, Value) {
        self.wait_for(&format!("a Pipedrive note containing `{text}`"), || {
            let person = self.pipedrive_persons_with_phone(e164).into_iter().next()?;
            let id = person["id"].to_string();
            let note = self
                .pipedrive
                .notes_of("person", &id)
                .into_iter()
                .find(|n| n["content"].as_str().is_some_and(|c| c.contains(text)))?;
            Some((person, note))
        })
        .await
    }

    /// Fails the test if the Pipedrive sandbox saw a request or answer
    /// outside Pipedrive's OpenAPI contract.
    pub fn assert_pipedrive_contract_kept(&self) {
        let violations = self.pipedrive.contract_violations();
        assert!(
            violations.is_empty(),
            "Pipedrive contract violations: {violations:#?}"
        );
    }

    /// Fails the test if the sandbox saw a request or answer outside Zoho's OpenAPI contract.
    pub fn assert_contract_kept(&self) {
        let violations = self.sandbox.contract_violations();
        assert!(
            violations.is_empty(),
            "contract violations: {violations:#?}"
        );
    }
}

/// A path or query component, percent-encoded (chat keys hold a `#`).
pub fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The encoded key of the chat between the fixtures' first business number and `wa_id`.
pub fn chat_key_param(wa_id: &str) -> String {
    urlencode(&format!("{PHONE_NUMBER_ID}#{wa_id}"))
}

/// A unique, DynamoDB- and SQS-safe name part.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{:x}{}{}",
        nanos,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A Cloud API delivery with one text message from a contact.
pub fn text_delivery(
    wa_id: &str,
    name: &str,
    message_id: &str,
    timestamp: i64,
    text: &str,
) -> Vec<u8> {
    messages_delivery(wa_id, name, &[(message_id, timestamp, text)])
}

/// A Cloud API delivery with several text messages from one contact.
pub fn messages_delivery(wa_id: &str, name: &str, messages: &[(&str, i64, &str)]) -> Vec<u8> {
    messages_delivery_to(PHONE_NUMBER_ID, BUSINESS_NUMBER, wa_id, name, messages)
}

/// The same, to another business number of the workspace.
pub fn messages_delivery_to(
    phone_number_id: &str,
    display_phone_number: &str,
    wa_id: &str,
    name: &str,
    messages: &[(&str, i64, &str)],
) -> Vec<u8> {
    let messages: Vec<Value> = messages
        .iter()
        .map(|(id, ts, text)| {
            json!({
                "from": wa_id, "id": id, "timestamp": ts.to_string(),
                "type": "text", "text": { "body": text }
            })
        })
        .collect();
    delivery_to(phone_number_id, display_phone_number, wa_id, name, messages)
}

/// A Cloud API delivery of `messages` (Cloud API message objects of any
/// type) from one contact to a business number.
pub fn delivery_to(
    phone_number_id: &str,
    display_phone_number: &str,
    wa_id: &str,
    name: &str,
    messages: Vec<Value>,
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "190000000000001",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": display_phone_number, "phone_number_id": phone_number_id },
                    "contacts": [{ "profile": { "name": name }, "wa_id": wa_id }],
                    "messages": messages
                }
            }]
        }]
    }))
    .expect("serialisable")
}
