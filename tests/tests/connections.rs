//! Organization and personal connections, their refusals, the token
//! lifecycle and tenant isolation, end to end.

use std::sync::Arc;
use std::time::Duration;

use e2e::{ALICE_WA_ID, TestSystem, TestWorkspace, fixture, text_delivery, urlencode};
use reqwest::Method;
use serde_json::{Value, json};
use shared::model::{ConnectionKind, CrmKind};
use shared::tokens::{AccessTokens, ConnectionTokens};
use zoho_sandbox::{SandboxConfig, SeedUser};

const MAY_20_0915: i64 = 1_779_268_500;

async fn status(system: &TestSystem, token: &str) -> Value {
    let (code, body) = system
        .call(Method::GET, "/oauth/zoho/status", token, None)
        .await;
    assert_eq!(code, 200, "{body}");
    body
}

async fn disconnect(system: &TestSystem, token: &str, connection: &str) -> (u16, Value) {
    system
        .call(
            Method::POST,
            "/oauth/zoho/disconnect",
            token,
            Some(json!({ "connection": connection })),
        )
        .await
}

async fn connected_system() -> (TestSystem, TestWorkspace) {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    (system, workspace)
}

fn revocations(system: &TestSystem) -> usize {
    system
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path == "/oauth/v2/token/revoke" && r.status == 200)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_connect_the_organization_and_nobody_connects_personally_before_it() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    let (_, member) = system
        .add_user(&workspace, "carla@acme.example", "member")
        .await;

    let (code, body) = system.oauth(&member, "organization").await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("only the workspace owner or an admin"),
        "{body}"
    );

    let (code, body) = system.oauth(&member, "personal").await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("organization is not connected yet"), "{body}");

    assert!(
        system.sort_keys("STATE").await.is_empty(),
        "no OAuth state was issued"
    );
    assert!(system.sort_keys("CONN#").await.is_empty());
    assert!(system.sandbox.requests().is_empty(), "Zoho was never asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_connects_personally_and_the_status_tells_everyone_what_they_may_do() {
    let (system, workspace) = connected_system().await;
    let (member_id, member) = system
        .personally_connected_member(&workspace, "carla@acme.example")
        .await;

    let mine = status(&system, &member).await;
    assert_eq!(mine["personal"]["crm_user_email"], "carla@acme.example");
    assert_eq!(
        mine["organization"]["connected_by"]["email"],
        "bruno@acme.example"
    );
    assert_eq!(mine["organization"]["status"], "active");
    assert_eq!(
        mine["you_may"],
        json!({ "connect_organization": false, "connect_personal": false,
                "disconnect_organization": false, "disconnect_personal": true })
    );
    let owners = status(&system, &workspace.owner_token).await;
    assert_eq!(owners["personal"]["crm_user_email"], "ana@acme.example");
    assert_eq!(owners["you_may"]["disconnect_organization"], true);
    // No token of any kind in what the endpoint says.
    let text = format!("{mine}{owners}");
    assert!(!text.contains("1000."), "{text}");

    // Disconnect me: only the caller's own; sync keeps working.
    let (code, _) = disconnect(&system, &member, "personal").await;
    assert_eq!(code, 200);
    let mut left = system.sort_keys("CONN#").await;
    left.sort();
    assert!(!left.contains(&format!("CONN#zoho#USER#{member_id}")));
    assert!(left.contains(&"CONN#zoho#ORG".to_owned()));
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    system.wait_for_note_line("+447700900123", "Elm Road").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_connection_to_another_zoho_organization_is_refused() {
    let (system, workspace) = connected_system().await;
    let (_, member) = system
        .add_user(&workspace, "dora@acme.example", "member")
        .await;
    system.sandbox.add_user(SeedUser {
        foreign_org_id: Some("88888888".into()),
        ..SeedUser::sales("dora@elsewhere.example", "Dora", "Elsewhere")
    });
    system
        .sandbox
        .set_authorizing_user("dora@elsewhere.example")
        .expect("added");
    let revoked_before = revocations(&system);

    let (code, body) = system.oauth(&member, "personal").await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("another Zoho CRM organization"), "{body}");
    let connections = system.sort_keys("CONN#").await;
    assert_eq!(
        connections.len(),
        2,
        "only the organization's and its maker's: {connections:?}"
    );
    assert_eq!(
        revocations(&system),
        revoked_before + 1,
        "the foreign grant was given back"
    );
}

/// The organization connection is usable: settings activate and a message
/// reaches a note.
async fn assert_organization_syncs(system: &TestSystem, workspace: &TestWorkspace) {
    system
        .activate_settings(workspace, e2e::default_settings())
        .await;
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    system.wait_for_note_line("+447700900123", "Elm Road").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_requeue_after_connecting_neither_fails_the_callback_nor_revokes_the_grant() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    // A waiting message the store cannot read: the re-queue that follows
    // the connection fails on it.
    system
        .put_unreadable_item(
            &workspace.id,
            "MSG#wamid.UNREADABLE",
            &[("state", "waiting")],
        )
        .await;

    let (code, body) = system.oauth(&workspace.owner_token, "organization").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(revocations(&system), 0, "the stored grant was kept");
    system
        .assert_organization_and_makers_connection_only(&workspace)
        .await;
    assert_organization_syncs(&system, &workspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_storing_the_makers_personal_connection_keeps_the_organization_and_its_grant() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    // The maker's personal connection cannot be written over an item the
    // store cannot read: storing it fails after the organization's.
    system
        .put_unreadable_item(
            &workspace.id,
            &format!("CONN#zoho#USER#{}", workspace.owner_id),
            &[],
        )
        .await;

    let (code, body) = system.oauth(&workspace.owner_token, "organization").await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body.contains(
            "the organization is connected, but your personal connection could not be stored"
        ),
        "{body}"
    );
    assert_eq!(revocations(&system), 0, "the stored grant was kept");
    assert_eq!(system.sort_keys("CONN#zoho#ORG").await.len(), 1);
    assert_organization_syncs(&system, &workspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_with_a_personal_connection_must_disconnect_it_before_the_organization() {
    let (system, workspace) = connected_system().await;
    let (_, admin) = system
        .add_user(&workspace, "carla@acme.example", "admin")
        .await;
    system
        .sandbox
        .set_authorizing_user("carla@acme.example")
        .expect("seeded");
    assert_eq!(system.oauth(&admin, "personal").await.0, 200);

    let (code, body) = disconnect(&system, &admin, "organization").await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("disconnect it first")),
        "{body}"
    );
    assert_eq!(
        system.sort_keys("CONN#").await.len(),
        3,
        "nothing was disconnected"
    );

    assert_eq!(disconnect(&system, &admin, "personal").await.0, 200);
    let (code, body) = disconnect(&system, &admin, "organization").await;
    assert_eq!(code, 200, "{body}");
    assert!(system.sort_keys("CONN#").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnecting_the_organization_removes_every_personal_connection_and_revokes_the_grants() {
    let (system, workspace) = connected_system().await;
    for (email, role) in [
        ("carla@acme.example", "member"),
        ("diego.admin@acme.example", "admin"),
    ] {
        let (_, token) = system.add_user(&workspace, email, role).await;
        if role == "member" {
            system.sandbox.set_authorizing_user(email).expect("seeded");
            assert_eq!(system.oauth(&token, "personal").await.0, 200);
        }
    }
    let revoked_before = revocations(&system);
    let (code, body) = disconnect(&system, &workspace.owner_token, "organization").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["personal_connections_removed"], 2);
    // The organization's grant and Carla's; the owner's personal connection
    // shares the organization's grant.
    assert_eq!(body["grants_revoked"], 2);
    assert_eq!(revocations(&system), revoked_before + 2);
    assert!(system.sort_keys("CONN#").await.is_empty());

    // Sync stops: a new message waits instead of reaching Zoho.
    let creates_before = system.sandbox.records("Leads").len();
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    let id = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgURkFLRTAwMDAwMDAwMDAwMDAwMDEA";
    system.wait_for_message_state(id, "waiting").await;
    assert_eq!(system.sandbox.records("Leads").len(), creates_before);
    let log = system.sync_log(&workspace.owner_token, "").await;
    assert!(
        log.iter()
            .any(|e| e["event"] == "organization_disconnected")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_forged_foreign_and_expired_states_are_refused_and_create_nothing() {
    let system = TestSystem::start_custom(
        vec![SandboxConfig::default()],
        None,
        vec![("OAUTH_STATE_TTL_SECS".into(), "2".into())],
    )
    .await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    let owner = workspace.owner_token.clone();

    // Forged: the right nonce with someone else's signature.
    let callback = system
        .oauth_callback_url(&owner, "organization")
        .await
        .expect("started");
    let forged = forge_signature(&callback);
    let refused = system.http.get(&forged).send().await.expect("forged");
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["message"], "the state is not valid");
    // The forgery burned the state: the genuine callback cannot be replayed either.
    assert_eq!(
        system
            .http
            .get(&callback)
            .send()
            .await
            .expect("replay")
            .status(),
        400
    );

    // Foreign: a state issued by another deployment.
    let other = TestSystem::start().await;
    let other_workspace = other.workspace("bruno@acme.example", "UTC").await;
    let foreign = other
        .oauth_callback_url(&other_workspace.owner_token, "organization")
        .await
        .expect("started elsewhere");
    let foreign_state = foreign
        .split("state=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("state");
    let ours = callback.replace(
        callback
            .split("state=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .expect("state"),
        foreign_state,
    );
    assert_eq!(
        system
            .http
            .get(&ours)
            .send()
            .await
            .expect("foreign")
            .status(),
        400
    );

    // Expired: the state outlived its two seconds.
    let late = system
        .oauth_callback_url(&owner, "organization")
        .await
        .expect("started");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let expired = system.http.get(&late).send().await.expect("late");
    assert_eq!(expired.status(), 400);
    let body: Value = expired.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{body}"
    );

    assert!(
        system.sort_keys("CONN#").await.is_empty(),
        "nothing was connected"
    );
    let exchanges = system
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path == "/oauth/v2/token")
        .count();
    assert_eq!(
        exchanges, 0,
        "no refused callback reached the token endpoint"
    );
}

/// The callback URL with the state's signature replaced by another's.
fn forge_signature(callback: &str) -> String {
    let state = callback
        .split("state=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("state");
    let (nonce, _) = state.split_once('.').expect("nonce.signature");
    callback.replace(
        state,
        &format!("{nonce}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_is_exchanged_at_the_data_centre_the_callback_names() {
    let us = SandboxConfig::default();
    let eu = SandboxConfig {
        location: "eu".into(),
        ..SandboxConfig::default()
    };
    // Authorization starts at the EU accounts server (Zoho routes each user
    // to their data centre); the US one must never see this organization.
    let system = TestSystem::start_custom(vec![eu, us], None, Vec::new()).await;
    let us_sandbox = system.other_sandboxes[0].clone();
    let workspace = system.workspace("bruno@acme.example", "UTC").await;

    // A callback that names the EU location but another accounts server is refused.
    let callback = system
        .oauth_callback_url(&workspace.owner_token, "organization")
        .await
        .expect("started");
    assert!(callback.contains("location=eu"));
    let mismatched = callback.replace(
        &format!("accounts-server={}", urlencode(&system.sandbox.base_url())),
        &format!("accounts-server={}", urlencode(&us_sandbox.base_url())),
    );
    assert_ne!(mismatched, callback);
    assert_eq!(
        system
            .http
            .get(&mismatched)
            .send()
            .await
            .expect("callback")
            .status(),
        400
    );

    system.connect_zoho(&workspace).await;
    let state = status(&system, &workspace.owner_token).await;
    assert_eq!(state["organization"]["data_centre"], "eu");
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    system.wait_for_note_line("+447700900123", "Elm Road").await;
    assert!(
        us_sandbox.requests().is_empty(),
        "nothing went to the US data centre"
    );
    assert!(us_sandbox.records("Leads").is_empty());
    let eu_calls = system.sandbox.requests();
    assert!(eu_calls.iter().any(|r| r.path == "/oauth/v2/token"));
    assert!(eu_calls.iter().any(|r| r.path == "/crm/v8/Leads"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_workers_refresh_one_token_with_exactly_one_refresh_call() {
    let (system, workspace) = connected_system().await;
    let deps = system.local.deps.clone();
    let connection = deps
        .store
        .connection(
            &workspace.id,
            CrmKind::Zoho,
            ConnectionKind::Organization,
            None,
        )
        .await
        .expect("store")
        .expect("connected");
    let oauth = deps.crms.oauth(CrmKind::Zoho).await.expect("client secret");
    let cipher = deps.secrets.keys().await.expect("keys").token_cipher();
    let make_tokens = || {
        Arc::new(ConnectionTokens::new(
            deps.store.clone(),
            cipher.clone(),
            oauth.clone(),
            deps.clock.clone(),
            connection.clone(),
        ))
    };
    let rejected = make_tokens().current().await.expect("current token");
    system.sandbox.expire_access_tokens();
    let refreshes_before = system.sandbox.token_refresh_count();

    // Eight workers, each with its own in-memory cache, hit the rejection at once.
    let mut workers = Vec::new();
    for _ in 0..8 {
        let tokens = make_tokens();
        let rejected = rejected.clone();
        workers.push(tokio::spawn(async move {
            tokens.refresh_after_rejection(&rejected).await
        }));
    }
    let mut fresh = Vec::new();
    for worker in workers {
        fresh.push(worker.await.expect("joined").expect("a fresh token"));
    }
    assert_eq!(system.sandbox.token_refresh_count() - refreshes_before, 1);
    assert!(fresh.iter().all(|t| *t == fresh[0] && *t != rejected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_parks_messages_and_a_reconnect_syncs_them_in_order_once() {
    let (system, workspace) = connected_system().await;
    system
        .post_webhook(&text_delivery(
            ALICE_WA_ID,
            "Alice",
            "wamid.R1",
            MAY_20_0915,
            "one",
        ))
        .await;
    system.wait_for_note_line("+447700900123", "one").await;

    // The customer revokes our access in Zoho.
    system.sandbox.revoke_refresh_tokens();
    system.sandbox.expire_access_tokens();
    for (id, offset, text) in [("wamid.R2", 60, "two"), ("wamid.R3", 120, "three")] {
        system
            .post_webhook(&text_delivery(
                ALICE_WA_ID,
                "Alice",
                id,
                MAY_20_0915 + offset,
                text,
            ))
            .await;
    }
    system.wait_for_message_state("wamid.R2", "waiting").await;
    system.wait_for_message_state("wamid.R3", "waiting").await;
    let now = status(&system, &workspace.owner_token).await;
    assert_eq!(now["organization"]["status"], "broken");
    let log = system.sync_log(&workspace.owner_token, "").await;
    assert!(
        log.iter().any(|e| e["event"] == "connection_broken"),
        "{log:?}"
    );
    assert!(log.iter().any(|e| e["event"] == "parked"));
    assert_eq!(system.queue_depth("NotesDeadLetterQueue").await, 0);
    assert_eq!(system.queue_depth("SyncDeadLetterQueue").await, 0);

    // Reconnect = disconnect + connect.
    assert_eq!(
        disconnect(&system, &workspace.owner_token, "organization")
            .await
            .0,
        200
    );
    system.connect_zoho(&workspace).await;
    let (_, notes) = system.wait_for_note_line("+447700900123", "three").await;
    assert_eq!(system.leads_with_mobile("+447700900123").len(), 1);
    assert_eq!(notes.len(), 1);
    let content = notes[0]["Note_Content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let lines: Vec<&str> = content.lines().skip(2).collect();
    assert_eq!(
        lines,
        [
            "09:15 ← Alice: one",
            "09:16 ← Alice: two",
            "09:17 ← Alice: three"
        ],
        "{content}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_workspace_can_read_or_change_another_ones_items() {
    let (system, first) = connected_system().await;
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    system.wait_for_note_line("+447700900123", "Elm Road").await;
    let (_, other) = system
        .call(
            Method::POST,
            "/api/workspaces",
            &system.operator_key,
            Some(json!({ "name": "Other", "owner_email": "o@other.example" })),
        )
        .await;
    let intruder = other["api_token"].as_str().expect("token").to_owned();
    let (victim_user, _) = system
        .add_user(&first, "carla@acme.example", "member")
        .await;

    // By id: removing the first workspace's user.
    let (code, _) = system
        .call(
            Method::DELETE,
            &format!("/api/users/{victim_user}"),
            &intruder,
            None,
        )
        .await;
    assert_eq!(code, 404);
    assert!(system.sort_keys(&format!("USER#{victim_user}")).await.len() == 1);
    // Its chat's log entries, by chat key.
    let chat = urlencode(&format!("{}#447700900123", e2e::PHONE_NUMBER_ID));
    assert!(
        !system
            .sync_log(&first.owner_token, &format!("?chat={chat}"))
            .await
            .is_empty()
    );
    assert!(
        system
            .sync_log(&intruder, &format!("?chat={chat}"))
            .await
            .is_empty()
    );
    assert!(system.sync_log(&intruder, "").await.is_empty());
    // Its connection: neither visible nor removable.
    let seen = status(&system, &intruder).await;
    assert!(seen["organization"].is_null());
    assert_eq!(disconnect(&system, &intruder, "organization").await.0, 404);
    assert_eq!(
        status(&system, &first.owner_token).await["organization"]["status"],
        "active"
    );
    // Its number: the other workspace cannot take it over.
    let (code, _) = system
        .call(
            Method::POST,
            "/api/whatsapp-numbers",
            &intruder,
            Some(json!({ "phone_number_id": e2e::PHONE_NUMBER_ID, "display_phone_number": "447700900100",
                         "access_token": graph_sandbox::DEFAULT_ACCESS_TOKEN })),
        )
        .await;
    assert_eq!(code, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_users_and_rotated_tokens_stop_working_at_once() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    let (member_id, member) = system
        .add_user(&workspace, "carla@acme.example", "member")
        .await;
    let (code, rotated) = system
        .call(Method::POST, "/api/me/token", &member, None)
        .await;
    assert_eq!(code, 200);
    let fresh = rotated["api_token"].as_str().expect("new token").to_owned();
    assert_eq!(
        system.call(Method::GET, "/api/me", &member, None).await.0,
        401
    );
    assert_eq!(
        system.call(Method::GET, "/api/me", &fresh, None).await.0,
        200
    );

    // A member cannot remove anyone; the owner can.
    let (code, _) = system
        .call(
            Method::DELETE,
            &format!("/api/users/{}", workspace.owner_id),
            &fresh,
            None,
        )
        .await;
    assert_eq!(code, 403);
    let (code, _) = system
        .call(
            Method::DELETE,
            &format!("/api/users/{member_id}"),
            &workspace.owner_token,
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        system.call(Method::GET, "/api/me", &fresh, None).await.0,
        401
    );
    assert!(
        system
            .sort_keys(&format!("USER#{member_id}"))
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_user_revokes_their_personal_grant_and_a_failed_revoke_does_not_stop_it() {
    let (system, workspace) = connected_system().await;
    system
        .sandbox
        .add_user(SeedUser::sales("erin@acme.example", "Erin", "Costa"));
    let mut members = Vec::new();
    for email in ["carla@acme.example", "erin@acme.example"] {
        let (id, token) = system.add_user(&workspace, email, "member").await;
        system.sandbox.set_authorizing_user(email).expect("seeded");
        assert_eq!(system.oauth(&token, "personal").await.0, 200);
        members.push(id);
    }
    let remove = |user_id: String| {
        let system = &system;
        let owner = workspace.owner_token.clone();
        async move {
            system
                .call(
                    Method::DELETE,
                    &format!("/api/users/{user_id}"),
                    &owner,
                    None,
                )
                .await
        }
    };

    let revoked_before = revocations(&system);
    let (code, body) = remove(members[0].clone()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        revocations(&system),
        revoked_before + 1,
        "Carla's grant was revoked"
    );

    // Zoho's answer to the next revocation is lost: the user goes all the same.
    system
        .sandbox
        .lose_next_response("POST", "/oauth/v2/token/revoke", 500);
    let (code, body) = remove(members[1].clone()).await;
    assert_eq!(code, 200, "{body}");
    for member in &members {
        assert!(system.sort_keys(&format!("USER#{member}")).await.is_empty());
        assert!(
            system
                .sort_keys(&format!("CONN#zoho#USER#{member}"))
                .await
                .is_empty()
        );
    }
    // The organization's grant stays: sync goes on.
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    system.wait_for_note_line("+447700900123", "Elm Road").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_token_is_used_for_half_its_life_and_never_refused() {
    // Tokens that live four minutes would always be inside a five-minute
    // margin: the margin shrinks to half their life, so a fresh one is used
    // (not refreshed on every call) and Zoho never refuses one.
    let system = TestSystem::start_with(SandboxConfig {
        access_token_ttl: Duration::from_secs(240),
        ..SandboxConfig::default()
    })
    .await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    system.wait_for_note_line("+447700900123", "Elm Road").await;
    assert_eq!(system.sandbox.token_refresh_count(), 0);
    let refused = system
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert_eq!(refused, 0, "no call was made with a token about to expire");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorize_url_completed_in_another_browser_stores_nothing() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    // The owner starts the flow, then sends the link to someone else, whose
    // browser (no cookie from the start) completes it.
    let callback = system
        .oauth_callback_url(&workspace.owner_token, "organization")
        .await
        .expect("started");
    let other_browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = other_browser.get(&callback).send().await.expect("callback");
    assert_eq!(response.status(), 403);
    let body = response.text().await.unwrap_or_default();
    assert!(body.contains("another browser"), "{body}");
    let (status, body) = system
        .call(
            reqwest::Method::GET,
            "/oauth/zoho/status",
            &workspace.owner_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        body["organization"].is_null(),
        "no connection was stored: {body}"
    );
    // The owner's own browser completes a flow of its own.
    let (status, _) = system.oauth(&workspace.owner_token, "organization").await;
    assert_eq!(status, 200);
}
