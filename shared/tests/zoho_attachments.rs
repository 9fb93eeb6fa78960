//! Zoho attachment uploads against the Zoho sandbox.

mod common;
use common::StaleThenFresh;
use std::sync::Arc;

use serde_json::{Value, json};
use shared::adapters::zoho::ZohoApi;
use shared::adapters::zoho::attachments::ZOHO_ATTACHMENT_MAX_BYTES;
use shared::crm::{Crm, CrmError};
use shared::model::CrmKind;
use shared::model::RecordRef;
use shared::tokens::{AccessTokens, FreshToken};
use zoho_sandbox::{SandboxConfig, SandboxHandle, ZohoSandbox};

const USER: &str = "ana@acme.example";
/// The sandbox's Attachments limit in these tests: small, so the oversized
/// case needs no large buffer.
const SANDBOX_LIMIT: usize = 64 * 1024;

async fn sandbox() -> SandboxHandle {
    ZohoSandbox::start(SandboxConfig {
        attachment_max_bytes: SANDBOX_LIMIT,
        ..SandboxConfig::default()
    })
    .await
    .expect("the Zoho sandbox starts")
}

fn api(sb: &SandboxHandle, tokens: Arc<dyn AccessTokens>) -> ZohoApi {
    ZohoApi::new(reqwest::Client::new(), &sb.base_url(), tokens)
}

fn api_as_user(sb: &SandboxHandle) -> ZohoApi {
    let issued = sb.issue_tokens(USER).expect("tokens");
    api(sb, Arc::new(FreshToken(issued.access_token)))
}

fn lead(sb: &SandboxHandle) -> RecordRef {
    let id = sb
        .insert_record("Leads", json!({"Last_Name": "Maria Souza"}))
        .expect("lead");
    RecordRef {
        crm: CrmKind::Zoho,
        module: "Leads".into(),
        id,
    }
}

fn attachment(sb: &SandboxHandle, id: &str) -> Value {
    sb.attachments()
        .into_iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("attachment {id} is listed"))
}

fn attachment_requests(sb: &SandboxHandle) -> usize {
    sb.requests()
        .iter()
        .filter(|r| r.path.ends_with("/Attachments"))
        .count()
}

#[tokio::test]
async fn uploads_a_file_to_a_record() {
    let sb = sandbox().await;
    let api = api_as_user(&sb);
    let parent = lead(&sb);
    let bytes: Vec<u8> = (0..5000u32).map(|i| (i % 256) as u8).collect();

    let id = api
        .upload_attachment(&parent, "image-1001.jpg", "image/jpeg", bytes)
        .await
        .expect("uploaded");

    let listed = attachment(&sb, &id);
    assert_eq!(listed["File_Name"], "image-1001.jpg");
    assert_eq!(listed["Size"], "5000");
    assert_eq!(listed["Parent_Id"]["id"], parent.id.as_str());
    assert_eq!(listed["Parent_Id"]["module"]["api_name"], "Leads");
    assert_eq!(sb.contract_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn uploads_to_a_note_with_unicode_name_and_mime_parameters() {
    let sb = sandbox().await;
    let api = api_as_user(&sb);
    let parent = lead(&sb);
    let note_id = api
        .create_note(
            &parent,
            None,
            "WhatsApp 2026-03-01",
            "10:02 Maria: [voice note]",
        )
        .await
        .expect("note");
    let note = RecordRef {
        crm: CrmKind::Zoho,
        module: "Notes".into(),
        id: note_id.clone(),
    };

    let id = api
        .upload_attachment(
            &note,
            "Orçamento março.ogg",
            "audio/ogg; codecs=opus",
            vec![1; 300],
        )
        .await
        .expect("uploaded");

    let listed = attachment(&sb, &id);
    assert_eq!(listed["File_Name"], "Orçamento março.ogg");
    assert_eq!(listed["Size"], "300");
    assert_eq!(listed["Parent_Id"]["id"], note_id.as_str());
    assert_eq!(listed["Parent_Id"]["module"]["api_name"], "Notes");
    assert_eq!(sb.contract_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_mime_type_that_does_not_parse_is_sent_as_octet_stream() {
    let sb = sandbox().await;
    let api = api_as_user(&sb);
    let id = api
        .upload_attachment(&lead(&sb), "x.bin", "not a mime type", vec![7; 10])
        .await
        .expect("uploaded");
    assert_eq!(attachment(&sb, &id)["Size"], "10");
}

#[tokio::test]
async fn a_file_zoho_finds_too_large_is_rejected() {
    let sb = sandbox().await;
    let api = api_as_user(&sb);
    let err = api
        .upload_attachment(
            &lead(&sb),
            "video-1.mp4",
            "video/mp4",
            vec![0; SANDBOX_LIMIT + 1],
        )
        .await
        .expect_err("too large for Zoho");
    match &err {
        CrmError::Rejected {
            status,
            code,
            field,
            ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(code, "INVALID_DATA");
            assert_eq!(field.as_deref(), Some("file"));
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert!(sb.attachments().is_empty());
    assert_eq!(sb.contract_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_file_over_zohos_documented_limit_is_not_sent() {
    let sb = sandbox().await;
    let api = api_as_user(&sb);
    let too_big = usize::try_from(ZOHO_ATTACHMENT_MAX_BYTES + 1).expect("fits in memory");
    let err = api
        .upload_attachment(
            &lead(&sb),
            "document-1.pdf",
            "application/pdf",
            vec![0; too_big],
        )
        .await
        .expect_err("over the limit");
    assert!(
        matches!(&err, CrmError::Rejected { status: 413, code, .. } if code == "FILE_TOO_LARGE"),
        "{err:?}"
    );
    assert_eq!(attachment_requests(&sb), 0);
}

#[tokio::test]
async fn an_unknown_parent_is_rejected() {
    let sb = sandbox().await;
    let api = api_as_user(&sb);
    let missing = RecordRef {
        crm: CrmKind::Zoho,
        module: "Leads".into(),
        id: "5725767000009999999".into(),
    };
    let err = api
        .upload_attachment(&missing, "a.txt", "text/plain", b"hi".to_vec())
        .await
        .expect_err("no such record");
    assert!(
        matches!(err, CrmError::Rejected { status: 400, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_form_is_rebuilt_when_the_upload_is_retried_after_a_refresh() {
    let sb = sandbox().await;
    let stale = sb.issue_tokens(USER).expect("tokens").access_token;
    sb.expire_access_tokens();
    let fresh = sb.issue_tokens(USER).expect("tokens").access_token;
    let api = api(&sb, Arc::new(StaleThenFresh { stale, fresh }));

    let id = api
        .upload_attachment(&lead(&sb), "image-7.png", "image/png", vec![9; 1234])
        .await
        .expect("uploaded on the second attempt");

    let statuses: Vec<u16> = sb
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/Attachments"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![401, 200]);
    // The second attempt carried the whole file, not an emptied body.
    assert_eq!(attachment(&sb, &id)["Size"], "1234");
    assert_eq!(sb.contract_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn outages_stay_transient() {
    let sb = sandbox().await;
    let api = api_as_user(&sb);
    let parent = lead(&sb);
    // Down for the call and its one quick retry.
    sb.fail_next(2, 503, "INTERNAL_ERROR");
    let err = api
        .upload_attachment(&parent, "a.txt", "text/plain", b"hi".to_vec())
        .await
        .expect_err("down");
    assert!(err.is_transient(), "{err:?}");
}
