//! Our own API's contract: `infra/openapi.yaml`, and the check that every
//! answer the end-to-end tests get keeps it.
//!
//! The local runner shows every answer of the HTTP API to
//! [`ContractCheck`] (`local_stack::runner::HttpObserver`), whichever
//! client asked (the harness's helpers, `system.http`, a browser), so the
//! check is not optional. An answer keeps the contract when its path
//! matches a path template of the document, its status is declared for the
//! method, its content type is one declared for that status, the headers
//! declared `required` are there, and its body validates against the
//! schema (JSON as JSON, text as a string). The two rules the document
//! states for every route are checked too: an undeclared method on a known
//! path is `405` with `Allow` (or the `401`/`404` its routing gives first),
//! an unknown path under one of the template's routes is `404`, all with
//! the `Error` body; outside the template's routes, only API Gateway's own
//! `404 {"message": "Not Found"}`.
//!
//! OpenAPI 3.1 schemas are JSON Schema 2020-12: each is compiled (once per
//! process) as a reference into the whole document, so `$ref`s to
//! `#/components/schemas/…` resolve as they are written.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::Validator;
use local_stack::runner::{Exchange, HttpObserver, route_matches};
use serde_json::{Value, json};

/// Where the document is.
pub fn document_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/openapi.yaml"
    ))
}

/// The HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The document read as JSON.
pub fn document() -> Result<Value, String> {
    let path = document_path();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every operation of the document: (METHOD, path template).
pub fn operations(document: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if item.get(method).is_some() {
                found.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    found
}

/// The routes the template declares: (METHOD or ANY, path pattern).
pub fn template_routes() -> Result<Vec<(String, String)>, String> {
    let template = local_stack::Template::load(&local_stack::template_path())
        .map_err(|e| format!("the template: {e}"))?;
    Ok(template
        .functions
        .iter()
        .flat_map(|f| f.http_routes.iter().cloned())
        .collect())
}

/// A JSON pointer token (RFC 6901).
fn token(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Whether an OpenAPI path template (`/api/chats/{chat_key}/messages`)
/// matches a request path, segment by segment; and how many of its
/// segments are literal (the more, the better the match).
fn template_match(template: &str, path: &str) -> Option<usize> {
    let want: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let have: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if want.len() != have.len() {
        return None;
    }
    let mut literal = 0;
    for (w, h) in want.iter().zip(&have) {
        if w.starts_with('{') && w.ends_with('}') {
            continue;
        }
        if w != h {
            return None;
        }
        literal += 1;
    }
    Some(literal)
}

/// The media type of a `Content-Type` value, lower case, without parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether a declared content key (`text/html`, `*/*`, `image/*`) covers
/// `media`.
fn covers(declared: &str, media: &str) -> bool {
    let declared = declared.to_ascii_lowercase();
    declared == media
        || declared == "*/*"
        || declared
            .strip_suffix("/*")
            .is_some_and(|kind| media.split('/').next() == Some(kind))
}

/// The document with its schemas compiled on first use.
pub struct ApiContract {
    document: Value,
    routes: Vec<(String, String)>,
    compiled: Mutex<HashMap<String, Result<Arc<Validator>, String>>>,
}

impl ApiContract {
    /// The project's document and template, read and checked once per process.
    pub fn shared() -> &'static Result<ApiContract, String> {
        static CONTRACT: OnceLock<Result<ApiContract, String>> = OnceLock::new();
        CONTRACT.get_or_init(|| Self::new(document()?, template_routes()?))
    }

    pub fn new(document: Value, routes: Vec<(String, String)>) -> Result<Self, String> {
        let contract = Self {
            document,
            routes,
            compiled: Mutex::default(),
        };
        // Every response schema compiles, or the contract is unusable: say
        // so now rather than in the first test that meets it.
        for pointer in contract.response_schema_pointers() {
            contract.validator(&pointer)?;
        }
        Ok(contract)
    }

    pub fn document(&self) -> &Value {
        &self.document
    }

    /// JSON pointers of every schema under a response's content.
    pub fn response_schema_pointers(&self) -> Vec<String> {
        let mut pointers = Vec::new();
        for (method, path) in operations(&self.document) {
            let operation = format!("/paths/{}/{}", token(&path), method.to_ascii_lowercase());
            let responses = format!("{operation}/responses");
            for (status, _) in self
                .document
                .pointer(&responses)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let (response, at) = self.response(&format!("{responses}/{}", token(status)));
                for (media, _) in response["content"].as_object().into_iter().flatten() {
                    pointers.push(format!("{at}/content/{}/schema", token(media)));
                }
            }
        }
        pointers
    }

    /// Follows a Response Object's `$ref` (one level, as the document uses).
    fn resolved_pointer(&self, pointer: &str) -> String {
        match self
            .document
            .pointer(pointer)
            .and_then(|r| r["$ref"].as_str())
            .and_then(|r| r.strip_prefix('#'))
        {
            Some(target) => target.to_owned(),
            None => pointer.to_owned(),
        }
    }

    /// The Response Object at `pointer` (its `$ref` followed) and its pointer.
    fn response(&self, pointer: &str) -> (&Value, String) {
        let resolved = self.resolved_pointer(pointer);
        (
            self.document.pointer(&resolved).unwrap_or(&Value::Null),
            resolved,
        )
    }

    /// The validator of the schema at `pointer`, compiled once.
    fn validator(&self, pointer: &str) -> Result<Arc<Validator>, String> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = compiled.get(pointer) {
            return found.clone();
        }
        let mut root = self.document.clone();
        if let Some(object) = root.as_object_mut() {
            object.insert(
                "$schema".into(),
                json!("https://json-schema.org/draft/2020-12/schema"),
            );
            // A URI fragment: the braces of path templates are escaped.
            let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
            object.insert("$ref".into(), json!(format!("#{fragment}")));
        }
        let result = jsonschema::draft202012::new(&root)
            .map(Arc::new)
            .map_err(|e| format!("the schema at {pointer} does not compile: {e}"));
        compiled.insert(pointer.to_owned(), result.clone());
        result
    }

    fn errors(&self, pointer: &str, instance: &Value) -> Option<String> {
        let validator = match self.validator(pointer) {
            Ok(v) => v,
            Err(e) => return Some(e),
        };
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .take(5)
            .map(|e| format!("at '{}': {e}", e.instance_path()))
            .collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    }

    /// The best-matching path template of the document, if any.
    fn path_template(&self, path: &str) -> Option<&str> {
        self.document["paths"]
            .as_object()?
            .keys()
            .filter_map(|t| template_match(t, path).map(|literal| (literal, t)))
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, t)| t.as_str())
    }

    /// Whether a route of the template takes this request to a function.
    fn routed(&self, method: &str, path: &str) -> bool {
        self.routes
            .iter()
            .any(|(m, pattern)| (m == "ANY" || m == method) && route_matches(pattern, path))
    }

    /// Why the answer breaks the contract, if it does.
    pub fn violation(&self, exchange: &Exchange) -> Option<String> {
        let method = exchange.method.to_ascii_uppercase();
        if !self.routed(&method, &exchange.path) {
            let gateway = serde_json::from_slice::<Value>(&exchange.body).ok()
                == Some(json!({ "message": "Not Found" }));
            return (exchange.status != 404 || !gateway).then(|| {
                format!(
                    "no route of the template takes it, yet the answer is {} {}",
                    exchange.status,
                    String::from_utf8_lossy(&exchange.body)
                )
            });
        }
        let Some(template) = self.path_template(&exchange.path) else {
            return self.error_rule(exchange, 404, "an unknown path");
        };
        let operation = format!("/paths/{}/{}", token(template), method.to_ascii_lowercase());
        if self.document.pointer(&operation).is_none() {
            // Routing may refuse the resource or the caller before it
            // looks at the method (an unknown CRM, no token).
            if matches!(exchange.status, 401 | 404) {
                return self.error_rule(
                    exchange,
                    exchange.status,
                    &format!("{template} without {method}"),
                );
            }
            if !exchange.headers.contains_key(http::header::ALLOW) {
                return Some(format!("{method} {template}: a 405 without `Allow`"));
            }
            return self.error_rule(exchange, 405, &format!("{template} without {method}"));
        }
        let status = exchange.status.to_string();
        let declared = format!("{operation}/responses/{status}");
        if self.document.pointer(&declared).is_none() {
            return Some(format!(
                "{method} {template}: status {status} is not declared ({})",
                String::from_utf8_lossy(&exchange.body)
            ));
        }
        let (response, response_pointer) = self.response(&declared);
        let at = format!("{method} {template} {status}");
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            let header = self
                .document
                .pointer(
                    header["$ref"]
                        .as_str()
                        .and_then(|r| r.strip_prefix('#'))
                        .unwrap_or_default(),
                )
                .unwrap_or(header);
            if header["required"] == true && !exchange.headers.contains_key(name.as_str()) {
                return Some(format!("{at}: the required header {name} is missing"));
            }
        }
        let Some(content) = response["content"].as_object() else {
            return (!exchange.body.is_empty())
                .then(|| format!("{at}: a body where none is declared"));
        };
        let media = exchange
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(media_type)
            .unwrap_or_default();
        let Some(declared_media) = content.keys().find(|d| covers(d, &media)) else {
            return Some(format!(
                "{at}: content type `{media}` is not one of {:?}",
                content.keys().collect::<Vec<_>>()
            ));
        };
        let instance = if media == "application/json" || media.ends_with("+json") {
            match serde_json::from_slice::<Value>(&exchange.body) {
                Ok(value) => value,
                Err(e) => return Some(format!("{at}: the body is not JSON: {e}")),
            }
        } else if media.starts_with("text/") {
            Value::String(String::from_utf8_lossy(&exchange.body).into_owned())
        } else {
            // Bytes (a media file): the content type was the check.
            return None;
        };
        let schema = format!(
            "{response_pointer}/content/{}/schema",
            token(declared_media)
        );
        self.errors(&schema, &instance)
            .map(|errors| format!("{at}: the body breaks the schema: {errors}"))
    }

    /// The rule for answers no operation declares: `status` with the
    /// `Error` body.
    fn error_rule(&self, exchange: &Exchange, status: u16, what: &str) -> Option<String> {
        if exchange.status != status {
            return Some(format!(
                "{what} ({} {}) must be answered {status}, not {} {}",
                exchange.method,
                exchange.path,
                exchange.status,
                String::from_utf8_lossy(&exchange.body)
            ));
        }
        let body = serde_json::from_slice::<Value>(&exchange.body).unwrap_or_default();
        self.errors("/components/schemas/Error", &body)
            .map(|errors| format!("{what}: the {status} body breaks `Error`: {errors}"))
    }
}

/// Records every answer that breaks the contract (see the module docs).
pub struct ContractCheck {
    contract: &'static ApiContract,
    violations: Mutex<Vec<String>>,
    /// Answers checked, per `METHOD path-template status` (for the report).
    seen: Mutex<BTreeMap<String, usize>>,
}

impl ContractCheck {
    pub fn new() -> Result<Self, String> {
        let contract = ApiContract::shared().as_ref().map_err(Clone::clone)?;
        Ok(Self {
            contract,
            violations: Mutex::default(),
            seen: Mutex::default(),
        })
    }

    pub fn violations(&self) -> Vec<String> {
        self.violations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The violations recorded so far, which are then forgotten (for a
    /// caller that reports them itself rather than failing a test).
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut *self.violations.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// How many answers were checked.
    pub fn checked(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }
}

impl HttpObserver for ContractCheck {
    fn observe(&self, exchange: &Exchange) {
        let template = self
            .contract
            .path_template(&exchange.path)
            .unwrap_or("(no path)")
            .to_owned();
        *self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(format!(
                "{} {template} {}",
                exchange.method, exchange.status
            ))
            .or_default() += 1;
        if let Some(violation) = self.contract.violation(exchange) {
            tracing::error!(%violation, "answer outside infra/openapi.yaml");
            self.violations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(violation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_segment_by_segment_preferring_literals() {
        assert_eq!(template_match("/api/me", "/api/me"), Some(2));
        assert_eq!(template_match("/api/me", "/api/me/token"), None);
        assert_eq!(
            template_match(
                "/api/chats/{chat_key}/messages",
                "/api/chats/1%2347/messages"
            ),
            Some(3)
        );
        assert_eq!(template_match("/live/{crm}", "/live/zoho"), Some(1));
        assert!(covers("*/*", "image/png"));
        assert!(covers("image/*", "image/png"));
        assert!(!covers("text/html", "application/json"));
    }
}
