//! Contract checking against Pipedrive's OpenAPI files (see [`crate::spec`]).
//!
//! For every request to an operation of the files the sandbox checks the
//! request (query and path parameters, content type, body) and the response
//! it sends (status documented? body valid?). Violations are recorded, never
//! enforced, so tests can assert that both the production client and the
//! sandbox stay inside the vendor's contract.
//!
//! How the OAS 3.0 schemas are made usable by a JSON-Schema (draft 4)
//! validator:
//! * The files contain no `$ref` (every schema is inlined), so each schema is
//!   compiled on its own.
//! * `nullable: true` becomes a `"null"` type (or enum member); without a
//!   `type` the schema is wrapped in `anyOf [schema, {type: null}]`.
//! * `oneOf` is read as `anyOf` (the only `oneOf`s, `string | number |
//!   object` in product custom fields, overlap for integers).
//! * Empty `format` strings are dropped.
//! * `required` is kept in both directions: unlike Zoho's, Pipedrive's request
//!   schemas are written for requests (`title` of a lead, `content` of a note).
//! * Responses: Pipedrive returns `null` for unset properties (`org_id`,
//!   `picture_id`, `next_cursor` at the end of a list, …) while the files mark
//!   few of them `nullable`, so in response mode every property also accepts
//!   `null`. Request bodies stay strict: a `null` where the file does not say
//!   `nullable` is a violation.
//! * Form and multipart bodies are checked as JSON objects whose string
//!   values are first converted to the schema's scalar type where they parse.
//! * Query and path parameters are checked by hand: undeclared or missing
//!   required parameters, integers, numbers, booleans (`true`/`false` only),
//!   enums (comma lists checked item by item) and `uuid` strings.
//! * Statuses the operation does not document: errors (≥ 400) must have the
//!   generic error envelope of the reference (`success: false`, `error`);
//!   an undocumented success status is itself a violation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Draft, Validator};
use serde_json::{Map, Value, json};

use crate::spec::{self, Matched, Operation};

/// One recorded contract violation (shared by the sandboxes).
pub use sandbox_kit::contract::ContractViolation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Request,
    Response,
}

/// A request body as the checker sees it.
#[derive(Debug, Clone)]
pub enum Body {
    None,
    Json(Value),
    /// `application/x-www-form-urlencoded` or `multipart/form-data` fields
    /// (files as their file name).
    Fields {
        media_type: String,
        fields: Map<String, Value>,
    },
    /// Something that is neither (or JSON that does not parse).
    Other {
        media_type: String,
    },
}

fn null_allowed(mut s: Value) -> Value {
    let Some(obj) = s.as_object_mut() else {
        return s;
    };
    match obj.get("type").cloned() {
        Some(Value::String(t)) => {
            obj.insert("type".into(), json!([t, "null"]));
            if let Some(Value::Array(e)) = obj.get_mut("enum")
                && !e.contains(&Value::Null)
            {
                e.push(Value::Null);
            }
            s
        }
        Some(Value::Array(_)) => s,
        _ if obj.is_empty() => s,
        _ => json!({"anyOf": [s, {"type": "null"}]}),
    }
}

/// Rewrites one OAS schema for the validator (see module docs).
fn transform(v: &Value, mode: Mode) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| transform(i, mode)).collect()),
        Value::Object(obj) => {
            let mut out = Map::new();
            for (k, val) in obj {
                match (k.as_str(), val) {
                    ("oneOf", Value::Array(_)) => {
                        out.insert("anyOf".into(), transform(val, mode));
                    }
                    ("format", Value::String(f)) if f.is_empty() => {}
                    ("nullable" | "example" | "description", _) => {}
                    ("properties", Value::Object(props)) => {
                        let props = props
                            .iter()
                            .map(|(name, p)| {
                                let t = transform(p, mode);
                                let t = if mode == Mode::Response {
                                    null_allowed(t)
                                } else {
                                    t
                                };
                                (name.clone(), t)
                            })
                            .collect();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    _ => {
                        out.insert(k.clone(), transform(val, mode));
                    }
                }
            }
            if obj.get("nullable") == Some(&Value::Bool(true)) {
                return null_allowed(Value::Object(out));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// The envelope any error must have when its status is not documented.
fn generic_error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["success", "error"],
        "properties": {
            "success": {"enum": [false]},
            "error": {"type": "string"},
            "error_info": {"type": "string"},
            "errorCode": {"type": "integer"}
        }
    })
}

type Compiled = Result<Arc<Validator>, String>;
type Cache = Mutex<HashMap<String, Compiled>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Compiles (once) the schema cached under `key`. A schema that does not
/// compile is a defect of the files or of [`transform`]: it is reported as
/// a violation instead of silently skipping the check.
fn compile(key: String, schema: impl FnOnce() -> Value) -> Compiled {
    if let Some(v) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return v.clone();
    }
    let compiled = jsonschema::options()
        .with_draft(Draft::Draft4)
        .build(&schema())
        .map(Arc::new)
        .map_err(|e| format!("schema does not compile ({key}): {e}"));
    cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, compiled.clone());
    compiled
}

/// Validates `instance` against the schema compiled under `key`.
fn validate(key: String, schema: impl FnOnce() -> Value, instance: &Value) -> Option<String> {
    match compile(key, schema) {
        Ok(v) => run(&v, instance),
        Err(e) => Some(e),
    }
}

fn run(validator: &Validator, instance: &Value) -> Option<String> {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .take(5)
        .map(|e| format!("at '{}': {}", e.instance_path(), e))
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Documented request body schemas by media type.
fn request_contents(op: &Operation) -> Option<Map<String, Value>> {
    let s = spec::spec().ok()?;
    s.operation_json(op)?
        .get("requestBody")?
        .get("content")?
        .as_object()
        .cloned()
}

fn scalar_type(schema: &Value) -> Option<&str> {
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        return Some(t);
    }
    schema
        .get("allOf")
        .and_then(Value::as_array)?
        .iter()
        .find_map(scalar_type)
}

/// Form values are strings; convert them to the declared scalar type.
fn coerce_fields(fields: &Map<String, Value>, schema: &Value) -> Value {
    let props = schema.get("properties").and_then(Value::as_object);
    let out = fields
        .iter()
        .map(|(k, v)| {
            let declared = props.and_then(|p| p.get(k)).and_then(scalar_type);
            let coerced = match (declared, v.as_str()) {
                (Some("integer"), Some(s)) => s.parse::<i64>().map(Value::from).ok(),
                (Some("number"), Some(s)) => s.parse::<f64>().ok().map(|f| json!(f)),
                (Some("boolean"), Some(s)) => s.parse::<bool>().map(Value::Bool).ok(),
                _ => None,
            };
            (k.clone(), coerced.unwrap_or_else(|| v.clone()))
        })
        .collect();
    Value::Object(out)
}

fn check_scalar(name: &str, value: &str, schema: &Value) -> Option<String> {
    let bad = |what: &str| Some(format!("parameter {name}={value:?} is not {what}"));
    match scalar_type(schema) {
        Some("integer") if value.parse::<i64>().is_err() => return bad("an integer"),
        Some("number") if value.parse::<f64>().is_err() => return bad("a number"),
        Some("boolean") if value != "true" && value != "false" => {
            return bad("a boolean (true/false)");
        }
        _ => {}
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        for part in value.split(',') {
            let ok = allowed.iter().any(|a| match a {
                Value::String(s) => s == part,
                other => serde_json::from_str::<Value>(part).ok().as_ref() == Some(other),
            });
            if !ok {
                return Some(format!(
                    "parameter {name}: {part:?} is not one of {}",
                    Value::Array(allowed.clone())
                ));
            }
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("uuid")
        && uuid::Uuid::parse_str(value).is_err()
    {
        return bad("a UUID");
    }
    None
}

/// Checks query and path parameters; one message per problem.
pub fn check_parameters(m: &Matched, query: &[(String, String)]) -> Vec<String> {
    let Ok(s) = spec::spec() else {
        return Vec::new();
    };
    let declared = s.parameters(m.op);
    let mut problems = Vec::new();
    for p in &declared {
        let (Some(name), Some(place)) = (
            p.get("name").and_then(Value::as_str),
            p.get("in").and_then(Value::as_str),
        ) else {
            continue;
        };
        let schema = p.get("schema").cloned().unwrap_or(Value::Null);
        let given: Option<&str> = match place {
            "query" => query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
            "path" => m.param(name),
            _ => continue,
        };
        match given {
            None if p.get("required") == Some(&Value::Bool(true)) => {
                problems.push(format!("missing required {place} parameter {name}"));
            }
            None => {}
            Some(v) => problems.extend(check_scalar(name, v, &schema)),
        }
    }
    for (k, _) in query {
        let known = declared.iter().any(|p| {
            p.get("in").and_then(Value::as_str) == Some("query")
                && p.get("name").and_then(Value::as_str) == Some(k.as_str())
        });
        if !known {
            problems.push(format!("undeclared query parameter {k}"));
        }
    }
    problems
}

/// Checks a request body against the operation's documented bodies.
pub fn check_request_body(op: &Operation, body: &Body) -> Option<String> {
    let contents = request_contents(op);
    let (media, instance) = match body {
        Body::None => {
            let required = spec::spec()
                .ok()
                .and_then(|s| s.operation_json(op))
                .and_then(|o| o.pointer("/requestBody/required"))
                == Some(&Value::Bool(true));
            return required.then(|| "request body required but none sent".to_string());
        }
        Body::Json(v) => ("application/json".to_string(), Some(v)),
        Body::Fields { media_type, .. } | Body::Other { media_type } => (media_type.clone(), None),
    };
    let Some(contents) = contents else {
        return Some(format!("operation takes no request body, got {media}"));
    };
    let Some(entry) = contents.get(&media) else {
        let documented: Vec<&String> = contents.keys().collect();
        return Some(format!(
            "content type {media} not documented (documented: {documented:?})"
        ));
    };
    let schema = entry.get("schema")?;
    let instance = match (body, instance) {
        (_, Some(v)) => v.clone(),
        (Body::Fields { fields, .. }, None) => coerce_fields(fields, schema),
        // Multipart bodies are parsed by the upload handler only; one refused
        // before it (401, 429, …) cannot be checked.
        (Body::Other { .. }, None) if media.starts_with("multipart/") => return None,
        _ => return Some(format!("{media} body does not parse")),
    };
    let key = format!("req {} {}", op.label(), media);
    validate(key, || transform(schema, Mode::Request), &instance)
}

/// Checks a JSON response body sent with `status`.
pub fn check_response(op: &Operation, status: u16, body: Option<&Value>) -> Option<String> {
    let s = spec::spec().ok()?;
    let responses = s.operation_json(op)?.get("responses")?.as_object()?;
    let status_s = status.to_string();
    match responses.get(&status_s) {
        Some(r) => {
            let content = r.get("content").and_then(Value::as_object);
            let schema = content
                .and_then(|c| c.get("application/json"))
                .and_then(|j| j.get("schema"));
            match (schema, body) {
                (Some(schema), Some(b)) => {
                    let key = format!("resp {} {status}", op.label());
                    validate(key, || transform(schema, Mode::Response), b)
                }
                (Some(_), None) => Some("documented JSON body missing".into()),
                (None, _) => None,
            }
        }
        None if status >= 400 => check_generic_error(body),
        None => {
            let documented: Vec<&String> = responses.keys().collect();
            Some(format!(
                "status {status} not documented (documented: {documented:?})"
            ))
        }
    }
}

/// Checks an error body against the reference's generic error envelope.
pub fn check_generic_error(body: Option<&Value>) -> Option<String> {
    let Some(b) = body else {
        return Some("error without a JSON body".into());
    };
    validate("generic error".into(), generic_error_schema, b)
}

/// Parses a body for checking and recording.
pub fn classify_body(content_type: &str, bytes: &[u8]) -> Body {
    if bytes.is_empty() {
        return Body::None;
    }
    let media = media_type(content_type);
    match media.as_str() {
        "application/json" => serde_json::from_slice(bytes)
            .map(Body::Json)
            .unwrap_or(Body::Other { media_type: media }),
        "application/x-www-form-urlencoded" => Body::Fields {
            fields: url::form_urlencoded::parse(bytes)
                .into_owned()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
            media_type: media,
        },
        _ => Body::Other { media_type: media },
    }
}

impl Body {
    /// What [`crate::RecordedRequest::body`] keeps.
    pub fn recorded(&self) -> Option<Value> {
        match self {
            Body::None | Body::Other { .. } => None,
            Body::Json(v) => Some(v.clone()),
            Body::Fields { fields, .. } => Some(Value::Object(fields.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(method: &str, path: &str) -> Matched {
        spec::spec()
            .expect("spec")
            .find(method, path)
            .expect("operation")
    }

    #[test]
    fn lead_request_bodies() {
        let m = find("POST", "/v1/leads");
        let good = Body::Json(json!({"title": "WhatsApp: Ana", "person_id": 42,
            "value": {"amount": 0, "currency": "EUR"}, "visible_to": "3"}));
        assert_eq!(check_request_body(m.op, &good), None);
        let bad = Body::Json(json!({"person_id": "42"}));
        let msg = check_request_body(m.op, &bad).expect("violation");
        assert!(msg.contains("title"), "{msg}");
        let form = Body::Fields {
            media_type: "application/x-www-form-urlencoded".into(),
            fields: Map::new(),
        };
        assert!(check_request_body(m.op, &form).is_some());
    }

    #[test]
    fn responses_accept_null_but_check_types() {
        let m = find("GET", "/api/v2/persons/7");
        let ok = json!({"success": true, "data": {"id": 7, "name": "Ana", "org_id": null,
            "phones": [{"value": "+351", "primary": true, "label": "mobile"}], "custom_fields": {}}});
        assert_eq!(check_response(m.op, 200, Some(&ok)), None);
        let bad = json!({"success": true, "data": {"id": "7", "phones": ["+351"]}});
        assert!(check_response(m.op, 200, Some(&bad)).is_some());
        let err =
            json!({"success": false, "error": "Person not found", "error_info": "x", "data": null});
        assert_eq!(check_response(m.op, 404, Some(&err)), None);
        assert!(
            check_response(m.op, 201, Some(&ok)).is_some(),
            "undocumented success status"
        );
    }

    /// Every request and response schema of both files compiles after
    /// [`transform`] (so no check is ever skipped).
    #[test]
    fn every_schema_compiles() {
        let s = spec::spec().expect("spec");
        let mut failures = Vec::new();
        for op in &s.operations {
            let Some(o) = s.operation_json(op) else {
                continue;
            };
            let bodies = o.pointer("/requestBody/content").and_then(Value::as_object);
            for (media, c) in bodies.into_iter().flatten() {
                if let Some(schema) = c.get("schema") {
                    let key = format!("req {} {media}", op.label());
                    failures.extend(compile(key, || transform(schema, Mode::Request)).err());
                }
            }
            for (status, r) in o
                .get("responses")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if let Some(schema) = r.pointer("/content/application~1json/schema") {
                    let key = format!("resp {} {status}", op.label());
                    failures.extend(compile(key, || transform(schema, Mode::Response)).err());
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn parameters() {
        let m = find("GET", "/api/v2/persons/search");
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(
            check_parameters(
                &m,
                &q(&[
                    ("term", "+351"),
                    ("fields", "phone,name"),
                    ("exact_match", "true")
                ])
            )
            .is_empty()
        );
        assert_eq!(
            check_parameters(&m, &q(&[("term", "x"), ("exact_match", "1")])).len(),
            1
        );
        assert_eq!(
            check_parameters(&m, &q(&[("exact_match", "true")])).len(),
            1,
            "term is required"
        );
        assert_eq!(
            check_parameters(&m, &q(&[("term", "ab"), ("fields", "phones")])).len(),
            1
        );
        assert_eq!(
            check_parameters(&m, &q(&[("term", "ab"), ("foo", "1")])).len(),
            1
        );
        let m = find("GET", "/v1/leads/not-a-uuid");
        assert_eq!(check_parameters(&m, &[]).len(), 1);
    }
}
