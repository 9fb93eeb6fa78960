//! Persons v2, person search and field metadata.

use std::time::Duration;

use pipedrive_sandbox::PipedriveSandboxConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Pd, person};

#[tokio::test]
async fn persons_v2_create_read_update_delete() {
    let pd = Pd::new().await;
    let chat = pd.sb.field_key("person", "WhatsApp chat").expect("field");
    assert_eq!(chat.len(), 40);
    let created = pd
        .post("/api/v2/persons", json!({
            "name": "Ana Silva", "owner_id": 11_002, "visible_to": 3,
            "phones": [{"value": "+351 912 345 678", "primary": true, "label": "mobile"}, {"value": "+351210000000"}],
            "custom_fields": {chat.clone(): "https://app.example/chats/abc"}
        }))
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let d = &created.body["data"];
    let id = d["id"].as_u64().expect("id");
    assert_eq!(
        (d["first_name"].as_str(), d["last_name"].as_str()),
        (Some("Ana"), Some("Silva"))
    );
    assert_eq!(
        d["phones"][0]["value"], "+351 912 345 678",
        "stored as sent"
    );
    assert_eq!(d["phones"][1]["primary"], false);
    assert_eq!(
        d["custom_fields"][chat.as_str()],
        "https://app.example/chats/abc"
    );
    assert_eq!(d["owner_id"], 11_002);
    let patched = pd
        .call(Method::PATCH, &format!("/api/v2/persons/{id}"), Some(json!({"phones": [{"value": "+351911111111", "primary": true}], "custom_fields": {chat.clone(): null}})))
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(
        patched.body["data"]["phones"].as_array().map(Vec::len),
        Some(1),
        "phones are replaced"
    );
    assert_eq!(
        patched.body["data"]["custom_fields"][chat.as_str()],
        Value::Null
    );
    assert_eq!(
        pd.get(&format!("/api/v2/persons/{id}")).await.body["data"]["name"],
        "Ana Silva"
    );
    // v2 strict validation.
    for bad in [
        json!({"name": "X", "phones": "+351"}),
        json!({"name": "X", "visible_to": "3"}),
        json!({"name": "X", "owner_id": "7"}),
        json!({"name": "X", "custom_fields": {"0123456789012345678901234567890123456789": "x"}}),
        json!({"name": "X", "phones": [{"value": "1", "primary": "true"}]}),
        json!({"phones": []}),
    ] {
        let a = pd.post("/api/v2/persons", bad.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(a.body["success"], false);
    }
    let deleted = pd
        .call(Method::DELETE, &format!("/api/v2/persons/{id}"), None)
        .await;
    assert_eq!(deleted.body["data"]["id"], id);
    assert_eq!(
        pd.get(&format!("/api/v2/persons/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(pd.sb.person(id).expect("kept")["is_deleted"], true);
    let v: Vec<String> = pd.sb.contract_violations();
    assert!(
        v.iter().all(|x| x.contains("request")),
        "only the deliberate bad requests: {v:#?}"
    );
}

#[tokio::test]
async fn persons_list_filters_sorts_and_pages() {
    let pd = Pd::new().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(person(&pd, &format!("P{n}"), &format!("+3519000000{n}")).await);
    }
    let bruno = pd
        .sb
        .insert_person(json!({"name": "Owned by Bruno", "owner_id": 11_002}))
        .expect("insert");
    let only = pd
        .get(&format!("/api/v2/persons?ids={},{}", ids[1], ids[3]))
        .await;
    assert_eq!(only.body["data"].as_array().map(Vec::len), Some(2));
    let owned = pd.get("/api/v2/persons?owner_id=11002").await;
    assert_eq!(owned.body["data"][0]["id"], bruno);
    let mut seen = Vec::new();
    let mut path = "/api/v2/persons?limit=2&sort_by=id&sort_direction=desc".to_string();
    loop {
        let page = pd.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        seen.extend(
            page.body["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|p| p["id"].as_u64().unwrap_or(0)),
        );
        match page.body["additional_data"]["next_cursor"].as_str() {
            Some(c) => {
                path = format!("/api/v2/persons?limit=2&sort_by=id&sort_direction=desc&cursor={c}")
            }
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.push(bruno);
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected);
    let since = pd
        .get("/api/v2/persons?updated_since=2000-01-01T00:00:00Z&sort_by=update_time")
        .await;
    assert_eq!(since.body["data"].as_array().map(Vec::len), Some(6));
    assert_eq!(
        pd.get("/api/v2/persons?limit=501").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        pd.get("/api/v2/persons?sort_by=name").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(pd.sb.persons().len(), 6);
}

#[tokio::test]
async fn person_search_matches_values_as_stored() {
    let pd = Pd::new().await;
    let id = person(&pd, "Ana Silva", "+351 912 345 678").await;
    let wa = pd.sb.field_key("person", "WhatsApp number").expect("field");
    pd.call(
        Method::PATCH,
        &format!("/api/v2/persons/{id}"),
        Some(json!({"custom_fields": {wa: "+351912345678"}})),
    )
    .await;
    let search = |q: &str| format!("/api/v2/persons/search?{q}");
    let exact = pd
        .get(&search(
            "term=%2B351%20912%20345%20678&fields=phone&exact_match=true",
        ))
        .await;
    let items = exact.body["data"]["items"]
        .as_array()
        .expect("items")
        .clone();
    assert_eq!(items.len(), 1, "{}", exact.body);
    assert_eq!(items[0]["item"]["id"], id);
    assert_eq!(items[0]["item"]["type"], "person");
    assert_eq!(
        items[0]["item"]["phones"],
        json!(["+351 912 345 678"]),
        "phones as plain strings"
    );
    assert_eq!(items[0]["result_score"], 1.0);
    let digits = pd
        .get(&search("term=351912345678&fields=phone&exact_match=true"))
        .await;
    assert_eq!(
        digits.body["data"]["items"].as_array().map(Vec::len),
        Some(0),
        "no digit normalisation"
    );
    let partial = pd.get(&search("term=345%20678&fields=phone")).await;
    assert_eq!(
        partial.body["data"]["items"].as_array().map(Vec::len),
        Some(1)
    );
    let custom = pd
        .get(&search(
            "term=%2B351912345678&fields=custom_fields&exact_match=true",
        ))
        .await;
    assert_eq!(
        custom.body["data"]["items"][0]["item"]["custom_fields"],
        json!(["+351912345678"])
    );
    let name = pd.get(&search("term=ana%20SILVA&exact_match=true")).await;
    assert_eq!(
        name.body["data"]["items"].as_array().map(Vec::len),
        Some(1),
        "case-insensitive"
    );
    // An unencoded `+` arrives as a space.
    let plus = pd
        .get(&search(
            "term=+351912345678&fields=custom_fields&exact_match=true",
        ))
        .await;
    assert_eq!(plus.body["data"]["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        pd.get(&search("term=a")).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        pd.get(&search("term=a&exact_match=true")).await.status,
        StatusCode::OK
    );
    let field = pd
        .get("/api/v2/itemSearch/field?term=Ana&entity_type=person&field=name&match=beginning")
        .await;
    assert_eq!(field.body["data"], json!([{"id": id, "name": "Ana Silva"}]));
    let case = pd
        .get("/api/v2/itemSearch/field?term=ana&entity_type=person&field=name&match=beginning")
        .await;
    assert_eq!(
        case.body["data"],
        json!([]),
        "itemSearch/field is case-sensitive"
    );
    assert_eq!(
        pd.sb
            .requests()
            .iter()
            .find(|r| r.path.ends_with("/persons/search"))
            .map(|r| r.token_cost),
        Some(20)
    );
    pd.assert_clean();
}

#[tokio::test]
async fn search_sees_changes_only_after_the_index_delay() {
    let cfg = PipedriveSandboxConfig {
        search_index_delay: Duration::from_millis(400),
        ..Default::default()
    };
    let pd = Pd::with(cfg).await;
    let id = person(&pd, "Delayed Dora", "+4915111111111").await;
    let find = |term: &'static str| {
        let pd = &pd;
        async move {
            pd.get(&format!(
                "/api/v2/persons/search?term={term}&exact_match=true"
            ))
            .await
            .body["data"]["items"]
                .as_array()
                .map(Vec::len)
        }
    };
    assert_eq!(find("Delayed%20Dora").await, Some(0));
    assert_eq!(
        pd.get(&format!("/api/v2/persons/{id}")).await.status,
        StatusCode::OK,
        "reads are immediate"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(find("Delayed%20Dora").await, Some(1));
    pd.call(
        Method::PATCH,
        &format!("/api/v2/persons/{id}"),
        Some(json!({"name": "Renamed Dora"})),
    )
    .await;
    assert_eq!(
        find("Delayed%20Dora").await,
        Some(1),
        "the old state until re-indexed"
    );
    assert_eq!(find("Renamed%20Dora").await, Some(0));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(find("Renamed%20Dora").await, Some(1));
    assert_eq!(find("Delayed%20Dora").await, Some(0));
    pd.assert_clean();
}

#[tokio::test]
async fn field_metadata_v1_and_v2() {
    let pd = Pd::new().await;
    let fields = pd.get("/v1/personFields").await;
    let list = fields.body["data"].as_array().expect("fields").clone();
    let phone = list.iter().find(|f| f["key"] == "phone").expect("phone");
    assert_eq!(phone["field_type"], "phone");
    assert_eq!(phone["edit_flag"], false);
    let custom: Vec<&Value> = list.iter().filter(|f| f["edit_flag"] == true).collect();
    assert!(
        custom
            .iter()
            .all(|f| f["key"].as_str().is_some_and(|k| k.len() == 40))
    );
    let types: Vec<&str> = custom
        .iter()
        .filter_map(|f| f["field_type"].as_str())
        .collect();
    for t in [
        "varchar",
        "text",
        "phone",
        "set",
        "enum",
        "user",
        "org",
        "people",
        "daterange",
    ] {
        assert!(types.contains(&t), "{t}");
    }
    let key = pd
        .sb
        .add_person_field(json!({"name": "Chat link", "field_type": "varchar"}))
        .expect("field");
    let again = pd.get("/v1/personFields").await;
    assert!(
        again.body["data"]
            .as_array()
            .expect("fields")
            .iter()
            .any(|f| f["key"] == key.as_str())
    );
    let deal_key = pd
        .sb
        .add_deal_field(
            json!({"name": "Source", "field_type": "enum", "options": ["WhatsApp", "Web"]}),
        )
        .expect("field");
    let lead_fields = pd.get("/v1/leadFields").await;
    assert!(
        lead_fields.body["data"]
            .as_array()
            .expect("fields")
            .iter()
            .any(|f| f["key"] == deal_key.as_str())
    );
    let v2 = pd.get("/api/v2/personFields").await;
    let phone2 = v2.body["data"]
        .as_array()
        .expect("v2")
        .iter()
        .find(|f| f["field_code"] == "phone")
        .cloned()
        .expect("phone");
    assert_eq!(phone2["is_custom_field"], false);
    assert_eq!(
        pd.get(&format!("/api/v2/personFields/{key}")).await.body["data"]["field_name"],
        "Chat link"
    );
    assert!(
        pd.get("/v1/dealFields").await.body["data"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    );
    let greta = pd
        .sb
        .issue_tokens("greta@globex.example")
        .expect("tokens")
        .access_token;
    let theirs = pd
        .call_as(&greta, Method::GET, "/v1/personFields", None)
        .await;
    assert!(
        !theirs.body["data"]
            .as_array()
            .expect("fields")
            .iter()
            .any(|f| f["key"] == key.as_str()),
        "keys differ per company"
    );
    pd.assert_clean();
}
