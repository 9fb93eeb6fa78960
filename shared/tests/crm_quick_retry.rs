//! A CRM call that fails in a way that did nothing (429, 503), or a call
//! that may be repeated failing with any 5xx, is tried once more within the
//! invocation, so one failed answer does not cost the message a whole
//! queue attempt; a create's 500 is left to the queue, whose retry finds
//! what a lost answer made. Against both CRM sandboxes.

use std::sync::Arc;

use pipedrive_sandbox::{PipedriveSandbox, PipedriveSandboxConfig};
use serde_json::json;
use shared::adapters::pipedrive::PipedriveApi;
use shared::adapters::zoho::ZohoApi;
use shared::crm::{Crm, CrmError};
use shared::model::{CrmKind, RecordRef};
use shared::tokens::FreshToken;
use zoho_sandbox::{SandboxConfig, ZohoSandbox};

#[tokio::test]
async fn zoho_calls_are_tried_once_more_after_a_refusal_or_a_repeatable_failure() {
    let sb = ZohoSandbox::start(SandboxConfig::default())
        .await
        .expect("the Zoho sandbox starts");
    let issued = sb.issue_tokens("ana@acme.example").expect("tokens");
    let api = ZohoApi::new(
        reqwest::Client::new(),
        &sb.base_url(),
        Arc::new(FreshToken(issued.access_token)),
    );
    let statuses = |sb: &zoho_sandbox::SandboxHandle| -> Vec<u16> {
        sb.requests()
            .iter()
            .filter(|r| r.path.starts_with("/crm/"))
            .map(|r| r.status)
            .collect()
    };
    for (status, code) in [
        (429, "TOO_MANY_REQUESTS"),
        (503, "INTERNAL_ERROR"),
        (500, "INTERNAL_ERROR"),
    ] {
        sb.clear_requests();
        sb.fail_next(1, status, code);
        api.identify().await.expect("the second try answers");
        assert_eq!(
            statuses(&sb),
            [status, 200, 200],
            "users (failed, again), org"
        );
    }

    let id = sb
        .insert_record("Leads", json!({"Last_Name": "Maria Souza"}))
        .expect("lead");
    let lead = RecordRef {
        crm: CrmKind::Zoho,
        module: "Leads".into(),
        id,
    };
    sb.clear_requests();
    sb.fail_next(1, 500, "INTERNAL_ERROR");
    let err = api
        .create_note(&lead, None, "WhatsApp Chat", "09:15 hi")
        .await
        .expect_err("a create's 500 is not repeated here");
    assert!(
        matches!(err, CrmError::Unavailable(500)) && err.is_transient(),
        "{err:?}"
    );
    assert_eq!(statuses(&sb), [500], "tried once");
    assert!(sb.notes().is_empty());
    assert_eq!(sb.contract_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn pipedrive_calls_are_tried_once_more_after_a_503() {
    let sb = PipedriveSandbox::start(PipedriveSandboxConfig::default())
        .await
        .expect("the Pipedrive sandbox starts");
    let issued = sb.issue_tokens("ana@acme.example").expect("tokens");
    let api = PipedriveApi::new(
        reqwest::Client::new(),
        &sb.base_url(),
        Arc::new(FreshToken(issued.access_token)),
    );
    sb.fail_next(1, 503);
    api.lead_labels().await.expect("the second try answers");
    let statuses: Vec<u16> = sb.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 200]);
    assert_eq!(sb.contract_violations(), Vec::<String>::new());
}
