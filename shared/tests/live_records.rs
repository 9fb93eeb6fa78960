//! What live chat reads of a record with the user's own token, against the
//! Zoho and Pipedrive sandboxes: every phone field (`record_phones`) and the
//! field values templates are prefilled from (`record_fields`); a record
//! the user may not see, an unknown id or a module the CRM lacks reads as
//! nothing (`None`), never as an error.

use std::sync::Arc;

use pipedrive_sandbox::{PipedriveSandbox, PipedriveSandboxConfig};
use serde_json::json;
use shared::adapters::pipedrive::PipedriveApi;
use shared::adapters::zoho::ZohoApi;
use shared::crm::{Crm, FollowUpKind, NewFollowUp};
use shared::model::{CrmKind, RecordRef};
use shared::tokens::FreshToken;
use zoho_sandbox::{SandboxConfig, SandboxHandle, ZohoSandbox};

fn zoho(sb: &SandboxHandle, email: &str) -> ZohoApi {
    let issued = sb.issue_tokens(email).expect("tokens");
    ZohoApi::new(
        reqwest::Client::new(),
        &sb.base_url(),
        Arc::new(FreshToken(issued.access_token)),
    )
}

fn record(crm: CrmKind, module: &str, id: impl ToString) -> RecordRef {
    RecordRef {
        crm,
        module: module.into(),
        id: id.to_string(),
    }
}

#[tokio::test]
async fn a_zoho_record_shows_every_phone_field_and_its_fields_to_whoever_may_see_it() {
    let sb = ZohoSandbox::start(SandboxConfig::default())
        .await
        .expect("the Zoho sandbox starts");
    let lead = sb
        .insert_record(
            "Leads",
            json!({
                "First_Name": "Maria", "Last_Name": "Souza", "Company": "Casa Souza",
                "Email": "maria@casa.example", "Mobile": "+447700900123",
                "Phone": "+44 20 7946 0123",
            }),
        )
        .expect("a lead");
    let ana = zoho(&sb, "ana@acme.example");
    let lead_ref = record(CrmKind::Zoho, "Leads", &lead);

    let mut phones = ana
        .record_phones(&lead_ref)
        .await
        .expect("read")
        .expect("visible");
    phones.sort();
    assert_eq!(phones, ["+44 20 7946 0123", "+447700900123"]);
    let fields = ana
        .record_fields(&lead_ref)
        .await
        .expect("read")
        .expect("visible");
    assert_eq!(fields["First_Name"], "Maria");
    assert_eq!(fields["Full_Name"], "Maria Souza");
    assert_eq!(fields["Company"], "Casa Souza");
    assert_eq!(fields["Email"], "maria@casa.example");
    assert_eq!(fields["Owner"], "Ana Souza", "a lookup reads as its name");
    assert!(
        !fields.contains_key("Description"),
        "empty values are left out"
    );

    // An unknown id, a module the org lacks: nothing, for both reads.
    for hidden in [
        record(CrmKind::Zoho, "Leads", "5725767000009999999"),
        record(CrmKind::Zoho, "Spaceships", &lead),
    ] {
        assert_eq!(ana.record_phones(&hidden).await.expect("read"), None);
        assert_eq!(ana.record_fields(&hidden).await.expect("read"), None);
    }

    // A private sharing rule: Bruno (Standard) may not see Ana's lead.
    sb.restrict_to_owners("Leads");
    let bruno = zoho(&sb, "bruno@acme.example");
    assert_eq!(bruno.record_phones(&lead_ref).await.expect("read"), None);
    assert_eq!(bruno.record_fields(&lead_ref).await.expect("read"), None);
    // A module without phone fields still answers whether the record is
    // visible: no numbers for a visible one, nothing for an unknown one.
    let deal = sb
        .insert_record(
            "Deals",
            json!({"Deal_Name": "Sofa", "Stage": "Qualification"}),
        )
        .expect("a deal");
    assert_eq!(
        ana.record_phones(&record(CrmKind::Zoho, "Deals", &deal))
            .await
            .expect("read"),
        Some(Vec::new())
    );
    assert_eq!(
        ana.record_phones(&record(CrmKind::Zoho, "Deals", "5725767000009999999"))
            .await
            .expect("read"),
        None
    );
    assert_eq!(sb.contract_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_pipedrive_person_deal_and_lead_show_their_persons_fields_and_organization() {
    let sb = PipedriveSandbox::start(PipedriveSandboxConfig::default())
        .await
        .expect("the Pipedrive sandbox starts");
    let (org_id, org_name) = sb.organization().expect("a seeded organization");
    let person = sb
        .insert_person(json!({
            "name": "Maria Souza", "org_id": org_id,
            "emails": [{"value": "old@casa.example", "primary": false},
                       {"value": "maria@casa.example", "primary": true}],
            "phones": [{"value": "+447700900123", "primary": true}],
        }))
        .expect("a person");
    let issued = sb.issue_tokens("ana@acme.example").expect("tokens");
    let api = PipedriveApi::new(
        reqwest::Client::new(),
        &sb.base_url(),
        Arc::new(FreshToken(issued.access_token)),
    );
    let person_ref = record(CrmKind::Pipedrive, "persons", person);
    let fields = api
        .record_fields(&person_ref)
        .await
        .expect("read")
        .expect("visible");
    assert_eq!(fields["name"], "Maria Souza");
    assert_eq!(fields["first_name"], "Maria");
    assert_eq!(fields["last_name"], "Souza");
    assert_eq!(fields["email"], "maria@casa.example", "the primary one");
    assert_eq!(fields["phone"], "+447700900123");
    assert_eq!(fields["org_name"], org_name.as_str());
    assert!(!fields.contains_key("title"), "a person has no title");

    let lead = api
        .create_follow_up(&NewFollowUp {
            kind: FollowUpKind::Lead { label_id: None },
            title: "WhatsApp: Maria".into(),
            person: person_ref.clone(),
            owner_id: None,
        })
        .await
        .expect("a lead");
    let fields = api
        .record_fields(&lead)
        .await
        .expect("read")
        .expect("visible");
    assert_eq!(fields["title"], "WhatsApp: Maria");
    assert_eq!(fields["first_name"], "Maria", "its person's");
    assert_eq!(fields["org_name"], org_name.as_str(), "its person's");
    assert_eq!(
        api.record_phones(&lead).await.expect("read"),
        Some(vec!["+447700900123".to_owned()])
    );

    let gone = record(CrmKind::Pipedrive, "persons", 987_654);
    assert_eq!(api.record_fields(&gone).await.expect("read"), None);
    assert_eq!(api.record_phones(&gone).await.expect("read"), None);
    assert_eq!(sb.contract_violations(), Vec::<String>::new());
}
