//! Deleting a workspace, end to end: it stops accepting work at once, its
//! CRM grants are revoked at Zoho (again and again while Zoho cannot), and
//! a job leaves nothing of it in the table — while another workspace keeps
//! everything it has.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::{ALICE_WA_ID, PHONE_NUMBER_ID, TestSystem, TestWorkspace, messages_delivery};
use graph_sandbox::SeedPhoneNumber;
use reqwest::Method;
use serde_json::{Value, json};
use shared::crm::CrmError;
use shared::model::{CrmKind, MessageState, StoredMessage};
use shared::whatsapp::Direction;

const MAY_20_0915: i64 = 1_779_268_500;
const SECOND_NUMBER_ID: &str = "170000000000002";
const SECOND_NUMBER: &str = "447700900200";
const BOB_WA_ID: &str = "447700900456";
/// The Zoho user the sandbox authorizes unless told otherwise.
const DEFAULT_ZOHO_USER: &str = "ana@acme.example";

type Item = HashMap<String, AttributeValue>;

/// A system whose deletions check for leftovers 2 s after they begin
/// (deployed: a minute, longer than any function runs).
async fn system() -> TestSystem {
    TestSystem::start_with_env(&[("WORKSPACE_DELETION_SETTLE_SECS", "2")]).await
}

async fn delete(system: &TestSystem, token: &str, body: Option<Value>) -> (u16, Value) {
    system
        .call(Method::DELETE, "/api/workspace", token, body)
        .await
}

/// The owner deletes the workspace, confirming its id; the answer.
async fn owner_deletes(system: &TestSystem, workspace: &TestWorkspace) -> Value {
    let confirmation = json!({ "confirm_workspace_id": workspace.id });
    let (status, body) = delete(system, &workspace.owner_token, Some(confirmation)).await;
    assert_eq!(status, 202, "{body}");
    body
}

/// A grant, as Zoho knows it: the accounts server and the refresh token.
type Grant = (String, String);

/// The workspace's own grants (a personal connection made with the
/// organization's holds the organization's grant).
async fn grants_of(system: &TestSystem, workspace: &TestWorkspace) -> Vec<Grant> {
    let deps = &system.local.deps;
    let cipher = deps.secrets.keys().await.expect("app key").token_cipher();
    deps.store
        .connections(&workspace.id, CrmKind::Zoho)
        .await
        .expect("connections")
        .into_iter()
        .filter(|c| !c.shares_organization_grant)
        .map(|c| {
            let refresh = cipher
                .decrypt(&c.refresh_token_enc, &c.token_binding())
                .expect("decrypts");
            (c.accounts_server, refresh)
        })
        .collect()
}

/// Whether Zoho still honours the grant (a refresh works).
async fn grant_is_live(system: &TestSystem, (server, refresh): &Grant) -> bool {
    let oauth = system
        .local
        .deps
        .crms
        .oauth(CrmKind::Zoho)
        .await
        .expect("client");
    match oauth.refresh(server, refresh).await {
        Ok(_) => true,
        Err(CrmError::ConnectionBroken(_)) => false,
        Err(other) => panic!("the sandbox answered something else: {other}"),
    }
}

fn key(item: &Item) -> (String, String) {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    (text("pk"), text("sk"))
}

/// The workspace's items, in key order.
async fn snapshot(system: &TestSystem, workspace: &TestWorkspace) -> Vec<Item> {
    let mut items = system.items_of_workspace(&workspace.id).await;
    items.sort_by_key(key);
    items
}

/// Waits until nothing of the workspace is left in the table.
async fn wait_until_gone(system: &TestSystem, workspace: &TestWorkspace) {
    system
        .eventually("nothing of the deleted workspace left", || async {
            let left = system.items_of_workspace(&workspace.id).await;
            if left.is_empty() {
                return Ok(());
            }
            let mut kinds: Vec<String> = left
                .iter()
                .map(|item| {
                    let (pk, sk) = key(item);
                    format!(
                        "{}/{}",
                        pk.split('#').next().unwrap_or(""),
                        sk.split('#').next().unwrap_or("")
                    )
                })
                .collect();
            kinds.sort();
            kinds.dedup();
            Err(format!("{} items left: {kinds:?}", left.len()))
        })
        .await;
}

/// Messages of the workspace stored straight in the table (appended long
/// ago), so that it has more items than one page of its deletion removes.
async fn store_old_messages(system: &TestSystem, workspace: &TestWorkspace, count: usize) {
    let store = &system.local.deps.store;
    for i in 0..count {
        let message = StoredMessage {
            workspace_id: workspace.id.clone(),
            message_id: format!("wamid.OLD{i:04}"),
            chat_key: format!("{PHONE_NUMBER_ID}#{ALICE_WA_ID}"),
            direction: Direction::Inbound,
            timestamp: MAY_20_0915 - 86_400 + i as i64,
            kind: "text".into(),
            text: format!("an old message {i}"),
            media: None,
            contact_name: Some("Alice".into()),
            state: MessageState::Received,
            received_at: MAY_20_0915,
            attachment: None,
            attachment_started_at: None,
            sent_by: None,
            delivery: None,
            reply_to: None,
            reaction_to: None,
        };
        store.insert_message(&message).await.expect("stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_workspace_revokes_its_grants_and_leaves_nothing_of_it() {
    let system = system().await;
    // The workspace to delete: an organization connection (and its maker's
    // personal one on the same grant), a member connected personally on a
    // grant of her own, an admin with an OAuth flow begun and never
    // finished, two chats with their notes, and more items than one page.
    let doomed = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&doomed).await;
    let (_, admin) = system.add_user(&doomed, "dora@acme.example", "admin").await;
    let (_, member) = system
        .personally_connected_member(&doomed, "carla@acme.example")
        .await;
    system
        .oauth_callback_url(&admin, "personal")
        .await
        .expect("a flow begun");
    system
        .post_webhook(&messages_delivery(
            ALICE_WA_ID,
            "Alice",
            &[("wamid.A1", MAY_20_0915, "The boiler is leaking")],
        ))
        .await;
    system
        .post_webhook(&messages_delivery(
            BOB_WA_ID,
            "Bob",
            &[("wamid.B1", MAY_20_0915 + 60, "Is the flat still free?")],
        ))
        .await;
    system.wait_for_message_state("wamid.A1", "appended").await;
    system.wait_for_message_state("wamid.B1", "appended").await;
    store_old_messages(&system, &doomed, 250).await;
    let grants = grants_of(&system, &doomed).await;
    assert_eq!(grants.len(), 2, "the organization's and the member's");
    for grant in &grants {
        assert!(grant_is_live(&system, grant).await);
    }
    let before = system.items_of_workspace(&doomed.id).await;
    for kind in [
        "WORKSPACE",
        "USER#",
        "WANUMBER#",
        "CONN#",
        "CHAT#",
        "CONTACT#",
        "MSG#",
        "NOTE#",
        "LOG#",
        "SETTINGS#",
        "OAUTHSTATE#",
    ] {
        assert!(
            before.iter().any(|item| key(item).1.starts_with(kind)),
            "the workspace has {kind} items before"
        );
    }
    assert!(
        before.len() > 2 * shared::deletion::PAGE_SIZE,
        "more items than two pages of the deletion remove: {}",
        before.len()
    );

    // Another workspace, with a number, a connection and a chat of its own.
    let its_number = SeedPhoneNumber::new(SECOND_NUMBER_ID, "+44 7700 900200", "Lettings Co");
    system.graph.seed_phone_number(its_number);
    let other = system
        .workspace_with_number("erin@other.example", "UTC", SECOND_NUMBER_ID, SECOND_NUMBER)
        .await;
    system
        .sandbox
        .set_authorizing_user(DEFAULT_ZOHO_USER)
        .expect("seeded user");
    system.connect_zoho(&other).await;
    system
        .post_webhook(&e2e::messages_delivery_to(
            SECOND_NUMBER_ID,
            SECOND_NUMBER,
            "447700900789",
            "Zed",
            &[("wamid.OTHER1", MAY_20_0915, "Hello from elsewhere")],
        ))
        .await;
    system
        .wait_for_message_state("wamid.OTHER1", "appended")
        .await;
    let other_grants = grants_of(&system, &other).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let others_before = snapshot(&system, &other).await;

    // Only the owner deletes, and only naming the workspace.
    let (status, body) = delete(
        &system,
        &admin,
        Some(json!({ "confirm_workspace_id": doomed.id })),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    for confirmation in [json!({}), json!({ "confirm_workspace_id": other.id })] {
        let (status, body) = delete(&system, &doomed.owner_token, Some(confirmation)).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("confirm_workspace_id")),
            "{body}"
        );
    }
    let body = owner_deletes(&system, &doomed).await;
    assert_eq!(body["workspace_id"], doomed.id);

    // At once: no token of it works, deliveries for its number are
    // acknowledged and dropped.
    for token in [&doomed.owner_token, &admin, &member] {
        let (status, body) = system.call(Method::GET, "/api/me", token, None).await;
        assert_eq!(status, 401, "{body}");
    }
    let delivery = system
        .post_webhook(&messages_delivery(
            ALICE_WA_ID,
            "Alice",
            &[("wamid.LATE1", MAY_20_0915 + 120, "Hello?")],
        ))
        .await;
    assert_eq!(delivery.status(), 200);
    let answer: Value = delivery.json().await.expect("json");
    assert_eq!(answer["queued"], 0, "{answer}");

    wait_until_gone(&system, &doomed).await;
    assert_eq!(system.message_state("wamid.LATE1").await, None);
    for grant in &grants {
        assert!(
            !grant_is_live(&system, grant).await,
            "the grant is revoked at Zoho"
        );
    }

    // The other workspace has everything it had, and its grant still works.
    assert_eq!(snapshot(&system, &other).await, others_before);
    for grant in &other_grants {
        assert!(grant_is_live(&system, grant).await);
    }
    let (status, _) = system
        .call(Method::GET, "/api/me", &other.owner_token, None)
        .await;
    assert_eq!(status, 200);
    // The deleted workspace's number is free again.
    let (status, body) = system
        .call(
            Method::POST,
            "/api/whatsapp-numbers",
            &other.owner_token,
            Some(json!({
                "phone_number_id": PHONE_NUMBER_ID,
                "display_phone_number": e2e::BUSINESS_NUMBER,
                "access_token": graph_sandbox::DEFAULT_ACCESS_TOKEN,
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_zoho_cannot_revoke_during_an_outage_are_revoked_once_it_is_over() {
    let system = system().await;
    let doomed = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&doomed).await;
    let (member_id, _) = system
        .personally_connected_member(&doomed, "carla@acme.example")
        .await;
    let grants = grants_of(&system, &doomed).await;
    assert_eq!(grants.len(), 2);

    system.sandbox.set_revocation_outage(true);
    owner_deletes(&system, &doomed).await;

    // Everything goes but the connections that hold the grants still to be
    // revoked, and the workspace item; the revocations are tried again.
    let failed_revocations = || {
        system
            .sandbox
            .requests()
            .iter()
            .filter(|r| r.path == "/oauth/v2/token/revoke" && r.status == 503)
            .count()
    };
    let kept = vec![
        "CONN#zoho#ORG".to_owned(),
        format!("CONN#zoho#USER#{member_id}"),
        "WORKSPACE".to_owned(),
    ];
    system
        .eventually(
            "only the unrevoked connections left, tried again",
            || async {
                let left: Vec<String> = snapshot(&system, &doomed)
                    .await
                    .iter()
                    .map(|item| key(item).1)
                    .collect();
                let tries = failed_revocations();
                if left == kept && tries >= 4 {
                    Ok(())
                } else {
                    Err(format!("left {left:?} after {tries} failed revocations"))
                }
            },
        )
        .await;
    for grant in &grants {
        assert!(grant_is_live(&system, grant).await, "not revoked yet");
    }

    system.sandbox.set_revocation_outage(false);
    wait_until_gone(&system, &doomed).await;
    for grant in &grants {
        assert!(!grant_is_live(&system, grant).await, "revoked at last");
    }
}
