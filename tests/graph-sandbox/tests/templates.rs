//! `GET /{version}/{waba_id}/message_templates` and template sends.

mod common;

use common::{Sandbox, code, hello_world};
use graph_sandbox::{DEFAULT_ACCESS_TOKEN, DEFAULT_WABA_ID, SeedTemplate};
use serde_json::{Value, json};

fn template(name: &str, language: &str, params: &[&str]) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|p| json!({"type": "text", "text": p}))
        .collect();
    json!({"messaging_product": "whatsapp", "recipient_type": "individual",
           "to": "+447700900456", "type": "template",
           "template": {"name": name, "language": {"code": language},
                        "components": [{"type": "body", "parameters": parameters}]}})
}

fn names(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}/{}",
                t["name"].as_str().unwrap_or(""),
                t["language"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test]
async fn the_default_set_is_listed_in_graph_shape() {
    let s = Sandbox::start().await;
    let (status, body) = s.get(&format!("{DEFAULT_WABA_ID}/message_templates")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        names(&body),
        [
            "hello_world/en_US",
            "order_update/en",
            "order_update/pt_BR",
            "spring_sale/en_US",
            "viewing_reminder/en_GB"
        ]
    );
    let hello = &body["data"][0];
    assert_eq!(hello["status"], "APPROVED");
    assert_eq!(hello["category"], "UTILITY");
    assert!(hello["id"].is_string());
    let types: Vec<&str> = hello["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(types, ["HEADER", "BODY", "FOOTER"]);
    assert_eq!(hello["components"][0]["format"], "TEXT");
    let order = &body["data"][1];
    assert_eq!(
        order["components"][0]["text"],
        "Hi {{1}}, your order {{2}} has been updated."
    );
    assert_eq!(
        order["components"][0]["example"]["body_text"],
        json!([["Alice", "#1042"]])
    );
    assert_eq!(order["components"][2]["buttons"][0]["type"], "QUICK_REPLY");
    assert_eq!(body["data"][3]["status"], "REJECTED");
    assert_eq!(body["data"][4]["status"], "PENDING");
    assert!(body["paging"]["cursors"]["after"].is_string());
    assert!(body["paging"].get("next").is_none());
}

#[tokio::test]
async fn fields_filters_and_cursor_paging() {
    let s = Sandbox::start().await;
    let base = format!("{DEFAULT_WABA_ID}/message_templates");
    let (_, body) = s
        .get(&format!("{base}?fields=name,status&status=APPROVED"))
        .await;
    assert_eq!(names(&body).len(), 3);
    let keys: Vec<&String> = body["data"][0]
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys.len(), 3, "name, status and id: {body}");
    assert!(body["data"][0]["language"].is_null());

    let (_, body) = s.get(&format!("{base}?status=REJECTED,PENDING")).await;
    assert_eq!(
        names(&body),
        ["spring_sale/en_US", "viewing_reminder/en_GB"]
    );
    let (_, body) = s.get(&format!("{base}?name=order_update")).await;
    assert_eq!(names(&body), ["order_update/en", "order_update/pt_BR"]);

    // Two by two, following `after` and then `next`.
    let (_, first) = s.get(&format!("{base}?limit=2")).await;
    assert_eq!(names(&first), ["hello_world/en_US", "order_update/en"]);
    let after = first["paging"]["cursors"]["after"]
        .as_str()
        .expect("after")
        .to_owned();
    let (_, second) = s.get(&format!("{base}?limit=2&after={after}")).await;
    assert_eq!(names(&second), ["order_update/pt_BR", "spring_sale/en_US"]);
    let next = second["paging"]["next"].as_str().expect("next").to_owned();
    let third: Value = s
        .http
        .get(next)
        .bearer_auth(DEFAULT_ACCESS_TOKEN)
        .send()
        .await
        .expect("next page")
        .json()
        .await
        .expect("json");
    assert_eq!(names(&third), ["viewing_reminder/en_GB"]);
    assert!(third["paging"].get("next").is_none());

    for bad in ["?fields=nope", "?limit=0", "?after=bm90LWFuLWlk"] {
        let (status, body) = s.get(&format!("{base}{bad}")).await;
        assert_eq!((status, code(&body)), (400, 100), "{bad}: {body}");
    }
    let (status, body) = s.get("123456/message_templates").await;
    assert_eq!((status, code(&body)), (400, 100));
    let response = s
        .http
        .get(s.url(&base))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn template_sends_are_checked_against_the_seeded_templates() {
    let s = Sandbox::start().await;
    // No window needed for templates.
    let (status, body) = s
        .send(template("order_update", "pt_BR", &["Ana", "#7"]))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.send(hello_world("+447700900456")).await;
    assert_eq!(status, 200, "{body}");

    let cases = [
        (template("order_update", "en", &["Ana"]), 400, 132000),
        (
            template("order_update", "en", &["Ana", "#7", "x"]),
            400,
            132000,
        ),
        (template("order_update", "de", &["Ana", "#7"]), 404, 132001),
        (template("no_such_template", "en", &[]), 404, 132001),
        (template("spring_sale", "en_US", &["20%"]), 404, 132001),
        (
            template("viewing_reminder", "en_GB", &["Ana", "Mon"]),
            404,
            132001,
        ),
    ];
    for (body, status, expected) in cases {
        let (got, answer) = s.send(body).await;
        assert_eq!((got, code(&answer)), (status, expected), "{answer}");
    }
    assert!(s.sb.set_template_status("order_update", "en", "PAUSED"));
    let (status, body) = s.send(template("order_update", "en", &["Ana", "#7"])).await;
    assert_eq!((status, code(&body)), (400, 132015));
    s.sb.set_template_status("order_update", "en", "DISABLED");
    let (_, body) = s.send(template("order_update", "en", &["Ana", "#7"])).await;
    assert_eq!(code(&body), 132016);
    let (status, body) = s
        .send(
            json!({"messaging_product": "whatsapp", "to": "+447700900456", "type": "template",
                     "template": {"name": "hello_world"}}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, 100));
}

#[tokio::test]
async fn seeded_templates_headers_and_named_parameters() {
    let s = Sandbox::start().await;
    s.sb.seed_template(
        SeedTemplate::new("viewing_photo", "en_GB", "APPROVED", "MARKETING")
            .with_header_media("IMAGE")
            .with_body("Hi {{1}}, see the flat.", &["Ana"]),
    );
    s.sb.seed_template(
        SeedTemplate::new("named_hello", "en", "APPROVED", "UTILITY")
            .named()
            .with_body("Hello {{first_name}}", &["Ana"]),
    );
    let with_header = json!({"messaging_product": "whatsapp", "to": "+447700900456", "type": "template",
        "template": {"name": "viewing_photo", "language": {"code": "en_GB"}, "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://example.com/a.jpg"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]}});
    let (status, body) = s.send(with_header).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.send(template("viewing_photo", "en_GB", &["Ana"])).await;
    assert_eq!(
        (status, code(&body)),
        (400, 132000),
        "header parameter missing"
    );

    let named = |name: &str| {
        json!({"messaging_product": "whatsapp", "to": "+447700900456", "type": "template",
               "template": {"name": "named_hello", "language": {"code": "en"}, "components": [
                   {"type": "body", "parameters": [{"type": "text", "parameter_name": name, "text": "Ana"}]}]}})
    };
    assert_eq!(s.send(named("first_name")).await.0, 200);
    assert_eq!(code(&s.send(named("last_name")).await.1), 132000);

    // Another WABA's templates are not this number's.
    s.sb.seed_template(SeedTemplate::new("elsewhere", "en", "APPROVED", "UTILITY").in_waba("555"));
    let (_, body) = s.send(template("elsewhere", "en", &[])).await;
    assert_eq!(code(&body), 132001);
    let (status, body) = s.get("555/message_templates").await;
    assert_eq!(status, 200);
    assert_eq!(names(&body), ["elsewhere/en"]);
}
