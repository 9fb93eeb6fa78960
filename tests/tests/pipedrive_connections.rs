//! Pipedrive connections through the same rules as Zoho's, end to end
//! against the Pipedrive sandbox: OAuth with Basic client credentials,
//! identity from `users/me`, another company refused and its grant given
//! back, disconnect revoking. Syncing to Pipedrive is not there yet (501).

use e2e::{TestSystem, TestWorkspace};
use pipedrive_sandbox::SeedUser;
use reqwest::Method;
use serde_json::{Value, json};
use shared::crm::CrmError;
use shared::model::{Connection, ConnectionKind, CrmKind};

async fn status(system: &TestSystem, token: &str) -> Value {
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
    let shown = status(&system, &workspace.owner_token).await;
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
    system
        .pipedrive
        .set_authorizing_user("gus@globex.example")
        .expect("added");
    let (code, body) = system.crm_oauth("pipedrive", &member, "personal").await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("another Pipedrive organization"), "{body}");
    assert_eq!(connections(&system, &workspace).await.len(), 2);

    // Syncing to Pipedrive is not available yet, and says so.
    let (code, body) = system
        .call(
            Method::GET,
            "/api/settings/pipedrive/modules",
            &workspace.owner_token,
            None,
        )
        .await;
    assert_eq!(code, 501, "{body}");

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
