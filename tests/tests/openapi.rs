//! infra/openapi.yaml, without a stack: valid OpenAPI 3.1 (the vendored
//! meta-schema; nothing is fetched), its schemas compile, and its paths and
//! methods are exactly the routes infra/template.yaml declares.

use e2e::contract::{ApiContract, document, operations, template_routes};
use local_stack::runner::Exchange;
use local_stack::runner::route_matches;
use serde_json::Value;

/// OpenAPI 3.1's schema for documents (spec.openapis.org, 2022-10-07),
/// vendored from openapi-spec-validator's resources.
fn meta_schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/openapi/oas-3.1-schema-2022-10-07.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("the vendored meta-schema"))
        .expect("JSON")
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let document = document().expect("infra/openapi.yaml reads");
    assert_eq!(document["openapi"], "3.1.0");
    let validator = jsonschema::draft202012::new(&meta_schema()).expect("the meta-schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .map(|e| format!("at '{}': {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not OpenAPI 3.1: {errors:#?}");
}

#[test]
fn a_broken_document_is_refused_by_the_meta_schema() {
    // The check above can fail: a response without its description is not
    // OpenAPI.
    let mut document = document().expect("infra/openapi.yaml reads");
    document["paths"]["/api/me"]["get"]["responses"]["200"]
        .as_object_mut()
        .expect("a response object")
        .remove("description");
    let validator = jsonschema::draft202012::new(&meta_schema()).expect("the meta-schema compiles");
    assert!(!validator.is_valid(&document));
}

#[test]
fn every_schema_compiles_and_every_reference_resolves() {
    let contract = ApiContract::shared().as_ref().expect("the contract loads");
    assert!(
        contract.response_schema_pointers().len() > 100,
        "every operation's responses are described"
    );
    // References anywhere in the document point at something.
    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(object) => {
                if let Some(Value::String(r)) = object.get("$ref") {
                    found.push(r);
                }
                object.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(contract.document(), &mut found);
    let dangling: Vec<&&str> = found
        .iter()
        .filter(|r| {
            r.strip_prefix('#')
                .and_then(|p| contract.document().pointer(p))
                .is_none()
        })
        .collect();
    assert!(dangling.is_empty(), "dangling references: {dangling:?}");
}

/// Whether a template route (METHOD or ANY, pattern) serves an operation of
/// the document: the same path and method, or under a `{proxy+}` route
/// with any of its methods.
fn serves(route: &(String, String), operation: &(String, String)) -> bool {
    let (route_method, pattern) = route;
    let (method, path) = operation;
    let method_ok = route_method == "ANY" || route_method == method;
    if pattern.ends_with("+}") {
        method_ok && route_matches(pattern, path)
    } else {
        method_ok && pattern == path
    }
}

#[test]
fn the_paths_are_exactly_the_templates_routes() {
    let document = document().expect("infra/openapi.yaml reads");
    let operations = operations(&document);
    let routes = template_routes().expect("the template reads");
    assert!(routes.len() >= 10, "the template's routes: {routes:?}");
    // Every operation is served by a route of the template (API Gateway
    // prefers a concrete route over a greedy one, as here)…
    let unserved: Vec<_> = operations
        .iter()
        .filter(|op| !routes.iter().any(|route| serves(route, op)))
        .collect();
    assert!(
        unserved.is_empty(),
        "operations no route of the template serves: {unserved:?}"
    );
    // …and every route of the template is in the document: a concrete one
    // as it is, a greedy one with operations under it for each method it
    // takes.
    let missing: Vec<_> = routes
        .iter()
        .filter(|route| !operations.iter().any(|op| serves(route, op)))
        .collect();
    assert!(
        missing.is_empty(),
        "routes of the template the document lacks: {missing:?}"
    );
    // A `{proxy+}` route for one method only has operations of that method.
    for (method, path) in &operations {
        let under_greedy = routes
            .iter()
            .find(|(_, pattern)| pattern.ends_with("+}") && route_matches(pattern, path));
        if let Some((route_method, pattern)) = under_greedy {
            assert!(
                route_method == "ANY" || route_method == method,
                "{method} {path} is under {route_method} {pattern}"
            );
        }
    }
}

#[test]
fn a_route_the_document_lacks_is_found() {
    // The comparison can fail: without the webhook's POST, the template's
    // route is missing from the document.
    let mut document = document().expect("infra/openapi.yaml reads");
    document["paths"]["/webhooks/whatsapp"]
        .as_object_mut()
        .expect("a path item")
        .remove("post");
    let operations = operations(&document);
    let routes = template_routes().expect("the template reads");
    assert!(
        routes
            .iter()
            .any(|route| !operations.iter().any(|op| serves(route, op)))
    );
}

fn exchange(method: &str, path: &str, status: u16, content_type: &str, body: &str) -> Exchange {
    let mut headers = http::HeaderMap::new();
    if !content_type.is_empty() {
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_str(content_type).expect("a header value"),
        );
    }
    Exchange {
        method: method.into(),
        path: path.into(),
        status,
        headers,
        body: body.to_owned().into(),
    }
}

#[test]
fn answers_are_checked_against_the_document() {
    let contract = ApiContract::shared().as_ref().expect("the contract loads");
    let user =
        r#"{"workspace_id":"w","id":"u","email":"a@b.example","role":"owner","created_at":1}"#;
    let me = format!(r#"{{"user":{user},"workspace":null}}"#);
    let kept = |e: &Exchange| contract.violation(e);
    assert_eq!(
        kept(&exchange("GET", "/api/me", 200, "application/json", &me)),
        None
    );
    // A missing property, a wrong type, an undeclared status, a wrong
    // content type: each is a violation.
    for broken in [
        exchange(
            "GET",
            "/api/me",
            200,
            "application/json",
            &format!(r#"{{"user":{user}}}"#),
        ),
        exchange(
            "GET",
            "/api/me",
            200,
            "application/json",
            r#"{"user":1,"workspace":null}"#,
        ),
        exchange("GET", "/api/me", 418, "application/json", &me),
        exchange("GET", "/api/me", 200, "text/html", &me),
        // An error must have the `Error` shape.
        exchange(
            "GET",
            "/api/me",
            401,
            "application/json",
            r#"{"message":"no"}"#,
        ),
    ] {
        assert!(kept(&broken).is_some(), "{broken:?} is refused");
    }
    let refusal = r#"{"error":{"code":"method_not_allowed","message":"method not allowed; this path takes GET"}}"#;
    // The rules for every route: 405 for a method a known path lacks, 404
    // for an unknown path under a route, API Gateway's 404 elsewhere.
    let mut allowed = exchange("PATCH", "/api/me", 405, "application/json", refusal);
    assert!(
        kept(&allowed).is_some(),
        "a 405 lists the methods the path takes"
    );
    allowed
        .headers
        .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
    assert_eq!(kept(&allowed), None);
    assert!(kept(&exchange("PATCH", "/api/me", 200, "application/json", &me)).is_some());
    let unknown = r#"{"error":{"code":"not_found","message":"no route /api/x"}}"#;
    assert_eq!(
        kept(&exchange("GET", "/api/x", 404, "application/json", unknown)),
        None
    );
    let gateway = r#"{"message":"Not Found"}"#;
    assert_eq!(
        kept(&exchange(
            "GET",
            "/elsewhere",
            404,
            "application/json",
            gateway
        )),
        None
    );
    assert!(
        kept(&exchange(
            "GET",
            "/elsewhere",
            500,
            "application/json",
            gateway
        ))
        .is_some()
    );
    // Headers declared required: the live view's ETag.
    let view = r#"{"numbers":[],"record_pass":"p.s","chats":[],"senders":[]}"#;
    assert!(
        kept(&exchange(
            "GET",
            "/api/live/chats",
            200,
            "application/json",
            view
        ))
        .is_some()
    );
    let mut tagged = exchange("GET", "/api/live/chats", 200, "application/json", view);
    tagged
        .headers
        .insert(http::header::ETAG, http::HeaderValue::from_static("\"t\""));
    assert_eq!(kept(&tagged), None);
}

#[test]
fn the_sync_log_events_are_the_ones_the_sync_writes() {
    let document = document().expect("infra/openapi.yaml reads");
    let listed: Vec<&str> =
        document["components"]["schemas"]["LogEntry"]["properties"]["event"]["enum"]
            .as_array()
            .expect("LogEntry.event lists its names")
            .iter()
            .filter_map(Value::as_str)
            .collect();
    let written: Vec<&str> = shared::synclog::SyncEvent::ALL
        .iter()
        .map(|event| event.as_str())
        .collect();
    assert_eq!(listed, written);
}
