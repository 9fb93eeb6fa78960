//! Workspaces, users and the Zoho connection, through the `api` and `oauth`
//! functions as a user would call them.

use e2e::TestSystem;
use serde_json::{Value, json};

async fn post(system: &TestSystem, path: &str, token: &str, body: Value) -> (u16, Value) {
    let response = system
        .http
        .post(system.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_operator_key_creates_workspaces() {
    let system = TestSystem::start().await;
    let body = json!({ "name": "Acme", "owner_email": "bruno@acme.example" });
    let (status, answer) = post(&system, "/api/workspaces", "not-the-key", body.clone()).await;
    assert_eq!(status, 401);
    assert_eq!(
        answer["error"]["message"],
        "creating a workspace needs the operator key"
    );
    let (status, answer) = post(
        &system,
        "/api/workspaces",
        &system.operator_key,
        json!({ "name": "Acme", "owner_email": "bruno@acme.example", "time_zone": "Mars/Olympus" }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Mars/Olympus"))
    );
    assert!(system.sort_keys("WORKSPACE").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_add_users_members_cannot_and_tokens_are_stored_only_as_hashes() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;

    let (status, admin) = post(
        &system,
        "/api/users",
        &workspace.owner_token,
        json!({ "email": "Carla@Acme.example", "role": "admin" }),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(admin["user"]["email"], "carla@acme.example");
    let (status, member) = post(
        &system,
        "/api/users",
        &workspace.owner_token,
        json!({ "email": "dora@acme.example", "role": "member" }),
    )
    .await;
    assert_eq!(status, 201);
    let member_token = member["api_token"].as_str().expect("token").to_owned();

    let (status, answer) = post(
        &system,
        "/api/users",
        &member_token,
        json!({ "email": "eve@acme.example", "role": "member" }),
    )
    .await;
    assert_eq!(status, 403, "{answer}");

    let me: Value = system
        .http
        .get(system.url("/api/me"))
        .bearer_auth(&member_token)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["user"]["role"], "member");
    assert_eq!(me["workspace"]["id"], workspace.id.as_str());

    // No plaintext token anywhere in the table.
    let dump = format!("{:?}", system.table_items().await);
    for token in [&workspace.owner_token, &member_token] {
        assert!(
            !dump.contains(token.as_str()),
            "a plaintext API token is stored"
        );
    }
    let unknown = system
        .http
        .get(system.url("/api/me"))
        .bearer_auth("made-up")
        .send()
        .await
        .expect("me");
    assert_eq!(unknown.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whatsapp_number_belongs_to_one_workspace() {
    let system = TestSystem::start().await;
    system.workspace("bruno@acme.example", "UTC").await;
    let (status, other) = post(
        &system,
        "/api/workspaces",
        &system.operator_key,
        json!({ "name": "Other", "owner_email": "x@other.example" }),
    )
    .await;
    assert_eq!(status, 201);
    let (status, answer) = post(
        &system,
        "/api/whatsapp-numbers",
        other["api_token"].as_str().expect("token"),
        json!({ "phone_number_id": e2e::PHONE_NUMBER_ID, "display_phone_number": "447700900100" }),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth_state_is_single_use_and_tokens_are_stored_encrypted() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    let callback = system
        .oauth_callback_url(&workspace.owner_token, "organization")
        .await
        .expect("started");
    let done = system.http.get(&callback).send().await.expect("callback");
    assert_eq!(done.status(), 200);

    // The same callback again (a replay): refused, nothing new stored.
    let replay = system.http.get(&callback).send().await.expect("replay");
    assert_eq!(replay.status(), 400);
    let answer: Value = replay.json().await.expect("json");
    assert_eq!(
        answer["error"]["message"],
        "the state is unknown, used or expired"
    );
    system
        .assert_organization_and_makers_connection_only(&workspace)
        .await;

    // A forged state never reaches the token endpoint.
    let forged = callback.replace("state=", "state=forged");
    assert_eq!(
        system
            .http
            .get(&forged)
            .send()
            .await
            .expect("forged")
            .status(),
        400
    );
    let exchanges = system
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path == "/oauth/v2/token")
        .collect::<Vec<_>>();
    assert_eq!(exchanges.len(), 1, "one code exchange");

    // The tokens Zoho issued are nowhere in the table in clear.
    let issued = exchanges[0].response_body.clone().expect("token response");
    let dump = format!("{:?}", system.table_items().await);
    for key in ["access_token", "refresh_token"] {
        let token = issued[key].as_str().expect("token issued");
        assert!(!dump.contains(token), "{key} stored in clear");
    }

    // A second organization connection is refused while one exists.
    let (status, answer) = post(
        &system,
        "/oauth/zoho/start",
        &workspace.owner_token,
        json!({ "connection": "organization" }),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
}
