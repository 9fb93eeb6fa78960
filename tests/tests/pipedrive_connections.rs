//! Pipedrive connections through the same rules as Zoho's, end to end
//! against the Pipedrive sandbox: OAuth with Basic client credentials,
//! identity from `users/me`, another company refused and its grant given
//! back, disconnect revoking; Pipedrive's uninstall notice (`DELETE` on the
//! callback, our client credentials in HTTP Basic) removing the connections
//! its user made. Syncing itself: `pipedrive_sync.rs`.

use e2e::{TestSystem, TestWorkspace};
use graph_sandbox::SeedPhoneNumber;
use pipedrive_sandbox::{PipedriveSandboxConfig, SeedUser};
use reqwest::Method;
use serde_json::{Value, json};
use shared::crm::CrmError;
use shared::model::{Connection, ConnectionKind, CrmKind};

async fn status_of(system: &TestSystem, token: &str) -> Value {
    let (code, body) = system
        .call(Method::GET, "/oauth/pipedrive/status", token, None)
        .await;
    assert_eq!(code, 200, "{body}");
    body
}

async fn connections(system: &TestSystem, workspace: &TestWorkspace) -> Vec<Connection> {
    system
        .local
        .deps
        .store
        .connections(&workspace.id, CrmKind::Pipedrive)
        .await
        .expect("connections")
}

/// Whether Pipedrive still honours the connection's grant (a refresh works).
async fn grant_is_live(system: &TestSystem, connection: &Connection) -> bool {
    let deps = &system.local.deps;
    let refresh = deps
        .secrets
        .keys()
        .await
        .expect("app key")
        .token_cipher()
        .decrypt(&connection.refresh_token_enc, &connection.token_binding())
        .expect("decrypts");
    let oauth = deps.crms.oauth(CrmKind::Pipedrive).await.expect("client");
    match oauth.refresh(&connection.accounts_server, &refresh).await {
        Ok(_) => true,
        Err(CrmError::ConnectionBroken(_)) => false,
        Err(other) => panic!("the sandbox answered something else: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_connects_pipedrive_a_foreign_company_is_refused_and_disconnect_revokes() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("ana@acme.example", "UTC").await;
    system
        .pipedrive
        .set_authorizing_user("ana@acme.example")
        .expect("seeded");

    let (code, body) = system
        .crm_oauth("pipedrive", &workspace.owner_token, "organization")
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Pipedrive is connected"), "{body}");
    let stored = connections(&system, &workspace).await;
    assert_eq!(stored.len(), 2, "the organization's and its maker's");
    let org = stored
        .iter()
        .find(|c| c.kind == ConnectionKind::Organization)
        .expect("organization connection");
    assert_eq!(org.crm_org_id, system.pipedrive.company_id().to_string());
    assert_eq!(org.crm_user_email, "ana@acme.example");
    assert_eq!(org.api_domain, system.pipedrive.base_url());
    let shown = status_of(&system, &workspace.owner_token).await;
    assert_eq!(shown["organization"]["crm_user_email"], "ana@acme.example");
    // Connecting Pipedrive leaves Zoho alone.
    let (code, zoho) = system
        .call(
            Method::GET,
            "/oauth/zoho/status",
            &workspace.owner_token,
            None,
        )
        .await;
    assert_eq!(code, 200, "{zoho}");
    assert!(zoho["organization"].is_null(), "{zoho}");

    // A member signing in with a user of another Pipedrive company.
    let (_, member) = system
        .add_user(&workspace, "greta@globex.example", "member")
        .await;
    system.pipedrive.add_user(SeedUser {
        company_id: Some(7_200_002),
        ..SeedUser::regular("Gus Globex", "gus@globex.example")
    });
    let (code, body) = connect_personally(&system, &member, "gus@globex.example").await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("another Pipedrive organization"), "{body}");
    assert_eq!(connections(&system, &workspace).await.len(), 2);

    // The connection reads Pipedrive's metadata: persons are where chats go.
    let (code, body) = system
        .call(
            Method::GET,
            "/api/settings/pipedrive/modules",
            &workspace.owner_token,
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["modules"][0]["api_name"], "persons", "{body}");

    // The owner disconnects: both connections go, the grant is revoked.
    // (Not refreshed before: Pipedrive rotates the refresh token, so a
    // refresh here would itself retire the stored one.)
    let org = org.clone();
    let (code, body) = system
        .call(
            Method::POST,
            "/oauth/pipedrive/disconnect",
            &workspace.owner_token,
            Some(json!({ "connection": "organization" })),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(connections(&system, &workspace).await.is_empty());
    assert!(!grant_is_live(&system, &org).await, "the grant was revoked");
    assert!(
        system.pipedrive.contract_violations().is_empty(),
        "{:?}",
        system.pipedrive.contract_violations()
    );
}

/// The user of `token` connects personally as the Pipedrive user `email`;
/// the callback's status and body.
async fn connect_personally(system: &TestSystem, token: &str, email: &str) -> (u16, String) {
    system
        .pipedrive
        .set_authorizing_user(email)
        .expect("a sandbox user");
    system.crm_oauth("pipedrive", token, "personal").await
}

/// A `DELETE` on the Pipedrive callback as Pipedrive's uninstall notice is
/// sent, with `credentials` in HTTP Basic (none: no header); its status.
async fn uninstall_notice(
    system: &TestSystem,
    credentials: Option<(&str, &str)>,
    body: &str,
) -> u16 {
    let mut request = system
        .http
        .delete(system.url("/oauth/pipedrive/callback"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some((id, secret)) = credentials {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.expect("notice").status().as_u16()
}

/// The owner connects the organization as the Pipedrive user `org_maker`,
/// the member Bruno personally as Bruno; Bruno's workspace token.
async fn organization_and_bruno(
    system: &TestSystem,
    workspace: &TestWorkspace,
    org_maker: &str,
) -> String {
    system
        .pipedrive
        .set_authorizing_user(org_maker)
        .expect("seeded");
    let (code, body) = system
        .crm_oauth("pipedrive", &workspace.owner_token, "organization")
        .await;
    assert_eq!(code, 200, "{body}");
    let (_, bruno) = system
        .add_user(workspace, "bruno@acme.example", "member")
        .await;
    let (code, body) = connect_personally(system, &bruno, "bruno@acme.example").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(connections(system, workspace).await.len(), 3);
    bruno
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_by_the_organizations_maker_removes_the_organization_and_its_personal_connections()
 {
    let system = TestSystem::start().await;
    let workspace = system.workspace("ana@acme.example", "UTC").await;
    organization_and_bruno(&system, &workspace, "ana@acme.example").await;
    let bruno_connection = connections(&system, &workspace)
        .await
        .into_iter()
        .find(|c| c.crm_user_email == "bruno@acme.example")
        .expect("Bruno's connection");
    let company = system.pipedrive.company_id();
    let app = PipedriveSandboxConfig::default();
    let (id, secret) = (app.client_id.as_str(), app.client_secret.as_str());
    let anas = json!({ "client_id": id, "company_id": company, "user_id": 11_001, "timestamp": "2026-05-04T10:11:12.000Z" }).to_string();

    // Not Pipedrive: wrong or no client credentials.
    for credentials in [
        Some((id, "not-the-secret")),
        Some(("another-app", secret)),
        None,
    ] {
        assert_eq!(uninstall_notice(&system, credentials, &anas).await, 401);
    }
    // Pipedrive, but not a notice.
    assert_eq!(
        uninstall_notice(&system, Some((id, secret)), r#"{"company_id": "x"}"#).await,
        400
    );
    // A user who never connected: nothing to remove.
    let stranger = json!({ "client_id": id, "company_id": company, "user_id": 11_003, "timestamp": "2026-05-04T10:11:12.000Z" }).to_string();
    assert_eq!(
        uninstall_notice(&system, Some((id, secret)), &stranger).await,
        200
    );
    assert_eq!(
        connections(&system, &workspace).await.len(),
        3,
        "nothing removed"
    );
    // Zoho sends no such notice.
    let zoho = system
        .http
        .delete(system.url("/oauth/zoho/callback"))
        .basic_auth(id, Some(secret))
        .body(anas.clone())
        .send()
        .await
        .expect("zoho");
    assert_eq!(zoho.status().as_u16(), 405);

    // Ana uninstalls the app in Pipedrive: the organization goes, and with
    // it her personal connection and Bruno's, whose grant is given back.
    let status = system
        .pipedrive
        .send_uninstall(&system.url("/oauth/pipedrive/callback"), "ana@acme.example")
        .await
        .expect("notice sent");
    assert_eq!(status, 200);
    assert!(connections(&system, &workspace).await.is_empty());
    assert!(
        !grant_is_live(&system, &bruno_connection).await,
        "Bruno's grant was revoked"
    );
    let entry = system
        .log_entry(&workspace.owner_token, "", "crm_app_uninstalled")
        .await;
    assert_eq!(entry["detail"]["crm"], "pipedrive", "{entry}");
    assert_eq!(entry["detail"]["connection"], "organization", "{entry}");
    assert_eq!(entry["detail"]["user_id"], workspace.owner_id, "{entry}");
    assert_eq!(
        entry["detail"]["personal_connections_removed"], 2,
        "{entry}"
    );
    assert_eq!(
        entry["detail"]["grants_revoked"], 1,
        "only Bruno's: Ana's is gone already"
    );
    let shown = status_of(&system, &workspace.owner_token).await;
    assert!(shown["organization"].is_null(), "{shown}");

    // The same notice again: nothing left to remove.
    assert_eq!(
        uninstall_notice(&system, Some((id, secret)), &anas).await,
        200
    );
    assert!(
        system.pipedrive.contract_violations().is_empty(),
        "{:?}",
        system.pipedrive.contract_violations()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_by_a_personally_connected_user_removes_only_their_connections() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("ana@acme.example", "UTC").await;
    let bruno = organization_and_bruno(&system, &workspace, "ana@acme.example").await;
    // Another workspace on the same Pipedrive company, where Bruno is
    // connected too.
    system.graph.seed_phone_number(SeedPhoneNumber::new(
        "170000000000002",
        "+44 7700 900200",
        "Lettings Co",
    ));
    let other = system
        .workspace_with_number(
            "erin@other.example",
            "UTC",
            "170000000000002",
            "447700900200",
        )
        .await;
    organization_and_bruno(&system, &other, "carla@acme.example").await;

    let status = system
        .pipedrive
        .send_uninstall(
            &system.url("/oauth/pipedrive/callback"),
            "bruno@acme.example",
        )
        .await
        .expect("notice sent");
    assert_eq!(status, 200);
    let left = connections(&system, &workspace).await;
    assert_eq!(left.len(), 2, "the organization's and Ana's own: {left:?}");
    assert!(left.iter().all(|c| c.crm_user_email == "ana@acme.example"));
    let left = connections(&system, &other).await;
    assert_eq!(
        left.len(),
        2,
        "the organization's and Carla's own: {left:?}"
    );
    assert!(
        left.iter()
            .all(|c| c.crm_user_email == "carla@acme.example")
    );
    let shown = status_of(&system, &bruno).await;
    assert!(shown["personal"].is_null(), "{shown}");
    assert!(!shown["organization"].is_null(), "{shown}");
    let entry = system
        .log_entry(&workspace.owner_token, "", "crm_app_uninstalled")
        .await;
    assert_eq!(entry["detail"]["connection"], "personal", "{entry}");
    assert_eq!(
        entry["detail"]["personal_connections_removed"], 1,
        "{entry}"
    );
    assert_eq!(entry["detail"]["grants_revoked"], 0, "{entry}");
    let entry = system
        .log_entry(&other.owner_token, "", "crm_app_uninstalled")
        .await;
    assert_eq!(entry["detail"]["connection"], "personal", "{entry}");
}
