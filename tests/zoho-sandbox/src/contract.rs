//! Contract checking against Zoho's own OpenAPI description (`oas/`, copied
//! unaltered from `zoho/crm-oas` v8.0).
//!
//! Every JSON request body the sandbox receives and every JSON response it
//! sends for a covered operation is validated with `jsonschema`. Violations
//! are recorded (never enforced) so tests can assert that both the production
//! client and the sandbox stay inside the vendor's contract.
//!
//! How the OAS files are made usable by a JSON-Schema validator:
//! * OAS 3.0 schemas are close to JSON Schema draft 4, so draft 4 is used.
//! * `nullable: true` is translated into a `"null"` type / enum member.
//! * `oneOf` is read as `anyOf`: Zoho's alternatives overlap heavily (many
//!   error schemas have no `required`, so an empty object matches several of
//!   them) and a strict `oneOf` would reject every real response.
//! * Local (`#/...`) and cross-file (`https://raw.githubusercontent.com/...`)
//!   `$ref`s are rewritten to absolute URLs served by an in-memory retriever.
//!   Referenced files this product does not use (tags, layouts, profiles,
//!   custom views, related lists) are replaced by permissive stubs.
//! * Request bodies: Zoho reuses the read schemas (e.g. `Note`, whose
//!   `required` lists server-generated fields such as `id`, `Created_Time`, and
//!   `Minified_Module`, which requires `id`) for request bodies. A client can
//!   never send those, so in request mode `required` is ignored everywhere
//!   except on the operation's top-level body schema.
//! * A few schemas contradict Zoho's documented behaviour; they are patched,
//!   each patch listed in [`PATCHES`] with its reason.
//!
//! Status mapping: when the sandbox answers with a status the operation does
//! not document (Zoho's OAS lists 200 for inserts that really answer 201/207,
//! and nothing for 401/429), the body is checked against every documented
//! response of the operation plus a "per-record result" schema (the union of
//! the documented `data[]` item schemas, needed for 207 mixed results); bodies
//! without `data` fall back to `common.json#/components/schemas/API_Exception`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use jsonschema::{Draft, Registry, Validator};
use serde_json::{Map, Value, json};

/// Base URL Zoho's files use for cross-file references.
const ZOHO_BASE: &str =
    "https://raw.githubusercontent.com/Zohocorp-Pvt-Ltd/crm-oas/refs/heads/main/v8.0/";
const REQUEST_BASE: &str = "https://oas.zoho-sandbox.invalid/request/";
const RESPONSE_BASE: &str = "https://oas.zoho-sandbox.invalid/response/";

/// The embedded OAS files (unaltered copies, see `oas/README.md`).
const FILES: &[(&str, &str)] = &[
    ("attachments.json", include_str!("../oas/attachments.json")),
    ("common.json", include_str!("../oas/common.json")),
    (
        "convert_lead.json",
        include_str!("../oas/convert_lead.json"),
    ),
    ("fields.json", include_str!("../oas/fields.json")),
    (
        "module_search.json",
        include_str!("../oas/module_search.json"),
    ),
    ("modules.json", include_str!("../oas/modules.json")),
    ("notes.json", include_str!("../oas/notes.json")),
    ("org.json", include_str!("../oas/org.json")),
    ("record.json", include_str!("../oas/record.json")),
    ("users.json", include_str!("../oas/users.json")),
];

/// Files referenced from the kept ones but outside this product's surface:
/// (file, schema name). They validate anything.
const STUB_FILES: &[(&str, &str)] = &[
    ("tags.json", "Tag"),
    ("layouts.json", "layouts"),
    ("profiles.json", "Minified_Profile"),
    ("custom_views.json", "custom_views"),
    ("related_lists.json", "related_list"),
];

/// A correction applied to a vendor schema before use.
struct Patch {
    file: &'static str,
    /// JSON pointer of the schema object to patch.
    pointer: &'static str,
    apply: fn(&mut Map<String, Value>),
    #[allow(dead_code)] // documentation for humans reading the table
    reason: &'static str,
}

const PATCHES: &[Patch] = &[
    Patch {
        file: "notes.json",
        pointer: "/components/schemas/Note",
        apply: |s| {
            s.remove("required");
        },
        reason: "Note marks all 15 properties required, but GET .../Notes?fields=Note_Title \
                 returns only the requested fields (+ id), exactly as `fields` is meant to work",
    },
    Patch {
        file: "convert_lead.json",
        pointer: "/components/schemas/Successful_Convert/properties/Accounts",
        apply: |s| {
            s.insert("nullable".into(), Value::Bool(true));
        },
        reason: "Zoho answers `\"Accounts\": null` when conversion creates no account",
    },
    Patch {
        file: "convert_lead.json",
        pointer: "/components/schemas/Successful_Convert/properties/Deals",
        apply: |s| {
            s.insert("nullable".into(), Value::Bool(true));
        },
        reason: "Zoho answers `\"Deals\": null` when conversion creates no deal",
    },
    Patch {
        file: "record.json",
        pointer: "/components/schemas/API_Exception",
        apply: |s| {
            s.insert(
                "required".into(),
                json!(["status", "code", "message", "details"]),
            );
        },
        reason: "declares no `required`, so as an alternative it matches every object and would \
                 make any response valid; Zoho errors always carry all four keys (common.json's \
                 API_Exception requires them)",
    },
    Patch {
        file: "record.json",
        pointer: "/components/schemas/Success_Response",
        apply: |s| {
            s.insert(
                "required".into(),
                json!(["status", "code", "message", "details"]),
            );
        },
        reason: "same as API_Exception: without `required` it matches any object",
    },
    Patch {
        file: "notes.json",
        pointer: "/components/schemas/error/properties/code",
        apply: |s| {
            s.remove("enum");
        },
        reason: "`error` is the only documented 400 body of GET Notes but allows just \
                 INTERNAL_SERVER_ERROR; a missing `fields` param is a 400 REQUIRED_PARAM_MISSING",
    },
    Patch {
        file: "users.json",
        pointer: "/components/schemas/users/properties/email",
        apply: |s| {
            s.remove("pattern");
        },
        reason: "pattern `[a-z0-9]{9}[@][a-z0-9]{5}[.]com` was generated from one sample address \
                 and rejects almost every real e-mail",
    },
    Patch {
        file: "users.json",
        pointer: "/components/schemas/users/properties/website",
        apply: |s| {
            s.remove("pattern");
        },
        reason: "pattern `[a-z0-9]{5}[.]com` was generated from one sample value",
    },
    Patch {
        file: "users.json",
        pointer: "/components/schemas/users/properties/time_zone",
        apply: |s| {
            s.insert("type".into(), Value::String("string".into()));
        },
        reason: "typed `object`, but Zoho (and its own docs) return an IANA zone string",
    },
];

/// Which OAS operation a sandbox route answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpRef {
    pub file: &'static str,
    pub path: &'static str,
    pub method: &'static str,
}

const fn op(file: &'static str, path: &'static str, method: &'static str) -> OpRef {
    OpRef { file, path, method }
}

/// Maps a concrete request to the OAS operation whose schemas apply.
/// Returns `None` for routes the OAS files do not describe (accounts server,
/// `/__sandbox/`), which are therefore not contract-checked.
pub fn classify(method: &str, path: &str) -> Option<OpRef> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segs.len() < 3 || segs[0] != "crm" || segs[1] != "v8" {
        return None;
    }
    let rest = &segs[2..];
    let m = method.to_ascii_lowercase();
    let o = match (m.as_str(), rest) {
        ("get", ["users"]) => op("users.json", "/crm/v8/users", "get"),
        ("get", ["users", _]) => op("users.json", "/crm/v8/users/{user}", "get"),
        ("get", ["org"]) => op("org.json", "/crm/v8/org", "get"),
        ("get", ["settings", "modules"]) => op("modules.json", "/crm/v8/settings/modules", "get"),
        ("get", ["settings", "modules", _]) => {
            op("modules.json", "/crm/v8/settings/modules/{api_name}", "get")
        }
        ("get", ["settings", "fields"]) => op("fields.json", "/crm/v8/settings/fields", "get"),
        ("get", ["settings", "fields", _]) => {
            op("fields.json", "/crm/v8/settings/fields/{field}", "get")
        }
        ("get", ["Notes"]) => op("notes.json", "/crm/v8/Notes", "get"),
        ("post", ["Notes"]) => op("notes.json", "/crm/v8/Notes", "post"),
        ("put", ["Notes"]) => op("notes.json", "/crm/v8/Notes", "put"),
        ("get", ["Notes", _]) => op("notes.json", "/crm/v8/Notes/{id}", "get"),
        ("put", ["Notes", _]) => op("notes.json", "/crm/v8/Notes/{id}", "put"),
        // The related-list form of notes (`/{module}/{id}/Notes`) is not in
        // notes.json; it takes and returns the same bodies as `/Notes`.
        ("get", [_, _, "Notes"]) => op("notes.json", "/crm/v8/Notes", "get"),
        ("post", [_, _, "Notes"]) => op("notes.json", "/crm/v8/Notes", "post"),
        ("get", [_, _, "Attachments"]) => op(
            "attachments.json",
            "/crm/v8/{module}/{record_id}/Attachments",
            "get",
        ),
        ("post", [_, _, "Attachments"]) => op(
            "attachments.json",
            "/crm/v8/{module}/{record_id}/Attachments",
            "post",
        ),
        ("post", ["Leads", _, "actions", "convert"]) => op(
            "convert_lead.json",
            "/crm/v8/Leads/{lead_id}/actions/convert",
            "post",
        ),
        ("get", [_, "search"]) => op("module_search.json", "/crm/v8/{module}/search", "get"),
        ("get", [_]) => op("record.json", "/crm/v8/{module_api_name}", "get"),
        ("post", [_]) => op("record.json", "/crm/v8/{module_api_name}", "post"),
        ("put", [_]) => op("record.json", "/crm/v8/{module_api_name}", "put"),
        ("get", [_, _]) => op("record.json", "/crm/v8/{module_api_name}/{id}", "get"),
        ("put", [_, _]) => op("record.json", "/crm/v8/{module_api_name}/{id}", "put"),
        _ => return None,
    };
    Some(o)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    Request,
    Response,
}

impl Mode {
    fn base(self) -> &'static str {
        match self {
            Mode::Request => REQUEST_BASE,
            Mode::Response => RESPONSE_BASE,
        }
    }
}

/// Problems building the contract (only from broken embedded files).
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("embedded OAS file {file} is not valid JSON: {source}")]
    Parse {
        file: &'static str,
        source: serde_json::Error,
    },
    #[error("cannot compile schema for {what}: {message}")]
    Compile { what: String, message: String },
}

/// One recorded contract violation (shared by the sandboxes).
pub use sandbox_kit::contract::ContractViolation;

/// The compiled contract. Validators are compiled lazily and cached.
pub struct Contract {
    /// Raw (patched, untransformed) documents by file name.
    raw: HashMap<&'static str, Value>,
    /// Transformed documents by absolute URL (both modes).
    docs: HashMap<String, Value>,
    /// All transformed documents, registered under their absolute URLs so
    /// cross-file `$ref`s resolve without any network access.
    registry: Registry<'static>,
    cache: Mutex<HashMap<String, Option<Arc<Validator>>>>,
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contract").finish_non_exhaustive()
    }
}

fn pointer_mut<'a>(v: &'a mut Value, pointer: &str) -> Option<&'a mut Map<String, Value>> {
    v.pointer_mut(pointer).and_then(Value::as_object_mut)
}

/// Rewrites one document for the validator (see module docs).
fn transform(v: &Value, file: &str, mode: Mode) -> Value {
    match v {
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| transform(i, file, mode)).collect())
        }
        Value::Object(obj) => {
            let mut out = Map::new();
            for (k, val) in obj {
                match (k.as_str(), val) {
                    ("$ref", Value::String(r)) => {
                        let abs = if let Some(frag) = r.strip_prefix('#') {
                            format!("{}{}#{}", mode.base(), file, frag)
                        } else if let Some(rest) = r.strip_prefix(ZOHO_BASE) {
                            format!("{}{}", mode.base(), rest)
                        } else {
                            r.clone()
                        };
                        out.insert(k.clone(), Value::String(abs));
                    }
                    // A single alternative is the same as `allOf`, which
                    // yields precise error locations instead of "not valid
                    // under any of the schemas".
                    ("oneOf" | "anyOf", Value::Array(alts)) if alts.len() == 1 => {
                        out.insert("allOf".into(), transform(val, file, mode));
                    }
                    ("oneOf", Value::Array(_)) => {
                        out.insert("anyOf".into(), transform(val, file, mode));
                    }
                    ("required", Value::Array(_)) if mode == Mode::Request => {}
                    ("nullable", Value::Bool(_)) => {}
                    _ => {
                        out.insert(k.clone(), transform(val, file, mode));
                    }
                }
            }
            if obj.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".into(), json!([t, "null"]));
                    if let Some(Value::Array(e)) = out.get_mut("enum") {
                        e.push(Value::Null);
                    }
                } else {
                    // `$ref`/`anyOf` with nullable: draft 4 ignores `$ref`
                    // siblings, so wrap instead.
                    return json!({"anyOf": [Value::Object(out), {"type": "null"}]});
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

impl Contract {
    /// Parses, patches and transforms the embedded OAS files.
    pub fn load() -> Result<Self, ContractError> {
        let mut raw = HashMap::new();
        for (file, text) in FILES {
            let mut doc: Value = serde_json::from_str(text)
                .map_err(|source| ContractError::Parse { file, source })?;
            for p in PATCHES.iter().filter(|p| p.file == *file) {
                if let Some(obj) = pointer_mut(&mut doc, p.pointer) {
                    (p.apply)(obj);
                }
            }
            raw.insert(*file, doc);
        }
        let mut docs = HashMap::new();
        for mode in [Mode::Request, Mode::Response] {
            for (file, doc) in &raw {
                docs.insert(
                    format!("{}{}", mode.base(), file),
                    transform(doc, file, mode),
                );
            }
            for (file, name) in STUB_FILES {
                docs.insert(
                    format!("{}{}", mode.base(), file),
                    json!({"components": {"schemas": {*name: {}}}}),
                );
            }
        }
        let registry = Registry::new()
            .draft(Draft::Draft4)
            .extend(docs.iter().map(|(url, doc)| (url.clone(), doc.clone())))
            .and_then(|b| b.prepare())
            .map_err(|e| ContractError::Compile {
                what: "OAS registry".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            raw,
            docs,
            registry,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn doc(&self, mode: Mode, file: &str) -> Option<&Value> {
        self.docs.get(&format!("{}{}", mode.base(), file))
    }

    /// Resolves an absolute `$ref` into the transformed documents.
    fn deref_abs<'a>(&'a self, v: &'a Value) -> &'a Value {
        let mut cur = v;
        for _ in 0..8 {
            let Some(r) = cur.get("$ref").and_then(Value::as_str) else {
                return cur;
            };
            let (url, frag) = r.split_once('#').unwrap_or((r, ""));
            match self.docs.get(url).and_then(|d| d.pointer(frag)) {
                Some(t) => cur = t,
                None => return cur,
            }
        }
        cur
    }

    fn operation(&self, mode: Mode, op: OpRef) -> Option<&Value> {
        self.doc(mode, op.file)?
            .get("paths")?
            .get(op.path)?
            .get(op.method)
    }

    /// The JSON schema of a request body or response object (`content`
    /// holder), following `#/components/{requestBodies,responses}` refs.
    fn json_content_schema<'a>(&'a self, holder: &'a Value) -> Option<&'a Value> {
        let holder = self.deref_abs(holder);
        holder
            .get("content")?
            .get("application/json")?
            .get("schema")
    }

    fn compile(
        &self,
        key: String,
        schema: impl FnOnce() -> Option<Value>,
    ) -> Option<Arc<Validator>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cache.get(&key) {
            return v.clone();
        }
        let compiled = schema().and_then(|s| {
            match jsonschema::options()
                .with_draft(Draft::Draft4)
                .with_registry(&self.registry)
                .build(&s)
            {
                Ok(v) => Some(Arc::new(v)),
                Err(e) => {
                    // A schema that does not compile is a defect of the
                    // embedded files; say so loudly instead of silently
                    // skipping the check.
                    tracing::error!(%key, error = %e, "OAS schema does not compile");
                    None
                }
            }
        });
        cache.insert(key, compiled.clone());
        compiled
    }

    /// Validator for the request body of `op`, or `None` when the OAS
    /// declares no JSON body schema (e.g. convert_lead.json declares an empty
    /// `application/json` content without a schema).
    fn request_validator(&self, op: OpRef) -> Option<Arc<Validator>> {
        let key = format!("req {} {} {}", op.file, op.method, op.path);
        self.compile(key, || {
            let rb = self.operation(Mode::Request, op)?.get("requestBody")?;
            let schema = self.json_content_schema(rb)?.clone();
            // Keep the top-level `required` (e.g. Body_Wrapper's `data`),
            // which request mode otherwise strips.
            let raw_required = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.split_once('#'))
                .and_then(|(_, frag)| self.raw.get(op.file)?.pointer(frag))
                .and_then(|t| t.get("required"))
                .cloned();
            Some(match raw_required {
                Some(req) => json!({"allOf": [schema], "required": req}),
                None => schema,
            })
        })
    }

    fn documented_statuses(&self, op: OpRef) -> Vec<(String, Option<Value>)> {
        let Some(responses) = self
            .operation(Mode::Response, op)
            .and_then(|o| o.get("responses"))
            .and_then(Value::as_object)
        else {
            return Vec::new();
        };
        responses
            .iter()
            .map(|(status, r)| (status.clone(), self.json_content_schema(r).cloned()))
            .collect()
    }

    fn collect_data_items(&self, schema: &Value, out: &mut Vec<Value>) {
        let s = self.deref_abs(schema);
        for key in ["anyOf", "allOf"] {
            if let Some(Value::Array(branches)) = s.get(key) {
                for b in branches {
                    self.collect_data_items(b, out);
                }
            }
        }
        if let Some(items) = s.pointer("/properties/data/items") {
            out.push(items.clone());
        }
    }

    fn response_validator(&self, op: OpRef, status: u16, body: &Value) -> Option<Arc<Validator>> {
        let documented = self.documented_statuses(op);
        let status_s = status.to_string();
        if let Some((_, schema)) = documented.iter().find(|(s, _)| *s == status_s) {
            let key = format!("resp {} {} {} {}", op.file, op.method, op.path, status_s);
            let schema = schema.clone();
            return self.compile(key, || schema);
        }
        if body.get("data").is_some_and(Value::is_array) {
            let key = format!("resp {} {} {} per-record", op.file, op.method, op.path);
            return self.compile(key, || {
                let mut alternatives: Vec<Value> =
                    documented.iter().filter_map(|(_, s)| s.clone()).collect();
                let mut items = Vec::new();
                for s in &alternatives {
                    self.collect_data_items(s, &mut items);
                }
                if !items.is_empty() {
                    alternatives.push(json!({
                        "type": "object",
                        "required": ["data"],
                        "properties": {"data": {"type": "array", "items": {"anyOf": items}}}
                    }));
                }
                Some(json!({ "anyOf": alternatives }))
            });
        }
        self.compile("resp common API_Exception".into(), || {
            Some(json!({"$ref": format!("{RESPONSE_BASE}common.json#/components/schemas/API_Exception")}))
        })
    }

    fn run(validator: &Validator, instance: &Value) -> Option<String> {
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .take(5)
            .map(|e| format!("at '{}': {}", e.instance_path(), e))
            .collect();
        if errors.is_empty() {
            None
        } else {
            Some(errors.join("; "))
        }
    }

    /// Checks a request body; returns the violation message if any.
    pub fn check_request(&self, op: OpRef, body: &Value) -> Option<String> {
        let v = self.request_validator(op)?;
        Self::run(&v, body)
    }

    /// Checks a response body sent with `status`.
    pub fn check_response(&self, op: OpRef, status: u16, body: &Value) -> Option<String> {
        let v = self.response_validator(op, status, body)?;
        Self::run(&v, body)
    }

    /// Checks a body against the generic Zoho error shape
    /// (`common.json#/components/schemas/API_Exception`), used for
    /// whole-request errors any operation can return (401/429/500, injected
    /// faults) whose status the operation does not document.
    pub fn check_generic_error(&self, body: &Value) -> Option<String> {
        let v = self.compile("resp common API_Exception".into(), || {
            Some(json!({"$ref": format!("{RESPONSE_BASE}common.json#/components/schemas/API_Exception")}))
        })?;
        Self::run(&v, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> Contract {
        Contract::load().expect("embedded OAS files load")
    }

    #[test]
    fn classify_routes() {
        assert_eq!(
            classify("GET", "/crm/v8/Leads/search").map(|o| o.file),
            Some("module_search.json")
        );
        assert_eq!(
            classify("POST", "/crm/v8/Leads/123/Notes").map(|o| o.path),
            Some("/crm/v8/Notes")
        );
        assert_eq!(classify("POST", "/oauth/v2/token"), None);
    }

    #[test]
    fn record_create_request_and_response() {
        let c = contract();
        let o = classify("POST", "/crm/v8/Leads").expect("op");
        let good =
            json!({"data": [{"Last_Name": "Silva", "Mobile": "+5511987654321"}], "trigger": []});
        assert_eq!(c.check_request(o, &good), None);
        let bad = json!({"data": {"Last_Name": "Silva"}});
        assert!(c.check_request(o, &bad).is_some(), "data must be an array");
        let bad_trigger = json!({"data": [], "trigger": "workflow"});
        assert!(c.check_request(o, &bad_trigger).is_some());

        let ok = json!({"data": [{"code": "SUCCESS", "status": "success", "message": "record added",
            "details": {"id": "1", "Created_Time": "2026-03-02T10:00:00+00:00",
                "Modified_Time": "2026-03-02T10:00:00+00:00",
                "Created_By": {"id": "2", "name": "Ana"}, "Modified_By": {"id": "2", "name": "Ana"},
                "$approval_state": "approved"}}]});
        assert_eq!(c.check_response(o, 201, &ok), None);
        let wrong = json!({"data": [{"code": "SUCCESS", "status": "success", "message": "created!",
            "details": {"id": 1}}]});
        assert!(c.check_response(o, 201, &wrong).is_some());
    }

    #[test]
    fn notes_request_shape() {
        let c = contract();
        let o = classify("POST", "/crm/v8/Notes").expect("op");
        let good = json!({"data": [{"Note_Title": "t", "Note_Content": "c",
            "Parent_Id": {"module": {"api_name": "Leads"}, "id": "1"}}]});
        assert_eq!(c.check_request(o, &good), None);
        let bad = json!({"data": [{"Note_Title": 5, "Note_Content": "c"}]});
        assert!(c.check_request(o, &bad).is_some());
        assert!(c.check_request(o, &json!({})).is_some(), "data is required");
    }

    #[test]
    fn generic_error_and_search() {
        let c = contract();
        let err = json!({"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"});
        assert_eq!(c.check_generic_error(&err), None);
        assert!(c.check_generic_error(&json!({"code": "X"})).is_some());
        let o = classify("GET", "/crm/v8/Leads/search").expect("op");
        assert_eq!(
            c.check_response(o, 200, &json!({"data": [{"id": "1"}], "info": {}})),
            None
        );
        assert!(
            c.check_response(o, 200, &json!({"data": [{"Phone": "1"}]}))
                .is_some()
        );
    }
}
