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
    // Even with the number's own token (the other workspace controls the
    // number too), one number routes to one workspace.
    let (status, answer) = post(
        &system,
        "/api/whatsapp-numbers",
        other["api_token"].as_str().expect("token"),
        json!({ "phone_number_id": e2e::PHONE_NUMBER_ID, "display_phone_number": "447700900100",
                "access_token": graph_sandbox::DEFAULT_ACCESS_TOKEN }),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
}

/// Another business's number, which only its own token may read.
const OTHER_NUMBER_ID: &str = "170000000000009";
const OTHER_BUSINESS_TOKEN: &str = "other-business-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_is_registered_only_with_a_token_that_proves_control_of_it() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.graph.seed_phone_number(
        graph_sandbox::SeedPhoneNumber::new(OTHER_NUMBER_ID, "+44 7700 900999", "Other Ltd")
            .readable_only_with([OTHER_BUSINESS_TOKEN]),
    );
    let register = |id: &str, display: &str, token: Option<&str>| {
        let mut body = json!({ "phone_number_id": id, "display_phone_number": display });
        if let Some(token) = token {
            body["access_token"] = json!(token);
        }
        post(
            &system,
            "/api/whatsapp-numbers",
            &workspace.owner_token,
            body,
        )
    };
    let refusal = |answer: &Value| {
        answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    // No token: nothing proves anything.
    let (status, answer) = register(OTHER_NUMBER_ID, "+44 7700 900999", None).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        refusal(&answer).contains("access_token is required"),
        "{answer}"
    );
    // Our own valid token cannot read another business's number.
    let (status, answer) = register(
        OTHER_NUMBER_ID,
        "+44 7700 900999",
        Some(graph_sandbox::DEFAULT_ACCESS_TOKEN),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        refusal(&answer).contains("no phone number with this id that the access token may read"),
        "{answer}"
    );
    // A token Graph refuses.
    let (status, answer) = register(OTHER_NUMBER_ID, "+44 7700 900999", Some("forged")).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        refusal(&answer).contains("refused the access token"),
        "{answer}"
    );
    // Our number with our token, but claimed as another number: the one
    // WhatsApp holds is not given away.
    let (status, answer) = register(
        e2e::PHONE_NUMBER_ID,
        "+44 7700 900999",
        Some(graph_sandbox::DEFAULT_ACCESS_TOKEN),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        refusal(&answer).contains("display_phone_number is not the number of phone_number_id"),
        "{answer}"
    );
    assert!(refusal(&answer).contains("+44********00"), "{answer}");
    assert!(!answer.to_string().contains("7700900100"), "{answer}");
    assert!(
        system
            .sort_keys(&format!("WANUMBER#{OTHER_NUMBER_ID}"))
            .await
            .is_empty(),
        "nothing was registered"
    );

    // The business's own token proves control.
    let (status, answer) = register(
        OTHER_NUMBER_ID,
        "+44 7700 900999",
        Some(OTHER_BUSINESS_TOKEN),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        answer["whatsapp_number"]["display_phone_number"],
        "+447700900999"
    );
    // Graph unreachable: not a refusal of the token, and nothing changes.
    system
        .graph
        .fail_next_at(graph_sandbox::Endpoint::PhoneNumber, 1, 503);
    let (status, answer) = register(
        e2e::PHONE_NUMBER_ID,
        "447700900100",
        Some(graph_sandbox::DEFAULT_ACCESS_TOKEN),
    )
    .await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"]["code"], "whatsapp_error");
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
