//! Pipedrive's CRM API client against the Pipedrive sandbox: every request
//! and answer is checked against Pipedrive's OpenAPI files, and the tokens
//! the client counts are the ones the sandbox charged.

mod common;
use common::StaleThenFresh;
use std::sync::Arc;
use std::time::Duration;

use pipedrive_sandbox::{PipedriveSandbox, PipedriveSandboxConfig, PipedriveSandboxHandle};
use serde_json::{Map, Value, json};
use shared::adapters::pipedrive::PipedriveApi;
use shared::crm::{Conversion, Crm, CrmError, FollowUpKind, NewFollowUp, NewRecord, NoteDraft};
use shared::model::{CrmKind, RecordRef};
use shared::phone::E164;
use shared::tokens::{AccessTokens, FreshToken};

const USER: &str = "ana@acme.example";

async fn sandbox_with(config: PipedriveSandboxConfig) -> PipedriveSandboxHandle {
    PipedriveSandbox::start(config)
        .await
        .expect("the Pipedrive sandbox starts")
}

async fn sandbox() -> PipedriveSandboxHandle {
    sandbox_with(PipedriveSandboxConfig::default()).await
}

fn api_with(sb: &PipedriveSandboxHandle, tokens: Arc<dyn AccessTokens>) -> PipedriveApi {
    PipedriveApi::new(reqwest::Client::new(), &sb.base_url(), tokens)
}

fn api(sb: &PipedriveSandboxHandle) -> PipedriveApi {
    let issued = sb.issue_tokens(USER).expect("tokens");
    api_with(sb, Arc::new(FreshToken(issued.access_token)))
}

fn rec(module: &str, id: impl ToString) -> RecordRef {
    RecordRef {
        crm: CrmKind::Pipedrive,
        module: module.into(),
        id: id.to_string(),
    }
}

fn number(wa_id: &str) -> E164 {
    E164::from_wa_id(wa_id).expect("a number")
}

fn person_with_phone(sb: &PipedriveSandboxHandle, name: &str, phone: &str) -> RecordRef {
    let id = sb
        .insert_person(json!({ "name": name, "phones": [{ "value": phone, "primary": true, "label": "mobile" }] }))
        .expect("person");
    rec("persons", id)
}

/// A lead for `person` without label or owner.
async fn lead_for(api: &PipedriveApi, person: &RecordRef, title: &str) -> RecordRef {
    api.create_follow_up(&NewFollowUp {
        kind: FollowUpKind::Lead { label_id: None },
        title: title.into(),
        person: person.clone(),
        owner_id: None,
    })
    .await
    .expect("a lead")
}

/// What every test ends with: no contract violation, and the client's
/// token count is the sandbox's.
fn assert_clean(sb: &PipedriveSandboxHandle, api: &PipedriveApi) {
    assert_eq!(sb.contract_violations(), Vec::<String>::new());
    assert_eq!(api.tokens_spent(), sb.tokens_used());
}

/// Whether a sandbox object has the numeric id `id`.
fn has_id(object: &Value, id: &str) -> bool {
    object["id"].as_u64().is_some_and(|n| id.parse() == Ok(n))
}

fn requests_to(
    sb: &PipedriveSandboxHandle,
    method: &str,
    path: &str,
) -> Vec<pipedrive_sandbox::RecordedRequest> {
    sb.requests()
        .into_iter()
        .filter(|r| r.method == method && r.path == path)
        .collect()
}

#[tokio::test]
async fn a_brazilian_mobile_stored_with_the_ninth_digit_is_found_from_a_wa_id_without_it() {
    let sb = sandbox().await;
    let api = api(&sb);
    let stored = person_with_phone(&sb, "Maria Souza", "+5511987654321");

    let found = api
        .find_by_phone("persons", "phone", &number("551187654321"))
        .await
        .expect("searched");

    assert_eq!(found.len(), 1);
    assert_eq!(found[0].record, stored);
    assert_eq!(found[0].phones, vec!["+5511987654321".to_owned()]);
    assert_eq!(found[0].modified_time, None, "one hit needs no read");
    let searches = requests_to(&sb, "GET", "/api/v2/persons/search");
    assert_eq!(searches.len(), 2, "the wa_id's form, then the equivalent");
    assert!(
        searches[0].query.contains("term=%2B551187654321"),
        "{}",
        searches[0].query
    );
    assert!(searches[1].query.contains("term=%2B5511987654321"));
    assert!(
        searches
            .iter()
            .all(|r| r.query.contains("fields=phone") && r.query.contains("exact_match=true"))
    );
    assert_eq!(sb.tokens_used(), 40);

    // The number as stored is found at the first form.
    sb.clear_requests();
    let direct = api
        .find_by_phone("persons", "phone", &number("5511987654321"))
        .await
        .expect("searched");
    assert_eq!(direct.len(), 1);
    assert_eq!(requests_to(&sb, "GET", "/api/v2/persons/search").len(), 1);

    let none = api
        .find_by_phone("persons", "phone", &number("447700900999"))
        .await
        .expect("searched");
    assert!(none.is_empty());
    assert_clean(&sb, &api);
}

#[tokio::test]
async fn several_persons_with_the_number_come_with_their_update_times() {
    let sb = sandbox().await;
    let api = api(&sb);
    let first = person_with_phone(&sb, "Ana Silva", "+351912345678");
    let second = person_with_phone(&sb, "Ana S.", "+351912345678");
    person_with_phone(&sb, "Someone Else", "+351912000000");

    let mut found = api
        .find_by_phone("persons", "phone", &number("351912345678"))
        .await
        .expect("searched");
    found.sort_by(|a, b| a.record.id.cmp(&b.record.id));

    assert_eq!(
        found.iter().map(|f| f.record.clone()).collect::<Vec<_>>(),
        vec![first, second]
    );
    for f in &found {
        assert_eq!(f.phones, vec!["+351912345678".to_owned()]);
        assert!(
            f.modified_time.as_deref().is_some_and(|t| t.ends_with('Z')),
            "{f:?}"
        );
    }
    assert_eq!(
        sb.requests()
            .iter()
            .filter(|r| r.path.starts_with("/api/v2/persons/") && r.path != "/api/v2/persons/search")
            .count(),
        2
    );
    assert_clean(&sb, &api);
}

#[tokio::test]
async fn a_custom_phone_field_is_searched_and_its_value_read() {
    let sb = sandbox().await;
    let api = api(&sb);
    let key = sb
        .field_key("person", "WhatsApp number")
        .expect("seeded field");
    let id = sb
        .insert_person(
            json!({ "name": "Rui Costa", "custom_fields": { key.clone(): "+447700900123" } }),
        )
        .expect("person");

    let found = api
        .find_by_phone("persons", &key, &number("447700900123"))
        .await
        .expect("searched");

    assert_eq!(found.len(), 1);
    assert_eq!(found[0].record, rec("persons", id));
    assert_eq!(found[0].phones, vec!["+447700900123".to_owned()]);
    let search = &requests_to(&sb, "GET", "/api/v2/persons/search")[0];
    assert!(
        search.query.contains("fields=custom_fields"),
        "{}",
        search.query
    );
    assert_clean(&sb, &api);
}

#[tokio::test]
async fn a_person_is_created_with_name_phone_link_and_owner_then_renamed_and_listed() {
    let sb = sandbox().await;
    let api = api(&sb);
    let link = sb
        .field_key("person", "WhatsApp chat")
        .expect("seeded field");
    let mut fields = Map::new();
    fields.insert("name".into(), json!("Maria Souza"));
    fields.insert("phone".into(), json!("+5511987654321"));
    fields.insert(link.clone(), json!("https://app.example/chats/abc"));

    let created = api
        .create_record(&NewRecord {
            module: "persons".into(),
            fields,
            owner_id: Some("11002".into()),
        })
        .await
        .expect("created");

    let id: u64 = created.id.parse().expect("a numeric id");
    let person = sb.person(id).expect("stored");
    assert_eq!(person["name"], "Maria Souza");
    assert_eq!(person["owner_id"], 11002);
    assert_eq!(
        person["phones"],
        json!([{ "value": "+5511987654321", "primary": true, "label": "mobile" }])
    );
    assert_eq!(
        person["custom_fields"][&link],
        "https://app.example/chats/abc"
    );
    assert!(api.record_exists(&created).await.expect("read"));

    api.update_field(&created, "name", "Maria S. Souza")
        .await
        .expect("renamed");
    api.update_field(&created, &link, "https://app.example/chats/def")
        .await
        .expect("relinked");
    let person = sb.person(id).expect("stored");
    assert_eq!(person["name"], "Maria S. Souza");
    assert_eq!(
        person["custom_fields"][&link],
        "https://app.example/chats/def"
    );

    let recent = api
        .recently_created("persons", "phone")
        .await
        .expect("listed");
    assert_eq!(recent[0].record, created);
    assert_eq!(recent[0].phones, vec!["+5511987654321".to_owned()]);
    let recent_links = api
        .recently_created("persons", &link)
        .await
        .expect("listed");
    assert_eq!(
        recent_links[0].phones,
        vec!["https://app.example/chats/def".to_owned()]
    );

    assert!(sb.delete_person(id));
    assert!(!api.record_exists(&created).await.expect("read"));
    assert!(
        !api.record_exists(&rec("deals", 999_999))
            .await
            .expect("read")
    );
    assert_clean(&sb, &api);
}

#[tokio::test]
async fn a_lead_and_a_deal_for_a_person_are_found_again_by_their_titles() {
    let sb = sandbox().await;
    let api = api(&sb);
    let person = person_with_phone(&sb, "Ana Silva", "+351912345678");
    let labels = api.lead_labels().await.expect("labels");
    assert_eq!(
        labels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        vec!["Hot", "Warm", "Cold"]
    );
    let pipelines = api.pipelines().await.expect("pipelines");
    assert_eq!(
        pipelines
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        vec!["Sales pipeline", "Partnerships"]
    );
    assert_eq!(
        pipelines[0]
            .stages
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        vec![
            "Qualified",
            "Contact Made",
            "Demo Scheduled",
            "Proposal Made",
            "Negotiations Started"
        ]
    );
    let partnerships = &pipelines[1];

    let lead = api
        .create_follow_up(&NewFollowUp {
            kind: FollowUpKind::Lead {
                label_id: Some(labels[0].id.clone()),
            },
            title: "WhatsApp: Ana Silva".into(),
            person: person.clone(),
            owner_id: Some("11002".into()),
        })
        .await
        .expect("lead");
    let deal = api
        .create_follow_up(&NewFollowUp {
            kind: FollowUpKind::Deal {
                pipeline_id: partnerships.id.clone(),
                stage_id: Some(partnerships.stages[1].id.clone()),
            },
            title: "WhatsApp deal: Ana Silva".into(),
            person: person.clone(),
            owner_id: None,
        })
        .await
        .expect("deal");

    assert_eq!(lead.module, "leads");
    assert!(uuid::Uuid::parse_str(&lead.id).is_ok(), "{}", lead.id);
    let stored_lead = sb
        .leads()
        .into_iter()
        .find(|l| l["id"] == lead.id.as_str())
        .expect("stored");
    assert_eq!(stored_lead["label_ids"], json!([labels[0].id]));
    assert_eq!(stored_lead["owner_id"], 11002);
    assert_eq!(deal.module, "deals");
    let stored_deal = sb
        .deals()
        .into_iter()
        .find(|d| has_id(d, &deal.id))
        .expect("stored");
    assert_eq!(
        stored_deal["stage_id"].to_string(),
        partnerships.stages[1].id
    );

    let find = |title: &'static str| api.find_follow_up(&person, title);
    assert_eq!(
        find("WhatsApp: Ana Silva").await.expect("read"),
        Some(lead.clone())
    );
    assert_eq!(
        find("WhatsApp deal: Ana Silva").await.expect("read"),
        Some(deal.clone())
    );
    assert_eq!(find("WhatsApp: someone else").await.expect("read"), None);

    assert_eq!(
        api.latest_open_deal(&person, None).await.expect("read"),
        Some(deal.clone())
    );
    assert_eq!(
        api.latest_open_deal(&person, Some(&partnerships.id))
            .await
            .expect("read"),
        Some(deal.clone())
    );
    assert_eq!(
        api.latest_open_deal(&person, Some(&pipelines[0].id))
            .await
            .expect("read"),
        None
    );
    assert!(api.record_exists(&lead).await.expect("read"));
    assert!(api.record_exists(&deal).await.expect("read"));
    assert_clean(&sb, &api);
}

#[tokio::test]
async fn a_lead_converted_in_the_ui_is_followed_to_its_deal() {
    let sb = sandbox().await;
    let api = api(&sb);
    let person = person_with_phone(&sb, "Ana Silva", "+351912345678");
    let lead = lead_for(&api, &person, "WhatsApp: Ana Silva").await;
    assert_eq!(
        api.conversion(&lead, "deals", Some(&person))
            .await
            .expect("read"),
        Conversion::NotConverted
    );
    assert_eq!(
        api.conversion(&person, "deals", None).await.expect("read"),
        Conversion::NotConverted
    );

    let deal_id = sb.convert_lead_in_ui(&lead.id).expect("converted");

    assert_eq!(
        api.conversion(&lead, "deals", Some(&person))
            .await
            .expect("read"),
        Conversion::Converted {
            into: Some(rec("deals", deal_id))
        }
    );
    assert_eq!(
        api.conversion(&lead, "deals", None).await.expect("read"),
        Conversion::Converted { into: None }
    );
    assert!(!api.record_exists(&lead).await.expect("read"));
    let deals = requests_to(&sb, "GET", "/api/v2/deals");
    assert!(
        deals
            .iter()
            .all(|r| r.query.contains("include_fields=source_lead_id"))
    );
    assert_clean(&sb, &api);
}

#[tokio::test]
async fn a_note_on_a_person_and_their_deal_is_one_call_found_again_and_updated() {
    let sb = sandbox().await;
    let api = api(&sb);
    let person = person_with_phone(&sb, "Ana <b>Silva</b>", "+351912345678");
    let deal = api
        .create_follow_up(&NewFollowUp {
            kind: FollowUpKind::Deal {
                pipeline_id: api.pipelines().await.expect("pipelines")[0].id.clone(),
                stage_id: None,
            },
            title: "WhatsApp deal".into(),
            person: person.clone(),
            owner_id: None,
        })
        .await
        .expect("deal");
    let title = "WhatsApp Chat with Ana <b>Silva</b> (04/05/2026)";
    let header = "https://app.example/chats/abc · +44 7700 900100";
    let lines = [
        "09:14 ← Ana: <script>alert('x')</script> & more",
        "09:15 → Rui: Hello",
    ];
    let draft = NoteDraft {
        title,
        header,
        lines: &lines,
    };
    let content = api.render_note(&draft);
    assert!(!content.contains("<script>"), "{content}");
    assert!(
        content.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; more"),
        "{content}"
    );
    assert!(
        content
            .starts_with("<b>WhatsApp Chat with Ana &lt;b&gt;Silva&lt;/b&gt; (04/05/2026)</b><br>")
    );
    assert_eq!(api.note_size(&content), content.len());
    assert_eq!(api.note_limit(), 100_000);

    let note_id = api
        .create_note(&person, Some(&deal), title, &content)
        .await
        .expect("note");

    assert_eq!(requests_to(&sb, "POST", "/v1/notes").len(), 1);
    let on_person = sb.notes_of("person", &person.id);
    assert_eq!(on_person.len(), 1);
    assert_eq!(
        on_person[0]["content"],
        content.as_str(),
        "stored as rendered"
    );
    assert_eq!(sb.notes_of("deal", &deal.id)[0]["id"].to_string(), note_id);

    // Another day's note of the same person is not mistaken for it.
    let other = api.render_note(&NoteDraft {
        title: "WhatsApp Chat with Ana (05/05/2026)",
        header,
        lines: &lines,
    });
    api.create_note(&person, None, "", &other)
        .await
        .expect("note");

    let head = NoteDraft {
        title,
        header,
        lines: &[],
    };
    assert_eq!(
        api.find_note(&person, &head).await.expect("read"),
        Some(note_id.clone())
    );
    assert_eq!(
        api.find_note(&deal, &head).await.expect("read"),
        Some(note_id.clone())
    );
    let elsewhere = NoteDraft {
        header: "https://app.example/chats/zzz · +44 7700 900100",
        ..head
    };
    assert_eq!(
        api.find_note(&person, &elsewhere).await.expect("read"),
        None
    );

    let more = [lines[0], lines[1], "09:20 ← Ana: 1 < 2 > 0"];
    let updated = api.render_note(&NoteDraft {
        lines: &more,
        ..draft
    });
    api.update_note(&note_id, title, &updated)
        .await
        .expect("updated");
    let stored = sb.notes_of("person", &person.id);
    let stored = stored.iter().find(|n| has_id(n, &note_id)).expect("note");
    assert_eq!(stored["content"], updated.as_str());
    assert_eq!(
        api.find_note(&person, &head).await.expect("read"),
        Some(note_id)
    );
    assert_clean(&sb, &api);
}

#[tokio::test]
async fn files_are_attached_to_persons_and_leads_and_found_again() {
    let sb = sandbox().await;
    let api = api(&sb);
    let person = person_with_phone(&sb, "Ana Silva", "+351912345678");
    let since = chrono::Utc::now().timestamp() - 5;
    let bytes: Vec<u8> = (0..1234u32).map(|i| (i % 251) as u8).collect();

    let file_id = api
        .attach_file(&person, "Orçamento março.jpg", "image/jpeg", bytes)
        .await
        .expect("uploaded");

    let stored = sb
        .files()
        .into_iter()
        .find(|f| has_id(f, &file_id))
        .expect("stored");
    assert_eq!(stored["file_name"], "Orçamento março.jpg");
    assert_eq!(stored["file_size"], 1234);
    assert_eq!(stored["person_id"].to_string(), person.id);
    let find =
        |name: &'static str, size: u64, since: i64| api.find_attachment(&person, name, size, since);
    assert_eq!(
        find("Orçamento março.jpg", 1234, since)
            .await
            .expect("read"),
        Some(file_id.clone())
    );
    assert_eq!(
        find("Orçamento março.jpg", 1233, since)
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        find("Orçamento março.jpg", 1234, since + 3600)
            .await
            .expect("read"),
        None
    );

    let lead = lead_for(&api, &person, "WhatsApp: Ana Silva").await;
    let lead_file = api
        .attach_file(&lead, "voice-1.ogg", "audio/ogg; codecs=opus", vec![7; 300])
        .await
        .expect("uploaded");
    assert_eq!(
        api.find_attachment(&lead, "voice-1.ogg", 300, since)
            .await
            .expect("read"),
        Some(lead_file)
    );
    assert_eq!(
        api.find_attachment(&lead, "Orçamento março.jpg", 1234, since)
            .await
            .expect("read"),
        None,
        "another record's file"
    );
    assert_clean(&sb, &api);
}

#[tokio::test]
async fn users_fields_and_modules_describe_the_company() {
    let sb = sandbox().await;
    let api = api(&sb);
    let mut users = api.active_users().await.expect("users");
    users.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        users
            .iter()
            .map(|u| (u.id.as_str(), u.email.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("11001", "ana@acme.example"),
            ("11002", "bruno@acme.example"),
            ("11003", "carla@acme.example"),
        ]
    );

    let fields = api.fields("persons").await.expect("fields");
    let field = |code: &str| {
        fields
            .iter()
            .find(|f| f.api_name == code)
            .unwrap_or_else(|| panic!("{code} is listed"))
            .clone()
    };
    let phone = field("phone");
    assert_eq!(
        (phone.data_type.as_str(), phone.read_only, phone.api_create),
        ("phone", false, true)
    );
    assert!(field("add_time").read_only);
    assert!(!field("name").read_only);
    let link = field(&sb.field_key("person", "WhatsApp chat").expect("seeded"));
    assert_eq!(
        (link.label.as_str(), link.data_type.as_str()),
        ("WhatsApp chat", "varchar")
    );
    assert!(!link.read_only && link.api_create);
    let interests = field(&sb.field_key("person", "Interests").expect("seeded"));
    assert_eq!(interests.json_type, "jsonarray");
    assert_eq!(
        interests.picklist_values,
        vec!["Product A", "Product B", "Support"]
    );

    let deal_fields = api.fields("deals").await.expect("fields");
    assert!(
        deal_fields
            .iter()
            .any(|f| f.api_name == "title" && !f.read_only)
    );
    assert!(matches!(
        api.fields("organizations").await,
        Err(CrmError::Rejected { .. })
    ));

    let modules = api.modules().await.expect("modules");
    assert_eq!(modules.len(), 1);
    assert_eq!(modules[0].api_name, "persons");
    assert!(modules[0].creatable && !modules[0].convertable);
    assert_clean(&sb, &api);
}

#[tokio::test]
async fn a_short_burst_is_waited_out_once() {
    let sb = sandbox_with(PipedriveSandboxConfig {
        search_burst_limit: 1,
        ..PipedriveSandboxConfig::default()
    })
    .await;
    let api = api(&sb);
    // Two forms, so two searches inside one window of one search each.
    let found = api
        .find_by_phone("persons", "phone", &number("551187654321"))
        .await
        .expect("the second search waits for the window");
    assert!(found.is_empty());
    let statuses: Vec<u16> = requests_to(&sb, "GET", "/api/v2/persons/search")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![200, 429, 200]);
    assert_clean(&sb, &api);
}

#[tokio::test]
async fn a_long_burst_is_rate_limited() {
    let sb = sandbox_with(PipedriveSandboxConfig {
        search_burst_limit: 1,
        burst_window: Duration::from_secs(30),
        ..PipedriveSandboxConfig::default()
    })
    .await;
    let api = api(&sb);
    let err = api
        .find_by_phone("persons", "phone", &number("551187654321"))
        .await
        .expect_err("the window resets too late to wait");
    assert!(matches!(err, CrmError::RateLimited), "{err:?}");
    assert!(err.is_transient());
    assert_clean(&sb, &api);
}

#[tokio::test]
async fn a_spent_daily_budget_is_budget_spent_until_midnight_utc() {
    let sb = sandbox().await;
    let api = api(&sb);
    sb.set_daily_budget(15);
    api.lead_labels().await.expect("10 tokens fit");
    let err = api.active_users().await.expect_err("20 more do not");
    let now = chrono::Utc::now().timestamp();
    match err {
        CrmError::BudgetSpent { resets_at } => {
            assert_eq!(resets_at % 86_400, 0, "midnight");
            assert!(resets_at > now && resets_at <= now + 86_400);
        }
        other => panic!("{other:?}"),
    }
    // Not retried: one refused call.
    assert_eq!(requests_to(&sb, "GET", "/v1/users").len(), 1);
    assert_eq!(api.tokens_spent(), 10);
    assert_clean(&sb, &api);
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once_and_the_upload_sent_whole_again() {
    let sb = sandbox().await;
    let person = person_with_phone(&sb, "Ana Silva", "+351912345678");
    let stale = sb.issue_tokens(USER).expect("tokens").access_token;
    sb.expire_access_tokens();
    let fresh = sb.issue_tokens(USER).expect("tokens").access_token;
    let api = api_with(
        &sb,
        Arc::new(StaleThenFresh {
            stale: stale.clone(),
            fresh,
        }),
    );

    let id = api
        .attach_file(&person, "image-7.png", "image/png", vec![9; 2048])
        .await
        .expect("uploaded on the second attempt");

    let statuses: Vec<u16> = requests_to(&sb, "POST", "/v1/files")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![401, 200]);
    let stored = sb
        .files()
        .into_iter()
        .find(|f| has_id(f, &id))
        .expect("stored");
    assert_eq!(stored["file_size"], 2048);

    let refused = api_with(&sb, Arc::new(FreshToken(stale)));
    let err = refused.active_users().await.expect_err("expired");
    assert!(matches!(err, CrmError::Unauthorized), "{err:?}");
    assert_eq!(refused.tokens_spent(), 0);
    assert_clean(&sb, &api);
}

#[tokio::test]
async fn refusals_and_outages_are_typed() {
    let sb = sandbox().await;
    let api = api(&sb);
    let err = api
        .update_note("987654", "", "<b>x</b>")
        .await
        .expect_err("no such note");
    assert!(
        matches!(&err, CrmError::Rejected { status: 404, message, .. } if message == "Note not found"),
        "{err:?}"
    );
    let mut fields = Map::new();
    fields.insert("phone".into(), json!("+351912345678"));
    let err = api
        .create_record(&NewRecord {
            module: "persons".into(),
            fields,
            owner_id: None,
        })
        .await
        .expect_err("a person needs a name");
    assert!(
        matches!(&err, CrmError::Rejected { status: 400, field: Some(f), .. } if f == "name"),
        "{err:?}"
    );
    let err = api
        .create_record(&NewRecord {
            module: "persons".into(),
            fields: Map::new(),
            owner_id: Some("not-a-number".into()),
        })
        .await
        .expect_err("not sent");
    assert!(
        matches!(err, CrmError::Rejected { status: 400, .. }),
        "{err:?}"
    );
    // Down for the call and its one quick retry.
    sb.fail_next(2, 503);
    let err = api.lead_labels().await.expect_err("down");
    assert!(
        matches!(err, CrmError::Unavailable(503)) && err.is_transient(),
        "{err:?}"
    );
    assert_clean(&sb, &api);
}

/// The tokens each operation cost, as the sandbox charged them (printed
/// with `--nocapture`), and the client's own count of them.
#[tokio::test]
async fn each_operation_costs_what_pipedrive_documents() {
    let sb = sandbox().await;
    let api = api(&sb);
    let person = person_with_phone(&sb, "Ana Silva", "+351912345678");
    let mut costs: Vec<(String, u64)> = Vec::new();
    let mut note = |what: &str, sb: &PipedriveSandboxHandle| {
        let spent: u64 = sb.requests().iter().map(|r| r.token_cost).sum();
        let before: u64 = costs.iter().map(|(_, c)| c).sum();
        costs.push((what.to_owned(), spent - before));
    };
    api.find_by_phone("persons", "phone", &number("351912345678"))
        .await
        .expect("ok");
    note("find_by_phone (1 form, 1 hit)", &sb);
    let created = api
        .create_record(&NewRecord {
            module: "persons".into(),
            fields: Map::from_iter([("name".to_owned(), Value::from("Rui"))]),
            owner_id: None,
        })
        .await
        .expect("ok");
    note("create_record", &sb);
    api.record_exists(&created).await.expect("ok");
    note("record_exists (person)", &sb);
    api.update_field(&created, "name", "Rui C.")
        .await
        .expect("ok");
    note("update_field", &sb);
    api.recently_created("persons", "phone").await.expect("ok");
    note("recently_created", &sb);
    let lead = lead_for(&api, &person, "L").await;
    note("create_follow_up (lead)", &sb);
    api.conversion(&lead, "deals", Some(&person))
        .await
        .expect("ok");
    note("conversion (lead still there)", &sb);
    api.find_follow_up(&person, "L").await.expect("ok");
    note("find_follow_up (lead found)", &sb);
    api.latest_open_deal(&person, None).await.expect("ok");
    note("latest_open_deal", &sb);
    let content = api.render_note(&NoteDraft {
        title: "T",
        header: "H",
        lines: &["x"],
    });
    let id = api
        .create_note(&person, None, "T", &content)
        .await
        .expect("ok");
    note("create_note", &sb);
    api.update_note(&id, "T", &content).await.expect("ok");
    note("update_note", &sb);
    api.find_note(
        &person,
        &NoteDraft {
            title: "T",
            header: "H",
            lines: &[],
        },
    )
    .await
    .expect("ok");
    note("find_note", &sb);
    api.attach_file(&person, "a.txt", "text/plain", b"hi".to_vec())
        .await
        .expect("ok");
    note("attach_file", &sb);
    api.find_attachment(&person, "a.txt", 2, 0)
        .await
        .expect("ok");
    note("find_attachment (person)", &sb);
    api.fields("persons").await.expect("ok");
    note("fields", &sb);
    api.active_users().await.expect("ok");
    note("active_users", &sb);
    api.pipelines().await.expect("ok");
    note("pipelines", &sb);
    api.lead_labels().await.expect("ok");
    note("lead_labels", &sb);
    for (what, cost) in &costs {
        println!("{cost:>3} tokens  {what}");
    }
    let cost_of = |what: &str| {
        costs
            .iter()
            .find(|(w, _)| w.starts_with(what))
            .map(|(_, c)| *c)
    };
    assert_eq!(cost_of("find_by_phone"), Some(20));
    assert_eq!(cost_of("create_record"), Some(5));
    assert_eq!(cost_of("create_note"), Some(10));
    assert_eq!(cost_of("pipelines"), Some(10));
    assert_clean(&sb, &api);
}
