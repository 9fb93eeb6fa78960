//! The API fuzz (`infra/local/api-fuzz.sh`): schemathesis against every
//! function of the template on the local stack, the CRM and Graph
//! sandboxes behind them, over infra/openapi.yaml.
//!
//! Sets up what a real client has, through the API as the end-to-end
//! harness does: a workspace whose owner's token authenticates, Zoho
//! connected through OAuth with settings active, a chat with a message, a
//! live-chat session, the operator key; a second workspace whose owner's
//! token is for the operations that end a token's or a workspace's life
//! (they run last, on their own, so they do not log the main run out).
//! Then runs schemathesis (`SCHEMATHESIS`, default `schemathesis` on the
//! PATH) with every check, and counts what the local runner saw: every
//! request, the answers ≥ 500, and the answers outside the document (the
//! end-to-end contract check, [`e2e::contract`]).
//!
//! Prints `api fuzz: N requests, X server errors, Y schema violations` (the
//! functions' logs go to stderr); exits non-zero unless X and Y are 0.
//! schemathesis's other checks (a schema-valid request refused, …) are its
//! own report above that line.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use e2e::{ALICE_WA_ID, TestSystem, text_delivery};
use local_stack::runner::{Exchange, HttpObserver};
use serde_json::{Value, json};

/// Counts the answers of 500 and above.
#[derive(Default)]
struct ServerErrors {
    requests: AtomicUsize,
    server_errors: AtomicUsize,
}

impl HttpObserver for ServerErrors {
    fn observe(&self, exchange: &Exchange) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if exchange.status >= 500 {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
            println!(
                "server error: {} {} → {} {}",
                exchange.method,
                exchange.path,
                exchange.status,
                String::from_utf8_lossy(&exchange.body)
            );
        }
    }
}

/// Operations that end the caller's token or workspace.
const ENDING_OPERATIONS: [&str; 2] = ["rotateToken", "deleteWorkspace"];

/// Runs schemathesis over the operations `filter` selects (its own
/// arguments), with `auth` as the environment its config reads; whether
/// it passed.
fn schemathesis(base_url: &str, filter: &[&str], auth: &[(&str, &str)]) -> bool {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let program = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into());
    let max_examples = std::env::var("API_FUZZ_EXAMPLES").unwrap_or_else(|_| "30".into());
    let mut command = Command::new(program);
    command
        .current_dir(root)
        .arg("--config-file")
        .arg("infra/local/schemathesis.toml")
        .arg("run")
        .arg("infra/openapi.yaml")
        .arg("--url")
        .arg(base_url)
        .arg("--checks")
        .arg("all")
        .arg("--max-examples")
        .arg(max_examples)
        .args(filter)
        // The hooks module (webhook signatures) beside the config.
        .env("PYTHONPATH", "infra/local")
        .env("FUZZ_META_APP_SECRET", e2e::META_APP_SECRET)
        .envs(auth.iter().copied());
    println!("== schemathesis {}", filter.join(" "));
    match command.status() {
        Ok(status) => status.success(),
        Err(e) => {
            eprintln!("schemathesis did not run: {e} (infra/local/api-fuzz.sh installs it)");
            false
        }
    }
}

/// A workspace of its own (no number) through the operator's route: its
/// owner's token.
async fn throwaway_owner(system: &TestSystem) -> String {
    let response = system
        .http
        .post(system.url("/api/workspaces"))
        .bearer_auth(&system.operator_key)
        .json(&json!({ "name": "Fuzz", "owner_email": "owner@fuzz.example" }))
        .send()
        .await
        .expect("create a workspace");
    assert_eq!(response.status(), 201, "workspace created");
    let body: Value = response.json().await.expect("json");
    body["api_token"].as_str().expect("a token").to_owned()
}

#[tokio::main]
async fn main() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    let counts = Arc::new(ServerErrors::default());
    // A chat with a message, so chat routes meet something real.
    let delivered = system
        .post_webhook(&text_delivery(
            ALICE_WA_ID,
            "Alice",
            "wamid.fuzz1",
            e2e::live::unix_now() - 60,
            "Hello",
        ))
        .await;
    assert_eq!(delivered.status(), 200, "a message delivered");
    // Its business account, so templates can be listed.
    system
        .give_the_number_its_business_account(&workspace)
        .await;
    let session = system
        .zoho_live_session(&workspace.id, &workspace.owner_id)
        .await;
    let throwaway = throwaway_owner(&system).await;
    system.local.runner.observe_http(counts.clone());
    let setup_checked = system.api_contract.checked();

    let base_url = system.local.base_url().to_owned();
    let mut passed = true;
    let mut main_run = Vec::new();
    for id in ENDING_OPERATIONS {
        main_run.push("--exclude-operation-id");
        main_run.push(id);
    }
    let pipedrive = pipedrive_sandbox::PipedriveSandboxConfig::default();
    let app = [
        ("FUZZ_OPERATOR_KEY", system.operator_key.as_str()),
        ("FUZZ_LIVE_SESSION", session.as_str()),
        ("FUZZ_PIPEDRIVE_CLIENT_ID", pipedrive.client_id.as_str()),
        (
            "FUZZ_PIPEDRIVE_CLIENT_SECRET",
            pipedrive.client_secret.as_str(),
        ),
    ];
    let auth = [
        &app[..],
        &[("FUZZ_API_TOKEN", workspace.owner_token.as_str())],
    ]
    .concat();
    passed &= schemathesis(&base_url, &main_run, &auth);
    let mut ending = Vec::new();
    for id in ENDING_OPERATIONS {
        ending.push("--include-operation-id");
        ending.push(id);
    }
    let auth = [&app[..], &[("FUZZ_API_TOKEN", throwaway.as_str())]].concat();
    passed &= schemathesis(&base_url, &ending, &auth);

    let violations = system.api_contract.take_violations();
    for violation in &violations {
        println!("schema violation: {violation}");
    }
    let requests = counts.requests.load(Ordering::Relaxed);
    let server_errors = counts.server_errors.load(Ordering::Relaxed);
    println!(
        "api fuzz: {requests} requests, {server_errors} server errors, {} schema violations",
        violations.len()
    );
    println!(
        "  (setup: {setup_checked} requests; schemathesis checks {})",
        if passed {
            "passed"
        } else {
            "failed: see above"
        }
    );
    drop(system);
    if server_errors > 0 || !violations.is_empty() {
        std::process::exit(1);
    }
}
